"""What the sync and async databases share: options, connection arguments, error translation."""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import psycopg

from .config import database_url, redact, validate_url
from .errors import ConfigurationError, ConnectionFailed, PoolTimeout, map_database_error
from .jsonb import adapters

__all__ = [
    "PoolOptions",
    "changes_session",
    "check_settings",
    "connection_failed",
    "pool_options",
    "pool_timeout",
    "pooler_refusal",
    "resolve_url",
    "set_config_sql",
    "settings_script",
]

_TIMEZONE = re.compile(r"[A-Za-z0-9_+\-/:.]+")


@dataclass(frozen=True, slots=True)
class PoolOptions:
    """Pool, connection and session settings shared by `Database` and `AsyncDatabase`.

    Pool: ``min_size`` / ``max_size``; ``timeout``: seconds to wait for a free pooled connection
    before `PoolTimeout` (when connections cannot be made at all, `ConnectionFailed` comes after
    ``connect_timeout`` instead); ``max_idle`` / ``max_lifetime``: seconds after which an idle /
    any connection is replaced; ``check``: how a connection is checked before it is lent —
    ``"socket"`` (default: a non-blocking look at its socket, about a microsecond, which finds
    every connection the server closed, e.g. on a restart), ``"ping"`` (psycopg-pool's
    ``check_connection``: one round trip per borrow) or ``None``; ``configure`` / ``reset``:
    your own callables, run on each new connection / each returned one (after nxdata's own).

    Connection: ``connect_timeout``; ``keepalives_idle``, ``keepalives_interval``,
    ``keepalives_count`` (TCP keepalives, seconds / probes) and ``tcp_user_timeout`` (seconds
    sent data may stay unacknowledged) make a silent link (no RST: a cable, a firewall, a frozen
    VM) fail a call within about ``tcp_user_timeout`` instead of hanging; ``None`` leaves the
    system's default. ``libpq``: other libpq connection parameters (``{"sslmode": "require"}``).

    Session: ``statement_timeout``: seconds before the server cancels a statement (None: server
    default); ``prepare_threshold``: executions of one query before psycopg prepares it on the
    server (ignored behind PgBouncer); ``timezone``: the session time zone, ``"UTC"`` by
    default, so that timestamptz values come back in UTC whatever the server's setting (psycopg
    also decodes them fastest when the session zone is exactly ``UTC``). ``None`` keeps the
    server's default. Both are sent as startup options.

    PgBouncer: ``pgbouncer``: ``None`` (default) finds out on ``open()`` whether the URL goes
    through a pooler that shares server connections between clients (PgBouncer in transaction
    mode, and others that do the same); ``True`` / ``False`` say so. Behind one: no server-side
    prepared statements, no startup options (PgBouncer refuses them), the time zone is set with
    ``SET`` (a parameter PgBouncer tracks per client) and ``statement_timeout`` is sent with
    every transaction as a transaction-local setting (a session ``SET`` would land on whichever
    server connection PgBouncer picked, and stay there for other clients).

    Replicas: ``replicas``: URLs of streaming replicas of the primary; reads outside a
    transaction go to them (round robin), everything else to the primary (see
    `AsyncDatabase.on_primary`). ``max_replica_lag``: seconds of replay lag above which a
    replica is skipped (checked at most once a second per replica; None: never checked);
    ``replica_retry``: seconds a replica that cannot be reached is left alone before it is
    tried again (reads go to the primary meanwhile); ``replica_timeout``: seconds a read may
    wait on a replica before the replica is taken for frozen (a stopped process or hung host
    answers nothing, and no TCP timeout fires): its connection is cut and the read runs on
    another server (None: wait as long as it takes); ``read_your_writes``: seconds after a
    write (or transaction) during which reads of the same task or thread stay on the primary,
    so a client never misses its own write because of lag (0: off);
    ``read_your_writes_scope``: ``"context"`` (the task or thread that wrote: one request) or
    ``"database"`` (every reader of this handle).

    Watching (see `nxdata.observe`): ``on_query``: a callable given a `QueryEvent` after every
    statement; ``log_parameters``: the ``nxdata.sql`` logger shows parameter values (redacted
    by default); ``tracing``: an OpenTelemetry span per statement (``nxdata[otel]``).

    >>> Database(url, max_size=20, statement_timeout=5, tcp_user_timeout=10)
    """

    min_size: int = 1
    max_size: int = 10
    timeout: float = 30.0
    connect_timeout: float = 10.0
    statement_timeout: float | None = None
    pgbouncer: bool | None = None
    prepare_threshold: int | None = 5
    application_name: str = "nxdata"
    max_idle: float = 600.0
    max_lifetime: float = 3600.0
    timezone: str | None = "UTC"
    check: str | None = "socket"
    keepalives_idle: float | None = 10.0
    keepalives_interval: float | None = 5.0
    keepalives_count: int | None = 3
    tcp_user_timeout: float | None = 20.0
    libpq: Mapping[str, str] | None = None
    configure: Callable[[Any], Any] | None = None
    reset: Callable[[Any], Any] | None = None
    on_query: Callable[[Any], Any] | None = None
    log_parameters: bool = False
    tracing: bool = False
    replicas: Sequence[str] = ()
    max_replica_lag: float | None = 10.0
    replica_retry: float = 5.0
    replica_timeout: float | None = 30.0
    read_your_writes: float = 0.0
    read_your_writes_scope: str = "context"

    def __post_init__(self) -> None:
        if self.min_size < 0 or self.max_size < 1 or self.min_size > self.max_size:
            raise ConfigurationError(
                f"pool sizes must satisfy 0 <= min_size <= max_size >= 1 "
                f"(got min_size={self.min_size}, max_size={self.max_size})"
            )
        for name in ("timeout", "connect_timeout", "max_idle", "max_lifetime"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"{name} must be positive, got {getattr(self, name)}")
        # The name goes into a startup option and a SET statement: no quotes, spaces or commas.
        if self.timezone is not None and not _TIMEZONE.fullmatch(self.timezone):
            raise ConfigurationError(
                f"timezone must be a time zone name such as 'UTC' or 'Europe/Paris', "
                f"got {self.timezone!r}"
            )
        if self.check not in ("socket", "ping", None):
            raise ConfigurationError(f"check must be 'socket', 'ping' or None, got {self.check!r}")
        for name in ("configure", "reset"):
            if getattr(self, name) is not None and not callable(getattr(self, name)):
                raise ConfigurationError(f"{name} must be a callable taking the connection")
        if self.on_query is not None and not callable(self.on_query):
            raise ConfigurationError("on_query must be a callable taking a QueryEvent")
        if isinstance(self.replicas, str) or not all(isinstance(u, str) for u in self.replicas):
            raise ConfigurationError(
                "replicas takes a list of URLs, e.g. replicas=['postgresql://app@replica1/app']"
            )
        object.__setattr__(self, "replicas", tuple(validate_url(u) for u in self.replicas))
        if self.max_replica_lag is not None and self.max_replica_lag < 0:
            raise ConfigurationError(f"max_replica_lag must be >= 0, got {self.max_replica_lag}")
        if self.replica_timeout is not None and self.replica_timeout <= 0:
            raise ConfigurationError(
                f"replica_timeout must be positive, got {self.replica_timeout}"
            )
        for name in ("replica_retry", "read_your_writes"):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.read_your_writes_scope not in ("context", "database"):
            raise ConfigurationError(
                "read_your_writes_scope must be 'context' or 'database', "
                f"got {self.read_your_writes_scope!r}"
            )

    def connect_kwargs(self, *, pooler: bool | None = None) -> dict[str, Any]:
        """Keyword arguments for ``psycopg.connect`` (also given to the pool); `pooler`: whether
        the URL goes through PgBouncer (default: the ``pgbouncer`` option)."""
        pooler = bool(self.pgbouncer) if pooler is None else pooler
        kwargs: dict[str, Any] = dict(self.libpq or {})
        kwargs.update(
            {
                "context": adapters(),
                "connect_timeout": max(1, round(self.connect_timeout)),
                "application_name": self.application_name,
                "prepare_threshold": None if pooler else self.prepare_threshold,
            }
        )
        if self.keepalives_idle is not None or self.keepalives_count is not None:
            kwargs["keepalives"] = 1
        for name in ("keepalives_idle", "keepalives_interval", "keepalives_count"):
            value = getattr(self, name)
            if value is not None:
                kwargs[name] = max(1, round(value))
        if self.tcp_user_timeout is not None:
            kwargs["tcp_user_timeout"] = max(1, round(self.tcp_user_timeout * 1000))
        if not pooler:
            options = []
            if self.statement_timeout is not None:
                options.append(f"-c statement_timeout={int(self.statement_timeout * 1000)}")
            if self.timezone is not None:
                options.append(f"-c timezone={self.timezone}")
            if options:
                kwargs["options"] = " ".join(options)
        return kwargs

    def session_setup(self, *, pooler: bool | None = None) -> str | None:
        """SQL run on each new connection behind PgBouncer, which refuses startup options: the
        time zone and application name, parameters PgBouncer tracks per client and sets again on
        whichever server connection serves it (``statement_timeout`` is not tracked: see
        `transaction_settings`)."""
        pooler = bool(self.pgbouncer) if pooler is None else pooler
        if not pooler:
            return None
        # application_name is tracked too: set again after a reset (RESET ALL would give the
        # server connection's own, PgBouncer's, to this client).
        name = self.application_name.replace("'", "''")
        statements = [f"SET application_name = '{name}'"]
        if self.timezone is not None:
            statements.append(f"SET timezone = '{self.timezone}'")
        return "; ".join(statements)

    def transaction_settings(self, *, pooler: bool | None = None) -> tuple[tuple[str, str], ...]:
        """Settings sent with every transaction (transaction-local): behind PgBouncer, the
        ``statement_timeout`` that would otherwise be a startup option."""
        pooler = bool(self.pgbouncer) if pooler is None else pooler
        if not pooler or self.statement_timeout is None:
            return ()
        return (("statement_timeout", str(int(self.statement_timeout * 1000))),)


