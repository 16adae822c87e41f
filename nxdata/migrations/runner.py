"""Applying migrations: pending SQL files in order, each in its own transaction, then processes.

One PostgreSQL advisory lock (session level, on a dedicated connection) serializes every
``migrate`` against the same database: when several replicas start at once, one applies and the
others wait, re-read the journal and find nothing left to do.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import psycopg
from psycopg import errors as pg_errors

from ..errors import ConfigurationError, MigrationError, TamperedMigrationError
from .files import MigrationFile, list_files
from .journal import (
    JournalEntry,
    acquire_lock,
    ensure_journal,
    identify_migrate_session,
    privilege_error,
    read_journal,
    record,
    release_lock,
)
from .processes import Process, ProcessContext
from .throwaway import connect

if TYPE_CHECKING:
    from ..database import Database

__all__ = [
    "FileState",
    "MigrateResult",
    "SchemaStatus",
    "Step",
    "migrate",
    "order_pending",
    "pending_files",
    "pending_summary",
    "schema_folders",
    "status",
]

Progress = Callable[[str], None]
FileState = Literal["applied", "pending", "tampered"]


@dataclass(frozen=True, slots=True)
class Step:
    """One applied file or process (or, in a dry run, one that would be)."""

    kind: Literal["sql", "process"]
    key: str
    seconds: float = 0.0


@dataclass(slots=True)
class MigrateResult:
    """What `migrate` did: the steps in order; ``dry_run`` when nothing was executed."""

    steps: list[Step] = field(default_factory=list)
    dry_run: bool = False

    @property
    def files(self) -> list[str]:
        """Keys of the SQL files applied (or pending, in a dry run)."""
        return [s.key for s in self.steps if s.kind == "sql"]

    @property
    def processes(self) -> list[str]:
        """Names of the processes run (or due, in a dry run)."""
        return [s.key for s in self.steps if s.kind == "process"]


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    """Applied and pending files of one schema; ``missing`` lists journal rows with no file."""

    schema: str
    files: list[tuple[MigrationFile, FileState, JournalEntry | None]]
    missing: list[JournalEntry]

    @property
    def pending(self) -> list[MigrationFile]:
        """Files not applied yet."""
        return [f for f, state, _ in self.files if state == "pending"]

    @property
    def tampered(self) -> list[MigrationFile]:
        """Applied files whose content changed since."""
        return [f for f, state, _ in self.files if state == "tampered"]


def schema_folders(root: Path, schemas: Sequence[str] | None) -> list[str]:
    """The schemas to migrate: the given ones (each must have a folder) or every subfolder."""
    if not root.is_dir():
        raise ConfigurationError(
            f"migrations folder {root} does not exist "
            "(run `nxdata diff` first, or set --migrations-dir / [tool.nxdata] migrations)"
        )
    if schemas is None:
        return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for schema in schemas:
        if not (root / schema).is_dir():
            raise ConfigurationError(
                f"no migrations for schema {schema!r}: {root / schema} is missing"
            )
    return list(schemas)


def _verify(files: Sequence[MigrationFile], applied: dict[str, JournalEntry]) -> None:
    for file in files:
        entry = applied.get(file.key)
        if entry is not None and entry.checksum != file.checksum:
            raise TamperedMigrationError(
                f"{file.path} was changed after it was applied "
                f"on {entry.applied_at:%Y-%m-%d %H:%M} (checksum differs): "
                "restore it and put the change in a new migration"
            )


def order_pending(
    files: Sequence[MigrationFile], applied: set[str], root: Path | None = None
) -> list[MigrationFile]:
    """Pending files in an order that respects each schema's numbering and every ``requires``.

    Ties go to the lowest (schema, number). `MigrationError` when a required file is neither
    applied nor among `files` (saying whether it exists under `root`), or when requirements form
    a cycle.
    """
    pending = [f for f in files if f.key not in applied]
    by_key = {f.key: f for f in pending}
    deps: dict[str, set[str]] = {}
    previous: dict[str, str] = {}
    for file in sorted(pending, key=lambda f: (f.schema, f.number)):
        needs = set()
        if file.schema in previous:
            needs.add(previous[file.schema])
        previous[file.schema] = file.key
        for required in file.requires:
            if required in applied:
                continue
            if required not in by_key:
                schema = required.split("/", 1)[0]
                if root is not None and not (root / f"{required}.sql").is_file():
                    raise MigrationError(
                        f"{file.key} requires {required}, which does not exist "
                        f"({root / required}.sql is missing, and it is not in the journal): "
                        f"fix the `-- requires:` line of {file.path.name}"
                    )
                raise MigrationError(
                    f"{file.key} requires {required}, which is not applied: migrate schema "
                    f"{schema!r} first (or use --all)"
                )
            needs.add(required)
        deps[file.key] = needs
    out: list[MigrationFile] = []
    done: set[str] = set()
    while len(out) < len(pending):
        ready = [f for f in pending if f.key not in done and deps[f.key] <= done]
        if not ready:
            stuck = sorted(k for k in deps if k not in done)
            raise MigrationError(f"migration requirements form a cycle: {', '.join(stuck)}")
        first = min(ready, key=lambda f: (f.schema, f.number))
        out.append(first)
        done.add(first.key)
    return out


def _url(target: Database | str) -> str:
    return target if isinstance(target, str) else target.url


def status(
    target: Database | str, root: Path, schemas: Sequence[str] | None = None
) -> list[SchemaStatus]:
    """Applied, pending and tampered files per schema (schemas with files or journal rows).

    A missing migrations folder is no error here (before the first diff there is none): the
    journal's schemas are listed, their files all ``missing``.
    """
    with connect(_url(target)) as conn:
        journal = [e for e in read_journal(conn) if e.kind == "sql"]
    if schemas is not None:
        names = set(schemas)
    else:
        names = {e.schema for e in journal}
        if root.is_dir():
            names |= set(schema_folders(root, None))
    out = []
    for schema in sorted(names):
        files = list_files(root, schema)
        applied = {e.key: e for e in journal if e.schema == schema}
        rows: list[tuple[MigrationFile, FileState, JournalEntry | None]] = []
        for file in files:
            entry = applied.get(file.key)
            if entry is None:
                rows.append((file, "pending", None))
            elif entry.checksum != file.checksum:
                rows.append((file, "tampered", entry))
            else:
                rows.append((file, "applied", entry))
        keys = {f.key for f in files}
        missing = [e for e in applied.values() if e.key not in keys]
        out.append(SchemaStatus(schema, rows, missing))
    return out


def pending_files(
    target: Database | str, root: Path, schemas: Sequence[str]
) -> dict[str, list[MigrationFile]]:
    """The files of `schemas` not yet in the target's journal, per schema (only schemas that have
    some); a schema without a folder has none."""
    with connect(_url(target)) as conn:
        applied = {e.key for e in read_journal(conn) if e.kind == "sql"}
    out: dict[str, list[MigrationFile]] = {}
    for schema in schemas:
        files = [f for f in list_files(root, schema) if f.key not in applied]
        if files:
            out[schema] = files
    return out


def pending_summary(pending: dict[str, list[MigrationFile]]) -> str:
    """``shop has 1 pending file (0005_carrier)``, joined with ``, `` for several schemas."""
    parts = []
    for schema, files in pending.items():
        plural = "s" if len(files) != 1 else ""
        names = ", ".join(f.name for f in files)
        parts.append(f"{schema} has {len(files)} pending file{plural} ({names})")
    return ", ".join(parts)


def _statements(text: str) -> list[tuple[int, str]] | None:
    """Each statement of a file with its offset, or None to run the file whole: without pglast
    (a deploy host without the migration extras) or when it cannot split the text (PostgreSQL
    then reports the syntax error, with its position)."""
    try:
        from pglast.parser import ParseError, split
    except ImportError:
        return None
    try:
        return [(part.start, text[part]) for part in split(text, only_slices=True)]
    except ParseError:
        return None


def _line(text: str, part: tuple[int, str] | None, exc: psycopg.Error) -> int | None:
    """The file line of the error: PostgreSQL's position when it gives one (syntax errors,
    unknown columns), else the first line of the failing statement `part` (None when the file
    ran whole and PostgreSQL gave no position)."""
    position = getattr(getattr(exc, "diag", None), "statement_position", None)
    offset, statement = part if part is not None else (0, text)
    line = text[:offset].count("\n") + 1
    if position:
        return line + statement[: int(position) - 1].count("\n")
    return line if part is not None else None


def _message(exc: psycopg.Error) -> str:
    """PostgreSQL's message with its DETAIL (which row, which key) in parentheses, on one line."""
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) or _first_line(exc)
    detail = getattr(diag, "message_detail", None)
    return f"{primary} ({' '.join(detail.split())})" if detail else primary


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _apply_file(conn: psycopg.Connection[Any], file: MigrationFile) -> float:
    text = file.read()
    # One statement at a time, in the file's transaction, so a failure names its line even
    # when PostgreSQL gives no position (division by zero, a constraint violation).
    parts = _statements(text)
    current: tuple[int, str] | None = None
    started = time.perf_counter()
    try:
        with conn.transaction():
            if parts is None:
                conn.execute(text)
            else:
                for current in parts:
                    conn.execute(current[1])
            seconds = time.perf_counter() - started
            try:
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
                doing = f"record {file.key} in the journal (it was rolled back)"
                raise privilege_error(conn, exc, doing) from None
    except psycopg.Error as exc:
        line = _line(text, current, exc)
        where = f" (line {line})" if line is not None else ""
        raise MigrationError(
            f"{file.key} failed and was rolled back{where}: {_message(exc)}"
        ) from exc
    return seconds


