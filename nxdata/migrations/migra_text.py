"""Fixes to the SQL migra prints itself, from its inspector, rather than from PostgreSQL's
``pg_get_*def`` functions: enum values and column names quoted, collations schema-qualified,
new columns in their declared order.

- **enum values**: migra writes ``create type ... as enum ('it's')`` without doubling the
  quote (the statement does not parse); the values are written again from the declared
  database's catalog.
- **new collations**: migra writes an ICU collation's locale as ``'None'`` (PostgreSQL 15 keeps
  it apart from ``collcollate``) and drops ``deterministic = false``; the collation is written
  again from the catalog.
- **an enum's columns**: when an enum changes, migra moves its columns with ``alter column
  status type ... using status::text::...``, the column name unquoted (``Status`` would name
  ``status``; ``it's`` does not parse); the name is quoted.
- **collations**: migra writes a column's collation by its name alone (``collate "numeric"``),
  which resolves only where the collation's schema is on the search path, and leaves it out
  of ``create table`` altogether; each is written with the schema the declared column's
  collation lives in (``collate public."numeric"``).
- **identity options**: migra writes ``generated ... as identity`` without the sequence's
  options (``start with 100``); they are added where the identity is (``catalog`` changes
  them on an existing identity).
- **inherited columns and constraints**: migra lists a child table's inherited columns in its
  ``create table ... inherits`` (they become its own: ``pg_dump`` shows them), adds a column
  added to a parent to each child too (which fails: the child has it already), adds a CHECK
  added to a parent to each child (making the copies the child's own) and drops the copies of
  a dropped one (which fails when the child comes first); only the child's own columns and
  constraints are written: the parent gives the others.
- **a generated column's expression**: migra writes ``alter column ... set default``, which
  PostgreSQL refuses on a generated column; from PostgreSQL 17 the expression is changed with
  ``set expression``, before that the column is dropped and added again (with the indexes
  that use it).
- **column order**: migra adds a table's new columns in name order; they are added in the
  order the declarations have them (PostgreSQL appends each at the end, so a column declared
  between existing ones still comes last: see the limits in ``docs/migrations.md``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from ..objects import quote_ident, sql_string
from ._extras import missing_extras
from .catalog import identity_options

try:
    from pglast import parse_sql
    from pglast.enums.parsenodes import AlterTableType
    from pglast.parser import ParseError
except ImportError as exc:
    raise missing_extras(exc) from None

__all__ = ["fix_migra_text"]

_IDENT = r'"(?:[^"]|"")*"'
_CREATE_ENUM = re.compile(rf"^create type (?P<name>{_IDENT}\.{_IDENT}) as enum \(", re.IGNORECASE)
# schemainspect's change_enum_statement: the column name as it is, unquoted, twice.
_RECAST_ENUM = re.compile(
    rf"^alter table (?P<table>{_IDENT}\.{_IDENT}) alter column (?P<column>.+) "
    rf"type (?P<type>{_IDENT}\.{_IDENT}) using (?P=column)::text::(?P=type);$",
    re.DOTALL,
)
_CREATE_COLLATION = re.compile(
    rf"^create collation if not exists (?P<name>{_IDENT}\.{_IDENT}) \(", re.IGNORECASE
)
_COLLATE = re.compile(rf"collate\s+(?:{_IDENT}|[^\s,;()]+)", re.IGNORECASE)
_AS_IDENTITY = re.compile(r"\bas identity\b", re.IGNORECASE)

_ENUM_LABELS = """
SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder) FROM pg_enum e
 WHERE e.enumtypid = %s::regtype
"""

# The locale is colliculocale on PostgreSQL 15 and 16, colllocale from 17 (ICU and builtin).
_COLLATION = """
SELECT k.collprovider, k.collisdeterministic, k.collcollate, k.collctype,
       coalesce(to_jsonb(k) ->> 'colllocale', to_jsonb(k) ->> 'colliculocale')
  FROM pg_collation k WHERE k.oid = %s::regcollation
