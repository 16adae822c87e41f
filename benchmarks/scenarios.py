"""The scenarios: what each measures, how many operations one measurement holds, and the
untimed preparation of its arguments (ids to look up, rows to insert, rows to delete...)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg

from . import data
from .settings import Sizes

__all__ = ["MEMORY", "SCENARIOS", "Scenario", "Workload", "filter_spec"]


@dataclass(frozen=True, slots=True)
class Scenario:
    """One thing users do, measured for every contender.

    ``method``: the contender method that does it; ``ops``: operations in one timed measurement
    (the reported time is per operation); ``unit``: how the per-operation time is shown;
    ``heavy``: few rounds (100k-row scenarios); ``throughput``: shown as operations per second.
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

    def describe(self, sizes: Sizes) -> str:
        return self.title.format(s=sizes)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "pk_lookup",
        "1",
        "Primary-key lookup (find_by_id), one row",
        "pk_lookup",
        lambda s: s.pk_ops,
        what="a pooled connection per lookup, one full row returned as the contender's row type",
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
        "Bulk insert of {s.bulk_rows:,} rows",
        "bulk_insert",
        lambda s: 1,
        unit="ms",
        heavy=True,
        what="rows given as dicts (raw drivers: tuples) into an empty table",
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
    ),
    Scenario(
        "compile_cached",
        "8b",
        "Filter compilation alone, repeated shape (cache hit)",
        "compile_cached",
        lambda s: s.compile_cached_ops,
        what="the same shape with new values each time",
    ),
    Scenario(
        "borrow",
        "8c",
        "Connection borrow and return (nxdata: with its socket check and ambient lookup)",
        "borrow",
        lambda s: s.borrow_ops,
        what="take a pooled connection and give it back, no statement (the per-call overhead)",
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
        "Concurrency: {s.workers} threads/tasks sharing a pool of {s.pool_size}, PK lookups",
        "concurrency",
        lambda s: s.concurrent_ops,
        throughput=True,
        what="throughput of primary-key lookups over the whole pool",
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
    ),
)


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
        self._bulk_rows: list[dict[str, Any]] | None = None
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

    def args(self, scenario: Scenario, *, warmup: bool = False) -> tuple[Any, ...]:
        """Arguments for one measurement (a warm-up bulk insert gets a tenth of the rows: it
        only has to warm caches, and the ORMs' full bulk inserts are slow)."""
        n = scenario.ops(self.sizes)
        make: Callable[[int], tuple[Any, ...]] = getattr(self, scenario.method)
        args = make(n)
        if warmup and scenario.method == "bulk_insert":
            args = (args[0][: max(1, len(args[0]) // 10)],)
        return args

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

    def bulk_insert(self, n: int) -> tuple[Any, ...]:
        data.truncate(self.admin, data.SQL.bulk)
        if self._bulk_rows is None:  # the table is emptied before each, so the rows can repeat
            self._bulk_rows = data.make_rows(self.sizes.bulk_rows, self.rng)
        return (self._bulk_rows,)

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

    def concurrency(self, n: int) -> tuple[Any, ...]:
        workers = self.sizes.workers
        per_worker = max(1, n // workers)
        return ([self.rng.choices(self.item_ids, k=per_worker) for _ in range(workers)],)
