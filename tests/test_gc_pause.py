"""`GcPause`: cyclic GC paused around big fetches and decodes, re-entrant and thread-safe.

No timings here: only that the collector's state is what it should be, before, during and after.
"""

from __future__ import annotations

import gc
import random
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

import nxdata as nx
import nxdata.repository
import nxdata.repository_async
from nxdata import AsyncDatabase, AsyncRepository, Database, Repository
from nxdata.ddl import create_statements
from nxdata.rows import GC_PAUSE_ROWS, GcPause


@pytest.fixture(autouse=True)
def gc_enabled() -> Iterator[None]:
    """Every test starts with the collector on, and leaves it on."""
    was = gc.isenabled()
    gc.enable()
    try:
        yield
    finally:
        assert nx.rows._gc_pausers == 0  # no pause left behind
        if not was:
            gc.disable()


def test_pause_disables_and_restores() -> None:
    with GcPause():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_pause_is_reentrant() -> None:
    with GcPause():
        with GcPause():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer pause still holds
    assert gc.isenabled()


def test_begin_twice_counts_once_and_end_without_begin_does_nothing() -> None:
    pause = GcPause()
    pause.end()
    assert gc.isenabled()
    pause.begin()
    pause.begin()
    assert not gc.isenabled()
    pause.end()
    assert gc.isenabled()
    pause.end()
    assert gc.isenabled()


def test_pause_restores_on_exceptions() -> None:
    with pytest.raises(ZeroDivisionError), GcPause(), GcPause():
        1 / 0  # noqa: B018
    assert gc.isenabled()


def test_pause_never_enables_a_collector_that_was_off() -> None:
    gc.disable()
    try:
        with GcPause():
            assert not gc.isenabled()
        assert not gc.isenabled()
        with pytest.raises(KeyError), GcPause():
            raise KeyError("x")
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_overlapping_pauses_across_threads() -> None:
    # A pauses, B pauses, A ends (still paused: B holds it), B ends (collector back on).
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, bool] = {}

    def first() -> None:
        with GcPause():
            a_in.set()
            b_in.wait(5)
        a_out.set()

    def second() -> None:
        a_in.wait(5)
        with GcPause():
            b_in.set()
            a_out.wait(5)
            seen["after A left"] = gc.isenabled()
        seen["after B left"] = gc.isenabled()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == {"after A left": False, "after B left": True}


def test_many_threads_leave_the_collector_as_found() -> None:
    errors: list[BaseException] = []

    def churn(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(300):
                with GcPause():
                    assert not gc.isenabled()
                    if rng.random() < 0.3:
                        with GcPause():
                            assert not gc.isenabled()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=churn, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert gc.isenabled()


# -- in the repositories ---------------------------------------------------------------------------


class Spy:
    """Counts `gc.disable` calls while a test runs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.disabled = 0
        real = gc.disable

        def disable() -> None:
            self.disabled += 1
            real()

        monkeypatch.setattr(gc, "disable", disable)


@pytest.fixture
def Thing(conn: psycopg.Connection[Any], schema_name: str) -> Any:
    schema = nx.Schema(schema_name)

    @schema.table("Thing")
    class Thing(nx.compose(nx.id_columns("bigint"))):
        name: str
        doc: dict[str, Any] | None = None

    for statement in create_statements([schema]):
        conn.execute(statement)  # type: ignore[arg-type]
    return Thing


def test_large_reads_pause_gc(db: Database, Thing: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nxdata.repository, "GC_PAUSE_ROWS", 3)
    repo = Repository(db, Thing)
    repo.create_all([{"name": "a"}, {"name": "b"}])
    spy = Spy(monkeypatch)
    assert len(repo.find()) == 2 and spy.disabled == 0  # below the threshold
    repo.create_all([{"name": f"n{i}", "doc": {"i": i}} for i in range(5)])
    spy.disabled = 0
    assert len(repo.find()) == 7
    assert spy.disabled == 1 and gc.isenabled()
    # one pause per fetch of a batch: 3, 3, 1 rows, then the empty fetch that ends it
    assert len(list(repo.iterate(batch_size=3))) == 7
    assert spy.disabled == 5 and gc.isenabled()
    with pytest.raises(nx.errors.FilterError):
        repo.find({"where": {"ghost": 1}})
    assert gc.isenabled()


async def test_async_large_reads_pause_gc(
    adb: AsyncDatabase, Thing: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nxdata.repository_async, "GC_PAUSE_ROWS", 3)
    repo = AsyncRepository(adb, Thing)
    await repo.create_all([{"name": f"n{i}"} for i in range(4)])
    spy = Spy(monkeypatch)
    assert len(await repo.find()) == 4
    assert [r.name async for r in repo.iterate({"order": "id"}, batch_size=4)] == [
        "n0",
        "n1",
        "n2",
        "n3",
    ]
    assert spy.disabled == 3 and gc.isenabled()


def test_large_bulk_inserts_pause_gc(
    db: Database, Thing: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nxdata.repository, "GC_PAUSE_ROWS", 3)
    repo = Repository(db, Thing)
    spy = Spy(monkeypatch)
    assert repo.create_all([{"name": "a"}, {"name": "b"}]) == 2  # below the threshold
    assert spy.disabled == 0
    rows = [{"name": f"n{i}", "doc": {"i": i}} for i in range(5)]
    assert repo.create_all(rows) == 5
    assert spy.disabled == 1 and gc.isenabled()
    with pytest.raises(nx.errors.ValidationError):
        repo.create_all([*rows, {"name": 1}])
    assert spy.disabled == 2 and gc.isenabled()


def test_threshold_is_sensible() -> None:
    assert 100 <= GC_PAUSE_ROWS <= 10_000
