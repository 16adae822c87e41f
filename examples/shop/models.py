"""The shop's tables, declared once: `nxdata diff` writes the migrations from them, the pytest
plugin builds the test database from those migrations, and the repositories read and write them.

The foreign keys are also the relations a filter may ``include``: an order's ``customer``
(belongs-to, from ``Order.customer_id``) and its ``items`` (has-many, named by ``inverse=``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

import msgspec
import nxdata as nx

shop = nx.Schema("example_shop")


@shop.table("Customer", uniques=[nx.Unique("email")])
class Customer(nx.CommonColumns):  # id, created_at, modified_at, deleted_at, metadata
    """Someone who orders."""

    email: str
    name: str
    note: Annotated[str, nx.Column(hidden=True)] = ""
    """Staff's internal note: never returned to API clients, and they cannot filter on it."""


@shop.table(
    "Product",
    # Unique among live rows only: a soft-deleted product's SKU can be used again.
    indexes=[nx.live_unique("sku"), nx.Index("name"), nx.Index("category"), nx.Index("price")],
    checks=[nx.Check("price >= 0")],
)
class Product(nx.CommonColumns):
    """Something for sale."""

    sku: str
    name: str
    price: nx.Money  # numeric(19, 4): a Decimal, never a float
    category: str = "misc"
    tags: list[str] = msgspec.field(default_factory=list)
    stock: Annotated[int, nx.Column(read_only=True)] = 0
    """Units in the warehouse: set by the stock import (trusted code), never by API clients."""


@shop.table(
    "Order",
    foreign_keys=[nx.ForeignKey("customer_id", Customer)],  # relation `customer`
    indexes=[nx.Index("customer_id"), nx.Index("created_at")],
)
class Order(nx.CommonColumns):
    """A customer's order."""

    customer_id: str
    status: Literal["new", "paid", "shipped"] = "new"
    total: Annotated[nx.Money, nx.Column(read_only=True)] = Decimal(0)
    """Computed from the items by the server."""


@shop.table(
    "OrderItem",
    foreign_keys=[
        # `inverse` names the has-many side: Order → `items` (default: `order_items`).
        nx.ForeignKey("order_id", Order, on_delete="cascade", inverse="items"),
        nx.ForeignKey("product_id", Product),
    ],
    indexes=[nx.Index("order_id"), nx.Index("product_id")],  # include loads by these keys
    checks=[nx.Check("quantity > 0")],
)
class OrderItem(nx.BigIntIdColumns):  # a bigint identity id; items are hard-deleted
    """One line of an order."""

    order_id: str
    product_id: str
    quantity: int
    unit_price: nx.Money