"""

# Each column of the schema: its position, whether the table has it of its own (not only by
# inheritance), its collation when not its type's, and its identity's sequence options.
_COLUMNS = """
SELECT t.relname, a.attname, a.attnum, a.attislocal, a.attgenerated = 's',
       format_type(a.atttypid, a.atttypmod), a.attnotnull,
       CASE WHEN a.attcollation <> 0 AND a.attcollation <> y.typcollation
            THEN quote_ident(cn.nspname) || '.' || quote_ident(k.collname) END,
       format_type(s.seqtypid, NULL), s.seqincrement, s.seqmin, s.seqmax, s.seqstart,
       s.seqcache, s.seqcycle
  FROM pg_attribute a JOIN pg_class t ON t.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
  JOIN pg_type y ON y.oid = a.atttypid
  LEFT JOIN pg_collation k ON k.oid = a.attcollation
  LEFT JOIN pg_namespace cn ON cn.oid = k.collnamespace
  LEFT JOIN pg_depend d ON d.refobjid = t.oid AND d.refobjsubid = a.attnum AND d.deptype = 'i'
   AND d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
  LEFT JOIN pg_sequence s ON s.seqrelid = d.objid
 WHERE n.nspname = %s AND a.attnum > 0 AND NOT a.attisdropped AND t.relkind IN ('r', 'p', 'f')
"""


# Constraints a table has only by inheritance (copies of its parent's).
_INHERITED = """
SELECT t.relname, k.conname FROM pg_constraint k JOIN pg_class t ON t.oid = k.conrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
 WHERE n.nspname = %s AND NOT k.conislocal
"""


@dataclass(frozen=True, slots=True)
class _Column:
    """A declared column, as `_COLUMNS` reads it."""

    position: int
    local: bool
    generated: bool  # a stored generated column
    type: str
    not_null: bool
    collation: str | None  # qualified, when not its type's
    identity: str  # its identity's options that are not the defaults ('' for none)


_NO_COLUMN = _Column(0, True, False, "", False, None, "")

_GENERATED = """
SELECT t.relname, a.attname FROM pg_attribute a JOIN pg_class t ON t.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
 WHERE n.nspname = %s AND a.attgenerated = 's' AND NOT a.attisdropped
"""

# The indexes on a column, by their dependencies on it.
_COLUMN_INDEXES = """
SELECT DISTINCT pg_get_indexdef(d.objid) || ';' FROM pg_depend d
  JOIN pg_class i ON i.oid = d.objid AND i.relkind IN ('i', 'I')
  JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace n ON n.oid = t.relnamespace
  JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
 WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
   AND n.nspname = %s AND t.relname = %s AND a.attname = %s
