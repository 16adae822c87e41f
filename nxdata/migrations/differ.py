"""Diffing a database against the declarations with migra, plus nxdata's fixes on top.

migra (archived upstream, pinned) compares two live databases schema by schema. We hand it the
target and the throwaway database built from the declarations, then correct what it gets wrong
for the SQL our declarations produce:

- **extensions**: with ``schema=`` migra skips extensions (they live in ``public``), so a schema
  that declares ``extensions=("citext",)`` would get a migration that fails on a fresh database.
  We drop migra's own extension statements (they pin the server's version, e.g. ``version '1.6'``)
  and put ``CREATE EXTENSION IF NOT EXISTS`` first for each declared extension the target lacks.
- **foreign keys after the keys they reference**: migra adds constraints in name order, so
  ``FK_...`` comes before ``UQ_...`` and a foreign key to a unique constraint added in the same
  file fails. We move foreign-key additions (and their ``VALIDATE``) to the end.
- **comments, sequence and identity options, storage parameters, FORCE ROW LEVEL SECURITY,
  privileges**: migra compares none of these (its privileges cover tables only); `catalog`
  compares them from the catalogs, read with only ``pg_catalog`` on the search path so that
  every name it writes is qualified.
- **what migra prints itself** (enum values, an enum's columns, collations, identity options,
  inherited columns and constraints, the order of new columns, a generated column's new
  expression): quoted, qualified and completed by `migra_text`.
- **a function whose result type changes**: migra writes ``CREATE OR REPLACE``, which
  PostgreSQL refuses; it is dropped just before (`catalog.replaced_routines`).
- **composite types** are created before the tables whose columns use them.
- **objects made outside the declarations**: migra drops every index, view, function, trigger,
  policy or grant the declarations lack. A drop of one that no declaration owns and no generated
  migration created is an ``drops-object`` hazard (refused without ``--unsafe``); objects matching
  an `Unmanaged` pattern are left out of the diff altogether.
- **roles**: a grant or policy naming a declared `Role` is preceded by its idempotent creation.
- **identity added to an existing column**: migra's ``ADD GENERATED ... AS IDENTITY`` starts the
  sequence at 1, so the next insert collides with the rows already there; we add a ``setval`` to
  one past the column's maximum.
- **partitioned tables**: migra writes a parent's indexes ``ON ONLY``, its keys ``USING INDEX``
  (refused on a partitioned table) and every partition's copies of them; `partitions` fixes that
  and leaves the partitions the declarations do not list alone.
- **a partitioned table whose name holds a double quote**: schemainspect builds each partition's
  parent name as ``'"' || schema || '"."' || name || '"'`` without doubling the quote, then
  fails to find that parent (a raw ``KeyError``); `_inspector` runs its query with the quotes
  doubled.
- **Citus**: the throwaway database has no Citus; `citus.distribute` adds the statements that
  distribute the tables declared ``distributed_by=`` / ``reference_table=True``.
- **nxdata's journal schema** is never diffed (only declared schemas are, and the journal's name
  is reserved).

Every statement ends with ``;`` and statements are separated by one blank line, so the same
inputs give byte-identical text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from ..config import sqlalchemy_url
from ..errors import MigrationError
from ..objects import Role, Unmanaged, sql_string
from ..table import Schema, _quote
from ._extras import missing_extras
from .catalog import (
    Ownership,
    column_dependents,
    comment_statements,
    declared_objects,
    dropped_objects,
    generated_objects,
    identity_statements,
    lost_view_columns,
    privilege_statements,
    recreated_index_statements,
    recreated_objects,
    replaced_routines,
    rls_force_statements,
    sequence_statements,
    table_option_statements,
    view_option_statements,
)
from .citus import citus_tables, distribute
from .hazards import RECIPES, Hazard, UnsafeStatement, classify, recreated_in
from .inspect import target_state
from .migra_text import fix_migra_text
from .online import Step, plan_steps
from .partitions import fix_partitions, partition_layout
from .renames import Renames, fold_renames
from .throwaway import connect

try:  # the optional diff tools: a clear message, not a ModuleNotFoundError
    from pglast import parse_sql
    from pglast.enums.parsenodes import AlterTableType, ConstrType, ObjectType
    from pglast.parser import ParseError
except ImportError as exc:
    raise missing_extras(exc) from None

__all__ = [
    "SchemaDiff",
    "count_failing_rows",
    "diff_databases",
    "schema_dependencies",
    "schema_order",
]


@dataclass(frozen=True, slots=True)
class SchemaDiff:
    """The statements that bring one schema of the target to its declared state, the steps they
    run in (`online.plan_steps`), and their hazards on the target (`hazards.classify`)."""

    schema: str
    statements: tuple[str, ...]
    unsafe: tuple[UnsafeStatement, ...] = ()
    depends_on: tuple[str, ...] = field(default=())
    steps: tuple[Step, ...] = ()
    hazards: tuple[Hazard, ...] = ()

    @property
    def empty(self) -> bool:
        """True when the schema already matches its declaration."""
        return not self.statements

    @property
    def sql(self) -> str:
        """The statements as one script (no header), with step lines when there are several
        steps or one outside a transaction."""
        if not self:
            return ""
        steps = self.steps or (Step(self.statements),)
        if len(steps) == 1 and steps[0].transaction:
            return _script(steps[0].statements)
        parts = []
        for number, step in enumerate(steps, start=1):
            marker = f"-- nxdata: step {number}" + ("" if step.transaction else ", no transaction")
            parts.append(marker + "\n" + _script(step.statements))
        return "\n".join(parts)

    def __bool__(self) -> bool:
        return bool(self.statements)


@contextmanager
def _sqlalchemy_connection(url: str) -> Iterator[Any]:
    # Our own engine with NullPool rather than sqlbag.S: sqlbag caches one engine (and its pooled
    # connections) per URL forever, which keeps sessions open on the throwaway database.
    try:
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool
    except ImportError as exc:
        raise missing_extras(exc) from None
    # With only pg_catalog on the search path, PostgreSQL qualifies every name it prints
    # (pg_get_constraintdef, pg_get_indexdef, defaults), so the generated SQL does not depend on
    # the search_path of whoever applies it: `REFERENCES public."Merchant"`, not `"Merchant"`.
    engine = create_engine(
        sqlalchemy_url(url),
        poolclass=NullPool,
        connect_args={"options": "-c search_path=pg_catalog"},
    )
    try:
        with engine.connect() as conn:
            yield conn
            conn.rollback()  # read-only: nothing to keep
    finally:
        engine.dispose()


# schemainspect's relations query names each partition's parent without doubling a quote in it,
# so a parent named 'Ev"ent' is looked up as "s"."Ev"ent" among relations keyed "s"."Ev""ent".
_PARENT_NAME = """'"' || nmsp_parent.nspname || '"."' || parent.relname || '"'"""
_PARENT_QUOTED = (
    """'"' || replace(nmsp_parent.nspname, '"', '""') || '"."' """
    """|| replace(parent.relname, '"', '""') || '"'"""
)


def _inspector(conn: Any, schema: str) -> Any:
    """schemainspect's inspection of `schema` on `conn` (a SQLAlchemy connection), what
    ``migra.Migration(conn, ..., schema=schema)`` makes itself, but with the partitions' parent
    names quoted as schemainspect quotes the relations they name (`_PARENT_QUOTED`)."""
    try:
        from schemainspect.pg import PostgreSQL  # type: ignore[import-untyped]
        from sqlalchemy import text
    except ImportError as exc:
        raise missing_extras(exc) from None

    class _Inspector(PostgreSQL):  # type: ignore[misc]
        ALL_RELATIONS_QUERY: Any  # set by PostgreSQL.__init__, before it calls load_all

        def load_all(self) -> None:
            # (schemainspect is pinned; another version's query is left as it is)
            query: str = self.ALL_RELATIONS_QUERY.text
            self.ALL_RELATIONS_QUERY = text(query.replace(_PARENT_NAME, _PARENT_QUOTED))
            super().load_all()

    inspected = _Inspector(conn)
    inspected.one_schema(schema)
    return inspected


def schema_dependencies(schema: Schema) -> set[str]:
    """Other schemas this one's foreign keys point into."""
    return {
        fk.target.schema.name
        for table in schema.tables.values()
        for fk in table.foreign_keys
        if fk.target.schema.name != schema.name
    }


