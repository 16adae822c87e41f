"""The scenarios: what each measures, how many operations one measurement holds, and the
untimed preparation of its arguments (ids to look up, rows to insert, rows to delete...)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg

from . import data
from .contenders import BASELINE, BASELINE_POOL
from .settings import Sizes

__all__ = [
    "MEMORY",
    "SCENARIOS",
    "Point",
    "Scenario",
    "Workload",
    "curve_points",
    "filter_spec",
    "matrix_points",
]


@dataclass(frozen=True, slots=True)
class Scenario:
    """One thing users do, measured for every contender.

    ``method``: the contender method that does it; ``ops``: operations in one timed measurement
    (the reported time is per operation); ``unit``: how the per-operation time is shown;
    ``heavy``: few rounds (100k-row scenarios); ``throughput``: shown as operations per second;
    ``baseline``: the contender its ratios are to (raw psycopg on a dedicated connection, else
    through a pool); ``group``: scenarios of one group run interleaved round by round, so that
    their figures pair up (the pipelined reads); ``series``: measured at several points
    (``"matrix"``: concurrency; ``"curve"``: the scale curves), the headline point standing for
    the scenario in the tables.
    """

    key: str
    number: str
    title: str
    method: str
    ops: Callable[[Sizes], int]
    unit: str = "us"
    heavy: bool = False
    throughput: bool = False
    memory: bool = False
    what: str = ""
    expect: Callable[[Sizes], int] | None = None
    baseline: str = BASELINE
    group: str | None = None
    series: str | None = None

    def describe(self, sizes: Sizes) -> str:
        return self.title.format(s=sizes)

    def rounds(self, sizes: Sizes) -> int:
        if self.series == "matrix":
            return sizes.conc_rounds
        if self.series == "curve":
            return sizes.curve_rounds
        if self.method == "bulk_insert":
            return sizes.bulk_rounds
        return sizes.heavy_rounds if self.heavy else sizes.rounds


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "pk_lookup",
        "1",
        "Primary-key lookup (find_by_id), one row",
        "pk_lookup",
        lambda s: s.pk_ops,
        what="one full row returned as the contender's row type (pools: a connection per lookup)",
    ),
    Scenario(
        "filtered_query",
        "2",
        "Small filtered query: eq + between + gt, ORDER BY, LIMIT 20",
        "filtered_query",
        lambda s: s.filter_ops,
        what="status = ? AND price BETWEEN ? AND ? AND quantity > ? ORDER BY created_at DESC",
    ),
    Scenario(
        "large_fetch",
        "3",
        "Large fetch: {s.fetch_rows:,} rows into typed rows (jsonb decoded)",
        "large_fetch",
        lambda s: 1,
        unit="ms",
        heavy=True,
        what="the whole Item table into a list of the contender's row type",
        expect=lambda s: s.fetch_rows,
        baseline=BASELINE_POOL,
    ),
    Scenario(
        "insert_one",
        "4",
        "Single insert with RETURNING",
        "insert_one",
        lambda s: s.insert_ops,
        what="one row from a dict, the full row (server defaults included) back",
    ),
    Scenario(
        "bulk_insert",
        "5",
        "Bulk insert of {s.bulk_rows:,} rows from a generator",
        "bulk_insert",
        lambda s: 1,
        unit="ms",
        heavy=True,
        what="an import job's generator of tuples (the insert type's fields in order), consumed "
        "inside the timed region by every contender, into an empty table",
        expect=lambda s: s.bulk_rows,
    ),
    Scenario(
        "update_by_id",
        "6",
        "Update by id (two columns, modified_at = now())",
        "update_by_id",
        lambda s: s.update_ops,
        what="the updated row back (the ORMs: get, change, commit)",
    ),
    Scenario(
        "delete_by_id",
        "7",
        "Delete by id",
        "delete_by_id",
        lambda s: s.delete_ops,
        what="rows made beforehand, untimed (the ORMs: get, delete, commit)",
    ),
    Scenario(
        "compile_cold",
        "8a",
        "Filter compilation alone, cold (shape not seen before)",
        "compile_cold",
        lambda s: s.compile_cold_ops,
        what="filter dict to SQL text + parameters, no database",
        baseline=BASELINE_POOL,
    ),
    Scenario(
        "compile_cached",
        "8b",
        "Filter compilation alone, repeated shape (cache hit)",
        "compile_cached",
        lambda s: s.compile_cached_ops,
        what="the same shape with new values each time",
        baseline=BASELINE_POOL,
    ),
    Scenario(
        "borrow",
        "8c",
        "Connection borrow and return (nxdata: with its socket check and ambient lookup)",
        "borrow",
        lambda s: s.borrow_ops,
        what="take a pooled connection and give it back, no statement (the per-call overhead)",
        baseline=BASELINE_POOL,
    ),
    Scenario(
        "transfer",
        "9",
        "Wallet transfer: transaction, row lock, two updates",
        "transfer",
        lambda s: s.transfer_ops,
        what="BEGIN; lock both wallets FOR UPDATE; update each balance; COMMIT",
    ),
    Scenario(
        "concurrency",
        "10",
        "Concurrency: tasks/threads sharing a pool — headline {s.workers} on a pool of "
        "{s.pool_size}, PK lookups",
        "concurrent",
        lambda s: s.concurrent_ops,
        throughput=True,
        what="throughput over the whole pool; every pool size, task count and query in the matrix",
        baseline=BASELINE_POOL,
        series="matrix",
    ),
    Scenario(
        "reads_one_by_one",
        "11a",
        "Ten find_by_id across three tables, one after another",
        "reads_one_by_one",
        lambda s: s.reads_ops,
        what="4 Item, 3 ItemWrite and 3 Wallet rows by primary key: ten round trips",
        group="reads",
    ),
    Scenario(
        "reads_together",
        "11b",
        "The same ten reads together (one round trip, pipeline mode)",
        "reads_together",
        lambda s: s.reads_ops,
        what="nxdata: db.read_together(repo.later.find_by_id(x), ...); raw psycopg: pipeline()",
        group="reads",
    ),
    Scenario(
        "reads_by_ids",
        "11c",
        "The same ten rows by find_by_ids (one = ANY query per table)",
        "reads_by_ids",
        lambda s: s.reads_ops,
        what="three queries, WHERE id = ANY(%s), rows in the order of the ids",
        group="reads",
    ),
    Scenario(
        "fetch_curve",
        "12a",
        "Fetch time vs rows (typed rows, jsonb decoded), {s.curve_min:,} to {s.curve_max:,}",
        "fetch_n",
        lambda s: 1,
        unit="ms",
        heavy=True,
        what="SELECT ... LIMIT n into a list of the contender's row type; headline: the largest n",
        baseline=BASELINE_POOL,
        series="curve",
    ),
    Scenario(
        "stream_curve",
        "12b",
        "Stream time vs rows, {s.curve_min:,} to {s.curve_max:,}",
        "stream_n",
        lambda s: 1,
        unit="ms",
        heavy=True,
        what="iterate n rows (server-side cursor / stream), each dropped; headline: the largest n",
        baseline=BASELINE_POOL,
        series="curve",
    ),
)

MEMORY: tuple[Scenario, ...] = (
    Scenario(
        "memory_fetch",
        "M1",
        "Peak memory of the large fetch ({s.fetch_rows:,} rows held)",
        "large_fetch",
        lambda s: 1,
        unit="MB",
        memory=True,
        what="RSS high-water growth of a fresh child process, rows kept until measured",
        expect=lambda s: s.fetch_rows,
        baseline=BASELINE_POOL,
    ),
    Scenario(
        "memory_stream",
        "M2",
        "Peak memory of streaming {s.stream_rows:,} rows",
        "stream",
        lambda s: 1,
        unit="MB",
        memory=True,
        what="RSS high-water growth of a fresh child process while iterating",
        expect=lambda s: s.stream_rows,
        baseline=BASELINE_POOL,
    ),
)


@dataclass(frozen=True, slots=True)
class Point:
    """One point of a series: its label, the arguments' parameters, and (concurrency) the pool
    size and how many tasks or threads share it."""

    label: str
    query: str = "pk"
    pool: int = 0
    tasks: int = 0
    rows: int = 0


def matrix_points(sizes: Sizes) -> list[Point]:
    """Every concurrency point: query, pool size and task count (threads are the task counts
    that are also in ``conc_threads``)."""
    tasks = sorted({*sizes.conc_tasks, *sizes.conc_threads, sizes.workers})
    return [
        Point(f"{query}/p{pool}/t{n}", query, pool, n)
        for query in ("pk", "filtered")
        for pool in sorted({*sizes.conc_pools, sizes.pool_size})
        for n in tasks
    ]


def headline_point(sizes: Sizes) -> str:
    """The concurrency point that stands for scenario 10 (the former scenario: PK lookups,
    ``workers`` threads or tasks on a pool of ``pool_size``)."""
    return f"pk/p{sizes.pool_size}/t{sizes.workers}"


def curve_points(sizes: Sizes) -> list[Point]:
    return [Point(str(n), rows=n) for n in sizes.curve_rows]


def filter_spec(status: str, low: Decimal, high: Decimal, quantity: int) -> dict[str, Any]:
    """The small filtered query as an nxdata filter dict (LoopBack style)."""
    return {
        "where": {
            "status": status,
            "price": {"between": [low, high]},
            "quantity": {"gt": quantity},
        },
        "order": ["created_at DESC"],
        "limit": 20,
    }


class Workload:
    """Makes each measurement's arguments (untimed): random ids, fresh rows, filter values."""

    def __init__(
        self,
        url: str,
        sizes: Sizes,
        *,
        item_ids: list[str],
        write_ids: list[str],
        wallet_ids: list[str],
        seed: int = 1,
    ) -> None:
        self.url = url
        self.sizes = sizes
        self.item_ids = item_ids
        self.write_ids = write_ids
        self.wallet_ids = wallet_ids
        self.rng = random.Random(seed)
        self._admin: psycopg.Connection[Any] | None = None

    @property
    def admin(self) -> psycopg.Connection[Any]:
        """An autocommit connection for the untimed set-up (made once, reused)."""
        if self._admin is None or self._admin.closed:
            self._admin = psycopg.connect(self.url, autocommit=True)
        return self._admin

    def close(self) -> None:
        if self._admin is not None:
            self._admin.close()

    def args(
        self, scenario: Scenario, *, warmup: bool = False, point: Point | None = None
    ) -> tuple[Any, ...]:
        """Arguments for one measurement (a warm-up bulk insert gets a tenth of the rows: it
        only has to warm caches, and the ORMs' full bulk inserts are slow)."""
        if scenario.series == "matrix":
            assert point is not None
            return self.concurrent(point.query, point.tasks)
        if scenario.series == "curve":
            assert point is not None
            return (point.rows,)
        n = scenario.ops(self.sizes)
        if scenario.method == "bulk_insert":
            return self.bulk_insert(max(1, n // 10) if warmup else self.sizes.bulk_rows)
        make: Callable[[int], tuple[Any, ...]] = getattr(self, scenario.method)
        return make(n)

    def pk_lookup(self, n: int) -> tuple[Any, ...]:
        return (self.rng.choices(self.item_ids, k=n),)

    def _filter_values(self) -> tuple[str, Decimal, Decimal, int]:
        low = self.rng.randrange(90_000)
        return (
            self.rng.choice(data.STATUSES),
            Decimal(low) / 100,
            Decimal(low + 10_000) / 100,
            self.rng.randrange(60),
        )

    def filtered_query(self, n: int) -> tuple[Any, ...]:
        return ([self._filter_values() for _ in range(n)],)

    def large_fetch(self, n: int) -> tuple[Any, ...]:
        return ()

    def insert_one(self, n: int) -> tuple[Any, ...]:
        return (data.make_rows(n, self.rng),)

    def bulk_insert(self, rows: int) -> tuple[Any, ...]:
        """The generator function and how many rows to ask of it: every contender calls
        ``import_rows(rows)`` inside its timed region (the table is emptied first, untimed)."""
        data.truncate(self.admin, data.SQL.bulk)
        return (data.import_rows, rows)

    def update_by_id(self, n: int) -> tuple[Any, ...]:
        ids = self.rng.choices(self.write_ids, k=n)
        return ([(id_, self.rng.choice(data.STATUSES), self.rng.randrange(100)) for id_ in ids],)

    def delete_by_id(self, n: int) -> tuple[Any, ...]:
        rows = data.make_rows(n, self.rng)
        data.copy_rows(self.admin, data.SQL.copy_write, rows)
        return ([r["id"] for r in rows],)

    def compile_cold(self, n: int) -> tuple[Any, ...]:
        return ([filter_spec(*self._filter_values()) for _ in range(n)],)

    compile_cached = compile_cold

    def borrow(self, n: int) -> tuple[Any, ...]:
        return (n,)

    def transfer(self, n: int) -> tuple[Any, ...]:
        moves = []
        for _ in range(n):
            source, target = self.rng.sample(self.wallet_ids, 2)
            moves.append((source, target, Decimal(self.rng.randrange(1, 10_000)) / 100))
        return (moves,)

    def _reads(self, n: int) -> tuple[Any, ...]:
        """`n` operations of ten reads: 4 Item, 3 ItemWrite and 3 Wallet ids, each distinct."""
        sample = self.rng.sample
        return (
            [
                (sample(self.item_ids, 4), sample(self.write_ids, 3), sample(self.wallet_ids, 3))
                for _ in range(n)
            ],
        )

    reads_one_by_one = reads_together = reads_by_ids = _reads

    def concurrent(self, query: str, tasks: int, ops: int | None = None) -> tuple[Any, ...]:
        """One batch per task or thread: PK lookups or filtered queries, at least two each."""
        if ops is None:
            ops = self.sizes.concurrent_ops if query == "pk" else self.sizes.concurrent_filter_ops
        per_task = max(2, math.ceil(ops / tasks))
        batches: list[list[Any]]
        if query == "pk":
            batches = [self.rng.choices(self.item_ids, k=per_task) for _ in range(tasks)]
        else:
            batches = [[self._filter_values() for _ in range(per_task)] for _ in range(tasks)]
        return (query, batches)
