"""Seed processes: Python functions run after the SQL migrations, once or on every migrate.

    from nxdata.migrations import process

    @process("licensing-0001-seed-permissions", always_run=True)
    def seed_permissions(ctx):
        ctx.execute(
            "INSERT INTO licensing.\\"Permission\\" (code) VALUES (%s) ON CONFLICT DO NOTHING",
            ["license.read"],
        )

Processes live in the models package (any submodule); ``nxdata migrate`` and
`bootstrap_migrations` run them in name order, each in its own transaction, after the SQL files.
A run-once process is recorded in the journal in the same transaction, so it runs exactly once;
an ``always_run`` process runs every time (its last run is recorded too).
"""

from __future__ import annotations

import hashlib
import inspect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from ..errors import DeclarationError

if TYPE_CHECKING:
    from ..database import Database
    from ..database_async import AsyncDatabase
    from ..transaction import Transaction
    from .runner import MigrateResult

__all__ = [
    "Process",
    "ProcessContext",
    "ProcessFunction",
    "bootstrap_migrations",
    "bootstrap_migrations_async",
    "process",
    "registered_processes",
]


@dataclass(slots=True)
class ProcessContext:
    """What a process receives: the ``db`` it runs for and its open ``transaction``.

    Everything done through ``transaction`` (pass ``transaction=ctx.transaction`` to repository
    methods) or on ``connection`` commits or rolls back with the process, together with its
    journal entry. Work done through ``db`` directly runs in transactions of its own.
    """

    db: Database
    transaction: Transaction
    name: str

    @property
    def connection(self) -> psycopg.Connection[Any]:
        """The psycopg connection of the process's transaction."""
        return self.transaction.connection

    def execute(self, query: Any, params: Any = None) -> int:
        """Run one statement inside the process's transaction; returns the row count."""
        return self.connection.execute(query, params).rowcount

    def fetch_all(self, query: Any, params: Any = None) -> list[Any]:
        """Run a query inside the process's transaction and return all rows."""
        return self.connection.execute(query, params).fetchall()

    def fetch_value(self, query: Any, params: Any = None) -> Any:
        """The first column of the first row (None if no row)."""
        row = self.connection.execute(query, params).fetchone()
        return None if row is None else row[0]


ProcessFunction = Callable[[ProcessContext], object]
"""A process: called with a `ProcessContext`; its return value is ignored."""


@dataclass(frozen=True, slots=True)
class Process:
    """A registered process. ``schema`` ties it to a schema for ``migrate --schema``: the given
    one, else the part of the name before the first ``-`` (``licensing-0001-seed``)."""

    name: str
    function: ProcessFunction
    always_run: bool
    module: str
    schema: str

    @property
    def checksum(self) -> str:
        """sha256 of the function's source (recorded, for the record; not enforced)."""
        try:
            source = inspect.getsource(self.function)
        except (OSError, TypeError):
            source = self.name
        return hashlib.sha256(source.encode()).hexdigest()


_REGISTRY: dict[str, Process] = {}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def process(
    name: str, *, always_run: bool = False, schema: str | None = None
) -> Callable[[ProcessFunction], ProcessFunction]:
    """Register the decorated function as the process `name` (unique across the project).

    Names sort in run order, so number them: ``"licensing-0001-seed-permissions"``.
    """
    if not _NAME.match(name) or len(name) > 200:
        raise DeclarationError(f"process name {name!r} must be letters, digits, '-', '_' or '.'")

    def register(function: ProcessFunction) -> ProcessFunction:
        module = getattr(function, "__module__", "") or ""
        qualname = getattr(function, "__qualname__", repr(function))
        existing = _REGISTRY.get(name)
        if existing is not None and (
            existing.module != module
            or getattr(existing.function, "__qualname__", None) != qualname
        ):
            raise DeclarationError(
                f"process {name!r} is registered twice: {existing.module}."
                f"{getattr(existing.function, '__qualname__', '?')} and {module}.{qualname}"
            )
        # Re-registering the same function (a module imported again) replaces it.
        _REGISTRY[name] = Process(
            name, function, always_run, module, schema or name.split("-", 1)[0]
        )
        return function

    return register


def registered_processes() -> list[Process]:
    """Every registered process, in name (= run) order."""
    return [_REGISTRY[n] for n in sorted(_REGISTRY)]


def bootstrap_migrations(
    db: Database | str,
    *,
    migrations_dir: str | Path = "migrations",
    models: str | Sequence[Process] | None = None,
    schemas: Sequence[str] | None = None,
    run_processes: bool = True,
    progress: Callable[[str], None] | None = None,
) -> MigrateResult:
    """Bring a database up to date at service start-up: apply pending SQL files, then processes.

    Safe when several replicas start at once (an advisory lock serializes them; the others wait
    and find nothing to do). `models` is the models package to import for processes (or the
    processes themselves); None runs every process registered so far.

    >>> with Database() as db:
    ...     bootstrap_migrations(db, models="schema")
    """
    from .discovery import load_models
    from .runner import migrate

    if not run_processes:
        chosen: Sequence[Process] = ()
    elif isinstance(models, str):
        chosen = load_models(models).processes
    elif models is None:
        chosen = registered_processes()
    else:
        chosen = models
    return migrate(
        db,
        Path(migrations_dir),
        schemas=schemas,
        processes=chosen,
        progress=progress,
    )


async def bootstrap_migrations_async(
    db: AsyncDatabase | str,
    *,
    migrations_dir: str | Path = "migrations",
    models: str | Sequence[Process] | None = None,
    schemas: Sequence[str] | None = None,
    run_processes: bool = True,
    progress: Callable[[str], None] | None = None,
) -> MigrateResult:
    """`bootstrap_migrations` for an async service's start-up (a Litestar/FastAPI lifespan):
    the same work, on a worker thread, so the event loop stays free.

    Processes are plain functions: ``ctx.db`` is a sync `Database` on the same URL, opened for
    the run. Cancelling the awaiting task does not stop the thread: the files and processes
    under way finish (each in its own transaction), and the advisory lock is released.

    >>> async with AsyncDatabase() as db:
    ...     await bootstrap_migrations_async(db, models="schema")
    """
    import asyncio

    url = db if isinstance(db, str) else db.url
    return await asyncio.to_thread(
        bootstrap_migrations,
        url,
        migrations_dir=migrations_dir,
        models=models,
        schemas=schemas,
        run_processes=run_processes,
        progress=progress,
    )
