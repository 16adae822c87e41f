"""The shop's HTTP API on Litestar.

Litestar encodes msgspec Structs itself, so handlers return nxdata's rows and pages as they
come: a row under a client policy carries only the policy's ``fields`` (the others are UNSET,
which msgspec leaves out of the JSON). Run it with ``uvicorn shop.app:app`` (examples/README.md).

- ``GET /products?filter=<json>&after=<cursor>``: a page (``items``, ``next``, ``total``);
- ``GET /products/{id}``, ``POST /products``, ``PATCH /products/{id}``, ``DELETE /products/{id}``;
- ``GET /orders?filter=<json>`` and ``GET /orders/{id}?include=items,customer``.

Errors are problem details (`shop.problems`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import nxdata as nx
from litestar import Litestar, Request, Response, delete, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException
from litestar.params import FromPath, JSONBody, QueryParameter
from nxdata.migrations import bootstrap_migrations_async

from .models import Product
from .problems import MEDIA_TYPE, Problem, plain, problem_for
from .service import (
    DEFAULT_ORDER,
    MIGRATIONS,
    OrderView,
    Shop,
    filter_from_query,
    found,
    include_from_query,
)

__all__ = ["app", "create_app"]

ShopDep = NamedDependency[Shop]  # injected by name: `dependencies={"shop": ...}` below

# `filter` is a builtin's name: the handlers take the query's "filter" as `filter_`.
FilterQuery = Annotated[
    str | None, QueryParameter(name="filter", description="a filter as JSON (README: Filters)")
]
AfterQuery = Annotated[str | None, QueryParameter(description="the previous page's `next`")]
IncludeQuery = Annotated[
    str | None, QueryParameter(description="relations to include, comma-separated: items,customer")
]


# -- products -------------------------------------------------------------------------------------


@get("/products")
async def list_products(
    shop: ShopDep, filter_: FilterQuery = None, after: AfterQuery = None
) -> nx.Page[Product]:
    flt = filter_from_query(filter_, after, default_order=DEFAULT_ORDER)
    return await shop.products.find_page(flt, total="exact")


@get("/products/{product_id:str}")
async def get_product(shop: ShopDep, product_id: FromPath[str]) -> Product:
    return found(await shop.products.find_by_id(product_id), "product", product_id)


@post("/products")
async def create_product(shop: ShopDep, data: JSONBody[dict[str, Any]]) -> Response[Product]:
    # The body is validated by the repository against the table's client insert type: a
    # server-managed (id, created_at...) or read-only (stock) field is a ValidationError.
    product = await shop.products.create(data)
    return Response(product, status_code=201, headers={"Location": f"/products/{product.id}"})


@patch("/products/{product_id:str}")
async def update_product(
    shop: ShopDep, product_id: FromPath[str], data: JSONBody[dict[str, Any]]
) -> Product:
    product = await shop.products.update_by_id(product_id, data)
    return found(product, "product", product_id)


@delete("/products/{product_id:str}")  # 204 No Content
async def delete_product(shop: ShopDep, product_id: FromPath[str]) -> None:
    found(await shop.products.delete_by_id(product_id), "product", product_id)


# -- orders ---------------------------------------------------------------------------------------


@get("/orders")
async def list_orders(
    shop: ShopDep,
    filter_: FilterQuery = None,
    after: AfterQuery = None,
    include: IncludeQuery = None,
) -> nx.Page[OrderView]:
    flt = filter_from_query(filter_, after, default_order=["created_at DESC"])  # newest first
    if include is not None:  # the filter's own "include" works too; the parameter is shorter
        flt.include = include_from_query(include)
    page = await shop.orders.find_page(flt)  # no total: a count per page is a cost to choose
    # Each row carries its included relations in fields typed Any: rows_as gives them types.
    return nx.Page(items=nx.rows_as(OrderView, page.items), next=page.next, total=page.total)


@get("/orders/{order_id:str}")
async def get_order(
    shop: ShopDep, order_id: FromPath[str], include: IncludeQuery = None
) -> OrderView:
    order = await shop.orders.find_by_id(order_id, {"include": include_from_query(include)})
    return nx.rows_as(OrderView, [found(order, "order", order_id)])[0]


# -- errors ---------------------------------------------------------------------------------------


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> Response[Problem]:
    return Response(problem, status_code=problem.status, media_type=MEDIA_TYPE, headers=headers)


def on_error(_: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    """nxdata's errors and anything unexpected (a 500 that says nothing of the cause)."""
    problem, headers = problem_for(exc)
    return problem_response(problem, headers)


def on_http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    """Litestar's own errors (unknown route, a body that is not JSON...), as problems too."""
    problem = plain(exc.status_code)
    if exc.detail != problem.title:
        problem.detail = exc.detail
    return problem_response(problem, exc.headers)


# -- the application --------------------------------------------------------------------------


def provide_shop(state: State) -> Shop:
    """The `shop` dependency of the handlers: the repositories, built once per application."""
    shop: Shop = state.shop
    return shop


def create_app(db: nx.AsyncDatabase | None = None, *, url: str | None = None) -> Litestar:
    """The application on `db` (opened and closed by the caller: the tests' session database),
    or on a database it opens at start-up from `url` (default: ``NXDATA_DATABASE_URL``, then
    ``DATABASE_URL``) after applying the pending migrations, and closes at shutdown."""

    @asynccontextmanager
    async def database(app: Litestar) -> AsyncIterator[None]:
        if db is not None:
            yield
            return
        async with nx.AsyncDatabase(url, name="shop") as own:
            # Every replica runs this at start-up; an advisory lock makes one apply the files
            # while the others wait and find nothing left to do.
            await bootstrap_migrations_async(own, migrations_dir=MIGRATIONS, models="shop.models")
            app.state.shop = Shop(own)
            yield

    return Litestar(
        route_handlers=[
            list_products,
            get_product,
            create_product,
            update_product,
            delete_product,
            list_orders,
            get_order,
        ],
        dependencies={"shop": Provide(provide_shop, sync_to_thread=False)},
        exception_handlers={Exception: on_error, HTTPException: on_http_error},
        lifespan=[database],
        state=State({"shop": Shop(db)} if db is not None else {}),
    )


app = create_app()
"""For ``uvicorn shop.app:app``: nothing connects before the lifespan starts."""
