"""Primary keys in the *_by_id methods: a composite key takes a tuple (or list) in key order, the
wrong number of values is a clear `FilterError`, and a table without a primary key refuses them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

import msgspec
import psycopg
import pytest

import nxdata as nx
from nxdata import (
    AsyncDatabase,
    AsyncRepository,
    AsyncSoftDeletableRepository,
    Database,
    Repository,
    SoftDeletableRepository,
)
from nxdata.ddl import create_statements
from nxdata.errors import DeclarationError, FilterError, ValidationError

Conn = psycopg.Connection[Any]

Key = Annotated[str, nx.Column(primary_key=True)]


@dataclass
class Tables:
    Pair: Any  # (tenant text, code int), soft-deletable
    Triple: Any  # (tenant text, day date, seq int), plain
    Loose: Any  # no primary key at all
    Single: Any  # a one-column int key


def make_tables(schema_name: str) -> Tables:
    schema = nx.Schema(schema_name)

    @schema.table("Pair")
    class Pair(nx.timestamp_columns(soft_delete=True)):
        tenant: Key
        code: Annotated[int, nx.Column(primary_key=True)]
        label: str = ""

    @schema.table("Triple")
    class Triple(msgspec.Struct):
        tenant: Key
        day: Annotated[date, nx.Column(primary_key=True)]
        seq: Annotated[int, nx.Column(primary_key=True)]
        qty: int = 0

    @schema.table("Loose")
    class Loose(msgspec.Struct):
        word: str

    @schema.table("Single")
    class Single(msgspec.Struct):
        id: Annotated[int, nx.Column(primary_key=True)]

    return Tables(Pair, Triple, Loose, Single)


@pytest.fixture
def tables(conn: Conn, schema_name: str) -> Tables:
    t = make_tables(schema_name)
    for statement in create_statements([t.Pair.__nxdata_table__.schema]):
        conn.execute(statement)  # type: ignore[arg-type]
    return t


PAIRS = [
    {"tenant": "a", "code": 1, "label": "a1"},
    {"tenant": "a", "code": 2, "label": "a2"},
    {"tenant": "b", "code": 1, "label": "b1"},
]
DAY = date(2024, 5, 6)
TRIPLES = [
    {"tenant": "a", "day": DAY, "seq": 1, "qty": 10},
    {"tenant": "a", "day": DAY, "seq": 2, "qty": 20},
    {"tenant": "a", "day": date(2024, 5, 7), "seq": 1, "qty": 30},
]
# Not a tuple of two values: (value, what the message should say it got)
BAD_PAIR_IDS = [
    ("a", "'a'"),
    (("a",), r"\('a',\)"),
    (("a", 1, 2), r"\('a', 1, 2\)"),
    (None, "None"),
]


def labels(rows: list[Any]) -> list[str]:
    return sorted(r.label for r in rows)


# -- sync ------------------------------------------------------------------------------------------


def test_composite_key_find_update_delete(db: Database, tables: Tables) -> None:
    pairs = SoftDeletableRepository(db, tables.Pair)
    pairs.create_all(PAIRS)
    found = pairs.find_by_id(("a", 2))
    assert found is not None and found.label == "a2"
    assert pairs.find_by_id(["b", 1]) == pairs.find_one({"where": {"label": "b1"}})  # a list too
    assert pairs.find_by_id(("b", 2)) is None
    with pytest.raises(FilterError, match="expects an integer"):  # each part strict, as a filter
        pairs.find_by_id(("a", "2"))
    assert pairs.find_by_id(("a", 1), {"where": {"label": "nope"}}) is None
    projected = pairs.find_by_id(("a", 1), {"fields": ["label"]})
    assert projected is not None and projected.label == "a1" and projected.code is msgspec.UNSET

    updated = pairs.update_by_id(("a", 1), {"label": "A1"})
    assert updated is not None and (updated.tenant, updated.code, updated.label) == ("a", 1, "A1")
    assert labels(pairs.find()) == ["A1", "a2", "b1"]  # the rows sharing a key part are untouched
    assert pairs.update_by_id(("c", 1), {"label": "x"}) is None
    with pytest.raises(ValidationError, match="code"):
        pairs.update_by_id(("a", 1), {"code": 9})  # key columns cannot be updated

    deleted = pairs.delete_by_id(("a", 2))  # soft
    assert deleted is not None and deleted.deleted_at is not None
    assert labels(pairs.find()) == ["A1", "b1"]
    assert pairs.find_by_id(("a", 2)) is None
    assert pairs.find_by_id(("a", 2), include_deleted=True) is not None
    restored = pairs.restore_by_id(("a", 2))
    assert restored is not None and restored.deleted_at is None
    gone = pairs.hard_delete_by_id(("b", 1))
    assert gone is not None and gone.label == "b1"
    assert pairs.count(include_deleted=True) == 2


def test_three_part_key(db: Database, tables: Tables) -> None:
    triples = Repository(db, tables.Triple)
    triples.create_all(TRIPLES)
    row = triples.find_by_id(("a", DAY, 2))
    assert row is not None and row.qty == 20
    assert triples.find_by_id(("a", "2024-05-07", 1)) == triples.find_one({"where": {"qty": 30}})
    assert triples.find_by_id(("a", DAY, 3)) is None
    updated = triples.update_by_id(("a", DAY, 1), {"qty": 11})
    assert updated is not None and updated.qty == 11
    assert sorted(r.qty for r in triples.find()) == [11, 20, 30]
    deleted = triples.delete_by_id(("a", DAY, 2))
    assert deleted is not None and deleted.qty == 20
    assert sorted(r.qty for r in triples.find()) == [11, 30]
    with pytest.raises(FilterError, match=r"\(tenant, day, seq\): pass a tuple of 3 values"):
        triples.find_by_id(("a", DAY))
    with pytest.raises(FilterError, match=r"'not a date' is not an ISO 8601 date"):
        triples.find_by_id(("a", "not a date", 1))


@pytest.mark.parametrize(("bad", "shown"), BAD_PAIR_IDS, ids=["scalar", "short", "long", "none"])
def test_composite_key_wrong_arity(db: Database, tables: Tables, bad: Any, shown: str) -> None:
    pairs = SoftDeletableRepository(db, tables.Pair)
    pairs.create_all(PAIRS)
    message = rf"at id: the primary key is \(tenant, code\): pass a tuple of 2 values, got {shown}"
    for call in (
        lambda: pairs.find_by_id(bad),
        lambda: pairs.update_by_id(bad, {"label": "x"}),
        lambda: pairs.delete_by_id(bad),
        lambda: pairs.restore_by_id(bad),
        lambda: pairs.hard_delete_by_id(bad),
    ):
        with pytest.raises(FilterError, match=message) as info:
            call()
        assert info.value.part == "id"
    assert labels(pairs.find()) == ["a1", "a2", "b1"]  # nothing was touched


def test_single_key_takes_a_plain_value(db: Database, tables: Tables) -> None:
    singles = Repository(db, tables.Single)
    singles.create({"id": 7})
    assert singles.find_by_id(7) == tables.Single(7)
    with pytest.raises(FilterError, match="expects an integer, got a string '7'"):
        singles.find_by_id("7")  # strict: no string becomes an integer
    with pytest.raises(FilterError, match="expects an integer, got a list"):
        singles.find_by_id((7,))  # a one-column key is not a tuple


def test_table_without_primary_key(db: Database, tables: Tables) -> None:
    loose = Repository(db, tables.Loose)
    loose.create_all([{"word": "a"}, {"word": "b"}])
    for call in (
        lambda: loose.find_by_id("a"),
        lambda: loose.update_by_id("a", {"word": "c"}),
        lambda: loose.delete_by_id("a"),
    ):
        with pytest.raises(DeclarationError, match="has no primary key"):
            call()
    assert sorted(r.word for r in loose.find()) == ["a", "b"]  # never "every row matches"
    assert loose.delete_all({"word": "a"}) == 1


# -- async -----------------------------------------------------------------------------------------


async def test_async_composite_key(adb: AsyncDatabase, tables: Tables) -> None:
    pairs = AsyncSoftDeletableRepository(adb, tables.Pair)
    await pairs.create_all(PAIRS)
    found = await pairs.find_by_id(("a", 2))
    assert found is not None and found.label == "a2"
    assert await pairs.find_by_id(("b", 2)) is None
    updated = await pairs.update_by_id(["a", 1], {"label": "A1"})
    assert updated is not None and updated.label == "A1"
    assert labels(await pairs.find()) == ["A1", "a2", "b1"]
    deleted = await pairs.delete_by_id(("a", 2))
    assert deleted is not None and deleted.deleted_at is not None
    assert await pairs.restore_by_id(("a", 2)) is not None
    assert await pairs.hard_delete_by_id(("b", 1)) is not None
    assert labels(await pairs.find()) == ["A1", "a2"]
    for bad, shown in BAD_PAIR_IDS:
        for method in (pairs.find_by_id, pairs.delete_by_id, pairs.restore_by_id):
            with pytest.raises(FilterError, match=rf"pass a tuple of 2 values, got {shown}"):
                await method(bad)
        with pytest.raises(FilterError, match="pass a tuple of 2 values"):
            await pairs.update_by_id(bad, {"label": "x"})

    triples = AsyncRepository(adb, tables.Triple)
    await triples.create_all(TRIPLES)
    deleted_triple = await triples.delete_by_id(("a", DAY, 2))
    assert deleted_triple is not None and deleted_triple.qty == 20
    with pytest.raises(FilterError, match=r"pass a tuple of 3 values"):
        await triples.update_by_id(("a", DAY), {"qty": 1})

    loose = AsyncRepository(adb, tables.Loose)
    with pytest.raises(DeclarationError, match="has no primary key"):
        await loose.delete_by_id("a")
