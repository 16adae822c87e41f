"""Faults made by the tests themselves, on throwaway clusters (never the shared server): a server
restart under load, a server that is down, a link cut with RST and a silent link, and what
callers see of each.

Figures are printed with ``-s`` (``make test`` runs these as part of the suite).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from pgcluster import Cluster, SilentLinkLab, TcpProxy

import nxdata as nx
from nxdata import AsyncDatabase, Database
from nxdata.ddl import create_statements
from nxdata.errors import ConnectionFailed, NxdataError, OutcomeUnknown, PoolTimeout

faults = nx.Schema("faults")


@faults.table("Item")
class Item(nx.IntIdColumns):
    name: str
    n: int = 0


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with Cluster() as c:
        for statement in create_statements([faults]):
            c.execute(statement)
        c.execute(
            'INSERT INTO faults."Item" (name, n) '
            "SELECT 'item ' || g, g FROM generate_series(1, 200) g"
        )
        c.execute(
            "CREATE FUNCTION faults.sleepy() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN PERFORM pg_sleep(1); RETURN NULL; END $$"
        )
        yield c


def ensure_running(cluster: Cluster) -> None:
    if not cluster.is_running():
        cluster.start_again()


# -- stale connections after a restart ------------------------------------------------------------


def test_first_calls_after_a_restart_succeed(cluster: Cluster) -> None:
    with Database(cluster.url, min_size=3, max_size=3) as db:
        items = nx.Repository(db, Item)
        for _ in range(3):
            assert items.find_by_id(1) is not None  # fill the pool
        cluster.restart()
        # every pooled connection is stale now: none of it reaches the caller
        assert [items.find_by_id(i).name for i in (1, 2, 3)] == ["item 1", "item 2", "item 3"]  # type: ignore[union-attr]
        assert items.create({"name": "after restart"}).id > 200
        assert db.fetch_value("SELECT 1") == 1


async def test_async_first_calls_after_a_restart_succeed(cluster: Cluster) -> None:
    async with AsyncDatabase(cluster.url, min_size=4, max_size=4) as adb:
        items = nx.AsyncRepository(adb, Item)
        await asyncio.gather(*(items.find_by_id(i) for i in range(1, 5)))
        cluster.restart()
        found = await asyncio.gather(*(items.find_by_id(i) for i in range(1, 5)))
        assert [r.n for r in found if r is not None] == [1, 2, 3, 4]


def test_restart_under_load(cluster: Cluster) -> None:
    """Readers and writers on 4 threads for ~3 s, the server restarted in the middle: no read
    fails; a write fails only if it was in flight, and then says its outcome is unknown."""
    outcomes: Counter[str] = Counter()
    errors: list[BaseException] = []
    stop = threading.Event()
    with Database(cluster.url, min_size=4, max_size=4, connect_timeout=10) as db:
        items = nx.Repository(db, Item)

        def reader() -> None:
            n = 0
            while not stop.is_set() and n < 5000:
                n += 1
                try:
                    assert items.find_by_id(1 + n % 200) is not None
                    outcomes["read ok"] += 1
                except NxdataError as exc:
                    outcomes[f"read {type(exc).__name__}"] += 1
                    errors.append(exc)

        def writer() -> None:
            n = 0
            while not stop.is_set() and n < 5000:
                n += 1
                try:
                    items.create({"name": "w"})
                    outcomes["write ok"] += 1
                except NxdataError as exc:
                    outcomes[f"write {type(exc).__name__}"] += 1
                    errors.append(exc)

        threads = [threading.Thread(target=f) for f in (reader, reader, writer, writer)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        started = time.monotonic()
        cluster.restart()
        restarted_in = time.monotonic() - started
        time.sleep(1.5)
        stop.set()
        for t in threads:
            t.join(timeout=30)
    print(f"\nrestart under load ({restarted_in:.2f} s restart): {dict(outcomes)}")
    assert not [k for k in outcomes if k.startswith("read ") and k != "read ok"], errors
    failed_writes = sum(
        n for k, n in outcomes.items() if k.startswith("write ") and k != "write ok"
    )
    assert failed_writes <= 2  # at most the writes in flight (2 writer threads)
    assert all(isinstance(e, OutcomeUnknown) for e in errors), errors
    assert outcomes["read ok"] > 100 and outcomes["write ok"] > 50


# -- a server that is down -----------------------------------------------------------------------


def test_server_down_is_connection_failed_within_connect_timeout(cluster: Cluster) -> None:
    with Database(cluster.url, min_size=1, max_size=2, connect_timeout=2, timeout=30) as db:
        items = nx.Repository(db, Item)
        assert items.find_by_id(1) is not None
        cluster.stop()
        try:
            for call in (lambda: items.find_by_id(1), lambda: items.create({"name": "x"})):
                started = time.monotonic()
                with pytest.raises(ConnectionFailed) as info:
                    call()
                waited = time.monotonic() - started
                print(
                    f"\nserver down: {type(info.value).__name__} after {waited:.2f} s: {info.value}"
                )
                assert waited < 2 + 1.5, waited  # connect_timeout, not the 30 s pool timeout
                assert "refused" in str(info.value) or "connect" in str(info.value)
        finally:
            cluster.start_again()
        assert items.find_by_id(1) is not None  # and it comes back by itself


def test_busy_pool_is_still_a_pool_timeout(cluster: Cluster) -> None:
    ensure_running(cluster)
    with Database(cluster.url, max_size=1, timeout=0.5) as db:
        with db.transaction():
            with pytest.raises(PoolTimeout, match="all 1 in use"):
                nx.Repository(db, Item).find_by_id(1, transaction=nx.AUTOCOMMIT)


# -- a link cut with RST --------------------------------------------------------------------------


def test_cut_link(cluster: Cluster) -> None:
    ensure_running(cluster)
    cluster.execute('DROP TRIGGER IF EXISTS slow ON faults."Item"')
    cluster.execute(
        'CREATE TRIGGER slow BEFORE UPDATE ON faults."Item" '
        "FOR EACH STATEMENT EXECUTE FUNCTION faults.sleepy()"
    )
    try:
        with TcpProxy(cluster) as proxy, Database(proxy.url_for(cluster.url), max_size=2) as db:
            items = nx.Repository(db, Item)
            assert items.find_by_id(1) is not None
            threading.Timer(0.3, proxy.cut).start()
            with pytest.raises(OutcomeUnknown, match="may have been applied"):
                items.update_all({"n": -1}, {"n": {"gt": 0}})  # the trigger sleeps 1 s
            # your own statement outside a transaction may have written: its outcome is unknown
            threading.Timer(0.2, proxy.cut).start()
            with pytest.raises(OutcomeUnknown):
                db.fetch_value("SELECT pg_sleep(1), 1")
            # inside a transaction the cut loses the transaction: a clean ConnectionFailed,
            # which run_in_transaction runs again
            runs: list[int] = []

            def update(tx: nx.Transaction) -> int:
                runs.append(tx.attempt)
                if tx.attempt == 1:
                    threading.Timer(0.3, proxy.cut).start()
                return items.update_all({"name": "renamed"}, {"id": 1})

            assert db.run_in_transaction(update, backoff=0.01) == 1
            assert runs == [1, 2]
    finally:
        cluster.execute('DROP TRIGGER IF EXISTS slow ON faults."Item"')


def test_cut_link_during_a_slow_read_is_retried_once(cluster: Cluster) -> None:
    ensure_running(cluster)
    cluster.execute(
        'CREATE OR REPLACE VIEW faults."SlowItem" AS '
        'SELECT i.* FROM faults."Item" i, pg_sleep(0.5) WHERE i.id <= 3'
    )

    @nx.Schema("faults").table("SlowItem")
    class SlowItem(nx.IntIdColumns):  # the view, read through a repository
        name: str
        n: int = 0

    with TcpProxy(cluster) as proxy, Database(proxy.url_for(cluster.url), max_size=2) as db:
        slow = nx.Repository(db, SlowItem)
        threading.Timer(0.2, proxy.cut).start()
        started = time.monotonic()
        assert [r.id for r in slow.find({"order": "id"})] == [1, 2, 3]  # ran again: no error
        took = time.monotonic() - started
        print(f"\nread cut after 0.2 s, answered after {took:.2f} s")
        assert 0.5 < took < 5


# -- a silent link ---------------------------------------------------------------------------------

_FROZEN_CLIENT = """
import json, os, sys, time
import nxdata as nx
url = os.environ["PGCLUSTER_URL"]
db = nx.Database(url, max_size=2, tcp_user_timeout=2, keepalives_idle=1, keepalives_interval=1,
                 keepalives_count=2, connect_timeout=2).open()
