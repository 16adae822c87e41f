"""Applying migrations: pending SQL files in order, each in its own transaction, then processes.

One PostgreSQL advisory lock (session level, on a dedicated connection) serializes every
``migrate`` against the same database: when several replicas start at once, one applies and the
others wait, re-read the journal and find nothing left to do.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import psycopg

from ..errors import (
    ConfigurationError,
    MigrationError,
    TamperedMigrationError,
    UnsafeMigrationError,
)
from .apply import DEFAULT_LOCK_POLICY, BlockerWatch, LockPolicy, apply_file, statements_of
from .files import (
    ALLOW_NEEDED,
    MigrationFile,
    checksum_matches,
    list_files,
    parse_allow,
    split_steps,
)
from .journal import (
    JournalEntry,
    acquire_lock,
    ensure_journal,
    identify_migrate_session,
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
    "check_hazards",
    "mark_applied",
    "migrate",
    "order_pending",
    "pending_files",
    "pending_summary",
    "schema_folders",
    "status",
]

Progress = Callable[[str], None]
FileState = Literal["applied", "marked", "pending", "partial", "tampered"]
"""``marked``: recorded by --mark-applied or a baseline, not run; ``partial``: some of its steps
ran (the next migrate resumes after them)."""

_HAZARD_LINE = re.compile(r"^--\s*hazard:\s*([a-z-]+):", re.MULTILINE)
_HEADER_HAZARD = re.compile(r"^--\s*hazard:\s*([a-z-]+):\s*(.*?)(?: \(recipe: .*)?$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Step:
    """One applied file or process (or, in a dry run, one that would be)."""

    kind: Literal["sql", "process"]
    key: str
    seconds: float = 0.0
    refused: str | None = None
    """In a dry run: why migrate would refuse this file (its hazards, rows that would fail)."""


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
        """Files not applied yet (or applied in part)."""
        return [f for f, state, _ in self.files if state in ("pending", "partial")]

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
        if entry is not None and not checksum_matches(file.read(), entry.checksum):
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
        everything = read_journal(conn)
    journal = [e for e in everything if e.kind == "sql"]
    steps_done: dict[str, int] = {}
    for e in everything:
        if e.kind == "step":
            key = f"{e.schema}/{e.name.rpartition('#')[0]}"
            steps_done[key] = steps_done.get(key, 0) + 1
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
                rows.append((file, "partial" if file.key in steps_done else "pending", None))
            elif not checksum_matches(file.read(), entry.checksum):
                rows.append((file, "tampered", entry))
            else:
                state: FileState = "applied" if entry.how == "applied" else "marked"
                rows.append((file, state, entry))
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
    lock: LockPolicy = DEFAULT_LOCK_POLICY,
    allow: Sequence[str] = (),
    data_checks: bool = True,
    processes_only: bool = False,
    again: Sequence[str] = (),
) -> MigrateResult:
    """Apply the pending migration files of `schemas` (all folders when None) and then the due
    `processes`; with `dry_run`, only list them.

    `processes_only` (``nxdata seed``) runs the due processes alone, and refuses while files
    are pending; `again` names run-once processes to run once more (demo data, in development).

    Raises `TamperedMigrationError` before applying anything if an applied file changed;
    `UnsafeMigrationError` when a file has hazards that are not allowed (`allow`, or its
    ``-- nxdata: allow`` line) or, with `data_checks`, existing rows that would make it fail;
    `MigrationError` when an applied file is missing, and when a file fails (that step is rolled
    back; earlier files, and earlier steps of that file, stay applied, and the next migrate
    resumes after them).
    Every transactional step runs under ``lock_timeout`` (`lock`), retried with a backoff.
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
    allowed = frozenset(k.strip().lower() for k in allow if k.strip())
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
        _refuse_missing(root, names, files, applied)
        todo = order_pending(files, set(applied), root)
        unknown = [name for name in again if name not in {p.name for p in procs}]
        if unknown:
            raise MigrationError(
                f"no process {unknown[0]!r} in {', '.join(names) or 'these schemas'} "
                f"(processes: {', '.join(p.name for p in procs) or 'none'})"
            )
        due = [p for p in procs if p.always_run or p.name not in done_processes or p.name in again]
        if processes_only:
            if todo:
                raise MigrationError(
                    f"{len(todo)} migration file{'s' if len(todo) != 1 else ''} pending "
                    f"({', '.join(f.key for f in todo)}): run `nxdata migrate` first, which "
                    "runs the processes too"
                )
            todo = []
        steps_done: dict[str, set[int]] = {}
        for entry in journal:
            if entry.kind == "step":
                name, _, number = entry.name.rpartition("#")
                steps_done.setdefault(f"{entry.schema}/{name}", set()).add(int(number))
        if dry_run:
            for file in todo:
                try:
                    check_hazards(
                        conn,
                        url,
                        file,
                        allowed,
                        data_checks=data_checks,
                        steps_done=frozenset(steps_done.get(file.key, ())),
                    )
                except UnsafeMigrationError as exc:
                    result.steps.append(Step("sql", file.key, refused=str(exc)))
                    break  # what comes after it would not run either
                result.steps.append(Step("sql", file.key))
            else:
                result.steps += [Step("process", p.name) for p in due]
            return result
        try:
            with BlockerWatch(url, conn.info.backend_pid) as watch:
                for file in todo:
                    done = frozenset(steps_done.get(file.key, ()))
                    check_hazards(
                        conn, url, file, allowed, data_checks=data_checks, steps_done=done
                    )
                    resumed = f" (resuming after step {max(done)})" if done else ""
                    say(f"applying {file.key} ...{resumed}")
                    seconds = apply_file(conn, file, done=done, policy=lock, watch=watch, say=say)
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


