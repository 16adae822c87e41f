"""Partitioned tables: declarations and their errors, DDL, ``nxdata diff`` and ``migrate``, the
partitions created ahead, repositories on a partitioned table, and partition pruning shown
with EXPLAIN on the statement a repository runs; on real PostgreSQL."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import msgspec
import psycopg
import pytest
from psycopg import sql

import nxdata as nx
from nxdata.errors import DeclarationError, UnsafeMigrationError
from nxdata.migrations import load_models
from nxdata.migrations.generate import check_drift, generate_migrations
from nxdata.migrations.runner import migrate
from tests.migration_models.helpers import query, write_models

MONTHS_2026 = nx.monthly_partitions("2026-01", months=12)


def declare_events(
    schema: str,
    partition_by: nx.PartitionBy | None = None,
    *,
    table: str = "Event",
    **options: Any,
) -> tuple[nx.Schema, type[msgspec.Struct]]:
    """A schema with one event table: id and the partition column make the primary key (the
    partition column is created_at unless `partition_by` names region)."""
    s = nx.Schema(schema)
    partition_by = partition_by or nx.PartitionBy.range("created_at", MONTHS_2026)
    declare = s.table(table, partition_by=partition_by, **options)
    if isinstance(partition_by, nx.PartitionBy) and partition_by.column == "region":

        @declare
        class ByRegion(msgspec.Struct, kw_only=True):
            id: nx.BigIntIdentity
            region: Annotated[str, nx.Column(primary_key=True)]
            created_at: nx.CreatedAt
            kind: str
            amount: int = 0

        return s, ByRegion

    @declare
    class Event(msgspec.Struct, kw_only=True):
        id: nx.BigIntIdentity
        created_at: Annotated[datetime, nx.Column(primary_key=True, server_default="now()")]
        kind: str
        region: str = "eu"
        amount: int = 0

    return s, Event


def apply(conn: psycopg.Connection[Any], schema: nx.Schema) -> None:
    for statement in nx.create_statements([schema]):
        conn.execute(statement)


def where_rows_are(conn: psycopg.Connection[Any], table: str) -> dict[str, int]:
    """partition → rows, read through the parent `table` (a quoted ``schema."Table"``)."""
    rows = conn.execute(
        f"SELECT tableoid::regclass::text, count(*) FROM {table} GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return {str(r[0]).rpartition(".")[2].strip('"'): int(r[1]) for r in rows}


# -- declarations ------------------------------------------------------------------------------


def test_monthly_partitions_are_calendar_months() -> None:
    parts = nx.monthly_partitions(date(2026, 11, 17), months=3)
    assert [p.suffix for p in parts] == ["2026_11", "2026_12", "2027_01"]
    assert (parts[1].start, parts[1].end) == (date(2026, 12, 1), date(2027, 1, 1))
    assert nx.monthly_partitions("2026-02", months=1)[0].end == date(2026, 3, 1)
    with pytest.raises(DeclarationError, match="YYYY-MM"):
        nx.monthly_partitions("next month", months=1)
    with pytest.raises(DeclarationError, match="positive"):
        nx.monthly_partitions("2026-01", months=0)


def test_resolved_partitioning() -> None:
    _, event = declare_events("pt_resolved", nx.PartitionBy.range("created_at", MONTHS_2026[:2]))
    partitioning = nx.table_of(event).partitioning
    assert partitioning is not None
    assert partitioning.clause == 'PARTITION BY RANGE ("created_at")'
    assert [p.name for p in partitioning.partitions] == ["Event_2026_01", "Event_2026_02"]
    assert partitioning.partitions[0].bound == (
        "FOR VALUES FROM ('2026-01-01 00:00:00+00') TO ('2026-02-01 00:00:00+00')"
    )
    hashed = nx.PartitionBy.hash("region", 4)
    assert [(p.suffix, p.modulus, p.remainder) for p in hashed.partitions][-1] == ("p3", 4, 3)


def test_primary_key_must_include_the_partition_column() -> None:
    s = nx.Schema("pt_pk")
    with pytest.raises(DeclarationError) as caught:

        @s.table("Event", partition_by=nx.PartitionBy.range("created_at", MONTHS_2026))
        class Event(nx.EventColumns):  # id alone is the primary key
            kind: str

    error = caught.value
    assert (error.table, error.column) == ("pt_pk.Event", "created_at")
    assert "primary key PK_Event (id) must include the partition column 'created_at'" in str(error)
    assert "Column(primary_key=True)" in str(error)  # says how to fix it
    assert "Event" not in s.tables  # nothing half-declared


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"uniques": [nx.Unique("kind")]},
            r"unique constraint UQ_Event_kind \(kind\) must include",
        ),
        (
            {"indexes": [nx.Index("kind", unique=True)]},
            r"unique index UQ_Event_kind \(kind\) must include",
        ),
        (
            {"indexes": [nx.Index(expression="lower(kind)", name="UQ_lower", unique=True)]},
            r"unique index UQ_lower \(lower\(kind\)\) must include",
        ),
    ],
)
def test_unique_keys_must_include_the_partition_column(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(DeclarationError, match=message) as caught:
        declare_events("pt_unique", **options)
    assert caught.value.column == "created_at"
    # With the partition column, the same keys are fine (and non-unique indexes always are).
    declare_events(
        "pt_unique_ok",
        uniques=[nx.Unique("kind", "created_at")],
        indexes=[nx.Index("kind"), nx.Index("kind", "created_at", unique=True)],
    )


def _range(*partitions: nx.Partition) -> nx.PartitionBy:
    return nx.PartitionBy.range("created_at", partitions)


@pytest.mark.parametrize(
    ("partition_by", "message"),
    [
        (nx.PartitionBy.range("nope"), "partition_by names unknown column 'nope'"),
        (
            _range(
                *MONTHS_2026[:2],
                nx.Partition("jan", start=date(2026, 1, 15), end=date(2026, 2, 15)),
            ),
            "partitions Event_2026_01 and Event_jan overlap",
        ),
        (
            _range(nx.Partition("x", start=date(2026, 2, 1), end=date(2026, 1, 1))),
            "partition Event_x: start .* must be below end",
        ),
        (
            _range(nx.Partition("x", start="2026-01-01", end="2026-02-01")),
            "bound '2026-01-01' does not fit the timestamp with time zone column",
        ),
        (
            _range(nx.Partition("x", start=datetime(2026, 1, 1), end=datetime(2026, 2, 1))),
            "a naive datetime",
        ),
        (_range(nx.Partition("x", start=date(2026, 1, 1))), "needs both start= and end="),
        (_range(nx.Partition("x", values=("a",))), "a range partition takes start= and end="),
        (
            nx.PartitionBy.list(
                "region",
                [nx.Partition("a", values=("fr", "de")), nx.Partition("b", values=("de",))],
            ),
            "value 'de' is in two partitions, Event_a and Event_b",
        ),
        (
            nx.PartitionBy.list("region", [nx.Partition("a", values=(1,))]),
            "bound 1 does not fit the text column: int, not a str",
        ),
        (
            nx.PartitionBy.hash(
                "region",
                partitions=[
                    nx.Partition("a", modulus=3, remainder=0),
                    nx.Partition("b", modulus=4, remainder=1),
                ],
            ),
            "hash modulus 3 does not divide the next larger modulus 4",
        ),
        (
            nx.PartitionBy.hash(
                "region",
                partitions=[
                    nx.Partition("a", modulus=2, remainder=0),
                    nx.Partition("b", modulus=4, remainder=2),
                ],
            ),
            "hash partitions Event_a .* and Event_b .* overlap",
        ),
        (
            nx.PartitionBy.hash("region", partitions=[nx.Partition("a", modulus=4, remainder=4)]),
            "remainder 4 must be an int from 0 to modulus - 1",
        ),
        (
            nx.PartitionBy.hash("region", partitions=[nx.Partition("d", default=True)]),
            "a hash-partitioned table has no default partition",
        ),
        (
            nx.PartitionBy.list("region", [nx.Partition("other", default=True)], default=True),
            "at most one default partition",
        ),
        (
            _range(nx.Partition("x" * 60, start=date(2026, 1, 1), end=date(2026, 2, 1))),
            "longer than 63 bytes",
        ),
        (
            _range(
                *MONTHS_2026[:1],
                nx.Partition("2026_01", start=date(2027, 1, 1), end=date(2027, 2, 1)),
            ),
            "partition 'Event_2026_01' is declared twice",
        ),
    ],
)
def test_bad_partitions_are_refused(partition_by: nx.PartitionBy, message: str) -> None:
    with pytest.raises(DeclarationError, match=message) as caught:
        declare_events("pt_bad", partition_by)
    assert caught.value.table == "pt_bad.Event"


def test_partition_column_types() -> None:
    with pytest.raises(DeclarationError, match="cannot partition by a jsonb column"):
        s = nx.Schema("pt_json")

        @s.table(
            "Doc", partition_by=nx.PartitionBy.list("body", [nx.Partition("a", values=("x",))])
        )
        class Doc(msgspec.Struct):
            body: dict[str, Any]

    with pytest.raises(DeclarationError, match=r"partitions are nx.Partition\(...\) objects"):
        declare_events("pt_type", nx.PartitionBy("range", "created_at", ("x",)))  # type: ignore[arg-type]
    with pytest.raises(DeclarationError, match="partition_by takes a PartitionBy"):
        declare_events("pt_type", "created_at")  # type: ignore[arg-type]
    with pytest.raises(DeclarationError, match="not one of range, list, hash"):
        nx.PartitionBy("interval", "created_at")  # type: ignore[arg-type]


def test_partition_names_may_not_clash_with_tables() -> None:
    s, _ = declare_events("pt_clash")
    with pytest.raises(
        DeclarationError, match=r"'Event_2026_01' is taken by table pt_clash\.Event"
    ):

        @s.table("Event_2026_01")
        class Other(nx.IdColumns):
            name: str


# -- DDL ---------------------------------------------------------------------------------------


def test_ddl_creates_parent_and_partitions(conn: psycopg.Connection[Any], schema_name: str) -> None:
    s, _ = declare_events(
        schema_name,
        nx.PartitionBy.range("created_at", MONTHS_2026[:3], default=True),
        indexes=[nx.Index("kind")],
    )
    statements = nx.create_statements([s])
    parent = next(x for x in statements if x.startswith(f'CREATE TABLE "{schema_name}"."Event" ('))
    assert parent.endswith(') PARTITION BY RANGE ("created_at")')
    assert (
        f'CREATE TABLE "{schema_name}"."Event_2026_02" PARTITION OF "{schema_name}"."Event" '
        "FOR VALUES FROM ('2026-02-01 00:00:00+00') TO ('2026-03-01 00:00:00+00')"
    ) in statements
    assert (
        f'CREATE TABLE "{schema_name}"."Event_default" PARTITION OF "{schema_name}"."Event" DEFAULT'
        in statements
    )
    apply(conn, s)
    rows = conn.execute(
        "SELECT c.relname, c.relkind, pg_get_expr(c.relpartbound, c.oid) FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s"
        " AND c.relkind IN ('r', 'p') ORDER BY 1",
        [schema_name],
    ).fetchall()
    assert [(r[0], r[1]) for r in rows] == [
        ("Event", "p"),
        ("Event_2026_01", "r"),
        ("Event_2026_02", "r"),
        ("Event_2026_03", "r"),
        ("Event_default", "r"),
    ]
    # The parent's index and key reached every partition.
    indexes = conn.execute(
        "SELECT count(*) FROM pg_indexes WHERE schemaname = %s AND tablename = 'Event_2026_02'",
        [schema_name],
    ).fetchone()
    assert indexes is not None and indexes[0] == 2


def test_list_and_hash_partitions_take_their_rows(
    conn: psycopg.Connection[Any], db: nx.Database, schema_name: str
) -> None:
    listed, by_region = declare_events(
        schema_name,
        nx.PartitionBy.list(
            "region",
            [nx.Partition("eu", values=("fr", "de")), nx.Partition("us", values=("us",))],
            default=True,
        ),
        table="ByRegion",
    )
    apply(conn, listed)
    regions = nx.Repository(db, by_region)
    for region in ("fr", "de", "us", "jp"):
        regions.create({"kind": "k", "region": region})
    assert where_rows_are(conn, f'"{schema_name}"."ByRegion"') == {
        "ByRegion_default": 1,
        "ByRegion_eu": 2,
        "ByRegion_us": 1,
    }


def test_hash_partitions(conn: psycopg.Connection[Any], db: nx.Database, schema_name: str) -> None:
    s = nx.Schema(schema_name)

    @s.table("Account", partition_by=nx.PartitionBy.hash("tenant", 4))
    class Account(msgspec.Struct, kw_only=True):
        tenant: Annotated[str, nx.Column(primary_key=True)]
        name: str

    assert f'PARTITION OF "{schema_name}"."Account" FOR VALUES WITH (MODULUS 4, REMAINDER 3)' in (
        nx.create_sql([s])
    )
    apply(conn, s)
    accounts = nx.Repository(db, Account)
    accounts.create_all([{"tenant": f"t{i}", "name": "n"} for i in range(40)])
    spread = where_rows_are(conn, f'"{schema_name}"."Account"')
    assert sorted(spread) == ["Account_p0", "Account_p1", "Account_p2", "Account_p3"]
    assert sum(spread.values()) == 40


def test_names_are_quoted(conn: psycopg.Connection[Any], schema_name: str) -> None:
    s, _ = declare_events(
        schema_name, nx.PartitionBy.range("created_at", MONTHS_2026[:1]), table='Odd "Event"'
    )
    text = nx.create_sql([s])
    assert f'CREATE TABLE "{schema_name}"."Odd ""Event""_2026_01" PARTITION OF' in text
    apply(conn, s)
    found = conn.execute(
        "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhparent"
        " WHERE c.relname = 'Odd \"Event\"'"
    ).fetchone()
    assert found is not None and found[0] == 1


# -- repositories and pruning ------------------------------------------------------------------


def test_repository_on_a_partitioned_table(
    conn: psycopg.Connection[Any], db: nx.Database, schema_name: str
) -> None:
    s, event = declare_events(schema_name, uniques=[nx.Unique("kind", "created_at")])
    apply(conn, s)
    events = nx.Repository(db, event)
    march = datetime(2026, 3, 5, 12, tzinfo=UTC)
    first = events.create({"kind": "signup", "created_at": march})
    events.create_all(
        [
            {"kind": "click", "created_at": datetime(2026, m, 2, tzinfo=UTC), "amount": m}
            for m in range(1, 13)
        ]
    )
    key = (first.id, first.created_at)  # the primary key is (id, created_at)
    found = events.find_by_id(key)
    assert found is not None and found.kind == "signup"  # type: ignore[attr-defined]
    updated = events.update_by_id(key, {"kind": "signin"})
    assert updated is not None and updated.kind == "signin"  # type: ignore[attr-defined]
    in_march = {"created_at": {"gte": "2026-03-01T00:00:00Z", "lt": "2026-04-01T00:00:00Z"}}
    assert events.count(in_march) == 2
    assert events.update_all({"amount": 99}, where=in_march) == 2
    upserted = events.upsert(
        {"kind": "signin", "created_at": march, "amount": 5}, conflict=["kind", "created_at"]
    )
    assert upserted is not None and upserted.id == first.id  # type: ignore[attr-defined]
    assert upserted.amount == 5  # type: ignore[attr-defined]
    assert events.delete_by_id(key) is not None
    assert events.delete_all(where={"kind": "click", "amount": {"lt": 6}}) == 4  # March's is 99
    assert events.count() == 8
    assert where_rows_are(conn, f'"{schema_name}"."Event"')["Event_2026_12"] == 1


def test_queries_through_a_repository_prune_partitions(
    conn: psycopg.Connection[Any], db: nx.Database, schema_name: str
) -> None:
    s, event = declare_events(schema_name)
    apply(conn, s)
    conn.execute(
        sql.SQL(
            "INSERT INTO {}.\"Event\" (created_at, kind) SELECT timestamptz '2026-01-01 00:00+00'"
            " + (i % 365) * interval '1 day', 'k' || (i % 7) FROM generate_series(1, 3650) i"
        ).format(sql.Identifier(schema_name))
    )
    conn.execute(sql.SQL('ANALYZE {}."Event"').format(sql.Identifier(schema_name)))
    events = nx.Repository(db, event)
    with db.watch_queries() as seen:
        rows = events.find(
            {
                "where": {
                    "created_at": {"gte": "2026-03-01T00:00:00Z", "lt": "2026-04-01T00:00:00Z"},
                    "kind": "k3",
                }
            }
        )
    assert rows and all(r.created_at.month == 3 for r in rows)  # type: ignore[attr-defined]
    [statement] = seen
    plan = "\n".join(
        r[0] for r in conn.execute("EXPLAIN (COSTS OFF) " + statement.sql, statement.params)
    )
    scanned = sorted(
        {name for name in _partition_names() if f'"{name}"' in plan or f" {name} " in plan}
    )
    assert scanned == ["Event_2026_03"], plan
    # As a prepared statement's generic plan (psycopg prepares repeated statements), the pruning
    # happens when it runs: the other eleven partitions are removed from the plan.
    conn.execute("SET plan_cache_mode = force_generic_plan")
    try:
        conn.execute(
            f"PREPARE by_month (timestamptz, timestamptz, text) AS {_numbered(statement.sql)}"
        )
        explain = "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)"
        generic = "\n".join(
            r[0]
            for r in conn.execute(
                sql.SQL(explain + " EXECUTE by_month({}, {}, {})").format(
                    *(sql.Literal(p) for p in statement.params or ())
                )
            )
        )
    finally:
        conn.execute("DEALLOCATE ALL")
        conn.execute("RESET plan_cache_mode")
    assert "Subplans Removed: 11" in generic, generic


def _partition_names() -> list[str]:
    return [f"Event_{p.suffix}" for p in MONTHS_2026]


def _numbered(statement: str) -> str:
    """``%s`` placeholders as ``$1, $2...`` (for a server-side PREPARE)."""
    parts = statement.split("%s")
    return "".join(f"{part}${i}" for i, part in enumerate(parts[:-1], start=1)) + parts[-1]


# -- partitions created ahead ------------------------------------------------------------------


def test_partitions_ahead_statements() -> None:
    _, event = declare_events("pt_ahead", nx.PartitionBy.range("created_at", MONTHS_2026[:1]))
    planned = nx.partitions_ahead(event, months=2, today=date(2025, 12, 20))
    # December 2025 and February 2026 are missing; January is declared (the migrations have it).
    assert [name for name, _ in planned] == ["Event_2025_12", "Event_2026_02"]
    assert planned[1][1] == (
        'CREATE TABLE IF NOT EXISTS "pt_ahead"."Event_2026_02" PARTITION OF "pt_ahead"."Event" '
        "FOR VALUES FROM ('2026-02-01 00:00:00+00') TO ('2026-03-01 00:00:00+00')"
    )
    _, regions = declare_events(
        "pt_ahead_list",
        nx.PartitionBy.list("region", [nx.Partition("eu", values=("fr",))]),
    )
    with pytest.raises(DeclarationError, match="monthly ranges"):
        nx.partitions_ahead(regions)


def test_create_partitions_ahead_is_idempotent(
    conn: psycopg.Connection[Any], db: nx.Database, schema_name: str
) -> None:
    s, event = declare_events(schema_name, nx.PartitionBy.range("created_at", MONTHS_2026[:1]))
    apply(conn, s)
    today = date(2026, 1, 20)
    assert nx.create_partitions_ahead(db, event, months=2, today=today) == [
        "Event_2026_02",
        "Event_2026_03",
    ]
    assert nx.create_partitions_ahead(db, event, months=2, today=today) == []
    # A psycopg connection works too, and so does the next month's run.
    assert nx.create_partitions_ahead(conn, event, months=2, today=today + timedelta(days=30)) == [
        "Event_2026_04"
    ]
    events = nx.Repository(db, event)
    events.create({"kind": "k", "created_at": datetime(2026, 4, 30, 23, 59, tzinfo=UTC)})
    assert where_rows_are(conn, f'"{schema_name}"."Event"') == {"Event_2026_04": 1}


# -- nxdata diff and migrate -------------------------------------------------------------------

MODELS = """
from datetime import date

