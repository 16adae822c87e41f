"""Declared renames: ``Column(renamed_from="phone")`` and ``@schema.table("New",
renamed_from="Old")`` make ``nxdata diff`` write ``RENAME`` (the data stays) instead of a drop
and an add (the data goes).

How: while the target still has the old name (and not the new one), the throwaway database
built from the declarations gets the old names back (``ALTER ... RENAME`` right after it is
built: PostgreSQL carries the rename into every index and constraint definition), so migra sees
no difference in the renamed objects themselves; the renames are appended to the migration.
Indexes and constraints whose names derive from the renamed table or column (``IDX_Old_x`` →
``IDX_New_x``) would come out as a drop and a re-create: a pair with the same definition is
folded into ``ALTER INDEX ... RENAME`` / ``RENAME CONSTRAINT``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from ..table import Schema, _quote
from .hazards import parse
from .inspect import TableKey, TargetState

try:
    from pglast.enums.parsenodes import AlterTableType, ConstrType, ObjectType
except ImportError:  # pragma: no cover - hazards raised the clear error already
    raise

__all__ = ["Renames", "declared_renames", "fold_renames", "rename_hints"]


@dataclass(frozen=True, slots=True)
class Renames:
    """The renames a diff applies: tables ``(schema, old) → new`` and columns ``(schema, table
    as the target names it, old) → new``."""

    tables: dict[TableKey, str] = field(default_factory=dict)
    columns: dict[tuple[str, str, str], str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.tables or self.columns)

    def undo(self) -> list[str]:
        """Statements that give a database built from the declarations the old names back."""
        out = []
        old_of = {(s, new): old for (s, old), new in self.tables.items()}
        for (schema, table, old), new in sorted(self.columns.items()):
            current = next(
                (n for (s, o), n in self.tables.items() if (s, o) == (schema, table)), table
            )
            out.append(
                f"ALTER TABLE {_quote(schema)}.{_quote(current)} "
                f"RENAME COLUMN {_quote(new)} TO {_quote(old)}"
            )
        for (schema, new), old in sorted(old_of.items()):
            out.append(f"ALTER TABLE {_quote(schema)}.{_quote(new)} RENAME TO {_quote(old)}")
        return out

    def statements(self, schema: str) -> list[str]:
        """The renames of one schema, for the end of its migration: columns, then tables."""
        out = []
        for (s, table, old), new in sorted(self.columns.items()):
            if s == schema:
                out.append(
                    f"ALTER TABLE {_quote(s)}.{_quote(table)} RENAME COLUMN {_quote(old)} "
                    f"TO {_quote(new)};"
                )
        for (s, old), new in sorted(self.tables.items()):
            if s == schema:
                out.append(f"ALTER TABLE {_quote(s)}.{_quote(old)} RENAME TO {_quote(new)};")
        return out


def declared_renames(schemas: Sequence[Schema], state: TargetState) -> Renames:
    """The declared renames that the target (`state`) still has to make: the old name exists
    there and the new one does not."""
    tables: dict[TableKey, str] = {}
    columns: dict[tuple[str, str, str], str] = {}
    names = {(s, t): {c[2] for c in state.column_types if c[:2] == (s, t)} for s, t in state.tables}
    for schema in schemas:
        for table in schema:
            current = table.name
            old_table = table.renamed_from
            if (
                old_table
                and (schema.name, old_table) in state.tables
                and (schema.name, table.name) not in state.tables
            ):
                tables[(schema.name, old_table)] = table.name
                current = old_table
            existing = names.get((schema.name, current))
            if existing is None:
                continue
            for column in table.columns:
                old = column.options.renamed_from
                if old and old in existing and column.name not in existing:
                    columns[(schema.name, current, old)] = column.name
    return Renames(tables, columns)


def fold_renames(statements: Sequence[str], conn: psycopg.Connection[Any]) -> list[str]:
    """Replace a drop and a re-create of the same index or constraint under a new name by a
    rename: ``drop index A`` + ``CREATE INDEX B`` of the same definition → ``ALTER INDEX A
    RENAME TO B``; the same for CHECK and foreign keys, and for a primary key or unique
    constraint re-created from a unique index. `conn` reads the target's definitions."""
    parsed = [(s, _one(s)) for s in statements]
    dropped_indexes: dict[str, tuple[str, str]] = {}  # name → (schema, statement)
    dropped_constraints: dict[tuple[TableKey, str], str] = {}
    for statement, stmt in parsed:
        kind = type(stmt).__name__
        if kind == "DropStmt" and stmt.removeType == ObjectType.OBJECT_INDEX:
            for obj in stmt.objects or ():
                parts = [p.sval for p in obj]
                dropped_indexes[parts[-1]] = (parts[0] if len(parts) > 1 else "public", statement)
        elif kind == "AlterTableStmt" and len(stmt.cmds or ()) == 1:
            cmd = stmt.cmds[0]
            if cmd.subtype == AlterTableType.AT_DropConstraint:
                dropped_constraints[(_table(stmt.relation), cmd.name)] = statement
    if not dropped_indexes and not dropped_constraints:
        return list(statements)
    index_defs = _index_definitions(conn, {s for s, _ in dropped_indexes.values()})
    constraint_defs = _constraint_definitions(conn, {k[0] for k in dropped_constraints})
    removed: set[str] = set()
    replaced: dict[str, str] = {}
    renamed_constraints: dict[tuple[TableKey, str], str] = {}
    for statement, stmt in parsed:
        kind = type(stmt).__name__
        if kind == "IndexStmt":
            schema = stmt.relation.schemaname or "public"
            definition = _index_shape(statement)
            # A primary key or unique constraint first: renaming it renames its index too.
            for (key, old), drop in dropped_constraints.items():
                found = constraint_defs.get((key, old))
                if drop in removed or found is None or key[0] != schema or found[0] not in "pu":
                    continue
                if _index_shape(found[2]) == definition:
                    removed.add(drop)
                    if old in dropped_indexes:
                        removed.add(dropped_indexes[old][1])
                    replaced[statement] = (
                        f"ALTER TABLE {_quote(key[0])}.{_quote(key[1])} RENAME CONSTRAINT "
                        f"{_quote(old)} TO {_quote(stmt.idxname)};"
                    )
                    renamed_constraints[(key, stmt.idxname)] = old
                    break
            else:
                for old, (old_schema, drop) in dropped_indexes.items():
                    if drop in removed or old_schema != schema:
                        continue
                    if _index_shape(index_defs.get((schema, old), "")) == definition:
                        removed.add(drop)
                        replaced[statement] = (
                            f"ALTER INDEX {_quote(schema)}.{_quote(old)} "
                            f"RENAME TO {_quote(stmt.idxname)};"
                        )
                        break
        elif kind == "AlterTableStmt" and len(stmt.cmds or ()) == 1:
            cmd = stmt.cmds[0]
            key = _table(stmt.relation)
            if cmd.subtype == AlterTableType.AT_AddConstraint:
                constraint = cmd.def_
                if constraint.indexname and (key, constraint.conname) in renamed_constraints:
                    removed.add(statement)  # USING INDEX of an index renamed with its constraint
                    continue
                if constraint.contype not in (ConstrType.CONSTR_CHECK, ConstrType.CONSTR_FOREIGN):
                    continue
                definition = _constraint_shape(statement)
                for (drop_key, old), drop in dropped_constraints.items():
                    found = constraint_defs.get((drop_key, old))
                    if drop in removed or drop_key != key or found is None:
                        continue
                    if _constraint_shape(found[1]) == definition:
                        removed.add(drop)
                        replaced[statement] = (
                            f"ALTER TABLE {_quote(key[0])}.{_quote(key[1])} RENAME CONSTRAINT "
                            f"{_quote(old)} TO {_quote(constraint.conname)};"
                        )
                        renamed_constraints[(key, constraint.conname)] = old
                        break
            elif cmd.subtype == AlterTableType.AT_ValidateConstraint and (
                (key, cmd.name) in renamed_constraints
            ):
                removed.add(statement)  # renamed, not new: it is valid already
    return [replaced.get(s, s) for s in statements if s not in removed]


