"""Pools, settings and errors of `Database` / `AsyncDatabase` against a real server."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from typing import Any

import psycopg
import psycopg_pool
import pytest

from nxdata import AsyncDatabase, Database
from nxdata._connect import PoolOptions
from nxdata.errors import (
    ConfigurationError,
    ConnectionFailed,
    PoolTimeout,
    QueryCanceled,
    UniqueViolation,
)
from nxdata.jsonb import _JsonbBinaryLoader, _JsonTextLoader


def test_pool_exhaustion_raises_clear_timeout(test_database_url: str) -> None:
    with Database(test_database_url, min_size=1, max_size=1, timeout=0.3) as db:
        with db.connection():
            started = time.monotonic()
            with pytest.raises(
                PoolTimeout, match=r"no free connection .* after 0.3 s \(all 1 in use\)"
            ):
                with db.connection():
                    pass
            assert time.monotonic() - started < 2
        # the pool recovers once the connection is returned
        assert db.fetch_value("select 1") == 1


async def test_async_pool_exhaustion_raises_clear_timeout(test_database_url: str) -> None:
    async with AsyncDatabase(test_database_url, min_size=1, max_size=1, timeout=0.3) as db:
        async with db.connection():
            with pytest.raises(PoolTimeout, match="all 1 in use"):
                async with db.connection():
                    pass
        assert await db.fetch_value("select 2") == 2


def test_statement_timeout_cancels(test_database_url: str) -> None:
    with Database(test_database_url, statement_timeout=0.2) as db:
        assert db.fetch_value("show statement_timeout") == "200ms"
        with pytest.raises(QueryCanceled, match="statement timeout") as info:
            db.execute("select pg_sleep(2)")
        assert info.value.sqlstate == "57014"
        assert isinstance(info.value.original, psycopg.errors.QueryCanceled)


async def test_async_statement_timeout_cancels(test_database_url: str) -> None:
    async with AsyncDatabase(test_database_url, statement_timeout=0.2) as db:
        with pytest.raises(QueryCanceled):
            await db.execute("select pg_sleep(2)")


def test_pgbouncer_mode_never_prepares(test_database_url: str) -> None:
    with Database(test_database_url, pgbouncer=True, statement_timeout=1.5, max_size=1) as db:
        with db.connection() as conn:
            assert conn.prepare_threshold is None
            for _ in range(10):
                conn.execute("select %s::int + 1", (1,))
            prepared = conn.execute("select count(*) from pg_prepared_statements").fetchone()
            assert prepared == (0,)
            # no startup options: the timeout is set per session instead
            assert conn.execute("show statement_timeout").fetchone() == ("1500ms",)


def test_default_mode_prepares_repeated_queries(test_database_url: str) -> None:
    with Database(test_database_url, prepare_threshold=2, max_size=1) as db:
        with db.connection() as conn:
            for _ in range(5):
                conn.execute("select %s::int + 1", (1,))
            prepared = conn.execute("select count(*) from pg_prepared_statements").fetchone()
            assert prepared is not None and prepared[0] >= 1


def test_jsonb_comes_back_through_msgspec(db: Database) -> None:
    with db.connection() as conn:
        assert conn.adapters.get_loader(psycopg.adapters.types["jsonb"].oid, 0) is _JsonTextLoader
        assert (
            conn.adapters.get_loader(psycopg.adapters.types["jsonb"].oid, 1) is _JsonbBinaryLoader
        )
        row = conn.execute(
            """select '{"a": [1, 2.5, null], "b": {"c": "d"}}'::jsonb, '[1]'::json, null::jsonb"""
        ).fetchone()
        assert row == ({"a": [1, 2.5, None], "b": {"c": "d"}}, [1], None)
        with conn.cursor(binary=True) as cur:
            cur.execute("""select '{"x": true}'::jsonb, '{"y": 1}'::json""")
            assert cur.fetchone() == ({"x": True}, {"y": 1})


async def test_async_jsonb_comes_back_through_msgspec(adb: AsyncDatabase) -> None:
    assert await adb.fetch_value("""select '{"k": [true]}'::jsonb""") == {"k": [True]}


def test_bad_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"invalid database URL .*port 'notaport'") as info:
        Database("postgresql://user:secret@host:notaport/db")
    assert "secret" not in str(info.value)
    with pytest.raises(ConfigurationError, match="invalid database URL 'mysql://x@y/z'"):
        Database("mysql://x@y/z")


def test_missing_url_says_how_to_configure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NXDATA_DATABASE_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(ConfigurationError, match="NXDATA_DATABASE_URL"):
        Database()


def test_url_from_environment_in_order(
    monkeypatch: pytest.MonkeyPatch, test_database_url: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    monkeypatch.setenv("NXDATA_DATABASE_URL", test_database_url)
    assert Database().url == test_database_url
    monkeypatch.delenv("NXDATA_DATABASE_URL")
    assert Database().url == "postgresql://nobody@127.0.0.1:1/none"


def test_unreachable_server_fails_fast_without_password_in_message() -> None:
    db = Database("postgresql://user:s3cret@127.0.0.1:1/nothing", connect_timeout=2)
    started = time.monotonic()
    with pytest.raises(ConnectionFailed) as info:
        db.open()
    assert time.monotonic() - started < 5
    assert "127.0.0.1" in str(info.value) and "s3cret" not in str(info.value)


async def test_async_unreachable_server_fails_fast() -> None:
    db = AsyncDatabase("postgresql://user@127.0.0.1:1/nothing", connect_timeout=2)
    with pytest.raises(ConnectionFailed, match="cannot connect"):
        await db.open()


def test_invalid_pool_sizes_are_rejected(test_database_url: str) -> None:
    with pytest.raises(ConfigurationError, match="min_size <= max_size"):
        Database(test_database_url, min_size=5, max_size=2)


def test_errors_map_to_nxdata_errors(db: Database, schema_name: str) -> None:
    db.execute(f'create schema "{schema_name}"')
    db.execute(f'create table "{schema_name}".u (x int constraint "UQ_u_x" unique)')
    db.execute(f'insert into "{schema_name}".u values (1)')
    with pytest.raises(UniqueViolation) as info:
        db.execute(f'insert into "{schema_name}".u values (1)')
    assert info.value.constraint == "UQ_u_x"
    assert info.value.table == f"{schema_name}.u"
    assert "constraint UQ_u_x" in str(info.value)


def test_pool_is_shared_by_threads(test_database_url: str) -> None:
    with Database(test_database_url, min_size=2, max_size=2, timeout=5) as db:
        results: list[Any] = []

        def work(n: int) -> None:
            for _ in range(20):
                results.append(db.fetch_value("select %s::int * 2", (n,)))

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(set(results)) == [0, 2, 4, 6] and len(results) == 80


async def test_async_pool_is_shared_by_tasks(test_database_url: str) -> None:
    async with AsyncDatabase(test_database_url, min_size=2, max_size=2, timeout=5) as db:
        results = await asyncio.gather(*(db.fetch_value("select %s::int", (n,)) for n in range(30)))
        assert results == list(range(30))


def test_connection_rolls_back_on_error(db: Database, schema_name: str) -> None:
    db.execute(f'create schema "{schema_name}"')
    db.execute(f'create table "{schema_name}".t (x int)')
    with pytest.raises(RuntimeError), db.connection() as conn:
        conn.execute(f'insert into "{schema_name}".t values (1)')
        raise RuntimeError("boom")
    assert db.fetch_value(f'select count(*) from "{schema_name}".t') == 0
    with db.connection() as conn:
        conn.execute(f'insert into "{schema_name}".t values (1)')
    assert db.fetch_value(f'select count(*) from "{schema_name}".t') == 1


# -- the session time zone -------------------------------------------------------------------------


def test_session_timezone_is_utc_by_default(test_database_url: str) -> None:
    with Database(test_database_url, max_size=1) as db:
        assert db.fetch_value("show timezone") == "UTC"
        stamp = db.fetch_value("select '2024-01-02 03:04:05+02'::timestamptz")
        assert stamp.tzinfo is not None and stamp.utcoffset().total_seconds() == 0
        assert stamp.hour == 1


def test_session_timezone_is_configurable(test_database_url: str) -> None:
    with Database(test_database_url, max_size=1, timezone="Europe/Paris") as db:
        assert db.fetch_value("show timezone") == "Europe/Paris"
    with psycopg.connect(test_database_url) as raw:
        server_default = raw.execute("show timezone").fetchone()
    with Database(test_database_url, max_size=1, timezone=None) as db:
        assert (db.fetch_value("show timezone"),) == server_default


def test_session_timezone_in_pgbouncer_mode(test_database_url: str) -> None:
    with Database(test_database_url, max_size=1, pgbouncer=True) as db:
        assert "options" not in db.options.connect_kwargs()
        assert db.fetch_value("show timezone") == "UTC"
    with Database(
        test_database_url, max_size=1, pgbouncer=True, timezone="Asia/Tokyo", statement_timeout=2
    ) as db:
        with db.connection() as conn:
            assert conn.execute("show timezone").fetchone() == ("Asia/Tokyo",)
            assert conn.execute("show statement_timeout").fetchone() == ("2s",)


async def test_async_session_timezone(test_database_url: str) -> None:
    async with AsyncDatabase(test_database_url, max_size=1) as db:
        assert await db.fetch_value("show timezone") == "UTC"
    async with AsyncDatabase(test_database_url, max_size=1, timezone="America/New_York") as db:
        assert await db.fetch_value("show timezone") == "America/New_York"


def test_timezone_options_are_checked() -> None:
    assert PoolOptions().connect_kwargs()["options"] == "-c timezone=UTC"
    both = PoolOptions(statement_timeout=1.5, timezone="Etc/GMT+3").connect_kwargs()
    assert both["options"] == "-c statement_timeout=1500 -c timezone=Etc/GMT+3"
    assert "options" not in PoolOptions(timezone=None).connect_kwargs()
    assert PoolOptions(pgbouncer=True).session_setup() == (
        "SET application_name = 'nxdata'; SET timezone = 'UTC'"
    )
    assert PoolOptions(pgbouncer=True, timezone=None).session_setup() == (
        "SET application_name = 'nxdata'"
    )
    assert PoolOptions(pgbouncer=False).session_setup() is None
    for bad in ("UTC'; drop table x; --", "Europe/Paris -c x=1", ""):
        with pytest.raises(ConfigurationError, match="timezone must be a time zone name"):
            PoolOptions(timezone=bad)


def _pools_named(name: str) -> list[Any]:
    return [
        o
        for o in gc.get_objects()
        if isinstance(o, psycopg_pool.ConnectionPool | psycopg_pool.AsyncConnectionPool)
        and o.name == name
    ]


def test_first_use_from_many_threads_opens_one_pool(test_database_url: str) -> None:
    name = "nxdata-race-sync"
    db = Database(test_database_url, name=name, min_size=1, max_size=4)
    start = threading.Barrier(8)

    def first_use() -> None:
        start.wait()
        assert db.fetch_value("select 1") == 1

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert _pools_named(name) == [db.get_pool()]
    finally:
        db.close()


async def test_async_first_use_from_many_tasks_opens_one_pool(test_database_url: str) -> None:
    name = "nxdata-race-async"
    db = AsyncDatabase(test_database_url, name=name, min_size=1, max_size=4)
    try:
        assert await asyncio.gather(*(db.fetch_value("select 1") for _ in range(8))) == [1] * 8
        assert _pools_named(name) == [await db.get_pool()]
    finally:
        await db.close()
