"""``python -m benchmarks.partition_pruning``: what partition pruning buys a by-month query.

The same rows (360,000 events over 2026, 30,000 a month) in three tables: range-partitioned by
``created_at`` into 12 monthly partitions, and unpartitioned with and without an index on
``created_at``. Each query runs through a `nxdata.Repository`, interleaved across the tables,
and the median of the timed runs is printed with the plan PostgreSQL chose (EXPLAIN ANALYZE of
the statement the repository sent). Runs in a fresh ``nxdata_bench_<random>`` database that is
dropped afterwards (see `benchmarks.environment`); about half a minute on a 2-core machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

import msgspec

import nxdata as nx

from .environment import bench_database, server

SCHEMA = "bench_partitions"
ROWS = 360_000

bench = nx.Schema(SCHEMA)


@bench.table(
    "Event",
    partition_by=nx.PartitionBy.range("created_at", nx.monthly_partitions("2026-01", months=12)),
)
class Event(msgspec.Struct, kw_only=True):
    """Partitioned: 12 monthly partitions."""

    id: nx.BigIntIdentity
    created_at: Annotated[datetime, nx.Column(primary_key=True, server_default="now()")]
    tenant_id: str
    kind: str
    amount: int


@bench.table("FlatIndexed", indexes=[nx.Index("created_at")])
class FlatIndexed(msgspec.Struct, kw_only=True):
    """Unpartitioned, with an index on created_at."""

    id: nx.BigIntIdentity
    created_at: Annotated[datetime, nx.Column(server_default="now()")]
    tenant_id: str
    kind: str
    amount: int


@bench.table("Flat")
class Flat(msgspec.Struct, kw_only=True):
    """Unpartitioned, no index on created_at."""

    id: nx.BigIntIdentity
    created_at: Annotated[datetime, nx.Column(server_default="now()")]
    tenant_id: str
    kind: str
    amount: int


MONTH = {"gte": "2026-06-01T00:00:00Z", "lt": "2026-07-01T00:00:00Z"}
QUERIES: dict[str, Callable[[nx.Repository[Any]], object]] = {
    "count(month)": lambda repo: repo.count({"created_at": MONTH}),
    "sum by kind (month)": lambda repo: repo.aggregate(
        {"created_at": MONTH}, group_by=["kind"], sum=["amount"]
    ),
    "find(month, tenant)": lambda repo: repo.find(
        {"where": {"created_at": MONTH, "tenant_id": "t17"}}
    ),
}


def load(db: nx.Database, rows: int) -> None:
    for statement in nx.create_statements([bench]):
        db.execute(statement)
    step = 365 * 86400 / rows  # seconds between rows: one year in all
    for table in bench:
        db.execute(
            f"INSERT INTO {table.sql_name} (created_at, tenant_id, kind, amount)"
            " SELECT timestamptz '2026-01-01 00:00:00+00' + i * %s * interval '1 second',"
            " 't' || (i %% 50), 'k' || (i %% 7), i %% 1000 FROM generate_series(0, %s - 1) i",
            [step, rows],
        )
    for table in bench:
        db.execute(f"VACUUM ANALYZE {table.sql_name}")


def measure(db: nx.Database, runs: int) -> dict[str, dict[str, float]]:
    """query → table → median milliseconds."""
    repos = {table.name: nx.Repository(db, table.row_type) for table in bench}
    out: dict[str, dict[str, float]] = {}
    for label, query in QUERIES.items():
        times: dict[str, list[float]] = {name: [] for name in repos}
        for round_ in range(runs + 2):  # two warm-up rounds (statements prepared, caches warm)
            order = list(repos)[round_ % 3 :] + list(repos)[: round_ % 3]
            for name in order:
                started = time.perf_counter()
                query(repos[name])
                if round_ >= 2:
                    times[name].append((time.perf_counter() - started) * 1000)
        out[label] = {name: statistics.median(values) for name, values in times.items()}
    return out


def plans(db: nx.Database) -> dict[str, str]:
    """table → the plan of the by-month count, as EXPLAIN ANALYZE shows it."""
    out = {}
    for table in bench:
        repo = nx.Repository(db, table.row_type)
        with db.watch_queries() as seen:
            repo.count({"created_at": MONTH})
        statement = seen[0]
        rows = db.fetch_all(
            "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + statement.sql,
            statement.params,
        )
        out[table.name] = "\n".join(r[0] for r in rows)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.partition_pruning")
    parser.add_argument("--url", help="server (default NXDATA_DATABASE_URL, else embedded)")
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--runs", type=int, default=25)
    args = parser.parse_args(argv)
    with (
        server(args.url) as (url, where),
        bench_database(url) as bench_url,
        nx.Database(bench_url, max_size=2) as db,
    ):
        started = time.perf_counter()
        load(db, args.rows)
        print(f"{where}: {args.rows:,} rows per table in {time.perf_counter() - started:.1f} s")
        figures = measure(db, args.runs)
        names = [t.name for t in bench]
        print(f"\nmedian ms of {args.runs} runs, June 2026 of 12 months:")
        print(f"{'query':24}" + "".join(f"{n:>14}" for n in names))
        for label, row in figures.items():
            print(f"{label:24}" + "".join(f"{row[n]:14.2f}" for n in names))
        for name, plan in plans(db).items():
            print(f"\n-- {name}: count of June\n{plan}")


if __name__ == "__main__":
    main()