def schema_order(schemas: Sequence[Schema]) -> list[Schema]:
    """Schemas with the ones they reference first; ties (and cycles) broken by name."""
    pending = {s.name: s for s in schemas}
    deps = {s.name: schema_dependencies(s) & set(pending) for s in schemas}
    out: list[Schema] = []
    while pending:
        ready = sorted(n for n in pending if not (deps[n] & set(pending)))
        if not ready:
            ready = [min(pending)]  # a cycle: take the first by name
        for name in ready:
            out.append(pending.pop(name))
    return out


def _script(statements: Sequence[str]) -> str:
    return "".join(s + "\n\n" for s in statements).rstrip("\n") + "\n"


def _normalize(statement: str) -> str:
    text = "\n".join(line.rstrip() for line in statement.strip().splitlines())
    return text if text.endswith(";") else text + ";"


def _parse(statement: str) -> Any | None:
    try:
        parsed = parse_sql(statement)
    except ParseError as exc:
        raise MigrationError(
            f"migra produced SQL that does not parse ({exc}): {statement}"
        ) from exc
    return parsed[0].stmt if parsed else None


def _is_extension(stmt: Any) -> bool:
    kind = type(stmt).__name__
    if kind in ("CreateExtensionStmt", "AlterExtensionStmt"):
        return True
    return kind == "DropStmt" and stmt.removeType == ObjectType.OBJECT_EXTENSION


