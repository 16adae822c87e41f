"""SQLAlchemy 2 ORM, sync, psycopg driver: a `Session` per operation, mapped objects, the unit of
work for writes (get, change, commit), ``add_all`` for bulk inserts, ``yield_per`` streaming."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import psycopg
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from .base import Contender, Threaded
from .sqla_models import (
    ORM_BULK_KEYS,
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

_READS: tuple[Any, ...] = (ItemORM, ItemWriteORM, WalletORM)


class SqlalchemyOrm(Threaded, Contender):
    name = "sqlalchemy-orm"
    label = "SQLAlchemy 2 ORM (psycopg)"
    concurrency = "headline"
    inapplicable = {
        "reads_together": "no pipelining of different statements",
        "fetch_n": "not in the scale curves",
        "stream_n": "not in the scale curves",
    }
    notes = {
        "delete_by_id": "get, delete, commit",
        "update_by_id": "get, change, commit",
        "reads_one_by_one": "one Session for the ten reads",
    }

    def setup(self) -> None:
        url = self.ctx.url
        self.engine = create_engine(
            "postgresql+psycopg://",
            creator=lambda: psycopg.connect(url),
            pool_size=self.ctx.pool_size,
            max_overflow=0,
        )
        self.statements = StatementCache(self.engine.dialect)

    def close(self) -> None:
        self.close_threads()
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

    def bulk_insert(self, rows: Callable[[int], Iterator[tuple[Any, ...]]], n: int) -> int:
        with Session(self.engine) as session:
            session.add_all(
                [ItemBulkORM(**dict(zip(ORM_BULK_KEYS, r, strict=True))) for r in rows(n)]
            )
            session.commit()
        return n

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

    def reads_one_by_one(self, ops: list[tuple[list[str], ...]]) -> None:
        engine = self.engine
        for op in ops:
            with Session(engine) as session:
                for model, ids in zip(_READS, op, strict=True):
                    for id_ in ids:
                        assert session.get(model, id_) is not None

    def reads_by_ids(self, ops: list[tuple[list[str], ...]]) -> None:
        engine = self.engine
        for op in ops:
            with Session(engine) as session:
                for model, ids in zip(_READS, op, strict=True):
                    found = session.scalars(select(model).where(model.id.in_(ids))).all()
                    assert len(found) == len(ids)
