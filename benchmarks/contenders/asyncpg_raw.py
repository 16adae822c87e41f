"""asyncpg, raw: the async limit. Hand-written SQL (asyncpg prepares and caches every statement),
Records, binary protocol, jsonb decoded by msgspec through a type codec, ``copy_records_to_table``
for bulk inserts (fed the generator's tuples), a cursor in a transaction for streaming.

The pool's connections get the text-format codec ``set_type_codec("jsonb",
decoder=msgspec.json.decode, ...)``: msgspec is called directly, with no Python wrapper per value.
Binary COPY needs a binary-format codec, so bulk inserts use one more connection, opened at set-up,
whose jsonb codec is the binary form (a version byte, then the JSON text).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import msgspec

import nxdata as nx

from ..data import BULK_COLUMNS, SQL, ItemBulk
from ..environment import asyncpg_kwargs
from .base import Contender

__all__ = ["Asyncpg"]

_N = {
    name: SQL.numbered(value)
    for name, value in vars(SQL).items()
    if not name.startswith("_") and isinstance(value, str)
}
_encode = msgspec.json.encode
_decode = msgspec.json.decode


def _encode_text(value: Any) -> str:
    return _encode(value).decode()


def _encode_binary(value: Any) -> bytes:
    return b"\x01" + _encode(value)  # binary jsonb: a version byte, then the JSON text


def _decode_binary(data: bytes) -> Any:
    return _decode(memoryview(data)[1:])


async def _init(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=_encode_text, decoder=_decode, schema="pg_catalog")


async def _init_copy(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb",
        encoder=_encode_binary,
        decoder=_decode_binary,
        schema="pg_catalog",
        format="binary",
    )


async def _no_reset(conn: asyncpg.Connection) -> None:
    # The work here leaves no session state behind (no SET, LISTEN, advisory locks or open
    # cursors), so skip asyncpg's reset query on release: one round trip fewer, as a careful
    # hand-written service would do. This is the limit, after all.
    return None


_PK = (_N["pk_lookup"], _N["pk_write"], _N["pk_wallet"])
_IDS = (_N["ids_item"], _N["ids_write"], _N["ids_wallet"])


class Asyncpg(Contender):
    name = "asyncpg"
    label = "raw asyncpg (Records, msgspec jsonb codec)"
    is_async = True
    concurrency = "tasks"
    inapplicable = {
        "compile_cold": "hand-written SQL: the same as psycopg",
        "compile_cached": "hand-written SQL: the same as psycopg",
        "reads_together": "asyncpg pipelines no different statements (one at a time)",
    }
    notes = {
        "delete_by_id": "checks the status (no row back)",
        "transfer": "locks and reads (id, balance) only; updates return nothing",
        "reads_by_ids": "Records, in the server's order",
    }

    async def setup(self) -> None:
        self.pool: asyncpg.Pool = await asyncpg.create_pool(
            min_size=self.ctx.pool_size,
            max_size=self.ctx.pool_size,
            init=_init,
            reset=_no_reset,
            **asyncpg_kwargs(self.ctx.url),
        )
        bulk = nx.table_of(ItemBulk)
        self._bulk = (bulk.name, bulk.schema.name)
        self.copy_conn: asyncpg.Connection = await asyncpg.connect(**asyncpg_kwargs(self.ctx.url))
        await _init_copy(self.copy_conn)

    async def close(self) -> None:
        await self.copy_conn.close()
        await self.pool.close()

    async def pk_lookup(self, ids: list[str]) -> None:
        pool, query = self.pool, _N["pk_lookup"]
        for id_ in ids:
            async with pool.acquire() as conn:
                row = await conn.fetchrow(query, id_)
            assert row is not None

    async def filtered_query(self, params: list[tuple[str, Decimal, Decimal, int]]) -> None:
        pool, query = self.pool, _N["filtered"]
        for p in params:
            async with pool.acquire() as conn:
                await conn.fetch(query, *p)

    async def large_fetch(self) -> list[Any]:
        async with self.pool.acquire() as conn:
            return await conn.fetch(_N["fetch_all"])  # type: ignore[no-any-return]

    async def fetch_n(self, n: int) -> list[Any]:
        async with self.pool.acquire() as conn:
            return await conn.fetch(_N["fetch_n"], n)  # type: ignore[no-any-return]

    async def stream(self) -> int:
        count = 0
        async with self.pool.acquire() as conn, conn.transaction():
            async for _ in conn.cursor(_N["stream_all"], prefetch=1000):
                count += 1
        return count

    async def stream_n(self, n: int) -> int:
        count = 0
        async with self.pool.acquire() as conn, conn.transaction():
            async for _ in conn.cursor(_N["fetch_n"], n, prefetch=1000):
                count += 1
        return count

    async def insert_one(self, rows: list[dict[str, Any]]) -> None:
        pool, query = self.pool, _N["insert_one"]
        for r in rows:
            async with pool.acquire() as conn:
                row = await conn.fetchrow(
                    query,
                    r["id"],
                    r["metadata"],
                    r["name"],
                    r["status"],
                    r["price"],
                    r["quantity"],
                    r["active"],
                )
            assert row is not None

    async def bulk_insert(self, rows: Callable[[int], Iterator[tuple[Any, ...]]], n: int) -> int:
        table, schema = self._bulk
        status = await self.copy_conn.copy_records_to_table(
            table, schema_name=schema, columns=list(BULK_COLUMNS), records=rows(n)
        )
        return int(status.split()[-1])

    async def update_by_id(self, changes: list[tuple[str, str, int]]) -> None:
        pool, query = self.pool, _N["update_one"]
        for id_, status, quantity in changes:
            async with pool.acquire() as conn:
                row = await conn.fetchrow(query, status, quantity, id_)
            assert row is not None

    async def delete_by_id(self, ids: list[str]) -> None:
        pool, query = self.pool, _N["delete_one"]
        for id_ in ids:
            async with pool.acquire() as conn:
                assert await conn.execute(query, id_) == "DELETE 1"

    async def transfer(self, moves: list[tuple[str, str, Decimal]]) -> None:
        pool, lock, set_balance = self.pool, _N["lock_wallets"], _N["set_balance"]
        for source, target, amount in moves:
            async with pool.acquire() as conn, conn.transaction():
                balance = dict(await conn.fetch(lock, [source, target]))
                await conn.execute(set_balance, balance[source] - amount, source)
                await conn.execute(set_balance, balance[target] + amount, target)

    async def reads_one_by_one(self, ops: list[tuple[list[str], ...]]) -> None:
        pool = self.pool
        for op in ops:
            for query, ids in zip(_PK, op, strict=True):
                for id_ in ids:
                    async with pool.acquire() as conn:
                        assert await conn.fetchrow(query, id_) is not None

    async def reads_by_ids(self, ops: list[tuple[list[str], ...]]) -> None:
        pool = self.pool
        for op in ops:
            for query, ids in zip(_IDS, op, strict=True):
                async with pool.acquire() as conn:
                    assert len(await conn.fetch(query, ids)) == len(ids)

    async def concurrent(self, query: str, batches: list[list[Any]]) -> None:
        work = self.pk_lookup if query == "pk" else self.filtered_query
        await asyncio.gather(*(work(batch) for batch in batches))
