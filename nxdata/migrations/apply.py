"""Applying one migration file to a live database: its steps, each transactional one under a
``lock_timeout`` retried with a backoff, ``CONCURRENTLY`` work outside a transaction (an invalid
index left by a failed build is dropped and rebuilt), the journal row of every finished step,
and the sessions that block a statement named when its lock times out.

``lock_timeout`` is set with ``SET LOCAL`` in each step's transaction (``SET`` around the steps
outside one), never on the session that waits for the advisory lock: a second ``migrate`` still
waits for the first, while a DDL statement never queues the application behind it for longer
than the timeout.
"""

from __future__ import annotations

import functools
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from ..errors import MigrationError
from ..table import _quote
from .files import FileStep, MigrationFile, split_steps
from .journal import privilege_error, record

__all__ = [
    "DEFAULT_LOCK_POLICY",
    "Blocker",
    "BlockerWatch",
    "LockPolicy",
    "apply_file",
    "statements_of",
]

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class LockPolicy:
    """How long a migration statement may wait for a lock, and how often it tries again.

    ``timeout``: seconds (``lock_timeout``); ``retries``: further attempts of a step after a
    lock timeout (or a deadlock); ``backoff``: seconds before the first retry, doubled each time
    (with jitter).
    """

    timeout: float = 3.0
    retries: int = 5
    backoff: float = 1.0

    @property
    def setting(self) -> str:
        """The ``lock_timeout`` value (milliseconds)."""
        return f"{max(1, round(self.timeout * 1000))}ms"


DEFAULT_LOCK_POLICY = LockPolicy()
"""3 s lock_timeout, 5 retries, 1 s first backoff."""


@dataclass(frozen=True, slots=True)
class Blocker:
    """A session that held a lock a migration statement waited for."""

    pid: int
    application: str
    state: str
    query: str
    transaction_age: float | None

    def __str__(self) -> str:
        age = f", in a transaction for {self.transaction_age:.0f} s" if self.transaction_age else ""
        app = f" ({self.application})" if self.application else ""
        return f"pid {self.pid}{app}, {self.state}{age}: {' '.join(self.query.split())[:120]!r}"


