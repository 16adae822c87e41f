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
from psycopg import errors as pg_errors

from ..errors import MigrationError

__all__ = [
    "JOURNAL",
    "JOURNAL_SCHEMA",
    "LOCK_KEY",
    "JournalEntry",
    "acquire_lock",
    "applied_by",
    "ensure_journal",
    "privilege_error",
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


def privilege_error(
    conn: psycopg.Connection[Any], exc: pg_errors.InsufficientPrivilege, doing: str
) -> MigrationError:
    """A one-line error for a role that lacks a privilege on the journal (or on the database)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else "permission denied"
    role = conn.info.user
    if "for database" in text:
        need = f"CREATE on database {conn.info.dbname} (or let its owner run the first migrate)"
    else:
        need = (
            f'USAGE on schema {JOURNAL_SCHEMA} and SELECT, INSERT, UPDATE on "{JOURNAL_SCHEMA}"'
            '."journal"'
        )
    return MigrationError(f"cannot {doing}: {text}; role {role} needs {need}")


def _exists(conn: psycopg.Connection[Any]) -> bool:
    # The catalogs, not to_regclass(): they answer even for a role without USAGE on the schema.
    row = conn.execute(
        "SELECT EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = 'journal')",
        [JOURNAL_SCHEMA],
    ).fetchone()
    return bool(row and row[0])


def ensure_journal(conn: psycopg.Connection[Any]) -> None:
    """Create the journal schema and table if missing (call under the lock: concurrent
    ``CREATE TABLE IF NOT EXISTS`` can still collide in the catalogs)."""
    # Skipped when it exists: CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even
    # then, which a role that only applies migrations may lack.
    if _exists(conn):
        return
    try:
        with conn.transaction():
            conn.execute(_CREATE)
    except pg_errors.InsufficientPrivilege as exc:
        raise privilege_error(conn, exc, f"create the journal {JOURNAL}") from None


def read_journal(conn: psycopg.Connection[Any]) -> list[JournalEntry]:
    """Every journal row in application order (empty when there is no journal yet).

    `MigrationError` naming the missing privilege when the role may not read it.
    """
    if not _exists(conn):
        return []
    try:
        rows = conn.execute(
            f'SELECT "kind", "schema", "name", "checksum", "applied_at", "duration_ms", '
            f'"applied_by" FROM {JOURNAL} ORDER BY "id"'
        ).fetchall()
    except pg_errors.InsufficientPrivilege as exc:
        raise privilege_error(conn, exc, f"read the journal {JOURNAL}") from None
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
