"""Row locks: each strength blocks what it should (seen from a second transaction with NOWAIT,
lock_timeout or SKIP LOCKED) and lets through what it should not block."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from test_repository_support import Models, create_tables, make_models

from nxdata import Database, Lock, Repository
from nxdata.errors import LockNotAvailable, TransactionError

Conn = psycopg.Connection[Any]


@pytest.fixture
def entries(db: Database, conn: Conn, schema_name: str) -> Repository[Any]:
    models: Models = make_models(schema_name)
    create_tables(conn, models)
    return Repository(db, models.Entry)


# (held lock, a lock it lets a second transaction take, a lock it blocks)
CASES = [
    (Lock.UPDATE, None, Lock.KEY_SHARE),
    (Lock.NO_KEY_UPDATE, Lock.KEY_SHARE, Lock.SHARE),
    (Lock.SHARE, Lock.SHARE, Lock.NO_KEY_UPDATE),
    (Lock.KEY_SHARE, Lock.NO_KEY_UPDATE, Lock.UPDATE),
]


@pytest.mark.parametrize(("held", "allowed", "blocked"), CASES, ids=lambda c: getattr(c, "sql", c))
def test_lock_strengths(
    db: Database, entries: Repository[Any], held: Lock, allowed: Lock | None, blocked: Lock
) -> None:
    row = entries.create({"label": "r"})
    with db.transaction() as first:
        assert entries.find_by_id(row.id, lock=held, transaction=first) is not None
        # begin_transaction: an independent transaction (a nested block would be a savepoint)
        with db.begin_transaction() as second:
            if allowed is not None:
                got = entries.find_by_id(row.id, lock=allowed.nowait(), transaction=second)
                assert got is not None
            with pytest.raises(LockNotAvailable) as info:
                entries.find_by_id(row.id, lock=blocked.nowait(), transaction=second)
            assert info.value.sqlstate == "55P03"
            assert isinstance(info.value.original, psycopg.errors.LockNotAvailable)
            second.rollback()  # failed by the error: committing it would raise TransactionError


def test_waiting_lock_times_out_and_skip_locked_skips(
    db: Database, entries: Repository[Any]
) -> None:
    a, b = entries.create({"label": "a"}), entries.create({"label": "b"})
    with db.transaction() as first:
        entries.find({"where": {"id": a.id}}, lock=Lock.UPDATE, transaction=first)
        with db.begin_transaction() as second:
            second.connection.execute("SET LOCAL lock_timeout = '50ms'")
            with pytest.raises(LockNotAvailable):
                entries.find_by_id(a.id, lock=Lock.UPDATE, transaction=second)
            second.rollback()
        with db.begin_transaction() as third:
            skip = Lock.UPDATE.skip_locked()
            free = entries.find({"order": ["id"]}, lock=skip, transaction=third)
            assert [r.id for r in free] == [b.id]  # the locked row is skipped, not waited for
    with db.transaction() as fourth:  # after commit the row is free again
        assert entries.find_by_id(a.id, lock=Lock.UPDATE.nowait(), transaction=fourth) is not None


def test_lock_outside_a_transaction_is_an_error(entries: Repository[Any]) -> None:
    for call in (
        lambda: entries.find(lock=Lock.UPDATE),
        lambda: entries.find_one(lock=Lock.SHARE),
        lambda: entries.find_by_id(1, lock=Lock.KEY_SHARE),
        lambda: list(entries.iterate(lock=Lock.NO_KEY_UPDATE)),
    ):
        with pytest.raises(TransactionError, match="needs a transaction"):
            call()


def test_finished_transaction_cannot_be_used(db: Database, entries: Repository[Any]) -> None:
    with db.transaction() as tx:
        entries.create({"label": "x"}, transaction=tx)
    with pytest.raises(TransactionError, match="already committed"):
        entries.find(transaction=tx)
    with pytest.raises(TransactionError):
        entries.create({"label": "y"}, transaction=tx)


def test_lock_validation() -> None:
    with pytest.raises(ValueError):
        Lock("exclusive")  # type: ignore[arg-type]
    assert Lock.UPDATE.skip_locked() == Lock("update", "skip locked")