"""

_SET_DEFAULT = re.compile(
    rf"^alter table (?P<table>{_IDENT}\.{_IDENT}) alter column (?P<column>{_IDENT}) "
    r"set default (?P<expression>.*);$",
    re.DOTALL,
)


def fix_migra_text(
    statements: Sequence[str],
    target: psycopg.Connection[Any],
    declared: psycopg.Connection[Any],
    schema: str,
) -> list[str]:
    """`statements` (migra's, one schema's, from `target` to `declared`, the database built
    from the declarations) with their enum values and enum columns quoted, their collations
    qualified, their identity options given, inherited columns and constraints left to the
    parent, and new columns in declared order (see the module docstring)."""
    out = [_own_text(statement, declared) for statement in statements]
    inherited = {
        "add": set(_rows(declared, _INHERITED, [schema])),
        "drop": set(_rows(target, _INHERITED, [schema])),
    }
    out = [statement for statement in out if not _inherited_constraint(statement, inherited)]
    columns = {
        (table, column): _Column(
            position,
            local,
            generated,
            sql_type,
            not_null,
            collation,
            identity_options(*sequence) if sequence[0] is not None else "",
        )
        for (
            table,
            column,
            position,
            local,
            generated,
            sql_type,
            not_null,
            collation,
            *sequence,
        ) in _rows(declared, _COLUMNS, [schema])
    }
    out = [
        fixed
        for statement in out
        if (fixed := _column_text(statement, schema, columns)) is not None
    ]
    generated = set(_rows(target, _GENERATED, [schema]))
    expression = target.info.server_version >= 170000
    out = [
        s
        for statement in out
        for s in _generation(statement, schema, columns, generated, declared, expression, out)
    ]
    return _declared_order(out, schema, columns)


def _generation(
    statement: str,
    schema: str,
    columns: dict[tuple[str, str], _Column],
    generated: set[tuple[Any, ...]],
    declared: psycopg.Connection[Any],
    expression: bool,
    statements: Sequence[str],
) -> list[str]:
    """migra's ``set default`` of a generated column (a new expression) as PostgreSQL takes
    it: ``set expression`` (17+), or the column dropped and added again with its indexes."""
    found = _SET_DEFAULT.match(statement)
    if found is None:
        return [statement]
    stmt = _parsed(statement)
    if type(stmt).__name__ != "AlterTableStmt" or stmt.relation.schemaname != schema:
        return [statement]
    table, name = stmt.relation.relname, stmt.cmds[0].name
    column = columns.get((table, name), _NO_COLUMN)
    if not column.generated or (table, name) not in generated:
        return [statement]  # a plain column (or one becoming generated: migra's statement fails)
    prefix = f"alter table {found.group('table')}"
    quoted, text = found.group("column"), found.group("expression")
    if expression:
        return [f"{prefix} alter column {quoted} set expression as ({text});"]
    collate = f" collate {column.collation}" if column.collation else ""
    present = {" ".join(s.split()).lower() for s in statements}
    indexes = [
        index
        for (index,) in _rows(declared, _COLUMN_INDEXES, [schema, table, name])
        if " ".join(index.split()).lower() not in present
    ]
    return [
        f"{prefix} drop column {quoted};",
        f"{prefix} add column {quoted} {column.type}{collate} generated always as ({text}) "
        f"stored{' not null' if column.not_null else ''};",
        *indexes,
    ]


def _rows(conn: psycopg.Connection[Any], query: str, params: Any) -> list[tuple[Any, ...]]:
    """The rows of a catalog query with only ``pg_catalog`` on the search path, so that the
    types and definitions PostgreSQL prints are schema-qualified (as migra prints them)."""
    with conn.transaction():
        conn.execute("SELECT set_config('search_path', 'pg_catalog', true)")
        return conn.execute(query, params).fetchall()


def _own_text(statement: str, declared: psycopg.Connection[Any]) -> str:
    """An enum, an enum column's move or a collation, written again (see the module
    docstring)."""
    created = _CREATE_ENUM.match(statement)
    if created is not None:
        name = created.group("name")
        [(labels,)] = _rows(declared, _ENUM_LABELS, [name])
        if labels is not None:
            values = ", ".join(sql_string(label) for label in labels)
            return f"create type {name} as enum ({values});"
    recast = _RECAST_ENUM.match(statement)
    if recast is not None:
        column = quote_ident(recast.group("column"))
        table, type_ = recast.group("table"), recast.group("type")
        return (
            f"alter table {table} alter column {column} type {type_} using {column}::text::{type_};"
        )
    collation = _CREATE_COLLATION.match(statement)
    if collation is not None:
        name = collation.group("name")
        rows = _rows(declared, _COLLATION, [name])
        if rows:
            return f"create collation if not exists {name} ({_collation_options(*rows[0])});"
    return statement


def _collation_options(
    provider: str, deterministic: bool, collate: str | None, ctype: str | None, locale: str | None
) -> str:
    """The options of ``CREATE COLLATION`` for a collation as the catalog holds it."""
    if provider == "c":
        options = [
            "provider = libc",
            f"lc_collate = {sql_string(collate or '')}",
            f"lc_ctype = {sql_string(ctype or '')}",
        ]
    else:
        kind = {"i": "icu", "b": "builtin"}.get(provider, provider)
        options = [f"provider = {kind}", f"locale = {sql_string(locale or '')}"]
    if not deterministic:
        options.append("deterministic = false")
    return ", ".join(options)


def _inherited_constraint(statement: str, inherited: dict[str, set[tuple[Any, ...]]]) -> bool:
    """Whether `statement` adds, validates or drops a constraint that its table has only as a
    copy of its parent's (PostgreSQL adds, validates and drops those with the parent's)."""
    if not statement.lower().startswith("alter table") or " constraint " not in statement.lower():
        return False
    stmt = _parsed(statement)
    if type(stmt).__name__ != "AlterTableStmt" or len(stmt.cmds or ()) != 1:
        return False
    cmd = stmt.cmds[0]
    name = cmd.name or getattr(cmd.def_, "conname", None)
    if cmd.subtype in (AlterTableType.AT_AddConstraint, AlterTableType.AT_ValidateConstraint):
        return (stmt.relation.relname, name) in inherited["add"]
    if cmd.subtype == AlterTableType.AT_DropConstraint:
        return (stmt.relation.relname, name) in inherited["drop"]
    return False


def _parsed(statement: str) -> Any:
    try:
        parsed = parse_sql(statement)
    except ParseError:
        return None  # reported where the statements are parsed for good (None: no node)
    return parsed[0].stmt if len(parsed) == 1 else None


def _column_text(
    statement: str, schema: str, columns: dict[tuple[str, str], _Column]
) -> str | None:
    """`statement` with its columns' collations written with their schema, their identities'
    options and, in ``create table``, only the table's own columns (None for an ``add
    column`` of a column the table has only by inheritance: adding it to the parent adds it)."""
    lowered = statement.lower()
    if not lowered.startswith(("alter table", "create table", "create unlogged table")):
        return statement
    stmt = _parsed(statement)
    kind = type(stmt).__name__
    if kind not in ("AlterTableStmt", "CreateStmt") or stmt.relation.schemaname != schema:
        return statement
    table = stmt.relation.relname
    edits: list[tuple[int, int, str]] = []  # (start, end, text), applied from the end
    if kind == "AlterTableStmt":
        for cmd in stmt.cmds or ():
            definition = cmd.def_
            if cmd.subtype == AlterTableType.AT_AddIdentity:
                column = columns.get((table, cmd.name), _NO_COLUMN)
                found = _AS_IDENTITY.search(statement)
                if column.identity and found is not None:
                    edits.append((found.end(), found.end(), f" ({column.identity})"))
                continue
            if cmd.subtype not in (AlterTableType.AT_AddColumn, AlterTableType.AT_AlterColumnType):
                continue
            column = columns.get((table, cmd.name or definition.colname), _NO_COLUMN)
            if cmd.subtype == AlterTableType.AT_AddColumn and not column.local:
                if len(stmt.cmds) == 1:
                    return None
                continue
            clause = getattr(definition, "collClause", None)
            if clause is not None and column.collation is not None and len(clause.collname) == 1:
                found = _COLLATE.match(statement, clause.location)
                if found is not None:
                    edits.append((found.start(), found.end(), f"collate {column.collation}"))
            found = _AS_IDENTITY.search(statement, definition.location)
            if column.identity and found is not None:
                edits.append((found.end(), found.end(), f" ({column.identity})"))
    elif stmt.tableElts:
        elements = [e for e in stmt.tableElts if type(e).__name__ == "ColumnDef"]
        if not elements:
            return statement
        # One column a line, the list closed by "\n)" (schemainspect's CREATE_TABLE).
        ends = [e.location for e in elements[1:]] + [statement.find("\n)", elements[-1].location)]
        if ends[-1] < 0:
            return statement
        kept = []
        for element, end in zip(elements, ends, strict=True):
            column = columns.get((table, element.colname), _NO_COLUMN)
            if not column.local:
                continue  # inherited: the parent gives it
            text = statement[element.location : end].rstrip().rstrip(",").rstrip()
            found = _AS_IDENTITY.search(text)
            if column.identity and found is not None:
                text = f"{text[: found.end()]} ({column.identity}){text[found.end() :]}"
            if column.collation is not None and element.collClause is None:
                text += f" collate {column.collation}"
            kept.append(text)
        edits.append((elements[0].location, ends[-1], ",\n    ".join(kept)))
    for start, end, text in sorted(edits, reverse=True):
        statement = statement[:start] + text + statement[end:]
    return statement


def _declared_order(
    statements: list[str], schema: str, columns: dict[tuple[str, str], _Column]
) -> list[str]:
    """migra's ``add column`` statements of each table in the order of the declared columns
    (each keeps a slot of the statements that add that table's columns)."""
    slots: dict[str, list[tuple[int, int]]] = {}  # table -> [(index, declared position)]
    for index, statement in enumerate(statements):
        if " add column " not in statement.lower():
            continue
        stmt = _parsed(statement)
        if type(stmt).__name__ != "AlterTableStmt" or len(stmt.cmds or ()) != 1:
            continue
        cmd = stmt.cmds[0]
        if cmd.subtype != AlterTableType.AT_AddColumn or stmt.relation.schemaname != schema:
            continue
        table = stmt.relation.relname
        position = columns.get((table, cmd.def_.colname), _NO_COLUMN).position
        slots.setdefault(table, []).append((index, position))
    out = list(statements)
    for added in slots.values():
        indexes = [index for index, _ in added]
        in_order = [statements[index] for index, _ in sorted(added, key=lambda a: (a[1], a[0]))]
        for index, statement in zip(indexes, in_order, strict=True):
            out[index] = statement
    return out
