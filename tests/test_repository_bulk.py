"""create_all on every kind of column, through COPY (count) and RETURNING (rows), sync and async.

Rows written in bulk must read back exactly as written: arrays (one-dimensional, jagged, empty, with
NULL elements and text that needs quoting), jsonb (free-form, typed, arrays of Structs), text and
int enums, nullable columns. The rows `create_all(returning=True)` hands back must equal what
`find` returns afterwards, in the order they were given.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
import psycopg
import pytest
from test_repository_support import Meta, Plan

import nxdata as nx
from nxdata import AsyncDatabase, AsyncRepository, Database, Repository
from nxdata import repository as nx_repository
from nxdata.ddl import create_statements
from nxdata.errors import UniqueViolation

Conn = psycopg.Connection[Any]


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclass
class Tables:
    Sample: Any  # every kind of column, bigint identity id
    Flat: Any  # no array column: the unnest path


def make_tables(schema_name: str) -> Tables:
    schema = nx.Schema(schema_name)

    @schema.table("Sample", uniques=[nx.Unique("name")])
    class Sample(nx.compose(nx.id_columns("bigint"), nx.timestamp_columns(soft_delete=False))):
        name: str
        words: list[str] = msgspec.field(default_factory=list)  # array, not null
        ints: list[int | None] | None = None  # array with NULL elements
        stamps: list[datetime] | None = None
        uuids: list[UUID] | None = None
        doc: dict[str, Any] | None = None  # jsonb
        anything: Any = None  # jsonb, any JSON value
        plan: Plan = Plan.FREE  # text enum
        level: Level | None = None  # int enum
        size: Literal["s", "m", "l"] = "s"
        meta: Meta | None = None  # typed jsonb
        metas: list[Meta] | None = None  # jsonb array of Structs
        amount: Decimal | None = None
        note: str | None = None

    @schema.table("Flat")
    class Flat(nx.CommonColumns):  # text id made in Python, jsonb metadata, soft delete
        name: str
        origin: Annotated[str, nx.Column(server_default="'api'")]  # omitted: another column set
        doc: dict[str, Any] | None = None
        plan: Plan = Plan.FREE
        level: Level | None = None
        meta: Meta | None = None
        amount: Decimal | None = None
        wait: timedelta | None = None

    return Tables(Sample, Flat)


STAMP = datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=UTC)
UUID_A = UUID("0b6c8f0e-8a53-4c0b-9d7c-2f1e5a3b4c5d")

# Rows with differing column sets, interleaved: the result must keep this order.
SAMPLES: list[dict[str, Any]] = [
    {
        "name": "full",
        "words": ["a", "b,c", '"quoted"', "{braces}", "NULL", "back\\slash", "tab\there", "é"],
        "ints": [1, None, 3],
        "stamps": [STAMP, STAMP + timedelta(days=1)],
        "uuids": [UUID_A],
        "doc": {"plan": {"tier": "pro"}, "n": 3, "text": "line\nbreak\t\\", "null": None},
        "anything": [1, "two", {"three": 3.5}],
        "plan": "pro",
        "level": 2,
        "size": "l",
        "meta": {"tier": "gold", "seats": 4},
        "metas": [{"tier": "a", "seats": 1}, {"tier": "b", "seats": 2}],
        "amount": Decimal("12.3400"),
        "note": "n",
    },
    {"name": "bare"},  # every default
    {"name": "jagged", "words": ["only one"], "ints": [], "stamps": []},
    {
        "name": "nulls",
        "ints": None,
        "stamps": None,
        "uuids": None,
        "doc": None,
        "level": None,
        "meta": None,
        "metas": None,
        "amount": None,
        "note": None,
    },
    {"name": "longer", "words": ["x", "y", "z", "w"], "ints": [None], "anything": "just text"},
    {"name": "scalar json", "anything": 42, "doc": {}, "metas": [], "created_at": STAMP},
    {"name": "enums only", "plan": "free", "level": 1},
]

FLATS: list[dict[str, Any]] = [
    {
        "name": "f1",
        "doc": {"k": [1, 2]},
        "plan": "pro",
        "level": 1,
        "meta": {"tier": "t", "seats": 1},
    },
    {"name": "f2", "origin": "import"},
    {"name": "f3", "amount": Decimal("-0.5"), "wait": timedelta(hours=1, seconds=1.5)},
    {"name": "f4", "metadata": {"a": {"b": None}}, "doc": None, "meta": None},
    {"name": "f5", "plan": "free", "doc": {"quote": 'it\'s "here"'}},
    {"name": "f6", "origin": "import"},  # f2's column set: one INSERT for f2 and f6, and
    {"name": "f7", "level": 2},  # the rows still come back in the order given
]


def _plain(value: Any) -> Any:
    """Enums and Structs as builtins; datetimes, Decimals and UUIDs compare as they are."""
    return msgspec.to_builtins(value, builtin_types=(datetime, timedelta, Decimal, UUID))


def assert_matches(rows: list[Any], specs: list[dict[str, Any]]) -> None:
    """Every row holds what its spec asked for (unsent fields: defaults, checked elsewhere)."""
    assert len(rows) == len(specs)
    for row, spec in zip(rows, specs, strict=True):
        for field, value in spec.items():
            assert _plain(getattr(row, field)) == _plain(value), (row.name, field)


def assert_defaults(row: Any) -> None:
    assert (row.words, row.ints, row.doc, row.anything) == ([], None, None, None)
    assert (row.plan, row.level, row.size, row.meta, row.metas) == (
        Plan.FREE,
        None,
        "s",
        None,
        None,
    )


@pytest.fixture
def tables(conn: Conn, schema_name: str) -> Tables:
    t = make_tables(schema_name)
    for statement in create_statements([t.Sample.__nxdata_table__.schema]):
        conn.execute(statement)  # type: ignore[arg-type]
    return t


# -- sync ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("returning", [True, False], ids=["returning", "copy"])
def test_create_all_every_column_kind(db: Database, tables: Tables, returning: bool) -> None:
    repo = Repository(db, tables.Sample)
    if returning:
        created = repo.create_all(SAMPLES, returning=True)
        assert [r.name for r in created] == [s["name"] for s in SAMPLES]
        assert created == [repo.find_by_id(r.id) for r in created]
        assert sorted(created, key=lambda r: r.id) == repo.find({"order": ["id"]})
    else:
        assert repo.create_all(SAMPLES) == len(SAMPLES)
        created = [repo.find_one({"where": {"name": s["name"]}}) for s in SAMPLES]
    assert_matches(created, SAMPLES)
    assert_defaults(created[1])
    assert created[0].plan is Plan.PRO and created[0].level is Level.HIGH
    assert created[0].meta == Meta("gold", 4) and created[0].metas[1] == Meta("b", 2)
    assert created[4].ints == [None]
    # what was written is what a filter finds
    assert [r.name for r in repo.find({"where": {"words": {"contains": ["b,c", "NULL"]}}})] == [
        "full"
    ]
    assert repo.count({"doc.plan.tier": "pro"}) == 1
    assert repo.count({"level": 2}) == 1


@pytest.mark.parametrize("returning", [True, False], ids=["returning", "copy"])
def test_create_all_without_array_columns(db: Database, tables: Tables, returning: bool) -> None:
    repo = nx.SoftDeletableRepository(db, tables.Flat)
    if returning:
        created = repo.create_all(FLATS, returning=True)
        assert [r.name for r in created] == [f["name"] for f in FLATS]  # input order kept
        assert created == [repo.find_by_id(r.id) for r in created]
        assert sorted(created, key=lambda r: r.id) == repo.find({"order": ["id"]})
    else:
        assert repo.create_all(FLATS) == len(FLATS)
        created = [repo.find_one({"where": {"name": f["name"]}}) for f in FLATS]
    assert_matches(created, FLATS)
    assert created[0].meta == Meta("t", 1) and created[0].plan is Plan.PRO
    assert created[0].level is Level.LOW
    assert created[1].doc is None and created[1].metadata is None
    assert [r.origin for r in created] == ["api", "import", "api", "api", "api", "import", "api"]


def test_create_all_one_column_set_with_arrays(db: Database, tables: Tables) -> None:
    repo = Repository(db, tables.Sample)
    specs = [{"name": f"n{i}", "words": ["w"] * i, "ints": list(range(i))} for i in range(50)]
    created = repo.create_all(specs, returning=True)
    assert [len(r.words) for r in created] == list(range(50))
    assert created == repo.find({"order": ["id"], "limit": 100})
    assert_matches(created, specs)


def test_create_all_is_all_or_nothing(db: Database, tables: Tables) -> None:
    repo = Repository(db, tables.Sample)
    duplicate = [{"name": "a", "words": ["x"]}, {"name": "b"}, {"name": "a", "ints": [1]}]
    for returning in (True, False):
        with pytest.raises(UniqueViolation):
            repo.create_all(duplicate, returning=returning)  # type: ignore[call-overload]
        assert repo.count() == 0
    with pytest.raises(RuntimeError), db.transaction() as tx:
        rows = repo.create_all(SAMPLES[:3], returning=True, transaction=tx)
        assert repo.count(transaction=tx) == 3 and rows[0].ints == [1, None, 3]
        assert repo.create_all(SAMPLES[3:], transaction=tx) == len(SAMPLES) - 3
        raise RuntimeError("roll back")
    assert repo.count() == 0


# -- async -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("returning", [True, False], ids=["returning", "copy"])
async def test_async_create_all_every_column_kind(
    adb: AsyncDatabase, tables: Tables, returning: bool
) -> None:
    repo = AsyncRepository(adb, tables.Sample)
    if returning:
        created = await repo.create_all(SAMPLES, returning=True)
        assert [r.name for r in created] == [s["name"] for s in SAMPLES]
        assert created == [await repo.find_by_id(r.id) for r in created]
        assert sorted(created, key=lambda r: r.id) == await repo.find({"order": ["id"]})
    else:
        assert await repo.create_all(SAMPLES) == len(SAMPLES)
        created = [await repo.find_one({"where": {"name": s["name"]}}) for s in SAMPLES]
    assert_matches(created, SAMPLES)
    assert_defaults(created[1])
    assert created[0].plan is Plan.PRO and created[0].level is Level.HIGH
    assert await repo.count({"words": {"contains": ["{braces}"]}}) == 1


@pytest.mark.parametrize("returning", [True, False], ids=["returning", "copy"])
async def test_async_create_all_without_array_columns(
    adb: AsyncDatabase, tables: Tables, returning: bool
) -> None:
    repo = nx.AsyncSoftDeletableRepository(adb, tables.Flat)
    if returning:
        created = await repo.create_all(FLATS, returning=True)
        assert [r.name for r in created] == [f["name"] for f in FLATS]
        assert created == [await repo.find_by_id(r.id) for r in created]
    else:
        assert await repo.create_all(FLATS) == len(FLATS)
        created = [await repo.find_one({"where": {"name": f["name"]}}) for f in FLATS]
    assert_matches(created, FLATS)
    assert created[0].meta == Meta("t", 1)


async def test_async_create_all_is_all_or_nothing(adb: AsyncDatabase, tables: Tables) -> None:
    repo = AsyncRepository(adb, tables.Sample)
    duplicate = [{"name": "a", "words": ["x"]}, {"name": "b"}, {"name": "a", "ints": [1]}]
    with pytest.raises(UniqueViolation):
        await repo.create_all(duplicate, returning=True)
    assert await repo.count() == 0
    async with adb.transaction() as tx:
        rows = await repo.create_all(SAMPLES, returning=True, transaction=tx)
    assert sorted(rows, key=lambda r: r.id) == await repo.find({"order": ["id"]})
    assert [r.name for r in rows] == [s["name"] for s in SAMPLES]


# -- validation of many rows -----------------------------------------------------------------------


def test_create_all_names_the_bad_row_and_field(db: Database, tables: Tables) -> None:
    repo = Repository(db, tables.Sample)
    good = [{"name": f"r{i}"} for i in range(50)]
    cases: list[tuple[list[Any], str, str]] = [
        ([*good[:41], {"name": "x", "amount": "lots"}], "amount", r"`\$\[41\]\.amount`"),
        ([*good[:3], {"words": []}], "name", r"required field `name` - at `\$\[3\]`"),
        (
            [{"name": "a", "nope": 1}],
            "nope",
            r"unknown field `nope` \(did you mean `note`\?\) - at `\$\[0\]`",
        ),
        # not all dicts: validated one by one, same messages
        ([b'{"name": "a"}', b'{"name": "b", "level": 7}'], "level", r"`\$\[1\]\.level`"),
        ([good[0], repo.table.insert_type(name="s"), {"name": 5}], "name", r"`\$\[2\]\.name`"),
    ]
    for rows, field, message in cases:
        for returning in (False, True):
            with pytest.raises(nx.ValidationError, match=message) as info:
                repo.create_all(rows, returning=returning)  # type: ignore[call-overload]
            assert info.value.field == field
            assert info.value.table == repo.table.qualified_name
    assert repo.count() == 0  # nothing is written when any row is invalid


async def test_async_create_all_names_the_bad_row_and_field(
    adb: AsyncDatabase, tables: Tables
) -> None:
    repo = AsyncRepository(adb, tables.Sample)
    with pytest.raises(nx.ValidationError, match=r"`\$\[1\]\.ints\[0\]`") as info:
        await repo.create_all([{"name": "a"}, {"name": "b", "ints": ["x"]}])
    assert info.value.field == "ints"
    assert await repo.count() == 0


def test_copy_keeps_jsonb_text_and_nulls_apart(db: Database, tables: Tables) -> None:
    # jsonb goes to COPY a column at a time (newline-delimited JSON split back per value)
    repo = Repository(db, tables.Sample)
    rows = [
        {"name": "nl", "doc": {"t": "a\nb\\n", "u": "é\u2028"}, "anything": "x\ny"},
        {"name": "none", "doc": None, "anything": None},
        {"name": "list", "doc": {}, "anything": [1, "\n", None]},
    ]
    assert repo.create_all(rows) == 3
    found = {r.name: (r.doc, r.anything) for r in repo.find()}
    assert found == {
        "nl": ({"t": "a\nb\\n", "u": "é\u2028"}, "x\ny"),
        "none": (None, None),
        "list": ({}, [1, "\n", None]),
    }
    assert repo.count({"doc": None}) == 1  # SQL NULL (IS NULL), not the JSON null


# -- COPY streamed a chunk at a time ---------------------------------------------------------------

CHUNK = nx_repository._COPY_CHUNK


def many(count: int, prefix: str = "r") -> list[dict[str, Any]]:
    return [{"name": f"{prefix}{i}", "doc": {"i": i}} for i in range(count)]


def test_streamed_copy_stores_every_chunk_and_column_set(db: Database, tables: Tables) -> None:
    # Past the first chunk, rows setting created_at (a server default) form another column set:
    # a second COPY, in the same transaction as the first.
    repo = Repository(db, tables.Sample)
    rows = many(2 * CHUNK + 7)
    for row in rows[CHUNK + 3 :: 500]:
        row["created_at"] = STAMP
    assert repo.create_all(rows) == len(rows)
    assert repo.count() == len(rows)
    assert repo.count({"created_at": STAMP}) == len(rows[CHUNK + 3 :: 500])
    last = repo.find_one({"where": {"name": f"r{2 * CHUNK + 6}"}})
    assert last is not None and last.doc == {"i": 2 * CHUNK + 6}


def test_streamed_copy_checks_later_chunks_and_sends_nothing(db: Database, tables: Tables) -> None:
    repo = Repository(db, tables.Sample)
    bad = CHUNK + 5  # in the second chunk: found while the first is being stored
    rows = many(2 * CHUNK)
    rows[bad]["amount"] = "lots"
    with pytest.raises(nx.ValidationError, match=rf"`\$\[{bad}\]\.amount`") as info:
        repo.create_all(rows)
    assert info.value.field == "amount"
    assert repo.count() == 0
    # In the caller's transaction: the rows already sent are taken back, the transaction goes on.
    with db.transaction() as tx:
        repo.create({"name": "before"}, transaction=tx)
        with pytest.raises(nx.ValidationError, match=rf"`\$\[{bad}\]"):
            repo.create_all(rows, transaction=tx)
        assert repo.count(transaction=tx) == 1
        assert repo.create_all(many(CHUNK + 1, "ok"), transaction=tx) == CHUNK + 1
    assert repo.count() == CHUNK + 2


def test_streamed_copy_database_error_stores_nothing(db: Database, tables: Tables) -> None:
    repo = Repository(db, tables.Sample)
    rows = many(2 * CHUNK)
    rows[-1]["name"] = "r0"  # a duplicate of the first row, in the last chunk
    with pytest.raises(UniqueViolation):
        repo.create_all(rows)
    assert repo.count() == 0


async def test_async_streamed_copy(adb: AsyncDatabase, tables: Tables) -> None:
    repo = AsyncRepository(adb, tables.Sample)
    rows = many(CHUNK + 1)
    rows[CHUNK]["ints"] = ["x"]
    async with adb.transaction() as tx:
        with pytest.raises(nx.ValidationError, match=rf"`\$\[{CHUNK}\]\.ints\[0\]`"):
            await repo.create_all(rows, transaction=tx)
        assert await repo.count(transaction=tx) == 0
        del rows[CHUNK]["ints"]
        assert await repo.create_all(rows, transaction=tx) == CHUNK + 1
    assert await repo.count() == CHUNK + 1
