"""Orders on the Litestar app: ``include`` of relations (a policy decides which), hidden columns
that stay hidden through them, and one query per relation however many orders."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from tests.helpers import Trusted, problem, query


async def test_an_order_with_its_items_and_customer(
    litestar: httpx.AsyncClient, trusted: Trusted
) -> None:
    ann = await trusted.customer("ann@example.com", note="pays late")
    pen, ink = await trusted.product("PEN", "1.50"), await trusted.product("INK", "7.25")
    order = await trusted.order(ann, (pen, 2), (ink, 1))

    response = await litestar.get(f"/orders/{order.id}", params={"include": "items,customer"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == "10.2500"
    assert body["customer"] == {"id": ann.id, "name": "ann", "email": "ann@example.com"}
    assert [(i["product_id"], i["quantity"]) for i in body["items"]] == [(pen.id, 2), (ink.id, 1)]
    assert "pays late" not in response.text  # the hidden note, through an include too

    # Without include, the relations are not there at all (UNSET), rather than null.
    body = (await litestar.get(f"/orders/{order.id}")).json()
    assert "items" not in body and "customer" not in body
    body = (await litestar.get(f"/orders/{order.id}", params={"include": "customer"})).json()
    assert "items" not in body and body["customer"]["id"] == ann.id


async def test_only_the_relations_the_policy_allows(
    litestar: httpx.AsyncClient, trusted: Trusted
) -> None:
    ann = await trusted.customer("ann@example.com")
    order = await trusted.order(ann)
    # A relation that exists (OrderItem.product) but is not the policy's is answered as unknown.
    for include, part in (("payments", "include[0]"), ("items,items", "include[1]")):
        body = problem(await litestar.get(f"/orders/{order.id}", params={"include": include}), 400)
        assert body["part"] == part, body
    problem(await litestar.get("/orders/nope"), 404)


async def test_a_list_with_includes_runs_one_query_per_relation(
    litestar: httpx.AsyncClient,
    trusted: Trusted,
    assert_max_queries: Callable[[int], Any],
) -> None:
    customers = [await trusted.customer(f"c{n}@example.com") for n in range(3)]
    products = [await trusted.product(f"P{n}", f"{n + 1}.00") for n in range(4)]
    for n in range(12):
        await trusted.order(customers[n % 3], *[(p, n + 1) for p in products[: 1 + n % 4]])

    flt = {"where": {"total": {"gt": 0}}, "order": ["total DESC"], "limit": 5}
    seen: list[dict[str, Any]] = []
    params = query(flt, include="items,customer")
    while True:
        # However many orders a page holds: the orders, their items, their customers.
        with assert_max_queries(3):
            response = await litestar.get("/orders", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        seen += page["items"]
        if page["next"] is None:
            break
        params = query(flt, include="items,customer", after=page["next"])
    assert len(seen) == 12
    assert all(len(o["items"]) >= 1 and o["customer"]["email"] for o in seen)
    assert sum(len(o["items"]) for o in seen) == sum(1 + n % 4 for n in range(12))
    assert "note" not in json.dumps(seen)
