"""``nxdata lint``: what CI should refuse in a migrations folder before anything reaches a
database — hazards nobody allowed, numbering gaps and duplicates, misnamed files, broken
``requires``, and, given a database, files edited after they were applied and pending files
that do not apply on a throwaway copy of its current schema.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from ..errors import MigrationError
from .apply import statements_of
from .files import (
    ALLOW_NEEDED,
    MigrationFile,
    checksum_matches,
    list_files,
    parse_allow,
    split_steps,
)
from .hazards import classify
from .inspect import TargetState

__all__ = ["LintReport", "lint"]


@dataclass(slots=True)
class LintReport:
    """Problems found, each a line naming the file; empty: the folder is fine."""

    problems: list[str] = field(default_factory=list)
    files: int = 0

    def __bool__(self) -> bool:
        return not self.problems


def lint(
    root: Path,
    *,
    schemas: Sequence[str] | None = None,
    url: str | None = None,
    throwaway_prefix: str | None = None,
) -> LintReport:
    """Lint the migration files of `schemas` (every folder when None). Without `url`, every
    file is judged as if its tables existed, with their column types unknown (a ``CREATE
    INDEX`` on a table the file does not create is a long lock; any type change may lose
    data); with it, the applied files are checked against their journal checksums and the
    pending ones are judged and applied, in order, on a throwaway copy of its current schema."""
    report = LintReport()
    if not root.is_dir():
        report.problems.append(f"{root}: no migrations folder")
        return report
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if schemas is not None:
        names = [n for n in names if n in schemas]
    files: list[MigrationFile] = []
    for schema in names:
        try:
            found = list_files(root, schema)
        except MigrationError as exc:
            report.problems.append(str(exc))
            continue
        numbers = [f.number for f in found]
        expected = list(range(1, len(found) + 1))
        if numbers and numbers != expected:
            gaps = sorted(set(range(1, max(numbers) + 1)) - set(numbers))
            report.problems.append(
                f"{root / schema}: numbering gap (missing {', '.join(f'{g:04d}' for g in gaps)})"
            )
        files += found
    report.files = len(files)
    applied: dict[str, str] = {}
    if url is not None:
        from .journal import read_journal
        from .throwaway import connect

        with connect(url) as conn:
            applied = {e.key: e.checksum for e in read_journal(conn) if e.kind == "sql"}
    for file in files:
        if file.key in applied and not checksum_matches(file.read(), applied[file.key]):
            report.problems.append(f"{file.path}: changed after it was applied")
    present = {f.key for f in files}
    for key in sorted(applied):
        schema = key.partition("/")[0]
        if key not in present and (schemas is None or schema in schemas):
            report.problems.append(
                f"{root / key}.sql: applied to the database but missing from the folder "
                "(restore it from version control)"
            )
    pending = [f for f in files if f.key not in applied]
    from .runner import order_pending

    try:
        ordered = order_pending(files, set(applied), root)
    except MigrationError as exc:
        report.problems.append(str(exc))
        ordered = pending
    if url is None:
        for file in ordered:
            report.problems += _hazards(file, TargetState(), everything_exists=True)
    elif ordered:
        report.problems += _on_copy(url, ordered, names, throwaway_prefix)
    return report


def _hazards(file: MigrationFile, state: TargetState, *, everything_exists: bool) -> list[str]:
    text = file.read()
    accepted = parse_allow(text)
    if "all" in accepted:
        return []
    steps = split_steps(text)
    statements = [[s for _, s in statements_of(step.sql)] for step in steps]
    try:
        hazards = classify(
            [s for group in statements for s in group],
            state,
            everything_exists=everything_exists,
            steps=[g for step, g in zip(steps, statements, strict=True) if step.transaction],
        )
    except MigrationError as exc:
        return [f"{file.path}: {exc}"]
    return [
        f"{file.path}: {h} (not allowed: add `-- nxdata: allow {h.kind}` if a reviewer accepts "
        f"it; recipe: {h.recipe})"
        for h in hazards
        if h.kind in ALLOW_NEEDED and h.kind not in accepted
    ]


def _on_copy(
    url: str, files: Sequence[MigrationFile], schemas: Sequence[str], prefix: str | None
) -> list[str]:
    """Judge and apply `files` in order on a throwaway database holding the current schema of
    `url`: each file's hazards are those of the tables as the files before it left them (a
    ``CREATE INDEX`` on a table an earlier pending file creates is a long lock in production
    too); the first file that fails to apply is reported, and the rest judged without it."""
    from .differ import diff_databases
    from .inspect import target_state
    from .throwaway import THROWAWAY_PREFIX, connect, throwaway_database

    # Stand-ins for the schemas (a real Schema would take over its name's "schema.Table"
    # lookups): the diff needs a name, extensions and tables only.
    current: list[Any] = [_Named(name) for name in schemas]
    with throwaway_database(url, [], prefix=prefix or THROWAWAY_PREFIX) as empty_url:
        copy = [s for d in diff_databases(empty_url, url, current) for s in d.statements]
    problems: list[str] = []
    with (
        throwaway_database(
            url,
            copy,
            prefix=prefix or THROWAWAY_PREFIX,
            failure="the copy of the database's current schema that lint builds fails",
        ) as copy_url,
        connect(copy_url) as conn,
    ):
        applying = True
        for file in files:
            problems += _hazards(file, target_state(conn), everything_exists=False)
            if applying:
                failure = _apply(conn, file)
                if failure is not None:
                    problems.append(failure)
                    applying = False
    return problems


def _apply(conn: psycopg.Connection[Any], file: MigrationFile) -> str | None:
    """Run `file` step by step on `conn`; its failure, as a problem line."""
    for step in split_steps(file.read()):
        try:
            if step.transaction:
                with conn.transaction():
                    for _, statement in statements_of(step.sql):
                        conn.execute(statement)
            else:
                for _, statement in statements_of(step.sql):
                    conn.execute(statement)
        except psycopg.Error as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            detail = getattr(exc.diag, "message_detail", None)
            return (
                f"{file.path}: does not apply on a copy of the current schema "
                f"(step {step.number}): {first}" + (f" ({detail})" if detail else "")
            )
    return None


@dataclass(frozen=True, slots=True)
class _Named:
    """A schema known by its name only (see `_apply_on_copy`)."""

    name: str
    extensions: tuple[str, ...] = ()
    tables: dict[str, Any] = field(default_factory=dict)
