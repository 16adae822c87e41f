"""SQLAlchemy 2 Core, sync, psycopg driver: statements built per call (as users write them),
executed on pooled connections (``engine.connect()`` / ``engine.begin()`` per operation), ``Row``
results, ``executemany`` (insertmanyvalues) for bulk inserts, ``yield_per`` for streaming."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import psycopg
from sqlalchemy import create_engine, delete, func, insert, select, update

from ..data import BULK_COLUMNS
from .base import Contender, Threaded
from .sqla_models import StatementCache, filtered, from_filter, tables

__all__ = ["SqlalchemyCore"]


class SqlalchemyCore(Threaded, Contender):
    name = "sqlalchemy-core"
    label = "SQLAlchemy 2 Core (psycopg)"
    concurrency = "headline"
    inapplicable = {
        "reads_together": "no pipelining of different statements",
        "fetch_n": "not in the scale curves",
        "stream_n": "not in the scale curves",
    }
    notes = {
        "bulk_insert": "executemany of dicts made from the tuples",
        "delete_by_id": "checks the row count (no row back)",
        "transfer": "locks and reads (id, balance) only; updates return nothing",
        "reads_one_by_one": "one connection for the ten reads",
    }

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
        self.reads = (self.item, self.write, self.wallet)

    def close(self) -> None:
        self.close_threads()
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

    def bulk_insert(self, rows: Callable[[int], Iterator[tuple[Any, ...]]], n: int) -> int:
        with self.engine.begin() as conn:
            conn.execute(
                insert(self.bulk), [dict(zip(BULK_COLUMNS, r, strict=True)) for r in rows(n)]
            )
        return n

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

    def reads_one_by_one(self, ops: list[tuple[list[str], ...]]) -> None:
        engine = self.engine
        for op in ops:
            with engine.connect() as conn:
                for t, ids in zip(self.reads, op, strict=True):
                    for id_ in ids:
                        assert conn.execute(select(t).where(t.c.id == id_)).first() is not None

    def reads_by_ids(self, ops: list[tuple[list[str], ...]]) -> None:
        engine = self.engine
        for op in ops:
            with engine.connect() as conn:
                for t, ids in zip(self.reads, op, strict=True):
                    assert len(conn.execute(select(t).where(t.c.id.in_(ids))).all()) == len(ids)
