"""Transactions: commit, rollback on exception, savepoints, isolation, finished handles (sync)."""

from __future__ import annotations

from contextlib import suppress

import psycopg
import pytest

from nxdata import Database
from nxdata._async_to_sync import PAIRS, generate
from nxdata.errors import SerializationFailure, TransactionError


@pytest.fixture
def counter(db: Database, conn: psycopg.Connection[tuple[object, ...]], schema_name: str) -> str:
    conn.execute(f'CREATE SCHEMA "{schema_name}"')
    conn.execute(f'CREATE TABLE "{schema_name}".c (id int PRIMARY KEY, n int NOT NULL)')
    conn.execute(f'INSERT INTO "{schema_name}".c VALUES (1, 0)')
    return f'"{schema_name}".c'


def _n(conn: psycopg.Connection[tuple[object, ...]], table: str) -> object:
    row = conn.execute(f"SELECT n FROM {table} WHERE id = 1").fetchone()
    assert row is not None
    return row[0]


def test_generated_sync_modules_are_up_to_date() -> None:
    from pathlib import Path

    import nxdata

    here = Path(nxdata.__file__).parent
    for async_name, sync_name in PAIRS.items():
        if not (here / async_name).exists():
            continue
        assert (here / sync_name).read_text() == generate(async_name), (
            f"run python nxdata/_async_to_sync.py to regenerate {sync_name}"
        )


def test_block_commits(db: Database, conn: psycopg.Connection[tuple[object, ...]], counter: str):
    with db.transaction() as tx:
        tx.connection.execute(f"UPDATE {counter} SET n = 5")
        assert _n(conn, counter) == 0  # not visible to others before commit
    assert _n(conn, counter) == 5
    assert not tx.active


def test_block_rolls_back_on_exception(
    db: Database, conn: psycopg.Connection[tuple[object, ...]], counter: str
) -> None:
    with pytest.raises(RuntimeError), db.transaction() as tx:
        tx.connection.execute(f"UPDATE {counter} SET n = 7")
        raise RuntimeError("boom")
    assert _n(conn, counter) == 0


def test_begin_commit_and_rollback_handles(
    db: Database, conn: psycopg.Connection[tuple[object, ...]], counter: str
) -> None:
    tx = db.begin_transaction()
    tx.connection.execute(f"UPDATE {counter} SET n = 1")
    tx.rollback()
    assert _n(conn, counter) == 0
    tx = db.begin_transaction()
    tx.connection.execute(f"UPDATE {counter} SET n = 2")
    tx.commit()
    assert _n(conn, counter) == 2


def test_finished_transaction_raises(db: Database) -> None:
    tx = db.begin_transaction()
    tx.commit()
    with pytest.raises(TransactionError, match="already committed or rolled back"):
        tx.connection  # noqa: B018
    with pytest.raises(TransactionError):
        tx.commit()
    with pytest.raises(TransactionError):
        tx.rollback()


def test_nested_blocks_make_savepoints(
    db: Database, conn: psycopg.Connection[tuple[object, ...]], counter: str
) -> None:
    with db.transaction() as outer:
        outer.connection.execute(f"UPDATE {counter} SET n = n + 1")
        with pytest.raises(ValueError), db.transaction() as inner:
            assert inner.is_savepoint
            assert inner.connection is outer.connection
            inner.connection.execute(f"UPDATE {counter} SET n = n + 10")
            raise ValueError
        with outer.savepoint() as kept:
            kept.connection.execute(f"UPDATE {counter} SET n = n + 100")
        assert _n(outer.connection, counter) == 101  # type: ignore[arg-type]
    assert _n(conn, counter) == 101


def test_savepoint_handle_commit_and_rollback(db: Database, counter: str) -> None:
    with db.transaction() as tx:
        sp = tx.begin_savepoint()
        sp.connection.execute(f"UPDATE {counter} SET n = 3")
        sp.rollback()
        sp2 = tx.begin_savepoint()
        sp2.connection.execute(f"UPDATE {counter} SET n = 4")
        sp2.commit()
        row = tx.connection.execute(f"SELECT n FROM {counter}").fetchone()
        assert row == (4,)
    with pytest.raises(TransactionError):
        sp2.connection  # noqa: B018  # its parent ended


