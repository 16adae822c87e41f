"""Docs that run: every ```python block of README.md and docs/*.md is executed, so a pasted
example never fails.

Each Markdown file is one test: its blocks run in order, in one namespace (a real module in
``sys.modules``, as in a shell, so annotations resolve against its globals), with
``NXDATA_DATABASE_URL`` pointing at a fresh database made for that file and dropped afterwards.
The working directory is the checkout's root, where the examples' relative paths (``migrations``,
the ``schema`` package) point.

A block that cannot run on its own is rewritten so it can. Only as a last resort it is marked by
an HTML comment on the line just before its fence, which the rendered page does not show::

    <!-- not run: why -->
    ```python

Those are skipped and counted: every skip needs a reason, and there must stay few of them.
Output, shell sessions and pseudo-code are not ```python blocks at all.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import linecache
import re
import sys
import traceback
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

import nxdata as nx
import nxdata.table
from nxdata.migrations import processes
from tests.conftest import create_database, drop_database

ROOT = Path(__file__).resolve().parent.parent
MAX_SKIPPED = 1  # across all files: a skipped example is one that can rot

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,}|~{3,})(?P<info>[^`]*)$")
_NOT_RUN = re.compile(r"^\s*<!--\s*not run:(?P<reason>.*?)-->\s*$")


@dataclass(frozen=True, slots=True)
class Block:
    """One ```python block of a Markdown file."""

    path: Path
    number: int  # 1-based, among the file's python blocks
    line: int  # 1-based line of the opening fence
    code: str
    skip: str | None  # the reason given in a `<!-- not run: ... -->` line, if any

    @property
    def first_line(self) -> str:
        return next((s.strip() for s in self.code.splitlines() if s.strip()), "")

    @property
    def where(self) -> str:
        return (
            f"{self.path.relative_to(ROOT)} python block {self.number} "
            f"(line {self.line}: {self.first_line!r})"
        )


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def python_blocks(path: Path) -> list[Block]:
    """The file's ```python blocks, in order (indented ones too, dedented); fences of other
    languages are passed over whole, so a ```python line inside one is not a block."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        indent, ticks = fence["indent"], fence["ticks"]
        language = fence["info"].strip().split(" ", 1)[0].lower()
        end = i + 1
        while end < len(lines) and not re.fullmatch(
            re.escape(indent) + re.escape(ticks[0]) + "{" + str(len(ticks)) + r",}\s*",
            lines[end],
        ):
            end += 1
        if language == "python":
            body = [
                s[len(indent) :] if s.startswith(indent) else s.lstrip() for s in lines[i + 1 : end]
            ]
            marker = _NOT_RUN.match(lines[i - 1]) if i > 0 else None
            blocks.append(
                Block(
                    path=path,
                    number=len(blocks) + 1,
                    line=i + 1,
                    code="\n".join(body) + "\n",
                    skip=marker["reason"].strip() if marker is not None else None,
                )
            )
        i = end + 1
    return blocks


def documents() -> list[Path]:
    return [path for path in markdown_files() if python_blocks(path)]


def test_every_python_example_is_a_python_block() -> None:
    """No example hides from the harness under another spelling (```py, ```python3, ```pycon),
    and no `not run` marker sits anywhere but right before a ```python fence."""
    for path in markdown_files():
        lines = path.read_text(encoding="utf-8").splitlines()
        marked = {b.line - 1 for b in python_blocks(path) if b.skip is not None}
        for number, text in enumerate(lines, start=1):
            fence = _FENCE.match(text)
            info = fence["info"].strip().lower() if fence is not None else ""
            assert info in ("python", "") or not info.startswith("py"), (
                f"{path.name}:{number}: fence {text.strip()!r}: write ```python to have it run"
            )
            if _NOT_RUN.match(text):
                assert number in marked, (
                    f"{path.name}:{number}: a `not run` marker must be the line just before a "
                    "```python fence"
                )


def test_examples_use_the_scratch_database() -> None:
    """A URL written in an example would escape the fresh database the harness gives each file
    (and write to a real one): examples take theirs from the environment."""
    for path in markdown_files():
        for block in python_blocks(path):
            assert not re.search(r"postgres(ql)?://|dbname=", block.code), (
                f"{block.where}: use nx.Database.from_env() / Database(), not a written URL"
            )


