"""The apps' lifespan, as a deployment runs it: on a database without the shop's schema, start-up
applies the migrations and opens the pool; shutdown closes it. Each test gets a database of its
own (``nxdata_fresh_url``), since the app commits, and its own pool."""

from __future__ import annotations

import asyncio

import psycopg
from litestar.testing import AsyncTestClient

import shop_fastapi
from shop.app import create_app
from tests.helpers import client_of

PRODUCT = {"sku": "PEN", "name": "Pen", "price": "1.50"}


def emptied(url: str) -> str:
    """The clone without the shop's schema and the migrations journal: a new database."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA example_shop CASCADE")
        conn.execute("DROP SCHEMA nxdata_migrations CASCADE")
    return url


async def sessions(url: str) -> int:
    """Connections to the database other than this one, once the closing ones are gone."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        count = -1
        for _ in range(50):
            cursor = await conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            count = int((await cursor.fetchone() or (-1,))[0])
            if count == 0:
                break
            await asyncio.sleep(0.05)
        return count


def applied(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT name FROM nxdata_migrations.journal ORDER BY name").fetchall()
    return [row[0] for row in rows]


async def test_litestar_migrates_at_startup_and_closes_at_shutdown(nxdata_fresh_url: str) -> None:
    url = emptied(nxdata_fresh_url)
    # Litestar's test client runs the lifespan (on an event loop of its own, in a thread).
    async with AsyncTestClient(create_app(url=url)) as client:
        created = await client.post("/products", json=PRODUCT)
        assert created.status_code == 201, created.text
        page = (await client.get("/products")).json()
        assert [p["sku"] for p in page["items"]] == ["PEN"]
    assert await sessions(url) == 0
    assert len(applied(url)) == 1

    async with AsyncTestClient(create_app(url=url)) as client:  # a restart: nothing to apply
        assert (await client.get("/products")).json()["total"] == 1
    assert len(applied(url)) == 1


async def test_fastapi_migrates_at_startup_and_closes_at_shutdown(nxdata_fresh_url: str) -> None:
    url = emptied(nxdata_fresh_url)
    app = shop_fastapi.create_app(url=url)
    async with app.router.lifespan_context(app), client_of(app) as client:
        created = await client.post("/products", json=PRODUCT)
        assert created.status_code == 201, created.text
        assert (await client.get(f"/products/{created.json()['id']}")).json()["sku"] == "PEN"
    assert await sessions(url) == 0
    assert len(applied(url)) == 1
