"""Migrations by diff: generate SQL from the declarations, apply it with a journal, check drift,
and run seed processes.

    from nxdata.migrations import process, bootstrap_migrations

    @process("licensing-0001-seed-permissions", always_run=True)
    def seed(ctx): ...

    bootstrap_migrations(db, models="schema")   # at service start-up

The command line (``nxdata diff | migrate | check | status | baseline | lint``) is in
`nxdata.cli`. The heavy parts (migra, SQLAlchemy, pglast) load only when a diff is made, so
models packages can import `process` cheaply.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .processes import (
    Process,
    ProcessContext,
    bootstrap_migrations,
    bootstrap_migrations_async,
    process,
)

if TYPE_CHECKING:
    from .apply import LockPolicy
    from .differ import SchemaDiff
    from .discovery import Models, load_models
    from .files import MigrationFile
    from .generate import (
        GeneratedFile,
        baseline,
        check_drift,
        diff_models,
        generate_migrations,
    )
    from .hazards import Hazard, classify
    from .inspect import undeclared_schemas
    from .linting import LintReport, lint
    from .project import ProjectSettings, load_settings
    from .runner import MigrateResult, SchemaStatus, mark_applied, migrate, status
    from .throwaway import throwaway_database

__all__ = [
    "GeneratedFile",
    "Hazard",
    "LintReport",
    "LockPolicy",
    "MigrateResult",
    "MigrationFile",
    "Models",
    "Process",
    "ProcessContext",
    "ProjectSettings",
    "SchemaDiff",
    "SchemaStatus",
    "baseline",
    "bootstrap_migrations",
    "bootstrap_migrations_async",
    "check_drift",
    "classify",
    "diff_models",
    "generate_migrations",
    "lint",
    "load_models",
    "load_settings",
    "mark_applied",
    "migrate",
    "process",
    "status",
    "throwaway_database",
    "undeclared_schemas",
]

_LAZY = {
    "LockPolicy": "apply",
    "Hazard": "hazards",
    "classify": "hazards",
    "undeclared_schemas": "inspect",
    "LintReport": "linting",
    "lint": "linting",
    "baseline": "generate",
    "mark_applied": "runner",
    "SchemaDiff": "differ",
    "Models": "discovery",
    "load_models": "discovery",
    "MigrationFile": "files",
    "GeneratedFile": "generate",
    "check_drift": "generate",
    "diff_models": "generate",
    "generate_migrations": "generate",
    "ProjectSettings": "project",
    "load_settings": "project",
    "MigrateResult": "runner",
    "SchemaStatus": "runner",
    "migrate": "runner",
    "status": "runner",
    "throwaway_database": "throwaway",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
