"""What the shop's tests share besides fixtures: trusted repositories to arrange rows with,
and the checks of a problem details response."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import nxdata as nx

from shop.models import Customer, Order, OrderItem, Product

PROBLEM = "application/problem+json"


@dataclass
class Trusted:
    """Repositories without a client policy, to arrange what the API cannot (a hidden note,
    the read-only stock) and to check what it did."""

    customers: nx.AsyncRepository[Customer]
    products: nx.AsyncSoftDeletableRepository[Product]
    orders: nx.AsyncRepository[Order]
    items: nx.AsyncRepository[OrderItem]

    @classmethod
    def on(cls, db: nx.AsyncDatabase) -> Trusted:
        return cls(
            nx.AsyncRepository(db, Customer),
            nx.AsyncSoftDeletableRepository(db, Product),
            nx.AsyncRepository(db, Order),
            nx.AsyncRepository(db, OrderItem),
        )

    async def product(self, sku: str, price: str = "10.00", **more: Any) -> Product:
        data = {"sku": sku, "name": f"Product {sku}", "price": price, **more}
        return await self.products.create(data)

    async def customer(self, email: str, note: str = "") -> Customer:
        return await self.customers.create(
            {"email": email, "name": email.split("@")[0], "note": note}
        )

    async def order(self, customer: Customer, *lines: tuple[Product, int]) -> Order:
        """An order with its items, and its total computed as the server would."""
        order = await self.orders.create({"customer_id": customer.id})
        items = [
            {"order_id": order.id, "product_id": p.id, "quantity": n, "unit_price": p.price}
            for p, n in lines
        ]
        await self.items.create_all(items)  # COPY: one statement for every line
        total = sum((p.price * n for p, n in lines), Decimal(0))
        updated = await self.orders.update_by_id(order.id, {"total": total})
        assert updated is not None
        return updated


def client_of(app: Any, *, raise_app_exceptions: bool = True) -> httpx.AsyncClient:
    """An httpx client calling `app` in this task, where the test's transaction is
    (ASGITransport runs no lifespan: the app is given the plugin's database instead)."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    return httpx.AsyncClient(transport=transport, base_url="http://shop")


def query(filter: dict[str, Any] | None = None, **params: str) -> dict[str, str]:
    """Query parameters, with the filter as JSON."""
    return {**({"filter": json.dumps(filter)} if filter is not None else {}), **params}


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The problem details of a response, checked to be one with this status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body