def check_hazards(
    conn: psycopg.Connection[Any],
    url: str,
    file: MigrationFile,
    allowed: frozenset[str] = frozenset(),
    *,
    data_checks: bool = True,
    steps_done: frozenset[int] = frozenset(),
) -> None:
    """Refuse `file` when the steps not yet done have hazards (on the database as it is now)
    that neither `allowed` nor the file's ``-- nxdata: allow`` line accepts, or, with
    `data_checks`, rows that would make a statement fail — allowed or not, since such a
    statement fails anyway, half-way through the file; `UnsafeMigrationError` naming each
    statement, hazard and recipe."""
    text = file.read()
    accepted = allowed | parse_allow(text)
    try:
        from .differ import count_failing_rows
        from .hazards import Hazard, classify
        from .inspect import target_state
    except (ImportError, ConfigurationError):
        # A deploy host without the migration extras cannot parse SQL: the hazards the file's
        # header lists (written by nxdata diff) are enforced.
        if "all" in accepted:
            return
        declared = set(_HAZARD_LINE.findall(text))
        refused_kinds = sorted(k for k in declared if k in ALLOW_NEEDED and k not in accepted)
        if refused_kinds:
            kinds = ",".join(refused_kinds)
            raise UnsafeMigrationError(
                f"{file.key} lists hazards that are not allowed ({kinds}): allow them with "
                f"`nxdata migrate --allow {kinds}` or a line `-- nxdata: allow {kinds}` in the file"
            ) from None
        return
    file_steps = [step for step in split_steps(text) if step.number not in steps_done]
    steps = [[s for _, s in statements_of(step.sql)] for step in file_steps]
    tx_steps = [
        statements for step, statements in zip(file_steps, steps, strict=True) if step.transaction
    ]
    try:
        hazards = classify(
            [s for statements in steps for s in statements], target_state(conn), steps=tx_steps
        )
    except MigrationError:
        return  # SQL that does not parse: PostgreSQL says where, when the file runs
    refused = [h for h in hazards if h.kind in ALLOW_NEEDED and not ({h.kind, "all"} & accepted)]
    # What only the diff could see (a view that loses a column): the file's header says it.
    found = {h.kind for h in hazards}
    for kind, reason in _HEADER_HAZARD.findall(text) if not steps_done else ():
        if kind in ALLOW_NEEDED and kind not in found and not ({kind, "all"} & accepted):
            refused.append(Hazard(kind, "(the file's header)", reason, "see the header"))
    failing: list[Any] = []
    if data_checks:
        checks = [h for h in hazards if h.kind == "fails-on-data" and h.check]
        failing = [h for h in count_failing_rows(url, checks) if h.rows]
    if refused or failing:
        lines = "\n".join(
            f"  {h}\n    in: {' '.join(h.statement.split())[:160]}\n    recipe: {h.recipe}"
            for h in refused + failing
        )
        advice = []
        if refused:
            kinds = ",".join(sorted({h.kind for h in refused}))
            advice.append(
                f"allow them with `nxdata migrate --allow {kinds}` or a line "
                f"`-- nxdata: allow {kinds}` in the file (a reviewer's decision)"
            )
        if failing:
            advice.append(
                "fix the rows that would fail first (nothing of the file has run; "
                "--no-data-checks skips this count)"
            )
        what = "hazards that are not allowed" if refused else "statements that rows would fail"
        raise UnsafeMigrationError(f"{file.key} has {what}:\n{lines}\n" + "; ".join(advice))


