"""The throwaway "declarative" database: built from the declarations, diffed, then dropped.

It is created on the target's own server (same version, same extensions available) under a
unique name, and dropped ``WITH (FORCE)`` in a ``finally`` block, so a failure or Ctrl-C while
building or diffing leaves nothing behind.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from .._connect import connection_failed
from ..errors import MigrationError

__all__ = ["THROWAWAY_PREFIX", "connect", "throwaway_database"]

THROWAWAY_PREFIX = "nxdata_diff"
"""Every throwaway database's name starts with this (then the pid and a random suffix)."""


def connect(url: str, *, autocommit: bool = True) -> psycopg.Connection[Any]:
    """A plain psycopg connection; `ConnectionFailed` (one line, URL redacted) if it fails."""
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=10)
    except psycopg.Error as exc:
        raise connection_failed(url, exc) from None


def _drop(url: str, name: str) -> None:
    with connect(url) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@contextmanager
def throwaway_database(
    url: str, statements: Sequence[str], *, prefix: str = THROWAWAY_PREFIX
) -> Iterator[str]:
    """Create a database next to `url`'s, run `statements` in it (one transaction) and yield its
    URL; the database is dropped on exit, whatever happened.

    >>> with throwaway_database(url, create_statements(schemas)) as declared_url:
    ...     ...
    """
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    attempted = False
    try:
        with connect(url) as conn:
            # Set before the CREATE: an interrupt can land after the server created the database
            # but before execute() returns, and the drop (IF EXISTS) is harmless otherwise.
            attempted = True
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            except psycopg.Error as exc:
                raise MigrationError(
                    f"cannot create the throwaway database {name}: {_first_line(exc)} "
                    "(the role needs CREATEDB)"
                ) from None
        declared_url = make_conninfo(url, dbname=name)
        with connect(declared_url, autocommit=False) as conn:
            for statement in statements:
                try:
                    conn.execute(statement)
                except psycopg.Error as exc:
                    raise MigrationError(
                        f"the declarations do not build: {_first_line(exc)}; in: "
                        + " ".join(statement.split())[:300]
                    ) from None
            conn.commit()
        yield declared_url
    finally:
        # Also on KeyboardInterrupt (and SIGTERM, which the CLI turns into one): a finally block
        # runs for BaseException too.
        if attempted:
            _drop(url, name)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
