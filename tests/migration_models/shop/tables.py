"""The shop's tables: ``mt_catalog`` (products) and ``mt_sales`` (orders pointing into catalog)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

import nxdata as nx
from nxdata import BigInt, Column

catalog = nx.Schema("mt_catalog")
sales = nx.Schema("mt_sales")


@catalog.table(
    "Product",
    indexes=[
        nx.Index("tags", method="gin"),
        nx.live_unique("sku", name="UQ_Product_live_sku"),
    ],
    uniques=[nx.Unique("code")],
    checks=[nx.Check("price >= 0")],
    comment="Things we sell",
)
class Product(nx.CommonColumns):
    sku: str
    code: str
    price: int = 0
    tags: list[str] | None = None
    state: Literal["draft", "live"] = "draft"


@sales.table(
    "Order",
    foreign_keys=[nx.ForeignKey("product_code", Product, "code", on_delete="cascade")],
    indexes=[nx.Index("placed_at")],
)
class Order(nx.CommonColumns):
    number: Annotated[int, Column(sql_type="bigint", identity="by default")]
    product_code: str
    quantity: BigInt = 1
    placed_at: Annotated[datetime | None, Column(server_default="now()")] = None


@sales.table("Permission")
class Permission(msgspec.Struct):
    code: Annotated[str, Column(primary_key=True)]
    runs: int = 0