def check_folder(target: Database | str, root: Path, schemas: Sequence[str]) -> None:
    """Refuse a folder that no longer describes the database: an applied file of `schemas`
    changed (`TamperedMigrationError`) or gone (`MigrationError`). ``nxdata diff`` checks this
    first: a new file numbered after a lost one would take its number."""
    names = [s for s in schemas if (root / s).is_dir()]
    files = [f for schema in names for f in list_files(root, schema)]
    with connect(_url(target)) as conn:
        applied = {e.key: e for e in read_journal(conn) if e.kind == "sql"}
    _verify(files, applied)
    _refuse_missing(root, list(schemas), files, applied)


def _refuse_missing(
    root: Path,
    schemas: Sequence[str],
    files: Sequence[MigrationFile],
    applied: dict[str, JournalEntry],
) -> None:
    """An applied file that is gone from the folder: the folder no longer describes the
    database (a lost file, a rebase). Refused, naming it."""
    keys = {f.key for f in files}
    missing = [e for e in applied.values() if e.schema in schemas and e.key not in keys]
    if missing:
        names = ", ".join(f"{e.key} (applied {e.applied_at:%Y-%m-%d %H:%M})" for e in missing)
        raise MigrationError(
            f"applied migration files are missing from {root}: {names}; restore them (from "
            "version control) before migrating: the folder must describe the database"
        )


def mark_applied(target: Database | str, root: Path, keys: Sequence[str]) -> list[str]:
    """Record files as applied without running them (the journal says ``marked``): for a change
    made by hand that a file describes. `MigrationError` for an unknown or applied file."""
    from .journal import record

    url = _url(target)
    with connect(url) as conn:
        identify_migrate_session(conn)
        acquire_lock(conn)
        try:
            ensure_journal(conn)
            applied = {e.key for e in read_journal(conn) if e.kind == "sql"}
            out = []
            for key in keys:
                key = key.removesuffix(".sql")
                schema, _, name = key.replace("\\", "/").rpartition("/")
                schema = schema.rsplit("/", 1)[-1]
                if not schema:
                    raise MigrationError(
                        f"name the file with its schema: schema/{name} (e.g. shop/{name})"
                    )
                found = [f for f in list_files(root, schema) if f.name == name]
                if not found:
                    raise MigrationError(
                        f"no migration file {schema}/{name}.sql under {root} to mark as applied"
                    )
                file = found[0]
                if file.key in applied:
                    raise MigrationError(f"{file.key} is already applied")
                with conn.transaction():
                    record(
                        conn,
                        kind="sql",
                        schema=file.schema,
                        name=file.name,
                        checksum=file.checksum,
                        duration_ms=0.0,
                        how="marked",
                    )
                out.append(file.key)
            return out
        finally:
            release_lock(conn)


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
