"""The public API is typed: ``mypy --strict`` checks the usage written below, so `Repository[T]`
and its async twin stay generic in the row Struct and nothing a user touches turns into ``Any``.

The usage functions are never run; the test runs mypy on this file. ``assert_type`` fails on a type
that differs, ``Any`` included. Each ``# type: ignore[code]`` marks a call that must be *rejected*:
under ``--strict`` an ignore that silences nothing is itself an error, so a method whose result
decays to ``Any`` fails this test either way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, assert_type

import msgspec
import mypy.api

import nxdata as nx
import nxdata.observe
from nxdata import (
    AsyncDatabase,
    AsyncRepository,
    AsyncSoftDeletableRepository,
    AsyncTransaction,
    Database,
    Filter,
    Lock,
    Repository,
    SoftDeletableRepository,
    Transaction,
)

ROOT = Path(__file__).resolve().parent.parent

# -- typed usage, checked by mypy and never run ----------------------------------------------------

schema = nx.Schema("typing_t")


@schema.table("Row")
class Row(msgspec.Struct):
    id: Annotated[str, nx.Column(primary_key=True)]
    name: str
    score: int | None = None
    deleted_at: Annotated[datetime | None, nx.Column(soft_delete=True)] = None


@schema.table("Other")
class Other(msgspec.Struct):
    id: Annotated[int, nx.Column(primary_key=True)]


@schema.table("Product")
class Product(nx.CommonColumns):  # the column set is a real base class to mypy
    name: str


@schema.table("Event")
class Event(nx.BigIntIdColumns):
    kind: str


@schema.table("Happening")
class Happening(nx.EventColumns):  # compose(id_columns("bigint"), timestamps without delete)
    kind: str


class AuditColumns(msgspec.Struct):  # a set of one's own: the column types are typed aliases
    id: nx.Id7
    created_at: nx.CreatedAt


@schema.table("Audited")
class Audited(AuditColumns):
    note: str


class Summary(msgspec.Struct):
    id: str
    name: str


def service_usage(db: Database) -> None:
    happening = Repository(db, Happening).find_by_id(1)
    if happening is not None:
        assert_type(happening.id, int)
        assert_type(happening.modified_at, datetime)
    audited = Repository(db, Audited).find_one()
    if audited is not None:
        assert_type(audited.id, str)
        assert_type(audited.created_at, datetime)
    repo = Repository(db, Row)
    flt: nx.FilterDict = {"where": {"score": {"gt": 1}, "or": [{"name": "a"}]}, "limit": 5}
    assert_type(repo.find(flt), list[Row])
    assert_type(repo.find_as(Summary, flt), list[Summary])
    assert_type(repo.find_page(flt, total="exact"), nx.Page[Row])
    assert_type(repo.find_page(flt).next, str | None)
    assert_type(repo.aggregate(group_by=["name"], sum=["score"]), list[dict[str, Any]])
    assert_type(repo.query("SELECT 1 AS id, 'a' AS name", row_type=Summary), list[Summary])
    assert_type(nx.rows_as(Summary, repo.find()), list[Summary])
    assert_type(repo.create(b'{"id": "x", "name": "a"}'), Row)  # JSON bytes, validated
    assert_type(repo.update_by_id("x", '{"name": "b"}'), Row | None)
    remove = db.add_query_hook(lambda event: print(event.duration, event.method))
    assert_type(remove(), None)
    with db.watch_queries() as events:
        assert_type(events, list[nx.observe.QueryEvent])
    # What must be rejected:
    typo: nx.FilterDict = {"limitt": 5}  # type: ignore[typeddict-unknown-key]
    operator: nx.FilterDict = {"where": {"score": {"gtx": 1}}}  # type: ignore[dict-item]
    del typo, operator


def column_set_usage(db: Database) -> None:
    product = Repository(db, Product).find_by_id("x")
    if product is not None:
        assert_type(product.id, str)
        assert_type(product.created_at, datetime)
        assert_type(product.deleted_at, datetime | None)
        assert_type(product.name, str)
    event = Repository(db, Event).find_by_id(1)
    if event is not None:
        assert_type(event.id, int)


def sync_usage(db: Database, tx: Transaction, atx: AsyncTransaction) -> None:
    repo = Repository(db, Row)
    assert_type(repo, Repository[Row])
    assert_type(repo.find({"where": {"name": "a"}, "limit": 5}), list[Row])
    assert_type(repo.find(Filter.from_json(b"{}"), lock=Lock.UPDATE, transaction=tx), list[Row])
    assert_type(repo.find_one(), Row | None)
    assert_type(repo.find_by_id("x"), Row | None)
    assert_type(repo.find_by_id(("x", 1), {"fields": ["name"]}), Row | None)
    assert_type(repo.count({"score": {"gt": 1}}), int)
    assert_type(repo.exists(), bool)
    assert_type(repo.iterate(batch_size=10), Iterator[Row])
    assert_type(repo.query("SELECT * FROM typing_t.Row"), list[Row])
    assert_type(repo.create({"id": "x", "name": "a"}), Row)
    assert_type(repo.create(Row(id="x", name="a")), Row)
    assert_type(repo.create_all([{"id": "x", "name": "a"}]), int)
    assert_type(repo.create_all([{"id": "x", "name": "a"}], returning=True), list[Row])
    assert_type(repo.update_by_id("x", {"name": "b"}), Row | None)
    assert_type(repo.update_all({"name": "b"}, {"score": None}), int)
    assert_type(repo.update_all({"name": "b"}, all=True, returning=True), list[Row])
    assert_type(repo.delete_by_id("x"), Row | None)
    assert_type(repo.delete_all(all=True), int)
    assert_type(repo.delete_all(returning=True, all=True), list[Row])
    assert_type(repo.upsert({"id": "x", "name": "a"}, conflict=["id"]), Row | None)

    row = repo.find_by_id("x")
    if row is not None:
        assert_type(row.name, str)
        assert_type(row.score, int | None)
    rows: list[Row] = repo.find()
    maybe: Row | None = repo.find_one()

    soft = SoftDeletableRepository(db, Row)
    assert_type(soft, SoftDeletableRepository[Row])
    assert_type(soft.find(include_deleted=True), list[Row])
    assert_type(soft.restore_by_id("x"), Row | None)
    assert_type(soft.hard_delete_by_id("x"), Row | None)
    assert_type(soft.delete_by_id("x"), Row | None)
    assert_type(soft.delete_all(all=True), int)
    assert_type(soft.delete_all(returning=True, all=True), list[Row])
    plain: Repository[Row] = soft  # a soft repository is a repository of the same rows

    with db.transaction(isolation="serializable") as block:
        assert_type(block, Transaction)
    assert_type(db.begin_transaction(read_only=True), Transaction)

    # What must be rejected:
    wrong_row: Other | None = repo.find_by_id("x")  # type: ignore[assignment]
    wrong_list: list[Other] = repo.find()  # type: ignore[assignment]
    wrong_repo: Repository[Other] = repo  # type: ignore[assignment]
    wrong_count: list[Row] = repo.create_all([])  # type: ignore[assignment]
    not_a_row: int = repo.create({"name": "a"})  # type: ignore[assignment]
    Repository(db, int)  # type: ignore[type-var]  # rows are Structs
    repo.find(lock="update")  # type: ignore[arg-type]
    repo.find(transaction=atx)  # type: ignore[arg-type]  # an async transaction in sync code
    repo.find(None, Lock.UPDATE)  # type: ignore[call-arg]  # lock= is keyword-only
    repo.create_all([], returning=True, transaction=tx, batch=1)  # type: ignore[call-overload]
    del rows, maybe, plain, wrong_row, wrong_list, wrong_repo, wrong_count, not_a_row


async def async_usage(db: AsyncDatabase, tx: AsyncTransaction, stx: Transaction) -> None:
    repo = AsyncRepository(db, Row)
    assert_type(repo, AsyncRepository[Row])
    assert_type(await repo.find({"order": ["name"]}, lock=Lock.SHARE, transaction=tx), list[Row])
    assert_type(await repo.find_one(), Row | None)
    assert_type(await repo.find_by_id("x"), Row | None)
    assert_type(await repo.count(), int)
    assert_type(await repo.exists(), bool)
    assert_type(repo.iterate(), AsyncIterator[Row])
    assert_type(await repo.query("SELECT 1"), list[Row])
    assert_type(await repo.create({"id": "x", "name": "a"}), Row)
    assert_type(await repo.create_all([]), int)
    assert_type(await repo.create_all([], returning=True), list[Row])
    assert_type(await repo.update_by_id("x", {}), Row | None)
    assert_type(await repo.update_all({}, all=True, returning=True), list[Row])
    assert_type(await repo.delete_by_id("x"), Row | None)
    assert_type(await repo.delete_all(all=True), int)
    assert_type(await repo.upsert({"id": "x", "name": "a"}, conflict=["id"]), Row | None)
    async for row in repo.iterate():
        assert_type(row, Row)

    soft = AsyncSoftDeletableRepository(db, Row)
    assert_type(await soft.restore_by_id("x"), Row | None)
    assert_type(await soft.delete_all(returning=True, all=True), list[Row])

    async with db.transaction() as block:
        assert_type(block, AsyncTransaction)
    assert_type(await db.begin_transaction(), AsyncTransaction)

    wrong_row: Other | None = await repo.find_by_id("x")  # type: ignore[assignment]
    wrong_repo: AsyncRepository[Other] = repo  # type: ignore[assignment]
    sync_repo: Repository[Row] = repo  # type: ignore[assignment]
    await repo.find(transaction=stx)  # type: ignore[arg-type]
    del wrong_row, wrong_repo, sync_repo


# -- the test --------------------------------------------------------------------------------------


def test_public_api_is_typed() -> None:
    stdout, stderr, status = mypy.api.run(
        [
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--strict",
            "--cache-dir",
            str(ROOT / ".mypy_cache"),
            __file__,
        ]
    )
    assert status == 0, stdout + stderr
    assert "no issues found in 1 source file" in stdout
