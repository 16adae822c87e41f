"""nxdata, asyncio: `AsyncRepository` over an `AsyncDatabase` pool, rows as the table's Structs.

The sync twin `nxdata_sync.py` is the same code without ``await`` (kept by hand: it is short).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from ..data import Item, ItemBulk, ItemStream, ItemWrite, Wallet
from .base import Contender, Unavailable

__all__ = ["NxdataAsync"]


class NxdataAsync(Contender):
    name = "nxdata-async"
    label = "nxdata AsyncRepository"
    is_async = True
    inapplicable = {
        "compile_cold": "I/O-free: the same compiler as nxdata",
        "compile_cached": "I/O-free: the same compiler as nxdata",
    }

    async def setup(self) -> None:
        try:
            from nxdata import AsyncDatabase, AsyncRepository, Lock
        except ImportError as exc:
            raise Unavailable(f"nxdata has no AsyncRepository yet ({exc})") from exc
        self.lock = Lock.UPDATE
        self.db = AsyncDatabase(
            self.ctx.url, min_size=self.ctx.pool_size, max_size=self.ctx.pool_size
        )
        await self.db.open()
        self.items = AsyncRepository(self.db, Item)
        self.writes = AsyncRepository(self.db, ItemWrite)
        self.bulk = AsyncRepository(self.db, ItemBulk)
        self.streamed = AsyncRepository(self.db, ItemStream)
        self.wallets = AsyncRepository(self.db, Wallet)

    async def close(self) -> None:
        await self.db.close()

    async def pk_lookup(self, ids: list[str]) -> None:
        find_by_id = self.items.find_by_id
        for id_ in ids:
            assert await find_by_id(id_) is not None

    async def filtered_query(self, params: list[tuple[str, Decimal, Decimal, int]]) -> None:
        find = self.items.find
        for status, low, high, quantity in params:
            await find(
                {
                    "where": {
                        "status": status,
                        "price": {"between": [low, high]},
                        "quantity": {"gt": quantity},
                    },
                    "order": ["created_at DESC"],
                    "limit": 20,
                }
            )

    async def large_fetch(self) -> list[Any]:
        return await self.items.find()

    async def stream(self) -> int:
        count = 0
        async for _ in self.streamed.iterate():
            count += 1
        return count

    async def insert_one(self, rows: list[dict[str, Any]]) -> None:
        create = self.writes.create
        for r in rows:
            await create(r)

    async def bulk_insert(self, rows: list[dict[str, Any]]) -> None:
        await self.bulk.create_all(rows)

    async def update_by_id(self, changes: list[tuple[str, str, int]]) -> None:
        update_by_id = self.writes.update_by_id
        for id_, status, quantity in changes:
            assert await update_by_id(id_, {"status": status, "quantity": quantity}) is not None

    async def delete_by_id(self, ids: list[str]) -> None:
        delete_by_id = self.writes.delete_by_id
        for id_ in ids:
            assert await delete_by_id(id_) is not None

    async def transfer(self, moves: list[tuple[str, str, Decimal]]) -> None:
        db, wallets, lock = self.db, self.wallets, self.lock
        for source, target, amount in moves:
            async with db.transaction() as tx:
                rows = await wallets.find(
                    {"where": {"id": {"inq": [source, target]}}, "order": ["id"]},
                    lock=lock,
                    transaction=tx,
                )
                balance = {w.id: w.balance for w in rows}
                await wallets.update_by_id(
                    source, {"balance": balance[source] - amount}, transaction=tx
                )
                await wallets.update_by_id(
                    target, {"balance": balance[target] + amount}, transaction=tx
                )

    async def concurrency(self, batches: list[list[str]]) -> None:
        await asyncio.gather(*(self.pk_lookup(ids) for ids in batches))
