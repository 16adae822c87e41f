"""Partitioned tables: `PartitionBy` (range, list or hash on one column), its `Partition` s, the
monthly ranges of an event table, and the partitions a maintenance job creates ahead.

A table is partitioned by a table option::

    from datetime import datetime
    from typing import Annotated

    import msgspec
    import nxdata as nx

    events = nx.Schema("events")

    @events.table(
        "Event",
        partition_by=nx.PartitionBy.range(
            "created_at", nx.monthly_partitions("2026-01", months=12), default=True
        ),
    )
    class Event(msgspec.Struct, kw_only=True):
        id: nx.BigIntIdentity
        created_at: Annotated[datetime, nx.Column(primary_key=True, server_default="now()")]
        kind: str

PostgreSQL requires the primary key and every unique constraint or unique index of a partitioned
table to include the partition column: the declaration says so at once (a `DeclarationError`
naming the table, the constraint and the column), as it does for bounds that overlap, a hash
modulus that does not divide the next one, or a value of the wrong type.

The DDL (and ``nxdata diff``) creates the parent ``... PARTITION BY RANGE ("created_at")`` and
each partition ``CREATE TABLE "events"."Event_2026_01" PARTITION OF "events"."Event" FOR
VALUES FROM (...) TO (...)``. Partitions are data as much as schema: ``nxdata diff`` creates
the declared ones that are missing and never drops one, so those a job creates ahead
(`create_partitions_ahead`) or a retention job detaches are no drift.
"""

from __future__ import annotations

import enum
import itertools
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from .errors import DeclarationError

if TYPE_CHECKING:
    import psycopg

    from .database import Database
    from .migrations.processes import ProcessContext
    from .table import ColumnDef, Table

__all__ = [
    "Partition",
    "PartitionBy",
    "PartitionMethod",
    "Partitioning",
    "ResolvedPartition",
    "create_partitions_ahead",
    "monthly_partitions",
    "partitions_ahead",
]

PartitionMethod = Literal["range", "list", "hash"]
"""How a table is partitioned: ``PARTITION BY RANGE``, ``LIST`` or ``HASH``."""
MAX_IDENTIFIER = 63


@dataclass(frozen=True, slots=True)
class Partition:
    """One partition of a partitioned table, named ``{Table}_{suffix}`` (``name=`` overrides).

    Give the bounds of its table's method, by keyword:

    - range: ``Partition("2026_01", start=date(2026, 1, 1), end=date(2026, 2, 1))`` — ``start``
      included, ``end`` excluded (``FOR VALUES FROM (start) TO (end)``);
    - list: ``Partition("eu", values=("fr", "de"))`` (``None`` among them takes the NULLs);
    - hash: ``Partition("p0", modulus=4, remainder=0)``;
    - the default partition of a range or list table, for rows no other partition takes:
      ``Partition("default", default=True)``.

    Bounds are Python values of the column's type: `date` or an aware `datetime` for a
    ``timestamptz`` column (a date is midnight UTC), `date` for a ``date``, `int`, `str`,
    `Decimal`, `UUID`, an enum member.
    """

    suffix: str
    start: Any = None
    end: Any = None
    values: tuple[Any, ...] = ()
    modulus: int | None = None
    remainder: int | None = None
    default: bool = False
    name: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.suffix, str) or not self.suffix:
            raise DeclarationError(f"a partition needs a suffix (a non-empty str): {self!r}")
        if not isinstance(self.values, tuple):  # a list given: kept hashable and immutable
            object.__setattr__(self, "values", tuple(self.values))

    @property
    def kind(self) -> str:
        """Which method its bounds are for: ``range``, ``list``, ``hash``, ``default``, or
        ``none`` when it has no bounds."""
        if self.default:
            return "default"
        if self.start is not None or self.end is not None:
            return "range"
        if self.values:
            return "list"
        if self.modulus is not None or self.remainder is not None:
            return "hash"
        return "none"


