"""nxdata, asyncio: `AsyncRepository` over an `AsyncDatabase` pool, rows as the table's Structs.

The sync twin `nxdata_sync.py` is the same code without ``await`` (kept by hand: it is short).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..data import Item, ItemBulk, ItemStream, ItemWrite, Wallet
from .base import Contender, Unavailable
from .nxdata_sync import NOTES

if TYPE_CHECKING:
    from nxdata import AsyncRepository

__all__ = ["NxdataAsync"]


class NxdataAsync(Contender):
    name = "nxdata-async"
    label = "nxdata AsyncRepository"
    is_async = True
    concurrency = "tasks"
    notes = NOTES
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
        self.streamed = AsyncRepository(self.db, ItemStream, max_limit=None)
        self.wallets = AsyncRepository(self.db, Wallet)
        self.tables: tuple[AsyncRepository[Any], ...] = (self.items, self.writes, self.wallets)

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

    async def fetch_n(self, n: int) -> list[Any]:
        return await self.streamed.find({"limit": n})

    async def stream(self) -> int:
        count = 0
        async for _ in self.streamed.iterate():
            count += 1
        return count

    async def stream_n(self, n: int) -> int:
        count = 0
        async for _ in self.streamed.iterate({"limit": n}):
            count += 1
        return count

    async def insert_one(self, rows: list[dict[str, Any]]) -> None:
        create = self.writes.create
        for r in rows:
            await create(r)

    async def bulk_insert(self, rows: Callable[[int], Iterator[tuple[Any, ...]]], n: int) -> int:
        # Tuples in the insert type's field order: create_all takes them (its annotation lags).
        return await self.bulk.create_all(rows(n))

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

    async def reads_one_by_one(self, ops: list[tuple[list[str], ...]]) -> None:
        for op in ops:
            for repo, ids in zip(self.tables, op, strict=True):
                find_by_id = repo.find_by_id
                for id_ in ids:
                    assert await find_by_id(id_) is not None

    async def reads_together(self, ops: list[tuple[list[str], ...]]) -> None:
        read_together = self.db.read_together
        for op in ops:
            found = await read_together(
                *(
                    repo.later.find_by_id(id_)
                    for repo, ids in zip(self.tables, op, strict=True)
                    for id_ in ids
                )
            )
            assert all(row is not None for row in found)

    async def reads_by_ids(self, ops: list[tuple[list[str], ...]]) -> None:
        for op in ops:
            for repo, ids in zip(self.tables, op, strict=True):
                assert len(await repo.find_by_ids(ids)) == len(ids)

    async def concurrent(self, query: str, batches: list[list[Any]]) -> None:
        work = self.pk_lookup if query == "pk" else self.filtered_query
        await asyncio.gather(*(work(batch) for batch in batches))