def rename_hints(statements: Sequence[str], state: TargetState) -> list[str]:
    """When a diff drops a column (table) and adds one of the same type (columns) in the same
    table (schema), the declaration that would make it a rename instead."""
    dropped: dict[TableKey, list[str]] = {}
    added: dict[TableKey, list[tuple[str, str]]] = {}
    dropped_tables: list[TableKey] = []
    created_tables: list[TableKey] = []
    for statement in statements:
        stmt = _one(statement)
        kind = type(stmt).__name__
        if kind == "DropStmt" and stmt.removeType == ObjectType.OBJECT_TABLE:
            for obj in stmt.objects or ():
                parts = [p.sval for p in obj]
                dropped_tables.append((parts[0] if len(parts) > 1 else "public", parts[-1]))
        elif kind == "CreateStmt":
            created_tables.append(_table(stmt.relation))
        elif kind == "AlterTableStmt":
            key = _table(stmt.relation)
            for cmd in stmt.cmds or ():
                if cmd.subtype == AlterTableType.AT_DropColumn:
                    dropped.setdefault(key, []).append(cmd.name)
                elif cmd.subtype == AlterTableType.AT_AddColumn:
                    new_type = " ".join(n.sval for n in cmd.def_.typeName.names)
                    added.setdefault(key, []).append((cmd.def_.colname, new_type))
    hints = []
    for key, names in dropped.items():
        for old in names:
            old_type = state.column_types.get((key[0], key[1], old), "")
            for new, new_type in added.get(key, []):
                if _same_type(old_type, new_type):
                    hints.append(
                        f"{key[1]}.{old} dropped and {key[1]}.{new} added with the same type: if "
                        f"it is a rename, declare `{new}: Annotated[..., "
                        f'nx.Column(renamed_from="{old}")]` and diff again (the data stays)'
                    )
    for old_key in dropped_tables:
        for new_key in created_tables:
            if old_key[0] == new_key[0]:
                hints.append(
                    f"table {old_key[1]} dropped and {new_key[1]} created: if it is a rename, "
                    f'declare @schema.table("{new_key[1]}", renamed_from="{old_key[1]}") and '
                    "diff again"
                )
    return hints