def _is_foreign_key(stmt: Any) -> bool:
    if type(stmt).__name__ != "AlterTableStmt":
        return False
    for cmd in stmt.cmds or ():
        if cmd.subtype == AlterTableType.AT_ValidateConstraint:
            return True
        if (
            cmd.subtype == AlterTableType.AT_AddConstraint
            and getattr(cmd.def_, "contype", None) == ConstrType.CONSTR_FOREIGN
        ):
            return True
    return False


def _identity_restarts(stmt: Any) -> list[str]:
    """``setval`` after ``ADD GENERATED ... AS IDENTITY`` on an existing column: the new sequence
    starts at 1 and would collide with the values already in the column."""
    if type(stmt).__name__ != "AlterTableStmt":
        return []
    out = []
    for cmd in stmt.cmds or ():
        if cmd.subtype == AlterTableType.AT_AddIdentity:
            table = (
                f"{_quote(stmt.relation.schemaname or 'public')}.{_quote(stmt.relation.relname)}"
            )
            # pg_get_serial_sequence takes the table as SQL text (quoted names) and the column
            # as a plain name: both are string literals, quotes doubled.
            out.append(
                f"SELECT setval(pg_get_serial_sequence({sql_string(table)}, "
                f"{sql_string(cmd.name)}), coalesce(max({_quote(cmd.name)}), 0) + 1, false) "
                f"FROM {table};"
            )
    return out


def _drops_before_replace(statements: Sequence[str], drops: dict[str, list[str]]) -> list[str]:
    """`statements` with the drops of `drops` (``catalog.replaced_routines``) just before the
    ``CREATE OR REPLACE`` of the function they name: migra replaces a function whose result
    type changes, which PostgreSQL refuses."""
    if not drops:
        return list(statements)
    out: list[str] = []
    for statement in statements:
        if statement.upper().startswith("CREATE OR REPLACE "):
            node: Any = _parse(statement)
            if type(node).__name__ == "CreateFunctionStmt":
                names = [str(getattr(p, "sval", "")) for p in node.funcname]
                name = ".".join(names) if len(names) > 1 else f"public.{names[0]}"
                out += drops.pop(name, [])
        out.append(statement)
    return out


