"""Diff correctness on a corpus of schema pairs a → b (`tests/schema_pairs.py`).

For each pair the test builds a and b, has nxdata's diff write the migration from a to b,
applies it to copies of a the way ``nxdata migrate`` does — once with the default search_path
and once with ``search_path = pg_catalog`` set on the database — and checks that the diff a → b
is then empty and that ``pg_dump --schema-only`` of both agree, except for the differences the
pair lists with their reason (what PostgreSQL cannot change in place, such as column order).

Creating databases is most of the cost (and waits on the server's disk), so the pairs run in a
few threads while the tests collect their outcomes in order.
"""

from __future__ import annotations

import difflib
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

import nxdata as nx
from nxdata.errors import MigrationError
from nxdata.migrations.differ import diff_databases
from nxdata.migrations.generate import render
from nxdata.migrations.hazards import HAZARD_KINDS
from nxdata.migrations.runner import migrate
from tests.conftest import drop_database
from tests.schema_pairs import PAIRS, Pair, server_has

SEARCH_PATHS = ("default", "pg_catalog")
JOURNAL = "nxdata_migrations"
WORKERS = 3

Outcome = dict[str, str | None]
"""Per search path: why the pair did not reach its target, None when it did."""


@dataclass
class Corpus:
    """The pairs' server: uniquely named databases, the role the pairs grant to, pg_dump."""

    admin_url: str
    workdir: Path
    reader: str
    pg_dump: str | None
    prefix: str = field(default_factory=lambda: f"nxdata_corpus_{secrets.token_hex(3)}")
    outcomes: dict[str, Future[Outcome]] = field(default_factory=dict)

    def url(self, name: str) -> str:
        return make_conninfo(self.admin_url, dbname=name)

    def create(self, name: str, text: str = "", *, template: str | None = None) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
            if template is not None:
                statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
            conn.execute(statement)
        if text.strip():
            with psycopg.connect(self.url(name), autocommit=True) as conn:
                conn.execute(text.replace("{reader}", self.reader).encode())

    def dump(self, name: str) -> str | None:
        """``pg_dump --schema-only`` without the journal and what differs between any two
        runs; None without a pg_dump as new as the server."""
        if self.pg_dump is None:
            return None
        params = conninfo_to_dict(self.url(name))
        command = [self.pg_dump, "--schema-only", f"--exclude-schema={JOURNAL}"]
        for option, key in (("-h", "host"), ("-p", "port"), ("-U", "user")):
            if params.get(key):
                command += [option, str(params[key])]
        env = dict(os.environ)
        if params.get("password"):
            env["PGPASSWORD"] = str(params["password"])
        done = subprocess.run([*command, name], capture_output=True, text=True, check=True, env=env)
        return _normalized(done.stdout)

    def outcome(self, pair: Pair) -> Outcome:
        return self.outcomes[pair.name].result()

    def missing(self, pair: Pair) -> list[str]:
        """What `pair` needs that the server lacks (the embedded server has no ICU, no
        contrib extensions)."""
        return [need for need in pair.needs if not server_has(self.admin_url, need)]

    def run(self, pair: Pair, number: int) -> Outcome:
        """Build a and b, write the migration, apply it to a copy of a per search path and
        compare; every database is dropped afterwards."""
        a, b = f"{self.prefix}_{number}_a", f"{self.prefix}_{number}_b"
        copy = f"{self.prefix}_{number}_a_pg_catalog"
        try:
            self.create(a, pair.a)
            self.create(b, pair.b)
            diffs = diff_databases(self.url(a), self.url(b), _schemas(pair))
            if not any(diffs):
                return dict.fromkeys(SEARCH_PATHS, f"{pair.name}: a and b do not differ")
            files = self.workdir / pair.name
            written: list[str] = []
            for schema in pair.schemas:  # in dependency order: each requires those before it
                diff = next(d for d in diffs if d.schema == schema)
                if diff:
                    folder = files / schema
                    folder.mkdir(parents=True)
                    (folder / "0001_corpus.sql").write_text(render(diff, written), "utf-8")
                    written.append(f"{schema}/0001_corpus")
            self.create(copy, template=a)
            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("ALTER DATABASE {} SET search_path = pg_catalog").format(
                        sql.Identifier(copy)
                    )
                )
            dump_b = self.dump(b)
            return {
                path: self.apply(pair, target, b, files, dump_b)
                for path, target in zip(SEARCH_PATHS, (a, copy), strict=True)
            }
        finally:
            for name in (a, b, copy):
                drop_database(self.admin_url, name)

    def apply(self, pair: Pair, target: str, b: str, files: Path, dump_b: str | None) -> str | None:
        """Why `files` applied to `target` as ``nxdata migrate`` does do not reach `b`."""
        text = "\n".join(p.read_text("utf-8") for p in sorted(files.glob("*/*.sql")))
        try:
            migrate(self.url(target), files, allow=HAZARD_KINDS)
        except MigrationError as exc:
            return f"{exc}\n\nthe migration:\n{text}"
        left = [d for d in diff_databases(self.url(target), self.url(b), _schemas(pair)) if d]
        if left:
            rest = "\n".join(f"{d.schema}:\n{d.sql}" for d in left)
            return f"left after the migration:\n{rest}\n\nthe migration:\n{text}"
        if dump_b is None:
            return None  # no pg_dump as new as the server: the empty diff is what we can check
        dump_a = self.dump(target)
        assert dump_a is not None
        unexplained = _unexplained(dump_a, dump_b, pair)
        if unexplained:
            return "pg_dump of a and b differ:\n" + "\n".join(unexplained)
        return None


