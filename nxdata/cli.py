"""The ``nxdata`` command: ``diff``, ``migrate``, ``check`` and ``status``.

    nxdata diff --schema licensing --name add_status   # migrations/licensing/NNNN_add_status.sql
    nxdata diff --all --dry-run                        # print the SQL, write nothing
    nxdata migrate --all                               # apply pending files, then processes
    nxdata check --all                                 # exit 1 when the database drifted
    nxdata status                                      # applied and pending files per schema

The database comes from ``--url``, else ``NXDATA_DATABASE_URL`` / ``DATABASE_URL``, else
``--embedded`` (a local PostgreSQL under ``.nxdata/embedded``). The models package and the
migrations folder come from ``--models`` / ``--migrations-dir``, else ``[tool.nxdata]``.
Errors are one line on stderr and a non-zero exit status, never a traceback (set
``NXDATA_DEBUG=1`` to get one).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, TextIO

import psycopg

from .config import database_url, redact, validate_url
from .errors import ConfigurationError, NxdataError, UnsafeMigrationError

if TYPE_CHECKING:
    from .migrations.discovery import Models
    from .migrations.processes import Process
    from .migrations.project import ProjectSettings

__all__ = ["EXIT_DRIFT", "EXIT_ERROR", "EXIT_OK", "build_parser", "main"]

EXIT_OK = 0
EXIT_ERROR = 1
"""Any error: bad configuration, unreachable server, failed or refused migration."""
EXIT_DRIFT = 1
"""``check`` found differences (and ``diff`` refused destructive statements)."""
EXIT_INTERRUPTED = 130
"""Ctrl-C (SIGINT); SIGTERM gives 143, as shells report a process killed by it."""


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so cleanup (``finally`` blocks) runs as for Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _on_sigterm(signum: int, _frame: FrameType | None) -> None:
    # A second SIGTERM must not interrupt the cleanup the first one started (dropping the
    # throwaway database); SIGKILL remains for the impatient.
    signal.signal(signum, signal.SIG_IGN)
    raise _Terminated(signum)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises `_Terminated` (a KeyboardInterrupt) in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _common(parser: argparse.ArgumentParser) -> None:
    where = parser.add_argument_group("where")
    where.add_argument(
        "--url",
        metavar="URL",
        help="database URL (default: $NXDATA_DATABASE_URL, then $DATABASE_URL)",
    )
    where.add_argument(
        "--embedded",
        action="store_true",
        help="use the embedded PostgreSQL (pgserver) under .nxdata/embedded instead of a URL",
    )
    where.add_argument(
        "--models",
        metavar="MODULE",
        help="package declaring the schemas and processes (default: [tool.nxdata] models)",
    )
    where.add_argument(
        "--migrations-dir",
        metavar="DIR",
        help="folder of migration files (default: [tool.nxdata] migrations)",
    )


def _scope(parser: argparse.ArgumentParser, *, required: bool) -> None:
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument(
        "--schema",
        metavar="NAME",
        action="append",
        dest="schemas",
        help="only this schema (repeatable)",
    )
    group.add_argument("--all", action="store_true", help="every schema")


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _retries(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count (0 or more)")
    return value


def _hazard_kinds(text: str) -> list[str]:
    from .migrations.files import check_kinds

    try:
        return check_kinds(text.split(","))
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``nxdata`` command."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="nxdata",
        description="Migrations by diff for nxdata declarations.",
        epilog="Run `nxdata COMMAND --help` for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"nxdata {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    diff = commands.add_parser(
        "diff",
        help="write a migration from the difference between the declarations and the database",
        description=(
            "Build a throwaway database from the declarations, diff the target against it with "
            "migra, and write migrations/{schema}/NNNN_{name}.sql per changed schema, in steps "
            "that keep a live database up (concurrent indexes, NOT VALID then VALIDATE), with "
            "every hazard and its recipe in the file's header. Statements that lose data, and "
            "statements that existing rows would make fail, are refused without --unsafe."
        ),
    )
    _scope(diff, required=True)
    diff.add_argument(
        "--name", metavar="LABEL", help="file label (default: derived from the change)"
    )
    diff.add_argument(
        "--unsafe",
        action="store_true",
        help="accept statements that lose data or would fail on rows; the file then allows "
        "its hazards (a `-- nxdata: allow` line)",
    )
    diff.add_argument(
        "--no-data-checks",
        action="store_true",
        help="do not count the rows that would make a new constraint or NOT NULL fail",
    )
    diff.add_argument(
        "--dry-run",
        "--print",
        dest="dry_run",
        action="store_true",
        help="print the SQL, write nothing",
    )
    _common(diff)

    migrate = commands.add_parser(
        "migrate",
        help="apply pending migration files, then seed processes",
        description=(
            "Apply the migration files not yet in the journal, in order, each in its own "
            "transaction, under an advisory lock; then run the due processes."
        ),
    )
    _scope(migrate, required=True)
    migrate.add_argument("--dry-run", action="store_true", help="list what would run")
    migrate.add_argument(
        "--no-processes", action="store_true", help="apply SQL files only, skip processes"
    )
    migrate.add_argument(
        "--cancel-stale",
        action="store_true",
        help="end the backend holding the migration lock when its migrate process is gone",
    )
    migrate.add_argument(
        "--lock-timeout",
        type=_positive_seconds,
        default=3.0,
        metavar="SECONDS",
        help="lock_timeout of every statement (default 3): the longest the application may "
        "queue behind a DDL lock",
    )
    migrate.add_argument(
        "--lock-retries",
        type=_retries,
        default=5,
        metavar="N",
        help="times a step is tried again after a lock timeout, with a backoff (default 5)",
    )
    migrate.add_argument(
        "--allow",
        action="append",
        type=_hazard_kinds,
        default=[],
        metavar="KINDS",
        help="hazards to accept: data-loss, rewrite, long-lock, breaking, drops-object, all (comma "
        "separated; a file's `-- nxdata: allow` line does the same for that file). Rows that "
        "would make a statement fail are refused whatever is allowed",
    )
    migrate.add_argument(
        "--no-data-checks",
        action="store_true",
        help="do not count the rows that would make a statement fail before applying it",
    )
    migrate.add_argument(
        "--mark-applied",
        action="append",
        default=[],
        metavar="FILE",
        help="record FILE (schema/NNNN_label) as applied without running it, then stop",
    )
    _common(migrate)

    seed = commands.add_parser(
        "seed",
        help="run the due seed processes of some schemas (no SQL files)",
        description=(
            "Run the seed processes of the schemas: those marked always_run and the run-once "
            "ones not yet run (and, with --again, run-once ones again: demo data in "
            "development). Refused while migration files are pending: `nxdata migrate` runs "
            "both."
        ),
    )
    _scope(seed, required=True)
    seed.add_argument(
        "--again",
        action="append",
        default=[],
        metavar="PROCESS",
        help="run this run-once process again (repeatable)",
    )
    _common(seed)
    baseline = commands.add_parser(
        "baseline",
        help="adopt a database built without nxdata: record its current schema as migration 1",
        description=(
            "For each declared schema without migrations, write a first migration that builds "
            "the schema as the database has it now, and record it as applied (not run). The "
            "next `nxdata diff` then holds only the difference to the declarations."
        ),
    )
    _scope(baseline, required=True)
    baseline.add_argument("--name", metavar="LABEL", default="baseline", help="file label")
    _common(baseline)

    lint = commands.add_parser(
        "lint",
        help="check the migration files (for CI): hazards, numbering, and with a database, "
        "tampering and whether pending files apply",
        description=(
            "Report hazards nobody allowed, numbering gaps, duplicate or misnamed files and "
            "broken `requires`; given a database (--url / --embedded / the environment), also "
            "files changed after they were applied and pending files that do not apply on a "
            "throwaway copy of its current schema. Exit 1 when anything is found."
        ),
    )
    lint.add_argument(
        "--schema", dest="schemas", action="append", metavar="NAME", help="only this schema"
    )
    lint.add_argument(
        "--offline", action="store_true", help="check the files alone, without a database"
    )
    _common(lint)

    check = commands.add_parser(
        "check",
        help="exit non-zero (printing the diff) when the database differs from the declarations",
        description="Drift detection: exit 0 when the database matches the declarations.",
    )
    _scope(check, required=False)
    _common(check)

    status = commands.add_parser(
        "status",
        help="list applied and pending migration files per schema",
        description="Applied, pending and changed migration files per schema, and processes.",
    )
    status.add_argument(
        "--schema", metavar="NAME", action="append", dest="schemas", help="only this schema"
    )
    _common(status)
    return parser


class _Runner:
    """One command run: settings, URL (maybe an embedded server), output streams."""

    def __init__(self, args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
        from .migrations.project import load_settings

        self.args = args
        self.out = out
        self.err = err
        self.settings: ProjectSettings = load_settings(
            models=args.models, migrations=args.migrations_dir
        )

    def say(self, message: str) -> None:
        print(message, file=self.out, flush=True)

    @contextmanager
    def url(self) -> Iterator[str]:
        if self.args.embedded:
            if self.args.url:
                raise ConfigurationError("--url and --embedded exclude each other")
            from .embedded import EmbeddedPostgres

            server = EmbeddedPostgres(self.settings.root / ".nxdata" / "embedded")
            self.say(f"using the embedded PostgreSQL in {server.data_dir}")
            try:
                yield server.start()
            finally:
                server.stop()
            return
        explicit = database_url(self.args.url)
        if explicit is None:
            raise ConfigurationError(
                "no database URL: pass --url, set NXDATA_DATABASE_URL (or DATABASE_URL), "
                "or use --embedded"
            )
        yield validate_url(explicit)

    def models(self) -> Models:
        from .migrations.discovery import load_models

        return load_models(self.settings.models, path=self.settings.root)

    def scope(self) -> list[str] | None:
        return None if getattr(self.args, "all", False) else self.args.schemas


def _cmd_diff(run: _Runner) -> int:
    from .migrations.generate import generate_migrations
    from .migrations.throwaway import clean_leftovers

    started = time.perf_counter()
    models = run.models()
    root = run.settings.migrations_dir
    with run.url() as url:
        clean_leftovers(url, say=run.say)  # here rather than in silence inside the diff
        try:
            generated = generate_migrations(
                url,
                models,
                root,
                schemas=run.scope(),
                label=run.args.name,
                unsafe=run.args.unsafe,
                dry_run=run.args.dry_run,
                data_checks=not run.args.no_data_checks,
                ignore_schemas=run.settings.ignore_schemas,
                unmanaged=run.settings.unmanaged,
            )
        except UnsafeMigrationError as exc:
            print(f"nxdata diff: refused: {exc}", file=run.err)
            return EXIT_DRIFT
    if not generated:
        run.say("no changes: the database matches the declarations")
        return EXIT_OK
    for item in generated:
        where = _relative(item.file.path)
        if run.args.dry_run:
            run.say(f"-- {where}")
            run.say(item.text)
        else:
            count = len(item.diff.statements)
            steps = len(item.diff.steps)
            run.say(
                f"wrote {where} ({count} statement{'s' if count != 1 else ''}"
                + (f", {steps} steps)" if steps > 1 else ")")
            )
            for hazard in item.diff.hazards:
                run.say(f"  hazard: {hazard}")
    refused = next((item.refused for item in generated if item.refused), None)
    if refused is not None:
        print(f"nxdata diff: without --dry-run, refused: {refused}", file=run.err)
    run.say(f"done in {time.perf_counter() - started:.2f} s")
    return EXIT_DRIFT if refused is not None else EXIT_OK


def _cmd_migrate(run: _Runner) -> int:
    from .migrations.apply import LockPolicy
    from .migrations.runner import mark_applied, migrate

    started = time.perf_counter()
    root = run.settings.migrations_dir
    if run.args.mark_applied:
        with run.url() as url:
            marked = mark_applied(url, root, run.args.mark_applied)
        for key in marked:
            run.say(f"marked {key} as applied (not run)")
        return EXIT_OK
    processes = () if run.args.no_processes else run.models().processes
    allow = [kind for kinds in run.args.allow for kind in kinds]
    with run.url() as url:
        result = migrate(
            url,
            root,
            schemas=run.scope(),
            processes=processes,
            dry_run=run.args.dry_run,
            progress=run.say,
            cancel_stale=run.args.cancel_stale,
            lock=LockPolicy(timeout=run.args.lock_timeout, retries=run.args.lock_retries),
            allow=allow,
            data_checks=not run.args.no_data_checks,
        )
    if result.dry_run:
        if not result.steps:
            run.say("nothing to apply")
        for step in result.steps:
            if step.refused is not None:
                run.say(f"would refuse {step.key} (and stop there):")
                run.say("  " + step.refused.replace("\n", "\n  "))
            else:
                run.say(f"would {'apply' if step.kind == 'sql' else 'run process'} {step.key}")
        # A dry run answers "would this deploy go through?": no, when a file would be refused.
        return EXIT_DRIFT if any(s.refused for s in result.steps) else EXIT_OK
    if not result.steps:
        run.say("nothing to apply: the database is up to date")
    else:
        files, procs = len(result.files), len(result.processes)
        run.say(
            f"applied {files} file{'s' if files != 1 else ''} and ran {procs} "
            f"process{'es' if procs != 1 else ''} in {time.perf_counter() - started:.2f} s"
        )
    return EXIT_OK


def _cmd_seed(run: _Runner) -> int:
    from .migrations.runner import migrate

    started = time.perf_counter()
    with run.url() as url:
        result = migrate(
            url,
            run.settings.migrations_dir,
            schemas=run.scope(),
            processes=run.models().processes,
            progress=run.say,
            processes_only=True,
            again=run.args.again,
        )
    count = len(result.processes)
    run.say(
        f"ran {count} process{'es' if count != 1 else ''} in {time.perf_counter() - started:.2f} s"
        if count
        else "no process is due"
    )
    return EXIT_OK


def _cmd_baseline(run: _Runner) -> int:
    from .migrations.generate import baseline

    models = run.models()
    root = run.settings.migrations_dir
    with run.url() as url:
        generated = baseline(url, models, root, schemas=run.scope(), label=run.args.name)
    if not generated:
        run.say("nothing to adopt: the declared schemas do not exist in the database")
    for item in generated:
        count = len(item.diff.statements)
        run.say(
            f"wrote {_relative(item.file.path)} ({count} statement{'s' if count != 1 else ''}) "
            "and recorded it as applied (baseline)"
        )
    return EXIT_OK


def _cmd_lint(run: _Runner) -> int:
    from .config import database_url
    from .migrations.linting import lint

    root = run.settings.migrations_dir
    offline = run.args.offline or (
        not run.args.url and not run.args.embedded and database_url() is None
    )
    if offline:
        report = lint(root, schemas=run.args.schemas)
    else:
        with run.url() as url:
            report = lint(root, schemas=run.args.schemas, url=url)
    shown = _relative(root)
    for problem in report.problems:
        print(f"nxdata lint: {problem.replace(str(root), shown)}", file=run.err)
    if report.problems:
        return EXIT_DRIFT
    where = "" if offline else " (checked against the database)"
    run.say(f"ok: {report.files} migration file{'s' if report.files != 1 else ''}{where}")
    return EXIT_OK


def _kept_schemas(url: str, names: list[str]) -> dict[str, str]:
    """`generate.kept_schemas`, or {} without the migration extras (status works without)."""
    if not names:
        return {}
    try:
        from .migrations.generate import kept_schemas
    except ConfigurationError:
        return {"public": "nxdata never drops public"} if "public" in names else {}
    return kept_schemas(url, names)


def _cmd_check(run: _Runner) -> int:
    from .migrations.generate import check_drift, kept_schemas
    from .migrations.inspect import undeclared_schemas
    from .migrations.runner import pending_files

    models = run.models()
    scope = run.scope()
    with run.url() as url:
        drift = check_drift(
            url,
            models,
            scope,
            ignore_schemas=run.settings.ignore_schemas,
            unmanaged=run.settings.unmanaged,
        )
        selected = [s.name for s in models.select(scope)]
        pending = pending_files(url, run.settings.migrations_dir, selected)
        where = redact(url)
        undeclared: list[str] = []
        kept: dict[str, str] = {}
        if scope is None:
            declared_names = [s.name for s in models.select(None)]
            undeclared = [
                n for n, _ in undeclared_schemas(url, declared_names, run.settings.ignore_schemas)
            ]
            kept = kept_schemas(url, undeclared)
    # Pending files usually explain the drift: say so, or the fix looks like a new diff.
    note = ""
    if pending:
        keys = [f.key for files in pending.values() for f in files]
        plural = "s" if len(keys) != 1 else ""
        note = (
            f"; {len(keys)} pending file{plural} would be applied by nxdata migrate "
            f"({', '.join(keys)})"
        )
    if not drift and not undeclared:
        run.say(f"ok: {where} matches the declarations{note}")
        return EXIT_OK
    for name in undeclared:
        advice = kept.get(
            name,
            "declare it, drop it (nxdata diff --all --unsafe) or list it in [tool.nxdata] "
            "ignore_schemas",
        )
        print(
            f"nxdata check: {name} exists in the database but no declaration names it: {advice}",
            file=run.err,
        )
    if not drift:
        return EXIT_DRIFT
    names = ", ".join(d.schema for d in drift)
    print(f"nxdata check: drift in {names}{note}; the statements that would fix it:", file=run.err)
    for diff in drift:
        run.say(f"-- schema {diff.schema}")
        run.say(diff.sql)
    return EXIT_DRIFT


def _plural(n: int, singular: str, plural: str) -> str:
    return f"{n} {singular if n == 1 else plural}"


def _cmd_status(run: _Runner) -> int:
    from .migrations.journal import read_journal
    from .migrations.runner import status
    from .migrations.throwaway import connect

    root = run.settings.migrations_dir
    procs = _try_processes(run)
    declared = _try_declared(run)
    with run.url() as url:
        schemas = status(url, root, run.args.schemas)
        with connect(url) as conn:
            done = {e.name: e for e in read_journal(conn) if e.kind == "process"}
        undeclared: list[tuple[str, int]] = []
        if declared is not None and not run.args.schemas:
            from .migrations.inspect import undeclared_schemas

            undeclared = undeclared_schemas(url, declared, run.settings.ignore_schemas)
        kept = _kept_schemas(url, [name for name, _ in undeclared])
    if not schemas:
        where = "is empty" if root.is_dir() else "does not exist"
        run.say(f"no migrations yet: {_relative(root)} {where} (`nxdata diff` writes them)")
    for item in schemas:
        run.say(f"{item.schema}:")
        if not item.files and not item.missing:
            run.say("  (no migration files)")
        for file, state, entry in item.files:
            detail = ""
            if entry is not None:
                detail = (
                    f"  {entry.applied_at:%Y-%m-%d %H:%M:%S}  {entry.duration_ms:.0f} ms"
                    f"  {entry.applied_by}"
                )
            run.say(f"  {state:<8} {file.name}{detail}")
        for entry in item.missing:
            run.say(f"  {'missing':<8} {entry.name}  (applied, but the file is gone)")
    for name, tables in undeclared:
        advice = kept.get(
            name,
            "declare it, drop it with nxdata diff --all --unsafe, or ignore it in [tool.nxdata] "
            "ignore_schemas",
        )
        run.say(
            f"{name}: in the database but not declared ({_plural(tables, 'table', 'tables')}; "
            f"{advice})"
        )
    pending_procs = 0
    if done or procs:
        run.say("processes:")
        names = sorted(set(done) | {p.name for p in procs})
        always = {p.name for p in procs if p.always_run}
        for name in names:
            ran = done.get(name)
            label = "always" if name in always else ("done" if ran else "pending")
            pending_procs += label == "pending"
            last = f"  last run {ran.applied_at:%Y-%m-%d %H:%M:%S}" if ran else ""
            run.say(f"  {label:<8} {name}{last}")
    pending = sum(len(s.pending) for s in schemas)
    tampered = [f.key for s in schemas for f in s.tampered]
    missing = [e.key for s in schemas for e in s.missing]
    summary = [_plural(pending, "pending file", "pending files")]
    if tampered:
        summary.append(_plural(len(tampered), "tampered file", "tampered files"))
    if missing:
        summary.append(_plural(len(missing), "missing file", "missing files"))
    if pending_procs:
        summary.append(_plural(pending_procs, "pending process", "pending processes"))
    run.say(", ".join(summary))
    if tampered or missing:
        # The folder no longer describes the database: fail, so status can gate a deploy or CI.
        problems = [f"{k} changed after it was applied" for k in tampered]
        problems += [f"{k} was applied but its file is gone" for k in missing]
        print(
            f"nxdata status: error: {'; '.join(problems)}: restore the files "
            "(put changes in new migrations)",
            file=run.err,
        )
        return EXIT_ERROR
    return EXIT_OK


def _try_declared(run: _Runner) -> list[str] | None:
    """The declared schema names, or None when the models cannot be imported (status works
    from SQL files alone) or the diff extras are missing."""
    try:
        return [s.name for s in run.models().select(None)]
    except ConfigurationError:
        return None


def _try_processes(run: _Runner) -> Sequence[Process]:
    # Status works without importable models (e.g. on a deploy host with only SQL files);
    # an explicitly named models package must import, though.
    try:
        return run.models().processes
    except ConfigurationError:
        if run.args.models:
            raise
        return ()


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _one_line(message: str) -> str:
    # Errors are one line (logs, CI annotations): a DETAIL or HINT from PostgreSQL, or a failed
    # statement, continues on the same line.
    return " ".join(message.split()) if "\n" in message else message


_COMMANDS: dict[str, Callable[[_Runner], int]] = {
    "diff": _cmd_diff,
    "migrate": _cmd_migrate,
    "seed": _cmd_seed,
    "check": _cmd_check,
    "status": _cmd_status,
    "baseline": _cmd_baseline,
    "lint": _cmd_lint,
}


def main(
    argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Run the ``nxdata`` command; returns the exit status (the console script exits with it)."""
    out = out or sys.stdout
    err = err or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        with _sigterm_as_interrupt():
            run = _Runner(args, out, err)
            return _COMMANDS[args.command](run)
    except UnsafeMigrationError as exc:
        if os.environ.get("NXDATA_DEBUG"):
            raise
        # A refusal lists each statement, hazard and recipe on lines of their own (a review).
        print(f"nxdata {args.command}: refused: {exc}", file=err)
        return EXIT_ERROR
    except NxdataError as exc:
        if os.environ.get("NXDATA_DEBUG"):
            raise
        print(f"nxdata {args.command}: error: {_one_line(str(exc))}", file=err)
        return EXIT_ERROR
    except _Terminated as exc:
        print(f"nxdata {args.command}: terminated", file=err)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print(f"nxdata {args.command}: interrupted", file=err)
        return EXIT_INTERRUPTED
    except psycopg.Error as exc:  # a server error no command translated: still one line
        if os.environ.get("NXDATA_DEBUG"):
            raise
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        print(f"nxdata {args.command}: error: PostgreSQL: {first}", file=err)
        return EXIT_ERROR
    except Exception as exc:  # a bug: still one line, with a way to see more
        if os.environ.get("NXDATA_DEBUG"):
            raise
        print(
            f"nxdata {args.command}: internal error: {type(exc).__name__}: {_one_line(str(exc))} "
            "(set NXDATA_DEBUG=1 for the traceback)",
            file=err,
        )
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
