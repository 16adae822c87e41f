"""Test fixtures: a real PostgreSQL (the configured server or an embedded one), a fresh database
per test session, pools on it, and a unique schema name per test.

The server comes from ``NXDATA_DATABASE_URL`` / ``DATABASE_URL``; when neither is set, an embedded
PostgreSQL (pgserver) is started under ``.nxdata/test-embedded``. Every session creates its own
database ``nxdata_test_<random>`` and drops it at the end, so runs never see each other's data and
the suite can run twice in a row.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from nxdata import AsyncDatabase, Database, EmbeddedPostgres
from nxdata.config import database_url


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """URL of a PostgreSQL server the tests may create databases on."""
    url = database_url()
    if url is not None:
        yield url
        return
    server = EmbeddedPostgres(".nxdata/test-embedded")
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def admin_url(server_url: str) -> Iterator[str]:
    """The server URL pointed at the maintenance database ``postgres``. Roles are the server's,
    not a database's: the reference schema's roles that the session created (building its
    databases) are dropped at the end, when nothing else uses them."""
    url = make_conninfo(server_url, dbname="postgres")
    roles = ("app_tenant",)
    with psycopg.connect(url, autocommit=True) as conn:
        existing = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles").fetchall()}
    yield url
    with psycopg.connect(url, autocommit=True) as conn:
        for role in roles:
            if role in existing:
                continue
            # Another database (a demo) may still grant to it: then it stays.
            with contextlib.suppress(psycopg.errors.DependentObjectsStillExist):
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def create_database(admin_url: str, prefix: str = "nxdata_test") -> str:
    """Create a uniquely named empty database; returns its name."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def drop_database(admin_url: str, name: str) -> None:
    """Drop a database, disconnecting whoever is still on it."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="session")
def test_database_url(admin_url: str) -> Iterator[str]:
    """URL of a fresh database for this test session, dropped afterwards."""
    name = create_database(admin_url)
    try:
        yield make_conninfo(admin_url, dbname=name)
    finally:
        drop_database(admin_url, name)


@pytest.fixture
def fresh_database_url(admin_url: str) -> Iterator[str]:
    """URL of a fresh database for one test (for tests that need an empty database)."""
    name = create_database(admin_url, "nxdata_t")
    try:
        yield make_conninfo(admin_url, dbname=name)
    finally:
        drop_database(admin_url, name)


@pytest.fixture(scope="session")
def db(test_database_url: str) -> Iterator[Database]:
    """A sync pool on the session's database."""
    with Database(test_database_url, max_size=4) as database:
        yield database


@pytest.fixture(scope="session")
async def adb(test_database_url: str) -> AsyncIterator[AsyncDatabase]:
    """An async pool on the session's database."""
    async with AsyncDatabase(test_database_url, max_size=4) as database:
        yield database


@pytest.fixture
def conn(test_database_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """An autocommit connection on the session's database, for set-up and checks."""
    with psycopg.connect(test_database_url, autocommit=True) as connection:
        yield connection


@pytest.fixture
def schema_name(test_database_url: str) -> Iterator[str]:
    """A unique schema name for one test; the schema is dropped (CASCADE) afterwards."""
    name = f"t_{secrets.token_hex(4)}"
    yield name
    with psycopg.connect(test_database_url, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
