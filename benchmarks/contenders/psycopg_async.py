"""Raw psycopg 3, asyncio: the same hand-written, prepared, tuple-returning work as `Psycopg`
on an ``AsyncConnectionPool`` — the baseline nxdata async is held to."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import psycopg_pool
from psycopg.types.json import Jsonb

from ..data import SQL, as_tuples
from .base import Contender

__all__ = ["PsycopgAsync"]


class PsycopgAsync(Contender):
    name = "psycopg-async"
    label = "raw psycopg 3, async"
    is_async = True
    inapplicable = {
        "compile_cold": "I/O-free: the same as psycopg",
        "compile_cached": "I/O-free: the same as psycopg",
    }

    async def setup(self) -> None:
        self.pool: psycopg_pool.AsyncConnectionPool[Any] = psycopg_pool.AsyncConnectionPool(
            self.ctx.url,
            min_size=self.ctx.pool_size,
            max_size=self.ctx.pool_size,
            kwargs={"autocommit": True},
            open=False,
        )
        await self.pool.open(wait=True)

    async def close(self) -> None:
        await self.pool.close()

    async def pk_lookup(self, ids: list[str]) -> None:
        pool = self.pool
        for id_ in ids:
            async with pool.connection() as conn:
                cur = await conn.execute(SQL.pk_lookup, (id_,), prepare=True)
                row = await cur.fetchone()
            assert row is not None

    async def filtered_query(self, params: list[tuple[str, Decimal, Decimal, int]]) -> None:
        pool = self.pool
        for p in params:
            async with pool.connection() as conn:
                cur = await conn.execute(SQL.filtered, p, prepare=True)
                await cur.fetchall()

    async def large_fetch(self) -> list[Any]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(SQL.fetch_all, prepare=True)
            return await cur.fetchall()

    async def stream(self) -> int:
        count = 0
        async with self.pool.connection() as conn, conn.cursor() as cur:
            async for _ in cur.stream(SQL.stream_all, size=1000):
                count += 1
        return count

    async def insert_one(self, rows: list[dict[str, Any]]) -> None:
        pool = self.pool
        for r in rows:
            async with pool.connection() as conn:
                cur = await conn.execute(
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
                )
                assert await cur.fetchone() is not None

    def prepare_bulk_insert(self, rows: list[dict[str, Any]]) -> tuple[Any, ...]:
        return (as_tuples(rows, wrap_json=True),)

    async def bulk_insert(self, rows: list[tuple[Any, ...]]) -> None:
        async with (
            self.pool.connection() as conn,
            conn.cursor() as cur,
            cur.copy(SQL.copy_bulk) as copy,
        ):
            for row in rows:
                await copy.write_row(row)

    async def update_by_id(self, changes: list[tuple[str, str, int]]) -> None:
        pool = self.pool
        for id_, status, quantity in changes:
            async with pool.connection() as conn:
                cur = await conn.execute(SQL.update_one, (status, quantity, id_), prepare=True)
                assert await cur.fetchone() is not None

    async def delete_by_id(self, ids: list[str]) -> None:
        pool = self.pool
        for id_ in ids:
            async with pool.connection() as conn:
                cur = await conn.execute(SQL.delete_one, (id_,), prepare=True)
                assert cur.rowcount == 1

    async def transfer(self, moves: list[tuple[str, str, Decimal]]) -> None:
        pool = self.pool
        for source, target, amount in moves:
            async with pool.connection() as conn, conn.transaction():
                cur = await conn.execute(SQL.lock_wallets, ([source, target],), prepare=True)
                balance = dict(await cur.fetchall())
                await conn.execute(
                    SQL.set_balance, (balance[source] - amount, source), prepare=True
                )
                await conn.execute(
                    SQL.set_balance, (balance[target] + amount, target), prepare=True
                )

    async def concurrency(self, batches: list[list[str]]) -> None:
        await asyncio.gather(*(self.pk_lookup(ids) for ids in batches))