def _schemas(pair: Pair) -> list[nx.Schema]:
    return [nx.Schema(s, extensions=pair.extensions) for s in pair.schemas]


_VOLATILE = re.compile(r"^(\\restrict|\\unrestrict|-- Dumped (from|by) )")


def _normalized(dump: str) -> str:
    """The dump without pg_dump 15.14+'s random restrict key and the versions."""
    return "\n".join(line for line in dump.splitlines() if not _VOLATILE.match(line)) + "\n"


def _unexplained(dump_a: str, dump_b: str, pair: Pair) -> list[str]:
    """The lines of the dumps' diff that none of the pair's known differences explains."""
    lines = difflib.unified_diff(dump_a.splitlines(), dump_b.splitlines(), n=0, lineterm="")
    return [
        line
        for line in lines
        if not line.startswith(("---", "+++", "@@"))
        and not any(re.search(pattern, line[1:]) for pattern, _ in pair.differences)
    ]


def _find_pg_dump(admin_url: str) -> str | None:
    """A pg_dump as new as the server (the distribution's, PATH's, or pgserver's)."""
    with psycopg.connect(admin_url) as conn:
        server = conn.info.server_version // 10000
    candidates = []
    config = shutil.which("pg_config")
    if config:
        bindir = subprocess.run([config, "--bindir"], capture_output=True, text=True).stdout
        candidates.append(str(Path(bindir.strip()) / "pg_dump"))
    candidates.append(shutil.which("pg_dump") or "")
    try:
        import pgserver  # type: ignore[import-untyped]

        candidates.append(str(Path(pgserver.__file__).parent / "pginstall/bin/pg_dump"))
    except ImportError:
        pass
    for candidate in candidates:
        if not candidate or not Path(candidate).is_file():
            continue
        version = subprocess.run([candidate, "--version"], capture_output=True, text=True).stdout
        found = re.search(r"(\d+)(?:\.\d+)?", version)
        if found and int(found.group(1)) >= server:
            return candidate
    return None


def _selected(session: pytest.Session) -> list[Pair]:
    """The pairs whose tests were collected and not deselected (``-k``), in order."""
    names = {
        item.callspec.params["pair"].name
        for item in session.items
        if isinstance(item, pytest.Function) and item.originalname == "test_pair_reaches_its_target"
    }
    return [pair for pair in PAIRS if pair.name in names]


@pytest.fixture(scope="module")
def corpus(
    admin_url: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Corpus]:
    reader = f"nxdata_corpus_reader_{secrets.token_hex(3)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(reader)))
    state = Corpus(admin_url, tmp_path_factory.mktemp("corpus"), reader, _find_pg_dump(admin_url))
    pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="corpus")
    try:
        for number, pair in enumerate(_selected(request.session)):
            if not state.missing(pair):
                state.outcomes[pair.name] = pool.submit(state.run, pair, number)
        yield state
    finally:
        for future in state.outcomes.values():
            future.cancel()
        pool.shutdown(wait=True)
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(reader)))


@pytest.mark.parametrize(
    ("pair", "search_path"),
    [(pair, path) for pair in PAIRS for path in SEARCH_PATHS],
    ids=[f"{pair.name}-{path}" for pair in PAIRS for path in SEARCH_PATHS],
)
def test_pair_reaches_its_target(corpus: Corpus, pair: Pair, search_path: str) -> None:
    missing = corpus.missing(pair)
    if missing:
        pytest.skip(f"the server has no {', '.join(missing)}")
    failure = corpus.outcome(pair)[search_path]
    if failure is not None:
        pytest.fail(failure, pytrace=False)