def _fix_statements(statements: Sequence[str]) -> list[str]:
    front: list[str] = []
    foreign_keys: list[str] = []
    for statement in statements:
        stmt = _parse(statement)
        if stmt is None or _is_extension(stmt):
            continue
        statement = _idempotent_drop(stmt, _without_truncating_cast(stmt, statement))
        (foreign_keys if _is_foreign_key(stmt) else front).append(statement)
        front += _identity_restarts(stmt)
    return _functions_first(_composite_types_first(front + foreign_keys))


# What a function may need to exist before it: schemas, extensions, types, sequences.
_BEFORE_FUNCTIONS = frozenset(
    {
        "CreateSchemaStmt",
        "CreateExtensionStmt",
        "CreateEnumStmt",
        "CreateDomainStmt",
        "CompositeTypeStmt",
        "CreateSeqStmt",
        "CreateRangeStmt",
    }
)


def _composite_types_first(statements: Sequence[str]) -> list[str]:
    """migra creates composite types (``create type ... as (...)``) after the tables, so a
    column of one is added before its type exists; a new composite type moves to just after
    the schemas, enums and sequences (one dropped to be created again keeps its place)."""
    parsed: list[tuple[str, Any]] = [(s, _parse(s)) for s in statements]
    dropped = {
        ".".join(str(getattr(p, "sval", "")) for p in obj.names).lower()
        for _, n in parsed
        if type(n).__name__ == "DropStmt" and n.removeType == ObjectType.OBJECT_TYPE
        for obj in n.objects or ()
    }
    moved: list[str] = []
    rest: list[str] = []
    for statement, node in parsed:
        if type(node).__name__ == "CompositeTypeStmt" and (
            f"{node.typevar.schemaname or 'public'}.{node.typevar.relname}".lower() not in dropped
        ):
            moved.append(statement)
        else:
            rest.append(statement)
    if not moved:
        return list(statements)
    at = 0
    while at < len(rest) and type(_parse(rest[at])).__name__ in _BEFORE_FUNCTIONS:
        at += 1
    return [*rest[:at], *moved, *rest[at:]]


def _functions_first(statements: Sequence[str]) -> list[str]:
    """migra creates functions after the tables, but a CHECK or a column default may call one:
    the file then fails on a fresh database ("function ... does not exist"). Functions move to
    just after the schemas, types and sequences, with ``check_function_bodies`` off (their
    bodies may name tables created later) — unless their arguments or result name a table the
    same statements create (``RETURNS SETOF shop."Order"``), which must come first."""
    parsed: list[tuple[str, Any]] = [(s, _parse(s)) for s in statements]
    tables = {
        f"{n.relation.schemaname or 'public'}.{n.relation.relname}".lower()
        for _, n in parsed
        if type(n).__name__ == "CreateStmt"
    }
    # A function dropped and created again (its result type changed) keeps migra's order.
    dropped = {
        ".".join(str(getattr(p, "sval", "")) for p in obj.objname).lower()
        for _, n in parsed
        if type(n).__name__ == "DropStmt"
        and n.removeType in (ObjectType.OBJECT_FUNCTION, ObjectType.OBJECT_PROCEDURE)
        for obj in n.objects or ()
    }
    moved: list[str] = []
    rest: list[str] = []
    for statement, node in parsed:
        kind = type(node).__name__
        if kind == "VariableSetStmt" and node.name == "check_function_bodies":
            continue  # written again before the functions
        name = (
            ".".join(str(getattr(p, "sval", "")) for p in node.funcname).lower()
            if kind == "CreateFunctionStmt"
            else ""
        )
        if (
            kind == "CreateFunctionStmt"
            and not (_function_types(node) & tables)
            and (name not in dropped)
        ):
            moved.append(statement)
        else:
            rest.append(statement)
    if not moved:
        return list(statements)  # (a check_function_bodies line stays where migra put it)
    at = 0
    while at < len(rest) and type(_parse(rest[at])).__name__ in _BEFORE_FUNCTIONS:
        at += 1
    return [*rest[:at], "set check_function_bodies = off;", *moved, *rest[at:]]