{schema} = nx.Schema("{schema}")


@{schema}.table("Tenant")
class Tenant(msgspec.Struct, kw_only=True):
    id: Annotated[str, Column(primary_key=True)]


@{schema}.table(
    "Event",
    partition_by=nx.PartitionBy.range(
        "created_at", nx.monthly_partitions("2026-01", months={months}), default=True
    ),
    indexes=[{indexes}],
    uniques=[nx.Unique("kind", "created_at")],
    checks=[nx.Check("kind <> ''")],
    foreign_keys=[nx.ForeignKey("tenant_id", Tenant)],
)
class Event(msgspec.Struct, kw_only=True):
    id: nx.BigIntIdentity
    created_at: Annotated[datetime, Column(primary_key=True, server_default="now()")]
    kind: str
    tenant_id: str
{columns}

@{schema}.table("Reading", foreign_keys=[nx.ForeignKey(("event_id", "event_at"), Event)])
class Reading(msgspec.Struct, kw_only=True):
    id: nx.BigIntIdentity
    event_id: BigInt
    event_at: datetime


@process("{schema}-{process}-partitions-ahead", always_run=True)
def ahead(ctx: ProcessContext) -> None:
    nx.create_partitions_ahead(ctx, Event, months=2, today=date(2026, 3, 10))
