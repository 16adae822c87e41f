"""The embedded PostgreSQL (pgserver): always exercised, whatever server the suite runs on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import nxdata as nx
from nxdata import AsyncDatabase, Database, EmbeddedPostgres
from nxdata.ddl import create_statements

pytestmark = pytest.mark.embedded


def test_temporary_embedded_server_runs_ddl_and_is_removed() -> None:
    s = nx.Schema("embedded_demo")

    @s.table("Note")
    class Note(nx.CommonColumns):
        body: str

    db = Database.embedded(temporary=True, max_size=2)
    assert db._embedded is not None
    data_dir = db._embedded.data_dir
    with db:
        for statement in create_statements([s]):
            db.execute(statement)
        db.execute('insert into embedded_demo."Note" (id, body) values (%s, %s)', ("1", "hi"))
        assert db.fetch_all('select id, body from embedded_demo."Note"') == [("1", "hi")]
        assert "PostgreSQL" in db.fetch_value("select version()")
    assert not Path(data_dir).exists()


def test_project_local_server_keeps_data_between_starts(tmp_path: Path) -> None:
    with EmbeddedPostgres(tmp_path / "pg") as server:
        with Database(server.url) as db:
            db.execute("create table kept (x int)")
            db.execute("insert into kept values (7)")
    with EmbeddedPostgres(tmp_path / "pg") as server, Database(server.url) as db:
        assert db.fetch_value("select x from kept") == 7


async def test_async_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NXDATA_DATABASE_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    db = AsyncDatabase.from_env(temporary=True)
    async with db:
        assert await db.fetch_value("select 1") == 1


def test_url_before_start_is_an_error() -> None:
    with pytest.raises(nx.errors.EmbeddedServerError, match="not started"):
        _ = EmbeddedPostgres(temporary=True).url


def test_start_prints_no_warning_without_xdg_runtime_dir(tmp_path: Path) -> None:
    # Containers and CI often lack XDG_RUNTIME_DIR: platformdirs then warns when pgserver is
    # imported. Warnings are errors in this child process, so a leaked one fails the start.
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    script = (
        "import nxdata\n"
        f"server = nxdata.EmbeddedPostgres({str(tmp_path / 'pg')!r})\n"
        "server.start()\n"
        "server.stop()\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr
