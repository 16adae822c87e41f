"""Error paths against a real server: failed transactions, deferred constraints, lost and refused
connections, a closed database, bad options and URLs."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from test_repository_support import Models, create_tables, make_models

import nxdata as nx
from nxdata import AsyncDatabase, Database, SoftDeletableRepository
from nxdata.errors import (
    ConfigurationError,
    ConnectionFailed,
    DatabaseClosed,
    DatabaseError,
    FilterError,
    ForeignKeyViolation,
    TransactionError,
    UniqueViolation,
    map_database_error,
)

Conn = psycopg.Connection[Any]


@pytest.fixture
def models(conn: Conn, schema_name: str) -> Models:
    m = make_models(schema_name)
    create_tables(conn, m)
    return m


@pytest.fixture
def deferred(conn: Conn, schema_name: str) -> str:
    """A table whose foreign key is checked at COMMIT only."""
    conn.execute(f'CREATE SCHEMA "{schema_name}"')
    conn.execute(f'CREATE TABLE "{schema_name}".parent (id int PRIMARY KEY)')
    conn.execute(
        f'CREATE TABLE "{schema_name}".child (id int PRIMARY KEY, parent_id int '
        f'CONSTRAINT "FK_child_parent" REFERENCES "{schema_name}".parent (id) '
        "DEFERRABLE INITIALLY DEFERRED)"
    )
    return f'"{schema_name}".child'


# -- a statement failed earlier in the transaction -------------------------------------------------


def test_statement_after_a_swallowed_error_says_why_it_is_ignored(
    db: Database, models: Models
) -> None:
    items = SoftDeletableRepository(db, models.Item)
    with pytest.raises(TransactionError), db.transaction() as tx:
        items.create({"name": "a", "code": "A"}, transaction=tx)
        with pytest.raises(UniqueViolation):
            items.create({"name": "b", "code": "A"}, transaction=tx)
        with pytest.raises(DatabaseError) as info:
            items.create({"name": "c", "code": "C"}, transaction=tx)
    assert info.value.sqlstate == "25P02"
    assert "current transaction is aborted" in str(info.value)
    assert "an earlier statement in this transaction failed" in str(info.value)
    assert "savepoint" in str(info.value)


def test_connection_block_commit_after_a_swallowed_error_raises(
    db: Database, deferred: str
) -> None:
    with pytest.raises(TransactionError, match="rolled back, not committed"):
        with db.connection() as conn:
            conn.execute(f"INSERT INTO {deferred} VALUES (1, NULL)")
            with pytest.raises(psycopg.errors.UndefinedColumn):
                conn.execute(f"SELECT nope FROM {deferred}")
    assert db.fetch_value(f"SELECT count(*) FROM {deferred}") == 0


async def test_async_connection_block_commit_after_a_swallowed_error_raises(
    adb: AsyncDatabase, deferred: str
) -> None:
    with pytest.raises(TransactionError, match=r"async with conn\.transaction"):
        async with adb.connection() as conn:
            await conn.execute(f"INSERT INTO {deferred} VALUES (1, NULL)")
            with pytest.raises(psycopg.errors.UndefinedColumn):
                await conn.execute(f"SELECT nope FROM {deferred}")
    assert await adb.fetch_value(f"SELECT count(*) FROM {deferred}") == 0


# -- errors raised by COMMIT -----------------------------------------------------------------------


def test_deferred_foreign_key_at_commit_is_an_nxdata_error(db: Database, deferred: str) -> None:
    with pytest.raises(ForeignKeyViolation) as info:
        db.execute(f"INSERT INTO {deferred} VALUES (1, 42)")
    assert info.value.constraint == "FK_child_parent"
    assert isinstance(info.value.original, psycopg.errors.ForeignKeyViolation)
    with pytest.raises(ForeignKeyViolation):
        db.fetch_all(f"INSERT INTO {deferred} VALUES (2, 42) RETURNING id")
    with pytest.raises(ForeignKeyViolation):
        db.fetch_value(f"INSERT INTO {deferred} VALUES (3, 42) RETURNING id")
    with pytest.raises(ForeignKeyViolation), db.connection() as conn:
        conn.execute(f"INSERT INTO {deferred} VALUES (4, 42)")
    assert db.fetch_value(f"SELECT count(*) FROM {deferred}") == 0


async def test_async_deferred_foreign_key_at_commit_is_an_nxdata_error(
    adb: AsyncDatabase, deferred: str
) -> None:
    with pytest.raises(ForeignKeyViolation, match="FK_child_parent"):
        await adb.execute(f"INSERT INTO {deferred} VALUES (1, 42)")
    with pytest.raises(ForeignKeyViolation):
        await adb.fetch_all(f"INSERT INTO {deferred} VALUES (2, 42) RETURNING id")
    with pytest.raises(ForeignKeyViolation):
        await adb.fetch_value(f"INSERT INTO {deferred} VALUES (3, 42) RETURNING id")
    assert await adb.fetch_value(f"SELECT count(*) FROM {deferred}") == 0


def test_deferred_foreign_key_at_transaction_commit(db: Database, deferred: str) -> None:
    with pytest.raises(ForeignKeyViolation), db.transaction() as tx:
        tx.connection.execute(f"INSERT INTO {deferred} VALUES (1, 42)")
    assert db.fetch_value(f"SELECT count(*) FROM {deferred}") == 0


# -- lost connections ------------------------------------------------------------------------------


def test_lost_connection_errors_are_connection_failed(db: Database) -> None:
    # what psycopg raises once the connection is gone: no SQLSTATE, only the message
    for message in (
        "the connection is closed",
        "the connection is lost",
        "consuming input failed: server closed the connection unexpectedly",
    ):
        assert type(map_database_error(psycopg.OperationalError(message))) is ConnectionFailed
    # an OperationalError the server never saw is not a lost connection
    with pytest.raises(psycopg.OperationalError) as raw, db.connection() as conn:
        conn.execute("SELECT %s::int" + ", %s::int" * 70_000, list(range(70_001)))
    mapped = map_database_error(raw.value)
    assert type(mapped) is DatabaseError
    assert "number of parameters" in str(mapped)


def test_terminated_backend_outside_a_transaction(db: Database, conn: Conn) -> None:
    other = psycopg.connect(conn.info.dsn, autocommit=True)
    try:
        pid = other.info.backend_pid
        conn.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
        with pytest.raises(psycopg.OperationalError) as raw:
            other.execute("SELECT 1")
        mapped = map_database_error(raw.value)
        assert isinstance(mapped, ConnectionFailed)
        assert mapped.sqlstate in ("57P01", None)
    finally:
        other.close()


# -- a closed database -----------------------------------------------------------------------------


def test_closed_database_is_not_reopened_behind_your_back(test_database_url: str) -> None:
    lazy = Database(test_database_url, max_size=1)
    assert lazy.fetch_value("SELECT 1") == 1  # never opened: opens on first use
    lazy.close()
    for use in (
        lambda: lazy.fetch_value("SELECT 1"),
        lambda: lazy.connection().__enter__(),
        lambda: lazy.transaction().__enter__(),
        lambda: lazy.get_pool(),
    ):
        with pytest.raises(DatabaseClosed, match=r"was closed: call open\(\)"):
            use()
    assert isinstance(DatabaseClosed("x"), ConfigurationError)
    assert lazy._pool is None
    lazy.open()  # explicitly: fine
    try:
        assert lazy.fetch_value("SELECT 2") == 2
    finally:
        lazy.close()
    with lazy:  # so is a `with` block
        assert lazy.fetch_value("SELECT 3") == 3
    with pytest.raises(DatabaseClosed):
        lazy.execute("SELECT 1")


async def test_async_closed_database_is_not_reopened_behind_your_back(
    test_database_url: str,
) -> None:
    lazy = AsyncDatabase(test_database_url, max_size=1)
    assert await lazy.fetch_value("SELECT 1") == 1
    await lazy.close()
    with pytest.raises(DatabaseClosed, match="was closed"):
        await lazy.fetch_value("SELECT 1")
    with pytest.raises(DatabaseClosed):
        async with lazy.transaction():
            pass
    with pytest.raises(DatabaseClosed):
        await lazy.get_pool()
    async with lazy:
        assert await lazy.fetch_value("SELECT 2") == 2
    assert lazy._pool is None


# -- connecting and configuring --------------------------------------------------------------------


def test_refused_connection_keeps_the_reason() -> None:
    with pytest.raises(ConnectionFailed) as info:
        nx.Database("postgresql://postgres@127.0.0.1:5999/postgres", connect_timeout=2).open()
    message = str(info.value)
    assert "port 5999 failed: Connection refused" in message
    assert "Is the server running on that host" in message
    assert "\t" not in message and "\n" not in message


async def test_async_refused_connection_keeps_the_reason() -> None:
    with pytest.raises(ConnectionFailed, match=r"Connection refused\. Is the server running"):
        await nx.AsyncDatabase("postgresql://postgres@127.0.0.1:5999/x", connect_timeout=2).open()


def test_unknown_database_keeps_the_reason(admin_url: str) -> None:
    from psycopg.conninfo import make_conninfo

    url = make_conninfo(admin_url, dbname="nxdata_no_such_database")
    with pytest.raises(ConnectionFailed, match='database "nxdata_no_such_database" does not exist'):
        Database(url).open()


def test_unknown_option_is_a_configuration_error(test_database_url: str) -> None:
    with pytest.raises(ConfigurationError, match="unknown option 'max_sise'") as info:
        nx.Database(test_database_url, max_sise=2)
    assert "did you mean 'max_size'?" in str(info.value)
    assert "statement_timeout" in str(info.value) and "pgbouncer" in str(info.value)
    with pytest.raises(ConfigurationError, match="unknown option 'poolsize' for AsyncDatabase"):
        nx.AsyncDatabase(test_database_url, poolsize=2)


def test_url_of_another_database_says_what_is_expected() -> None:
    for url in ("mysql://x@y/z", "postgresql+psycopg://x@y/z", "sqlite:///tmp/db"):
        with pytest.raises(ConfigurationError) as info:
            Database(url)
        message = str(info.value)
        assert f"invalid database URL {url!r}" in message
        assert "postgresql:// (or postgres://) URL or a libpq key=value string" in message
        assert 'missing "="' not in message
    with pytest.raises(ConfigurationError) as info:
        Database("mysql://me:secret@y/z")
    assert "secret" not in str(info.value)
    with pytest.raises(ConfigurationError, match="libpq key=value string"):
        Database("just-a-word")


def test_filter_error_without_a_table() -> None:
    with pytest.raises(FilterError) as info:
        nx.Filter.from_json(b'{"where": ')
    assert "None" not in str(info.value)
    assert str(info.value).startswith("invalid filter: ")
    assert str(FilterError("bad", table="s.t", part="limit")) == (
        "invalid filter for table s.t at limit: bad"
    )
    assert str(FilterError("bad", part="limit")) == "invalid filter at limit: bad"
