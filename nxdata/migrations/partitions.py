"""Partitioned tables in a diff: what migra writes for them, fixed.

migra sees each partition as a table of its own, with the indexes and constraints PostgreSQL
made on it for its parent, and writes them all out:

- a parent's index as ``CREATE INDEX ... ON ONLY`` (an invalid index that no partition gets),
  its primary key and unique constraints as a unique index plus ``ADD CONSTRAINT ... USING
  INDEX`` (which PostgreSQL refuses on a partitioned table);
- every partition's copy of them (``Event_2026_01_pkey``, the CHECKs), and the copies of a
  foreign key that references a partitioned table (``Ref_event_id_created_at_fkey1``), which
  PostgreSQL makes itself, so the file fails with "already exists";
- ``NOT VALID`` foreign keys on a partitioned table (PostgreSQL 17 and older refuse them);
- a ``DROP TABLE`` for each partition the declarations do not list.

`fix_partitions` rewrites the first (plain ``CREATE INDEX ... ON`` the parent, which builds and
attaches one index per partition; ``ADD CONSTRAINT ... PRIMARY KEY (...)`` as the declared
database has it), drops the copies (PostgreSQL makes them when the parent gets the index or
constraint, or a partition is created), adds foreign keys of partitioned tables valid at once,
and leaves partitions the declarations do not list alone: partitions come and go with the data
(created ahead by a job, detached by retention), so one that is not declared is no drift.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from ..table import _quote
from ._extras import missing_extras

try:
    from pglast import parse_sql
    from pglast.enums.parsenodes import AlterTableType, ConstrType, ObjectType
    from pglast.parser import ParseError
except ImportError as exc:
    raise missing_extras(exc) from None

__all__ = ["PartitionLayout", "fix_partitions", "partition_layout"]


@dataclass(frozen=True, slots=True)
class PartitionLayout:
    """What a database holds of partitioned tables, names as ``schema.name``.

    ``partitioned``: the partitioned tables; ``partitions``: their partitions; ``indexes``: the
    indexes of partitions; ``copies``: (``schema.table``, constraint) of the constraints
    PostgreSQL made for a parent's (foreign keys that reference a partitioned table, and the
    constraints of partitions); ``keys``: (``schema.table``, constraint) → definition of the
    primary keys and unique constraints of partitioned tables.
    """

    partitioned: frozenset[str] = frozenset()
    partitions: frozenset[str] = frozenset()
    indexes: frozenset[str] = frozenset()
    copies: frozenset[tuple[str, str]] = frozenset()
    keys: dict[tuple[str, str], str] = field(default_factory=dict)

    def __or__(self, other: PartitionLayout) -> PartitionLayout:
        return PartitionLayout(
            self.partitioned | other.partitioned,
            self.partitions | other.partitions,
            self.indexes | other.indexes,
            self.copies | other.copies,
            {**other.keys, **self.keys},
        )


_RELATIONS = """
SELECT n.nspname || '.' || c.relname, c.relkind = 'p', c.relispartition
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p') AND (c.relkind = 'p' OR c.relispartition)
"""
_INDEXES = """
SELECT n.nspname || '.' || i.relname FROM pg_index x
  JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
  JOIN pg_namespace n ON n.oid = i.relnamespace
 WHERE t.relispartition
"""
_CONSTRAINTS = """
SELECT n.nspname || '.' || t.relname, k.conname, k.contype, t.relkind = 'p',
       k.conparentid <> 0 OR t.relispartition, pg_get_constraintdef(k.oid)
  FROM pg_constraint k JOIN pg_class t ON t.oid = k.conrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
 WHERE k.conparentid <> 0 OR t.relispartition OR (t.relkind = 'p' AND k.contype IN ('p', 'u'))
