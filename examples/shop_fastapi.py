"""Recipe: the shop's products resource on FastAPI, with the Litestar app's policies and errors.

What differs from Litestar (`shop.app`):

- FastAPI serialises return values with ``jsonable_encoder`` (pydantic), which knows nothing of
  msgspec Structs: the handlers return a `MsgspecResponse`, which encodes with
  ``msgspec.json.encode`` (UNSET fields left out, Decimals as strings, as in Litestar).
- The body is taken as a ``dict``: nxdata validates it against the table's client insert or
  update type, so there is no pydantic model to keep in step with ``shop.models``.
- Errors become problem details in exception handlers. For ``Exception`` (a bug), Starlette's
  ServerErrorMiddleware sends the handler's response and then raises the error again, for the
  server to log: by design.

Run it with ``uvicorn shop_fastapi:app`` from examples/.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Annotated, Any

import msgspec
import nxdata as nx
from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from nxdata.migrations import bootstrap_migrations_async
from starlette.exceptions import HTTPException

from shop.problems import MEDIA_TYPE, Problem, plain, problem_for
from shop.service import DEFAULT_ORDER, MIGRATIONS, Shop, filter_from_query, found

__all__ = ["MsgspecResponse", "app", "create_app"]


class MsgspecResponse(Response):
    """JSON encoded by msgspec: nxdata's rows and pages, and anything else msgspec encodes."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return msgspec.json.encode(content)


def get_shop(request: Request) -> Shop:
    shop: Shop = request.app.state.shop
    return shop


ShopDep = Annotated[Shop, Depends(get_shop)]
FilterQuery = Annotated[str | None, Query(alias="filter", description="a filter as JSON")]
JsonBody = Annotated[dict[str, Any], Body()]

router = APIRouter()


@router.get("/products")
async def list_products(
    shop: ShopDep, filter_: FilterQuery = None, after: str | None = None
) -> Response:
    flt = filter_from_query(filter_, after, default_order=DEFAULT_ORDER)
    return MsgspecResponse(await shop.products.find_page(flt, total="exact"))


@router.get("/products/{product_id}")
async def get_product(shop: ShopDep, product_id: str) -> Response:
    product = await shop.products.find_by_id(product_id)
    return MsgspecResponse(found(product, "product", product_id))


@router.post("/products", status_code=201)
async def create_product(shop: ShopDep, data: JsonBody) -> Response:
    product = await shop.products.create(data)
    return MsgspecResponse(product, 201, {"Location": f"/products/{product.id}"})


@router.patch("/products/{product_id}")
async def update_product(shop: ShopDep, product_id: str, data: JsonBody) -> Response:
    product = await shop.products.update_by_id(product_id, data)
    return MsgspecResponse(found(product, "product", product_id))


@router.delete("/products/{product_id}", status_code=204)
async def delete_product(shop: ShopDep, product_id: str) -> Response:
    found(await shop.products.delete_by_id(product_id), "product", product_id)
    return Response(status_code=204)


# -- errors: Starlette passes handlers an Exception, whatever class they were registered for ----


def problem_response(problem: Problem, headers: Mapping[str, str] | None = None) -> Response:
    return MsgspecResponse(problem, problem.status, headers, media_type=MEDIA_TYPE)


async def on_error(_: Request, exc: Exception) -> Response:
    """nxdata's errors, and anything unexpected (a 500 that says nothing of the cause)."""
    return problem_response(*problem_for(exc))


async def on_http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    problem = plain(exc.status_code)
    if exc.detail != problem.title:
        problem.detail = exc.detail
    return problem_response(problem, exc.headers)


async def on_invalid_request(_: Request, exc: Exception) -> Response:
    """FastAPI's own checks (a body that is not a JSON object...): a 400 problem like the
    others, where FastAPI would answer 422 with pydantic's error list."""
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(part) for part in first.get("loc", ()))
    return problem_response(plain(400, f"{where}: {first.get('msg')}"))


# -- the application --------------------------------------------------------------------------


def create_app(db: nx.AsyncDatabase | None = None, *, url: str | None = None) -> FastAPI:
    """As `shop.app.create_app`: on `db` as given (the caller opens and closes it), or on a
    database opened and migrated at start-up from `url` or the environment."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if db is not None:
            yield
            return
        async with nx.AsyncDatabase(url, name="shop") as own:
            await bootstrap_migrations_async(own, migrations_dir=MIGRATIONS, models="shop.models")
            app.state.shop = Shop(own)
            yield

    app = FastAPI(title="shop (FastAPI recipe)", lifespan=lifespan)
    if db is not None:
        app.state.shop = Shop(db)
    app.include_router(router)
    app.add_exception_handler(nx.NxdataError, on_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_invalid_request)
    app.add_exception_handler(Exception, on_error)
    return app


app = create_app()
"""For ``uvicorn shop_fastapi:app``: nothing connects before the lifespan starts."""
