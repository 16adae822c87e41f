"""The throwaway "declarative" database: built from the declarations, diffed, then dropped.

It is created on the target's own server (same version, same extensions available) under a
unique name, and dropped ``WITH (FORCE)`` in a ``finally`` block, so a failure or Ctrl-C while
building or diffing leaves nothing behind. A diff that is killed (SIGKILL, a lost machine) cannot
clean up: its database carries a comment naming its process and time, and the next diff drops
the leftovers whose process is gone (or that are over an hour old) and that nobody is connected
to.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from .._connect import connection_failed
from ..errors import MigrationError

__all__ = ["THROWAWAY_PREFIX", "clean_leftovers", "connect", "throwaway_database"]

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


_OWNER = re.compile(r"^nxdata diff pid=(\d+) host=(\S+) at=(\d+)")
_STALE_AFTER = 3600.0


def clean_leftovers(
    url: str, prefix: str = THROWAWAY_PREFIX, say: Callable[[str], None] | None = None
) -> list[str]:
    """Drop the throwaway databases that killed diffs left behind: those nobody is connected to
    whose diff process (on this host) is gone, or that are over an hour old. Returns their names.
    """
    dropped = []
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT d.datname, coalesce(shobj_description(d.oid, 'pg_database'), ''),"
            " EXISTS (SELECT FROM pg_stat_activity a WHERE a.datname = d.datname)"
            " FROM pg_database d WHERE d.datname LIKE %s",
            [prefix.replace("_", "\\_") + "\\_%"],
        ).fetchall()
    for name, comment, busy in rows:
        if busy or not _stale(comment):
            continue
        try:
            _drop(url, name)
        except psycopg.Error:
            continue  # another diff got there first, or no privilege: not this diff's problem
        dropped.append(name)
        if say is not None:
            say(f"dropped {name}, left behind by a diff that was killed")
    return dropped


def _stale(comment: str) -> bool:
    match = _OWNER.match(comment)
    if match is None:
        return False  # not one of ours (or made before comments): left alone
    pid, host, at = int(match.group(1)), match.group(2), int(match.group(3))
    if time.time() - at > _STALE_AFTER:
        return True
    if host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@contextmanager
def throwaway_database(
    url: str,
    statements: Sequence[str],
    *,
    prefix: str = THROWAWAY_PREFIX,
    failure: str = "the declarations do not build",
) -> Iterator[str]:
    """Create a database next to `url`'s, run `statements` in it (one transaction) and yield its
    URL; the database is dropped on exit, whatever happened.

    >>> with throwaway_database(url, create_statements(schemas)) as declared_url:
    ...     ...
    """
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    attempted = False
    clean_leftovers(url, prefix)
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
            owner = (
                f"nxdata diff pid={os.getpid()} host={socket.gethostname()} at={int(time.time())}"
            )
            conn.execute(
                sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                    sql.Identifier(name), sql.Literal(owner)
                )
            )
        declared_url = make_conninfo(url, dbname=name)
        with connect(declared_url, autocommit=False) as conn:
            for statement in statements:
                try:
                    conn.execute(statement)
                except psycopg.Error as exc:
                    raise MigrationError(
                        f"{failure}: {_first_line(exc)}{_hint(exc)}; in: "
                        + " ".join(statement.split())[:300]
                    ) from None
            conn.commit()
        yield declared_url
    finally:
        # Also on KeyboardInterrupt (and SIGTERM, which the CLI turns into one): a finally block
        # runs for BaseException too.
        if attempted:
            _drop(url, name)


def _hint(exc: psycopg.Error) -> str:
    """What usually causes a declaration not to build."""
    if isinstance(exc, psycopg.errors.UndefinedTable):
        return (
            " (name every table with its schema in views, functions and policies: "
            'FROM sale."Order")'
        )
    if isinstance(exc, psycopg.errors.UndefinedObject) and "role" in str(exc):
        return " (a role named as a string must exist: declare nx.Role(...) to have it created)"
    return ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