def test_isolation_and_read_only(db: Database, counter: str) -> None:
    for level in ("read committed", "repeatable read", "serializable"):
        with db.transaction(isolation=level) as tx:  # type: ignore[arg-type]
            row = tx.connection.execute("SHOW transaction_isolation").fetchone()
            assert row == (level,)
    with db.transaction(read_only=True) as tx:
        assert tx.connection.execute("SHOW transaction_read_only").fetchone() == ("on",)
    with pytest.raises(TransactionError, match="unknown isolation level"):
        db.transaction(isolation="chaos")  # type: ignore[arg-type]


def test_serialization_failure_is_mapped(db: Database, counter: str) -> None:
    first = db.begin_transaction(isolation="serializable")
    second = db.begin_transaction(isolation="serializable")
    try:
        first.connection.execute(f"SELECT n FROM {counter}").fetchall()
        second.connection.execute(f"SELECT n FROM {counter}").fetchall()
        first.connection.execute(f"UPDATE {counter} SET n = n + 1")
        first.commit()
        with pytest.raises(SerializationFailure) as info:
            try:
                second.connection.execute(f"UPDATE {counter} SET n = n + 1")
            except psycopg.Error as exc:
                from nxdata.errors import map_database_error

                raise map_database_error(exc) from exc
        assert isinstance(info.value.original, psycopg.errors.SerializationFailure)
    finally:
        for tx in (first, second):
            if tx.active:
                tx.rollback()


def test_pool_connection_comes_back_clean(db: Database, counter: str) -> None:
    for _ in range(6):  # more than the pool's max_size: connections must be returned
        with pytest.raises(RuntimeError), db.transaction() as tx:
            tx.connection.execute(f"UPDATE {counter} SET n = 9")
            raise RuntimeError
    with db.connection() as c:
        assert c.autocommit is False
        assert c.execute(f"SELECT n FROM {counter}").fetchone() == (0,)


def test_transaction_control_is_never_prepared(test_database_url: str, counter: str) -> None:
    # BEGIN / COMMIT / ROLLBACK / SAVEPOINT go in the simple protocol, however often they run
    with Database(test_database_url, max_size=1, prepare_threshold=1) as db:
        for i in range(8):
            with db.transaction() as tx:
                tx.connection.execute(f"UPDATE {counter} SET n = %s", (i,))
                with db.transaction():  # a savepoint
                    pass
            with pytest.raises(RuntimeError), db.transaction(isolation="serializable"):
                raise RuntimeError
        with db.connection() as conn:
            statements = conn.execute("SELECT statement FROM pg_prepared_statements").fetchall()
    sent = [s.upper() for (s,) in statements]
    assert any(s.startswith("UPDATE") for s in sent)  # prepare_threshold does apply to queries
    for word in ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"):
        assert not any(s.startswith(word) for s in sent), sent


# -- a statement failed inside the transaction --------------------------------------------------


def _count(conn: psycopg.Connection[tuple[object, ...]], table: str) -> object:
    row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return row[0]


def _idle(db: Database) -> None:
    # every pooled connection comes back idle, in autocommit, and usable
    for _ in range(6):  # more than max_size
        with db.transaction() as tx:
            assert tx.connection.execute("SELECT 1").fetchone() == (1,)


def test_commit_after_a_swallowed_error_raises_instead_of_losing_data(
    db: Database, conn: psycopg.Connection[tuple[object, ...]], schema_name: str
) -> None:
    from test_repository_support import create_tables, make_models

    from nxdata import SoftDeletableRepository
    from nxdata.errors import UniqueViolation

    models = make_models(schema_name)
    create_tables(conn, models)
    items = SoftDeletableRepository(db, models.Item)
    table = models.schema.tables["Item"].sql_name
    with pytest.raises(TransactionError, match="rolled back") as info:
        with db.transaction() as tx:
            items.create({"name": "a", "code": "A"}, transaction=tx)
            # swallowed: PostgreSQL has aborted the transaction all the same
            with suppress(UniqueViolation):
                items.create({"name": "b", "code": "A"}, transaction=tx)
    assert "failed earlier" in str(info.value)
    assert "with db.transaction() as inner:" in str(info.value)  # says how to recover
    assert _count(conn, table) == 0
    assert not tx.active
    _idle(db)