def pool_options(options: dict[str, Any], owner: str = "Database") -> PoolOptions:
    """`PoolOptions` from keyword arguments; `ConfigurationError` naming any unknown one.

    >>> pool_options({"max_sise": 2})  # ConfigurationError: unknown option 'max_sise' for
    ...                                # Database (did you mean 'max_size'?); valid options: ...
    """
    valid = [f.name for f in fields(PoolOptions)]
    unknown = [key for key in options if key not in valid]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, [*valid, "name"], n=1)
        guess = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigurationError(
            f"unknown option {key!r} for {owner}{guess}; valid options: "
            f"{', '.join(['name', *valid])}"
        )
    return PoolOptions(**options)


def resolve_url(url: str | None) -> str:
    """The explicit URL or the one from the environment; `ConfigurationError` if neither."""
    found = database_url(url)
    if found is None:
        raise ConfigurationError(
            "no database URL: pass one, set NXDATA_DATABASE_URL (or DATABASE_URL), "
            "or use Database.embedded()"
        )
    return validate_url(found)


def connection_failed(url: str, exc: BaseException) -> ConnectionFailed:
    """A `ConnectionFailed` naming the (redacted) URL and the server's reason, on one line."""
    return ConnectionFailed(f"cannot connect to {redact(url)}: {_reason(exc)}", original=exc)


