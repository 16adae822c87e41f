"""Raw psycopg 3, sync, through a pool: hand-written SQL, server-side prepared statements
(``prepare=True``), rows as plain tuples, default loaders (so jsonb goes through psycopg's
``json.loads`` loader), a ``psycopg_pool`` pool of autocommit connections borrowed per operation,
COPY for bulk inserts (jsonb by psycopg's own ``JsonbDumper``), ``cursor.stream`` for streaming.

The baseline of the scenarios that have no dedicated-connection twin (`PsycopgConn`): the large
fetch ("raw psycopg default"), concurrency, filter compilation, memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import psycopg_pool
from psycopg.types.json import Jsonb, JsonbDumper

from ..data import SQL
from .base import Contender, Threaded
from .handwritten import compose_filter

__all__ = ["Psycopg"]

_PK = (SQL.pk_lookup, SQL.pk_write, SQL.pk_wallet)
_IDS = (SQL.ids_item, SQL.ids_write, SQL.ids_wallet)


class Psycopg(Threaded, Contender):
    name = "psycopg"
    label = "raw psycopg 3 through a pool (tuples, prepared)"
    concurrency = "threads"
    notes = {
        "delete_by_id": "checks the row count (no row back)",
        "transfer": "locks and reads (id, balance) only; updates return nothing",
        "reads_together": "tuples",
        "reads_by_ids": "tuples, in the server's order",
    }

    def setup(self) -> None:
        self.pool: psycopg_pool.ConnectionPool[Any] = psycopg_pool.ConnectionPool(
            self.ctx.url,
            min_size=self.ctx.pool_size,
            max_size=self.ctx.pool_size,
            kwargs={"autocommit": True},
            open=True,
        )
        self.pool.wait()

    def close(self) -> None:
        self.close_threads()
        self.pool.close()

    def borrow(self, n: int) -> None:
        pool = self.pool
        for _ in range(n):
            pool.putconn(pool.getconn())

    def pk_lookup(self, ids: list[str]) -> None:
        pool = self.pool
        for id_ in ids:
            with pool.connection() as conn:
                row = conn.execute(SQL.pk_lookup, (id_,), prepare=True).fetchone()
            assert row is not None

    def filtered_query(self, params: list[tuple[str, Decimal, Decimal, int]]) -> None:
        pool = self.pool
        for p in params:
            with pool.connection() as conn:
                conn.execute(SQL.filtered, p, prepare=True).fetchall()

    def large_fetch(self) -> list[Any]:
        with self.pool.connection() as conn:
            rows: list[Any] = conn.execute(SQL.fetch_all, prepare=True).fetchall()
        return rows

    def fetch_n(self, n: int) -> list[Any]:
        with self.pool.connection() as conn:
            rows: list[Any] = conn.execute(SQL.fetch_n, (n,), prepare=True).fetchall()
        return rows

    def stream(self) -> int:
        count = 0
        with self.pool.connection() as conn, conn.cursor() as cur:
            for _ in cur.stream(SQL.stream_all, size=1000):
                count += 1
        return count

    def stream_n(self, n: int) -> int:
        count = 0
        with self.pool.connection() as conn, conn.cursor() as cur:
            for _ in cur.stream(SQL.fetch_n, (n,), size=1000):
                count += 1
        return count

    def insert_one(self, rows: list[dict[str, Any]]) -> None:
        pool = self.pool
        for r in rows:
            with pool.connection() as conn:
                row = conn.execute(
                    SQL.insert_one,
                    (
                        r["id"],
                        Jsonb(r["metadata"]),
                        r["name"],
                        r["status"],
                        r["price"],
                        r["quantity"],
                        r["active"],
                    ),
                    prepare=True,
                ).fetchone()
            assert row is not None

    def bulk_insert(self, rows: Callable[[int], Iterator[tuple[Any, ...]]], n: int) -> int:
        count = 0
        with self.pool.connection() as conn, conn.cursor() as cur:
            cur.adapters.register_dumper(dict, JsonbDumper)  # the jsonb column's dicts
            with cur.copy(SQL.copy_bulk) as copy:
                write_row = copy.write_row
                for row in rows(n):
                    write_row(row)
                    count += 1
        return count

    def update_by_id(self, changes: list[tuple[str, str, int]]) -> None:
        pool = self.pool
        for id_, status, quantity in changes:
            with pool.connection() as conn:
                row = conn.execute(SQL.update_one, (status, quantity, id_), prepare=True).fetchone()
            assert row is not None

    def delete_by_id(self, ids: list[str]) -> None:
        pool = self.pool
        for id_ in ids:
            with pool.connection() as conn:
                assert conn.execute(SQL.delete_one, (id_,), prepare=True).rowcount == 1

    def compile_cold(self, filters: list[dict[str, Any]]) -> None:
        for f in filters:
            compose_filter(f)

    def compile_cached(self, filters: list[dict[str, Any]]) -> None:
        for f in filters:
            compose_filter(f)

    def transfer(self, moves: list[tuple[str, str, Decimal]]) -> None:
        pool = self.pool
        for source, target, amount in moves:
            with pool.connection() as conn, conn.transaction():
                rows = conn.execute(SQL.lock_wallets, ([source, target],), prepare=True).fetchall()
                balance = dict(rows)
                conn.execute(SQL.set_balance, (balance[source] - amount, source), prepare=True)
                conn.execute(SQL.set_balance, (balance[target] + amount, target), prepare=True)

    def reads_one_by_one(self, ops: list[tuple[list[str], ...]]) -> None:
        pool = self.pool
        for op in ops:
            for query, ids in zip(_PK, op, strict=True):
                for id_ in ids:
                    with pool.connection() as conn:
                        assert conn.execute(query, (id_,), prepare=True).fetchone() is not None

    def reads_together(self, ops: list[tuple[list[str], ...]]) -> None:
        pool = self.pool
        for op in ops:
            with pool.connection() as conn, conn.pipeline():
                cursors = [
                    conn.execute(query, (id_,), prepare=True)
                    for query, ids in zip(_PK, op, strict=True)
                    for id_ in ids
                ]
                assert all(cursor.fetchone() is not None for cursor in cursors)

    def reads_by_ids(self, ops: list[tuple[list[str], ...]]) -> None:
        pool = self.pool
        for op in ops:
            for query, ids in zip(_IDS, op, strict=True):
                with pool.connection() as conn:
                    rows = conn.execute(query, (ids,), prepare=True).fetchall()
                assert len(rows) == len(ids)
