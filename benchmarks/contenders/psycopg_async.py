"""Raw psycopg 3, asyncio: the same hand-written, prepared, tuple-returning work as `Psycopg`
on an ``AsyncConnectionPool`` — the baseline nxdata async is held to."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import psycopg_pool
from psycopg.types.json import Jsonb, JsonbDumper

from ..data import SQL
from .base import Contender

__all__ = ["PsycopgAsync"]

_PK = (SQL.pk_lookup, SQL.pk_write, SQL.pk_wallet)
_IDS = (SQL.ids_item, SQL.ids_write, SQL.ids_wallet)


class PsycopgAsync(Contender):
    name = "psycopg-async"
    label = "raw psycopg 3, async"
    is_async = True
    concurrency = "tasks"
    inapplicable = {
        "compile_cold": "I/O-free: the same as psycopg",
        "compile_cached": "I/O-free: the same as psycopg",
        "fetch_n": "not in the scale curves",
        "stream_n": "not in the scale curves",
    }
    notes = {
        "delete_by_id": "checks the row count (no row back)",
        "transfer": "locks and reads (id, balance) only; updates return nothing",
        "reads_together": "tuples",
        "reads_by_ids": "tuples, in the server's order",
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
            rows: list[Any] = await cur.fetchall()
        return rows

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

    async def bulk_insert(self, rows: Callable[[int], Iterator[tuple[Any, ...]]], n: int) -> int:
        count = 0
        async with self.pool.connection() as conn, conn.cursor() as cur:
            cur.adapters.register_dumper(dict, JsonbDumper)  # the jsonb column's dicts
            async with cur.copy(SQL.copy_bulk) as copy:
                write_row = copy.write_row
                for row in rows(n):
                    await write_row(row)
                    count += 1
        return count

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

    async def reads_one_by_one(self, ops: list[tuple[list[str], ...]]) -> None:
        pool = self.pool
        for op in ops:
            for query, ids in zip(_PK, op, strict=True):
                for id_ in ids:
                    async with pool.connection() as conn:
                        cur = await conn.execute(query, (id_,), prepare=True)
                        assert await cur.fetchone() is not None

    async def reads_together(self, ops: list[tuple[list[str], ...]]) -> None:
        pool = self.pool
        for op in ops:
            async with pool.connection() as conn, conn.pipeline():
                cursors = [
                    await conn.execute(query, (id_,), prepare=True)
                    for query, ids in zip(_PK, op, strict=True)
                    for id_ in ids
                ]
                for cursor in cursors:
                    assert await cursor.fetchone() is not None

    async def reads_by_ids(self, ops: list[tuple[list[str], ...]]) -> None:
        pool = self.pool
        for op in ops:
            for query, ids in zip(_IDS, op, strict=True):
                async with pool.connection() as conn:
                    cur = await conn.execute(query, (ids,), prepare=True)
                    assert len(await cur.fetchall()) == len(ids)

    async def concurrent(self, query: str, batches: list[list[Any]]) -> None:
        work = self.pk_lookup if query == "pk" else self.filtered_query
        await asyncio.gather(*(work(batch) for batch in batches))
