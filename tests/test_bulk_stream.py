"""create_all from any iterable: a generator streamed into COPY a chunk at a time (never made a
list first), tuple rows in the insert type's field order, and all-or-none whatever fails —
an invalid row in a later chunk, or the generator itself raising — sync and async."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import msgspec
import psycopg
import pytest

import nxdata as nx
from nxdata import AsyncDatabase, Database
from nxdata.ddl import create_statements
from nxdata.errors import ValidationError

Conn = psycopg.Connection[Any]


def make_table(schema_name: str) -> Any:
    schema = nx.Schema(schema_name)

    @schema.table("Reading")
    class Reading(msgspec.Struct, kw_only=True):
        id: nx.BigIntIdentity
        sensor: str
        value: nx.Money
        note: str | None = None

    return schema, Reading


@pytest.fixture
def reading(conn: Conn, schema_name: str) -> Any:
    schema, Reading = make_table(schema_name)
    for statement in create_statements([schema]):
        conn.execute(statement)  # type: ignore[arg-type]
    return Reading


def generated(count: int) -> Iterator[dict[str, Any]]:
    for i in range(count):
        yield {"sensor": f"s{i % 7}", "value": Decimal(i) / 4}


def test_a_generator_is_streamed_without_being_listed(db: Database, reading: Any) -> None:
    readings = nx.Repository(db, reading)
    pulled = 0

    def counted(count: int) -> Iterator[dict[str, Any]]:
        nonlocal pulled
        for row in generated(count):
            pulled += 1
            yield row

    assert readings.create_all(counted(25_000)) == 25_000
    assert pulled == 25_000 and readings.count() == 25_000
    assert readings.find_one({"order": ["id DESC"]}).value == Decimal(24_999) / 4  # type: ignore[union-attr]
    # memory: what a chunk takes, not what 50,000 rows would
    readings.delete_all(all=True)
    tracemalloc.start()
    try:
        readings.create_all(generated(50_000))
        _, streamed_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        listed = list(generated(50_000))
        _, listed_peak = tracemalloc.get_traced_memory()
        del listed
    finally:
        tracemalloc.stop()
    assert streamed_peak < listed_peak / 3, (streamed_peak, listed_peak)


def test_tuple_rows_in_field_order(db: Database, reading: Any) -> None:
    readings = nx.Repository(db, reading)
    fields = reading.__nxdata_table__.insert_type.__struct_fields__
    assert fields == ("sensor", "value", "note")
    assert readings.create_all((("a", Decimal("1.5"), None), ("b", Decimal(2), "x"))) == 2
    assert [(r.sensor, r.value, r.note) for r in readings.find({"order": ["id"]})] == [
        ("a", Decimal("1.5"), None),
        ("b", Decimal(2), "x"),
    ]
    # trailing fields with defaults may be left out; more values than fields may not
    assert readings.create_all([("c", Decimal(1))]) == 1
    with pytest.raises(ValidationError, match=r"at most length 3, got 4 - at `\$\[1\]`"):
        readings.create_all([("c", Decimal(1), None), ("d", Decimal(1), None, "extra")])
    with pytest.raises(ValidationError, match=r"\$\[0\]"):
        readings.create_all([("e", "not money", None)])
    assert readings.count() == 3


def test_nothing_is_stored_when_a_later_chunk_fails(db: Database, reading: Any) -> None:
    readings = nx.Repository(db, reading)

    def with_bad_row() -> Iterator[dict[str, Any]]:
        yield from generated(7_000)
        yield {"sensor": "bad", "value": "NaN"}

    with pytest.raises(ValidationError, match=r"\$\[7000\]"):
        readings.create_all(with_bad_row())
    assert readings.count() == 0

    class Broken(Exception):
        pass

    def raising() -> Iterator[dict[str, Any]]:
        yield from generated(5_000)
        raise Broken("the source failed")

    with pytest.raises(Broken):
        readings.create_all(raising())
    assert readings.count() == 0
    # inside a caller's transaction: the transaction goes on, without the rows
    with db.transaction() as tx:
        readings.create({"sensor": "kept", "value": 1}, transaction=tx)
        with pytest.raises(Broken):
            readings.create_all(raising(), transaction=tx)
        assert readings.count(transaction=tx) == 1
    assert readings.count() == 1


def test_returning_takes_a_generator_too(db: Database, reading: Any) -> None:
    rows = nx.Repository(db, reading).create_all(generated(3), returning=True)
    assert [r.sensor for r in rows] == ["s0", "s1", "s2"]


async def test_async_streams_a_generator(adb: AsyncDatabase, reading: Any) -> None:
    readings = nx.AsyncRepository(adb, reading)
    assert await readings.create_all(generated(4_500)) == 4_500
    assert await readings.count() == 4_500
    assert await readings.create_all(iter([])) == 0


def test_tuples_mixed_with_other_rows_in_one_chunk(db: Database, reading: Any) -> None:
    readings = nx.Repository(db, reading)

    def mixed() -> Iterator[Any]:
        for i in range(2500):
            yield {"sensor": "d", "value": Decimal(i)}
        for i in range(2500):
            yield ("t", Decimal(i))  # trailing note left out: its default
        for i in range(100):
            yield reading.__nxdata_table__.insert_type(sensor="s", value=Decimal(i))

    assert readings.create_all(mixed()) == 5100
    counts = readings.aggregate(group_by=["sensor"], order=["sensor"])
    assert [(g["sensor"], g["count"]) for g in counts] == [("d", 2500), ("s", 100), ("t", 2500)]
    with pytest.raises(ValidationError, match=r"\$\[1\]"):
        readings.create_all([{"sensor": "x", "value": 1}, ("y", Decimal(1), None, "extra")])


def test_a_scope_fills_tuple_rows_as_it_fills_dicts(
    conn: Conn, schema_name: str, db: Database
) -> None:
    schema = nx.Schema(schema_name)

    @schema.table("Owned")
    class Owned(nx.IntIdColumns):
        tenant: str
        name: str
        plan: str = "free"

    for statement in create_statements([schema]):
        conn.execute(statement)  # type: ignore[arg-type]
    scoped = nx.Repository(db, Owned).scoped(plan="pro")
    assert scoped.create_all([{"tenant": "t1", "name": "a"}, ("t1", "b")]) == 2
    assert {o.plan for o in nx.Repository(db, Owned).find()} == {"pro"}
