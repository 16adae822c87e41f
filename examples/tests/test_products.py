"""The products resource, on both apps (the `client` fixture runs each test on Litestar and on
FastAPI): filters from the query string, pages by cursor, writes, and problem details."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.helpers import Trusted, problem, query


async def test_filter_from_the_query_string(client: httpx.AsyncClient, trusted: Trusted) -> None:
    await trusted.product("PEN", "1.50", tags=["office"])
    await trusted.product("INK", "7.25", tags=["office", "refill"])
    await trusted.product("MUG", "4.00", category="kitchen")

    where = {"price": {"lt": 5}, "tags": {"contains": ["office"]}}
    response = await client.get("/products", params=query({"where": where}))
    assert response.status_code == 200, response.text
    page = response.json()
    assert [p["sku"] for p in page["items"]] == ["PEN"]
    assert page["total"] == 1 and page["next"] is None

    flt = {
        "where": {"or": [{"category": "kitchen"}, {"price": {"gte": 5}}]},
        "order": ["price DESC"],
    }
    page = (await client.get("/products", params=query(flt))).json()
    assert [p["sku"] for p in page["items"]] == ["INK", "MUG"]
    # Money is a decimal string; columns outside the policy's fields are left out, not null.
    assert page["items"][0]["price"] == "7.2500"
    assert set(page["items"][0]) == {
        "id",
        "sku",
        "name",
        "price",
        "category",
        "tags",
        "stock",
        "created_at",
    }


@pytest.mark.parametrize(
    ("filter", "part"),
    [
        # Columns outside the policy's lists are answered as unknown ones: no oracle.
        ({"where": {"modified_at": {"gt": "2024-01-01T00:00:00Z"}}}, "where.modified_at"),
        ({"where": {"deleted_at": None}}, "where.deleted_at"),
        ({"order": ["sku"]}, "order[0]"),
        ({"fields": ["metadata"]}, "fields[0]"),
        ({"where": {"name": {"regexp": "^P"}}}, "where.name.regexp"),  # off for clients
        ({"where": {"price": {"lt": "cheap"}}}, "where.price.lt"),  # not a number
        ({"limit": 1000}, "limit"),  # above max_limit
    ],
)
async def test_a_policy_refusal_is_a_400_naming_the_part(
    client: httpx.AsyncClient, filter: dict[str, Any], part: str
) -> None:
    body = problem(await client.get("/products", params=query(filter)), 400)
    assert body["title"] == "Invalid filter"
    assert body["part"] == part, body
    assert "example_shop" not in json.dumps(body)  # the API's words, not the schema's


async def test_malformed_filters_and_cursors_are_400s(client: httpx.AsyncClient) -> None:
    body = problem(await client.get("/products", params={"filter": "{not json"}), 400)
    assert "malformed JSON" in body["detail"]
    body = problem(await client.get("/products", params={"filter": '{"limits": 5}'}), 400)
    assert "limits" in body["detail"]
    body = problem(await client.get("/products", params={"after": "forged"}), 400)
    assert body["part"] == "after"


async def test_pages_through_every_row_with_cursors(
    client: httpx.AsyncClient, trusted: Trusted
) -> None:
    # 45 products at 7 prices: the primary key, which nxdata adds to the order, breaks ties.
    made = {(await trusted.product(f"SKU-{n:02d}", f"{n % 7}.00")).id for n in range(45)}

    flt = {"order": ["price DESC"], "limit": 10}
    seen: list[dict[str, Any]] = []
    pages = 0
    params = query(flt)
    while True:
        response = await client.get("/products", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        assert page["total"] == 45
        seen += page["items"]
        if page["next"] is None:
            break
        params = query(flt, after=page["next"])  # the same URL, and &after=<next>
    assert pages == 5 and len(seen) == 45
    assert {p["id"] for p in seen} == made  # every row once
    keys = [(-float(p["price"]), p["id"]) for p in seen]
    assert keys == sorted(keys)  # price DESC, then id

    # A cursor is tied to its order: another order is refused, not silently misread.
    cursor = (await client.get("/products", params=query(flt))).json()["next"]
    other = query({"order": ["name"], "limit": 10}, after=cursor)
    assert problem(await client.get("/products", params=other), 400)["part"] == "after"


async def test_create_patch_delete(client: httpx.AsyncClient, trusted: Trusted) -> None:
    body = {"sku": "LAMP", "name": "Lamp", "price": "25.00", "tags": ["light"]}
    response = await client.post("/products", json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["location"] == f"/products/{created['id']}"
    assert created["price"] == "25.0000" and created["stock"] == 0 and created["category"] == "misc"

    # Server-managed and read-only columns cannot be set by a client: the field is named.
    for field, value in (("stock", 5), ("id", "mine"), ("created_at", "2024-01-01T00:00:00Z")):
        refused = problem(
            await client.post("/products", json={**body, "sku": "X", field: value}), 400
        )
        assert refused["field"] == field, refused
    refused = problem(await client.post("/products", json={**body, "price": "free"}), 400)
    assert refused["field"] == "price"
    refused = problem(await client.patch(f"/products/{created['id']}", json={"stock": 1}), 400)
    assert refused["field"] == "stock"

    response = await client.patch(f"/products/{created['id']}", json={"price": "19.90"})
    assert response.status_code == 200, response.text
    assert response.json()["price"] == "19.9000"
    assert (await client.get(f"/products/{created['id']}")).json()["price"] == "19.9000"

    assert (await client.delete(f"/products/{created['id']}")).status_code == 204
    problem(await client.get(f"/products/{created['id']}"), 404)
    problem(await client.delete(f"/products/{created['id']}"), 404)
    problem(await client.patch(f"/products/{created['id']}", json={"price": "1"}), 404)
    # Soft-deleted: gone for the API, still there for trusted code.
    assert await trusted.products.find_by_id(created["id"], include_deleted=True) is not None
    # The SKU is free again (unique among live rows).
    assert (await client.post("/products", json=body)).status_code == 201


async def test_unknown_product_is_a_404(client: httpx.AsyncClient) -> None:
    body = problem(await client.get("/products/nope"), 404)
    assert body == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "no product nope",
    }
    problem(await client.get("/no-such-route"), 404)  # the framework's own 404, alike


async def test_a_body_that_is_not_an_object_is_a_400(client: httpx.AsyncClient) -> None:
    problem(
        await client.post(
            "/products", content=b"[1, 2]", headers={"content-type": "application/json"}
        ),
        400,
    )
    problem(
        await client.post(
            "/products", content=b"{oops", headers={"content-type": "application/json"}
        ),
        400,
    )


# A statement that fails aborts the test's transaction (as it would any transaction): the
# failing request is the test's last statement, and the plugin rolls everything back.


async def test_a_duplicate_sku_is_a_409(client: httpx.AsyncClient, trusted: Trusted) -> None:
    await trusted.product("DUP")
    body = problem(
        await client.post("/products", json={"sku": "DUP", "name": "Again", "price": "1"}), 409
    )
    assert body["constraint"] == "UQ_Product_sku"
    assert "DUP" not in json.dumps(body)  # the server's message quotes the value: not sent


async def test_a_check_violation_is_a_400(client: httpx.AsyncClient) -> None:
    body = problem(
        await client.post("/products", json={"sku": "NEG", "name": "N", "price": "-1"}), 400
    )
    assert body["constraint"] == "CK_Product_1"