class BlockerWatch:
    """Polls, on a connection of its own, which sessions block the migrate session (from
    ``pg_blocking_pids``), so that a lock timeout can name them: once the timeout has fired,
    nobody is waiting any more and the blockers cannot be asked for."""

    def __init__(self, url: str, pid: int, *, every: float = 0.1) -> None:
        self.url, self.pid, self.every = url, pid, every
        self._seen: list[tuple[float, Blocker]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> BlockerWatch:
        self._thread = threading.Thread(target=self._run, name="nxdata-blockers", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
        except psycopg.Error:
            return  # no names in the message then: the lock timeout itself still works
        with conn:
            conn.execute("SET application_name = 'nxdata migrate (watching locks)'")
            while not self._stop.wait(self.every):
                try:
                    rows = conn.execute(
                        "SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.state, ''),"
                        " coalesce(a.query, ''), extract(epoch FROM now() - a.xact_start)"
                        " FROM pg_stat_activity a WHERE a.pid = ANY(pg_blocking_pids(%s))",
                        [self.pid],
                    ).fetchall()
                except psycopg.Error:
                    return
                if rows:
                    now = time.monotonic()
                    with self._lock:
                        self._seen = [
                            (
                                now,
                                Blocker(
                                    r[0], r[1], r[2], r[3], None if r[4] is None else float(r[4])
                                ),
                            )
                            for r in rows
                        ]

    def since(self, started: float) -> list[Blocker]:
        """The blockers seen since `started` (monotonic time)."""
        with self._lock:
            return [b for seen, b in self._seen if seen >= started]


WHOLE = -1
"""The offset `statements_of` gives text it could not split (it runs whole)."""


def statements_of(text: str) -> list[tuple[int, str]]:
    """Each statement of SQL text with its offset (pglast's splitter); the text whole, at offset
    `WHOLE`, without pglast (a deploy host without the migration extras) or when it cannot be
    split (PostgreSQL then reports the syntax error, with its position)."""
    try:
        from pglast.parser import ParseError, split
    except ImportError:
        return [(WHOLE, text)] if text.strip() else []
    try:
        return [(part.start, text[part]) for part in split(text, only_slices=True)]
    except ParseError:
        return [(WHOLE, text)]


def _line(text: str, offset: int, statement: str, exc: psycopg.Error) -> int | None:
    """The file line of the error: PostgreSQL's position in the statement when given, else the
    statement's first line (None for text that ran whole, without a position)."""
    position = getattr(getattr(exc, "diag", None), "statement_position", None)
    line = text[: max(offset, 0)].count("\n") + 1
    if position:
        return line + statement[: int(position) - 1].count("\n")
    return None if offset < 0 else line


def _message(exc: psycopg.Error) -> str:
    """PostgreSQL's message with its DETAIL (which row, which key) in parentheses, on one line."""
    diag = getattr(exc, "diag", None)
    primary = (
        getattr(diag, "message_primary", None)
        or (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    )
    detail = getattr(diag, "message_detail", None)
    return f"{primary} ({' '.join(detail.split())})" if detail else primary


_RETRYABLE = (pg_errors.LockNotAvailable, pg_errors.DeadlockDetected)


def apply_file(
    conn: psycopg.Connection[Any],
    file: MigrationFile,
    *,
    done: frozenset[int] = frozenset(),
    policy: LockPolicy = DEFAULT_LOCK_POLICY,
    watch: BlockerWatch | None = None,
    say: Progress | None = None,
) -> float:
    """Apply `file`'s steps not in `done` (numbers of finished steps, from the journal), each
    recorded in the journal as it finishes (the file itself with its last one). Returns the
    seconds it took. `MigrationError` naming the file, step, line and PostgreSQL's message (and
    the sessions that blocked it, after a lock timeout) when a step fails for good: that step
    is rolled back; earlier steps stay applied, and the next migrate resumes after them."""
    text = file.read()
    steps = split_steps(text)
    started = time.perf_counter()
    for step in steps:
        if step.number in done:
            continue
        last = step.number == steps[-1].number
        if say is not None and len(steps) > 1:
            kind = "" if step.transaction else " (outside a transaction)"
            say(f"  step {step.number} of {len(steps)}{kind}")
        attempt = functools.partial(
            _run_step,
            conn,
            file,
            text,
            step,
            last=last,
            count=len(steps),
            started=started,
            policy=policy,
        )
        _with_retries(attempt, file, step, policy, watch, say)
    return time.perf_counter() - started


def _with_retries(
    run: Callable[[], None],
    file: MigrationFile,
    step: FileStep,
    policy: LockPolicy,
    watch: BlockerWatch | None,
    say: Progress | None,
) -> None:
    attempt = 0
    while True:
        began = time.monotonic()
        try:
            run()
            return
        except _StepFailed as failed:
            exc = failed.error
            if isinstance(exc, _RETRYABLE) and attempt < policy.retries:
                attempt += 1
                delay = policy.backoff * 2 ** (attempt - 1) * random.uniform(0.75, 1.25)
                blockers = watch.since(began) if watch is not None else []
                if say is not None:
                    who = f" (blocked by {blockers[0]})" if blockers else ""
                    say(
                        f"  {file.key} step {step.number}: lock not granted within "
                        f"{policy.timeout:g} s{who}; retry {attempt} of {policy.retries} in "
                        f"{delay:.1f} s"
                    )
                time.sleep(delay)
                continue
            blockers = watch.since(began) if watch is not None else []
            raise failed.migration_error(policy, attempt, blockers) from exc


class _StepFailed(Exception):
    """A step's statement failed (its transaction rolled back): the error and where."""

    def __init__(self, file: MigrationFile, step: FileStep, line: int | None, error: psycopg.Error):
        super().__init__(str(error))
        self.file, self.step, self.line, self.error = file, step, line, error

    def migration_error(
        self, policy: LockPolicy, attempts: int, blockers: Sequence[Blocker]
    ) -> MigrationError:
        where = f" (line {self.line})" if self.line is not None else ""
        step = (
            f" step {self.step.number}" if self.step.number > 1 or not self.step.transaction else ""
        )
        if self.step.transaction:
            message = (
                f"{self.file.key}{step} failed and was rolled back{where}: {_message(self.error)}"
            )
        else:
            message = (
                f"{self.file.key}{step} failed outside a transaction{where}: "
                f"{_message(self.error)} (statements of this step before it stay done; an "
                "invalid index it left is dropped and built again by the next migrate)"
            )
        if isinstance(self.error, _RETRYABLE):
            tries = attempts + 1
            message += (
                f" — lock_timeout {policy.timeout:g} s, {tries} attempt{'s' if tries != 1 else ''}"
            )
            if blockers:
                message += "; blocked by " + "; ".join(str(b) for b in blockers)
            message += (
                " (end those sessions, or retry when they are done; --lock-timeout and "
                "--lock-retries change the bounds)"
            )
        return MigrationError(message)


def _run_step(
    conn: psycopg.Connection[Any],
    file: MigrationFile,
    text: str,
    step: FileStep,
    *,
    last: bool,
    count: int,
    started: float,
    policy: LockPolicy,
) -> None:
    """One attempt at one step; `_StepFailed` when a statement fails."""
    statements = statements_of(step.sql)
    if step.transaction:
        current = (step.offset, "")
        try:
            with conn.transaction():
                conn.execute("SELECT set_config('lock_timeout', %s, true)", [policy.setting])
                for offset, statement in statements:
                    current = (WHOLE if offset == WHOLE else step.offset + offset, statement)
                    conn.execute(statement)
                _record(conn, file, step, last, count, started)
        except psycopg.Error as exc:
            raise _StepFailed(file, step, _line(text, *current, exc), exc) from exc
        return
    # Outside a transaction: one statement at a time. A CONCURRENTLY build waits for every
    # transaction that is running, by design, and blocks nobody meanwhile: no lock_timeout for
    # it (it would fail behind any long transaction). Anything else gets the bound.
    try:
        for offset, statement in statements:
            bound = "0" if _concurrently(statement) else policy.setting
            conn.execute("SELECT set_config('lock_timeout', %s, false)", [bound])
            try:
                _drop_invalid_index(conn, statement)
                conn.execute(statement)
            except psycopg.Error as exc:
                at = WHOLE if offset == WHOLE else step.offset + offset
                raise _StepFailed(file, step, _line(text, at, statement, exc), exc) from exc
        try:
            with conn.transaction():
                _record(conn, file, step, last, count, started)
        except psycopg.Error as exc:
            raise _StepFailed(file, step, _line(text, step.offset, "", exc), exc) from exc
    finally:
        if conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            conn.execute("RESET lock_timeout")


_CONCURRENTLY = re.compile(r"\bCONCURRENTLY\b", re.IGNORECASE)


def _concurrently(statement: str) -> bool:
    """Whether a statement is ``CREATE/DROP/REINDEX ... CONCURRENTLY`` (or ``REFRESH
    MATERIALIZED VIEW CONCURRENTLY``), judged on its first line of SQL."""
    code = "\n".join(line for line in statement.splitlines() if not line.lstrip().startswith("--"))
    head = code.lstrip()[:200]
    return bool(_CONCURRENTLY.search(head)) and head.upper().startswith(
        ("CREATE", "DROP", "REINDEX", "REFRESH")
    )


def _record(
    conn: psycopg.Connection[Any],
    file: MigrationFile,
    step: FileStep,
    last: bool,
    count: int,
    started: float,
) -> None:
    seconds = time.perf_counter() - started
    try:
        if count > 1:
            record(
                conn,
                kind="step",
                schema=file.schema,
                name=f"{file.name}#{step.number}",
                checksum=file.checksum,
                duration_ms=seconds * 1000,
            )
        if last:
            record(
                conn,
                kind="sql",
                schema=file.schema,
                name=file.name,
                checksum=file.checksum,
                duration_ms=seconds * 1000,
            )
    except pg_errors.InsufficientPrivilege as exc:
        # Not the file's fault: say which privilege is missing on the journal.
        raise privilege_error(
            conn, exc, f"record {file.key} in the journal (it was rolled back)"
        ) from None


def _drop_invalid_index(conn: psycopg.Connection[Any], statement: str) -> None:
    """Before ``CREATE INDEX CONCURRENTLY name``: drop an index of that name that a failed build
    left INVALID (``IF NOT EXISTS`` would keep it, and it would never be used)."""
    try:
        from pglast import parse_sql
    except ImportError:
        return
    try:
        parsed = parse_sql(statement)
    except Exception:
        return
    if len(parsed) != 1 or type(parsed[0].stmt).__name__ != "IndexStmt":
        return
    index: Any = parsed[0].stmt
    if not index.concurrent or not index.idxname:
        return
    schema = index.relation.schemaname or "public"
    row = conn.execute(
        "SELECT NOT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
        [schema, index.idxname],
    ).fetchone()
    if row is not None and row[0]:
        conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {_quote(schema)}.{_quote(index.idxname)}")
