"""Helpers for the migration tests: write a models package into a temporary folder, read the
catalogs back, list throwaway databases."""

from __future__ import annotations

import secrets
import sys
import textwrap
from pathlib import Path
from typing import Any

import psycopg

HEADER = """\
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

import nxdata as nx
from nxdata import BigInt, Column
from nxdata.migrations import ProcessContext, process
"""


def write_models(root: Path, source: str, *, files: dict[str, str] | None = None) -> str:
    """Write a uniquely named package under `root` (put on sys.path) and return its name.

    `source` becomes ``__init__.py`` after `HEADER`; `files` adds submodules.
    """
    name = f"mm_{secrets.token_hex(4)}"
    package = root / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(HEADER + textwrap.dedent(source), encoding="utf-8")
    for module, text in (files or {}).items():
        (package / f"{module}.py").write_text(HEADER + textwrap.dedent(text), encoding="utf-8")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return name


def query(url: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    """Rows of one query on a fresh autocommit connection."""
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description is not None else []


def columns(url: str, schema: str, table: str) -> dict[str, tuple[str, str | None]]:
    """column → (type, default) as the catalogs say."""
    rows = query(
        url,
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), pg_get_expr(d.adbin, d.adrelid) "
        "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
        "WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped",
        [schema, table],
    )
    return {r[0]: (r[1], r[2]) for r in rows}


def databases(url: str, prefix: str) -> list[str]:
    """Names of the databases on `url`'s server starting with `prefix`."""
    rows = query(url, "SELECT datname FROM pg_database WHERE datname LIKE %s", [prefix + "%"])
    return sorted(r[0] for r in rows)