@dataclass(frozen=True, slots=True)
class PartitionBy:
    """How a table is partitioned: ``@schema.table("Event", partition_by=PartitionBy.range(
    "created_at", monthly_partitions("2026-01", months=12)))``.

    Build it with `PartitionBy.range`, `PartitionBy.list` or `PartitionBy.hash`; ``column`` is
    a field or column name of the table, ``partitions`` its `Partition` s.
    """

    method: PartitionMethod
    column: str
    partitions: tuple[Partition, ...] = ()

    def __post_init__(self) -> None:
        if self.method not in ("range", "list", "hash"):
            raise DeclarationError(
                f"partition method {self.method!r} is not one of range, list, hash"
            )
        if not isinstance(self.column, str) or not self.column:
            raise DeclarationError("partition_by needs a column name")
        object.__setattr__(self, "partitions", tuple(self.partitions))

    @classmethod
    def range(
        cls, column: str, partitions: Iterable[Partition] = (), *, default: bool = False
    ) -> PartitionBy:
        """Range partitioning on `column`: each partition takes ``start <= value < end``;
        ``default=True`` adds the partition ``{Table}_default`` for the values none takes.

        >>> nx.PartitionBy.range("created_at", nx.monthly_partitions("2026-01", months=12))
        """
        extra = (Partition("default", default=True),) if default else ()
        return cls("range", column, (*partitions, *extra))

    @classmethod
    def list(
        cls, column: str, partitions: Iterable[Partition] = (), *, default: bool = False
    ) -> PartitionBy:
        """List partitioning on `column`: each partition takes the values it lists.

        >>> nx.PartitionBy.list("region", [nx.Partition("eu", values=("fr", "de"))], default=True)
        """
        extra = (Partition("default", default=True),) if default else ()
        return cls("list", column, (*partitions, *extra))

    @classmethod
    def hash(
        cls, column: str, modulus: int | None = None, *, partitions: Iterable[Partition] = ()
    ) -> PartitionBy:
        """Hash partitioning on `column`: with `modulus`, its partitions ``p0`` ...
        ``p{modulus-1}`` (one per remainder); or the `partitions` given.

        >>> nx.PartitionBy.hash("account_id", 8)
        """
        made: tuple[Partition, ...] = ()
        if modulus is not None:
            if not isinstance(modulus, int) or isinstance(modulus, bool) or modulus < 1:
                raise DeclarationError(f"hash modulus {modulus!r} must be a positive int")
            made = tuple(Partition(f"p{r}", modulus=modulus, remainder=r) for r in range(modulus))
        return cls("hash", column, (*made, *partitions))


def monthly_partitions(first: date | str, months: int) -> tuple[Partition, ...]:
    """`months` range partitions of one calendar month each from the month of `first` (a date
    or ``"YYYY-MM"``), suffixed ``YYYY_MM``: the names `create_partitions_ahead` uses too.

    >>> [p.suffix for p in nx.monthly_partitions("2026-11", months=3)]
    ['2026_11', '2026_12', '2027_01']
    """
    start = _month_of(first)
    if not isinstance(months, int) or isinstance(months, bool) or months < 1:
        raise DeclarationError(f"monthly_partitions: months={months!r} must be a positive int")
    out = []
    for _ in range(months):
        end = _next_month(start)
        out.append(Partition(f"{start:%Y_%m}", start=start, end=end))
        start = end
    return tuple(out)


def _month_of(value: date | str) -> date:
    if isinstance(value, datetime):
        return date(value.year, value.month, 1)
    if isinstance(value, date):
        return value.replace(day=1)
    try:
        year, month = (int(part) for part in str(value).split("-")[:2])
        return date(year, month, 1)
    except ValueError:
        raise DeclarationError(f"a month is a date or 'YYYY-MM', not {value!r}") from None


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


# -- resolved against a table ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResolvedPartition:
    """A partition with its full name and its bound as SQL (``FOR VALUES ...`` or ``DEFAULT``).
    ``start`` / ``end`` are the range bounds as comparable values (None for other methods)."""

    name: str
    bound: str
    start: Any = None
    end: Any = None

    def create_statement(self, parent: Table[Any], *, if_not_exists: bool = False) -> str:
        """``CREATE TABLE [IF NOT EXISTS] "schema"."name" PARTITION OF "schema"."Parent" ...``"""
        exists = "IF NOT EXISTS " if if_not_exists else ""
        return (
            f"CREATE TABLE {exists}{_quote(parent.schema.name)}.{_quote(self.name)} "
            f"PARTITION OF {parent.sql_name} {self.bound}"
        )


