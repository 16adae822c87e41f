"""nxdata behind a real PgBouncer (Debian's package) in transaction pooling mode, started by the
tests on a free port in front of a cluster of their own: detection, settings that do not leak
between clients sharing one server connection, more clients than server connections, the
serializable transfer stress, the repository test files run through it, and migrations refused.

Skipped with the reason when pgbouncer is not installed (``make install`` installs it as root);
``NXDATA_REQUIRE_PGBOUNCER=1`` (set by ``.ci/run``) turns the skip into a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from pgcluster import Cluster, PgBouncer, pgbouncer_binary

import nxdata as nx
from nxdata import AsyncDatabase, Database
from nxdata.ddl import create_statements
from nxdata.errors import ConfigurationError, MigrationError, QueryCanceled
from nxdata.migrations.runner import migrate

ROOT = Path(__file__).resolve().parent.parent

if pgbouncer_binary() is None:
    reason = "pgbouncer is not installed (make install installs Debian's package as root)"
    if os.environ.get("NXDATA_REQUIRE_PGBOUNCER"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason, allow_module_level=True)

bounced = nx.Schema("bounced")


@bounced.table("Wallet")
class Wallet(nx.IntIdColumns):
    owner: str
    balance: nx.Money


@bounced.table("Tagged")
class Tagged(nx.IntIdColumns):
    tags: list[str]


@pytest.fixture(scope="module")
def server() -> Iterator[Cluster]:
    with Cluster(settings={"max_connections": "60"}) as cluster:
        for statement in create_statements([bounced]):
            cluster.execute(statement)
        yield cluster


@pytest.fixture
def bouncer(server: Cluster) -> Iterator[PgBouncer]:
    with PgBouncer(server, pool_size=1) as pgbouncer:
        yield pgbouncer
        print(f"PgBouncer log:\n{pgbouncer.log_text(40)}")  # shown when the test failed


def server_connections(server: Cluster) -> int:
    """Backends PgBouncer opened (it connects over TCP; our checks use the Unix socket)."""
    return int(
        server.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
            " AND client_addr IS NOT NULL"
        )
    )


def test_the_pooler_is_detected(server: Cluster, bouncer: PgBouncer) -> None:
    with Database(bouncer.url) as db:
        assert db.behind_pooler is True
        assert db.fetch_value("SELECT 1") == 1
    with Database(server.url) as db:
        assert db.behind_pooler is False
    with Database(bouncer.url, pgbouncer=True) as db:  # said, not detected: the same
        assert db.behind_pooler is True


def test_settings_do_not_leak_between_clients(server: Cluster, bouncer: PgBouncer) -> None:
    """Two handles share PgBouncer's single server connection, calls interleaved."""
    strict = Database(bouncer.url, statement_timeout=0.3, timezone="Asia/Tokyo", max_size=2)
    plain = Database(bouncer.url, max_size=2)
    with strict, plain:
        wallets = nx.Repository(strict, Wallet)
        for _ in range(3):
            assert strict.fetch_value("SHOW statement_timeout") == "300ms"
            assert plain.fetch_value("SHOW statement_timeout") == "0"
            assert strict.fetch_value("SHOW timezone") == "Asia/Tokyo"  # tracked by PgBouncer
            assert plain.fetch_value("SHOW timezone") == "UTC"
            with pytest.raises(QueryCanceled):
                strict.fetch_value("SELECT pg_sleep(1)")
            assert plain.fetch_value("SELECT pg_sleep(0.5)::text") == ""
            with strict.transaction():
                assert wallets.count() >= 0
                assert strict.fetch_value("SHOW statement_timeout") == "300ms"
            with plain.local_settings({"app.tenant": "t-1"}):
                assert plain.fetch_value("SELECT current_setting('app.tenant', true)") == "t-1"
            assert strict.fetch_value("SELECT current_setting('app.tenant', true)") in (None, "")
        # repeated statements were never prepared on the server connection they shared
        for _ in range(10):
            wallets.find({"where": {"owner": "nobody"}})
        assert server_connections(server) == 1
        prepared = strict.fetch_value("SELECT count(*) FROM pg_prepared_statements")
        assert prepared == 0


