"""`nxdata migrate` as a function: journal, order, all-or-nothing files, tamper detection, the
advisory lock under concurrency, and seed processes; on real PostgreSQL."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from nxdata import Database
from nxdata.errors import ConfigurationError, MigrationError, TamperedMigrationError
from nxdata.migrations import ProcessContext, bootstrap_migrations, process, status
from nxdata.migrations.processes import Process, registered_processes
from nxdata.migrations.runner import migrate
from tests.migration_models.helpers import query

ROOT = Path(__file__).resolve().parent.parent


def write(root: Path, key: str, sql: str) -> Path:
    path = root / f"{key}.sql"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(sql, encoding="utf-8")
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "migrations"
    write(folder, "mg/0001_init", "CREATE SCHEMA mg;\n\nCREATE TABLE mg.t (x int);\n")
    write(folder, "mg/0002_rows", "INSERT INTO mg.t VALUES (1), (2);\n")
    return folder


def journal(url: str) -> list[tuple[str, str, str]]:
    return [
        (r[0], r[1], r[2])
        for r in query(
            url, 'SELECT "kind", "schema", "name" FROM nxdata_migrations.journal ORDER BY "id"'
        )
    ]


def test_migrate_applies_in_order_and_records_the_journal(
    fresh_database_url: str, root: Path
) -> None:
    messages: list[str] = []
    result = migrate(fresh_database_url, root, progress=messages.append)
    assert result.files == ["mg/0001_init", "mg/0002_rows"]
    assert all(step.seconds > 0 for step in result.steps)
    assert any(m.startswith("applied  mg/0001_init in ") for m in messages)
    assert query(fresh_database_url, "SELECT count(*) FROM mg.t") == [(2,)]
    rows = query(
        fresh_database_url,
        'SELECT "schema", "name", "checksum", "applied_at", "duration_ms", "applied_by" '
        'FROM nxdata_migrations.journal ORDER BY "id"',
    )
    assert [(r[0], r[1]) for r in rows] == [("mg", "0001_init"), ("mg", "0002_rows")]
    digest = hashlib.sha256((root / "mg/0001_init.sql").read_bytes()).hexdigest()
    assert rows[0][2] == digest
    assert rows[0][3] is not None and rows[0][4] > 0
    assert rows[0][5].startswith("postgres") or "@" in rows[0][5]
    # Nothing is applied twice.
    assert migrate(fresh_database_url, root).steps == []
    assert query(fresh_database_url, "SELECT count(*) FROM mg.t") == [(2,)]


def test_dry_run_lists_and_changes_nothing(fresh_database_url: str, root: Path) -> None:
    result = migrate(fresh_database_url, root, dry_run=True)
    assert result.dry_run and result.files == ["mg/0001_init", "mg/0002_rows"]
    assert query(fresh_database_url, "SELECT to_regclass('nxdata_migrations.journal')") == [(None,)]


def test_failing_file_leaves_database_and_journal_unchanged(
    fresh_database_url: str, root: Path
) -> None:
    bad = write(root, "mg/0003_bad", "CREATE TABLE mg.half (y int);\n\nSELECT 1 / 0;\n")
    with pytest.raises(MigrationError, match=r"mg/0003_bad failed and was rolled back.*division"):
        migrate(fresh_database_url, root)
    assert journal(fresh_database_url) == [("sql", "mg", "0001_init"), ("sql", "mg", "0002_rows")]
    assert query(fresh_database_url, "SELECT to_regclass('mg.half')") == [(None,)]
    # An unapplied file may still be fixed.
    bad.write_text("CREATE TABLE mg.half (y int);\n")
    assert migrate(fresh_database_url, root).files == ["mg/0003_bad"]


def test_error_names_the_line(fresh_database_url: str, root: Path) -> None:
    write(root, "mg/0003_typo", "SELECT 1;\n\nSELEC 2;\n")
    with pytest.raises(MigrationError, match=r"\(line 3\)"):
        migrate(fresh_database_url, root)


def test_tampered_file_is_refused(fresh_database_url: str, root: Path) -> None:
    migrate(fresh_database_url, root)
    write(root, "mg/0003_next", "CREATE TABLE mg.u (y int);\n")
    path = root / "mg/0001_init.sql"
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))  # a CRLF checkout is no change
    assert migrate(fresh_database_url, root, dry_run=True).files == ["mg/0003_next"]
    path.write_text("CREATE SCHEMA mg;\n\nCREATE TABLE mg.t (x bigint);\n")
    with pytest.raises(TamperedMigrationError, match=r"0001_init\.sql was changed after"):
        migrate(fresh_database_url, root)
    assert query(fresh_database_url, "SELECT to_regclass('mg.u')") == [(None,)]
    [state] = status(fresh_database_url, root)
    assert [(f.name, s) for f, s, _ in state.files] == [
        ("0001_init", "tampered"),
        ("0002_rows", "applied"),
        ("0003_next", "pending"),
    ]


def test_status_lists_applied_pending_and_missing(fresh_database_url: str, root: Path) -> None:
    migrate(fresh_database_url, root)
    write(root, "mg/0003_next", "SELECT 1;\n")
    (root / "mg/0002_rows.sql").unlink()
    [state] = status(fresh_database_url, root)
    assert [f.name for f in state.pending] == ["0003_next"]
    assert [e.name for e in state.missing] == ["0002_rows"]


def test_requires_orders_schemas(fresh_database_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    write(folder, "aa/0001_init", "-- requires: zz/0001_init\nCREATE TABLE zz.child (x int);\n")
    write(folder, "zz/0001_init", "CREATE SCHEMA zz;\n")
    with pytest.raises(MigrationError, match="aa/0001_init requires zz/0001_init"):
        migrate(fresh_database_url, folder, schemas=["aa"])
    assert migrate(fresh_database_url, folder).files == ["zz/0001_init", "aa/0001_init"]


def test_missing_folders_are_configuration_errors(fresh_database_url: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"migrations folder .* does not exist"):
        migrate(fresh_database_url, tmp_path / "nope")
    (tmp_path / "m").mkdir()
    with pytest.raises(ConfigurationError, match="no migrations for schema 'x'"):
        migrate(fresh_database_url, tmp_path / "m", schemas=["x"])


def _slow_files(tmp_path: Path) -> Path:
    folder = tmp_path / "migrations"
    write(
        folder,
        "mc/0001_init",
        "CREATE SCHEMA mc;\n\nCREATE TABLE mc.applied (n int);\n\nSELECT pg_sleep(0.3);\n",
    )
    write(folder, "mc/0002_row", "INSERT INTO mc.applied VALUES (2);\n")
    return folder


def test_concurrent_migrations_apply_each_file_once(
    fresh_database_url: str, tmp_path: Path
) -> None:
    folder = _slow_files(tmp_path)
    barrier = threading.Barrier(4)
    applied: list[list[str]] = []
    errors: list[BaseException] = []
    waited: list[str] = []

    def run() -> None:
        barrier.wait()
        try:
            applied.append(migrate(fresh_database_url, folder, progress=waited.append).files)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(f for files in applied for f in files) == ["mc/0001_init", "mc/0002_row"]
    assert query(fresh_database_url, "SELECT count(*) FROM mc.applied") == [(1,)]
    assert len(journal(fresh_database_url)) == 2
    assert any("waiting for another migrate" in m for m in waited)


def test_concurrent_migrate_processes_apply_each_file_once(
    fresh_database_url: str, tmp_path: Path
) -> None:
    folder = _slow_files(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NXDATA_DATABASE_URL": fresh_database_url}
    command = [sys.executable, "-m", "nxdata.cli", "migrate", "--all", "--no-processes"]
    command += ["--migrations-dir", str(folder)]
    procs = [
        subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert sum(o.count("applied  mc/") for o in outputs) == 2, outputs
    assert query(fresh_database_url, "SELECT count(*) FROM mc.applied") == [(1,)]
    assert len(journal(fresh_database_url)) == 2


# -- processes ---------------------------------------------------------------------------------


@process("mp-0001-once")
def _once(ctx: ProcessContext) -> None:
    ctx.execute("INSERT INTO mp.log VALUES ('once')")


@process("mp-0002-always", always_run=True)
def _always(ctx: ProcessContext) -> None:
    assert ctx.transaction.connection is ctx.connection
    ctx.execute("INSERT INTO mp.log VALUES ('always')")


@process("mq-0001-fails")
def _fails(ctx: ProcessContext) -> None:
    ctx.execute("INSERT INTO mp.log VALUES ('fails')")
    raise RuntimeError("boom")


def _procs(*names: str) -> list[Process]:
    return [p for p in registered_processes() if p.name in names]


@pytest.fixture
def proc_root(tmp_path: Path) -> Path:
    folder = tmp_path / "migrations"
    write(folder, "mp/0001_init", "CREATE SCHEMA mp;\n\nCREATE TABLE mp.log (what text);\n")
    return folder


def log(url: str) -> list[str]:
    return [r[0] for r in query(url, "SELECT what FROM mp.log ORDER BY ctid")]


def test_processes_run_once_or_always(fresh_database_url: str, proc_root: Path) -> None:
    procs = _procs("mp-0002-always", "mp-0001-once")
    first = migrate(fresh_database_url, proc_root, processes=procs)
    assert first.files == ["mp/0001_init"]
    assert first.processes == ["mp-0001-once", "mp-0002-always"]  # name order, after the SQL
    second = migrate(fresh_database_url, proc_root, processes=procs)
    assert second.processes == ["mp-0002-always"]
    assert log(fresh_database_url) == ["once", "always", "always"]
    assert journal(fresh_database_url)[1:] == [
        ("process", "mp", "mp-0001-once"),
        ("process", "mp", "mp-0002-always"),
    ]
    # --schema runs only the processes of that schema (by name prefix).
    assert migrate(fresh_database_url, proc_root, schemas=["mp"], processes=procs).processes == [
        "mp-0002-always"
    ]


def test_failing_process_is_rolled_back_and_not_recorded(
    fresh_database_url: str, proc_root: Path
) -> None:
    with pytest.raises(MigrationError, match=r"process mq-0001-fails failed.*boom"):
        migrate(fresh_database_url, proc_root, processes=_procs("mq-0001-fails"))
    assert log(fresh_database_url) == []
    assert [k for k, _, _ in journal(fresh_database_url)] == ["sql"]


def test_bootstrap_migrations_with_a_database(fresh_database_url: str, proc_root: Path) -> None:
    procs = _procs("mp-0001-once", "mp-0002-always")
    with Database(fresh_database_url, max_size=2) as db:
        result = bootstrap_migrations(db, migrations_dir=proc_root, models=procs)
        assert result.files == ["mp/0001_init"]
        assert bootstrap_migrations(db, migrations_dir=proc_root, models=procs).processes == [
            "mp-0002-always"
        ]
        assert db.fetch_value("SELECT count(*) FROM mp.log") == 3


def test_bootstrap_migrations_imports_the_models(fresh_database_url: str, tmp_path: Path) -> None:
    from nxdata.migrations import generate_migrations, load_models

    models = load_models("tests.migration_models.shop")
    generate_migrations(fresh_database_url, models, tmp_path / "m", label="init")
    result = bootstrap_migrations(
        fresh_database_url, migrations_dir=tmp_path / "m", models="tests.migration_models.shop"
    )
    assert result.processes == ["mt_sales-0001-seed-permissions", "mt_sales-0002-count-runs"]
    rows = query(fresh_database_url, 'SELECT code, runs FROM mt_sales."Permission" ORDER BY code')
    assert rows == [("always", 1), ("order.read", 0), ("order.write", 0)]
