"""Shared models and set-up for the repository tests (no tests here).

`make_models(schema_name)` declares the test tables on a fresh `Schema`, so every test gets its own
tables in its own PostgreSQL schema.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
import psycopg

import nxdata as nx
from nxdata.ddl import create_statements


class Plan(enum.Enum):
    FREE = "free"
    PRO = "pro"


class Meta(msgspec.Struct):
    tier: str
    seats: int = 1


@dataclass
class Models:
    schema: nx.Schema
    Item: Any  # soft-deletable: id text, created/modified/deleted_at, metadata jsonb
    Entry: Any  # plain: bigint identity id, no soft delete


def make_models(schema_name: str) -> Models:
    schema = nx.Schema(schema_name)

    @schema.table("Item", uniques=[nx.Unique("code")])
    class Item(nx.CommonColumns):
        name: str
        code: str | None = None
        status: str = "active"
        amount: float | None = None
        score: int | None = None
        plan: Plan = Plan.FREE
        tags: list[str] | None = None
        meta: Meta | None = None

    @schema.table(
        "Entry",
        foreign_keys=[nx.ForeignKey("item_id", "Item")],
        checks=[nx.Check("qty >= 0", name="CK_Entry_qty")],
    )
    class Entry(nx.compose(nx.id_columns("bigint"), nx.timestamp_columns(soft_delete=False))):
        label: str
        qty: int = 0
        item_id: str | None = None
        note: Annotated[str | None, nx.Column(name="note_text")] = None

    return Models(schema, Item, Entry)


def create_tables(conn: psycopg.Connection[Any], models: Models) -> None:
    for statement in create_statements([models.schema]):
        conn.execute(statement)  # type: ignore[arg-type]
