"""The ``nxdata`` command: help for every command, one-line errors without tracebacks, and the
whole workflow (diff → migrate → check → status) through `nxdata.cli.main`."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nxdata.cli import main
from tests.migration_models.helpers import query, write_models

ROOT = Path(__file__).resolve().parent.parent
SHOP = "tests.migration_models.shop"


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """The real console entry point in a subprocess: (exit status, stdout, stderr)."""
    full_env = {
        k: v for k, v in os.environ.items() if k not in ("NXDATA_DATABASE_URL", "DATABASE_URL")
    }
    full_env["PYTHONPATH"] = str(ROOT)
    full_env.update(env or {})
    done = subprocess.run(
        [sys.executable, "-m", "nxdata.cli", *args],
        cwd=cwd or ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stdout, done.stderr


def call(*args: str) -> tuple[int, str, str]:
    """`main` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("command", [[], ["diff"], ["migrate"], ["check"], ["status"]])
def test_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: nxdata")
    assert "--url" in text or not command
    if command in (["diff"], ["migrate"]):
        assert "--schema NAME | --all" in text


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "nxdata"
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "diff" in done.stdout


def _one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code != 0
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], err


def test_error_invalid_url(tmp_path: Path) -> None:
    code, _, err = run_cli(
        "status", "--url", "postgresql://me:secret@host:notaport/db", cwd=tmp_path
    )
    _one_line_error(code, err, "nxdata status: error: invalid database URL", "***")
    assert "secret" not in err


def test_error_unreachable_server(tmp_path: Path) -> None:
    (tmp_path / "migrations").mkdir()
    code, _, err = run_cli(
        "migrate",
        "--all",
        "--no-processes",
        "--url",
        "postgresql://postgres@127.0.0.1:1/nope",
        "--migrations-dir",
        str(tmp_path / "migrations"),
        cwd=tmp_path,
    )
    _one_line_error(code, err, "cannot connect to postgresql://postgres@127.0.0.1:1/nope")


def test_error_unknown_database(admin_url: str, tmp_path: Path) -> None:
    from psycopg.conninfo import make_conninfo

    url = make_conninfo(admin_url, dbname="nxdata_no_such_database")
    code, _, err = run_cli("check", "--all", "--models", SHOP, "--url", url, cwd=ROOT)
    _one_line_error(code, err, "cannot connect", "nxdata_no_such_database")


def test_error_missing_models_module(test_database_url: str) -> None:
    code, _, err = run_cli(
        "diff", "--all", "--models", "no_such_models", "--url", test_database_url
    )
    _one_line_error(code, err, "cannot import the models module 'no_such_models'")


def test_error_missing_migrations_folder(test_database_url: str, tmp_path: Path) -> None:
    code, _, err = run_cli(
        "migrate",
        "--all",
        "--no-processes",
        "--migrations-dir",
        str(tmp_path / "absent"),
        env={"NXDATA_DATABASE_URL": test_database_url},
        cwd=tmp_path,
    )
    _one_line_error(code, err, "migrations folder", "does not exist")


def test_error_no_database_url(tmp_path: Path) -> None:
    code, _, err = run_cli("status", cwd=tmp_path)
    _one_line_error(code, err, "no database URL", "--embedded")


def test_error_url_and_embedded(tmp_path: Path) -> None:
    code, _, err = run_cli("status", "--embedded", "--url", "postgresql://x@y/z", cwd=tmp_path)
    _one_line_error(code, err, "exclude each other")


def test_usage_error_without_scope() -> None:
    code, _, err = run_cli("migrate")
    assert code == 2 and "one of the arguments --schema --all is required" in err


