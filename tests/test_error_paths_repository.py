"""Misuse of the repository API fails at the call with an error naming the problem, never deep
inside psycopg or msgspec, and never with a wrong result."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from test_repository_support import Models, Plan, create_tables, make_models

import nxdata as nx
from nxdata import AsyncDatabase, AsyncRepository, Database, Filter, Lock, Repository
from nxdata.ddl import create_statements
from nxdata.errors import FilterError, UniqueViolation, ValidationError

Conn = psycopg.Connection[Any]


@pytest.fixture
def models(conn: Conn, schema_name: str) -> Models:
    m = make_models(schema_name)
    create_tables(conn, m)
    return m


# -- query(): the escape hatch checks what comes back ----------------------------------------------


def test_query_checks_returned_values_against_the_columns(db: Database, models: Models) -> None:
    items = Repository(db, models.Item)
    name = items.table.qualified_name
    # right values convert as find() would: enum, typed jsonb
    [row] = items.query("""SELECT 'pro' AS plan, '{"tier": "gold"}'::jsonb AS meta""")
    assert row.plan is Plan.PRO and row.meta.tier == "gold"
    cases = [
        ("SELECT 'abc' AS score", "score", "Expected `int`, got `str`"),
        ("""SELECT '{"tier": 5}'::jsonb AS meta""", "meta", "Expected `str`, got `int`"),
        ("SELECT 'zombie' AS plan", "plan", "Invalid enum value 'zombie'"),
    ]
    for sql, field, reason in cases:
        with pytest.raises(ValidationError, match=reason) as info:
            items.query(sql)
        assert (info.value.table, info.value.field) == (name, field)
        assert f"column {field!r}" in str(info.value)


def test_query_names_a_column_the_table_lacks(db: Database, models: Models) -> None:
    items = Repository(db, models.Item)
    with pytest.raises(ValidationError, match=r"returns column 'junk'.*has run") as info:
        items.query("SELECT 1 AS junk")
    assert info.value.field == "junk"
    with pytest.raises(TypeError, match="not int"):
        items.query(123)  # type: ignore[arg-type]


# -- arguments -------------------------------------------------------------------------------------


def test_iterate_batch_size_must_be_a_positive_int(db: Database, models: Models) -> None:
    items = Repository(db, models.Item)
    items.create_all([{"name": f"n{i}"} for i in range(3)])
    for bad in (0, -1, "10", 2.0, None):
        with pytest.raises(FilterError, match="batch_size must be a positive integer") as info:
            list(items.iterate({}, batch_size=bad))  # type: ignore[arg-type]
        assert info.value.part == "batch_size"
    assert len(list(items.iterate({}, batch_size=1))) == 3


def test_find_by_id_refuses_order_and_paging(db: Database, models: Models) -> None:
    items = Repository(db, models.Item)
    row = items.create({"name": "a"})
    for key, value in (("order", ["name"]), ("limit", 5), ("offset", 1), ("skip", 1)):
        with pytest.raises(
            FilterError, match="find_by_id takes where, fields and include only"
        ) as info:
            items.find_by_id(row.id, {key: value})
        assert info.value.part == ("offset" if key == "skip" else key)
    assert items.find_by_id(row.id, {"where": {"name": "a"}, "fields": ["name"]}) is not None


def test_lock_must_be_a_lock(db: Database, models: Models) -> None:
    items = Repository(db, models.Item)
    with db.transaction() as tx, pytest.raises(TypeError, match="lock= takes a Lock"):
        items.find({}, lock="FOR UPDATE", transaction=tx)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="one of 'update', 'no key update'"):
        Lock("exclusive")  # type: ignore[arg-type]


def test_create_all_takes_many_rows(db: Database, models: Models) -> None:
    items = Repository(db, models.Item)
    for bad in (5, {"name": "a"}, b'[{"name": "a"}]', "rows", items.table.insert_type(name="a")):
        with pytest.raises(TypeError, match="create_all takes many rows"):
            items.create_all(bad)  # type: ignore[arg-type]
    assert items.count() == 0


def test_offset_and_skip_together_are_refused(db: Database, models: Models) -> None:
    items = Repository(db, models.Item)
    for f in ({"offset": 1, "skip": 2}, Filter(offset=1, skip=2)):
        with pytest.raises(FilterError, match="offset or skip") as info:
            items.find(f)
        assert info.value.part == "skip"
    skipped = items.compile({"skip": 2})
    assert skipped.params == [2] and "OFFSET %s" in skipped.sql


def test_filter_from_json_wants_text(db: Database) -> None:
    with pytest.raises(FilterError, match="bytes or str, not NoneType"):
        Filter.from_json(None)  # type: ignore[arg-type]
    assert Filter.from_json('{"limit": 2}').limit == 2


# -- upsert conflict targets -----------------------------------------------------------------------


def test_upsert_conflict_targets(db: Database, conn: Conn, schema_name: str) -> None:
    schema = nx.Schema(schema_name)

    @schema.table("Member", indexes=[nx.live_unique("email")], uniques=[nx.Unique("handle")])
    class Member(nx.CommonColumns):
        email: str
        handle: str
        name: str = ""

    for statement in create_statements([schema]):
        conn.execute(statement)  # type: ignore[arg-type]
    members = nx.SoftDeletableRepository(db, Member)
    first = members.upsert({"email": "a@x.io", "handle": "a", "name": "A"}, conflict="handle")
    assert first is not None
    # a partial unique index (live rows only) is matched with its WHERE
    again = members.upsert({"email": "a@x.io", "handle": "b", "name": "B"}, conflict=["email"])
    assert again is not None and again.id == first.id and again.name == "B"
    with pytest.raises(FilterError, match=r"no primary key, unique constraint .* \(name\)") as info:
        members.upsert({"email": "c@x.io", "handle": "c", "name": "C"}, conflict=["name"])
    assert info.value.part == "conflict" and "(email)" in str(info.value)
    with pytest.raises(FilterError, match="unknown column 'nope'"):
        members.upsert({"email": "c@x.io", "handle": "c"}, conflict="nope")
    # a deleted row no longer holds its email: a new row takes it
    members.delete_by_id(first.id)
    other = members.upsert({"email": "a@x.io", "handle": "d"}, conflict="email")
    assert other is not None and other.id != first.id
    with pytest.raises(UniqueViolation):
        members.upsert({"email": "z@x.io", "handle": "d"}, conflict="email")


# -- async -----------------------------------------------------------------------------------------


async def test_async_query_and_iterate_checks(adb: AsyncDatabase, models: Models) -> None:
    items = AsyncRepository(adb, models.Item)
    with pytest.raises(ValidationError, match="Invalid enum value") as info:
        await items.query("SELECT 'zombie' AS plan")
    assert info.value.field == "plan"
    with pytest.raises(FilterError, match="batch_size"):
        async for _ in items.iterate({}, batch_size=0):
            pass


def test_a_filter_passed_where_a_where_dict_is_expected(db: Database, models: Models) -> None:
    items = Repository(db, models.Item)
    with pytest.raises(FilterError, match="'where' is a filter key: this method takes a where"):
        items.count({"where": {"name": "a"}})
    with pytest.raises(FilterError, match="'limit' is a filter key"):
        items.delete_all({"limit": 5})
    assert items.count({"name": "a"}) == 0
