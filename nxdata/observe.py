"""Watching the statements nxdata runs: a standard `logging` logger, ``on_query`` callbacks,
and OpenTelemetry spans.

- **Logger** ``nxdata.sql``: at DEBUG, one line per statement — its SQL, its parameters
  (redacted unless the database has ``log_parameters=True``), duration, row count, and the
  table and repository method it came from. Off (one level check per statement) unless a
  handler asks for DEBUG::

      logging.getLogger("nxdata.sql").setLevel(logging.DEBUG)

- **Callbacks**: ``Database(on_query=fn)``, ``db.add_query_hook(fn)`` (returns a function that
  removes it) or ``with db.watch_queries() as events:`` receive a `QueryEvent` after every
  statement — for metrics, slow-query logs, N+1 detection in tests. A callback that raises is
  logged and ignored: it never breaks the query.
- **OpenTelemetry**: ``Database(tracing=True)`` (needs ``pip install 'nxdata[otel]'``) makes a
  CLIENT span per statement, COPY included, following the database semantic conventions
  (``db.system.name``, ``db.namespace``, ``db.collection.name``, ``db.operation.name``,
  ``db.query.text`` — parameterized, never values —, ``db.response.returned_rows``,
  ``server.address`` / ``server.port``, ``error.type``).

With none of them set, a statement costs one attribute read and one logger level check more.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .errors import ConfigurationError
from .values import clip

__all__ = ["LOGGER", "QueryEvent", "QueryHook", "QueryObserver"]

LOGGER = logging.getLogger("nxdata.sql")
"""The ``nxdata.sql`` logger: statements at DEBUG."""


@dataclass(frozen=True, slots=True)
class QueryEvent:
    """One statement nxdata ran, as a callback receives it.

    - ``sql``: the statement as sent (placeholders, not values); ``params``: its values (the
      callback sees them; the logger redacts them unless ``log_parameters=True``);
    - ``table``: ``schema.Table`` for a repository's statement, else None; ``method``: the
      repository or database method (``find``, ``find_by_id``, ``count``, ``create``,
      ``create_all``, ``update_all``, ``iterate``, ``query``, ``execute``, ``fetch_all``...);
    - ``shape``: the compiled statement's shape (same filter shape, same value) — count
      events per shape to find N+1 loops;
    - ``duration``: seconds, from sending the statement to having its rows (decoding
      excluded); ``rows``: rows returned or affected (None when unknown);
    - ``error``: the nxdata error it raised, else None; ``database``: the `Database`'s name.
    """

    sql: str
    params: Sequence[Any] | None
    table: str | None
    method: str
    shape: str | None
    duration: float
    rows: int | None
    error: BaseException | None
    database: str


QueryHook = Callable[[QueryEvent], object]
"""A callback that receives a `QueryEvent` after every statement."""


class QueryObserver:
    """The hooks, logger and tracer of one database handle; `start` / `done` around each
    statement. Cheap when nothing listens: `start` returns None and the statement runs as if
    unobserved."""

    __slots__ = ("_tracer", "database", "hooks", "log_parameters", "server")

    def __init__(
        self,
        *,
        database: str,
        on_query: QueryHook | None = None,
        log_parameters: bool = False,
        tracing: bool = False,
        server: tuple[str | None, int | None, str | None] = (None, None, None),
    ) -> None:
        self.database = database
        self.hooks: tuple[QueryHook, ...] = (on_query,) if on_query is not None else ()
        self.log_parameters = log_parameters
        self.server = server  # host, port, database name (for spans)
        self._tracer: Any = _tracer() if tracing else None

    def start(self) -> float | None:
        """The start time of a statement when anything listens, else None."""
        if self.hooks or self._tracer is not None or LOGGER.isEnabledFor(logging.DEBUG):
            return time.perf_counter()
        return None

    def done(
        self,
        started: float,
        sql: Any,
        params: Sequence[Any] | None,
        *,
        method: str,
        table: str | None = None,
        shape: str | None = None,
        rows: int | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Report a statement that started at `started` (`start`) and has just ended."""
        duration = time.perf_counter() - started
        event = QueryEvent(
            _text(sql), params, table, method, shape, duration, rows, error, self.database
        )
        if LOGGER.isEnabledFor(logging.DEBUG):
            LOGGER.debug("%s", self.describe(event))
        for hook in self.hooks:
            try:
                hook(event)
            except Exception:  # a metrics bug must not break the application's query
                LOGGER.exception("on_query hook %r failed (the query itself went through)", hook)
        if self._tracer is not None:
            self._span(event)

    def describe(self, event: QueryEvent) -> str:
        """One log line for an event."""
        if event.params is None or not len(event.params):
            shown = "no parameters"
        elif self.log_parameters:
            shown = "parameters " + ", ".join(clip(repr(p), 80) for p in event.params)
        else:
            count = len(event.params)
            shown = f"{count} parameter{'s' if count != 1 else ''} (redacted)"
        where = " ".join(part for part in (event.table, event.method) if part)
        rows = "" if event.rows is None else f", {event.rows} row{'s' if event.rows != 1 else ''}"
        failed = "" if event.error is None else f", failed: {type(event.error).__name__}"
        return (
            f"{where}: {' '.join(event.sql.split())} [{shown}] "
            f"{event.duration * 1000:.2f} ms{rows}{failed}"
        )

    def _span(self, event: QueryEvent) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode

        end = time.time_ns()
        start = end - int(event.duration * 1e9)
        operation = _operation(event.sql)
        host, port, name = self.server
        attributes: dict[str, Any] = {
            "db.system.name": "postgresql",
            "db.system": "postgresql",  # the name before semantic conventions 1.26
            "db.operation.name": operation,
            "db.query.text": event.sql,
            "nxdata.method": event.method,
        }
        if name:
            attributes["db.namespace"] = name
        if event.table:
            attributes["db.collection.name"] = event.table
        if event.rows is not None:
            attributes["db.response.returned_rows"] = event.rows
        if event.shape:
            attributes["nxdata.shape"] = event.shape
        if host:
            attributes["server.address"] = host
        if port:
            attributes["server.port"] = port
        title = f"{operation} {event.table}" if event.table else operation
        span = self._tracer.start_span(
            title, kind=SpanKind.CLIENT, start_time=start, attributes=attributes
        )
        if event.error is not None:
            span.set_attribute("error.type", type(event.error).__name__)
            span.set_status(Status(StatusCode.ERROR, str(event.error).splitlines()[0][:200]))
        span.end(end_time=end)

    def add(self, hook: QueryHook) -> Callable[[], None]:
        """Add a callback; returns a function that removes it."""
        if not callable(hook):
            raise ConfigurationError(f"a query hook is called with a QueryEvent, not {hook!r}")
        self.hooks = (*self.hooks, hook)

        def remove() -> None:
            self.hooks = tuple(h for h in self.hooks if h is not hook)

        return remove

    @contextmanager
    def watch(self) -> Iterator[list[QueryEvent]]:
        """Collect the events of the block in a list."""
        events: list[QueryEvent] = []
        remove = self.add(events.append)
        try:
            yield events
        finally:
            remove()


def _tracer() -> Any:
    try:
        from opentelemetry import trace
    except ImportError:
        raise ConfigurationError(
            "tracing=True needs OpenTelemetry: pip install 'nxdata[otel]'"
        ) from None
    from . import __version__

    return trace.get_tracer("nxdata", __version__)


def _text(sql: Any) -> str:
    if isinstance(sql, str):
        return sql
    if isinstance(sql, bytes):
        return sql.decode("utf-8", "replace")
    as_string = getattr(sql, "as_string", None)
    if as_string is not None:  # psycopg.sql.Composable: needs a connection to render exactly
        try:
            return str(as_string(None))
        except Exception:
            return repr(sql)
    get_sql = getattr(sql, "get_sql", None)
    return str(get_sql()) if callable(get_sql) else str(sql)


def _operation(sql: str) -> str:
    """The statement's first keyword: SELECT, INSERT, COPY, WITH..."""
    word = sql.lstrip(" \n\t(").split(None, 1)
    return word[0].upper() if word else ""