"""


def partition_layout(conn: psycopg.Connection[Any]) -> PartitionLayout:
    """The `PartitionLayout` of `conn`'s database (every schema: a partition may live in
    another schema than its parent)."""
    relations = conn.execute(_RELATIONS).fetchall()
    indexes = conn.execute(_INDEXES).fetchall()
    constraints = conn.execute(_CONSTRAINTS).fetchall()
    return PartitionLayout(
        partitioned=frozenset(r[0] for r in relations if r[1]),
        partitions=frozenset(r[0] for r in relations if r[2]),
        indexes=frozenset(r[0] for r in indexes),
        copies=frozenset((r[0], r[1]) for r in constraints if r[4]),
        keys={(r[0], r[1]): r[5] for r in constraints if r[3] and r[2] in ("p", "u")},
    )


def _relation(relation: Any) -> str:
    return f"{relation.schemaname or 'public'}.{relation.relname}"


def _names(node: Any) -> str:
    items = node if isinstance(node, tuple | list) else getattr(node, "objname", None) or ()
    names = [str(getattr(p, "sval", "")) for p in items]
    return ".".join(names if len(names) > 1 else ["public", *names])


_ON_ONLY = re.compile(r"\s+ON\s+ONLY\s+", re.IGNORECASE)
_NOT_VALID = re.compile(r"\s+NOT\s+VALID\s*;$", re.IGNORECASE)


def fix_partitions(
    statements: Sequence[str], target: PartitionLayout, declared: PartitionLayout
) -> list[str]:
    """migra's `statements` with its partitioned tables fixed (see the module docstring):
    `target` is the layout of the database being migrated, `declared` that of the throwaway
    database built from the declarations."""
    both = target | declared
    if not (both.partitioned or both.copies):
        return list(statements)
    out: list[str] = []
    made_valid: set[tuple[str, str]] = set()
    for statement in statements:
        try:
            parsed = parse_sql(statement)
        except ParseError:
            out.append(statement)
            continue
        if len(parsed) != 1:
            out.append(statement)
            continue
        node: Any = parsed[0].stmt
        kind = type(node).__name__
        if kind == "CreateStmt":
            out.append(statement)  # a new parent, or a declared partition that is missing
        elif kind == "DropStmt":
            if not _drops_copies(node, both):
                out.append(statement)
        elif kind == "IndexStmt":
            table = _relation(node.relation)
            if table in both.partitions or (table, node.idxname) in declared.keys:
                continue  # a partition's copy; or a key's index, made by its constraint
            if table in declared.partitioned and not node.relation.inh:
                statement = _ON_ONLY.sub(" ON ", statement, count=1)
            out.append(statement)
        elif kind == "CreateTrigStmt":
            if _relation(node.relation) not in both.partitions:
                out.append(statement)
        elif kind == "AlterTableStmt":
            fixed = _alter(node, statement, both, declared, made_valid)
            if fixed is not None:
                out.append(fixed)
        else:
            out.append(statement)
    return out


def _drops_copies(node: Any, layout: PartitionLayout) -> bool:
    """Whether a ``DROP`` only removes partitions (left alone), indexes, triggers or policies of
    partitions (copies of their parent's), or the indexes of a partitioned table's keys."""
    objects = [_names(obj) for obj in node.objects or ()]
    if not objects:
        return False
    if node.removeType == ObjectType.OBJECT_TABLE:
        return all(name in layout.partitions for name in objects)
    if node.removeType == ObjectType.OBJECT_INDEX:
        # (a partitioned table's key's index goes with the key's DROP CONSTRAINT)
        keys = {f"{table.partition('.')[0]}.{name}" for table, name in layout.keys}
        return all(name in layout.indexes or name in keys for name in objects)
    if node.removeType in (ObjectType.OBJECT_TRIGGER, ObjectType.OBJECT_POLICY):
        return all(name.rpartition(".")[0] in layout.partitions for name in objects)
    return False


def _alter(
    node: Any,
    statement: str,
    both: PartitionLayout,
    declared: PartitionLayout,
    made_valid: set[tuple[str, str]],
) -> str | None:
    """An ``ALTER TABLE`` fixed, or None when it goes."""
    table = _relation(node.relation)
    if table in both.partitions:
        return None  # the parent's change reaches its partitions
    cmds: Sequence[Any] = node.cmds or ()
    if len(cmds) != 1:
        return statement
    cmd = cmds[0]
    name = str(cmd.name or getattr(cmd.def_, "conname", None) or "")
    if (table, name) in both.copies and cmd.subtype in (
        AlterTableType.AT_AddConstraint,
        AlterTableType.AT_DropConstraint,
        AlterTableType.AT_ValidateConstraint,
    ):
        return None  # a copy PostgreSQL makes (and drops) with the parent's constraint
    if table not in declared.partitioned:
        return statement
    if cmd.subtype == AlterTableType.AT_AddConstraint and cmd.def_.indexname:
        definition = declared.keys.get((table, name))
        if definition is None:
            return statement
        schema, _, relname = table.partition(".")
        return (
            f"alter table {_quote(schema)}.{_quote(relname)} add constraint {_quote(name)} "
            f"{definition};"
        )
    if (
        cmd.subtype == AlterTableType.AT_AddConstraint
        and cmd.def_.contype == ConstrType.CONSTR_FOREIGN
        and cmd.def_.skip_validation
    ):
        made_valid.add((table, name))
        return _NOT_VALID.sub(";", statement)
    if cmd.subtype == AlterTableType.AT_ValidateConstraint and (table, name) in made_valid:
        return None  # added valid above
    return statement