def test_handle_commit_after_a_swallowed_error_raises(
    db: Database, conn: psycopg.Connection[tuple[object, ...]], counter: str
) -> None:
    tx = db.begin_transaction()
    tx.connection.execute(f"UPDATE {counter} SET n = 1")
    with pytest.raises(psycopg.errors.UniqueViolation):
        tx.connection.execute(f"INSERT INTO {counter} VALUES (1, 1)")
    with pytest.raises(TransactionError, match="failed earlier"):
        tx.commit()
    assert not tx.active
    assert _n(conn, counter) == 0
    _idle(db)


def test_savepoint_commit_after_a_swallowed_error_rolls_back_only_the_savepoint(
    db: Database, conn: psycopg.Connection[tuple[object, ...]], counter: str
) -> None:
    with db.transaction() as outer:
        outer.connection.execute(f"UPDATE {counter} SET n = n + 1")
        with pytest.raises(TransactionError, match="savepoint"):
            with db.transaction() as inner:
                inner.connection.execute(f"UPDATE {counter} SET n = n + 10")
                with pytest.raises(psycopg.errors.UniqueViolation):
                    inner.connection.execute(f"INSERT INTO {counter} VALUES (1, 1)")
        assert not inner.active
        # the outer transaction is usable again, as before the savepoint
        outer.connection.execute(f"UPDATE {counter} SET n = n + 100")
        sp = outer.begin_savepoint()
        with pytest.raises(psycopg.errors.UniqueViolation):
            sp.connection.execute(f"INSERT INTO {counter} VALUES (1, 1)")
        with pytest.raises(TransactionError):
            sp.commit()
    assert _n(conn, counter) == 101
    _idle(db)


def test_nested_block_is_the_way_to_survive_an_expected_error(
    db: Database, conn: psycopg.Connection[tuple[object, ...]], counter: str
) -> None:
    with db.transaction() as tx:
        tx.connection.execute(f"UPDATE {counter} SET n = 1")
        with pytest.raises(psycopg.errors.UniqueViolation), db.transaction():
            tx.connection.execute(f"INSERT INTO {counter} VALUES (1, 1)")
        tx.connection.execute(f"UPDATE {counter} SET n = n + 1")
    assert _n(conn, counter) == 2


# -- the connection is lost in the middle of a transaction -----------------------------------------


def _terminate(conn: psycopg.Connection[tuple[object, ...]], tx: object) -> None:
    from nxdata.transaction import Transaction

    assert isinstance(tx, Transaction)
    row = tx.connection.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    conn.execute("SELECT pg_terminate_backend(%s, 5000)", (row[0],))


def test_lost_connection_is_connection_failed_and_rollback_does_not_raise(
    db: Database, conn: psycopg.Connection[tuple[object, ...]], counter: str
) -> None:
    from nxdata.errors import ConnectionFailed
    from nxdata.transaction import _run

    tx = db.begin_transaction()
    tx.connection.execute(f"UPDATE {counter} SET n = 3")
    _terminate(conn, tx)
    with pytest.raises(ConnectionFailed) as info:
        _run(tx.connection, "SELECT 1")
    assert info.value.sqlstate == "57P01"
    with pytest.raises(ConnectionFailed, match="connection is closed"):
        _run(tx.connection, "SELECT 1")
    tx.rollback()  # the transaction is over either way
    assert not tx.active
    assert _n(conn, counter) == 0
    _idle(db)


def test_lost_connection_in_blocks_and_at_commit(
    db: Database, conn: psycopg.Connection[tuple[object, ...]], counter: str
) -> None:
    from nxdata.errors import ConnectionFailed

    # the block rolls back on the user's exception without a second error from the dead connection
    with pytest.raises(RuntimeError, match="original"), db.transaction() as tx:
        with db.transaction() as inner:
            _terminate(conn, tx)
            raise RuntimeError("original")
    assert not inner.active
    # commit on a lost connection: ConnectionFailed, and the connection is not given back in use
    tx = db.begin_transaction()
    tx.connection.execute(f"UPDATE {counter} SET n = 4")
    _terminate(conn, tx)
    with pytest.raises(ConnectionFailed):
        tx.commit()
    assert _n(conn, counter) == 0
    _idle(db)