def _same_type(old: str, new: str) -> bool:
    aliases = {"integer": "int4", "bigint": "int8", "text": "text", "boolean": "bool"}
    old = aliases.get(old, old).split("(")[0].strip()
    new = new.replace("pg_catalog ", "").strip()
    return bool(old) and aliases.get(new, new) == old


def _one(statement: str) -> Any:
    parsed = parse(statement)
    return parsed[0] if len(parsed) == 1 else None


def _table(relation: Any) -> TableKey:
    return (relation.schemaname or "public", relation.relname)


_INDEX_NAME = re.compile(
    r"^\s*CREATE\s+(UNIQUE\s+)?INDEX\s+(CONCURRENTLY\s+)?(IF NOT EXISTS\s+)?"
    r"(\"(?:[^\"]|\"\")+\"|\S+)\s+ON\s+",
    re.I,
)


def _index_shape(definition: str) -> str:
    """An index definition without its name (and ``;``), to compare two of them."""
    text = _INDEX_NAME.sub(lambda m: f"CREATE {m.group(1) or ''}INDEX ? ON ", definition, count=1)
    return " ".join(text.strip().rstrip(";").split())


_CONSTRAINT = re.compile(
    r"^\s*alter\s+table\s+\S+\s+add\s+constraint\s+(\"(?:[^\"]|\"\")+\"|\S+)\s+", re.I
)


def _constraint_shape(statement_or_definition: str) -> str:
    """A CHECK or foreign key definition (``pg_get_constraintdef``'s form), without ``NOT
    VALID``, to compare a migra statement with a target's constraint."""
    text = _CONSTRAINT.sub("", statement_or_definition, count=1).strip().rstrip(";")
    text = re.sub(r"\s+not\s+valid$", "", text, flags=re.I)
    return " ".join(text.split())


def _index_definitions(
    conn: psycopg.Connection[Any], schemas: set[str]
) -> dict[tuple[str, str], str]:
    with conn.transaction():
        conn.execute("SET LOCAL search_path = pg_catalog")  # qualified, as migra prints them
        rows = conn.execute(
            "SELECT n.nspname, c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = ANY(%s)",
            [sorted(schemas)],
        ).fetchall()
    return {(r[0], r[1]): r[2] for r in rows}


def _constraint_definitions(
    conn: psycopg.Connection[Any], tables: set[TableKey]
) -> dict[tuple[TableKey, str], tuple[str, str, str]]:
    """(contype, pg_get_constraintdef, index definition) of the constraints of `tables`."""
    if not tables:
        return {}
    with conn.transaction():
        conn.execute("SET LOCAL search_path = pg_catalog")
        rows = conn.execute(
            "SELECT n.nspname, t.relname, k.conname, k.contype, pg_get_constraintdef(k.oid),"
            " coalesce(pg_get_indexdef(k.conindid), '') FROM pg_constraint k"
            " JOIN pg_class t ON t.oid = k.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace"
            " WHERE n.nspname = ANY(%s)",
            [sorted({s for s, _ in tables})],
        ).fetchall()
    return {((r[0], r[1]), r[2]): (r[3], r[4], r[5]) for r in rows}
