"""Read replicas against a real streaming replica: a primary and a standby of it
(``pg_basebackup -R``), started by the test on free ports and removed afterwards.

Which server answered is told by ``pg_is_in_recovery()`` through a view the repositories read
like a table; replay is paused (``pg_wal_replay_pause()``) to make the standby lag on purpose.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Annotated

import msgspec
import pytest
from pgcluster import Cluster, TcpProxy

import nxdata as nx
from nxdata import AsyncDatabase, Database
from nxdata.ddl import create_statements
from nxdata.errors import ConfigurationError

replicated = nx.Schema("replicated")


@replicated.table("Item")
class Item(nx.IntIdColumns):
    name: str


@replicated.table(
    "Line", foreign_keys=[nx.ForeignKey("item_id", Item, relation="item", inverse="lines")]
)
class Line(nx.IntIdColumns):
    item_id: int
    qty: int


@replicated.table("Probe")  # a view: which server answered
class Probe(msgspec.Struct, kw_only=True):
    id: Annotated[int, nx.Column(primary_key=True)]
    on_replica: bool


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Cluster, Cluster]]:
    with Cluster() as primary:
        for statement in create_statements([replicated]):
            if '"Probe"' not in statement:
                primary.execute(statement)
        primary.execute(
            'CREATE VIEW replicated."Probe" AS SELECT 1 AS id, pg_is_in_recovery() AS on_replica'
        )
        primary.execute("INSERT INTO replicated.\"Item\" (name) VALUES ('first')")
        standby = primary.standby()
        try:
            primary.wait_for_replay(standby)
            yield primary, standby
        finally:
            standby.destroy()


@pytest.fixture
def pair(servers: tuple[Cluster, Cluster]) -> Iterator[tuple[Cluster, Cluster]]:
    primary, standby = servers
    if not standby.is_running():
        standby.start_again()
    standby.resume_replay()
    primary.wait_for_replay(standby)
    yield primary, standby
    if standby.is_running():
        standby.resume_replay()


def answered_by_replica(db: Database, **kwargs: bool) -> bool:
    row = nx.Repository(db, Probe).find_by_id(1, **kwargs)
    assert row is not None
    return row.on_replica


def test_reads_go_to_the_replica_and_everything_else_to_the_primary(
    pair: tuple[Cluster, Cluster],
) -> None:
    primary, standby = pair
    with Database(primary.url, replicas=[standby.url], max_size=2) as db:
        probes = nx.Repository(db, Probe)
        items = nx.Repository(db, Item)
        assert answered_by_replica(db)
        assert [p.on_replica for p in probes.find()] == [True]
        assert probes.count() == 1 and db.replica_states()[0].reads >= 3
        # per call, per block, in a transaction, with a lock: the primary
        assert not answered_by_replica(db, primary=True)
        with db.on_primary():
            assert not answered_by_replica(db)
            assert probes.find_as(Probe) == [Probe(id=1, on_replica=False)]
        with db.transaction():
            assert not answered_by_replica(db)
            assert items.find_by_id(1, lock=nx.Lock.UPDATE) is not None
        with db.transaction(read_only=True):
            assert not answered_by_replica(db)
        # iterate: the block it was called in decides, not where its rows are consumed
        with db.on_primary():
            rows = probes.iterate()
        assert [p.on_replica for p in rows] == [False]
        assert [p.on_replica for p in probes.iterate()] == [True]
        # raw SQL of the caller's may write: the primary
        assert db.fetch_value("SELECT pg_is_in_recovery()") is False
        # a write goes to the primary, and the replica sees it once replayed
        created = items.create({"name": "written"})
        primary.wait_for_replay(standby)
        assert items.find_by_id(created.id) is not None
        assert answered_by_replica(db)


def test_read_your_writes_keeps_the_writers_reads_on_the_primary(
    pair: tuple[Cluster, Cluster],
) -> None:
    primary, standby = pair
    with Database(primary.url, replicas=[standby.url], read_your_writes=1.0) as db:
        items = nx.Repository(db, Item)
        assert answered_by_replica(db)
        standby.pause_replay()  # the replica will not see the write
        created = items.create({"name": "mine"})
        # this thread wrote: it reads from the primary and finds its row
        assert items.find_by_id(created.id) is not None
        assert not answered_by_replica(db)
        # another thread (another request) did not write: replica, where the row is not yet
        other: list[object] = []
        thread = threading.Thread(
            target=lambda: other.extend([items.find_by_id(created.id), answered_by_replica(db)])
        )
        thread.start()
        thread.join()
        assert other == [None, True]
        time.sleep(1.1)  # the window is over: back to the replica
        assert answered_by_replica(db)
    with Database(
        primary.url,
        replicas=[standby.url],
        read_your_writes=5.0,
        read_your_writes_scope="database",
    ) as db:
        items = nx.Repository(db, Item)
        items.create({"name": "everyone's"})
        seen: list[bool] = []
        thread = threading.Thread(target=lambda: seen.append(answered_by_replica(db)))
        thread.start()
        thread.join()
        assert seen == [False]  # scope "database": every reader of the handle


def test_a_lagging_replica_is_skipped_until_it_catches_up(pair: tuple[Cluster, Cluster]) -> None:
    primary, standby = pair
    with Database(primary.url, replicas=[standby.url], max_replica_lag=0.3) as db:
        assert answered_by_replica(db)
        standby.pause_replay()
        nx.Repository(db, Item).create({"name": "while paused"})
        time.sleep(1.2)  # lag grows past 0.3 s; the next look at it is due
        assert not answered_by_replica(db)
        [state] = db.replica_states()
        assert not state.usable and state.lag is not None and state.lag > 0.3
        standby.resume_replay()
        primary.wait_for_replay(standby)
        time.sleep(1.1)
        assert answered_by_replica(db)
        assert db.replica_states()[0].lag == 0.0


async def test_a_replica_stopped_under_load_fails_no_read(pair: tuple[Cluster, Cluster]) -> None:
    primary, standby = pair
    async with AsyncDatabase(
        primary.url, replicas=[standby.url], max_size=4, replica_retry=0.5
    ) as adb:
        items = nx.AsyncRepository(adb, Item)
        probes = nx.AsyncRepository(adb, Probe)
        failures: list[BaseException] = []
        reads = 0
        stop_at = time.monotonic() + 3.0

        async def reader() -> None:
            nonlocal reads
            for _ in range(5000):  # bounded in count and time
                if time.monotonic() > stop_at:
                    return
                try:
                    assert await items.find_by_id(1) is not None
                    reads += 1
                except Exception as exc:  # every failure is counted, none may happen
                    failures.append(exc)

        async def stopper() -> None:
            await asyncio.sleep(1.0)
            await asyncio.to_thread(standby.stop, "immediate")

        await asyncio.gather(*(reader() for _ in range(8)), stopper())
        assert failures == [] and reads > 100
        probe = await probes.find_by_id(1)
        assert probe is not None and probe.on_replica is False  # the primary serves reads
        assert adb.replica_states()[0].down_for is not None  # (tried again every 0.5 s)
        # back up: tried again after replica_retry, and used
        await asyncio.to_thread(standby.start_again)
        for _ in range(100):
            await asyncio.sleep(0.1)
            probe = await probes.find_by_id(1)
            if probe is not None and probe.on_replica:
                break
        assert probe is not None and probe.on_replica


def test_a_replica_down_at_open_does_not_stop_the_primary(pair: tuple[Cluster, Cluster]) -> None:
    primary, standby = pair
    standby.stop("fast")
    with Database(primary.url, replicas=[standby.url], connect_timeout=2) as db:
        assert not answered_by_replica(db)
        assert nx.Repository(db, Item).find_by_id(1) is not None


def test_replica_options_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="replicas takes a list of URLs"):
        nx.Database("postgresql://x@127.0.0.1/db", replicas="postgresql://y@127.0.0.1/db")
    with pytest.raises(ConfigurationError, match="invalid database URL"):
        nx.Database("postgresql://x@127.0.0.1/db", replicas=["mysql://y/db"])
    with pytest.raises(ConfigurationError, match="read_your_writes_scope"):
        nx.Database("postgresql://x@127.0.0.1/db", read_your_writes_scope="request")


def test_one_call_reads_from_one_replica(servers: tuple[Cluster, Cluster]) -> None:
    """Two replicas, one behind (replay paused): an item and its lines, written in one
    transaction, come from one server within a call, so never the item without its lines."""
    primary, standby = servers
    if not standby.is_running():
        standby.start_again()
    second = primary.standby()
    try:
        primary.wait_for_replay(second)
        second.pause_replay()
        with Database(primary.url, replicas=[standby.url, second.url], max_replica_lag=None) as db:
            items, lines = nx.Repository(db, Item), nx.Repository(db, Line)
            with db.transaction():
                item = items.create({"name": "boxed"})
                lines.create_all([{"item_id": item.id, "qty": q} for q in (1, 2)])
            primary.wait_for_replay(standby)
            finds, pages = set(), set()
            for _ in range(8):  # round robin: calls alternate between the two replicas
                found = items.find({"where": {"id": item.id}, "include": ["lines"]})
                finds.add((len(found), tuple(len(f.lines) for f in found)))
                page = items.find_page({"where": {"id": item.id}, "limit": 5}, total="exact")
                pages.add((len(page.items), page.total))
                items.count()  # moves the turn on, so both kinds of call meet both replicas
            # each call from one server: never an item without its lines, or a page whose
            # total disagrees with its rows
            assert finds == {(0, ()), (1, (2,))} and pages == {(0, 0), (1, 1)}
    finally:
        second.destroy()


def test_a_replica_that_stays_down_is_tried_once_per_retry() -> None:
    from nxdata.replicas import Replica

    replica = Replica("postgresql://x@127.0.0.1:1/db")
    replica.went_down(now=100.0)
    assert not replica.usable(101.0, retry=5.0) and replica.usable(106.0, retry=5.0)
    replica.went_down(now=106.0)  # the retry failed: another 5 s
    assert not replica.usable(107.0, retry=5.0)


def test_a_frozen_replica_is_cut_off_and_reads_go_on(pair: tuple[Cluster, Cluster]) -> None:
    """A replica that answers nothing (its link frozen: bytes acknowledged, never forwarded,
    so no TCP timeout fires) holds a read at most replica_timeout; the read then completes on
    the primary, and the replica is left alone until replica_retry has passed."""
    primary, standby = pair
    with TcpProxy(standby) as proxy:
        with Database(
            primary.url,
            replicas=[proxy.url_for(standby.url)],
            replica_timeout=1.0,
            replica_retry=30,
            max_size=2,
        ) as db:
            assert answered_by_replica(db)
            proxy.freeze()
            started = time.monotonic()
            assert not answered_by_replica(db)  # cut after ~1 s, run again on the primary
            assert time.monotonic() - started < 5
            [state] = db.replica_states()
            assert not state.usable and state.down_for is not None
            started = time.monotonic()
            for _ in range(20):  # left alone meanwhile: no read waits on it again
                assert not answered_by_replica(db)
            assert time.monotonic() - started < 2
            proxy.thaw()
