"""The journal: which migration files and processes were applied, when, how long, by whom.

It lives in nxdata's own schema, ``nxdata_migrations.journal``, which no diff ever touches::

    kind        'sql', 'step' or 'process'
    schema      the migration's schema (a process's schema prefix)
    name        '0002_add_status' for a file, '0002_add_status#2' for a finished step of a file
                of several steps, the process name for a process
    checksum    sha256 of the file (of the function's source for a process)
    applied_at  timestamptz
    duration_ms double precision
    applied_by  the database role and the OS user@host that ran it
    how         'applied', 'marked' (nxdata migrate --mark-applied) or 'baseline'
"""

from __future__ import annotations

import getpass
import os
import re
import socket
import time
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
    "MIGRATE_APPLICATION",
    "JournalEntry",
    "LockHolder",
    "acquire_lock",
    "applied_by",
    "ensure_journal",
    "identify_migrate_session",
    "lock_holder",
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
    "kind" text NOT NULL CONSTRAINT "journal_kind_check"
        CHECK ("kind" IN ('sql', 'step', 'process')),
    "schema" text NOT NULL,
    "name" text NOT NULL,
    "checksum" text NOT NULL,
    "applied_at" timestamptz NOT NULL DEFAULT now(),
    "duration_ms" double precision NOT NULL,
    "applied_by" text NOT NULL,
    "how" text NOT NULL DEFAULT 'applied',
    UNIQUE ("kind", "schema", "name")
)
"""
# A journal made by an earlier nxdata: steps and "how" came later.
_UPGRADE = f"""
ALTER TABLE {JOURNAL} ADD COLUMN IF NOT EXISTS "how" text NOT NULL DEFAULT 'applied';
ALTER TABLE {JOURNAL} DROP CONSTRAINT IF EXISTS "journal_kind_check";
ALTER TABLE {JOURNAL} ADD CONSTRAINT "journal_kind_check"
    CHECK ("kind" IN ('sql', 'step', 'process'))
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
    how: str = "applied"

    @property
    def key(self) -> str:
        """``schema/name`` for a file, the name for a process."""
        return f"{self.schema}/{self.name}" if self.kind in ("sql", "step") else self.name


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
        if not _current(conn):
            try:
                with conn.transaction():
                    conn.execute(_UPGRADE)
            except pg_errors.InsufficientPrivilege as exc:
                raise privilege_error(conn, exc, f"upgrade the journal {JOURNAL}") from None
        return
    try:
        with conn.transaction():
            conn.execute(_CREATE)
    except pg_errors.InsufficientPrivilege as exc:
        raise privilege_error(conn, exc, f"create the journal {JOURNAL}") from None


def _current(conn: psycopg.Connection[Any]) -> bool:
    """Whether the journal has this version's shape (the "how" column)."""
    row = conn.execute(
        "SELECT EXISTS (SELECT FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = 'journal' AND a.attname = 'how'"
        " AND NOT a.attisdropped)",
        [JOURNAL_SCHEMA],
    ).fetchone()
    return bool(row and row[0])


def read_journal(conn: psycopg.Connection[Any]) -> list[JournalEntry]:
    """Every journal row in application order (empty when there is no journal yet).

    `MigrationError` naming the missing privilege when the role may not read it.
    """
    if not _exists(conn):
        return []
    how = '"how"' if _current(conn) else "'applied'"
    try:
        rows = conn.execute(
            f'SELECT "kind", "schema", "name", "checksum", "applied_at", "duration_ms", '
            f'"applied_by", {how} FROM {JOURNAL} ORDER BY "id"'
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
    how: str = "applied",
) -> None:
    """Add a journal row (or refresh it, for an always-run process), in the caller's
    transaction."""
    conn.execute(
        f'INSERT INTO {JOURNAL} ("kind", "schema", "name", "checksum", "duration_ms", '
        '"applied_by", "how") VALUES (%s, %s, %s, %s, %s, current_user || %s, %s) '
        'ON CONFLICT ("kind", "schema", "name") DO UPDATE SET "checksum" = EXCLUDED."checksum", '
        '"applied_at" = now(), "duration_ms" = EXCLUDED."duration_ms", '
        '"applied_by" = EXCLUDED."applied_by", "how" = EXCLUDED."how"',
        [kind, schema, name, checksum, duration_ms, f" ({applied_by()})", how],
    )


MIGRATE_APPLICATION = "nxdata migrate"
"""The application_name prefix of a migrate session: ``nxdata migrate pid=<os pid> host=<host>``,
so a waiting migrate can tell whether the holder's process is still alive."""

_HOLDER = re.compile(r"^nxdata migrate pid=(\d+) host=(\S+)")


