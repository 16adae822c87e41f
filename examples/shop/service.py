"""What the HTTP layer needs besides routes, for any framework: the client policies, the
repositories built once per application, and the parsing of the query string.

Both apps (`shop.app` on Litestar, `shop_fastapi` on FastAPI) use this module, so the
resources behave the same whichever framework serves them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import msgspec
import nxdata as nx
from nxdata.errors import NotFoundError

from .models import Customer, Order, OrderItem, Product

__all__ = [
    "DEFAULT_ORDER",
    "MIGRATIONS",
    "ORDERS",
    "PRODUCTS",
    "OrderView",
    "Shop",
    "filter_from_query",
    "found",
    "include_from_query",
]

R = TypeVar("R")

MIGRATIONS = Path(__file__).parent / "migrations"
"""The migration files, written by `nxdata diff` from `shop.models` (see examples/README.md)."""

# Policies compare by identity (they key the statement cache): one per resource, built once.
PRODUCTS = nx.FilterPolicy(
    filter=["sku", "name", "price", "category", "tags", "stock", "created_at"],
    # NOT NULL columns only: a page's cursor needs them. (find_page adds the primary key to
    # every order itself, to make keys unique: it need not be listed.)
    order=["name", "price", "created_at"],
    fields=["id", "sku", "name", "price", "category", "tags", "stock", "created_at"],
    default_limit=20,
    max_limit=100,
)
"""What clients may do with products: test, sort on and see these columns; 20 rows a page
unless they ask for up to 100."""

ORDERS_PER_PAGE = 100

ORDERS = nx.FilterPolicy(
    filter=["customer_id", "status", "total", "created_at"],
    order=["created_at", "total"],
    fields=["id", "customer_id", "status", "total", "created_at"],
    default_limit=20,
    max_limit=ORDERS_PER_PAGE,
    include={
        # Each relation's rows run under a policy of their own. The customer's hidden `note`
        # is unknown to every client policy: `fields` here only narrows what else is shown.
        # (A belongs-to is one row per order: no limit applies to it.)
        "customer": nx.FilterPolicy(fields=["id", "name", "email"]),
        # A has-many's limit applies to each order's items.
        "items": nx.FilterPolicy(
            fields=["id", "product_id", "quantity", "unit_price"], default_limit=100
        ),
    },
)
"""Orders, and the relations a client may include with them."""

DEFAULT_ORDER = ["name"]
"""The order of a product page whose filter names none: the primary key alone (what nxdata
uses otherwise) is a random UUID."""


class OrderView(Order, kw_only=True):
    """An order with the relations a client may include, typed (`nx.rows_as`): what
    ``include`` did not ask for stays UNSET and is left out of the JSON."""

    customer: Customer | msgspec.UnsetType | None = msgspec.UNSET
    items: list[OrderItem] | msgspec.UnsetType = msgspec.UNSET


class Shop:
    """The repositories of one application, built at start-up: a repository keeps its
    statement cache, so one per request would compile every filter again."""

    def __init__(self, db: nx.AsyncDatabase) -> None:
        # Soft-deletable: DELETE sets deleted_at, and reads never see the row again.
        self.products = nx.AsyncSoftDeletableRepository(db, Product, policy=PRODUCTS)
        self.orders = nx.AsyncRepository(db, Order, policy=ORDERS)


def filter_from_query(
    text: str | None, after: str | None = None, *, default_order: list[str] | None = None
) -> nx.Filter:
    """The filter of ``?filter=<json>&after=<cursor>``: a `FilterError` (a 400) when the JSON is
    malformed. The repository checks the rest against its policy when it runs it.

    ``after`` is also a key of the filter itself; the separate parameter lets a client fetch
    the next page by adding ``&after=<next>`` to the URL it already has."""
    flt = nx.Filter.from_json(text) if text else nx.Filter()
    if after is not None:
        flt = msgspec.structs.replace(flt, after=after)
    if flt.order is None and default_order is not None:
        flt = msgspec.structs.replace(flt, order=default_order)
    return flt


def include_from_query(text: str | None) -> list[str | dict[str, object]] | None:
    """``?include=items,customer`` as a filter's ``include`` (None when there is none); the
    repository's policy decides which relations a client may name."""
    names: list[str | dict[str, object]] = [n.strip() for n in (text or "").split(",") if n]
    return names or None


def found(row: R | None, kind: str, id: str) -> R:
    """`row`, or a `NotFoundError` (a 404) when the repository found none."""
    if row is None:
        raise NotFoundError(f"no {kind} {id}", id=id)
    return row
