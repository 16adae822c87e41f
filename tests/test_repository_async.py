"""Async repositories against a real PostgreSQL: every method, plain and soft-deletable."""

from __future__ import annotations

from contextlib import aclosing
from typing import Any

import msgspec
import psycopg
import pytest
from test_repository_support import Meta, Models, create_tables, make_models

from nxdata import AsyncDatabase, AsyncRepository, AsyncSoftDeletableRepository, Lock
from nxdata.errors import FilterError, LockNotAvailable, TransactionError, UniqueViolation

Conn = psycopg.Connection[Any]


@pytest.fixture
def models(conn: Conn, schema_name: str) -> Models:
    m = make_models(schema_name)
    create_tables(conn, m)
    return m


@pytest.fixture
def items(adb: AsyncDatabase, models: Models) -> AsyncSoftDeletableRepository[Any]:
    return AsyncSoftDeletableRepository(adb, models.Item)


@pytest.fixture
def entries(adb: AsyncDatabase, models: Models) -> AsyncRepository[Any]:
    return AsyncRepository(adb, models.Entry)


async def test_reads(items: AsyncSoftDeletableRepository[Any]) -> None:
    a = await items.create({"name": "a", "score": 1, "meta": {"tier": "x"}})
    await items.create({"name": "b", "score": None, "metadata": {"p": {"q": 1}}})
    await items.create({"name": "c", "score": 3})
    rows = await items.find({"where": {"score": {"neq": None}}, "order": ["score DESC"]})
    assert [r.name for r in rows] == ["c", "a"]
    assert [r.name for r in await items.find({"where": {"metadata.p.q": 1}})] == ["b"]
    assert [r.name for r in await items.find({"order": ["score NULLS FIRST"], "limit": 2})] == [
        "b",
        "a",
    ]
    projected = await items.find({"fields": ["name"], "where": {"name": {"inq": ["a"]}}})
    assert projected[0].name == "a" and projected[0].score is msgspec.UNSET
    one = await items.find_one({"where": {"or": [{"name": "zz"}, {"score": {"gt": 2}}]}})
    assert one is not None and one.name == "c"
    found = await items.find_by_id(a.id)
    assert found is not None and found.meta == Meta("x")
    assert await items.count({"score": {"gte": 1}}) == 2
    assert await items.exists({"name": "b"})
    assert not await items.exists({"name": {"inq": []}})


async def test_iterate(entries: AsyncRepository[Any]) -> None:
    assert await entries.create_all([{"label": f"r{i}", "qty": i} for i in range(120)]) == 120
    seen = [r.qty async for r in entries.iterate({"order": ["qty"]}, batch_size=25)]
    assert seen == list(range(120))
    async with aclosing(entries.iterate({"order": ["qty"]}, batch_size=5)) as stream:
        async for row in stream:
            assert row.qty == 0
            break
    for _ in range(6):
        assert await entries.count() == 120


async def test_writes_plain(entries: AsyncRepository[Any]) -> None:
    row = await entries.create({"label": "a", "qty": 1})
    rows = await entries.create_all([{"label": "b"}, {"label": "c", "qty": 5}], returning=True)
    assert [r.label for r in rows] == ["b", "c"]
    updated = await entries.update_by_id(row.id, {"qty": 2})
    assert updated is not None and updated.qty == 2 and updated.modified_at > row.modified_at
    assert await entries.update_all({"note": "n"}, {"qty": {"gt": 1}}) == 2
    changed = await entries.update_all({"qty": 7}, {"label": "b"}, returning=True)
    assert [r.qty for r in changed] == [7]
    up = await entries.upsert({"label": "z"}, conflict=["id"])
    assert up is not None and up.label == "z"
    deleted = await entries.delete_by_id(row.id)
    assert deleted is not None and deleted.label == "a"
    assert await entries.find_by_id(row.id) is None
    assert await entries.delete_all({"note": "n"}) == 1
    gone = await entries.delete_all(returning=True, all=True)
    assert sorted(r.label for r in gone) == ["b", "z"]
    assert await entries.count() == 0