def _function_types(node: Any) -> set[str]:
    """``schema.name`` (lower case) of the types a function's arguments and result name."""
    names = [p.argType for p in node.parameters or ()]
    if node.returnType is not None:
        names.append(node.returnType)
    out = set()
    for type_name in names:
        parts = [str(getattr(p, "sval", "")) for p in type_name.names]
        out.add(".".join(parts[-2:]).lower() if len(parts) > 1 else f"public.{parts[0]}".lower())
    return out


def _idempotent_drop(stmt: Any, statement: str) -> str:
    """``DROP POLICY`` and ``DROP CONSTRAINT`` with ``IF EXISTS``, as migra writes its other
    drops: a file that removes objects made by hand in one environment runs everywhere, also
    where they never existed."""
    kind = type(stmt).__name__
    if kind == "DropStmt" and stmt.removeType == ObjectType.OBJECT_POLICY and not stmt.missing_ok:
        return re.sub(r"^drop policy ", "drop policy if exists ", statement, flags=re.IGNORECASE)
    if kind == "AlterTableStmt" and len(stmt.cmds or ()) == 1:
        cmd = stmt.cmds[0]
        if cmd.subtype == AlterTableType.AT_DropConstraint and not cmd.missing_ok:
            return re.sub(
                r" drop constraint ", " drop constraint if exists ", statement, flags=re.IGNORECASE
            )
    return statement


_TRUNCATING_TYPES = frozenset({"varchar", "bpchar", "bit", "varbit"})
_USING = re.compile(r"\s+using\s+.*;$", re.IGNORECASE | re.DOTALL)


def _without_truncating_cast(stmt: Any, statement: str) -> str:
    """migra writes ``ALTER COLUMN c TYPE varchar(5) USING c::varchar(5)``: an explicit cast to
    a shorter ``varchar``/``char``/``bit`` *truncates* values silently, where the assignment
    cast the plain ``ALTER ... TYPE`` uses fails on them. The ``USING`` goes."""
    if type(stmt).__name__ != "AlterTableStmt" or len(stmt.cmds or ()) != 1:
        return statement
    cmd = stmt.cmds[0]
    if cmd.subtype != AlterTableType.AT_AlterColumnType:
        return statement
    using: Any = getattr(cmd.def_, "raw_default", None)
    if type(using).__name__ != "TypeCast" or type(using.arg).__name__ != "ColumnRef":
        return statement
    fields = [getattr(f, "sval", None) for f in using.arg.fields]
    names = [getattr(n, "sval", "") for n in using.typeName.names]
    if fields != [cmd.name] or not names or names[-1] not in _TRUNCATING_TYPES:
        return statement
    return _USING.sub(";", statement)


def _installed_extensions(conn: psycopg.Connection[Any]) -> set[str]:
    return {r[0] for r in conn.execute("SELECT extname FROM pg_extension").fetchall()}


def count_failing_rows(
    url: str, hazards: Sequence[Hazard], *, timeout: float = 120
) -> list[Hazard]:
    """`hazards` with the rows each ``fails-on-data`` check counts on the target (read only, each
    query bounded by `timeout` seconds); a check that cannot run (it names a column the same
    migration adds) leaves ``rows`` None."""
    out = []
    with connect(url) as conn:
        conn.execute("SET default_transaction_read_only = on")
        conn.execute(
            "SELECT set_config('statement_timeout', %s, false)", [str(int(timeout * 1000))]
        )
        for hazard in hazards:
            if hazard.kind != "fails-on-data" or hazard.check is None:
                out.append(hazard)
                continue
            try:
                row = conn.execute(hazard.check).fetchone()
            except psycopg.Error:
                out.append(hazard)
                continue
            out.append(hazard.counted(int(row[0]) if row is not None else None))
    return out


def _unsafe(hazards: Sequence[Hazard]) -> list[UnsafeStatement]:
    """The data-loss hazards, one per statement."""
    out: list[UnsafeStatement] = []
    seen: set[str] = set()
    for hazard in hazards:
        if hazard.kind == "data-loss" and hazard.statement not in seen:
            seen.add(hazard.statement)
            out.append(UnsafeStatement(hazard.statement, hazard.reason))
    return out