lab = nx.Schema("lab")


@lab.table("Row")
class Row(nx.IntIdColumns):
    name: str


for statement in nx.create_statements([lab]):
    db.execute(statement)
rows = nx.Repository(db, Row)
first = rows.create({"name": "one"})
assert rows.find_by_id(first.id) is not None
print("ready", flush=True)
sys.stdin.readline()  # the link is frozen now
results = {}
for name, call in (
    ("your statement", lambda: db.fetch_value("SELECT 2")),
    ("repository read", lambda: rows.find_by_id(first.id)),
):
    started = time.monotonic()
    try:
        call()
        outcome = "answered"
    except nx.NxdataError as exc:
        outcome = type(exc).__name__ + ": " + str(exc).splitlines()[0]
    results[name] = {"after": round(time.monotonic() - started, 2), "outcome": outcome}
print(json.dumps(results), flush=True)
"""


def test_frozen_link_fails_within_the_configured_bound() -> None:
    with SilentLinkLab() as lab:
        client = lab.spawn_python(_FROZEN_CLIENT)
        try:
            assert client.stdout is not None and client.stdin is not None
            assert client.stdout.readline().strip() == "ready"
            lab.freeze()
            client.stdin.write("go\n")
            client.stdin.flush()
            result = json.loads(client.stdout.readline())
        finally:
            client.kill()
            client.communicate()
    print(f"\nfrozen link: {result}")
    for outcome in result.values():
        assert outcome["outcome"].startswith(("ConnectionFailed", "OutcomeUnknown")), result
        # tcp_user_timeout (2 s), plus connect_timeout (2 s) for a second connection attempt,
        # with slack for a busy machine: never the default minutes of TCP retransmission
        assert outcome["after"] < 2 + 2 + 2, result


def test_defaults_pass_keepalives_and_tcp_user_timeout(cluster: Cluster) -> None:
    ensure_running(cluster)
    kwargs = nx.Database(cluster.url).options.connect_kwargs()
    assert kwargs["keepalives"] == 1 and kwargs["tcp_user_timeout"] == 20000
    assert (
        kwargs["keepalives_idle"],
        kwargs["keepalives_interval"],
        kwargs["keepalives_count"],
    ) == (
        10,
        5,
        3,
    )
    with Database(cluster.url, max_size=1, tcp_user_timeout=None) as db:
        assert "tcp_user_timeout" not in db.options.connect_kwargs()


def test_ping_check_option(cluster: Cluster) -> None:
    ensure_running(cluster)
    with Database(cluster.url, min_size=2, max_size=2, check="ping") as db:
        items = nx.Repository(db, Item)
        assert items.find_by_id(1) is not None
        cluster.restart()
        assert items.find_by_id(2) is not None
    with pytest.raises(nx.errors.ConfigurationError, match="check must be"):
        Database(cluster.url, check="always")
