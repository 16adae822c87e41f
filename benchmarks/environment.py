"""Where the benchmark runs: the server (a given URL or the embedded PostgreSQL) and a fresh
``nxdata_bench_<random>`` database that is dropped afterwards."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from nxdata import EmbeddedPostgres
from nxdata.config import database_url

__all__ = ["EMBEDDED_DIR", "asyncpg_kwargs", "bench_database", "server"]

EMBEDDED_DIR = ".nxdata/bench-embedded"
"""Data folder of the embedded server the benchmark starts when no URL is given."""


@contextmanager
def server(url: str | None) -> Iterator[tuple[str, str]]:
    """Yield ``(url, description)`` of the server: `url`, else NXDATA_DATABASE_URL /
    DATABASE_URL, else an embedded PostgreSQL started for the run and stopped afterwards."""
    found = database_url(url)
    if found is not None:
        yield found, "configured server"
        return
    embedded = EmbeddedPostgres(EMBEDDED_DIR)
    try:
        yield embedded.start(), f"embedded PostgreSQL ({EMBEDDED_DIR}, Unix socket)"
    finally:
        embedded.stop()


@contextmanager
def bench_database(server_url: str) -> Iterator[str]:
    """Create ``nxdata_bench_<random>`` on the server and yield its URL; drop it afterwards."""
    name = f"nxdata_bench_{secrets.token_hex(4)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        # Commits do not wait for the WAL flush: the write scenarios then measure the client
        # stacks instead of the disk's flush latency, which every contender would pay alike and
        # which makes single-row writes noisy on a shared machine.
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET synchronous_commit = off").format(sql.Identifier(name))
        )
    try:
        yield make_conninfo(server_url, dbname=name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def asyncpg_kwargs(url: str) -> dict[str, Any]:
    """``asyncpg.connect`` keyword arguments for a libpq URL or conninfo string."""
    params = conninfo_to_dict(url)
    kwargs: dict[str, Any] = {}
    for src, dst in (("host", "host"), ("user", "user"), ("password", "password")):
        if params.get(src):
            kwargs[dst] = str(params[src])
    if params.get("port"):
        kwargs["port"] = int(str(params["port"]))
    if params.get("dbname"):
        kwargs["database"] = str(params["dbname"])
    return kwargs


def server_version(url: str) -> str:
    """The server's version string, short form (``16.2``)."""
    with psycopg.connect(url) as conn:
        return str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