def diff_databases(
    target_url: str,
    declared_url: str,
    schemas: Sequence[Schema],
    *,
    renames: Renames | None = None,
    migrations: Path | None = None,
    unmanaged: Sequence[Unmanaged] = (),
) -> list[SchemaDiff]:
    """One `SchemaDiff` per schema (in `schema_order`), from the target to the declared database.

    `declared_url` is a database built from the declarations (see `throwaway_database`), with
    the old names of `renames` given back; their ``RENAME`` statements end each schema's diff.
    Objects matching `unmanaged` (or a schema's own `Schema.unmanaged` patterns) are left out;
    a drop of one that the declarations do not hold and no generated file of `migrations`
    created is an ``drops-object`` hazard.
    """
    renames = renames or Renames()
    try:
        from migra import Migration  # type: ignore[import-untyped]
    except ImportError as exc:
        raise missing_extras(exc) from None
    out: list[SchemaDiff] = []
    generated = generated_objects(migrations)
    with (
        connect(target_url) as target,
        connect(declared_url) as declared,
        _sqlalchemy_connection(target_url) as sa_target,
        _sqlalchemy_connection(declared_url) as sa_declared,
    ):
        installed = _installed_extensions(target)
        state = target_state(target)
        target_layout, declared_layout = partition_layout(target), partition_layout(declared)
        held = citus_tables(target)
        for schema in schema_order(schemas):
            migration = Migration(
                _inspector(sa_target, schema.name), _inspector(sa_declared, schema.name)
            )
            migration.set_safety(False)  # we classify destructive statements ourselves
            migration.add_all_changes()
            statements = fix_migra_text(
                [_normalize(s) for s in migration.statements], target, declared, schema.name
            )
            statements = fix_partitions(statements, target_layout, declared_layout)
            statements = _drops_before_replace(
                statements, replaced_routines(target, declared, schema.name)
            )
            statements = _fix_statements(statements)
            if isinstance(schema, Schema):
                statements = distribute(statements, schema, held)
            statements = fold_renames(statements, target)
            before, after = column_dependents(target, declared, schema.name, statements)
            if before:
                first = next(
                    (i for i, s in enumerate(statements) if "set data type" in s.lower()),
                    len(statements),
                )
                statements = statements[:first] + before + statements[first:]
            statements += after
            recreated = recreated_objects(statements)
            statements += recreated_index_statements(declared, recreated, statements)
            statements += sequence_statements(target, declared, schema.name)
            statements += identity_statements(target, declared, schema.name)
            statements += rls_force_statements(target, declared, schema.name)
            statements += view_option_statements(target, declared, schema.name, statements)
            statements += table_option_statements(
                target, declared, schema.name, recreated=recreated
            )
            statements += comment_statements(target, declared, schema.name, recreated=recreated)
            grants, revokes = privilege_statements(
                target, declared, schema.name, recreated=recreated
            )
            statements += grants
            ownership = Ownership(
                declared_objects(declared, schema.name),
                generated,
                (*unmanaged, *getattr(schema, "unmanaged_objects", ())),
            )
            statements, unowned = _ownership(statements, ownership, revokes)
            unowned += _lost_columns(statements, lost_view_columns(target, declared, schema.name))
            statements = _roles_first(statements, getattr(schema, "roles", ()))
            statements += renames.statements(schema.name)
            missing = [e for e in schema.extensions if e not in installed]
            if missing:
                statements = [
                    f"CREATE EXTENSION IF NOT EXISTS {_quote(e)} WITH SCHEMA public;"
                    for e in sorted(missing)
                ] + statements
            steps = plan_steps(statements, state)
            hazards = unowned + classify(
                [s for step in steps for s in step.statements],
                state,
                steps=[step.statements for step in steps if step.transaction],
            )
            unsafe = _unsafe(hazards)
            out.append(
                SchemaDiff(
                    schema.name,
                    tuple(statements),
                    tuple(unsafe),
                    tuple(sorted(schema_dependencies(schema))),
                    tuple(steps),
                    tuple(hazards),
                )
            )
    return out


