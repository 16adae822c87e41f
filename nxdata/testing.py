"""The nxdata pytest plugin: a test database built once from your declarations, a transaction
per test that is rolled back, a clone per test for tests that must commit, and a statement
counter for N+1 checks.

Installed with nxdata (entry point ``pytest11``); every fixture is lazy, so a project that uses
none pays nothing. Settings, in ``pyproject.toml`` (``[tool.pytest.ini_options]``) or on the
command line:

- ``nxdata_url`` / ``--nxdata-url``: the server to create test databases on (default:
  ``NXDATA_DATABASE_URL``, then ``DATABASE_URL``, else an embedded PostgreSQL under
  ``.nxdata/pytest``);
- ``nxdata_models``: the package declaring your schemas (default ``[tool.nxdata] models``);
- ``nxdata_build``: ``declarations`` (default: ``create_statements`` of the models, fastest) or
  ``migrations`` (your migration files, ``[tool.nxdata] migrations``, and the seed processes);

Fixtures:

- ``nxdata_url`` (session): a database built once for the session, dropped at its end;
- ``nxdata_db`` / ``nxdata_adb`` (session): a `Database` / `AsyncDatabase` on it;
- ``nxdata_transaction`` / ``nxdata_atransaction``: a transaction around the test, rolled back
  after it — every repository call and ``db.execute`` of the test joins it without
  ``transaction=`` (blocks inside become savepoints), so tests never see each other's rows;
- ``nxdata_fresh_url``: a database of the test's own, cloned from the built one (for code that
  commits, starts its own pools, or runs migrations), dropped after the test;
- ``nxdata_queries``: the `QueryEvent` s of the test's statements (both databases);
- ``assert_max_queries``: ``with assert_max_queries(3): ...`` fails, listing the statements,
  when the block runs more (an N+1 loop).

A statement that fails in the test's transaction ends it (PostgreSQL's rule): expect errors
inside a block, ``with pytest.raises(UniqueViolation), nxdata_db.transaction():`` — its savepoint
takes the failure back. Call web apps on the test's event loop (``httpx.ASGITransport``).

    def test_checkout(nxdata_transaction, nxdata_db, assert_max_queries):
        orders = nx.Repository(nxdata_db, Order)
        with assert_max_queries(2):
            orders.find({"include": ["items"]})
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from .config import database_url
from .database import Database
from .database_async import AsyncDatabase
from .observe import QueryEvent

__all__ = [
    "assert_max_queries",
    "nxdata_adb",
    "nxdata_atransaction",
    "nxdata_db",
    "nxdata_fresh_url",
    "nxdata_queries",
    "nxdata_transaction",
    "nxdata_url",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    """The plugin's settings (see the module's docstring)."""
    group = parser.getgroup("nxdata")
    group.addoption("--nxdata-url", default=None, help="server for nxdata's test databases")
    parser.addini("nxdata_url", "server for nxdata's test databases", default="")
    parser.addini("nxdata_models", "package declaring the schemas", default="")
    parser.addini(
        "nxdata_build",
        "declarations (default) or migrations: how the test database is built",
        default="declarations",
    )


class _Server:
    """Where test databases are made: a configured server, or an embedded one started once."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self._embedded: Any = None
        self.url = ""

    def start(self) -> str:
        url = (
            self.config.getoption("--nxdata-url")
            or self.config.getini("nxdata_url")
            or database_url()
        )
        if not url:
            from .embedded import EmbeddedPostgres

            self._embedded = EmbeddedPostgres(".nxdata/pytest")
            url = self._embedded.start()
        self.url = make_conninfo(str(url), dbname="postgres")
        return self.url

    def stop(self) -> None:
        if self._embedded is not None:
            self._embedded.stop()


def _create(admin: str, name: str, template: str | None = None) -> str:
    with psycopg.connect(admin, autocommit=True) as conn:
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            # PostgreSQL 15's default strategy (WAL_LOG) measured 330 ms a clone of a 21-table
            # schema here, FILE_COPY 435 ms (it forces a checkpoint): the default it is.
            query = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        conn.execute(query)
    return make_conninfo(admin, dbname=name)


