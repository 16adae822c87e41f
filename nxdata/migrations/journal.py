"""The journal: which migration files and processes were applied, when, how long, by whom.

It lives in nxdata's own schema, ``nxdata_migrations.journal``, which no diff ever touches::

    kind        'sql' or 'process'
    schema      the migration's schema (a process's schema prefix)
    name        '0002_add_status' for a file, the process name for a process
    checksum    sha256 of the file (of the function's source for a process)
    applied_at  timestamptz
    duration_ms double precision
    applied_by  the database role and the OS user@host that ran it
"""

from __future__ import annotations

import getpass
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

__all__ = [
    "JOURNAL",
    "JOURNAL_SCHEMA",
    "LOCK_KEY",
    "JournalEntry",
    "acquire_lock",
    "applied_by",
    "ensure_journal",
    "read_journal",
    "record",
    "release_lock",
]

JOURNAL_SCHEMA = "nxdata_migrations"
"""nxdata's own schema; reserved, never declared, never diffed."""
JOURNAL = f'"{JOURNAL_SCHEMA}"."journal"'
"""The journal table, quoted."""
LOCK_KEY = 0x6E7864617461  # "nxdata": one advisory lock per database serializes every migrate

_CREATE = f"""
CREATE SCHEMA IF NOT EXISTS "{JOURNAL_SCHEMA}";
CREATE TABLE IF NOT EXISTS {JOURNAL} (
    "id" bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    "kind" text NOT NULL CHECK ("kind" IN ('sql', 'process')),
    "schema" text NOT NULL,
    "name" text NOT NULL,
    "checksum" text NOT NULL,
    "applied_at" timestamptz NOT NULL DEFAULT now(),
    "duration_ms" double precision NOT NULL,
    "applied_by" text NOT NULL,
    UNIQUE ("kind", "schema", "name")
)
"""


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One row of the journal."""

    kind: str
    schema: str
    name: str
    checksum: str
    applied_at: datetime
    duration_ms: float
    applied_by: str

    @property
    def key(self) -> str:
        """``schema/name`` for a file, the name for a process."""
        return f"{self.schema}/{self.name}" if self.kind == "sql" else self.name


def applied_by() -> str:
    """``user@host`` of this process (the database role is added by the INSERT)."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def ensure_journal(conn: psycopg.Connection[Any]) -> None:
    """Create the journal schema and table if missing (call under the lock: concurrent
    ``CREATE TABLE IF NOT EXISTS`` can still collide in the catalogs)."""
    with conn.transaction():
        conn.execute(_CREATE)


def read_journal(conn: psycopg.Connection[Any]) -> list[JournalEntry]:
    """Every journal row in application order (empty when there is no journal yet)."""
    exists = conn.execute("SELECT to_regclass(%s)", [JOURNAL]).fetchone()
    if exists is None or exists[0] is None:
        return []
    rows = conn.execute(
        f'SELECT "kind", "schema", "name", "checksum", "applied_at", "duration_ms", '
        f'"applied_by" FROM {JOURNAL} ORDER BY "id"'
    ).fetchall()
    return [JournalEntry(*row) for row in rows]


def record(
    conn: psycopg.Connection[Any],
    *,
    kind: str,
    schema: str,
    name: str,
    checksum: str,
    duration_ms: float,
) -> None:
    """Add a journal row (or refresh it, for an always-run process), in the caller's
    transaction."""
    conn.execute(
        f'INSERT INTO {JOURNAL} ("kind", "schema", "name", "checksum", "duration_ms", '
        '"applied_by") VALUES (%s, %s, %s, %s, %s, current_user || %s) '
        'ON CONFLICT ("kind", "schema", "name") DO UPDATE SET "checksum" = EXCLUDED."checksum", '
        '"applied_at" = now(), "duration_ms" = EXCLUDED."duration_ms", '
        '"applied_by" = EXCLUDED."applied_by"',
        [kind, schema, name, checksum, duration_ms, f" ({applied_by()})"],
    )


def acquire_lock(conn: psycopg.Connection[Any], on_wait: Callable[[], None] | None = None) -> None:
    """Take the session-level migration lock, calling `on_wait` first if someone holds it."""
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY]).fetchone()
    if row is not None and row[0]:
        return
    if on_wait is not None:
        on_wait()
    conn.execute("SELECT pg_advisory_lock(%s)", [LOCK_KEY])


def release_lock(conn: psycopg.Connection[Any]) -> None:
    """Release the migration lock (closing the connection releases it too)."""
    conn.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])