async def test_soft_delete(items: AsyncSoftDeletableRepository[Any]) -> None:
    a = await items.create({"name": "a", "code": "A"})
    b = await items.create({"name": "b"})
    deleted = await items.delete_by_id(a.id)
    assert deleted is not None and deleted.deleted_at is not None
    assert await items.find_by_id(a.id) is None
    assert await items.find_by_id(a.id, include_deleted=True) is not None
    assert await items.count() == 1 and not await items.exists({"name": "a"})
    assert await items.update_all({"status": "x"}, all=True) == 1
    assert [r.name async for r in items.iterate()] == ["b"]
    assert await items.delete_all({"name": "b"}, returning=True) != []
    assert await items.find() == []
    restored = await items.restore_by_id(b.id)
    assert restored is not None and restored.deleted_at is None
    assert await items.hard_delete_by_id(a.id) is not None
    assert await items.count(include_deleted=True) == 1
    with pytest.raises(UniqueViolation) as info:
        await items.create({"name": "c", "code": "B"})
        await items.create({"name": "d", "code": "B"})
    assert info.value.constraint == "UQ_Item_code"


async def test_transactions_and_locks(
    adb: AsyncDatabase, entries: AsyncRepository[Any], items: AsyncSoftDeletableRepository[Any]
) -> None:
    row = await entries.create({"label": "w", "qty": 10})
    with pytest.raises(TransactionError):
        await entries.find_by_id(row.id, lock=Lock.UPDATE)
    async with adb.transaction() as tx:
        locked = await entries.find_by_id(row.id, lock=Lock.UPDATE, transaction=tx)
        assert locked is not None
        await entries.update_by_id(row.id, {"qty": locked.qty - 3}, transaction=tx)
        skipped = await entries.find(
            {"where": {"id": row.id}}, lock=Lock.UPDATE.skip_locked(), transaction=tx
        )
        assert len(skipped) == 1  # our own lock does not hide the row from us
    assert (await entries.find_by_id(row.id)).qty == 7  # type: ignore[union-attr]
    with pytest.raises(ZeroDivisionError):
        async with adb.transaction() as tx:
            await entries.update_all({"qty": 0}, all=True, transaction=tx)
            await items.create({"name": "rolled back"}, transaction=tx)
            1 / 0  # noqa: B018
    assert (await entries.find_by_id(row.id)).qty == 7  # type: ignore[union-attr]
    assert await items.count() == 0


async def test_iterate_with_a_lock(adb: AsyncDatabase, entries: AsyncRepository[Any]) -> None:
    rows = await entries.create_all(
        [{"label": f"r{i}", "qty": i} for i in range(5)], returning=True
    )
    ids = [r.id for r in rows]

    async def free(row_id: int) -> bool:
        """Whether an independent transaction can lock the row right now."""
        async with await adb.begin_transaction() as other:
            try:
                await entries.find_by_id(row_id, lock=Lock.UPDATE.nowait(), transaction=other)
            except LockNotAvailable:
                await other.rollback()  # failed by the error: a commit would raise
                return False
            return True

    async with adb.transaction() as tx:
        stream = entries.iterate({"order": ["qty"]}, batch_size=2, lock=Lock.UPDATE, transaction=tx)
        async with aclosing(stream):
            seen = [await anext(stream)]
            # A cursor FOR UPDATE locks rows as it fetches them: the first batch of two.
            assert [await free(i) for i in ids] == [False, False, True, True, True]
            seen += [row async for row in stream]
        assert [r.qty for r in seen] == [0, 1, 2, 3, 4]
        assert not any([await free(i) for i in ids])  # held until the transaction ends
        async with await adb.begin_transaction() as other:  # SKIP LOCKED sees none of them
            skip = Lock.UPDATE.skip_locked()
            assert [r async for r in entries.iterate(lock=skip, transaction=other)] == []
        assert (await entries.count(transaction=tx)) == 5  # tx is still usable after the cursor
    assert all([await free(i) for i in ids])

    with pytest.raises(TransactionError, match="needs a transaction"):
        [r async for r in entries.iterate(lock=Lock.SHARE)]
    with pytest.raises(TransactionError, match="already committed"):
        [r async for r in entries.iterate(lock=Lock.UPDATE, transaction=tx)]
    for _ in range(6):  # more than the pool size: nothing was leaked
        assert await entries.count() == 5


async def test_bad_filter(items: AsyncSoftDeletableRepository[Any]) -> None:
    with pytest.raises(FilterError, match=r"where\.nope"):
        await items.find({"where": {"nope": 1}})
