"""SQLAlchemy 2 ORM on asyncio (``AsyncSession``, asyncpg driver — the usual async stack):
the same work as `SqlalchemyOrm`, awaited."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import asyncpg
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from ..environment import asyncpg_kwargs
from .base import Contender
from .sqla_models import (
    ItemBulkORM,
    ItemORM,
    ItemStreamORM,
    ItemWriteORM,
    WalletORM,
    filtered,
    orm_kwargs,
)

__all__ = ["SqlalchemyAsync"]


class SqlalchemyAsync(Contender):
    name = "sqlalchemy-async"
    label = "SQLAlchemy 2 ORM, async (asyncpg)"
    is_async = True
    inapplicable = {
        "compile_cold": "I/O-free: the same as sqlalchemy-orm",
        "compile_cached": "I/O-free: the same as sqlalchemy-orm",
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

    async def bulk_insert(self, rows: list[dict[str, Any]]) -> None:
        async with AsyncSession(self.engine) as session:
            session.add_all([ItemBulkORM(**orm_kwargs(r)) for r in rows])
            await session.commit()

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

    async def concurrency(self, batches: list[list[str]]) -> None:
        await asyncio.gather(*(self.pk_lookup(ids) for ids in batches))
