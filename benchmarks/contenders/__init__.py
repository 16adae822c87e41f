"""The contenders by name, imported lazily: a missing optional package drops only its contender."""

from __future__ import annotations

import importlib

from .base import Contender, Context, Unavailable

__all__ = [
    "BASELINE",
    "BASELINE_ASYNC",
    "BASELINE_POOL",
    "CONTENDERS",
    "Contender",
    "Context",
    "Unavailable",
    "load",
]

CONTENDERS: dict[str, tuple[str, str]] = {
    "psycopg-conn": ("psycopg_conn", "PsycopgConn"),
    "psycopg": ("psycopg_raw", "Psycopg"),
    "psycopg-async": ("psycopg_async", "PsycopgAsync"),
    "asyncpg": ("asyncpg_raw", "Asyncpg"),
    "sqlalchemy-core": ("sqla_core", "SqlalchemyCore"),
    "sqlalchemy-orm": ("sqla_orm", "SqlalchemyOrm"),
    "sqlalchemy-async": ("sqla_async", "SqlalchemyAsync"),
    "nxdata": ("nxdata_sync", "Nxdata"),
    "nxdata-async": ("nxdata_async", "NxdataAsync"),
}
"""Contender name → (module in this package, class), in report order."""

BASELINE = "psycopg-conn"
"""The baseline of the scenarios one connection serves (point queries, writes, pipelined reads,
the bulk insert): raw psycopg on a dedicated connection, doing nxdata's work."""
BASELINE_POOL = "psycopg"
"""The baseline elsewhere (the large fetch — "raw psycopg default" —, concurrency, compilation,
memory), and wherever the dedicated connection does not apply: raw psycopg through a pool."""
BASELINE_ASYNC = "psycopg-async"
"""The async targets compare nxdata async with this one."""


def load(name: str) -> type[Contender]:
    """The contender class called `name`; `Unavailable` when its packages are not installed."""
    module_name, class_name = CONTENDERS[name]
    try:
        module = importlib.import_module(f"{__name__}.{module_name}")
    except ImportError as exc:
        raise Unavailable(f"cannot import: {exc}") from exc
    cls: type[Contender] = getattr(module, class_name)
    return cls
