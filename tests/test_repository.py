"""Sync repositories against a real PostgreSQL: every method, plain and soft-deletable."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import psycopg
import pytest
from pypika import Parameter, PostgreSQLQuery
from pypika import Table as PTable
from test_repository_support import Meta, Models, Plan, create_tables, make_models

import nxdata as nx
from nxdata import Database, Lock, Repository, SoftDeletableRepository
from nxdata.ddl import create_statements
from nxdata.errors import DeclarationError, FilterError, ValidationError

Conn = psycopg.Connection[Any]


@pytest.fixture
def models(conn: Conn, schema_name: str) -> Models:
    m = make_models(schema_name)
    create_tables(conn, m)
    return m


@pytest.fixture
def items(db: Database, models: Models) -> SoftDeletableRepository[Any]:
    return SoftDeletableRepository(db, models.Item)


@pytest.fixture
def entries(db: Database, models: Models) -> Repository[Any]:
    return Repository(db, models.Entry)


@pytest.fixture
def seeded(items: SoftDeletableRepository[Any]) -> list[Any]:
    rows = [
        {"name": "alpha", "status": "active", "amount": 1.5, "score": 3, "tags": ["a", "b"]},
        {"name": "beta", "status": "active", "amount": None, "score": 1, "plan": "pro"},
        {"name": "Gamma", "status": "paused", "amount": 10.0, "score": None, "tags": ["b"]},
        {"name": "delta", "status": "closed", "amount": 7.25, "score": 5, "code": "D"},
        {
            "name": "eps",
            "status": "active",
            "metadata": {"plan": {"tier": "pro"}, "n": 3},
            "meta": {"tier": "gold", "seats": 4},
        },
    ]
    return [items.create(r) for r in rows]


def names(rows: list[Any]) -> list[str]:
    return [r.name for r in rows]


def test_create_returns_typed_row(items: SoftDeletableRepository[Any]) -> None:
    row = items.create(
        {"name": "x", "plan": "pro", "meta": {"tier": "t"}, "metadata": {"k": [1, 2]}}
    )
    assert row.plan is Plan.PRO
    assert row.meta == Meta(tier="t", seats=1)
    assert row.metadata == {"k": [1, 2]}
    assert row.created_at == row.modified_at and row.deleted_at is None
    with pytest.raises(ValidationError, match="score"):
        items.create({"name": "y", "score": "many"})
    with pytest.raises(ValidationError):
        items.create({"name": "y", "bogus": 1})


def test_create_from_struct(entries: Repository[Any], models: Models) -> None:
    insert = models.schema.tables["Entry"].insert_type(label="s", qty=2)
    row = entries.create(insert)
    assert (row.label, row.qty, row.note) == ("s", 2, None)
    assert isinstance(row.id, int)


def test_find_operators(items: SoftDeletableRepository[Any], seeded: list[Any]) -> None:
    def find(where: dict[str, Any]) -> list[str]:
        return sorted(names(items.find({"where": where})))

    assert find({"status": "active"}) == ["alpha", "beta", "eps"]
    assert find({"amount": None}) == ["beta", "eps"]
    assert find({"amount": {"neq": None}}) == ["Gamma", "alpha", "delta"]
    assert find({"status": {"neq": "active"}}) == ["Gamma", "delta"]
    assert find({"score": {"gt": 1}}) == ["alpha", "delta"]
    assert find({"score": {"gte": 3}}) == ["alpha", "delta"]
    assert find({"score": {"lt": 3}}) == ["beta"]
    assert find({"score": {"lte": 3}}) == ["alpha", "beta"]
    assert find({"amount": {"between": [1.5, 7.25]}}) == ["alpha", "delta"]
    assert find({"name": {"inq": ["alpha", "delta", "zzz"]}}) == ["alpha", "delta"]
    assert find({"name": {"inq": []}}) == []
    assert find({"name": {"nin": []}}) == ["Gamma", "alpha", "beta", "delta", "eps"]
    assert find({"name": {"nin": ["alpha", "beta"]}}) == ["Gamma", "delta", "eps"]
    assert find({"name": {"like": "%ta"}}) == ["beta", "delta"]
    assert find({"name": {"nlike": "%a"}}) == ["eps"]
    assert find({"name": {"ilike": "g%"}}) == ["Gamma"]
    assert find({"name": {"nilike": "%A%"}}) == ["eps"]
    assert find({"name": {"regexp": "^[a-d]"}}) == ["alpha", "beta", "delta"]
    assert find({"name": {"iregexp": "^g"}}) == ["Gamma"]
    assert find({"plan": "pro"}) == ["beta"]
    assert find({"tags": {"contains": ["b"]}}) == ["Gamma", "alpha"]
    assert find({"tags": {"overlaps": ["a", "z"]}}) == ["alpha"]
    assert find({"created_at": {"lte": "2999-01-01T00:00:00Z"}}) == find({})


def test_and_or_nesting(items: SoftDeletableRepository[Any], seeded: list[Any]) -> None:
    where = {
        "or": [
            {"and": [{"status": "active"}, {"score": {"gte": 3}}]},
            {"and": [{"status": "closed"}, {"or": [{"code": "D"}, {"code": "E"}]}]},
        ]
    }
    assert sorted(names(items.find({"where": where}))) == ["alpha", "delta"]
    with pytest.raises(FilterError, match="empty or list"):  # not a silent "no WHERE"
        items.find({"where": {"or": []}})


def test_jsonb_paths(items: SoftDeletableRepository[Any], seeded: list[Any]) -> None:
    assert names(items.find({"where": {"metadata.plan.tier": "pro"}})) == ["eps"]
    assert names(items.find({"where": {"metadata.n": {"gte": 3}}})) == ["eps"]
    assert names(items.find({"where": {"metadata.plan.tier": {"inq": ["pro", "x"]}}})) == ["eps"]
    assert names(items.find({"where": {"metadata.plan.tier": {"ilike": "P%"}}})) == ["eps"]
    assert len(items.find({"where": {"metadata.plan": None}})) == 4
    assert names(items.find({"where": {"metadata": {"contains": {"n": 3}}}})) == ["eps"]


def test_order_with_nulls_limit_offset(
    items: SoftDeletableRepository[Any], seeded: list[Any]
) -> None:
    assert names(items.find({"order": ["score DESC NULLS LAST", "name"]})) == [
        "delta",
        "alpha",
        "beta",
        "Gamma",
        "eps",
    ]
    nulls_first = names(items.find({"order": ["score ASC NULLS FIRST", "name"]}))
    assert nulls_first == ["Gamma", "eps", "beta", "alpha", "delta"]
    assert names(items.find({"order": ["name"], "limit": 2, "offset": 1})) == ["alpha", "beta"]
    assert names(items.find({"order": ["name"], "skip": 4})) == ["eps"]
    assert items.find({"limit": 0}) == []


def test_fields_projection(items: SoftDeletableRepository[Any], seeded: list[Any]) -> None:
    rows = items.find({"fields": ["name", "meta"], "where": {"name": "eps"}})
    assert len(rows) == 1
    row = rows[0]
    assert row.name == "eps" and row.meta == Meta("gold", 4)
    assert row.id is msgspec.UNSET and row.status is msgspec.UNSET
    assert msgspec.json.decode(msgspec.json.encode(row)) == {
        "name": "eps",
        "meta": {"tier": "gold", "seats": 4},
    }
    one = items.find_by_id(seeded[0].id, {"fields": ["score"]})
    assert one is not None and one.score == 3 and one.name is msgspec.UNSET


def test_find_one_find_by_id_count_exists(
    items: SoftDeletableRepository[Any], seeded: list[Any]
) -> None:
    first = items.find_one({"where": {"status": "active"}, "order": ["name DESC"]})
    assert first is not None and first.name == "eps"
    assert items.find_one({"where": {"name": "nobody"}}) is None
    assert items.find_by_id(seeded[1].id) == seeded[1]
    assert items.find_by_id(seeded[1].id, {"where": {"status": "closed"}}) is None
    assert items.find_by_id("missing") is None
    assert items.count() == 5
    assert items.count({"status": "active"}) == 3
    assert items.exists({"name": "beta"}) is True
    assert items.exists({"name": "nobody"}) is False


def test_iterate_streams_in_batches(entries: Repository[Any]) -> None:
    assert entries.create_all([{"label": f"r{i}", "qty": i} for i in range(250)]) == 250
    seen = [r.qty for r in entries.iterate({"order": ["qty"]}, batch_size=40)]
    assert seen == list(range(250))
    stream = entries.iterate({"where": {"qty": {"gte": 100}}, "order": ["qty"]}, batch_size=7)
    assert next(stream).qty == 100
    stream.close()  # stops early: the connection goes back to the pool
    for _ in range(6):  # more than the pool size: nothing leaked
        assert entries.count() == 250


def test_create_all_copy_and_returning(entries: Repository[Any]) -> None:
    assert entries.create_all([]) == 0
    rows = entries.create_all(
        [{"label": "a", "qty": 1}, {"label": "b", "qty": 2, "note": "n"}], returning=True
    )
    assert [(r.label, r.qty, r.note) for r in rows] == [("a", 1, None), ("b", 2, "n")]
    assert entries.create_all({"label": f"c{i}"} for i in range(1000)) == 1000
    assert entries.count({"label": {"like": "c%"}}) == 1000
    with pytest.raises(ValidationError):
        entries.create_all([{"label": "ok"}, {"qty": 1}])  # second row misses label
    assert entries.count() == 1002


def test_update_by_id_sets_modified_at(items: SoftDeletableRepository[Any]) -> None:
    row = items.create({"name": "u"})
    updated = items.update_by_id(row.id, {"status": "closed", "meta": {"tier": "x"}})
    assert updated is not None
    assert (updated.status, updated.meta) == ("closed", Meta("x"))
    assert updated.modified_at > row.modified_at
    assert updated.created_at == row.created_at
    touched = items.update_by_id(row.id, {})
    assert touched is not None and touched.modified_at > updated.modified_at
    assert items.update_by_id("missing", {"status": "x"}) is None
    for immutable in ("id", "created_at", "modified_at"):
        with pytest.raises(ValidationError):
            items.update_by_id(row.id, {immutable: row.created_at})


def test_update_all_and_delete_all(entries: Repository[Any]) -> None:
    entries.create_all([{"label": f"l{i}", "qty": i} for i in range(6)])
    assert entries.update_all({"note": "big"}, {"qty": {"gte": 3}}) == 3
    changed = entries.update_all({"qty": 0}, {"note": "big"}, returning=True)
    assert sorted(r.label for r in changed) == ["l3", "l4", "l5"]
    assert entries.delete_all({"qty": 0}) == 4
    gone = entries.delete_all({"qty": {"inq": [1, 2]}}, returning=True)
    assert sorted(r.qty for r in gone) == [1, 2]
    assert entries.count() == 0


def test_plain_delete_by_id_deletes_for_real(entries: Repository[Any], conn: Conn) -> None:
    row = entries.create({"label": "d"})
    deleted = entries.delete_by_id(row.id)
    assert deleted is not None and deleted.id == row.id
    assert entries.delete_by_id(row.id) is None
    assert entries.find_by_id(row.id) is None


def test_soft_delete_hides_rows_everywhere(
    items: SoftDeletableRepository[Any], seeded: list[Any], conn: Conn, models: Models
) -> None:
    beta = seeded[1]
    deleted = items.delete_by_id(beta.id)
    assert deleted is not None and deleted.deleted_at is not None
    assert items.delete_by_id(beta.id) is None  # already deleted
    assert items.find_by_id(beta.id) is None
    assert "beta" not in names(items.find())
    assert items.find_one({"where": {"name": "beta"}}) is None
    assert items.count() == 4 and not items.exists({"name": "beta"})
    assert items.update_by_id(beta.id, {"status": "x"}) is None
    assert items.update_all({"status": "x"}, {"name": "beta"}) == 0
    assert [r.name for r in items.iterate({"where": {"name": "beta"}})] == []
    # the escape hatch
    found = items.find_by_id(beta.id, include_deleted=True)
    assert found is not None and found.deleted_at is not None
    assert items.count(include_deleted=True) == 5
    # the row is still there, only marked
    table = models.schema.tables["Item"].sql_name
    assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (5,)
    assert items.delete_all({"status": "active"}) == 2
    assert items.count() == 2
    restored = items.restore_by_id(beta.id)
    assert restored is not None and restored.deleted_at is None
    assert items.restore_by_id(beta.id) is None  # not deleted any more
    assert items.find_by_id(beta.id) is not None
    assert items.hard_delete_by_id(beta.id) is not None
    assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (4,)


def test_soft_repository_needs_soft_delete_column(db: Database, models: Models) -> None:
    with pytest.raises(DeclarationError, match="soft-delete column"):
        SoftDeletableRepository(db, models.Entry)


def test_upsert(entries: Repository[Any], items: SoftDeletableRepository[Any]) -> None:
    first = items.upsert({"name": "one", "code": "K", "score": 1}, conflict=["code"])
    assert first is not None and first.score == 1
    second = items.upsert({"name": "uno", "code": "K", "score": 2}, conflict=["code"])
    assert second is not None and second.id == first.id
    assert (second.name, second.score) == ("uno", 2)
    assert second.modified_at > first.modified_at
    only = items.upsert(
        {"name": "ignored", "code": "K", "score": 9}, conflict=["code"], update=["score"]
    )
    assert only is not None and (only.name, only.score) == ("uno", 9)
    assert items.upsert({"name": "n", "code": "K"}, conflict=["code"], update=[]) is None
    # a soft-deleted row that conflicts comes back to life
    items.delete_by_id(first.id)
    revived = items.upsert({"name": "back", "code": "K"}, conflict=["code"])
    assert revived is not None and revived.deleted_at is None and revived.name == "back"


def test_query_escape_hatch(entries: Repository[Any], models: Models) -> None:
    entries.create_all([{"label": f"q{i}", "qty": i} for i in range(5)])
    table = models.schema.tables["Entry"]
    t = PTable(table.name, schema=table.schema.name)
    q = PostgreSQLQuery.from_(t).select("*").where(t.qty > Parameter("%s")).orderby(t.qty)
    rows = entries.query(q, [2])
    assert [r.qty for r in rows] == [3, 4]
    assert isinstance(rows[0], models.Entry)
    partial = entries.query(
        psycopg.sql.SQL("SELECT label, note_text FROM {} WHERE qty = %s").format(
            psycopg.sql.Identifier(table.schema.name, table.name)
        ),
        [1],
    )
    assert partial[0].label == "q1" and partial[0].qty is msgspec.UNSET
    with pytest.raises(nx.ValidationError, match="does not have"):
        entries.query("SELECT 1 AS nope")


def test_transaction_argument_on_every_kind_of_call(
    db: Database, entries: Repository[Any], items: SoftDeletableRepository[Any]
) -> None:
    with pytest.raises(RuntimeError), db.transaction() as tx:
        row = entries.create({"label": "t"}, transaction=tx)
        assert entries.find_by_id(row.id, transaction=tx) is not None
        assert entries.find_by_id(row.id) is not None  # joins the block's transaction
        assert entries.find_by_id(row.id, transaction=nx.AUTOCOMMIT) is None  # others: not yet
        entries.create_all([{"label": "t2"}], transaction=tx)
        entries.create_all([{"label": "t3"}], returning=True, transaction=tx)
        entries.update_by_id(row.id, {"qty": 3}, transaction=tx)
        entries.update_all({"qty": 4}, all=True, transaction=tx)
        assert entries.count(transaction=tx) == 3
        assert entries.exists({"qty": 4}, transaction=tx)
        assert len(list(entries.iterate(transaction=tx))) == 3
        entries.delete_by_id(row.id, transaction=tx)
        entries.delete_all({"label": "t2"}, transaction=tx)
        entries.upsert({"label": "u"}, conflict=["id"], transaction=tx)
        assert len(entries.find(transaction=tx, lock=Lock.UPDATE)) == 2
        raise RuntimeError("roll it all back")
    assert entries.count() == 0
    with db.transaction() as tx:
        item = items.create({"name": "kept"}, transaction=tx)
        items.delete_by_id(item.id, transaction=tx)
        items.restore_by_id(item.id, transaction=tx)
    assert items.find_by_id(item.id) is not None


def test_filter_errors_from_the_repository(items: SoftDeletableRepository[Any]) -> None:
    with pytest.raises(FilterError, match=r"where\.status\.gtx"):
        items.find({"where": {"status": {"gtx": 1}}})
    with pytest.raises(FilterError, match="limit"):
        items.find({"limit": 5000})
    with pytest.raises(FilterError):
        items.count({"score": {"gt": "lots"}})


def test_kw_only_row_type(db: Database, conn: Conn, schema_name: str) -> None:
    schema = nx.Schema(schema_name)

    @schema.table("Kw")
    class Kw(msgspec.Struct, kw_only=True):
        id: Annotated[int, nx.Column(primary_key=True)]
        name: str = "x"
        doc: dict[str, Any] | None = None

    for statement in create_statements([schema]):
        conn.execute(statement)  # type: ignore[arg-type]
    kws = Repository(db, Kw)
    first = kws.create({"id": 1, "doc": {"a": 1}})
    assert first == Kw(id=1, doc={"a": 1})
    assert kws.create_all([{"id": 2}], returning=True) == [Kw(id=2)]
    assert kws.find({"order": ["id"]}) == [first, Kw(id=2)]
    assert kws.find({"fields": ["name"], "limit": 1})[0].id is msgspec.UNSET
    table = nx.table_of(Kw).sql_name
    assert kws.query(f"SELECT * FROM {table} ORDER BY id") == [first, Kw(id=2)]  # escape hatch
    assert kws.query(f"SELECT id FROM {table} WHERE id = 2") == [
        Kw(id=2, name=msgspec.UNSET, doc=msgspec.UNSET)  # type: ignore[arg-type]
    ]
