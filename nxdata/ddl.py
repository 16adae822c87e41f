"""DDL from declarations: everything a schema declares, dependency-ordered.

``create_statements(schemas)`` gives the statements that build a fresh database from the
declarations alone, in this order: roles (created only when missing), extensions, schemas,
sequences, functions (bodies not checked, so they may name tables declared later), tables with
their partitions, indexes and comments (after the tables their foreign keys point to; foreign keys
inside a cycle are added after all tables), sequence ownership, views (in declaration order),
triggers, row-level security and policies, grants. With ``distribute=True`` the Citus statements
of distributed and reference tables come after the tables, and their foreign keys after those
(see `nxdata.citus`). The output is deterministic: same declarations, same text.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .citus import distribution_statement
from .objects import sql_string
from .table import Schema, Table, _quote

__all__ = [
    "create_sql",
    "create_statements",
    "distribution_statements",
    "order_tables",
    "table_statements",
]


def _tables(items: Iterable[Schema | Table[Any]]) -> list[Table[Any]]:
    out: dict[str, Table[Any]] = {}
    for item in items:
        for table in item.tables.values() if isinstance(item, Schema) else [item]:
            out[table.qualified_name] = table
    return [out[name] for name in sorted(out)]


def order_tables(tables: Iterable[Table[Any]]) -> tuple[list[Table[Any]], set[tuple[str, str]]]:
    """Tables sorted so FK targets come first; also the (table, fk name) pairs left for ALTER
    because they close a cycle."""
    pending = {t.qualified_name: t for t in tables}
    placed: list[Table[Any]] = []
    placed_names: set[str] = set()
    deferred: set[tuple[str, str]] = set()

    def deps(table: Table[Any]) -> set[str]:
        return {
            fk.target.qualified_name
            for fk in table.foreign_keys
            if fk.target.qualified_name != table.qualified_name
            and fk.target.qualified_name in pending
            and (table.qualified_name, fk.name) not in deferred
        }

    while pending:
        ready = sorted(n for n, t in pending.items() if deps(t) <= placed_names)
        if not ready:
            # A cycle: defer the foreign keys of the alphabetically first waiting table.
            name = sorted(pending)[0]
            for fk in pending[name].foreign_keys:
                if fk.target.qualified_name not in placed_names:
                    deferred.add((name, fk.name))
            continue
        for name in ready:
            placed.append(pending.pop(name))
            placed_names.add(name)
    return placed, deferred


def _column_sql(table: Table[Any]) -> list[str]:
    lines = []
    for c in table.columns:
        parts = [_quote(c.name), c.sql_type]
        if c.identity:
            parts.append(f"GENERATED {c.identity.upper()} AS IDENTITY")
        if not c.nullable:
            parts.append("NOT NULL")
        if c.server_default is not None and not c.identity:
            parts.append(f"DEFAULT {c.server_default}")
        lines.append(" ".join(parts))
    return lines


def _columns(cols: Iterable[str]) -> str:
    return ", ".join(_quote(c) for c in cols)


def _fk_sql(fk: Any) -> str:
    sql = (
        f"CONSTRAINT {_quote(fk.name)} FOREIGN KEY ({_columns(fk.columns)}) "
        f"REFERENCES {fk.target.sql_name} ({_columns(fk.ref_columns)})"
    )
    if fk.on_delete != "no action":
        sql += f" ON DELETE {fk.on_delete.upper()}"
    if fk.on_update != "no action":
        sql += f" ON UPDATE {fk.on_update.upper()}"
    return sql


def table_statements(
    table: Table[Any],
    *,
    deferred: set[tuple[str, str]] = frozenset(),  # type: ignore[assignment]
) -> tuple[list[str], list[str]]:
    """(CREATE TABLE + CREATE INDEX statements, ALTER TABLE statements for deferred FKs)."""
    body = _column_sql(table)
    if table.primary_key:
        body.append(
            f"CONSTRAINT {_quote('PK_' + table.name)} PRIMARY KEY ({_columns(table.primary_key)})"
        )
    for unique in table.uniques:
        nnd = " NULLS NOT DISTINCT" if unique.nulls_not_distinct else ""
        body.append(
            f"CONSTRAINT {_quote(unique.name or '')} UNIQUE{nnd} ({_columns(unique.columns)})"
        )
    for check in table.checks:
        body.append(f"CONSTRAINT {_quote(check.name or '')} CHECK ({check.expression})")
    later = []
    for fk in table.foreign_keys:
        if (table.qualified_name, fk.name) in deferred:
            later.append(f"ALTER TABLE {table.sql_name} ADD {_fk_sql(fk)}")
        else:
            body.append(_fk_sql(fk))
    partitioning = table.partitioning
    partition_by = f" {partitioning.clause}" if partitioning is not None else ""
    statements = [
        f"CREATE TABLE {table.sql_name} (\n    " + ",\n    ".join(body) + f"\n){partition_by}"
    ]
    if partitioning is not None:
        # Before the indexes: an index made on the parent is made on each partition too.
        statements += [p.create_statement(table) for p in partitioning.partitions]
    if table.comment:
        statements.append(f"COMMENT ON TABLE {table.sql_name} IS {sql_string(table.comment)}")
    for column, comment in table.column_comments.items():
        statements.append(
            f"COMMENT ON COLUMN {table.sql_name}.{_quote(column)} IS {sql_string(comment)}"
        )
    for index in table.indexes:
        unique_kw = "UNIQUE " if index.unique else ""
        using = f" USING {index.method}" if index.method else ""
        where = f" WHERE {index.where}" if index.where else ""
        statements.append(
            f"CREATE {unique_kw}INDEX {_quote(index.name or '')} ON {table.sql_name}{using} "
            f"({index.expression or _columns(index.columns)}){where}"
        )
    return statements, later


def create_statements(
    items: Iterable[Schema | Table[Any]], *, distribute: bool = False
) -> list[str]:
    """Every statement needed to build the given schemas/tables in an empty database.

    With ``distribute=True``, the tables declared ``distributed_by=`` or ``reference_table=True``
    are handed to Citus (`nxdata.citus.distribution_statement`: a NOTICE and nothing more on a
    server without Citus) after the tables and before the foreign keys a cycle defers. Without
    it (the default, and what ``nxdata diff``'s throwaway database uses) there is no Citus SQL.
    """
    items = list(items)
    tables = _tables(items)
    schemas = sorted(
        {t.schema.name for t in tables} | {s.name for s in items if isinstance(s, Schema)}
    )
    extensions = sorted(
        {ext for t in tables for ext in t.schema.extensions}
        | {ext for s in items if isinstance(s, Schema) for ext in s.extensions}
    )
    declared = _schemas_of(items)
    roles = {role.name: role for schema in declared for role in schema.roles}
    statements = [roles[name].create_statement().rstrip(";") for name in sorted(roles)]
    statements += [f"CREATE EXTENSION IF NOT EXISTS {_quote(ext)}" for ext in extensions]
    statements += [f"CREATE SCHEMA IF NOT EXISTS {_quote(s)}" for s in schemas if s != "public"]
    for schema in declared:
        for sequence in schema.sequences.values():
            statements += sequence.create_statements()
    functions = [f for schema in declared for f in schema.functions.values()]
    if functions:
        # Bodies are checked when called, not here: a function may name a table created below.
        statements.append("SET check_function_bodies = off")
        for function in functions:
            statements += function.create_statements()
    ordered, deferred = order_tables(tables)
    if distribute:
        # Citus checks a foreign key when it is added or its table distributed: those of its
        # tables are added once every table is where it belongs.
        deferred |= {
            (t.qualified_name, fk.name)
            for t in ordered
            for fk in t.foreign_keys
            if _in_citus(t) or _in_citus(fk.target)
        }
    alters: list[str] = []
    for table in ordered:
        created, later = table_statements(table, deferred=deferred)
        statements += created
        alters += later
    if distribute:
        statements += distribution_statements(ordered)
    statements += alters
    for schema in declared:
        for sequence in schema.sequences.values():
            owner = sequence.owner_sql()
            if owner is not None:
                statements.append(f"ALTER SEQUENCE {sequence.sql_name} OWNED BY {owner}")
    views = sorted((v for schema in declared for v in schema.views.values()), key=lambda v: v.order)
    for view in views:
        statements += view.create_statements()
    for table in ordered:
        statements += table_security_statements(table)
    for schema in declared:
        statements += [g.statement().rstrip(";") for g in schema.resolved_grants()]
    return statements


def distribution_statements(tables: Iterable[Table[Any]]) -> list[str]:
    """The Citus statements of `tables` (see `nxdata.citus.distribution_statement`): reference
    tables first (distributed tables may reference them), then distributed tables, each group
    in the order given (foreign key targets first, as `order_tables` sorts them)."""
    tables = list(tables)
    ordered = [t for t in tables if t.reference_table] + [
        t for t in tables if t.distributed_by is not None
    ]
    return [s for t in ordered if (s := distribution_statement(t)) is not None]


def _in_citus(table: Table[Any]) -> bool:
    return table.distributed_by is not None or table.reference_table


def _schemas_of(items: Iterable[Schema | Table[Any]]) -> list[Schema]:
    """The schemas of `items` (a table's schema counts only for its own objects: its triggers,
    policies and grants come with the table)."""
    out = {item.name: item for item in items if isinstance(item, Schema)}
    return [out[name] for name in sorted(out)]


def table_security_statements(table: Table[Any]) -> list[str]:
    """A table's triggers, row-level security and policies."""
    out = [trigger.create_statement(table) for trigger in table.triggers]
    if table.row_level_security:
        out.append(f"ALTER TABLE {table.sql_name} ENABLE ROW LEVEL SECURITY")
        if table.row_level_security == "force":
            out.append(f"ALTER TABLE {table.sql_name} FORCE ROW LEVEL SECURITY")
    out += [policy.create_statement(table) for policy in table.policies]
    return out


def create_sql(items: Iterable[Schema | Table[Any]], *, distribute: bool = False) -> str:
    """`create_statements` as one SQL script."""
    return "".join(s + ";\n\n" for s in create_statements(items, distribute=distribute))