@dataclass(frozen=True, slots=True)
class Partitioning:
    """A table's partitioning, resolved: the method, the partition column's SQL name and type,
    and the partitions with their names and bounds."""

    method: PartitionMethod
    column: str
    sql_type: str
    partitions: tuple[ResolvedPartition, ...]

    @property
    def clause(self) -> str:
        """``PARTITION BY RANGE ("created_at")``"""
        return f"PARTITION BY {self.method.upper()} ({_quote(self.column)})"

    @property
    def timestamptz(self) -> bool:
        """True when the partition column is a ``timestamptz`` (bounds are instants)."""
        return _is_timestamptz(self.sql_type)

    def bound_sql(self, value: Any) -> str:
        """A range bound as SQL for this column (see `Partition`)."""
        return _range_literal(value, self.sql_type)


def resolve_partitioning(table: Table[Any], spec: PartitionBy | None) -> Partitioning | None:
    """Check `spec` against `table` (see the module docstring) and resolve it; None without."""
    if spec is None:
        return None
    if not isinstance(spec, PartitionBy):
        raise DeclarationError(
            f"partition_by takes a PartitionBy (PartitionBy.range / list / hash), not {spec!r}",
            table=table.qualified_name,
        )
    where = table.qualified_name
    column = table.by_field.get(spec.column) or table.by_name.get(spec.column)
    if column is None:
        raise DeclarationError(
            f"partition_by names unknown column {spec.column!r} "
            f"(columns: {', '.join(table.by_name)})",
            table=where,
            column=spec.column,
        )
    if column.kind not in ("scalar", "enum") or column.python_type in (bytes, bool, float):
        raise DeclarationError(
            f"cannot partition by a {column.sql_type} column: partition by a date, timestamp, "
            "number, text or uuid column",
            table=where,
            column=column.name,
        )
    _check_keys_include(table, column.name, "partition column", "partition_by")
    resolved = tuple(_resolve_partition(table, spec.method, column, p) for p in spec.partitions)
    names = [p.name for p in resolved]
    for name in names:
        if names.count(name) > 1:
            raise DeclarationError(f"partition {name!r} is declared twice", table=where)
        if name == table.name:
            raise DeclarationError(f"partition {name!r} has the table's own name", table=where)
    defaults = [p for p in spec.partitions if p.default]
    if len(defaults) > 1:
        raise DeclarationError("a table has at most one default partition", table=where)
    if spec.method == "range":
        _check_ranges(table, resolved)
    elif spec.method == "list":
        _check_lists(table, spec.partitions, column)
    else:
        _check_hashes(table, spec.partitions)
    return Partitioning(spec.method, column.name, column.sql_type, resolved)


def _check_keys_include(table: Table[Any], column: str, what: str, option: str) -> None:
    """The primary key, unique constraints and unique indexes of `table` include `column`
    (PostgreSQL's rule for partitioned tables, Citus's for distributed ones)."""
    where = table.qualified_name
    fix = f"add {column!r} to it (for the primary key: Column(primary_key=True) on that field too)"
    if table.primary_key and column not in table.primary_key:
        raise DeclarationError(
            f"primary key PK_{table.name} ({', '.join(table.primary_key)}) must include the "
            f"{what} {column!r} ({option}): {fix}",
            table=where,
            column=column,
        )
    for unique in table.uniques:
        if column not in unique.columns:
            raise DeclarationError(
                f"unique constraint {unique.name} ({', '.join(unique.columns)}) must include the "
                f"{what} {column!r} ({option}): {fix}",
                table=where,
                column=column,
            )
    for index in table.indexes:
        if not index.unique:
            continue
        if index.expression is not None or column not in index.columns:
            shown = index.expression or ", ".join(index.columns)
            raise DeclarationError(
                f"unique index {index.name} ({shown}) must include the {what} {column!r} "
                f"({option}): {fix}",
                table=where,
                column=column,
            )


