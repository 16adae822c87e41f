"""Reads sent together (``repo.later`` + ``db.read_together``): one connection, one round trip
for several reads of one request, results typed and decoded as the repository methods'; client
policies, scopes and errors as for the methods themselves; sync and async."""

from __future__ import annotations

from typing import Any

import msgspec
import psycopg
import pytest

import nxdata as nx
from nxdata import AsyncDatabase, Database
from nxdata.ddl import create_statements
from nxdata.errors import FilterError, QueryCanceled

Conn = psycopg.Connection[Any]


@pytest.fixture
def tables(conn: Conn, schema_name: str, db: Database) -> tuple[Any, Any]:
    schema = nx.Schema(schema_name)

    @schema.table("Person")
    class Person(nx.IntIdColumns):
        name: str
        tenant: str = "t1"

    @schema.table("Note", foreign_keys=[nx.ForeignKey("person_id", Person)])
    class Note(nx.IntIdColumns):
        person_id: int
        text: str
        tenant: str = "t1"

    for statement in create_statements([schema]):
        conn.execute(statement)  # type: ignore[arg-type]
    people = nx.Repository(db, Person).create_all(
        [{"name": "ann"}, {"name": "bob"}, {"name": "cy", "tenant": "t2"}], returning=True
    )
    nx.Repository(db, Note).create_all(
        [
            {"person_id": p.id, "text": f"{p.name} {i}", "tenant": p.tenant}
            for p in people
            for i in range(3)
        ]
    )
    return Person, Note


def test_several_reads_in_one_round_trip(db: Database, tables: tuple[Any, Any]) -> None:
    Person, Note = tables
    people, notes = nx.Repository(db, Person), nx.Repository(db, Note)
    [ann] = people.find({"where": {"name": "ann"}})
    with db.watch_queries() as events:
        person, found, total, any_cy, first, nobody = db.read_together(
            people.later.find_by_id(ann.id),
            notes.later.find({"where": {"person_id": ann.id}, "order": ["id"], "limit": 2}),
            notes.later.count({"person_id": ann.id}),
            people.later.exists({"name": "cy"}),
            people.later.find_one({"order": ["name DESC"]}),
            people.later.find_by_id(999_999),
        )
    assert len(events) == 1 and events[0].method == "read_together"
    assert person == ann
    assert [n.text for n in found] == ["ann 0", "ann 1"]
    assert total == 3 and any_cy is True and first.name == "cy" and nobody is None
    assert db.read_together() == ()
    # fields: unselected fields UNSET, as find gives them
    (names,) = db.read_together(people.later.find({"fields": ["name"], "order": ["name"]}))
    assert [p.name for p in names] == ["ann", "bob", "cy"] and names[0].id is msgspec.UNSET


def test_policies_scopes_and_errors_hold(db: Database, tables: tuple[Any, Any]) -> None:
    Person, Note = tables
    scoped = nx.Repository(db, Note, policy=nx.FilterPolicy(statement_timeout=0.2)).scoped(
        tenant="t2"
    )
    (t2_notes, count) = db.read_together(scoped.later.find(), scoped.later.count())
    assert {n.tenant for n in t2_notes} == {"t2"} and count == 3
    with pytest.raises(FilterError):
        scoped.later.find({"where": {"nope": 1}})  # checked when the read is made
    with pytest.raises(FilterError, match="takes no include"):
        nx.Repository(db, Person).later.find({"include": ["notes"]})
    with pytest.raises(TypeError, match="takes deferred reads"):
        db.read_together(nx.Repository(db, Person).find())  # type: ignore[call-overload]
    # a client policy's timeout applies to reads sent together
    slow = nx.Repository(db, Person, policy=nx.FilterPolicy(statement_timeout=0.2))
    with pytest.raises(QueryCanceled):
        db.read_together(
            slow.later.count({"name": "ann"}),
            nx.Repository(db, Person).later.exists({"name": "x"}),
            _sleepy(slow),
        )


def _sleepy(repo: Any) -> Any:
    """A deferred count made to take a second (its SQL wrapped in a pg_sleep)."""
    read = repo.later.count()
    slow = f"SELECT pg_sleep(1)::text || count(*) FROM ({read.statement.sql}) q"
    read.statement = read.statement._replace(sql=slow)
    return read


def test_inside_a_transaction_they_join_it(db: Database, tables: tuple[Any, Any]) -> None:
    Person, _ = tables
    people = nx.Repository(db, Person)
    with db.transaction():
        made = people.create({"name": "dee"})
        (found, count) = db.read_together(people.later.find_by_id(made.id), people.later.count())
        assert found == made and count == 4
        db.execute("SELECT 1")
    assert people.count() == 4


async def test_async_reads_together(adb: AsyncDatabase, tables: tuple[Any, Any]) -> None:
    Person, Note = tables
    people, notes = nx.AsyncRepository(adb, Person), nx.AsyncRepository(adb, Note)
    a, n = await adb.read_together(people.later.find({"order": ["id"]}), notes.later.count())
    assert [p.name for p in a] == ["ann", "bob", "cy"] and n == 9


def test_a_client_timeout_holds_inside_a_transaction_and_handles_are_checked(
    db: Database, tables: tuple[Any, Any], test_database_url: str
) -> None:
    Person, _ = tables
    client = nx.Repository(db, Person, policy=nx.FilterPolicy(statement_timeout=0.2))
    with pytest.raises(QueryCanceled), db.transaction():
        db.read_together(_sleepy(client), client.later.exists())
    with db.transaction():  # and it was put back: a slow trusted statement is not cancelled
        (n,) = db.read_together(client.later.count())
        assert n == 3
        assert db.fetch_value("SELECT pg_sleep(0.3)::text") == ""
    with Database(test_database_url, max_size=1) as other:
        foreign = nx.Repository(other, Person).later.count()
        with pytest.raises(TypeError, match="another database handle"):
            db.read_together(foreign)