def _reason(exc: BaseException) -> str:
    # libpq reports 'connection to server at "h", port 1 failed: Connection refused' and then,
    # tab-indented, a hint ("Is the server running on that host..."); with several addresses
    # (localhost: ::1 and 127.0.0.1) a summary of every attempt follows. Keep the first failure
    # and its hint: one line, for logs and the CLI.
    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    first = " ".join(lines[0].split())  # libpq writes "FATAL:  role ..."
    for prefix in ("connection failed: ", "connection is bad: "):  # psycopg's, said already
        first = first.removeprefix(prefix)
    hints = []
    for line in lines[1:]:
        if not line.startswith(("\t", " ")):
            break
        hints.append(line.strip())
    if not hints:
        return first
    return " ".join([first.rstrip(".") + ".", *hints])


def pool_timeout(name: str, options: PoolOptions, exc: BaseException) -> PoolTimeout:
    """A `PoolTimeout` that says how long it waited and how big the pool is."""
    return PoolTimeout(
        f"no free connection in pool {name!r} after {options.timeout:g} s "
        f"(all {options.max_size} in use): raise max_size or hold connections for less time",
        original=exc,
    )


def database_error(exc: psycopg.Error) -> Exception:
    """The nxdata error for a psycopg error."""
    return map_database_error(exc)


_SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?")


