"""SQLAlchemy 2 Core, sync, psycopg driver: statements built per call (as users write them),
executed on pooled connections (``engine.connect()`` / ``engine.begin()`` per operation), ``Row``
results, ``executemany`` (insertmanyvalues) for bulk inserts, ``yield_per`` for streaming."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import psycopg
from sqlalchemy import create_engine, delete, func, insert, select, update

from .base import Contender
from .sqla_models import StatementCache, filtered, from_filter, tables

__all__ = ["SqlalchemyCore"]


class SqlalchemyCore(Contender):
    name = "sqlalchemy-core"
    label = "SQLAlchemy 2 Core (psycopg)"

    def setup(self) -> None:
        url = self.ctx.url
        self.engine = create_engine(
            "postgresql+psycopg://",
            creator=lambda: psycopg.connect(url),
            pool_size=self.ctx.pool_size,
            max_overflow=0,
        )
        self.item, self.write = tables["Item"], tables["ItemWrite"]
        self.bulk, self.stream_table, self.wallet = (
            tables["ItemBulk"],
            tables["ItemStream"],
            tables["Wallet"],
        )
        self.statements = StatementCache(self.engine.dialect)
        self.executor = ThreadPoolExecutor(self.ctx.workers)

    def close(self) -> None:
        self.executor.shutdown()
        self.engine.dispose()

    def pk_lookup(self, ids: list[str]) -> None:
        engine, t = self.engine, self.item
        for id_ in ids:
            with engine.connect() as conn:
                row = conn.execute(select(t).where(t.c.id == id_)).first()
            assert row is not None

    def filtered_query(self, params: list[tuple[str, Decimal, Decimal, int]]) -> None:
        engine, t = self.engine, self.item
        for p in params:
            with engine.connect() as conn:
                conn.execute(filtered(t, t.c, *p)).all()

    def large_fetch(self) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(self.item)).all())

    def stream(self) -> int:
        count = 0
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=1000).execute(select(self.stream_table))
            for _ in result:
                count += 1
        return count

    def insert_one(self, rows: list[dict[str, Any]]) -> None:
        engine, t = self.engine, self.write
        for r in rows:
            with engine.begin() as conn:
                conn.execute(insert(t).values(r).returning(*t.c)).one()

    def bulk_insert(self, rows: list[dict[str, Any]]) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(self.bulk), rows)

    def update_by_id(self, changes: list[tuple[str, str, int]]) -> None:
        engine, t = self.engine, self.write
        for id_, status, quantity in changes:
            with engine.begin() as conn:
                conn.execute(
                    update(t)
                    .where(t.c.id == id_)
                    .values(status=status, quantity=quantity, modified_at=func.now())
                    .returning(*t.c)
                ).one()

    def delete_by_id(self, ids: list[str]) -> None:
        engine, t = self.engine, self.write
        for id_ in ids:
            with engine.begin() as conn:
                assert conn.execute(delete(t).where(t.c.id == id_)).rowcount == 1

    def compile_cold(self, filters: list[dict[str, Any]]) -> None:
        t = self.item
        for f in filters:
            self.statements.cold(from_filter(t, t.c, f))

    def compile_cached(self, filters: list[dict[str, Any]]) -> None:
        t = self.item
        for f in filters:
            self.statements.cached(from_filter(t, t.c, f))

    def transfer(self, moves: list[tuple[str, str, Decimal]]) -> None:
        engine, w = self.engine, self.wallet
        for source, target, amount in moves:
            with engine.begin() as conn:
                rows = conn.execute(
                    select(w.c.id, w.c.balance)
                    .where(w.c.id.in_([source, target]))
                    .order_by(w.c.id)
                    .with_for_update()
                ).all()
                balance = {r.id: r.balance for r in rows}
                for id_, value in ((source, -amount), (target, amount)):
                    conn.execute(
                        update(w)
                        .where(w.c.id == id_)
                        .values(balance=balance[id_] + value, modified_at=func.now())
                    )

    def concurrency(self, batches: list[list[str]]) -> None:
        for future in [self.executor.submit(self.pk_lookup, ids) for ids in batches]:
            future.result()