def test_more_clients_than_server_connections(server: Cluster) -> None:
    with PgBouncer(server, pool_size=2) as bouncer, Database(bouncer.url, max_size=16) as db:
        wallets = nx.Repository(db, Wallet)
        wallets.delete_all(all=True)
        errors: list[BaseException] = []
        done = Counter[str]()

        def client(n: int) -> None:
            try:
                for i in range(25):
                    row = wallets.create({"owner": f"c{n}-{i}", "balance": "1.00"})
                    assert wallets.find_by_id(row.id) == row
                    wallets.update_by_id(row.id, {"balance": "2.00"})
                    with db.transaction():
                        wallets.find_by_id(row.id, lock=nx.Lock.UPDATE)
                        wallets.delete_by_id(row.id)
                    done["ok"] += 1
            except BaseException as exc:  # every failure is kept and reported
                errors.append(exc)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
        for thread in threads:
            thread.start()
        busiest = 0
        while any(t.is_alive() for t in threads):
            busiest = max(busiest, server_connections(server))
            time.sleep(0.02)
        for thread in threads:
            thread.join()
        assert errors == []
        assert done["ok"] == 16 * 25 and wallets.count() == 0
        assert 1 <= busiest <= 2  # 16 clients, at most 2 server connections


async def test_async_clients_through_pgbouncer(server: Cluster) -> None:
    import asyncio

    with PgBouncer(server, pool_size=2) as bouncer:
        async with AsyncDatabase(bouncer.url, max_size=12) as adb:
            assert adb.behind_pooler is True
            wallets = nx.AsyncRepository(adb, Wallet)
            rows = await asyncio.gather(
                *(wallets.create({"owner": f"a{i}", "balance": "3.00"}) for i in range(24))
            )
            found = await asyncio.gather(*(wallets.find_by_id(r.id) for r in rows))
            assert found == rows
            assert await wallets.delete_all({"owner": {"like": "a%"}}) == 24


def test_serializable_transfers_keep_their_total(server: Cluster) -> None:
    with PgBouncer(server, pool_size=3) as bouncer, Database(bouncer.url, max_size=8) as db:
        wallets = nx.Repository(db, Wallet)
        wallets.delete_all(all=True)
        ids = [wallets.create({"owner": f"w{i}", "balance": "1000"}).id for i in range(4)]
        retried = Counter[str]()

        def transfer(tx: nx.Transaction, src: int, dst: int) -> None:
            a, b = wallets.find_by_id(src), wallets.find_by_id(dst)
            assert a is not None and b is not None
            wallets.update_by_id(src, {"balance": a.balance - 1})
            wallets.update_by_id(dst, {"balance": b.balance + 1})

        def worker(seed: int) -> None:
            for n in range(30):
                src = ids[(seed + n) % 4]
                dst = ids[(seed + n + 1 + n % 3) % 4]
                if src == dst:
                    dst = ids[(ids.index(src) + 1) % 4]
                db.run_in_transaction(
                    lambda tx, s=src, d=dst: transfer(tx, s, d),
                    isolation="serializable",
                    retries=50,
                    backoff=0.002,
                    on_retry=lambda attempt, exc, delay: retried.update([type(exc).__name__]),
                )

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        balances = [w.balance for w in wallets.find()]
        assert sum(balances) == Decimal(4000)  # nothing lost, nothing done twice
        assert sum(retried.values()) > 0, "no conflict at all: the test proves nothing"


def test_migrations_refuse_a_pooler(server: Cluster, bouncer: PgBouncer, tmp_path: Path) -> None:
    folder = tmp_path / "migrations" / "bm"
    folder.mkdir(parents=True)
    (folder / "0001_init.sql").write_text("CREATE SCHEMA bm;\n", encoding="utf-8")
    with pytest.raises(MigrationError, match="goes through a connection pooler"):
        migrate(bouncer.url, tmp_path / "migrations")
    assert server.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'bm'") == 0


def test_the_repository_tests_pass_through_pgbouncer(server: Cluster, tmp_path: Path) -> None:
    """The repository test files, run by pytest with the suite's database behind PgBouncer
    (transaction mode, 4 server connections for everything the suite opens)."""
    with PgBouncer(server, pool_size=4) as bouncer:
        basetemp = tmp_path / "inner"  # not pytest's shared one: each run prunes old ones
        env = {**os.environ, "NXDATA_DATABASE_URL": bouncer.url}
        env.pop("DATABASE_URL", None)
        files = [
            "tests/test_repository.py",
            "tests/test_repository_async.py",
            "tests/test_repository_bulk.py",
            "tests/test_repository_keys.py",
            "tests/test_locks.py",
            "tests/test_client_safety.py",
        ]
        # Left out: the transaction tests that end a backend by the pid psycopg was told
        # (PgBouncer tells its own), the RLS test's fresh login role (not in auth_file), and
        # the session-reset test, whose session SETs are refused behind a pooler (see
        # test_session_state_is_refused_behind_the_pooler).
        deselect = [
            "--deselect",
            "tests/test_client_safety.py::test_row_level_security_through_local_settings",
            "--deselect",
            "tests/test_client_safety.py::test_session_state_never_reaches_the_next_borrower",
        ]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                f"--basetemp={basetemp}",
                *deselect,
                *files,
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
        assert " passed" in done.stdout and "failed" not in done.stdout