def check_settings(settings: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """Transaction-local settings as (name, value) pairs; `ConfigurationError` for a name that
    is not a setting name (``app.tenant_id``) or a value that is not text.

    >>> check_settings({"app.tenant_id": "m-1"})
    (('app.tenant_id', 'm-1'),)
    """
    if not isinstance(settings, Mapping):
        raise ConfigurationError(f"settings are a mapping of names to text, not {settings!r}")
    pairs = []
    for name, value in settings.items():
        if not isinstance(name, str) or not _SETTING_NAME.fullmatch(name):
            raise ConfigurationError(f"{name!r} is not a setting name (e.g. 'app.tenant_id')")
        if not isinstance(value, str) or "\x00" in value:
            raise ConfigurationError(
                f"setting {name} takes text, not {type(value).__name__}: pass str(value)"
            )
        pairs.append((name, value))
    return tuple(pairs)


@functools.cache
def set_config_sql(count: int) -> str:
    """``SELECT set_config(%s, %s, true), ...`` for `count` settings (names are parameters)."""
    return "SELECT " + ", ".join(["set_config(%s, %s, true)"] * count)


# Statements that leave state in the session after they end: settings, roles, notifications,
# prepared statements, cursors WITH HOLD, temporary objects, session advisory locks. A statement
# of the caller's that matches marks its connection for a reset (DISCARD ALL) before reuse.
_SESSION_CHANGE = re.compile(
    r"(?:^|;)\s*(?:set|reset|listen|prepare|declare|load|discard)\b"
    r"|\bset_config\s*\(|\bpg_advisory_lock|\b(?:create|into)\s+(?:temp|temporary)\b",
    re.IGNORECASE,
)


def changes_session(query: Any) -> bool:
    """Whether a statement of the caller's may leave state in the session (see above). Only
    text is inspected; composed statements (``psycopg.sql``) count as changing it."""
    if isinstance(query, bytes):
        query = query.decode("utf-8", "replace")
    elif not isinstance(query, str):
        get_sql = getattr(query, "get_sql", None)
        if get_sql is None:
            return True
        query = get_sql()
    return bool(_SESSION_CHANGE.search(query))


# Session state that outlives a transaction: behind a pooler that shares server connections
# (PgBouncer in transaction mode) it would stay on a server connection other clients get next.
_SESSION_FOR_GOOD = re.compile(
    r"(?:^|;)\s*(?:set\s+(?!local\b|transaction\b|constraints\b)|reset\b|listen\b|prepare\b"
    r"|declare\b[^;]*\bwith\s+hold\b)"
    r"|\bset_config\s*\([^;]*,\s*false\s*\)|\bpg_advisory_lock(?:_shared)?\s*\("
    r"|\bcreate\s+(?:(?:global|local)\s+)?(?:temp|temporary)\b",
    re.IGNORECASE,
)


def pooler_refusal(query: Any) -> str | None:
    """Why a statement of the caller's cannot run behind a transaction-mode pooler (it leaves
    state in the session: SET, RESET, LISTEN, PREPARE, a session advisory lock, a temporary
    table...), or None when it can."""
    if isinstance(query, bytes):
        query = query.decode("utf-8", "replace")
    elif not isinstance(query, str):
        get_sql = getattr(query, "get_sql", None)
        if get_sql is None:
            return None  # composed SQL (psycopg.sql): not inspected
        query = get_sql()
    match = _SESSION_FOR_GOOD.search(query)
    if match is None:
        return None
    found = " ".join(match.group(0).strip(" ;").split())
    return (
        f"{found!r} leaves state in the session, and this database goes through a connection "
        "pooler that shares server connections (PgBouncer in transaction mode): the next "
        "client of that server connection would get it. Use SET LOCAL or set_config(..., true) "
        "inside a transaction, db.local_settings({...}) or transaction(settings={...}), "
        "pg_advisory_xact_lock, and ON COMMIT DROP temporary tables"
    )


def settings_script(begin: str, settings: tuple[tuple[str, str], ...]) -> Any:
    """``BEGIN ...; SELECT set_config(name, value, true), ...`` as one simple-protocol query
    (values as literals): one round trip without pipeline mode, which PgBouncer (1.18, the
    Debian package) mishandles: the flush request psycopg sends after a pipeline's sync can
    leave the server connection held, and the next client waits for it until
    ``query_wait_timeout``."""
    from psycopg import sql

    calls = sql.SQL(", ").join(
        sql.SQL("set_config({}, {}, true)").format(sql.Literal(name), sql.Literal(value))
        for name, value in settings
    )
    return sql.SQL("{}; SELECT {}").format(sql.SQL(begin), calls)