"""


def models(
    workdir: Path,
    schema: str,
    *,
    months: int = 3,
    indexes: str = 'nx.Index("kind")',
    columns: str = "",
    process: str = "0001",
) -> Any:
    """The models package of `MODELS`; each package registers its process under a name of its
    own (`process`): the registry is global."""
    source = MODELS.format(
        schema=schema, months=months, indexes=indexes, columns=columns, process=process
    )
    return load_models(write_models(workdir / "pkgs", source))


def test_diff_creates_partitioned_tables_and_leaves_partitions_made_ahead(
    fresh_database_url: str, tmp_path: Path
) -> None:
    schema = f"pd_{secrets.token_hex(3)}"
    root = tmp_path / "migrations"
    first = models(tmp_path, schema)
    [generated] = generate_migrations(fresh_database_url, first, root, label="events")
    text = generated.text
    assert f'create table "{schema}"."Event" (' in text
    assert ") partition by RANGE (created_at);" in text
    assert (
        f'create table "{schema}"."Event_2026_03" partition of "{schema}"."Event" FOR VALUES'
        in text
    )
    # Parent's keys and index made on the parent only, once; PostgreSQL copies them itself.
    assert (
        f'alter table "{schema}"."Event" add constraint "PK_Event" PRIMARY KEY (id, created_at);'
        in text
    )
    assert f'CREATE INDEX "IDX_Event_kind" ON {schema}."Event" USING btree (kind);' in text
    assert "ON ONLY" not in text and 'PRIMARY KEY using index "PK_Event"' not in text
    assert "Event_2026_01_pkey" not in text and "_fkey" not in text
    result = migrate(fresh_database_url, root, processes=first.processes)
    assert result.processes == [f"{schema}-0001-partitions-ahead"]
    assert check_drift(fresh_database_url, first) == []
    partitions = query(
        fresh_database_url,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'Event'"
        " AND p.relnamespace = %s::regnamespace ORDER BY 1",
        [schema],
    )
    # The process made April and May ahead; migrate again: nothing new, no error.
    assert [r[0] for r in partitions] == [
        "Event_2026_01",
        "Event_2026_02",
        "Event_2026_03",
        "Event_2026_04",
        "Event_2026_05",
        "Event_default",
    ]
    migrate(fresh_database_url, root, processes=first.processes)
    assert generate_migrations(fresh_database_url, first, root) == []  # made ahead: no drift

    # One more declared month (May exists already), a new index and a column.
    second = models(
        tmp_path,
        schema,
        months=6,
        indexes='nx.Index("kind"), nx.Index("tenant_id")',
        columns="    note: str | None = None\n",
        process="0002",
    )
    [change] = generate_migrations(fresh_database_url, second, root, label="more")
    assert f'create table "{schema}"."Event_2026_06" partition of' in change.text
    assert "Event_2026_05" not in change.text and "Event_2026_04" not in change.text
    assert f'alter table "{schema}"."Event" add column "note" text;' in change.text
    # PostgreSQL builds no index CONCURRENTLY on a partitioned table: the hazard says so.
    assert "INDEX CONCURRENTLY IF NOT EXISTS" not in change.text
    assert "-- hazard: long-lock: builds index IDX_Event_tenant_id on Event" in change.text
    assert "of every partition" in change.text
    migrate(fresh_database_url, root, allow=("long-lock",))
    assert check_drift(fresh_database_url, second) == []
    # The new index reached every partition, those made ahead too.
    counted = query(
        fresh_database_url,
        "SELECT count(*) FROM pg_indexes WHERE schemaname = %s AND indexdef LIKE '%%(tenant_id)'",
        [schema],
    )
    assert counted[0][0] == 1 + 6 + 1  # the parent, January to June, the default


def test_a_fresh_database_gets_the_same_from_the_files(
    fresh_database_url: str, admin_url: str, tmp_path: Path
) -> None:
    """The files written against one database build another from nothing, and a diff there is
    empty (the generated file is complete, not dependent on what the first database had)."""
    schema = f"pf_{secrets.token_hex(3)}"
    root = tmp_path / "migrations"
    declared = models(tmp_path, schema)
    generate_migrations(fresh_database_url, declared, root, label="events")
    from tests.conftest import create_database, drop_database

    other = create_database(admin_url, "nxdata_t")
    try:
        url = psycopg.conninfo.make_conninfo(admin_url, dbname=other)
        migrate(url, root)
        assert check_drift(url, declared) == []
        assert generate_migrations(url, declared, root) == []
    finally:
        drop_database(admin_url, other)


CHANGES = """
{schema} = nx.Schema("{schema}")


