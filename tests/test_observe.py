"""Watching statements: `QueryEvent` s from every repository and database method (sync and
async), the ``nxdata.sql`` logger with redacted parameters, hooks that fail without breaking the
query, and OpenTelemetry spans (COPY included) read back from an in-memory exporter."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from test_repository_support import Models, create_tables, make_models

import nxdata as nx
from nxdata import AsyncDatabase, Database
from nxdata.errors import CheckViolation, ConfigurationError
from nxdata.observe import QueryEvent

Conn = psycopg.Connection[Any]

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    """Spans of this module's databases (the global provider is set once per process)."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
    yield _EXPORTER


@pytest.fixture
def models(conn: Conn, schema_name: str) -> Models:
    m = make_models(schema_name)
    create_tables(conn, m)
    return m


def test_every_method_reports_its_statements(db: Database, models: Models) -> None:
    items = nx.SoftDeletableRepository(db, models.Item)
    entries = nx.Repository(db, models.Entry)
    table = f"{models.schema.name}.Item"
    with db.watch_queries() as events:
        first = items.create({"name": "a", "score": 1})
        items.create_all([{"name": "b"}, {"name": "c"}])  # COPY
        items.create_all([{"name": "d"}], returning=True)  # INSERT ... RETURNING
        assert len(items.find({"where": {"name": {"inq": ["a", "b"]}}})) == 2
        items.find({"where": {"name": {"inq": ["c", "d", "e"]}}})  # same shape, other values
        items.find_one({"where": {"name": "a"}})
        items.find_by_id(first.id)
        assert items.count({"status": "active"}) == 4
        items.update_all({"score": 2}, {"name": "b"})
        assert len(list(items.iterate({"order": "name"}, batch_size=2))) == 4
        items.query(f'SELECT * FROM "{models.schema.name}"."Item" WHERE name = %s', ["a"])
        items.delete_by_id(first.id)
        db.execute("SELECT 1")
        db.fetch_all("SELECT %s::int", [1])
        entries.create({"label": "x"})
    methods = [(e.table, e.method, e.rows) for e in events]
    assert methods == [
        (table, "create", 1),
        (table, "create_all", 2),
        (table, "create_all", 1),
        (table, "find", 2),
        (table, "find", 2),
        (table, "find_one", 1),
        (table, "find_by_id", 1),
        (table, "count", 1),
        (table, "update_all", 1),
        (table, "iterate", 4),
        (table, "query", 1),
        (table, "delete_by_id", 1),
        (None, "execute", 1),
        (None, "fetch_all", 1),
        (f"{models.schema.name}.Entry", "create", 1),
    ]
    assert events[1].sql.startswith("COPY ")
    finds = [e for e in events if e.method == "find"]
    assert finds[0].shape == finds[1].shape and finds[0].shape  # one shape, two calls
    assert finds[0].params is not None and ["a", "b"] in list(finds[0].params)
    assert all(e.duration > 0 and e.error is None and e.database == db.name for e in events)


def test_errors_are_reported_with_the_event(db: Database, models: Models) -> None:
    entries = nx.Repository(db, models.Entry)
    with db.watch_queries() as events, pytest.raises(CheckViolation):
        entries.create({"label": "x", "qty": -1})
    [event] = events
    assert isinstance(event.error, CheckViolation) and event.rows is None


def test_the_logger_redacts_parameters_unless_asked(
    test_database_url: str, models: Models, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="nxdata.sql")
    secret = "s3cr3t-value"
    with Database(test_database_url, max_size=1) as db:
        nx.Repository(db, models.Item).find({"where": {"name": secret}})
    line = caplog.records[-1].getMessage()
    assert line.startswith(f"{models.schema.name}.Item find: SELECT ")
    assert "[1 parameter (redacted)]" in line and secret not in line and " ms, 0 rows" in line
    caplog.clear()
    with Database(test_database_url, max_size=1, log_parameters=True) as db:
        nx.Repository(db, models.Item).find({"where": {"name": secret}})
    assert f"'{secret}'" in caplog.records[-1].getMessage()


def test_a_failing_hook_never_breaks_the_query(
    test_database_url: str, models: Models, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: QueryEvent) -> None:
        raise RuntimeError("metrics are down")

    seen: list[QueryEvent] = []
    with Database(test_database_url, max_size=1, on_query=broken) as db:
        remove = db.add_query_hook(seen.append)
        assert nx.Repository(db, models.Item).count() == 0  # went through
        remove()
        nx.Repository(db, models.Item).count()
    assert len(seen) == 1  # removed after the first
    assert "on_query hook" in caplog.text and "metrics are down" in caplog.text
    with pytest.raises(ConfigurationError, match="on_query must be a callable"):
        Database(test_database_url, on_query="print")


async def test_async_methods_report_too(adb: AsyncDatabase, models: Models) -> None:
    items = nx.AsyncSoftDeletableRepository(adb, models.Item)
    with adb.watch_queries() as events:
        await items.create({"name": "a"})
        await items.find()
        async for _ in items.iterate():
            pass
        await adb.fetch_value("SELECT 1")
    assert [(e.method, e.rows) for e in events] == [
        ("create", 1),
        ("find", 1),
        ("iterate", 1),
        ("fetch_value", 1),
    ]


def test_opentelemetry_spans_follow_the_database_conventions(
    test_database_url: str, models: Models, spans: InMemorySpanExporter
) -> None:
    spans.clear()
    with Database(test_database_url, max_size=1, tracing=True) as db:
        items = nx.Repository(db, models.Item)
        items.create_all([{"name": "a"}, {"name": "b"}])
        items.find({"where": {"name": "a"}})
        with pytest.raises(nx.NxdataError):
            db.execute("SELECT nope")
    copy, select, failed = spans.get_finished_spans()
    table = f"{models.schema.name}.Item"
    assert copy.name == f"COPY {table}" and copy.attributes is not None
    assert copy.attributes["db.response.returned_rows"] == 2
    assert select.name == f"SELECT {table}" and select.kind == trace.SpanKind.CLIENT
    attributes = dict(select.attributes or {})
    assert attributes["db.system.name"] == "postgresql"
    assert attributes["db.collection.name"] == table
    assert attributes["db.operation.name"] == "SELECT"
    assert (
        attributes["db.namespace"] == psycopg.conninfo.conninfo_to_dict(test_database_url)["dbname"]
    )
    assert "%s" in str(attributes["db.query.text"]) and "'a'" not in str(
        attributes["db.query.text"]
    )  # parameterized: no values
    assert select.end_time is not None and select.start_time is not None
    assert select.end_time > select.start_time
    assert failed.status.status_code == trace.StatusCode.ERROR
    assert dict(failed.attributes or {})["error.type"] == "DatabaseError"
