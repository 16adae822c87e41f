"""Errors as problem details on both apps: what each nxdata error becomes, and a 500 that tells
the client nothing of its cause (no SQL, no table, no traceback) while the log has it all."""

from __future__ import annotations

from typing import Any, NoReturn

import httpx
import nxdata as nx
import pytest
from nxdata import errors

from tests.helpers import client_of, problem


@pytest.mark.parametrize(
    ("error", "status", "retry_after"),
    [
        (errors.SerializationFailure("could not serialize access", sqlstate="40001"), 503, "1"),
        (errors.DeadlockDetected("deadlock detected", sqlstate="40P01"), 503, "1"),
        (errors.PoolTimeout("no connection in 30 s"), 503, "1"),
        (errors.ConnectionFailed("server closed the connection"), 503, "1"),
        # A write that may have been applied: no invitation to send it again.
        (errors.OutcomeUnknown("lost during COMMIT"), 500, None),
        (
            errors.PermissionDenied("permission denied for table Product", sqlstate="42501"),
            403,
            None,
        ),
        (errors.QueryCanceled("canceling statement due to statement timeout"), 503, None),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else None,
)
async def test_database_errors_as_http(
    app: Any,
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    status: int,
    retry_after: str | None,
) -> None:
    async def fail(*args: Any, **kwargs: Any) -> NoReturn:
        raise error

    monkeypatch.setattr(nx.AsyncRepository, "find_page", fail)
    async with client_of(app) as client:
        response = await client.get("/products")
    problem(response, status)
    assert response.headers.get("retry-after") == retry_after
    assert str(error) not in response.text  # the server's words stay on the server


async def test_permission_denied_by_the_database_is_a_403(
    client: httpx.AsyncClient, nxdata_adb: nx.AsyncDatabase
) -> None:
    # The role the app connects as lost its grants: here a role without any on the schema,
    # for the rest of the test's transaction.
    await nxdata_adb.execute("SET LOCAL ROLE pg_monitor")
    body = problem(await client.get("/products"), 403)
    assert body == {
        "status": 403,
        "title": "Forbidden",
        "type": "about:blank",
        "detail": "not allowed",
    }


async def test_a_500_leaks_nothing(
    app: Any, nxdata_adb: nx.AsyncDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    # A real failure of the database, in the test's transaction only: the table is gone.
    await nxdata_adb.execute('ALTER TABLE example_shop."Product" RENAME TO "Gone"')
    async with client_of(app) as client:
        response = await client.get("/products", params={"filter": '{"where": {"sku": "PEN"}}'})
    body = problem(response, 500)
    assert body == {"status": 500, "title": "Internal Server Error", "type": "about:blank"}
    for secret in ("Product", "example_shop", "relation", "SELECT", "Traceback", "PEN"):
        assert secret not in response.text
    # The log has the whole story.
    logged = [r.exc_info[1] for r in caplog.records if r.name == "shop" and r.exc_info]
    assert len(logged) == 1 and "does not exist" in str(logged[0])


async def test_a_bug_is_a_500_that_leaks_nothing(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    async def bug(*args: Any, **kwargs: Any) -> NoReturn:
        raise RuntimeError("password=hunter2 in SELECT * FROM secrets")

    monkeypatch.setattr(nx.AsyncRepository, "find_page", bug)
    # Starlette sends the 500 and then raises the error again (for the server's log): the
    # transport must not turn that into the test's exception.
    async with client_of(app, raise_app_exceptions=False) as client:
        response = await client.get("/products")
    body = problem(response, 500)
    assert body == {"status": 500, "title": "Internal Server Error", "type": "about:blank"}
    assert "hunter2" not in response.text and "RuntimeError" not in response.text
