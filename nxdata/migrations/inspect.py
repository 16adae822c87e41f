"""What a migration needs to know of the database it will run on, read from its catalogs
(no SQL parser needed: ``nxdata status`` and ``migrate`` work without the migration extras)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from .throwaway import connect

__all__ = ["ColumnKey", "TableKey", "TargetState", "target_state", "undeclared_schemas"]

ColumnKey = tuple[str, str, str]
"""(schema, table, column)."""
TableKey = tuple[str, str]
"""(schema, table)."""


@dataclass(frozen=True, slots=True)
class TargetState:
    """What the classification needs to know of the database a migration will run on.

    ``tables``: tables that exist (with rows or not); ``column_types``: ``format_type`` text of
    each of their columns; ``nullable``: columns that allow NULL; ``rows``: an estimate per
    table (``reltuples``; -1 unknown); ``partitioned``: the partitioned tables among them;
    ``enums``: the labels of each enum type (``schema.name``), in order; ``column_enums``: the
    enum type (``schema.name``) of each column of one; ``sequences``: each sequence's
    (MINVALUE, MAXVALUE); ``generated``: the stored generated columns; ``partition_keys``: each
    partitioned table's key as ``pg_get_partkeydef`` prints it (``RANGE (created_at)``);
    ``default_partitions``: the default partition of each partitioned table that has one.
    """

    tables: frozenset[TableKey] = frozenset()
    column_types: Mapping[ColumnKey, str] = field(default_factory=dict)
    nullable: frozenset[ColumnKey] = frozenset()
    rows: Mapping[TableKey, float] = field(default_factory=dict)
    partitioned: frozenset[TableKey] = frozenset()
    enums: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    column_enums: Mapping[ColumnKey, str] = field(default_factory=dict)
    sequences: Mapping[TableKey, tuple[int, int]] = field(default_factory=dict)
    generated: frozenset[ColumnKey] = frozenset()
    partition_keys: Mapping[TableKey, str] = field(default_factory=dict)
    default_partitions: Mapping[TableKey, TableKey] = field(default_factory=dict)


def target_state(conn: psycopg.Connection[Any]) -> TargetState:
    """The tables, column types, nullability, row estimates, enums and sequences of a database
    (every schema but the system ones), for `hazards.classify` and `online.plan_steps`."""
    rows = conn.execute(
        "SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod),"
        " NOT a.attnotnull, c.reltuples, c.relkind = 'p',"
        " (SELECT tn.nspname || '.' || t.typname FROM pg_type t"
        "   JOIN pg_namespace tn ON tn.oid = t.typnamespace"
        "  WHERE t.oid = a.atttypid AND t.typtype = 'e'), a.attgenerated = 's'"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
        " WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        " AND n.nspname NOT LIKE 'pg\\_%%'"
    ).fetchall()
    tables = {(r[0], r[1]) for r in rows}
    types = {(r[0], r[1], r[2]): r[3] for r in rows if r[2] is not None}
    nullable = frozenset((r[0], r[1], r[2]) for r in rows if r[2] is not None and r[4])
    estimates = {(r[0], r[1]): float(r[5]) for r in rows}
    partitioned = frozenset((r[0], r[1]) for r in rows if r[6])
    column_enums = {(r[0], r[1], r[2]): r[7] for r in rows if r[7] is not None}
    labels = conn.execute(
        "SELECT n.nspname || '.' || t.typname, array_agg(e.enumlabel::text ORDER BY"
        " e.enumsortorder) FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid"
        " JOIN pg_namespace n ON n.oid = t.typnamespace GROUP BY 1"
    ).fetchall()
    sequences = conn.execute(
        "SELECT n.nspname, c.relname, s.seqmin, s.seqmax FROM pg_sequence s"
        " JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
    ).fetchall()
    partitioning = conn.execute(
        "SELECT pn.nspname, p.relname, pg_get_partkeydef(p.oid), dn.nspname, d.relname"
        " FROM pg_partitioned_table pt JOIN pg_class p ON p.oid = pt.partrelid"
        " JOIN pg_namespace pn ON pn.oid = p.relnamespace"
        " LEFT JOIN pg_class d ON d.oid = pt.partdefid"
        " LEFT JOIN pg_namespace dn ON dn.oid = d.relnamespace"
    ).fetchall()
    return TargetState(
        frozenset(tables),
        types,
        nullable,
        estimates,
        partitioned,
        enums={name: tuple(values) for name, values in labels},
        column_enums=column_enums,
        sequences={(r[0], r[1]): (int(r[2]), int(r[3])) for r in sequences},
        generated=frozenset((r[0], r[1], r[2]) for r in rows if r[8]),
        partition_keys={(r[0], r[1]): str(r[2]) for r in partitioning},
        default_partitions={(r[0], r[1]): (r[3], r[4]) for r in partitioning if r[4] is not None},
    )


_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")


def undeclared_schemas(
    url: str, declared: Sequence[str], ignore: Sequence[str] = ()
) -> list[tuple[str, int]]:
    """Schemas of the database that no declaration names, with how many tables each holds:
    not the system ones, not nxdata's journal, not an empty ``public``, not those matching an
    `ignore` pattern (``[tool.nxdata] ignore_schemas``, fnmatch style)."""
    import fnmatch

    from .journal import JOURNAL_SCHEMA

    # Objects of extensions (citext's functions in public...) do not count: the schema holds
    # them on the extension's behalf.
    mine = "NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = {}.oid AND d.deptype = 'e')"
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT n.nspname,"
            " (SELECT count(*) FROM pg_class c WHERE c.relnamespace = n.oid"
            "  AND c.relkind IN ('r', 'p')),"
            " (SELECT count(*) FROM pg_class c WHERE c.relnamespace = n.oid"
            f"  AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND {mine.format('c')})"
            " + (SELECT count(*) FROM pg_proc p WHERE p.pronamespace = n.oid"
            f"  AND {mine.format('p')})"
            " + (SELECT count(*) FROM pg_type t WHERE t.typnamespace = n.oid"
            f"  AND t.typtype IN ('e', 'd') AND {mine.format('t')})"
            " FROM pg_namespace n"
            " WHERE n.nspname NOT LIKE 'pg\\_%%' AND n.nspname <> ALL(%s) ORDER BY n.nspname",
            [[*_SYSTEM_SCHEMAS, JOURNAL_SCHEMA]],
        ).fetchall()
    out = []
    for name, tables, objects in rows:
        if name in declared or any(fnmatch.fnmatchcase(name, p) for p in ignore):
            continue
        if name == "public" and not objects:
            continue  # every database has one
        out.append((name, int(tables)))
    return out
