"""Citus in a diff: the statements that distribute the declared tables, where they belong.

The throwaway database is plain PostgreSQL (Citus never runs there), so migra sees no
distribution. `distribute` adds it to a schema's statements: one
`nxdata.citus.distribution_statement` per table declared ``distributed_by=`` or
``reference_table=True`` that the statements create, and — when the target has the ``citus``
extension, whose ``pg_dist_partition`` says what is distributed — per existing table that Citus
does not hold as declared yet (``alter_distributed_table`` when only the column differs). They go
after the tables, indexes and keys, before the first foreign key: Citus checks a foreign key
against the distribution of both its tables. Reference tables come first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from ..citus import distribution_statement
from ..ddl import order_tables
from ..errors import MigrationError
from ..table import Schema, Table
from ._extras import missing_extras
from .hazards import parse

try:
    from pglast.enums.parsenodes import ConstrType
except ImportError as exc:
    raise missing_extras(exc) from None

__all__ = ["CitusTable", "citus_tables", "distribute"]


@dataclass(frozen=True, slots=True)
class CitusTable:
    """How Citus holds a table: ``kind`` is ``distributed``, ``reference`` or ``local`` (a Citus
    local table); ``column`` the distribution column of a distributed one."""

    kind: str
    column: str | None = None


_DIST = """
SELECT n.nspname || '.' || c.relname,
       CASE WHEN p.partmethod = 'h' THEN 'distributed'
            WHEN p.repmodel = 't' THEN 'reference' ELSE 'local' END,
       CASE WHEN p.partmethod = 'h' THEN column_to_column_name(p.logicalrelid, p.partkey) END
  FROM pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
"""


def citus_tables(conn: psycopg.Connection[Any]) -> dict[str, CitusTable] | None:
    """``schema.table`` → `CitusTable` for every table Citus holds; None when the database has
    no ``citus`` extension."""
    installed = conn.execute("SELECT FROM pg_extension WHERE extname = 'citus'").fetchone()
    if installed is None:
        return None
    return {r[0]: CitusTable(r[1], r[2]) for r in conn.execute(_DIST).fetchall()}


def _created(statements: Sequence[str]) -> set[str]:
    out = set()
    for statement in statements:
        for node in parse(statement):
            if type(node).__name__ == "CreateStmt":
                relation: Any = node.relation
                out.add(f"{relation.schemaname or 'public'}.{relation.relname}")
    return out


def _is_foreign_key(statement: str) -> bool:
    for node in parse(statement):
        if type(node).__name__ != "AlterTableStmt":
            continue
        for cmd in getattr(node, "cmds", None) or ():
            if getattr(getattr(cmd, "def_", None), "contype", None) == ConstrType.CONSTR_FOREIGN:
                return True
    return False


def _quote_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _statement_for(
    table: Table[Any], created: set[str], held: dict[str, CitusTable] | None
) -> str | None:
    if table.qualified_name in created:
        return distribution_statement(table)
    if held is None:
        return None  # no Citus on the target: its tables are local, as the first file left them
    current = held.get(table.qualified_name)
    if current is None and table.renamed_from is not None:
        current = held.get(f"{table.schema.name}.{table.renamed_from}")
    wanted = "distributed" if table.distributed_by is not None else "reference"
    if current is None or current.kind == "local":
        return distribution_statement(table)
    if current.kind != wanted:
        raise MigrationError(
            f"{table.qualified_name} is a {current.kind} table in Citus and declared {wanted}: "
            "change it by hand (undistribute_table, then create_distributed_table or "
            "create_reference_table) and mark that migration applied"
        )
    if wanted == "distributed" and current.column != table.distributed_by:
        return (
            f"SELECT alter_distributed_table({_quote_string(table.sql_name)}, "
            f"distribution_column := {_quote_string(table.distributed_by or '')})"
        )
    return None


def distribute(
    statements: Sequence[str], schema: Schema, held: dict[str, CitusTable] | None
) -> list[str]:
    """`statements` (one schema's diff) with the Citus statements of `schema`'s tables added
    before the first foreign key (see the module docstring). `held` is `citus_tables` of the
    target."""
    tables = [
        t for t in schema.tables.values() if t.distributed_by is not None or t.reference_table
    ]
    if not tables:
        return list(statements)
    created = _created(statements)
    ordered, _ = order_tables(tables)
    ordered = [t for t in ordered if t.reference_table] + [
        t for t in ordered if t.distributed_by is not None
    ]
    added = [
        s.rstrip(";") + ";" for t in ordered if (s := _statement_for(t, created, held)) is not None
    ]
    if not added:
        return list(statements)
    at = next((i for i, s in enumerate(statements) if _is_foreign_key(s)), len(statements))
    return [*statements[:at], *added, *statements[at:]]