@{schema}.table("Tenant")
class Tenant(msgspec.Struct, kw_only=True):
    id: Annotated[str, Column(primary_key=True)]


@{schema}.table(
    "Event",
    partition_by=nx.PartitionBy.range("created_at", nx.monthly_partitions("2026-01", {months})),
    indexes=[{index}],
    uniques=[{unique}],
    foreign_keys=[{foreign_key}],
    checks=[{check}],
)
class Event(msgspec.Struct, kw_only=True):
    id: nx.BigIntIdentity
    created_at: Annotated[datetime, Column(primary_key=True, server_default="now()")]
    kind: str
    tenant_id: str
"""


def test_diff_changes_keys_of_an_existing_partitioned_table(
    fresh_database_url: str, tmp_path: Path
) -> None:
    schema = f"pc_{secrets.token_hex(3)}"
    root = tmp_path / "migrations"

    def change(label: str, *, unsafe: bool = False, **parts: str) -> str:
        values = {"months": "3", "index": 'nx.Index("kind")', "unique": "", "foreign_key": ""}
        source = CHANGES.format(schema=schema, **{"check": "", **values, **parts})
        declared = load_models(write_models(tmp_path / "pkgs", source))
        [generated] = generate_migrations(
            fresh_database_url, declared, root, label=label, unsafe=unsafe
        )
        migrate(fresh_database_url, root, allow=("long-lock",))
        assert check_drift(fresh_database_url, declared) == []
        return generated.text

    change("init")
    query(fresh_database_url, f"INSERT INTO {schema}.\"Tenant\" VALUES ('t1')")
    query(
        fresh_database_url,
        f'INSERT INTO {schema}."Event" (created_at, kind, tenant_id)'
        " VALUES ('2026-02-03 10:00+00', 'k', 't1')",
    )
    keys = {
        "unique": 'nx.Unique("kind", "created_at")',
        "foreign_key": 'nx.ForeignKey("tenant_id", Tenant)',
        "check": "nx.Check(\"kind <> ''\")",
    }
    added = change("keys", **keys)
    table = f'"{schema}"."Event"'
    assert f'alter table {table} add constraint "UQ_Event_kind_created_at" UNIQUE' in added
    # valid at once: PostgreSQL 17 and older refuse NOT VALID foreign keys on partitioned tables
    assert f'alter table {table} add constraint "FK_Event_tenant_id_Tenant_id" FOREIGN KEY' in (
        added
    )
    assert "FOREIGN KEY (tenant_id) REFERENCES" in added and 'Tenant"(id) not valid' not in added
    assert "apply it in a quiet hour (allow long-lock)" in added  # the hazard's recipe
    assert "Event_2026_01" not in added  # no partition's copy
    # A month left out of the declarations stays (it holds rows); the index goes.
    dropped = change("fewer", months="2", index="", **keys)
    assert dropped.strip().endswith(f'drop index if exists "{schema}"."IDX_Event_kind";')
    assert "Event_2026_03" not in dropped
    removed = change("no_keys", months="2", index="", unsafe=True)
    assert 'drop constraint if exists "UQ_Event_kind_created_at"' in removed
    assert "drop index" not in removed  # the key's index goes with the key
    assert where_rows(fresh_database_url, schema) == {"Event_2026_02": 1}


def where_rows(url: str, schema: str) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        return where_rows_are(conn, f'"{schema}"."Event"')


def test_partitions_ahead_refuse_names_postgres_would_cut(schema_name: str) -> None:
    # declared partitions are checked at declaration; months made ahead must be too, or
    # "E"*57 + "_2026_01" and "_2026_02" would become one truncated name (months skipped)
    january = nx.Partition(
        "jan", start=datetime(2026, 1, 1, tzinfo=UTC), end=datetime(2026, 2, 1, tzinfo=UTC)
    )
    _, event = declare_events(
        schema_name, nx.PartitionBy.range("created_at", [january]), table="E" * 57
    )
    with pytest.raises(DeclarationError, match="longer than PostgreSQL's 63 bytes"):
        nx.partitions_ahead(event, months=2, today=date(2026, 1, 5))


def test_create_partitions_ahead_from_two_processes_at_once(
    conn: psycopg.Connection[Any], test_database_url: str, schema_name: str
) -> None:
    """Two jobs (threads on their own pools here) racing on the same months: IF NOT EXISTS
    alone lets one fail with "already exists"; neither may, and each month is made once."""
    import threading

    s, event = declare_events(schema_name, nx.PartitionBy.range("created_at", MONTHS_2026[:1]))
    apply(conn, s)
    made: list[list[str]] = []
    errors: list[BaseException] = []
    for round_ in range(6):
        barrier = threading.Barrier(2)
        today = date(2026, 1, 5) + timedelta(days=31 * 3 * round_)

        def job(today: date = today, barrier: threading.Barrier = barrier) -> None:
            try:
                with nx.Database(test_database_url, max_size=1) as own:
                    barrier.wait()
                    made.append(nx.create_partitions_ahead(own, event, months=2, today=today))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=job) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    names = [name for batch in made for name in batch]
    assert len(names) == len(set(names))  # each made by one of them, reported once


def test_diff_warns_of_rows_of_a_new_month_in_the_default_partition(
    fresh_database_url: str, tmp_path: Path
) -> None:
    """A month declared after its rows arrived: they sit in the default partition, and
    PostgreSQL refuses the new partition ("updated partition constraint for default partition
    ... would be violated"); the diff says so, with the count and the way to move them."""
    schema = f"pdef_{secrets.token_hex(3)}"
    root = tmp_path / "migrations"
    generate_migrations(fresh_database_url, models(tmp_path, schema), root, label="events")
    migrate(fresh_database_url, root)
    query(fresh_database_url, f"INSERT INTO {schema}.\"Tenant\" VALUES ('t1')")
    query(
        fresh_database_url,
        f'INSERT INTO {schema}."Event" (created_at, kind, tenant_id) VALUES'
        " ('2026-04-03 10:00+00', 'april', 't1'), ('2026-05-03 10:00+00', 'may', 't1'),"
        " ('2026-03-03 10:00+00', 'march', 't1')",
    )
    assert where_rows(fresh_database_url, schema) == {"Event_2026_03": 1, "Event_default": 2}
    april = models(tmp_path, schema, months=4, process="0002")
    [dry] = generate_migrations(fresh_database_url, april, root, dry_run=True)
    [hazard] = [h for h in dry.diff.hazards if h.kind == "fails-on-data"]
    assert hazard.rows == 1  # April's row; May's stays in the default partition
    assert "adds partition Event_2026_04 to Event" in hazard.reason
    assert "default partition Event_default" in hazard.reason
    assert dry.refused is not None and "would fail on existing rows" in dry.refused
    assert "-- hazard: fails-on-data: adds partition Event_2026_04" in dry.text
    with pytest.raises(UnsafeMigrationError, match=r"Event_default .*\(1 row would fail\)"):
        generate_migrations(fresh_database_url, april, root)
    # The recipe, run as written, moves the row; the partition then exists: nothing to diff.
    move = hazard.recipe.partition("in one transaction (")[2].partition("), then run")[0]
    with psycopg.connect(fresh_database_url) as conn:
        for statement in move.split("; "):
            conn.execute(statement)
    assert where_rows(fresh_database_url, schema) == {
        "Event_2026_03": 1,
        "Event_2026_04": 1,
        "Event_default": 1,
    }
    assert generate_migrations(fresh_database_url, april, root) == []
    assert check_drift(fresh_database_url, april) == []


@pytest.mark.parametrize(
    ("key", "bounds", "rows"),
    [
        # list: the new values' rows, NULL included when the partition takes it
        ("LIST (region)", ["IN ('us')", "IN ('fr', NULL)", "IN ('zz')"], ["us", "fr", None, "de"]),
        # range over two columns, MINVALUE / MAXVALUE, rows with a NULL key (default only)
        (
            "RANGE (region, amount)",
            [
                "FROM ('fr', 10) TO ('fr', 20)",
                "FROM ('fr', MINVALUE) TO ('fr', MAXVALUE)",
                "FROM (MINVALUE, MINVALUE) TO ('de', MAXVALUE)",
                "FROM ('fr', 20) TO (MAXVALUE, MAXVALUE)",
                "FROM ('fr', 30) TO ('us', 0)",
            ],
            [("fr", 5), ("fr", 15), ("fr", 25), ("de", 1), ("us", 0), ("us", None), (None, 3)],
        ),
        # an expression key
        ("LIST (lower(region))", ["IN ('us')", "IN ('fr')", "IN ('xx')"], ["US", "us", "FR", "de"]),
    ],
)
def test_default_partition_check_counts_what_postgres_refuses(
    conn: psycopg.Connection[Any], schema_name: str, key: str, bounds: list[str], rows: list[Any]
) -> None:
    """The hazard's check counts the default partition's rows that the new partition would
    take: PostgreSQL refuses the partition exactly when it counts any."""
    from nxdata.migrations.hazards import classify
    from nxdata.migrations.inspect import target_state

    table = f'"{schema_name}"."T"'
    conn.execute(f"CREATE SCHEMA {schema_name}")
    conn.execute(f"CREATE TABLE {table} (region text, amount int) PARTITION BY {key}")
    conn.execute(f'CREATE TABLE "{schema_name}"."T_default" PARTITION OF {table} DEFAULT')
    for row in rows:
        values = row if isinstance(row, tuple) else (row, 0)
        conn.execute(f"INSERT INTO {table} VALUES (%s, %s)", values)
    state = target_state(conn)
    for bound in bounds:
        statement = f'CREATE TABLE "{schema_name}"."T_new" PARTITION OF {table} FOR VALUES {bound}'
        [hazard] = classify([statement], state)
        assert hazard.kind == "fails-on-data" and hazard.check is not None
        counted = conn.execute(hazard.check).fetchone()
        assert counted is not None
        refused = False
        try:
            with conn.transaction():
                conn.execute(statement)
                raise _Rollback
        except psycopg.errors.CheckViolation:
            refused = True
        except _Rollback:
            pass
        assert refused == (counted[0] > 0), (bound, counted[0])
    # A table created in the same migration is empty: no hazard.
    assert not classify(
        [
            f'CREATE TABLE "{schema_name}"."N" (region text) PARTITION BY LIST (region)',
            f'CREATE TABLE "{schema_name}"."N_d" PARTITION OF "{schema_name}"."N" DEFAULT',
            f'CREATE TABLE "{schema_name}"."N_fr" PARTITION OF "{schema_name}"."N" '
            "FOR VALUES IN ('fr')",
        ],
        state,
    )


class _Rollback(Exception):
    pass


QUOTED = """
{schema} = nx.Schema("{schema}")


@{schema}.table(
    'Ev"ent',
    partition_by=nx.PartitionBy.range(
        "created_at", nx.monthly_partitions("2026-01", months={months}), default=True
    ),
    indexes=[nx.Index("kind")],
)
class Event(msgspec.Struct, kw_only=True):
    id: nx.BigIntIdentity
    created_at: Annotated[datetime, Column(primary_key=True)]
    kind: str
"""


def test_diff_of_a_partitioned_table_whose_name_holds_a_double_quote(
    fresh_database_url: str, tmp_path: Path
) -> None:
    """schemainspect names a partition's parent without doubling a quote in its name, then
    cannot find that parent (a raw KeyError); nxdata's inspector quotes it."""
    schema = f"pq_{secrets.token_hex(3)}"
    root = tmp_path / "migrations"

    def declared(months: int) -> Any:
        source = QUOTED.format(schema=schema, months=months)
        return load_models(write_models(tmp_path / "pkgs", source))

    first = declared(2)
    [created] = generate_migrations(fresh_database_url, first, root, label="events")
    assert (
        f'create table "{schema}"."Ev""ent_2026_02" partition of "{schema}"."Ev""ent" FOR VALUES'
        in created.text
    )
    migrate(fresh_database_url, root)
    assert check_drift(fresh_database_url, first) == []
    assert generate_migrations(fresh_database_url, first, root) == []
    more = declared(3)
    [added] = generate_migrations(fresh_database_url, more, root, label="march")
    assert f'create table "{schema}"."Ev""ent_2026_03" partition of' in added.text
    assert "fails-on-data" in added.text  # the default partition (empty: no row would fail)
    migrate(fresh_database_url, root)
    assert check_drift(fresh_database_url, more) == []
