"""Raw psycopg 3, sync: the limit every other contender is divided by.

Hand-written SQL, server-side prepared statements (``prepare=True``), rows as plain tuples, default
loaders (so jsonb goes through psycopg's ``json.loads`` loader), a ``psycopg_pool`` pool of
autocommit connections borrowed per operation, COPY for bulk inserts, ``cursor.stream`` for
streaming.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import psycopg_pool
from psycopg.types.json import Jsonb

from ..data import SQL, as_tuples
from .base import Contender
from .handwritten import compose_filter

__all__ = ["Psycopg"]


class Psycopg(Contender):
    name = "psycopg"
    label = "raw psycopg 3 (tuples, prepared)"

    def setup(self) -> None:
        self.pool: psycopg_pool.ConnectionPool[Any] = psycopg_pool.ConnectionPool(
            self.ctx.url,
            min_size=self.ctx.pool_size,
            max_size=self.ctx.pool_size,
            kwargs={"autocommit": True},
            open=True,
        )
        self.pool.wait()
        self.executor = ThreadPoolExecutor(self.ctx.workers)

    def close(self) -> None:
        self.executor.shutdown()
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
            return conn.execute(SQL.fetch_all, prepare=True).fetchall()

    def stream(self) -> int:
        count = 0
        with self.pool.connection() as conn, conn.cursor() as cur:
            for _ in cur.stream(SQL.stream_all, size=1000):
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

    def prepare_bulk_insert(self, rows: list[dict[str, Any]]) -> tuple[Any, ...]:
        return (as_tuples(rows, wrap_json=True),)

    def bulk_insert(self, rows: list[tuple[Any, ...]]) -> None:
        with (
            self.pool.connection() as conn,
            conn.cursor() as cur,
            cur.copy(SQL.copy_bulk) as copy,
        ):
            for row in rows:
                copy.write_row(row)

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

    def concurrency(self, batches: list[list[str]]) -> None:
        for future in [self.executor.submit(self.pk_lookup, ids) for ids in batches]:
            future.result()
