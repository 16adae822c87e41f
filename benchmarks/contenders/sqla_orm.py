"""SQLAlchemy 2 ORM, sync, psycopg driver: a `Session` per operation, mapped objects, the unit of
work for writes (get, change, commit), ``add_all`` for bulk inserts, ``yield_per`` streaming."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import psycopg
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from .base import Contender
from .sqla_models import (
    ItemBulkORM,
    ItemORM,
    ItemStreamORM,
    ItemWriteORM,
    StatementCache,
    WalletORM,
    filtered,
    from_filter,
    orm_kwargs,
)

__all__ = ["SqlalchemyOrm"]


class SqlalchemyOrm(Contender):
    name = "sqlalchemy-orm"
    label = "SQLAlchemy 2 ORM (psycopg)"

    def setup(self) -> None:
        url = self.ctx.url
        self.engine = create_engine(
            "postgresql+psycopg://",
            creator=lambda: psycopg.connect(url),
            pool_size=self.ctx.pool_size,
            max_overflow=0,
        )
        self.statements = StatementCache(self.engine.dialect)
        self.executor = ThreadPoolExecutor(self.ctx.workers)

    def close(self) -> None:
        self.executor.shutdown()
        self.engine.dispose()

    def pk_lookup(self, ids: list[str]) -> None:
        engine = self.engine
        for id_ in ids:
            with Session(engine) as session:
                assert session.get(ItemORM, id_) is not None

    def filtered_query(self, params: list[tuple[str, Decimal, Decimal, int]]) -> None:
        engine = self.engine
        for p in params:
            with Session(engine) as session:
                session.scalars(filtered(ItemORM, ItemORM, *p)).all()

    def large_fetch(self) -> list[Any]:
        with Session(self.engine) as session:
            return list(session.scalars(select(ItemORM)).all())

    def stream(self) -> int:
        count = 0
        with Session(self.engine) as session:
            query = select(ItemStreamORM).execution_options(yield_per=1000)
            for _ in session.scalars(query):
                count += 1
        return count

    def insert_one(self, rows: list[dict[str, Any]]) -> None:
        engine = self.engine
        for r in rows:
            with Session(engine, expire_on_commit=False) as session:
                session.add(ItemWriteORM(**orm_kwargs(r)))
                session.commit()

    def bulk_insert(self, rows: list[dict[str, Any]]) -> None:
        with Session(self.engine) as session:
            session.add_all([ItemBulkORM(**orm_kwargs(r)) for r in rows])
            session.commit()

    def update_by_id(self, changes: list[tuple[str, str, int]]) -> None:
        engine = self.engine
        for id_, status, quantity in changes:
            with Session(engine, expire_on_commit=False) as session:
                item = session.get(ItemWriteORM, id_)
                assert item is not None
                item.status = status
                item.quantity = quantity
                session.commit()

    def delete_by_id(self, ids: list[str]) -> None:
        engine = self.engine
        for id_ in ids:
            with Session(engine) as session:
                item = session.get(ItemWriteORM, id_)
                assert item is not None
                session.delete(item)
                session.commit()

    def compile_cold(self, filters: list[dict[str, Any]]) -> None:
        for f in filters:
            self.statements.cold(from_filter(ItemORM, ItemORM, f))

    def compile_cached(self, filters: list[dict[str, Any]]) -> None:
        for f in filters:
            self.statements.cached(from_filter(ItemORM, ItemORM, f))

    def transfer(self, moves: list[tuple[str, str, Decimal]]) -> None:
        engine = self.engine
        for source, target, amount in moves:
            with Session(engine) as session, session.begin():
                wallets = session.scalars(
                    select(WalletORM)
                    .where(WalletORM.id.in_([source, target]))
                    .order_by(WalletORM.id)
                    .with_for_update()
                ).all()
                by_id = {w.id: w for w in wallets}
                by_id[source].balance -= amount
                by_id[target].balance += amount

    def concurrency(self, batches: list[list[str]]) -> None:
        for future in [self.executor.submit(self.pk_lookup, ids) for ids in batches]:
            future.result()
