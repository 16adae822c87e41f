"""Transactions on the async database: commit, rollback on exception, savepoints, isolation."""

from __future__ import annotations

from contextlib import suppress

import psycopg
import pytest

from nxdata import AsyncDatabase
from nxdata.errors import TransactionError


@pytest.fixture
def counter(conn: psycopg.Connection[tuple[object, ...]], schema_name: str) -> str:
    conn.execute(f'CREATE SCHEMA "{schema_name}"')
    conn.execute(f'CREATE TABLE "{schema_name}".c (id int PRIMARY KEY, n int NOT NULL)')
    conn.execute(f'INSERT INTO "{schema_name}".c VALUES (1, 0)')
    return f'"{schema_name}".c'


def _n(conn: psycopg.Connection[tuple[object, ...]], table: str) -> object:
    row = conn.execute(f"SELECT n FROM {table} WHERE id = 1").fetchone()
    assert row is not None
    return row[0]


async def test_block_commits_and_rolls_back(
    adb: AsyncDatabase, conn: psycopg.Connection[tuple[object, ...]], counter: str
) -> None:
    async with adb.transaction() as tx:
        await tx.connection.execute(f"UPDATE {counter} SET n = 5")
        assert _n(conn, counter) == 0
    assert _n(conn, counter) == 5
    with pytest.raises(RuntimeError):
        async with adb.transaction() as tx:
            await tx.connection.execute(f"UPDATE {counter} SET n = 6")
            raise RuntimeError
    assert _n(conn, counter) == 5


async def test_handles_and_finished_error(
    adb: AsyncDatabase, conn: psycopg.Connection[tuple[object, ...]], counter: str
) -> None:
    tx = await adb.begin_transaction(isolation="repeatable read")
    cur = await tx.connection.execute("SHOW transaction_isolation")
    assert await cur.fetchone() == ("repeatable read",)
    await tx.connection.execute(f"UPDATE {counter} SET n = 8")
    await tx.commit()
    assert _n(conn, counter) == 8
    with pytest.raises(TransactionError):
        await tx.rollback()


async def test_nested_blocks_make_savepoints(
    adb: AsyncDatabase, conn: psycopg.Connection[tuple[object, ...]], counter: str
) -> None:
    async with adb.transaction() as outer:
        await outer.connection.execute(f"UPDATE {counter} SET n = n + 1")
        with pytest.raises(ValueError):
            async with adb.transaction() as inner:
                assert inner.is_savepoint
                await inner.connection.execute(f"UPDATE {counter} SET n = n + 10")
                raise ValueError
        async with outer.savepoint() as kept:
            await kept.connection.execute(f"UPDATE {counter} SET n = n + 100")
    assert _n(conn, counter) == 101


async def test_read_only(adb: AsyncDatabase, counter: str) -> None:
    async with adb.transaction(read_only=True) as tx:
        cur = await tx.connection.execute("SHOW transaction_read_only")
        assert await cur.fetchone() == ("on",)


# -- a statement failed inside the transaction --------------------------------------------------


async def _idle(adb: AsyncDatabase) -> None:
    for _ in range(6):  # more than max_size: every connection came back clean
        async with adb.transaction() as tx:
            cur = await tx.connection.execute("SELECT 1")
            assert await cur.fetchone() == (1,)


async def test_commit_after_a_swallowed_error_raises_instead_of_losing_data(
    adb: AsyncDatabase, conn: psycopg.Connection[tuple[object, ...]], schema_name: str
) -> None:
    from test_repository_support import create_tables, make_models

    from nxdata import AsyncSoftDeletableRepository
    from nxdata.errors import UniqueViolation

    models = make_models(schema_name)
    create_tables(conn, models)
    items = AsyncSoftDeletableRepository(adb, models.Item)
    table = models.schema.tables["Item"].sql_name
    with pytest.raises(TransactionError, match="failed earlier") as info:
        async with adb.transaction() as tx:
            await items.create({"name": "a", "code": "A"}, transaction=tx)
            with suppress(UniqueViolation):
                await items.create({"name": "b", "code": "A"}, transaction=tx)
    assert "async with db.transaction() as inner:" in str(info.value)
    row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row == (0,)
    await _idle(adb)


async def test_handle_and_savepoint_commit_after_a_swallowed_error(
    adb: AsyncDatabase, conn: psycopg.Connection[tuple[object, ...]], counter: str
) -> None:
    tx = await adb.begin_transaction()
    await tx.connection.execute(f"UPDATE {counter} SET n = 1")
    with pytest.raises(psycopg.errors.UniqueViolation):
        await tx.connection.execute(f"INSERT INTO {counter} VALUES (1, 1)")
    with pytest.raises(TransactionError, match="rolled back, not committed"):
        await tx.commit()
    assert _n(conn, counter) == 0
    async with adb.transaction() as outer:
        await outer.connection.execute(f"UPDATE {counter} SET n = n + 1")
        with pytest.raises(TransactionError, match="savepoint was rolled back"):
            async with adb.transaction() as inner:
                await inner.connection.execute(f"UPDATE {counter} SET n = n + 10")
                with pytest.raises(psycopg.errors.UniqueViolation):
                    await inner.connection.execute(f"INSERT INTO {counter} VALUES (1, 1)")
        await outer.connection.execute(f"UPDATE {counter} SET n = n + 100")
    assert _n(conn, counter) == 101
    await _idle(adb)


async def test_lost_connection_rollback_does_not_raise(
    adb: AsyncDatabase, conn: psycopg.Connection[tuple[object, ...]], counter: str
) -> None:
    from nxdata.errors import ConnectionFailed
    from nxdata.transaction_async import _run

    tx = await adb.begin_transaction()
    await tx.connection.execute(f"UPDATE {counter} SET n = 3")
    conn.execute("SELECT pg_terminate_backend(%s, 5000)", (tx.connection.info.backend_pid,))
    with pytest.raises(ConnectionFailed):
        await _run(tx.connection, "SELECT 1")
    await tx.rollback()
    assert not tx.active
    with pytest.raises(RuntimeError, match="original"):
        async with adb.transaction() as tx:
            conn.execute("SELECT pg_terminate_backend(%s, 5000)", (tx.connection.info.backend_pid,))
            raise RuntimeError("original")
    tx = await adb.begin_transaction()
    conn.execute("SELECT pg_terminate_backend(%s, 5000)", (tx.connection.info.backend_pid,))
    with pytest.raises(ConnectionFailed):
        await tx.commit()
    assert _n(conn, counter) == 0
    await _idle(adb)