def _run_process(db: Database, proc: Process) -> float:
    started = time.perf_counter()
    try:
        with db.transaction() as tx:
            proc.function(ProcessContext(db, tx, proc.name))
            seconds = time.perf_counter() - started
            record(
                tx.connection,
                kind="process",
                schema=proc.schema,
                name=proc.name,
                checksum=proc.checksum,
                duration_ms=seconds * 1000,
            )
    except Exception as exc:
        raise MigrationError(
            f"process {proc.name} failed and was rolled back: {type(exc).__name__}: {exc}"
        ) from exc
    return seconds


def migrate(
    target: Database | str,
    root: Path,
    *,
    schemas: Sequence[str] | None = None,
    processes: Sequence[Process] = (),
    dry_run: bool = False,
    progress: Progress | None = None,
    cancel_stale: bool = False,
) -> MigrateResult:
    """Apply the pending migration files of `schemas` (all folders when None) and then the due
    `processes`; with `dry_run`, only list them.

    Raises `TamperedMigrationError` before applying anything if an applied file changed, and
    `MigrationError` when a file fails (that file is rolled back, earlier ones stay applied).
    While another migrate holds the lock it waits, naming the holder; `cancel_stale` ends a
    holder whose migrate process (on this host) is gone.
    """
    say = progress or (lambda _message: None)
    names = schema_folders(root, schemas)
    files = [f for schema in names for f in list_files(root, schema)]
    if schemas is not None:
        procs = sorted((p for p in processes if p.schema in names), key=lambda p: p.name)
    else:
        procs = sorted(processes, key=lambda p: p.name)
    result = MigrateResult(dry_run=dry_run)
    url = _url(target)
    with connect(url) as conn:
        if dry_run:
            journal = read_journal(conn)
        else:
            identify_migrate_session(conn)
            acquire_lock(conn, say, cancel_stale=cancel_stale)
            ensure_journal(conn)
            # Read only now: whoever held the lock may have applied everything meanwhile.
            journal = read_journal(conn)
        applied = {e.key: e for e in journal if e.kind == "sql"}
        done_processes = {e.name for e in journal if e.kind == "process"}
        _verify(files, applied)
        todo = order_pending(files, set(applied), root)
        due = [p for p in procs if p.always_run or p.name not in done_processes]
        if dry_run:
            result.steps += [Step("sql", f.key) for f in todo]
            result.steps += [Step("process", p.name) for p in due]
            return result
        try:
            for file in todo:
                say(f"applying {file.key} ...")
                seconds = _apply_file(conn, file)
                say(f"applied  {file.key} in {seconds * 1000:.0f} ms")
                result.steps.append(Step("sql", file.key, seconds))
            if due:
                result.steps += _run_processes(target, url, due, say)
        finally:
            if (
                not conn.closed
                and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            ):
                release_lock(conn)
    return result


def _run_processes(
    target: Database | str, url: str, due: Sequence[Process], say: Progress
) -> list[Step]:
    from ..database import Database

    own = isinstance(target, str)
    db = Database(url, min_size=1, max_size=2, name="nxdata-migrate") if own else target
    assert isinstance(db, Database)
    steps = []
    try:
        for proc in due:
            say(f"running  process {proc.name} ...")
            seconds = _run_process(db, proc)
            say(f"ran      process {proc.name} in {seconds * 1000:.0f} ms")
            steps.append(Step("process", proc.name, seconds))
    finally:
        if own:
            db.close()
    return steps