def test_workflow(fresh_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NXDATA_DATABASE_URL", fresh_database_url)
    monkeypatch.chdir(tmp_path)
    common = ["--models", SHOP, "--migrations-dir", "migrations"]

    code, out, _ = call("diff", "--all", "--dry-run", *common)
    assert code == 0 and 'create table "mt_sales"."Order"' in out
    assert not (tmp_path / "migrations").exists()

    code, out, _ = call("diff", "--all", "--name", "init", *common)
    assert code == 0
    assert "wrote migrations/mt_catalog/0001_init.sql" in out
    assert "wrote migrations/mt_sales/0001_init.sql" in out

    code, out, err = call("check", "--all", *common)
    assert code == 1 and "drift in mt_catalog, mt_sales" in err and "create table" in out

    code, out, _ = call("status", *common)
    assert code == 0 and "pending  0001_init" in out and "2 pending files" in out

    code, out, _ = call("migrate", "--all", "--dry-run", *common)
    assert code == 0 and "would apply mt_catalog/0001_init" in out

    code, out, _ = call("migrate", "--all", *common)
    assert code == 0
    assert "applied  mt_catalog/0001_init in" in out
    assert "ran      process mt_sales-0001-seed-permissions in" in out
    assert "applied 2 files and ran 2 processes" in out

    code, out, _ = call("check", *common)
    assert code == 0 and out.startswith("ok: ")

    code, out, _ = call("diff", "--schema", "mt_sales", *common)
    assert code == 0 and "no changes" in out

    code, out, _ = call("status", *common)
    assert "applied  0001_init" in out and "done     mt_sales-0001-seed-permissions" in out
    assert "always   mt_sales-0002-count-runs" in out and "0 pending files" in out

    code, out, _ = call("migrate", "--schema", "mt_catalog", *common)
    assert code == 0 and "nothing to apply" in out


def test_diff_refuses_unsafe_changes(fresh_database_url: str, tmp_path: Path) -> None:
    after = 'u = nx.Schema("mx_cli")\n\n@u.table("T")\nclass T(msgspec.Struct):\n    a: int\n'
    before = after + "    b: int\n"
    first, second = write_models(tmp_path, before), write_models(tmp_path, after)
    where = ["--url", fresh_database_url, "--migrations-dir", str(tmp_path / "migrations")]
    assert call("diff", "--all", "--models", first, *where)[0] == 0
    assert call("migrate", "--all", "--models", first, *where)[0] == 0

    code, out, err = call("diff", "--all", "--models", second, *where)
    assert code == 1
    assert "refused" in err and "data-loss: drops column T.b (recipe: deploy code" in err
    assert len(list((tmp_path / "migrations/mx_cli").iterdir())) == 1

    code, out, _ = call("diff", "--all", "--unsafe", "--name", "drop b", "--models", second, *where)
    assert code == 0 and "0002_drop_b.sql" in out and "hazard: data-loss: drops column T.b" in out
    text = (tmp_path / "migrations/mx_cli/0002_drop_b.sql").read_text()
    assert "-- nxdata: allow data-loss, breaking" in text  # --unsafe: a reviewer's acceptance
    assert call("migrate", "--all", "--models", second, *where)[0] == 0
    assert call("check", "--all", "--models", second, *where)[0] == 0
    assert query(fresh_database_url, "SELECT count(*) FROM nxdata_migrations.journal") == [(2,)]


def test_migrate_lists_the_hazards_it_refuses(fresh_database_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "migrations/mhz"
    folder.mkdir(parents=True)
    (folder / "0001_init.sql").write_text("CREATE SCHEMA mhz;\nCREATE TABLE mhz.t (a int);\n")
    (folder / "0002_widen.sql").write_text("ALTER TABLE mhz.t ALTER COLUMN a TYPE bigint;\n")
    where = ["--url", fresh_database_url, "--migrations-dir", str(tmp_path / "migrations")]
    code, _, err = call("migrate", "--all", "--no-processes", *where)
    assert code == 1
    lines = err.splitlines()  # a review: the hazard, the statement and the recipe, each on a line
    assert lines[0] == "nxdata migrate: refused: mhz/0002_widen has hazards that are not allowed:"
    assert lines[1].startswith("  rewrite: changes the type of t.a (integer to bigint)")
    assert lines[2] == "    in: ALTER TABLE mhz.t ALTER COLUMN a TYPE bigint"
    assert lines[3].startswith("    recipe: add a new column")
    assert "`nxdata migrate --allow rewrite`" in lines[4]
    assert query(fresh_database_url, "SELECT name FROM nxdata_migrations.journal") == [
        ("0001_init",)
    ]
    assert call("migrate", "--all", "--no-processes", "--allow", "rewrite", *where)[0] == 0
    assert query(
        fresh_database_url,
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = 'mhz.t'::regclass AND attname = 'a'",
    ) == [("bigint",)]


def test_tampered_file_via_cli(fresh_database_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "migrations/mcli"
    folder.mkdir(parents=True)
    (folder / "0001_init.sql").write_text("CREATE SCHEMA mcli;\n")
    where = ["--url", fresh_database_url, "--migrations-dir", str(tmp_path / "migrations")]
    assert call("migrate", "--all", "--no-processes", *where)[0] == 0
    (folder / "0001_init.sql").write_text("CREATE SCHEMA mcli2;\n")
    code, _, err = call("migrate", "--all", "--no-processes", *where)
    _one_line_error(code, err, "0001_init.sql was changed after it was applied")
    code, out, _ = call("status", *where)
    assert "tampered 0001_init" in out


@pytest.mark.embedded
def test_embedded_server(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.nxdata]\nmodels = "absent_models"\nmigrations = "db/migrations"\n'
    )
    folder = tmp_path / "db/migrations/memb"
    folder.mkdir(parents=True)
    (folder / "0001_init.sql").write_text(
        "CREATE SCHEMA IF NOT EXISTS memb;\n\nCREATE TABLE IF NOT EXISTS memb.t (x int);\n"
    )
    code, out, err = run_cli("migrate", "--all", "--no-processes", "--embedded", cwd=tmp_path)
    assert code == 0, err
    assert "using the embedded PostgreSQL" in out and "applied  memb/0001_init" in out
    code, out, err = run_cli("status", "--embedded", cwd=tmp_path)
    assert code == 0, err
    assert "applied  0001_init" in out


@pytest.mark.parametrize(
    "name", ["0003_AddIndex.sql", "0004_add-index.sql", "3_fix.sql", "fix.sql"]
)
def test_misnamed_file_stops_status_and_migrate(
    fresh_database_url: str, tmp_path: Path, name: str
) -> None:
    folder = tmp_path / "migrations/shop"
    folder.mkdir(parents=True)
    (folder / "0001_init.sql").write_text("CREATE SCHEMA shop;\n")
    (folder / name).write_text("CREATE INDEX ON shop.t (x);\n")
    where = ["--url", fresh_database_url, "--migrations-dir", str(tmp_path / "migrations")]
    for command in (["status"], ["migrate", "--all", "--no-processes"]):
        code, _, err = call(*command, *where)
        _one_line_error(code, err, name, "expected NNNN_label.sql, e.g. 0007_add_index.sql")
    assert query(fresh_database_url, "SELECT to_regnamespace('shop')") == [(None,)]


def test_diff_refuses_while_files_are_pending(
    fresh_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NXDATA_DATABASE_URL", fresh_database_url)
    monkeypatch.chdir(tmp_path)
    common = ["--models", SHOP, "--migrations-dir", "migrations"]
    assert call("diff", "--all", "--name", "init", *common)[0] == 0

    # A second diff before migrate would write the same changes again.
    for extra in ([], ["--dry-run"]):
        code, out, err = call("diff", "--all", "--name", "again", *extra, *common)
        _one_line_error(
            code,
            err,
            "nxdata diff: error: mt_catalog has 1 pending file (0001_init), "
            "mt_sales has 1 pending file (0001_init): run `nxdata migrate` first",
        )
        assert out == ""
    assert sorted(p.name for p in (tmp_path / "migrations/mt_sales").iterdir()) == ["0001_init.sql"]
    code, _, err = call("check", "--all", *common)
    assert code == 1
    assert "2 pending files would be applied by nxdata migrate" in err
    assert "mt_catalog/0001_init, mt_sales/0001_init" in err

    assert call("migrate", "--all", *common)[0] == 0
    # A colleague's migration, pulled but not applied yet.
    (tmp_path / "migrations/mt_sales/0002_carrier.sql").write_text(
        'ALTER TABLE mt_sales."Order" ADD COLUMN carrier text;\n'
    )
    code, _, err = call("diff", "--schema", "mt_sales", *common)
    _one_line_error(
        code, err, "mt_sales has 1 pending file (0002_carrier): run `nxdata migrate` first"
    )
    assert not (tmp_path / "migrations/mt_sales/0003_").exists()
    assert len(list((tmp_path / "migrations/mt_sales").iterdir())) == 2
    code, out, _ = call("diff", "--schema", "mt_catalog", *common)  # other schemas: not blocked
    assert code == 0 and "no changes" in out
    code, out, err = call("check", "--all", *common)
    assert code == 0 and out.startswith("ok: ")  # the schema matches; the file is still news
    assert "1 pending file would be applied by nxdata migrate (mt_sales/0002_carrier)" in out


# Holds the diff at a known point: the throwaway database exists and a query runs in it.
_SLOW_DIFF = """
import sys, psycopg
import nxdata.migrations.generate as generate
real = generate.diff_databases
def slow(target_url, declared_url, schemas, **kwargs):
    with psycopg.connect(declared_url) as conn:
        conn.execute("SELECT pg_sleep(60)")
    return real(target_url, declared_url, schemas, **kwargs)
generate.diff_databases = slow
from nxdata.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_during_diff_drops_the_throwaway_database(
    fresh_database_url: str, admin_url: str, tmp_path: Path
) -> None:
    from nxdata.migrations.throwaway import THROWAWAY_PREFIX
    from tests.conftest import drop_database
    from tests.migration_models.helpers import databases

    env = {k: v for k, v in os.environ.items() if k not in ("NXDATA_DATABASE_URL", "DATABASE_URL")}
    env["PYTHONPATH"] = str(ROOT)
    child = subprocess.Popen(
        [
            *(sys.executable, "-c", _SLOW_DIFF, "diff", "--all", "--models", SHOP),
            *("--url", fresh_database_url, "--migrations-dir", str(tmp_path / "migrations")),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    prefix = f"{THROWAWAY_PREFIX}_{child.pid}_"
    try:
        deadline = time.monotonic() + 60
        while not databases(admin_url, prefix) and child.poll() is None:
            assert time.monotonic() < deadline, "the throwaway database never appeared"
            time.sleep(0.05)
        assert child.poll() is None, child.communicate()
        # Wait until the slow query runs in it, so the signal lands mid-diff.
        while not query(
            admin_url,
            "SELECT 1 FROM pg_stat_activity WHERE datname LIKE %s AND query LIKE %s",
            [prefix + "%", "SELECT pg_sleep%"],
        ):
            assert time.monotonic() < deadline and child.poll() is None
            time.sleep(0.05)
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=60)
        assert child.returncode == 143, err
        assert err.strip() == "nxdata diff: terminated"
        assert databases(admin_url, prefix) == []
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for name in databases(admin_url, prefix):
            drop_database(admin_url, name)


_WITHOUT = """
import sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None  # makes `import name` fail as if it were not installed
from nxdata.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("missing", ["pglast", "migra", "sqlalchemy", "schemainspect,sqlbag"])
@pytest.mark.parametrize("command", ["diff", "check"])
def test_missing_migration_extras_say_what_to_install(
    test_database_url: str, tmp_path: Path, missing: str, command: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("NXDATA_DATABASE_URL", "DATABASE_URL")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [
            *(sys.executable, "-c", _WITHOUT, missing, command, "--all", "--models", SHOP),
            *("--url", test_database_url, "--migrations-dir", str(tmp_path / "migrations")),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    _one_line_error(
        done.returncode,
        done.stderr,
        f"nxdata {command}: error: diffing needs the migration extras",
        f"module {missing.split(',')[0]!r} is not installed",
        "pip install 'nxdata[migrations]'",
    )
    assert "internal error" not in done.stderr
    assert not (tmp_path / "migrations").exists()


def test_non_utf8_file_is_a_one_line_error(fresh_database_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "migrations/latin"
    folder.mkdir(parents=True)
    (folder / "0001_init.sql").write_bytes(b"-- caf\xe9\nCREATE SCHEMA latin;\n")
    where = ["--url", fresh_database_url, "--migrations-dir", str(tmp_path / "migrations")]
    for command in (["status"], ["migrate", "--all", "--no-processes"]):
        code, _, err = call(*command, *where)
        _one_line_error(code, err, "0001_init.sql is not UTF-8 text (byte 0xe9", "save it as UTF-8")
        assert "internal error" not in err


@pytest.fixture
def limited_role(admin_url: str) -> Iterator[str]:
    """A login role with no privileges beyond PUBLIC's, dropped afterwards."""
    import secrets

    name = f"nxdata_t_role_{secrets.token_hex(4)}"
    query(admin_url, f'CREATE ROLE "{name}" LOGIN')
    try:
        yield name
    finally:
        query(admin_url, f'DROP ROLE IF EXISTS "{name}"')


def test_missing_privileges_are_one_line_errors(
    fresh_database_url: str, limited_role: str, tmp_path: Path
) -> None:
    from psycopg.conninfo import make_conninfo

    folder = tmp_path / "migrations/priv"
    folder.mkdir(parents=True)
    (folder / "0001_init.sql").write_text("SELECT 1;\n")
    limited = make_conninfo(fresh_database_url, user=limited_role)
    where = ["--migrations-dir", str(tmp_path / "migrations"), "--no-processes"]

    # No journal yet, and no CREATE on the database to make one.
    code, _, err = call("migrate", "--all", "--url", limited, *where)
    _one_line_error(code, err, "cannot create the journal", "permission denied for database")
    assert f"role {limited_role} needs CREATE on database" in err

    assert call("migrate", "--all", "--url", fresh_database_url, *where)[0] == 0
    (folder / "0002_more.sql").write_text("SELECT 2;\n")
    for command in (["status"], ["migrate", "--all", *where]):
        code, _, err = call(*command, "--url", limited, "--migrations-dir", str(folder.parent))
        _one_line_error(
            code,
            err,
            "cannot read the journal",
            "permission denied for schema nxdata_migrations",
            f"role {limited_role} needs USAGE on schema nxdata_migrations",
        )

    # Allowed to read, not to write: the file is rolled back and the error says why.
    query(fresh_database_url, f'GRANT USAGE ON SCHEMA nxdata_migrations TO "{limited_role}"')
    query(fresh_database_url, f'GRANT SELECT ON nxdata_migrations.journal TO "{limited_role}"')
    try:
        code, _, err = call("migrate", "--all", "--url", limited, *where)
        _one_line_error(
            code,
            err,
            "cannot record priv/0002_more in the journal (it was rolled back)",
            "permission denied for table journal",
        )
    finally:
        query(fresh_database_url, f'REVOKE ALL ON nxdata_migrations.journal FROM "{limited_role}"')
        query(fresh_database_url, f'REVOKE ALL ON SCHEMA nxdata_migrations FROM "{limited_role}"')


def test_requires_a_file_that_does_not_exist(fresh_database_url: str, tmp_path: Path) -> None:
    root = tmp_path / "migrations"
    (root / "blog").mkdir(parents=True)
    (root / "shop").mkdir()
    (root / "blog/0001_init.sql").write_text("CREATE SCHEMA blog;\n")
    (root / "shop/0001_init.sql").write_text("-- requires: blog/0009_nope\nCREATE SCHEMA shop;\n")
    where = ["--url", fresh_database_url, "--migrations-dir", str(root), "--no-processes"]
    for scope in (["--all"], ["--schema", "shop"]):
        code, _, err = call("migrate", *scope, *where)
        _one_line_error(
            code,
            err,
            "shop/0001_init requires blog/0009_nope, which does not exist",
            "0009_nope.sql is missing",
        )
        assert "migrate schema" not in err and "--all" not in err
    # A file that exists but belongs to a schema left out of the run: migrate that one first.
    (root / "shop/0001_init.sql").write_text("-- requires: blog/0001_init\nCREATE SCHEMA shop;\n")
    code, _, err = call("migrate", "--schema", "shop", *where)
    _one_line_error(code, err, "which is not applied: migrate schema 'blog' first (or use --all)")
    assert call("migrate", "--all", *where)[0] == 0


def test_status_counts_tampered_missing_and_pending_processes(
    fresh_database_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "migrations/mt_sales"
    folder.mkdir(parents=True)
    (folder / "0001_init.sql").write_text(
        'CREATE SCHEMA mt_sales;\n\nCREATE TABLE mt_sales."Permission" '
        "(code text PRIMARY KEY, runs integer NOT NULL DEFAULT 0);\n"
    )
    (folder / "0002_more.sql").write_text("SELECT 2;\n")
    where = ["--url", fresh_database_url, "--migrations-dir", str(tmp_path / "migrations")]
    assert call("migrate", "--all", "--no-processes", *where)[0] == 0

    code, out, err = call("status", "--models", SHOP, *where)
    assert code == 0, err
    assert out.splitlines()[-1] == "0 pending files, 1 pending process"
    assert "pending  mt_sales-0001-seed-permissions" in out

    (folder / "0001_init.sql").write_text("CREATE SCHEMA mt_sales;\n")
    (folder / "0002_more.sql").unlink()
    (folder / "0003_next.sql").write_text("SELECT 3;\n")
    code, out, err = call("status", "--models", SHOP, *where)
    assert code == 1
    assert "tampered 0001_init" in out and "missing  0002_more" in out
    assert out.splitlines()[-1] == (
        "1 pending file, 1 tampered file, 1 missing file, 1 pending process"
    )
    _one_line_error(
        code,
        err,
        "nxdata status: error: mt_sales/0001_init changed after it was applied; "
        "mt_sales/0002_more was applied but its file is gone",
    )


def test_status_before_the_first_diff(fresh_database_url: str, tmp_path: Path) -> None:
    models = write_models(tmp_path, 'n = nx.Schema("mx_new")\n')
    where = ["--url", fresh_database_url, "--migrations-dir", str(tmp_path / "migrations")]
    where += ["--models", models]
    code, out, err = call("status", *where)
    assert code == 0, err
    assert out.startswith("no migrations yet: ") and "does not exist" in out
    assert out.splitlines()[-1] == "0 pending files"
    (tmp_path / "migrations").mkdir()
    code, out, err = call("status", *where)
    assert code == 0 and "no migrations yet" in out and "is empty" in out


def test_unknown_tool_nxdata_key_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.nxdata]\nmodles = "app"\n')
    code, _, err = run_cli("status", "--url", "postgresql://x@127.0.0.1:1/y", cwd=tmp_path)
    _one_line_error(
        code,
        err,
        "unknown key 'modles' in [tool.nxdata] (did you mean 'models'?)",
        "the keys are: ignore_schemas, migrations, models",
    )


def test_process_of_an_undeclared_schema_is_an_error(
    fresh_database_url: str, tmp_path: Path
) -> None:
    models = write_models(
        tmp_path,
        """
        shop = nx.Schema("mx_shop")

        @shop.table("T")
        class T(msgspec.Struct):
            a: int

        @process("mx_shpo-0001-seed")
        def seed(ctx: ProcessContext) -> None:
            pass
        """,
    )
    where = ["--url", fresh_database_url, "--migrations-dir", str(tmp_path / "migrations")]
    for command in (["diff", "--all"], ["migrate", "--all"], ["check"]):
        code, _, err = call(*command, "--models", models, *where)
        _one_line_error(
            code,
            err,
            "process 'mx_shpo-0001-seed' belongs to schema 'mx_shpo'",
            "does not declare (declared: mx_shop)",
        )
    assert not (tmp_path / "migrations").exists()


def test_postgresql_detail_stays_on_the_error_line(fresh_database_url: str, tmp_path: Path) -> None:
    models = write_models(
        tmp_path,
        """
        d = nx.Schema("mx_detail")

        @d.table("T", uniques=[nx.Unique("a")])
        class T(msgspec.Struct):
            a: Annotated[int, Column(primary_key=True)]

        @process("mx_detail-0001-twice")
        def twice(ctx: ProcessContext) -> None:
            ctx.execute('INSERT INTO mx_detail."T" (a) VALUES (1), (1)')
        """,
    )
    where = ["--models", models, "--url", fresh_database_url]
    where += ["--migrations-dir", str(tmp_path / "migrations")]
    assert call("diff", "--all", *where)[0] == 0
    code, _, err = call("migrate", "--all", *where)
    _one_line_error(
        code,
        err,
        "process mx_detail-0001-twice failed and was rolled back: UniqueViolation: duplicate key",
        "DETAIL: Key (a)=(1) already exists.",
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--allow", "rewrit"], "argument --allow: unknown hazard 'rewrit'"),
        (["--lock-timeout", "-1"], "argument --lock-timeout: '-1' is not a positive number"),
        (["--lock-retries", "x"], "argument --lock-retries: 'x' is not a count"),
    ],
)
def test_bad_migrate_options_are_usage_errors(
    args: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["migrate", "--all", "--url", "postgresql://x@127.0.0.1/x", *args])
    assert info.value.code == 2
    assert says in capsys.readouterr().err


def test_dry_run_diff_says_it_would_refuse_and_diff_cleans_up_loudly(
    fresh_database_url: str, admin_url: str, tmp_path: Path
) -> None:
    after = 'u = nx.Schema("mx_dry")\n\n@u.table("T")\nclass T(msgspec.Struct):\n    a: int\n'
    before = after + "    b: int\n"
    first, second = write_models(tmp_path, before), write_models(tmp_path, after)
    where = ["--url", fresh_database_url, "--migrations-dir", str(tmp_path / "migrations")]
    assert call("diff", "--all", "--models", first, *where)[0] == 0
    assert call("migrate", "--all", "--models", first, *where)[0] == 0
    leftover = f"nxdata_diff_{os.getpid() + 10_000_000}_deadbeef"  # a killed diff's database
    query(admin_url, f'CREATE DATABASE "{leftover}"')
    query(
        admin_url,
        f'COMMENT ON DATABASE "{leftover}" IS \'nxdata diff pid={os.getpid() + 10_000_000} '
        f"host={os.uname().nodename} at={int(time.time())}'",
    )
    code, out, err = call("diff", "--all", "--dry-run", "--models", second, *where)
    assert code == 1  # the real run would be refused
    assert f"dropped {leftover}, left behind by a diff that was killed" in out
    assert 'drop column "b"' in out  # the preview...
    assert "without --dry-run, refused: the migration would lose data" in err  # ...and the verdict
    assert len(list((tmp_path / "migrations/mx_dry").iterdir())) == 1  # nothing written