def _resolve_partition(
    table: Table[Any], method: PartitionMethod, column: ColumnDef, partition: Partition
) -> ResolvedPartition:
    if not isinstance(partition, Partition):
        raise DeclarationError(
            f"partitions are nx.Partition(...) objects, not {partition!r}",
            table=table.qualified_name,
        )
    name = partition.name or f"{table.name}_{partition.suffix}"
    where = f"partition {name}"
    if len(name.encode()) > MAX_IDENTIFIER:
        raise DeclarationError(
            f"{where}: the name is longer than 63 bytes (pass name= or a shorter suffix)",
            table=table.qualified_name,
        )
    kind = partition.kind
    if kind == "default":
        if method == "hash":
            raise DeclarationError(
                f"{where}: a hash-partitioned table has no default partition",
                table=table.qualified_name,
            )
        return ResolvedPartition(name, "DEFAULT")
    if kind != method:
        wanted = {
            "range": "start= and end=",
            "list": "values=(...)",
            "hash": "modulus= and remainder=",
        }[method]
        raise DeclarationError(
            f"{where}: a {method} partition takes {wanted}"
            + (f" (it was given {kind} bounds)" if kind != "none" else ""),
            table=table.qualified_name,
        )
    if method == "range":
        if partition.start is None or partition.end is None:
            raise DeclarationError(
                f"{where}: a range partition needs both start= and end=",
                table=table.qualified_name,
            )
        start = _range_value(partition.start, column, table, where)
        end = _range_value(partition.end, column, table, where)
        try:
            ordered = start < end
        except TypeError:
            ordered = False
        if not ordered:
            raise DeclarationError(
                f"{where}: start {partition.start!r} must be below end {partition.end!r}",
                table=table.qualified_name,
            )
        bound = (
            f"FOR VALUES FROM ({_range_literal(partition.start, column.sql_type)}) "
            f"TO ({_range_literal(partition.end, column.sql_type)})"
        )
        return ResolvedPartition(name, bound, start, end)
    if method == "list":
        literals = [
            "NULL" if v is None else _literal(_range_value(v, column, table, where), column)
            for v in partition.values
        ]
        return ResolvedPartition(name, f"FOR VALUES IN ({', '.join(literals)})")
    modulus, remainder = partition.modulus, partition.remainder
    if not (isinstance(modulus, int) and not isinstance(modulus, bool) and modulus >= 1):
        raise DeclarationError(
            f"{where}: modulus {modulus!r} must be a positive int", table=table.qualified_name
        )
    if not (
        isinstance(remainder, int) and not isinstance(remainder, bool) and 0 <= remainder < modulus
    ):
        raise DeclarationError(
            f"{where}: remainder {remainder!r} must be an int from 0 to modulus - 1 "
            f"({modulus - 1})",
            table=table.qualified_name,
        )
    return ResolvedPartition(name, f"FOR VALUES WITH (MODULUS {modulus}, REMAINDER {remainder})")


def _check_ranges(table: Table[Any], partitions: Sequence[ResolvedPartition]) -> None:
    ranged = sorted((p for p in partitions if p.start is not None), key=lambda p: p.start)
    for before, after in itertools.pairwise(ranged):
        if after.start < before.end:
            raise DeclarationError(
                f"partitions {before.name} and {after.name} overlap: {before.name} ends at "
                f"{before.end} after {after.name} starts at {after.start}",
                table=table.qualified_name,
            )


def _check_lists(table: Table[Any], partitions: Sequence[Partition], column: ColumnDef) -> None:
    seen: dict[Any, str] = {}
    for partition in partitions:
        name = partition.name or f"{table.name}_{partition.suffix}"
        for value in partition.values:
            key = value.value if isinstance(value, enum.Enum) else value
            if key in seen:
                raise DeclarationError(
                    f"value {key!r} is in two partitions, {seen[key]} and {name}",
                    table=table.qualified_name,
                    column=column.name,
                )
            seen[key] = name