def test_skips_are_few_and_explained() -> None:
    """Skipped blocks are still compiled and their imports run, so they cannot name what does
    not exist."""
    skipped = [b for path in markdown_files() for b in python_blocks(path) if b.skip is not None]
    for block in skipped:
        assert block.skip, f"{block.where}: `<!-- not run: ... -->` needs a reason"
        tree = ast.parse(block.code, f"<{block.where}>")
        imports: list[ast.stmt] = [
            n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)
        ]
        exec(compile(ast.Module(body=imports, type_ignores=[]), f"<{block.where}>", "exec"), {})
    assert len(skipped) <= MAX_SKIPPED, (
        f"{len(skipped)} python blocks are not run (at most {MAX_SKIPPED}): "
        + "; ".join(f"{b.where}: {b.skip}" for b in skipped)
        + ". Rewrite them so they run."
    )


def test_the_docs_have_examples() -> None:
    names = [path.name for path in documents()]
    assert "README.md" in names and "repositories.md" in names and "migrations.md" in names
    assert len(python_blocks(ROOT / "README.md")) >= 5


@pytest.fixture
def isolated_declarations(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Examples declare schemas (``Schema("sale")``) and seed processes; those registries are
    global, so what a file declares must not outlive its test: another test's ``"sale.Table"``
    lookup would find the example's schema, and the seed processes would be registered twice.
    The file starts as in a fresh shell: without the processes of modules that are gone (those
    another test executed from the same doc)."""
    # The reference schema and its seed processes (the docs import them) register for good,
    # before the registry is swapped: later tests of the session need them.
    importlib.import_module("schema")
    importlib.import_module("schema.processes")
    registry = {k: p for k, p in processes._REGISTRY.items() if p.module in sys.modules}
    monkeypatch.setattr(processes, "_REGISTRY", registry)
    schemas = dict(nxdata.table._SCHEMAS)
    try:
        yield
    finally:
        nxdata.table._SCHEMAS.clear()
        nxdata.table._SCHEMAS.update(schemas)


@pytest.mark.parametrize("path", documents(), ids=lambda path: path.name)
def test_doc_examples_run(
    path: Path,
    admin_url: str,
    monkeypatch: pytest.MonkeyPatch,
    isolated_declarations: None,
) -> None:
    blocks = python_blocks(path)
    name = create_database(admin_url, "nxdata_docs")
    url = make_conninfo(admin_url, dbname=name)
    monkeypatch.setenv("NXDATA_DATABASE_URL", url)
    monkeypatch.chdir(ROOT)
    roles_before = _roles(admin_url)
    # A real module, as in a shell: annotations resolve against its globals.
    module = types.ModuleType("docs_run_" + re.sub(r"\W", "_", path.stem.lower()))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    try:
        for block in blocks:
            if block.skip is not None:
                continue
            filename = f"<{block.where}>"
            # Tracebacks (printed after the test) show the block's own lines.
            linecache.cache[filename] = (
                len(block.code),
                None,
                block.code.splitlines(True),
                filename,
            )
            try:
                exec(compile(block.code, filename, "exec"), namespace)
            except Exception as exc:
                raise AssertionError(
                    f"{block.where} failed{_at(block, filename, exc)}: {exc!r}"
                ) from exc
    finally:
        _close_databases(namespace)
        declared = _declared_roles(namespace)
        namespace.clear()
        drop_database(admin_url, name)
        _drop_roles(admin_url, declared - roles_before)


def _at(block: Block, filename: str, exc: BaseException) -> str:
    """Where in the Markdown file the block failed: its innermost line in the traceback."""
    lines = [
        n
        for frame, n in traceback.walk_tb(exc.__traceback__)
        if frame.f_code.co_filename == filename
    ]
    return f" at {block.path.relative_to(ROOT)}:{block.line + lines[-1]}" if lines else ""


def _close_databases(namespace: dict[str, object]) -> None:
    """Close what an example left open (its pools hold connections to the database)."""
    for value in namespace.values():
        if isinstance(value, nx.Database):
            value.close()


def _declared_roles(namespace: dict[str, object]) -> set[str]:
    """The roles the file's own declarations create (``nx.Role(...)``, by itself or named in a
    grant or policy of a schema it declares)."""
    roles = {v.name for v in namespace.values() if isinstance(v, nx.Role)}
    for value in namespace.values():
        if isinstance(value, nx.Schema):
            roles.update(role.name for role in value.roles)
    return roles


def _roles(admin_url: str) -> set[str]:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        return {row[0] for row in conn.execute("SELECT rolname FROM pg_roles").fetchall()}


def _drop_roles(admin_url: str, roles: set[str]) -> None:
    """Roles are the server's, not a database's: those an example created go too, unless
    another database still uses them."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for role in sorted(roles & _roles(admin_url)):
            ident = sql.Identifier(role)
            conn.execute(sql.SQL("DROP OWNED BY {}").format(ident))  # in this database, if any
            with contextlib.suppress(psycopg.errors.DependentObjectsStillExist):
                conn.execute(sql.SQL("DROP ROLE {}").format(ident))
