"""`RowDecoder` without a database: many() decodes exactly as one() does, on every path."""

from __future__ import annotations

import enum
from typing import Any

import msgspec

import nxdata as nx
from nxdata.rows import RowDecoder

schema = nx.Schema("rows_t")


class Tier(enum.Enum):
    FREE = "free"
    PRO = "pro"


class Meta(msgspec.Struct, frozen=True):
    seats: int
    tags: list[str] = []


@schema.table("Account")
class Account(nx.compose(nx.id_columns("bigint"))):
    name: str
    meta: Meta | None = None  # typed jsonb
    doc: dict[str, Any] | None = None  # free jsonb
    tier: Tier = Tier.FREE  # enum


@schema.table("Checked")
class Checked(nx.compose(nx.id_columns("bigint"))):
    doc: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        # must see the decoded value: such types skip the set-in-place path
        assert self.doc is None or isinstance(self.doc, dict)


ROWS = [
    (1, "a", '{"seats": 2, "tags": ["x"]}', '{"k": [1, null]}', "pro"),
    (2, "b", None, None, "free"),
    (3, "c", '{"seats": 0}', "{}", "free"),
]


def test_many_matches_one_for_full_rows() -> None:
    table = Account.__nxdata_table__  # type: ignore[attr-defined]
    decoder = RowDecoder(Account, table.columns, table.columns)
    rows = decoder.many(ROWS)
    assert rows == [decoder.one(r) for r in ROWS]
    assert rows[0].meta == Meta(2, ["x"]) and rows[0].doc == {"k": [1, None]}
    assert rows[0].tier is Tier.PRO and rows[1].meta is None and rows[1].doc is None
    assert decoder.many([]) == []


def test_many_matches_one_for_projections() -> None:
    table = Account.__nxdata_table__  # type: ignore[attr-defined]
    picked = [c for c in table.columns if c.field in ("doc", "name")]
    decoder = RowDecoder(Account, table.columns, picked)
    rows = decoder.many([("a", '{"k": 1}'), ("b", None)])
    assert rows == [decoder.one(("a", '{"k": 1}')), decoder.one(("b", None))]
    assert rows[0].doc == {"k": 1} and rows[0].meta is msgspec.UNSET


def test_post_init_sees_decoded_values() -> None:
    table = Checked.__nxdata_table__  # type: ignore[attr-defined]
    decoder = RowDecoder(Checked, table.columns, table.columns)
    assert [r.doc for r in decoder.many([(1, '{"a": 1}'), (2, None)])] == [{"a": 1}, None]
