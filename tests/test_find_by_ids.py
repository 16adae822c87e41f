"""find_by_ids: one ``= ANY`` query, rows in the order of the ids given, each once; keys with
no row left out; the filter's where / fields / include apply; a client policy caps the ids."""

from __future__ import annotations

from typing import Any

import msgspec
import psycopg
import pytest

import nxdata as nx
from nxdata import AsyncDatabase, Database
from nxdata.ddl import create_statements
from nxdata.errors import FilterError

Conn = psycopg.Connection[Any]


@pytest.fixture
def tables(conn: Conn, schema_name: str) -> tuple[Any, Any]:
    schema = nx.Schema(schema_name)

    @schema.table("Tag")
    class Tag(nx.IntIdColumns):
        name: str
        secret: str = "s"

    @schema.table("Doc")
    class Doc(nx.IdColumns):  # uuid keys
        title: str

    for statement in create_statements([schema]):
        conn.execute(statement)  # type: ignore[arg-type]
    return Tag, Doc


def test_rows_come_in_the_order_of_the_ids(db: Database, tables: tuple[Any, Any]) -> None:
    Tag, Doc = tables
    tags = nx.Repository(db, Tag)
    made = tags.create_all([{"name": n} for n in "abcde"], returning=True)
    ids = [t.id for t in made]
    with db.watch_queries() as events:
        found = tags.find_by_ids([ids[3], ids[0], 999_999, ids[3], ids[1]])
    assert [t.name for t in found] == ["d", "a", "b"]
    assert len(events) == 1 and "ANY" in events[0].sql
    assert tags.find_by_ids([]) == []
    narrowed = tags.find_by_ids(ids, {"where": {"name": {"neq": "c"}}, "fields": ["name"]})
    assert [t.name for t in narrowed] == ["a", "b", "d", "e"]
    assert all(t.id is msgspec.UNSET for t in narrowed)
    docs = nx.Repository(db, Doc)  # text keys: exact
    d1, d2 = docs.create({"title": "one"}), docs.create({"title": "two"})
    assert [d.title for d in docs.find_by_ids([d2.id, d1.id, d2.id.upper()])] == ["two", "one"]


def test_client_ids_are_checked(db: Database, tables: tuple[Any, Any]) -> None:
    Tag, _ = tables
    api = nx.Repository(db, Tag, policy=nx.FilterPolicy(fields=["id", "name"], max_list=3))
    with pytest.raises(FilterError, match="at most 3 ids"):
        api.find_by_ids([1, 2, 3, 4])
    with pytest.raises(FilterError):
        api.find_by_ids(["1"])  # strict: text is not an int key
    with pytest.raises(FilterError, match="in the order of ids"):
        api.find_by_ids([1], {"order": ["name"]})


async def test_async_find_by_ids(adb: AsyncDatabase, tables: tuple[Any, Any]) -> None:
    Tag, _ = tables
    tags = nx.AsyncRepository(adb, Tag)
    made = await tags.create_all([{"name": n} for n in "xyz"], returning=True)
    found = await tags.find_by_ids([made[2].id, made[0].id])
    assert [t.name for t in found] == ["z", "x"]


def test_paging_parts_are_refused_in_any_filter_form(db: Database, tables: tuple[Any, Any]) -> None:
    Tag, _ = tables
    tags = nx.Repository(db, Tag)
    made = tags.create_all([{"name": n} for n in "abcde"], returning=True)
    ids = [t.id for t in made]
    for bad, part in (
        ({"offset": 3}, "offset"),
        ({"limit": 1}, "limit"),
        ({"order": ["name"]}, "order"),
        (nx.Filter.from_json(b'{"limit": 1, "offset": 1}'), "limit"),
    ):
        with pytest.raises(FilterError) as info:
            tags.find_by_ids(ids, bad)
        assert info.value.part == part
