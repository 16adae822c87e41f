"""The README's Python examples run, in order, against the test database."""

from __future__ import annotations

import contextlib
import re
import sys
import types
from pathlib import Path

import psycopg
import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_has_examples() -> None:
    assert len(python_blocks()) >= 5


def test_readme_examples_run(monkeypatch: pytest.MonkeyPatch, test_database_url: str) -> None:
    monkeypatch.setenv("NXDATA_DATABASE_URL", test_database_url)
    # A real module, as in a shell: annotations resolve against its globals.
    module = types.ModuleType("readme_example")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    try:
        for number, block in enumerate(python_blocks(), start=1):
            try:
                exec(compile(block, f"README.md python block {number}", "exec"), namespace)
            except Exception as exc:
                raise AssertionError(f"README python block {number} failed: {exc!r}") from exc
    finally:
        with psycopg.connect(test_database_url, autocommit=True) as conn:
            for schema in ("shop", "licensing", "bank", "portal", "books"):
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            if _role_exists(conn):  # roles are the server's: the example's goes too
                conn.execute("DROP OWNED BY readme_reader")
                with contextlib.suppress(psycopg.errors.DependentObjectsStillExist):
                    conn.execute("DROP ROLE readme_reader")  # unless another database uses it


def _role_exists(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    return (
        conn.execute("SELECT FROM pg_roles WHERE rolname = 'readme_reader'").fetchone() is not None
    )
