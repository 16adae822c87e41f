"""Transactions on the async database: commit, rollback on exception, savepoints, isolation."""

from __future__ import annotations

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