def _check_hashes(table: Table[Any], partitions: Sequence[Partition]) -> None:
    """PostgreSQL's rules: each modulus divides the next larger one, and no two partitions take
    the same hash values."""
    hashed = [
        (p.modulus or 1, p.remainder or 0, p.name or f"{table.name}_{p.suffix}") for p in partitions
    ]
    for modulus in sorted({m for m, _, _ in hashed}):
        larger = sorted(m for m, _, _ in hashed if m > modulus)
        if larger and larger[0] % modulus:
            raise DeclarationError(
                f"hash modulus {modulus} does not divide the next larger modulus {larger[0]} "
                "(PostgreSQL requires each modulus to be a factor of the next)",
                table=table.qualified_name,
            )
    for i, (m1, r1, n1) in enumerate(hashed):
        for m2, r2, n2 in hashed[i + 1 :]:
            low = min(m1, m2)
            if r1 % low == r2 % low:
                raise DeclarationError(
                    f"hash partitions {n1} (modulus {m1}, remainder {r1}) and {n2} (modulus "
                    f"{m2}, remainder {r2}) overlap",
                    table=table.qualified_name,
                )


# -- values ------------------------------------------------------------------------------------


def _is_timestamptz(sql_type: str) -> bool:
    return sql_type.lower() in ("timestamptz", "timestamp with time zone")


def _range_value(value: Any, column: ColumnDef, table: Table[Any], where: str) -> Any:
    """`value` as a comparable value of `column`'s type, or a `DeclarationError` naming it."""
    tp = column.python_type
    sql_type = column.sql_type.lower()
    problem = None
    if isinstance(value, enum.Enum):
        value = value.value
    if tp is datetime or sql_type.startswith("timestamp"):
        aware = _is_timestamptz(sql_type)
        if isinstance(value, datetime):
            if aware and value.tzinfo is None:
                problem = "a naive datetime (give it a time zone, or give a date: midnight UTC)"
            elif not aware and value.tzinfo is not None:
                problem = "an aware datetime for a timestamp without time zone"
        elif isinstance(value, date):
            value = datetime(value.year, value.month, value.day, tzinfo=UTC if aware else None)
        else:
            problem = f"{type(value).__name__}, not a date or datetime"
    elif tp is date:
        if isinstance(value, datetime) or not isinstance(value, date):
            problem = f"{type(value).__name__}, not a date"
    elif column.kind == "enum" or typing.get_origin(tp) is Literal:
        allowed = column.enum_values
        if allowed and value not in allowed:
            problem = f"not one of {list(allowed)}"
    elif tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            problem = f"{type(value).__name__}, not an int"
    elif tp is Decimal:
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            problem = f"{type(value).__name__}, not an int or Decimal"
    elif tp is str:
        if not isinstance(value, str):
            problem = f"{type(value).__name__}, not a str"
    elif tp is UUID:
        if isinstance(value, str):
            try:
                value = UUID(value)
            except ValueError:
                problem = "not a UUID"
        elif not isinstance(value, UUID):
            problem = f"{type(value).__name__}, not a UUID"
    if problem is not None:
        raise DeclarationError(
            f"{where}: bound {value!r} does not fit the {column.sql_type} column: {problem}",
            table=table.qualified_name,
            column=column.name,
        )
    return value


def _literal(value: Any, column: ColumnDef) -> str:
    """A checked value (see `_range_value`) as a SQL literal."""
    if isinstance(value, datetime):
        return _string(value.isoformat(sep=" "))
    if isinstance(value, date | UUID):
        return _string(str(value))
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, int | Decimal):
        return str(value)
    return _string(str(value))


def _range_literal(value: Any, sql_type: str) -> str:
    """A bound as written in the DDL: a date on a ``timestamptz`` column is midnight UTC."""
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, datetime):
        return _string(value.isoformat(sep=" "))
    if isinstance(value, date):
        if _is_timestamptz(sql_type):
            return _string(f"{value.isoformat()} 00:00:00+00")
        if sql_type.lower().startswith("timestamp"):
            return _string(f"{value.isoformat()} 00:00:00")
        return _string(value.isoformat())
    if isinstance(value, str | UUID):
        return _string(str(value))
    return str(value)


def _string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


# -- partitions created ahead ------------------------------------------------------------------


