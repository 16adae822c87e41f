"""Fixtures of the shop's tests, on the nxdata pytest plugin's.

The plugin builds one database for the session from ``shop/migrations`` (``nxdata_build`` and
``[tool.nxdata]`` in examples/pyproject.toml) and wraps each test in a transaction that is
rolled back (``nxdata_atransaction``). The apps get the plugin's `AsyncDatabase`, so their
statements join that transaction: no test sees another's rows, and nothing needs deleting.

The requests go through ``httpx.ASGITransport``, which runs the app in the test's own task,
where the transaction is. (Litestar's ``AsyncTestClient`` runs the app on an event loop of
its own in another thread: the plugin's pool and transaction cannot be used from there.
`test_startup.py` uses it for the lifespan, where the app opens its own database.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import nxdata as nx
import pytest

import shop_fastapi
from shop.app import create_app
from tests.helpers import Trusted, client_of


@pytest.fixture
async def trusted(nxdata_atransaction: Any, nxdata_adb: nx.AsyncDatabase) -> Trusted:
    """Repositories without a policy, in the test's transaction."""
    return Trusted.on(nxdata_adb)


@pytest.fixture
async def litestar(
    nxdata_atransaction: Any, nxdata_adb: nx.AsyncDatabase
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the Litestar app (products and orders)."""
    async with client_of(create_app(nxdata_adb)) as client:
        yield client


@pytest.fixture(params=["litestar", "fastapi"])
async def app(
    request: pytest.FixtureRequest, nxdata_atransaction: Any, nxdata_adb: nx.AsyncDatabase
) -> Any:
    """Either app on the test's database: the products resource must behave the same on both."""
    if request.param == "litestar":
        return create_app(nxdata_adb)
    return shop_fastapi.create_app(nxdata_adb)


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of `app`."""
    async with client_of(app) as client:
        yield client