@dataclass(frozen=True, slots=True)
class LockHolder:
    """The session holding the migration lock, from ``pg_locks`` and ``pg_stat_activity``."""

    pid: int
    application_name: str
    client: str
    connected_for: float
    state: str
    query: str
    query_for: float | None

    @property
    def client_process(self) -> tuple[int, str] | None:
        """(OS pid, host) of the migrate that holds the lock, when it is one of ours."""
        match = _HOLDER.match(self.application_name)
        return (int(match.group(1)), match.group(2)) if match else None

    def client_gone(self) -> bool | None:
        """True when the holder is a migrate of this host whose process no longer exists (it
        was killed and its backend lives on until its statement ends); False when it is alive;
        None when it cannot be told (another host, or not a migrate)."""
        process = self.client_process
        if process is None or process[1] != socket.gethostname():
            return None
        try:
            os.kill(process[0], 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            return False
        return False

    def describe(self) -> str:
        """One line for the waiting message."""
        what = f"pid {self.pid}"
        if self.application_name:
            what += f" ({self.application_name}"
            what += f" from {self.client})" if self.client else ")"
        doing = f"{self.state}"
        if self.query_for is not None and self.state == "active":
            doing += f", running {self.query[:80]!r} for {self.query_for:.0f} s"
        return (
            f"{what} holds the migration lock, connected {self.connected_for:.0f} s ago ({doing})"
        )


def lock_holder(conn: psycopg.Connection[Any]) -> LockHolder | None:
    """Who holds the migration lock now (None when nobody does)."""
    row = conn.execute(
        "SELECT a.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local'),"
        " extract(epoch FROM now() - a.backend_start), coalesce(a.state, ''),"
        " coalesce(a.query, ''), extract(epoch FROM now() - a.query_start)"
        " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s"
        " AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database"
        " WHERE datname = current_database())",
        [LOCK_KEY >> 32, LOCK_KEY & 0xFFFFFFFF],
    ).fetchone()
    if row is None:
        return None
    pid, app, client, connected, state, query, query_for = row
    return LockHolder(
        pid,
        app,
        client,
        float(connected or 0),
        state,
        query,
        None if query_for is None else float(query_for),
    )


def identify_migrate_session(conn: psycopg.Connection[Any]) -> None:
    """Name this session after the migrate process (see `MIGRATE_APPLICATION`), and on
    PostgreSQL 14+ have the server check every second that this client is still there during a
    statement: a migrate that is killed then ends its backend (and frees the lock) within a
    second, instead of when its statement ends."""
    name = f"{MIGRATE_APPLICATION} pid={os.getpid()} host={socket.gethostname()}"
    conn.execute("SELECT set_config('application_name', %s, false)", [name[:63]])
    if conn.info.server_version >= 140000:
        conn.execute("SET client_connection_check_interval = '1s'")


def refuse_pooler(conn: psycopg.Connection[Any]) -> None:
    """`MigrationError` when `conn` goes through a pooler that shares server connections
    (PgBouncer in transaction mode): the session-level advisory lock and the migration's session
    settings would land on whichever server connection it picked. Such a pooler gives clients a
    cancel key of its own, so the backend pid the client was told is not the one serving it."""
    row = conn.execute("SELECT pg_backend_pid()", prepare=False).fetchone()
    if row is not None and row[0] != conn.info.backend_pid:
        raise MigrationError(
            "this URL goes through a connection pooler (PgBouncer?): migrations need a session "
            "of their own (an advisory lock, lock_timeout, one DDL transaction). Point nxdata "
            "migrate at the server itself (PgBouncer's own host and port bypassed), e.g. "
            "NXDATA_DATABASE_URL=postgresql://user@db-host:5432/app for the migrate step"
        )


def acquire_lock(
    conn: psycopg.Connection[Any],
    on_wait: Callable[[str], None] | None = None,
    *,
    cancel_stale: bool = False,
    poll: float = 0.5,
) -> None:
    """Take the session-level migration lock. While someone holds it, wait, telling `on_wait`
    who (pid, application, how long it has run) when the holder changes and every 30 s; with
    `cancel_stale`, end the holder's backend when it is a migrate of this host whose process is
    gone (killed: its statement would otherwise hold the lock until it ends).
    """
    refuse_pooler(conn)
    told: tuple[int, float] | None = None
    while True:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY]).fetchone()
        if row is not None and row[0]:
            return
        holder = lock_holder(conn)
        if holder is None:
            continue  # released between the two statements
        now = time.monotonic()
        gone = holder.client_gone()
        if cancel_stale and gone:
            if on_wait is not None:
                on_wait(
                    f"ending pid {holder.pid}: it holds the migration lock for a migrate whose "
                    "process is gone (--cancel-stale)"
                )
            conn.execute("SELECT pg_terminate_backend(%s)", [holder.pid])
            time.sleep(poll)
            continue
        if on_wait is not None and (told is None or told[0] != holder.pid or now - told[1] > 30):
            hint = "waiting for it to finish"
            if gone:
                hint = (
                    "its migrate process is gone (killed?): the lock is freed when its statement "
                    "ends, or rerun with --cancel-stale to end that backend now"
                )
            elif gone is None:
                hint += " (if it is stale, pg_terminate_backend(pid) ends it)"
            on_wait(f"{holder.describe()}: {hint}")
            told = (holder.pid, now)
        time.sleep(poll)


def release_lock(conn: psycopg.Connection[Any]) -> None:
    """Release the migration lock (closing the connection releases it too)."""
    conn.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])