def partitions_ahead(
    table: Any, *, months: int = 3, today: date | None = None
) -> list[tuple[str, str]]:
    """The monthly partitions of a table range-partitioned on a date or timestamp column, for
    the month of `today` (default: the current month, in UTC) and the `months` after it, as
    ``(name, statement)`` pairs: ``CREATE TABLE IF NOT EXISTS "events"."Event_2026_12"
    PARTITION OF "events"."Event" FOR VALUES FROM (...) TO (...)``. Months a declared
    partition already covers are left out. No I/O: run the statements anywhere (an async
    database too); `create_partitions_ahead` runs them for you.

    `table` is the row class or its `Table`.

    >>> for name, statement in nx.partitions_ahead(Event, months=3):
    ...     await adb.execute(statement)
    """
    resolved = _table(table)
    partitioning = resolved.partitioning
    if (
        partitioning is None
        or partitioning.method != "range"
        or not (
            partitioning.sql_type.lower().startswith("timestamp") or partitioning.sql_type == "date"
        )
    ):
        raise DeclarationError(
            "partitions ahead are monthly ranges: the table must be PartitionBy.range on a date "
            "or timestamp column",
            table=resolved.qualified_name,
        )
    if not isinstance(months, int) or isinstance(months, bool) or months < 0:
        raise DeclarationError(f"months={months!r} must be an int >= 0")
    start = _month_of(today or datetime.now(UTC).date())
    declared = [p for p in partitioning.partitions if p.start is not None]
    out = []
    for partition in monthly_partitions(start, months + 1):
        low = _comparable(partition.start, partitioning)
        high = _comparable(partition.end, partitioning)
        if any(p.start < high and low < p.end for p in declared):
            continue  # the declarations (and so the migrations) have it
        name = f"{resolved.name}_{partition.suffix}"
        if len(name.encode()) > 63:  # PostgreSQL would cut it: months would share one name
            raise DeclarationError(
                f"the partition name {name!r} is longer than PostgreSQL's 63 bytes: months "
                "would share one truncated name; shorten the table name",
                table=resolved.qualified_name,
            )
        made = ResolvedPartition(
            name,
            f"FOR VALUES FROM ({partitioning.bound_sql(partition.start)}) "
            f"TO ({partitioning.bound_sql(partition.end)})",
        )
        out.append((made.name, made.create_statement(resolved, if_not_exists=True)))
    return out


def _comparable(day: date, partitioning: Partitioning) -> Any:
    if partitioning.sql_type.lower().startswith("timestamp"):
        return datetime(
            day.year, day.month, day.day, tzinfo=UTC if partitioning.timestamptz else None
        )
    return day


def create_partitions_ahead(
    db: Database | ProcessContext | psycopg.Connection[Any],
    table: Any,
    *,
    months: int = 3,
    today: date | None = None,
) -> list[str]:
    """Create the partitions of `partitions_ahead` that do not exist yet; returns their names
    (``[]`` when there is nothing to do: run it as often as you like).

    `db` is a `Database`, a seed process's context, or a psycopg connection. As a maintenance
    process that ``nxdata migrate`` runs every time::

        @process("events-0100-partitions-ahead", always_run=True)
        def events_ahead(ctx: ProcessContext) -> None:
            nx.create_partitions_ahead(ctx, Event, months=3)

    or from a scheduled job (once a day is plenty). With a default partition, create them
    before rows of those months arrive: PostgreSQL refuses a partition whose rows already sit in
    the default one.
    """
    resolved = _table(table)
    created = []
    for name, statement in partitions_ahead(resolved, months=months, today=today):
        qualified = f"{_quote(resolved.schema.name)}.{_quote(name)}"
        if not _fetch_value(db, "SELECT to_regclass(%s) IS NULL", [qualified]):
            continue
        try:
            _execute(db, statement)
        except Exception as exc:
            # Another process (a job on another host) made it between the look and the
            # CREATE: IF NOT EXISTS does not cover that race ("already exists", 42P07).
            if getattr(exc, "sqlstate", None) != "42P07":
                raise
            continue
        created.append(name)
    return created


def _table(table: Any) -> Table[Any]:
    from .table import Table, table_of

    return table if isinstance(table, Table) else table_of(table)


def _fetch_value(db: Any, query: str, params: Sequence[Any]) -> Any:
    fetch = getattr(db, "fetch_value", None)
    if fetch is not None:
        return fetch(query, params)
    row = db.execute(query, params).fetchone()
    return None if row is None else row[0]


def _execute(db: Any, statement: str) -> None:
    db.execute(statement)