def _ownership(
    statements: Sequence[str], ownership: Ownership, revokes: Sequence[Any]
) -> tuple[list[str], list[Hazard]]:
    """`statements` without those that drop or revoke what `ownership` leaves alone, and a
    ``drops-object`` hazard for each that drops a view, function, trigger, policy, sequence,
    grant or row-level security the declarations no longer hold (an index or a constraint only
    when no generated migration created it: removing a declared index is routine)."""
    revoked = {p.statement(revoke=True): p for p in revokes}
    again = recreated_in(statements)  # dropped to be created again: no drop at all
    kept: list[str] = []
    hazards: list[Hazard] = []
    for statement in statements:
        privilege = revoked.get(statement)
        if privilege is not None:
            if ownership.leaves_alone(("grant", privilege.role)):
                continue
            granted = {
                ("grant", f"{privilege.identity} {privilege.privilege} {privilege.role}"),
                ("grant", f"{privilege.identity} all {privilege.role}"),
            }
            what = f"revokes {privilege.what} on {privilege.identity} from {privilege.role}"
            hazards.append(_dropped(statement, what, generated=bool(granted & ownership.generated)))
            kept.append(statement)
            continue
        dropped = dropped_objects(statement)
        if dropped and all(ownership.leaves_alone(key) for key in dropped):
            continue
        for key in dropped:
            kind, identity = key
            if key in ownership.declared or key in again or ownership.leaves_alone(key):
                continue  # dropped to be created again, or left alone
            generated = key in ownership.generated
            if generated and kind in ("index", "constraint"):
                continue
            what = (
                f"switches off row level security on {identity}"
                if kind == "row level security"
                else f"drops {kind} {identity}"
            )
            hazards.append(_dropped(statement, what, generated=generated))
        kept.append(statement)
    return kept, hazards


def _lost_columns(statements: Sequence[str], lost: dict[str, list[str]]) -> list[Hazard]:
    """A ``breaking`` hazard for each view whose new definition lacks columns it had."""
    out = []
    for view, columns in lost.items():
        schema, _, name = view.partition(".")
        quoted = f"{_quote(schema)}.{_quote(name)}".lower()
        plain = f"{schema}.{_quote(name) if name != name.lower() else name}".lower()
        where = next(
            (
                s
                for s in statements
                if s.lower().startswith(("create", "drop"))
                and (quoted in s.lower() or plain in s.lower())
            ),
            statements[0] if statements else "",
        )
        names = ", ".join(columns)
        out.append(
            Hazard(
                "breaking",
                where,
                f"view {view} loses column{'s' if len(columns) > 1 else ''} {names}: code "
                "that reads them fails",
                RECIPES["drop-code"],
            )
        )
    return out


def _dropped(statement: str, what: str, *, generated: bool) -> Hazard:
    if generated:
        return Hazard(
            "drops-object",
            statement,
            f"{what}, removed from the declarations",
            RECIPES["drop-declared"],
        )
    return Hazard(
        "drops-object",
        statement,
        f"{what}, which no declaration owns and no generated migration created (made by hand?)",
        RECIPES["drops-object"],
    )


def _roles_first(statements: Sequence[str], roles: Sequence[Role]) -> list[str]:
    """`statements`, preceded by the idempotent creation of each declared role they grant to or
    name in a policy: a fresh database gets the role from the migration itself."""
    named: set[str] = set()
    for statement in statements:
        named |= _roles_named(statement)
    return [r.create_statement() for r in roles if r.name in named] + list(statements)


def _roles_named(statement: str) -> set[str]:
    """Roles a ``GRANT`` gives to or a ``CREATE/ALTER POLICY`` applies to."""
    try:
        parsed = parse_sql(statement)
    except ParseError:
        return set()
    out: set[str] = set()
    for raw in parsed:
        stmt: Any = raw.stmt
        kind = type(stmt).__name__
        if kind == "GrantStmt" and stmt.is_grant:
            specs = stmt.grantees
        elif kind in ("CreatePolicyStmt", "AlterPolicyStmt"):
            specs = stmt.roles
        else:
            continue
        out |= {spec.rolename for spec in specs or () if getattr(spec, "rolename", None)}
    return out