def test_a_direct_connection_keeps_prepared_statements(server: Cluster) -> None:
    with Database(server.url, max_size=1, prepare_threshold=1) as db:
        wallets = nx.Repository(db, Wallet)
        for _ in range(3):
            wallets.count()
        with db.connection() as conn:
            count = conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()
        assert count is not None and count[0] > 0
    with psycopg.connect(server.url) as raw:  # the cluster is as the tests found it
        assert raw.execute("SELECT 1").fetchone() == (1,)


def test_session_state_is_refused_behind_the_pooler(bouncer: PgBouncer) -> None:
    """A SET of one client would stay on the server connection the next client gets."""
    with Database(bouncer.url, max_size=2) as db, Database(bouncer.url) as other:
        wallets = nx.Repository(db, Wallet)
        for statement in (
            "SET search_path TO leaked",
            "set session statement_timeout = 1",
            "RESET ALL",
            "SELECT set_config('app.t', 'x', false)",
            "SELECT pg_advisory_lock(1)",
            "CREATE TEMP TABLE scratch (x int)",
            "LISTEN news",
        ):
            with pytest.raises(ConfigurationError, match="leaves state in the session"):
                db.execute(statement)
            with pytest.raises(ConfigurationError, match="leaves state in the session"):
                wallets.query(statement)
        with db.transaction():  # transaction-scoped forms are fine
            db.execute("SET LOCAL search_path TO pg_catalog")
            assert db.fetch_value("SELECT set_config('app.t', 'tx', true)") == "tx"
            db.execute("SELECT pg_advisory_xact_lock(1)")
        assert other.fetch_value("SHOW search_path") == '"$user", public'
        assert other.fetch_value("SELECT current_setting('app.t', true)") in (None, "")


def test_replicas_behind_pgbouncer_with_a_direct_primary(server: Cluster) -> None:
    """Each replica URL is probed on its own: startup options go to the primary only."""
    with PgBouncer(server, pool_size=2) as bouncer:
        with Database(server.url, replicas=[bouncer.url], max_size=2) as db:
            assert db.behind_pooler is False
            wallets = nx.Repository(db, Wallet)
            for _ in range(5):
                wallets.count()
            [state] = db.replica_states()
            assert state.reads == 5 and state.down_for is None


def test_no_pipeline_mode_behind_the_pooler(bouncer: PgBouncer) -> None:
    """PgBouncer 1.18 can keep a server connection after psycopg's pipeline mode (the flush
    request sent after the sync), and the next client waits for query_wait_timeout: behind a
    pooler the settings go in one simple-protocol query instead, and reads sent together go
    one by one in one transaction. Many rounds, two clients on one server connection."""
    strict = Database(bouncer.url, statement_timeout=0.5, max_size=1, timeout=5)
    plain = Database(bouncer.url, max_size=1, timeout=5)
    with strict, plain:
        wallets = nx.Repository(strict, Wallet)
        started = time.monotonic()
        for _ in range(30):
            with strict.local_settings({"app.quote": 'it\'s "x"'}):
                assert strict.fetch_value("SELECT current_setting('app.quote')") == 'it\'s "x"'
            assert plain.fetch_value("SELECT 1") == 1
            count, exists = strict.read_together(wallets.later.count(), wallets.later.exists())
            assert count >= 0 and exists in (True, False)
            with strict.transaction(settings={"app.t": "1"}):
                assert strict.fetch_value("SHOW statement_timeout") == "500ms"
            assert plain.fetch_value("SHOW statement_timeout") == "0"
        assert time.monotonic() - started < 20  # no 30 s query_wait_timeout on the way


def test_bulk_returning_with_arrays_behind_the_pooler(bouncer: PgBouncer) -> None:
    """Array columns make create_all(returning=True) send one INSERT per row (executemany,
    pipelined directly): behind a pooler they go one by one, in one transaction."""
    with Database(bouncer.url, max_size=1) as db, Database(bouncer.url) as other:
        tagged = nx.Repository(db, Tagged)
        rows = tagged.create_all([{"tags": ["a", "b"]}, {"tags": []}], returning=True)
        assert [r.tags for r in rows] == [["a", "b"], []]
        assert other.fetch_value('SELECT count(*) FROM bounced."Tagged"') >= 2