def _drop(admin: str, name: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _build(url: str, config: pytest.Config) -> None:
    """The declarations (or the migrations) in the database at `url`."""
    from .migrations.discovery import load_models
    from .migrations.project import load_settings

    root = Path(str(config.rootpath))
    settings = load_settings(root)
    models = load_models(config.getini("nxdata_models") or settings.models, path=settings.root)
    how = config.getini("nxdata_build") or "declarations"
    if how == "migrations":
        from .migrations.runner import migrate

        migrate(url, settings.migrations_dir, processes=models.processes)
        return
    if how != "declarations":
        raise pytest.UsageError(f"nxdata_build is 'declarations' or 'migrations', not {how!r}")
    from .ddl import create_statements

    with psycopg.connect(url) as conn, conn.transaction():
        for statement in create_statements(models.select(None)):
            conn.execute(statement)


@pytest.fixture(scope="session")
def _nxdata_template(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(admin URL, name) of a database built once and never connected to afterwards: the
    template of the session's database and of every clone."""
    server = _Server(request.config)
    admin = server.start()
    name = f"nxdata_tpl_{secrets.token_hex(4)}"
    try:
        url = _create(admin, name)
        _build(url, request.config)
        yield admin, name
    finally:
        with suppress(psycopg.Error):
            _drop(admin, name)
        server.stop()


@pytest.fixture(scope="session")
def nxdata_url(_nxdata_template: tuple[str, str]) -> Iterator[str]:
    """A database built from the declarations for this session; dropped at its end."""
    admin, template = _nxdata_template
    name = f"nxdata_test_{secrets.token_hex(4)}"
    url = _create(admin, name, template)
    try:
        yield url
    finally:
        _drop(admin, name)


@pytest.fixture(scope="session")
def nxdata_db(nxdata_url: str) -> Iterator[Database]:
    """A `Database` on the session's test database."""
    with Database(nxdata_url, min_size=1, max_size=4) as db:
        yield db


@pytest.fixture(scope="session")
async def nxdata_adb(nxdata_url: str) -> AsyncIterator[AsyncDatabase]:
    """An `AsyncDatabase` on the session's test database."""
    async with AsyncDatabase(nxdata_url, min_size=1, max_size=4) as db:
        yield db


@pytest.fixture
def nxdata_transaction(nxdata_db: Database) -> Iterator[Any]:
    """A transaction around the test, rolled back after it; calls of the test join it."""
    tx = nxdata_db.begin_transaction()
    token = nxdata_db._ambient.set(tx)
    try:
        yield tx
    finally:
        with suppress(ValueError):  # set in another context: nothing to undo here
            nxdata_db._ambient.reset(token)
        if tx.active:
            tx.rollback()


@pytest.fixture
async def nxdata_atransaction(nxdata_adb: AsyncDatabase) -> AsyncIterator[Any]:
    """The async `nxdata_transaction`: rolled back after the test, joined by its calls."""
    tx = await nxdata_adb.begin_transaction()
    token = nxdata_adb._ambient.set(tx)
    try:
        yield tx
    finally:
        with suppress(ValueError):
            nxdata_adb._ambient.reset(token)
        if tx.active:
            await tx.rollback()


@pytest.fixture
def nxdata_fresh_url(_nxdata_template: tuple[str, str]) -> Iterator[str]:
    """A database of this test's own, cloned from the built one; dropped after the test."""
    admin, template = _nxdata_template
    name = f"nxdata_clone_{os.getpid()}_{secrets.token_hex(3)}"
    url = _create(admin, name, template)
    try:
        yield url
    finally:
        _drop(admin, name)


@pytest.fixture
def nxdata_queries(request: pytest.FixtureRequest) -> Iterator[list[QueryEvent]]:
    """The statements the test runs on the session's databases, as `QueryEvent` s."""
    events: list[QueryEvent] = []
    removers = [
        request.getfixturevalue(name).add_query_hook(events.append)
        for name in ("nxdata_db", "nxdata_adb")
        if name in request.fixturenames
    ]
    if not removers:  # neither asked for by the test: watch the sync one
        removers.append(request.getfixturevalue("nxdata_db").add_query_hook(events.append))
    try:
        yield events
    finally:
        for remove in removers:
            remove()


@pytest.fixture
def assert_max_queries(
    nxdata_queries: list[QueryEvent],
) -> Callable[[int], Any]:
    """``with assert_max_queries(n): ...``: fails when the block runs more than `n`
    statements, listing them (the same shape many times is an N+1 loop)."""

    @contextmanager
    def at_most(count: int) -> Iterator[list[QueryEvent]]:
        start = len(nxdata_queries)
        block: list[QueryEvent] = []
        yield block
        block += nxdata_queries[start:]
        if len(block) > count:
            lines = [
                f"  {i}. {e.table or ''} {e.method}: {' '.join(e.sql.split())[:160]}"
                for i, e in enumerate(block, start=1)
            ]
            shapes: dict[str, list[QueryEvent]] = {}
            for event in block:
                shapes.setdefault(event.shape or event.sql, []).append(event)
            lines += [
                f"  {len(same)} of one shape ({same[0].table or ''} {same[0].method}): an N+1 loop?"
                for same in shapes.values()
                if len(same) > 2
            ]
            raise AssertionError(
                f"{len(block)} statements, at most {count} expected:\n" + "\n".join(lines)
            )

    return at_most
