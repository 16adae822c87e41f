"""What an adversarial review of include / find_page / aggregate / find_as found, each pinned
on real PostgreSQL: soft-deleted related rows, a tenant scope crossing a table without its
column, join and page keys returned outside ``fields`` (or hidden), cursors keyed by columns a
client cannot read, float keys a cursor could not carry back, long keys, estimates capped by a
default limit, find_as types, aggregate names."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import msgspec
import psycopg
import pytest

import nxdata as nx
from nxdata import Database
from nxdata.ddl import create_statements
from nxdata.errors import DeclarationError, FilterError

Conn = psycopg.Connection[Any]


@dataclass
class Model:
    User: Any
    Post: Any
    Note: Any
    Score: Any


def make_model(name: str) -> tuple[nx.Schema, Model]:
    schema = nx.Schema(name)

    @schema.table("User")  # global: no tenant column
    class User(msgspec.Struct, kw_only=True):
        id: Annotated[int, nx.Column(primary_key=True)]
        name: str
        deleted_at: Annotated[datetime | None, nx.Column(soft_delete=True)] = None

    @schema.table(
        "Post",
        foreign_keys=[nx.ForeignKey("author_id", User, relation="author", inverse="posts")],
    )
    class Post(msgspec.Struct, kw_only=True):
        id: Annotated[int, nx.Column(primary_key=True)]
        author_id: int
        title: str
        tenant: str
        deleted_at: Annotated[datetime | None, nx.Column(soft_delete=True)] = None

    @schema.table(
        "Note",
        foreign_keys=[nx.ForeignKey("post_id", Post, relation="post", inverse="notes")],
    )
    class Note(msgspec.Struct, kw_only=True):
        id: Annotated[int, nx.Column(primary_key=True)]
        post_id: Annotated[int, nx.Column(hidden=True)]
        text: str

    @schema.table("Score")
    class Score(msgspec.Struct, kw_only=True):
        id: Annotated[int, nx.Column(primary_key=True)]
        value: float
        label: str = ""
        secret: Annotated[str, nx.Column(hidden=True)] = "x"

    return schema, Model(User, Post, Note, Score)


@pytest.fixture
def model(conn: Conn, schema_name: str, db: Database) -> Iterator[Model]:
    schema, m = make_model(schema_name)
    for statement in create_statements([schema]):
        conn.execute(statement)  # type: ignore[arg-type]
    nx.Repository(db, m.User).create_all([{"id": 1, "name": "ann"}, {"id": 2, "name": "gone"}])
    nx.Repository(db, m.Post).create_all(
        [
            {"id": 1, "author_id": 1, "title": "live", "tenant": "t1"},
            {"id": 2, "author_id": 1, "title": "deleted", "tenant": "t1"},
            {"id": 3, "author_id": 1, "title": "other tenant", "tenant": "t2"},
            {"id": 4, "author_id": 2, "title": "by a deleted author", "tenant": "t1"},
        ]
    )
    nx.Repository(db, m.Note).create_all([{"id": 1, "post_id": 1, "text": "n1"}])
    nx.SoftDeletableRepository(db, m.Post).delete_by_id(2)
    nx.SoftDeletableRepository(db, m.User).delete_by_id(2)
    yield m


def test_included_tables_never_show_soft_deleted_rows(db: Database, model: Model) -> None:
    users = nx.SoftDeletableRepository(db, model.User)
    [ann] = users.find({"include": ["posts"], "order": ["id"]})
    assert sorted(p.title for p in ann.posts) == ["live", "other tenant"]
    posts = nx.Repository(db, model.Post).find({"include": ["author"], "order": ["id"]})
    assert [(p.id, p.author and p.author.name) for p in posts] == [
        (1, "ann"),
        (2, "ann"),  # a plain repository shows the deleted post itself
        (3, "ann"),
        (4, None),  # its author is soft-deleted: not included
    ]


def test_a_tenant_scope_crosses_tables_without_its_column(db: Database, model: Model) -> None:
    policy = nx.FilterPolicy(include={"author": nx.FilterPolicy(include=["posts"])})
    api = nx.SoftDeletableRepository(db, model.Post, policy=policy).scoped(tenant="t1")
    [post] = api.find(
        {"where": {"id": 1}, "include": [{"relation": "author", "scope": {"include": ["posts"]}}]}
    )
    # ann wrote posts in t1 and t2: through the global User table, only t1's come back
    assert [p.tenant for p in post.author.posts] == ["t1"]
    trusted = nx.Repository(db, model.Post).scoped(tenant="t1")
    [post] = trusted.find(
        {"where": {"id": 1}, "include": [{"relation": "author", "scope": {"include": ["posts"]}}]}
    )
    assert {p.tenant for p in post.author.posts} == {"t1"}


def test_join_keys_outside_fields_or_hidden_are_not_returned(db: Database, model: Model) -> None:
    # a parent's fields leave out the foreign key the include joins on
    posts = nx.Repository(db, model.Post)
    [post] = posts.find({"where": {"id": 1}, "fields": ["id", "title"], "include": ["author"]})
    assert post.author_id is msgspec.UNSET and post.author.name == "ann"
    # a policy's fields do the same
    policy = nx.FilterPolicy(fields=["id", "title"], include=["author"])
    [post] = nx.Repository(db, model.Post, policy=policy).find(
        {"where": {"id": 1}, "include": ["author"]}
    )
    assert post.author_id is msgspec.UNSET
    # a has-many joins on a hidden column: the children do not carry it
    policy = nx.FilterPolicy(include=["notes"])
    [post] = nx.Repository(db, model.Post, policy=policy).find(
        {"where": {"id": 1}, "include": ["notes"]}
    )
    assert post.notes[0].post_id is msgspec.UNSET
    assert msgspec.json.decode(msgspec.json.encode(post.notes[0])) == {"id": 1, "text": "n1"}
    # a related policy's fields leave out the child's join column
    policy = nx.FilterPolicy(include={"notes": nx.FilterPolicy(fields=["text"])})
    [post] = nx.Repository(db, model.Post, policy=policy).find(
        {"where": {"id": 1}, "include": ["notes"]}
    )
    assert msgspec.json.decode(msgspec.json.encode(post.notes[0])) == {"text": "n1"}


def test_page_keys_outside_fields_are_not_returned(db: Database, model: Model) -> None:
    scores = nx.Repository(db, model.Score)
    scores.create_all([{"id": i, "value": float(i % 3)} for i in range(1, 8)])
    page = scores.find_page({"fields": ["label"], "order": ["value"], "limit": 3})
    assert all(r.id is msgspec.UNSET and r.value is msgspec.UNSET for r in page.items)
    assert page.next is not None


def test_client_pages_only_by_columns_it_can_read(db: Database, model: Model) -> None:
    nx.Repository(db, model.Score).create_all([{"id": i, "value": 1.0} for i in range(1, 4)])
    # the primary key is added to every page's order: hidden or unlisted, it cannot be a key
    policy = nx.FilterPolicy(fields=["value", "label"], order=["value"])
    with pytest.raises(FilterError, match="is not a field this client may read") as info:
        nx.Repository(db, model.Score, policy=policy).find_page({"order": ["value"]})
    assert info.value.part == "order" and info.value.field == "id"
    readable = nx.FilterPolicy(fields=["id", "value"], order=["value"])
    page = nx.Repository(db, model.Score, policy=readable).find_page(
        {"order": ["value"], "limit": 2}
    )
    assert len(page.items) == 2 and page.next is not None


def test_float_keys_that_json_cannot_hold_still_page(db: Database, model: Model) -> None:
    scores = nx.Repository(db, model.Score)
    specials = [float("-inf"), -1.5, 0.0, 2.5, float("inf"), float("nan")]
    scores.create_all([{"id": i, "value": v} for i, v in enumerate(specials, 1)])
    seen: list[int] = []
    after = None
    for _ in range(10):
        page = scores.find_page({"order": ["value"], "limit": 1, "after": after})
        seen += [r.id for r in page.items]
        after = page.next
        if after is None:
            break
    # PostgreSQL orders NaN above every number
    assert seen == [1, 2, 3, 4, 5, 6]


def test_a_long_text_key_makes_a_cursor_that_comes_back(db: Database, model: Model) -> None:
    scores = nx.Repository(db, model.Score)
    scores.create_all([{"id": i, "value": 1.0, "label": chr(96 + i) * 5000} for i in range(1, 5)])
    first = scores.find_page({"order": ["label"], "limit": 2})
    assert first.next is not None and len(first.next) > 4096
    second = scores.find_page({"order": ["label"], "limit": 2, "after": first.next})
    assert [r.id for r in second.items] == [3, 4]


def test_estimated_total_is_not_capped_by_a_default_limit(
    db: Database, model: Model, conn: Conn, schema_name: str
) -> None:
    scores = nx.Repository(db, model.Score)
    scores.create_all([{"id": i, "value": 1.0} for i in range(1, 501)])
    conn.execute(f'ANALYZE "{schema_name}"."Score"')
    policy = nx.FilterPolicy(fields=["id", "value"], default_limit=20)
    page = nx.Repository(db, model.Score, policy=policy).find_page(total="estimate")
    assert len(page.items) == 20 and page.total == 500


def test_find_as_checks_the_types_of_its_row_type(db: Database, model: Model) -> None:
    class Wrong(msgspec.Struct):
        id: str
        value: float

    class Right(msgspec.Struct):
        id: int
        value: float

    scores = nx.Repository(db, model.Score)
    scores.create({"id": 1, "value": 2.0})
    assert scores.find_as(Right) == [Right(id=1, value=2.0)]
    with pytest.raises(DeclarationError, match="Wrong does not fit the rows"):
        scores.find_as(Wrong)


def test_aggregate_takes_one_name_or_a_list(db: Database, model: Model) -> None:
    scores = nx.Repository(db, model.Score)
    scores.create_all([{"id": i, "value": float(i), "label": "ab"[i % 2]} for i in range(1, 5)])
    one = scores.aggregate(group_by="label", sum="value", order="label")
    assert [(g["label"], g["sum_value"]) for g in one] == [("a", 6.0), ("b", 4.0)]
    assert scores.aggregate(group_by=None) == [{"count": 4}]
    with pytest.raises(FilterError, match="names a column twice"):
        scores.aggregate(sum=["value", "value"])
