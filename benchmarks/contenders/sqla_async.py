"""SQLAlchemy 2 ORM on asyncio (``AsyncSession``, asyncpg driver — the usual async stack):
the same work as `SqlalchemyOrm`, awaited."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from ..environment import asyncpg_kwargs
from .base import Contender
from .sqla_models import (
    ORM_BULK_KEYS,
    ItemBulkORM,
    ItemORM,
    ItemStreamORM,
    ItemWriteORM,
    WalletORM,
    filtered,
    orm_kwargs,
)

__all__ = ["SqlalchemyAsync"]

_READS: tuple[Any, ...] = (ItemORM, ItemWriteORM, WalletORM)


class SqlalchemyAsync(Contender):
    name = "sqlalchemy-async"
    label = "SQLAlchemy 2 ORM, async (asyncpg)"
    is_async = True
    concurrency = "headline"
    inapplicable = {
        "compile_cold": "I/O-free: the same as sqlalchemy-orm",
        "compile_cached": "I/O-free: the same as sqlalchemy-orm",
        "reads_together": "no pipelining of different statements",
        "fetch_n": "not in the scale curves",
        "stream_n": "not in the scale curves",
    }
    notes = {
        "delete_by_id": "get, delete, commit",
        "update_by_id": "get, change, commit",
        "reads_one_by_one": "one AsyncSession for the ten reads",
    }

    async def setup(self) -> None:
        kwargs = asyncpg_kwargs(self.ctx.url)
        self.engine = create_async_engine(
            "postgresql+asyncpg://",
            async_creator=lambda: asyncpg.connect(**kwargs),
            pool_size=self.ctx.pool_size,
            max_overflow=0,
        )

    async def close(self) -> None:
        await self.engine.dispose()

    async def pk_lookup(self, ids: list[str]) -> None:
        engine = self.engine
        for id_ in ids:
            async with AsyncSession(engine) as session:
                assert await session.get(ItemORM, id_) is not None

    async def filtered_query(self, params: list[tuple[str, Decimal, Decimal, int]]) -> None:
        engine = self.engine
        for p in params:
            async with AsyncSession(engine) as session:
                (await session.scalars(filtered(ItemORM, ItemORM, *p))).all()

    async def large_fetch(self) -> list[Any]:
        async with AsyncSession(self.engine) as session:
            return list((await session.scalars(select(ItemORM))).all())

    async def stream(self) -> int:
        count = 0
        async with AsyncSession(self.engine) as session:
            query = select(ItemStreamORM).execution_options(yield_per=1000)
            async for _ in await session.stream_scalars(query):
                count += 1
        return count

    async def insert_one(self, rows: list[dict[str, Any]]) -> None:
        engine = self.engine
        for r in rows:
            async with AsyncSession(engine, expire_on_commit=False) as session:
                session.add(ItemWriteORM(**orm_kwargs(r)))
                await session.commit()

    async def bulk_insert(self, rows: Callable[[int], Iterator[tuple[Any, ...]]], n: int) -> int:
        async with AsyncSession(self.engine) as session:
            session.add_all(
                [ItemBulkORM(**dict(zip(ORM_BULK_KEYS, r, strict=True))) for r in rows(n)]
            )
            await session.commit()
        return n

    async def update_by_id(self, changes: list[tuple[str, str, int]]) -> None:
        engine = self.engine
        for id_, status, quantity in changes:
            async with AsyncSession(engine, expire_on_commit=False) as session:
                item = await session.get(ItemWriteORM, id_)
                assert item is not None
                item.status = status
                item.quantity = quantity
                await session.commit()

    async def delete_by_id(self, ids: list[str]) -> None:
        engine = self.engine
        for id_ in ids:
            async with AsyncSession(engine) as session:
                item = await session.get(ItemWriteORM, id_)
                assert item is not None
                await session.delete(item)
                await session.commit()

    async def transfer(self, moves: list[tuple[str, str, Decimal]]) -> None:
        engine = self.engine
        for source, target, amount in moves:
            async with AsyncSession(engine) as session, session.begin():
                wallets = (
                    await session.scalars(
                        select(WalletORM)
                        .where(WalletORM.id.in_([source, target]))
                        .order_by(WalletORM.id)
                        .with_for_update()
                    )
                ).all()
                by_id = {w.id: w for w in wallets}
                by_id[source].balance -= amount
                by_id[target].balance += amount

    async def reads_one_by_one(self, ops: list[tuple[list[str], ...]]) -> None:
        engine = self.engine
        for op in ops:
            async with AsyncSession(engine) as session:
                for model, ids in zip(_READS, op, strict=True):
                    for id_ in ids:
                        assert await session.get(model, id_) is not None

    async def reads_by_ids(self, ops: list[tuple[list[str], ...]]) -> None:
        engine = self.engine
        for op in ops:
            async with AsyncSession(engine) as session:
                for model, ids in zip(_READS, op, strict=True):
                    found = (await session.scalars(select(model).where(model.id.in_(ids)))).all()
                    assert len(found) == len(ids)

    async def concurrent(self, query: str, batches: list[list[Any]]) -> None:
        work = self.pk_lookup if query == "pk" else self.filtered_query
        await asyncio.gather(*(work(batch) for batch in batches))
