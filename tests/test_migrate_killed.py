"""A migrate that is killed mid-statement, and the next migrate: the lock does not outlive the
killed process (PostgreSQL checks its client), a waiting migrate names the holder, and
``--cancel-stale`` ends a holder whose migrate process is gone."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg

from nxdata.migrations.journal import LOCK_KEY
from nxdata.migrations.runner import migrate
from tests.migration_models.helpers import query

ROOT = Path(__file__).resolve().parent.parent

# Sleeps only when the session says so (PGOPTIONS of the first, killed, migrate).
SLOW = (
    "CREATE SCHEMA mk;\n\n"
    "SELECT pg_sleep(coalesce(nullif(current_setting('nxtest.sleep', true), ''), '0')::float);\n\n"
    "CREATE TABLE mk.done (x int);\n"
)


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "migrations" / "mk"
    folder.mkdir(parents=True)
    (folder / "0001_slow.sql").write_text(SLOW, encoding="utf-8")
    return tmp_path / "migrations"


def _wait_for(condition: object, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s")


def test_a_killed_migrate_frees_the_lock_within_seconds(
    fresh_database_url: str, tmp_path: Path
) -> None:
    folder = _folder(tmp_path)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "NXDATA_DATABASE_URL": fresh_database_url,
        "PGOPTIONS": "-c nxtest.sleep=60",
    }
    command = [sys.executable, "-m", "nxdata.cli", "migrate", "--all", "--no-processes"]
    command += ["--migrations-dir", str(folder)]
    first = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    sleeping = (
        "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'nxdata migrate%%' "
        "AND query LIKE '%%pg_sleep%%' AND state = 'active'"
    )
    try:
        _wait_for(lambda: query(fresh_database_url, sleeping) == [(1,)], 30)
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    # The backend notices its client is gone (client_connection_check_interval) and ends.
    gone_after = _wait_for(lambda: query(fresh_database_url, sleeping) == [(0,)], 10)
    started = time.monotonic()
    result = migrate(fresh_database_url, folder)
    print(f"\nkilled migrate: its backend ended {gone_after:.2f} s after the kill")
    assert result.files == ["mk/0001_slow"]
    assert gone_after < 5 and time.monotonic() - started < 10


def test_a_stale_holder_is_named_and_cancel_stale_ends_it(
    fresh_database_url: str, tmp_path: Path
) -> None:
    folder = _folder(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs: the "killed migrate" the holder belonged to
    holder = psycopg.connect(fresh_database_url, autocommit=True)
    holder.execute(
        "SELECT set_config('application_name', %s, false)",
        [f"nxdata migrate pid={dead.pid} host={socket.gethostname()}"],
    )
    holder.execute("SELECT pg_advisory_lock(%s)", [LOCK_KEY])
    holder_pid = holder.info.backend_pid
    sleeper = threading.Thread(
        target=lambda: _swallow(lambda: holder.execute("SELECT pg_sleep(60)")), daemon=True
    )
    sleeper.start()
    waiting: list[str] = []
    polite = threading.Thread(
        target=lambda: migrate(fresh_database_url, folder, progress=waiting.append)
    )
    polite.start()
    _wait_for(lambda: any("holds the migration lock" in m for m in waiting), 10)
    message = next(m for m in waiting if "holds the migration lock" in m)
    print(f"\nwaiting migrate says: {message}")
    assert f"pid {holder_pid}" in message and "process is gone" in message
    assert "--cancel-stale" in message
    said: list[str] = []
    result = migrate(fresh_database_url, folder, progress=said.append, cancel_stale=True)
    assert any(f"ending pid {holder_pid}" in m for m in said), said
    assert result.files == ["mk/0001_slow"] or result.files == []
    polite.join(timeout=20)
    assert not polite.is_alive()
    assert query(fresh_database_url, "SELECT count(*) FROM mk.done") == [(0,)]
    holder.close()


def _swallow(call: object) -> None:
    with contextlib.suppress(psycopg.Error):  # terminated by --cancel-stale
        call()  # type: ignore[operator]
