"""Transactions that cannot be escaped by accident, and retries, against a real PostgreSQL.

Ambient transactions: calls without ``transaction=`` inside a ``db.transaction()`` block join
it (sync, async, nested savepoints, db.execute / fetch_*, db.connection), ``nx.AUTOCOMMIT``
leaves it on purpose, two tasks keep their own transactions, and a task or generator that
outlives its block gets a TransactionError instead of running outside. Retries:
``run_in_transaction`` completes 8 threads x 500 serializable transfers without row locks with
the total conserved.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg import sql

import nxdata as nx
from nxdata import AsyncDatabase, Database
from nxdata.ddl import create_statements
from nxdata.errors import (
    ConnectionFailed,
    OutcomeUnknown,
    SerializationFailure,
    TransactionError,
    UniqueViolation,
)

SCHEMA = "ambient_t"
ambient = nx.Schema(SCHEMA)


@ambient.table("Note", uniques=[nx.Unique("body")])
class Note(nx.IdColumns):
    body: str


@ambient.table("Account", checks=[nx.Check("balance >= 0")])
class Account(nx.IdColumns):
    owner: str
    balance: nx.Money


@pytest.fixture(scope="module", autouse=True)
def tables(test_database_url: str) -> Any:
    with psycopg.connect(test_database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
        for statement in create_statements([ambient]):
            conn.execute(statement)  # type: ignore[arg-type]
    yield
    with psycopg.connect(test_database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(SCHEMA)))


@pytest.fixture
def notes(db: Database) -> Any:
    repo = nx.Repository(db, Note)
    repo.delete_all(all=True)
    return repo


def bodies(repo: Any) -> list[str]:
    return sorted(n.body for n in repo.find(transaction=nx.AUTOCOMMIT))


# -- ambient transactions ------------------------------------------------------------------------


def test_calls_in_a_block_join_its_transaction(db: Database, notes: Any) -> None:
    with pytest.raises(RuntimeError), db.transaction():
        notes.create({"body": "a"})  # no transaction=: joins the block
        notes.create_all([{"body": "b"}, {"body": "c"}])
        notes.create_all([{"body": "d"}], returning=True)
        notes.update_all({"body": "a2"}, {"body": "a"})
        notes.upsert({"body": "e"}, conflict=["body"])
        db.execute(f"INSERT INTO {SCHEMA}.\"Note\" (id, body) VALUES ('x', 'f')")
        assert db.fetch_value(f'SELECT count(*) FROM {SCHEMA}."Note"') == 6
        assert notes.count() == 6 and len(list(notes.iterate())) == 6
        with db.connection() as conn:  # the block's connection, in a savepoint
            conn.execute(f"INSERT INTO {SCHEMA}.\"Note\" (id, body) VALUES ('y', 'g')")
        assert bodies(notes) == []  # nothing visible outside yet
        raise RuntimeError("roll it all back")
    assert bodies(notes) == []  # none of it escaped


def test_autocommit_leaves_the_block_on_purpose(db: Database, notes: Any) -> None:
    with pytest.raises(RuntimeError), db.transaction():
        notes.create({"body": "rolled back"})
        notes.create({"body": "audit"}, transaction=nx.AUTOCOMMIT)
        db.execute(
            f"INSERT INTO {SCHEMA}.\"Note\" (id, body) VALUES ('z', 'audit2')",
            transaction=nx.AUTOCOMMIT,
        )
        raise RuntimeError
    assert bodies(notes) == ["audit", "audit2"]


def test_an_explicit_transaction_wins(db: Database, notes: Any) -> None:
    other = db.begin_transaction()
    try:
        with db.transaction():
            notes.create({"body": "in other"}, transaction=other)
            notes.create({"body": "in block"})
        assert bodies(notes) == ["in block"]
    finally:
        other.rollback()
    assert bodies(notes) == ["in block"]


def test_nested_blocks_are_savepoints(db: Database, notes: Any) -> None:
    with db.transaction() as outer:
        notes.create({"body": "kept"})
        with pytest.raises(UniqueViolation), db.transaction():
            notes.create({"body": "kept"})  # fails: only the savepoint rolls back
        with db.transaction() as inner:
            assert inner.is_savepoint
            notes.create({"body": "inner"})
        assert outer.active
    assert bodies(notes) == ["inner", "kept"]


def test_a_thread_started_in_a_block_does_not_join_it(db: Database, notes: Any) -> None:
    seen: list[int] = []
    with db.transaction():
        notes.create({"body": "mine"})
        thread = threading.Thread(target=lambda: seen.append(notes.count()))
        thread.start()
        thread.join()
    assert seen == [0]  # threads start with a context of their own: outside the transaction


def test_a_generator_consumed_after_its_block_fails_loudly(db: Database, notes: Any) -> None:
    notes.create_all([{"body": str(i)} for i in range(5)])
    with db.transaction():
        rows = notes.iterate(batch_size=2)
        assert next(rows).body in {str(i) for i in range(5)}
    with pytest.raises(TransactionError, match="after its transaction ended"):
        list(rows)


def test_a_block_that_ended_is_not_left_silently(db: Database, notes: Any) -> None:
    import contextvars

    with db.transaction():
        inside = contextvars.copy_context()  # what a task spawned here would run in
    with pytest.raises(TransactionError, match="has ended"):
        inside.run(notes.create, {"body": "late"})
    assert bodies(notes) == []


async def test_async_ambient_join_and_concurrent_tasks(adb: AsyncDatabase, db: Database) -> None:
    notes = nx.AsyncRepository(adb, Note)
    await notes.delete_all(all=True)

    both_wrote, both_counted = asyncio.Barrier(2), asyncio.Barrier(2)

    async def writer(name: str, fail: bool) -> None:
        async with adb.transaction():
            await notes.create({"body": name})
            await both_wrote.wait()  # the other task's row exists, uncommitted
            assert await notes.count() == 1  # only its own row: its own transaction
            await both_counted.wait()
            if fail:
                raise RuntimeError

    results = await asyncio.gather(
        writer("ok", fail=False), writer("bad", fail=True), return_exceptions=True
    )
    assert isinstance(results[1], RuntimeError)
    assert sorted(n.body for n in await notes.find()) == ["ok"]

    with pytest.raises(RuntimeError):
        async with adb.transaction():
            await notes.create({"body": "a"})
            # tasks spawned in the block inherit it (its connection serializes them)
            await asyncio.gather(notes.create({"body": "b"}), notes.create({"body": "c"}))
            assert await adb.fetch_value(f'SELECT count(*) FROM {SCHEMA}."Note"') == 4
            raise RuntimeError
    assert await notes.count() == 1

    async with adb.transaction():
        late = asyncio.ensure_future(asyncio.sleep(0.05))
        outliving = asyncio.create_task(_after(late, notes.create({"body": "late"})))
    with pytest.raises(TransactionError, match="has ended"):
        await outliving
    assert await notes.count() == 1


async def _after(first: Any, then: Any) -> Any:
    await first
    return await then


# -- retries -------------------------------------------------------------------------------------


def test_serializable_transfers_complete_with_retries(db: Database) -> None:
    accounts = nx.Repository(db, Account)
    accounts.delete_all(all=True)
    ids = [accounts.create({"owner": f"o{i}", "balance": "1000"}).id for i in range(4)]
    attempts: Counter[int] = Counter()
    retried: Counter[str] = Counter()

    def transfer(tx: nx.Transaction, src: int, dst: int) -> None:
        attempts[tx.attempt] += 1
        a = accounts.find_by_id(src)  # no row locks: serializable finds the conflicts
        b = accounts.find_by_id(dst)
        assert a is not None and b is not None
        accounts.update_by_id(src, {"balance": a.balance - 1})
        accounts.update_by_id(dst, {"balance": b.balance + 1})

    def worker(seed: int) -> None:
        for n in range(500):
            src, dst = ids[(seed + n) % 4], ids[(seed + n + 1 + n % 3) % 4]
            if src == dst:
                dst = ids[(ids.index(src) + 1) % 4]
            db.run_in_transaction(
                lambda tx, s=src, d=dst: transfer(tx, s, d),
                isolation="serializable",
                retries=50,
                backoff=0.002,
                on_retry=lambda attempt, exc, delay: retried.update([type(exc).__name__]),
            )

    with Database(db.url, max_size=8) as pool8:
        db = pool8  # type: ignore[assignment]  # the workers share a pool of 8
        accounts = nx.Repository(pool8, Account)
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        balances = [a.balance for a in accounts.find()]
    assert sum(balances) == Decimal(4000)  # nothing lost, nothing done twice
    assert attempts[1] == 8 * 500  # every transfer ran, and completed
    assert sum(retried.values()) == sum(n for k, n in attempts.items() if k > 1)
    assert sum(retried.values()) > 0, "no conflict at all: the test proves nothing"
    print(f"\ntransfers: 4000, retries: {dict(retried)}, attempts: {dict(attempts)}")


def test_what_is_retried_and_what_is_not(db: Database) -> None:
    calls: list[int] = []

    def serialization(tx: nx.Transaction) -> str:
        calls.append(tx.attempt)
        if tx.attempt < 3:
            raise SerializationFailure("could not serialize access", sqlstate="40001")
        return "done"

    assert db.run_in_transaction(serialization, backoff=0.001) == "done"
    assert calls == [1, 2, 3]

    calls.clear()
    with pytest.raises(SerializationFailure) as info:
        db.run_in_transaction(serialization, retries=1, backoff=0.001)
    assert calls == [1, 2] and info.value.attempts == 2

    def lost(tx: nx.Transaction) -> None:
        calls.append(tx.attempt)
        if tx.attempt == 1:
            raise ConnectionFailed("connection lost before COMMIT")

    calls.clear()
    db.run_in_transaction(lost, backoff=0.001)
    assert calls == [1, 2]  # nothing was committed: safe to run again

    def unknown(tx: nx.Transaction) -> None:
        calls.append(tx.attempt)
        raise OutcomeUnknown("lost during COMMIT")

    calls.clear()
    with pytest.raises(OutcomeUnknown):
        db.run_in_transaction(unknown, backoff=0.001)
    assert calls == [1]  # never retried: it may have been applied

    def other(tx: nx.Transaction) -> None:
        calls.append(tx.attempt)
        raise ValueError("a bug")

    calls.clear()
    with pytest.raises(ValueError):
        db.run_in_transaction(other)
    assert calls == [1]

    calls.clear()
    with db.transaction():  # inside a transaction there is nothing to retry on its own
        with pytest.raises(SerializationFailure):
            db.run_in_transaction(serialization, backoff=0.001)
    assert calls == [1]


def test_transactional_decorator(db: Database) -> None:
    notes = nx.Repository(db, Note)
    notes.delete_all(all=True)

    @db.transactional(isolation="repeatable read")
    def add_two(tx: nx.Transaction, first: str, second: str) -> int:
        notes.create({"body": first})
        notes.create({"body": second})
        return tx.attempt

    assert add_two("p", "q") == 1
    with pytest.raises(UniqueViolation):
        add_two("r", "p")  # not transient: not retried, and "r" rolled back too
    assert sorted(n.body for n in notes.find()) == ["p", "q"]


async def test_async_run_in_transaction(adb: AsyncDatabase) -> None:
    notes = nx.AsyncRepository(adb, Note)
    await notes.delete_all(all=True)
    seen: list[int] = []

    async def work(tx: nx.AsyncTransaction) -> int:
        seen.append(tx.attempt)
        await notes.create({"body": f"try {tx.attempt}"})
        if tx.attempt == 1:
            raise SerializationFailure("conflict", sqlstate="40001")
        return await notes.count()

    assert await adb.run_in_transaction(work, backoff=0.001) == 1
    assert seen == [1, 2] and [n.body for n in await notes.find()] == ["try 2"]

    @adb.transactional()
    async def count_notes(tx: nx.AsyncTransaction, prefix: str) -> int:
        return await notes.count({"body": {"like": prefix + "%"}})

    assert await count_notes("try") == 1
