# Generated from nxdata/database_async.py by nxdata/_async_to_sync.py: do not edit.
"""The database handle: a psycopg connection pool with nxdata's settings, the one place that
chooses connections, transaction-local settings, and the reset of connections that code of the
caller's used. `Database` here; the sync `Database` (``database.py``) is generated from it.
"""

from __future__ import annotations

import functools
import logging
import random
import select
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from pathlib import Path
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar, overload

import psycopg
import psycopg_pool
from psycopg.conninfo import conninfo_to_dict

from ._acompat import Lock, sleep
from ._connect import (
    changes_session,
    check_settings,
    connection_failed,
    pool_options,
    pool_timeout,
    pooler_refusal,
    resolve_url,
    set_config_sql,
    settings_script,
)
from .ambient import AUTOCOMMIT, Autocommit
from .batch import Deferred, check_reads
from .config import database_url, redact
from .embedded import EmbeddedPostgres
from .errors import (
    ConfigurationError,
    ConnectionFailed,
    DatabaseClosed,
    OutcomeUnknown,
    TransactionError,
    TransientError,
    map_database_error,
)
from .observe import QueryEvent, QueryHook, QueryObserver
from .replicas import LAG_SQL, Replica, ReplicaSet, ReplicaState, ReplicaWatch
from .transaction import Transaction, TransactionBlock, begin

_IDLE = psycopg.pq.TransactionStatus.IDLE
# Connection.nxdata_marks: what _release must do with a connection.
_DIRTY = 1  # code of the caller's ran on it: reset the session
_STALE = 2  # holds prepared statements a migration made stale: DEALLOCATE ALL
_WRITER = 4  # borrowed for a write: read-your-writes starts when it comes back
_INERROR = psycopg.pq.TransactionStatus.INERROR
_OK = psycopg.pq.ConnStatus.OK

R = TypeVar("R")
R1 = TypeVar("R1")
R2 = TypeVar("R2")
R3 = TypeVar("R3")
P = ParamSpec("P")

logger = logging.getLogger("nxdata")

Settings = tuple[tuple[str, str], ...]
"""Transaction-local settings: (name, value) pairs, each applied with ``set_config(..., true)``."""

__all__ = ["Database"]


class Database:
    """A pool of connections to one PostgreSQL database.

    >>> with Database("postgresql://postgres@127.0.0.1/app", max_size=20) as db:
    ...     with db.connection() as conn:
    ...         (conn.execute("select 1")).fetchone()

    ``url`` defaults to ``NXDATA_DATABASE_URL`` / ``DATABASE_URL``. Options: see `PoolOptions`.
    The pool opens on ``open()`` or on entering the ``with`` block; it checks the server
    first, so a wrong URL fails at once with `ConnectionFailed` instead of on the first query.
    """

    def __init__(self, url: str | None = None, *, name: str = "nxdata", **options: Any) -> None:
        self.url = resolve_url(url)
        self.name = name
        self.options = pool_options(options, type(self).__name__)
        self._pool: psycopg_pool.ConnectionPool[Any] | None = None
        self._embedded: EmbeddedPostgres | None = None
        self._closed = False  # close() was called: no more lazy opening
        self._opening = Lock()
        self._settings: ContextVar[Settings] = ContextVar(f"nxdata_settings_{id(self)}", default=())
        # The innermost open transaction block of this task/thread on this database: calls
        # without transaction= join it, and a block inside it makes a savepoint.
        self._ambient: ContextVar[Transaction | None] = ContextVar(
            f"nxdata_transaction_{id(self)}", default=None
        )
        # Since when connections cannot be made (monotonic time) and why, None while they can:
        # a caller then gets ConnectionFailed after connect_timeout, not PoolTimeout after timeout.
        self._down: tuple[float, BaseException] | None = None
        # Behind a pooler that shares server connections (PgBouncer in transaction mode)?
        # The option says, or open() finds out (None until then).
        self._pooler: bool | None = self.options.pgbouncer
        self._base: Settings = self.options.transaction_settings(pooler=self._pooler)
        self._replicas = ReplicaSet(self.options.replicas, retry=self.options.replica_retry)
        self._has_replicas = bool(self.options.replicas)  # a plain bool: read on every find
        timeout = self.options.replica_timeout
        self._watch = ReplicaWatch(timeout) if self._replicas and timeout is not None else None
        # Reads of this block (task/thread) go to the primary (on_primary()).
        self._primary_reads: ContextVar[bool] = ContextVar(
            f"nxdata_primary_{id(self)}", default=False
        )
        # read_your_writes: when this context (or, by scope, anyone) last wrote (monotonic).
        self._wrote_at: ContextVar[float] = ContextVar(f"nxdata_wrote_{id(self)}", default=0.0)
        self._wrote_any = 0.0
        # Reads of one call (rows and their relations, a page and its total) from one server:
        # the replica (or False: the primary) the first of them used, once `_one_server` is on.
        self._sticky: ContextVar[list[Replica | bool] | None] = ContextVar(
            f"nxdata_sticky_{id(self)}", default=None
        )
        self._observer = QueryObserver(
            database=name,
            on_query=self.options.on_query,
            log_parameters=self.options.log_parameters,
            tracing=self.options.tracing,
            server=_server(self.url),
        )

    def __repr__(self) -> str:
        state = "open" if self._pool is not None else "closed"
        return f"{type(self).__name__}({redact(self.url)!r}, {state})"

    @classmethod
    def embedded(
        cls, data_dir: str | Path | None = None, *, temporary: bool = False, **options: Any
    ) -> Database:
        """A database on an embedded PostgreSQL started now and stopped by `close`."""
        server = EmbeddedPostgres(data_dir, temporary=temporary)
        db = cls(server.start(), **options)
        db._embedded = server
        return db

    @classmethod
    def from_env(cls, **options: Any) -> Database:
        """The database named by the environment, or an embedded one when none is set."""
        if database_url() is None:
            return cls.embedded(**options)
        return cls(**options)

    # -- lifecycle -------------------------------------------------------------------------------

    def open(self) -> Database:
        """Check the server is reachable and open the pool (idempotent)."""
        if self._pool is not None:
            return self
        # Two threads (tasks) using a new database at once must open one pool, not two.
        with self._opening:
            if self._pool is not None:
                return self
            self._pooler = self._probe(self.url, self.options.pgbouncer)
            pool = self._make_pool(self.url, None)
            try:
                pool.open(wait=True, timeout=self.options.connect_timeout)
            except psycopg_pool.PoolTimeout as exc:
                pool.close()
                raise connection_failed(self.url, exc) from exc
            for replica in self._replicas.replicas:
                # A replica that is down does not stop the handle from opening: reads go to
                # the primary until it can be reached. Each is probed on its own (PgBouncer
                # may sit in front of the replicas and not the primary, or the reverse).
                try:
                    replica.pooler = self._probe(replica.url, self.options.pgbouncer)
                except ConnectionFailed:
                    replica.went_down()
                    replica.pooler = self._pooler
                replica.pool = self._make_pool(replica.url, replica)
                replica.pool.open(wait=False)
            # Settings sent with every transaction where a pooler sits in front of any server
            # (harmless where none does: a set_config in the same round trip).
            behind = self._pooler or any(r.pooler for r in self._replicas.replicas)
            self._base = self.options.transaction_settings(pooler=bool(behind))
            self._pool = pool
            self._closed = False
            self._down = None
            return self

    def _probe(self, url: str, pooler: bool | None) -> bool:
        """Connect once (a wrong URL fails here, naming the server's reason) and tell whether
        the URL goes through a pooler that shares server connections between clients: such a
        pooler (PgBouncer, and others) gives clients a cancel key of its own, so the backend
        pid the client was told differs from the one serving it. PgBouncer also refuses the
        startup options nxdata sends otherwise. `pooler`: what the option says (None: find out).
        """
        kwargs = self.options.connect_kwargs(pooler=bool(pooler))
        try:
            conn = psycopg.Connection.connect(url, **kwargs)
        except psycopg.Error as exc:
            if pooler is not None or "unsupported startup parameter" not in str(exc):
                raise connection_failed(url, exc) from exc
            pooler = True  # PgBouncer: "unsupported startup parameter: options"
            kwargs = self.options.connect_kwargs(pooler=True)
            try:
                conn = psycopg.Connection.connect(url, **kwargs)
            except psycopg.Error as exc2:
                raise connection_failed(url, exc2) from exc2
        try:
            if pooler is None:
                cursor = conn.execute("SELECT pg_backend_pid()", prepare=False)
                row = cursor.fetchone()
                pooler = row is not None and row[0] != conn.info.backend_pid
                if pooler:
                    logger.info(
                        "%s goes through a connection pooler (PgBouncer?): no prepared "
                        "statements, per-transaction settings",
                        redact(url),
                    )
        except psycopg.Error as exc:
            raise connection_failed(url, exc) from exc
        finally:
            conn.close()
        return pooler

    def _pooler_of(self, conn: psycopg.Connection[Any]) -> bool:
        """Whether `conn` (of the primary's pool or a replica's) goes through a pooler."""
        replica: Replica | None = getattr(conn, "nxdata_replica", None)
        return bool(self._pooler if replica is None else replica.pooler)

    @property
    def behind_pooler(self) -> bool | None:
        """Whether the URL goes through a pooler sharing server connections (PgBouncer in
        transaction mode): the ``pgbouncer`` option, or what ``open()`` found (None before)."""
        return self._pooler

    def _make_pool(self, url: str, replica: Replica | None) -> psycopg_pool.ConnectionPool[Any]:
        """A pool for the primary (`replica` None) or for one replica."""
        options = self.options
        pooler = bool(self._pooler if replica is None else replica.pooler)
        kwargs = options.connect_kwargs(pooler=pooler)
        setup = options.session_setup(pooler=pooler)
        return psycopg_pool.ConnectionPool(
            url,
            min_size=options.min_size,
            max_size=options.max_size,
            timeout=options.timeout,
            max_idle=options.max_idle,
            max_lifetime=options.max_lifetime,
            # While the server cannot be reached, psycopg-pool retries with a backoff that
            # doubles up to minutes; giving up after a second lets the next waiting caller
            # start a fresh attempt, so a server that is back is used within about a second.
            reconnect_timeout=1.0,
            # Pooled connections are autocommit: a lone statement is one round trip (no BEGIN /
            # COMMIT); connection() and transactions open their own transactions.
            kwargs={**kwargs, "autocommit": True},
            connection_class=self._connection_class(replica),
            name=self.name if replica is None else f"{self.name}-replica",
            open=False,
            configure=self._configure if setup or options.configure else None,
            reset=options.reset,
            check=(
                psycopg_pool.ConnectionPool.check_connection if options.check == "ping" else None
            ),
        )

    def _connection_class(self, replica: Replica | None) -> type[psycopg.Connection[Any]]:
        """The pool's connection class: psycopg's, telling this database whether connections
        can be made (see `_down`), and for a replica's pool, which replica it serves."""
        db = self

        class Connection(psycopg.Connection[Any]):
            nxdata_replica = replica
            # What `_release` must do (bits, see _DIRTY / _STALE / _WRITER): an attribute of
            # the connection, not a set of them, keeps the usual release a single test.
            nxdata_marks = 0

            @classmethod
            def connect(cls, *args: Any, **kwargs: Any) -> Any:
                try:
                    conn = super().connect(*args, **kwargs)
                except BaseException as exc:
                    if replica is not None:
                        replica.went_down()
                    elif db._down is None:
                        db._down = (time.monotonic(), exc)
                    raise
                if replica is not None:
                    replica.came_up()
                else:
                    db._down = None
                return conn

        return Connection

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        """Session settings a connection needs that startup options could not carry, then the
        caller's own ``configure``."""
        setup = self.options.session_setup(pooler=self._pooler_of(conn))
        if setup:
            conn.execute(setup)
            if not conn.autocommit:
                conn.commit()
        if self.options.configure is not None:
            self.options.configure(conn)

    def close(self) -> None:
        """Close the pool (waiting for connections in use) and stop an embedded server.

        Using the database afterwards raises `DatabaseClosed`; ``open()`` opens it again.
        """
        self._closed = True
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.close()
        if self._watch is not None:
            self._watch.close()
        for replica in self._replicas.replicas:
            if replica.pool is not None:
                replica_pool, replica.pool = replica.pool, None
                replica_pool.close()
        if self._embedded is not None:
            self._embedded.stop()

    def __enter__(self) -> Database:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def get_pool(self) -> psycopg_pool.ConnectionPool[Any]:
        """The underlying psycopg pool (opened on first use; `DatabaseClosed` after ``close()``)."""
        if self._pool is None:
            if self._closed:
                raise DatabaseClosed(
                    f"{self!r} was closed: call open() (or enter `with db:`) to use it again"
                )
            self.open()
        assert self._pool is not None
        return self._pool

    # -- connections -----------------------------------------------------------------------------

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """Borrow a connection: committed when the block ends, rolled back if it raises.

        Inside a transaction block (the ambient transaction) it lends that transaction's
        connection, in a savepoint: released at the end, rolled back to if the block raises.

        Raises `PoolTimeout` when none becomes free within the pool timeout. An error at COMMIT
        (a deferred constraint, a serialization failure) is an nxdata error; so is committing
        after a statement failed in the block (`TransactionError`: it is rolled back instead).
        Whatever the block changes in the session (``SET``, ``LISTEN``, temporary tables) is
        reset before the connection serves anyone else.
        """
        ambient = self._ambient_transaction()
        if ambient is not None:
            with ambient.savepoint() as inner:
                yield inner.connection
            return
        conn = self._acquire()
        conn.nxdata_marks |= _DIRTY  # type: ignore[attr-defined]
        try:
            conn.set_autocommit(False)
            if self._base:  # behind PgBouncer: statement_timeout for this transaction
                conn.execute(set_config_sql(len(self._base)), _flat(self._base))
            yield conn
            _commit(conn)
        finally:
            self._release(conn)  # rolls back what an exception left open

    def _ambient_transaction(self) -> Transaction | None:
        """The transaction of the innermost block open in this thread or task, or None.

        A block that has ended but is still in the context (a task or a generator that outlived
        it) is a `TransactionError`: running its calls outside would escape the transaction.
        """
        tx = self._ambient.get()
        if tx is None or tx.active:
            return tx
        raise TransactionError(
            "this call belongs to a transaction block that has ended (a task, thread or "
            "generator started in the block outlived it): pass transaction=nx.AUTOCOMMIT to run "
            "it on its own, or finish it inside the block"
        )

    def _transaction(self, transaction: Transaction | Autocommit | None) -> Transaction | None:
        """The transaction a call runs in: the one given, else the ambient one; None (a pooled
        connection of its own) for `AUTOCOMMIT` or when there is none."""
        if transaction is None:
            return self._ambient_transaction()
        if transaction is AUTOCOMMIT:
            return None
        if not isinstance(transaction, Transaction):
            raise TypeError(
                "transaction= takes a transaction (db.transaction() / begin_transaction()), "
                f"nx.AUTOCOMMIT or None, not {transaction!r}"
            )
        return transaction

    def _acquire(self, *, write: bool = True) -> psycopg.Connection[Any]:
        """Borrow a connection in autocommit mode (one statement = one round trip).

        The single place that chooses where a statement runs: ``write=False`` marks a read
        outside a transaction, which goes to a usable replica when there are replicas, unless
        `on_primary` or read-your-writes keep it on the primary; everything else (writes,
        locks, transactions, migrations, the caller's own SQL) goes to the primary. A read
        finds no usable replica → the primary. Pair every call with `_release`.

        A connection the server has closed meanwhile (a restart, an idle timeout) is found before
        it is lent (``check="socket"``: a look at its socket, no round trip) and replaced, so the
        caller never sees it. When no connection can be made at all, `ConnectionFailed` comes
        within ``connect_timeout``, naming the server's reason.
        """
        pool = self._pool if self._pool is not None else self.get_pool()
        if not write and self._has_replicas and self._reads_may_use_replicas():
            sticky = self._sticky.get()
            candidates = self._replicas.candidates(turn=sticky is None or sticky[0] is True)
            if sticky is not None and sticky[0] is not True:
                if sticky[0] is False:
                    candidates = []  # the call's first read went to the primary
                elif sticky[0] in candidates:
                    candidates.remove(sticky[0])
                    candidates.insert(0, sticky[0])
            for replica in candidates:
                replica_conn = self._replica_connection(replica)
                if replica_conn is not None:
                    if sticky is not None:
                        sticky[0] = replica
                    return replica_conn
            if sticky is not None:
                sticky[0] = False
        check = self.options.check == "socket"
        for _ in range(self.options.max_size + 2):  # every pooled connection may be stale
            conn = self._getconn(pool)
            if not check or _alive(conn):
                break
            conn.close()  # the pool replaces a closed connection
            pool.putconn(conn)
        else:  # pragma: no cover - the pool kept handing out dead connections
            raise ConnectionFailed(f"cannot get a working connection to {redact(self.url)}")
        if not conn.autocommit:
            conn.set_autocommit(True)
        if write and self.options.read_your_writes:
            conn.nxdata_marks |= _WRITER  # type: ignore[attr-defined]
        return conn

    def _reads_may_use_replicas(self) -> bool:
        """Not in an `on_primary` block, nor within ``read_your_writes`` of a write."""
        if self._primary_reads.get():
            return False
        window = self.options.read_your_writes
        if window:
            wrote = (
                self._wrote_at.get()
                if self.options.read_your_writes_scope == "context"
                else self._wrote_any
            )
            if wrote and time.monotonic() - wrote < window:
                return False
        return True

    def _replica_connection(self, replica: Replica) -> psycopg.Connection[Any] | None:
        """A working connection to `replica`, or None when it cannot be reached (it is then
        left alone for ``replica_retry`` seconds) or lags more than ``max_replica_lag``. Waits
        for a free connection as long as the replica is reachable, as for the primary."""
        pool = replica.pool
        if pool is None:
            return None
        options = self.options
        start = time.monotonic()
        check = options.check == "socket"
        stale = options.max_size + 2
        while True:
            if replica.down_since is not None and replica.down_since >= start - 0.001:
                return None  # a connection attempt failed since we started waiting
            try:
                conn: psycopg.Connection[Any] = pool.getconn(timeout=0.05)
            except psycopg_pool.PoolTimeout:
                waited = time.monotonic() - start
                if replica.down_since is not None or waited >= options.timeout:
                    replica.went_down()
                    return None
                continue
            except psycopg.OperationalError:
                replica.went_down()
                return None
            if check and not _alive(conn) and stale > 0:
                stale -= 1
                conn.close()  # the pool replaces it
                pool.putconn(conn)
                continue
            break
        if not conn.autocommit:
            conn.set_autocommit(True)
        if self._watch is not None:  # until _release: a frozen replica is cut off
            self._watch.watch(id(conn), conn.pgconn.socket, replica)
        maximum = options.max_replica_lag
        now = time.monotonic()
        if maximum is not None and replica.lag_due(now):
            try:
                cursor = conn.execute(LAG_SQL, prepare=False)
                row = cursor.fetchone()
            except psycopg.Error:
                replica.went_down()
                if self._watch is not None:
                    self._watch.done(id(conn))
                pool.putconn(conn)
                return None
            if not replica.saw_lag(float(row[0]) if row else 0.0, now, maximum):
                logger.warning(
                    "replica %s is %.1f s behind (max_replica_lag=%g): reads go elsewhere",
                    redact(replica.url),
                    replica.lag or 0.0,
                    maximum,
                )
                if self._watch is not None:
                    self._watch.done(id(conn))
                pool.putconn(conn)
                return None
        replica.reads += 1
        return conn

    @contextmanager
    def on_primary(self, enabled: bool = True) -> Iterator[None]:
        """Send the reads of this block (this task or thread) to the primary, e.g. right after
        a write whose result must be read back, or for a report that must be current:

        >>> with db.on_primary():
        ...     order = orders.find_by_id(order_id)

        One call: ``orders.find_by_id(order_id, primary=True)``. Without replicas it
        changes nothing.
        """
        token = self._primary_reads.set(enabled or self._primary_reads.get())
        try:
            yield
        finally:
            self._primary_reads.reset(token)

    def _pinned(self) -> bool:
        return self._sticky.get() is not None

    @contextmanager
    def _one_server(self) -> Iterator[None]:
        """The reads of this block go to one server: the replica the first uses (the primary
        if it used the primary), so that rows and their relations, or a page and its total,
        are not read from replicas at different points of replay."""
        token = self._sticky.set([True])
        try:
            yield
        finally:
            self._sticky.reset(token)

    def replica_states(self) -> list[ReplicaState]:
        """What this handle knows of each replica: usable or not, lag, reads served."""
        return self._replicas.states()

    def _getconn(self, pool: psycopg_pool.ConnectionPool[Any]) -> psycopg.Connection[Any]:
        """`pool.getconn`, waiting in slices: while connections cannot be made, the wait ends
        with `ConnectionFailed` after ``connect_timeout`` instead of `PoolTimeout` after
        ``timeout`` (a server restart of a few seconds is waited out)."""
        options = self.options
        start = time.monotonic()
        left = options.timeout
        while True:
            try:
                conn: psycopg.Connection[Any] = pool.getconn(timeout=max(0.01, min(left, 0.25)))
                return conn
            except psycopg_pool.PoolTimeout as exc:
                down, waited = self._down, time.monotonic() - start
                if down is not None and waited >= min(options.connect_timeout, options.timeout):
                    raise connection_failed(self.url, down[1]) from exc
                if waited >= options.timeout:
                    raise pool_timeout(self.name, options, exc) from exc
                left = options.timeout - waited
            except psycopg.OperationalError as exc:
                raise connection_failed(self.url, exc) from exc

    def _release(self, conn: psycopg.Connection[Any]) -> None:
        """Give back a connection from `_acquire`: idle, in autocommit mode, and without session
        state left by code of the caller's (`_RESET_SESSION`)."""
        try:
            if conn.pgconn.transaction_status != _IDLE:
                conn.rollback()
            if not conn.autocommit:
                conn.set_autocommit(True)
            marks = conn.nxdata_marks  # type: ignore[attr-defined]
            if marks & (_STALE | _DIRTY):
                conn.nxdata_marks = marks & ~(_STALE | _DIRTY)  # type: ignore[attr-defined]
                if marks & _STALE:  # psycopg forgets its prepared statements too
                    conn.execute("DEALLOCATE ALL")
                if marks & _DIRTY:
                    conn.execute(_RESET_SESSION, prepare=False)
                    if self.options.session_setup(pooler=self._pooler_of(conn)):
                        self._configure(conn)
        except psycopg.Error:
            pass  # a broken connection: the pool notices and replaces it
        replica: Replica | None = conn.nxdata_replica  # type: ignore[attr-defined]
        if replica is not None:
            if self._watch is not None:
                self._watch.done(id(conn))
            if conn.closed or conn.pgconn.status != _OK:
                replica.went_down()  # lost: reads try elsewhere until it is reachable again
            if replica.pool is not None:
                replica.pool.putconn(conn)
            return
        if conn.nxdata_marks & _WRITER:  # type: ignore[attr-defined]
            conn.nxdata_marks &= ~_WRITER  # type: ignore[attr-defined]
            now = time.monotonic()
            self._wrote_any = now
            self._wrote_at.set(now)
        pool = self._pool
        if pool is not None:
            pool.putconn(conn)

    def mark_dirty(self, conn: psycopg.Connection[Any]) -> None:
        """Reset `conn`'s session (settings, role, LISTEN, temporary tables, advisory locks) when
        it goes back to the pool: for code that ran its own statements on a connection nxdata
        lent it."""
        conn.nxdata_marks = getattr(conn, "nxdata_marks", 0) | _DIRTY  # type: ignore[attr-defined]

    def _mark_stale(self, conn: psycopg.Connection[Any]) -> None:
        """Drop `conn`'s prepared statements when it goes back (a migration made them stale)."""
        conn.nxdata_marks = getattr(conn, "nxdata_marks", 0) | _STALE  # type: ignore[attr-defined]

    def _not_a_write(self, conn: psycopg.Connection[Any]) -> None:
        """`conn` was borrowed for writing but only reads (a read-only transaction)."""
        conn.nxdata_marks = getattr(conn, "nxdata_marks", 0) & ~_WRITER  # type: ignore[attr-defined]

    # -- transaction-local settings (row-level security) -----------------------------------------

    @contextmanager
    def local_settings(self, settings: Mapping[str, str]) -> Iterator[None]:
        """Apply settings to every statement of this block (this task or thread), each with
        ``set_config(name, value, true)``: transaction-local, so they never outlive a statement
        or transaction, nor reach another borrower of the connection.

        Row-level security policies read them with ``current_setting('app.tenant_id', true)``:

        >>> with db.local_settings({"app.tenant_id": merchant_id}):
        ...     rows = orders.find({"limit": 20})    # RLS sees app.tenant_id

        Statements outside a transaction get them in the same round trip (a pipeline); a
        transaction begun inside the block gets them right after BEGIN.
        """
        pairs = check_settings(settings)
        token = self._settings.set(self._settings.get() + pairs)
        try:
            yield
        finally:
            self._settings.reset(token)

    def _local(self, timeout_ms: int | None = None) -> Settings:
        """Settings for a statement or transaction: behind PgBouncer, the configured
        statement_timeout first; then the current block's; then a statement_timeout (client
        policies)."""
        pairs = self._base + self._settings.get() if self._base else self._settings.get()
        if timeout_ms is not None:
            pairs = (*pairs, ("statement_timeout", str(timeout_ms)))
        return pairs

    def _run(
        self,
        conn: psycopg.Connection[Any],
        sql: Any,
        params: Any,
        *,
        settings: Settings = (),
        in_transaction: bool = False,
    ) -> psycopg.Cursor[Any]:
        """Execute one statement with transaction-local `settings`: outside a transaction, in
        one round trip with them (a pipeline: both run in one implicit transaction); inside
        one, a ``statement_timeout`` of a client policy is set for this statement and put back.
        """
        if not settings:
            return conn.execute(sql, params)
        pooled = self._pooler_of(conn)
        if not in_transaction:
            if pooled:  # no pipeline behind PgBouncer (see settings_script): a transaction
                conn.execute(settings_script("BEGIN", settings))
                cursor = conn.execute(sql, params)  # its rows are read already
                conn.execute("COMMIT", prepare=False)
                return cursor
            with conn.pipeline():
                conn.execute(set_config_sql(len(settings)), _flat(settings))
                cursor = conn.execute(sql, params)
            return cursor
        # The block's settings (and the configured timeout, behind PgBouncer) were applied at
        # BEGIN: only a client policy's timeout, which comes after them, is set here.
        timeout = [v for n, v in settings[len(self._base) :] if n == "statement_timeout"]
        if not timeout:
            return conn.execute(sql, params)
        if pooled:
            conn.execute(_SAVE_TIMEOUT, [timeout[-1]])
            cursor = conn.execute(sql, params)
            conn.execute(_RESTORE_TIMEOUT)
            return cursor
        with conn.pipeline():
            conn.execute(_SAVE_TIMEOUT, [timeout[-1]])
            cursor = conn.execute(sql, params)
            conn.execute(_RESTORE_TIMEOUT)
        return cursor

    # -- transactions ----------------------------------------------------------------------------

    def transaction(
        self,
        *,
        isolation: str | None = None,
        read_only: bool = False,
        settings: Mapping[str, str] | None = None,
    ) -> TransactionBlock:
        """A transaction block: commits at the end, rolls back on any exception.

        >>> with db.transaction(isolation="serializable") as tx:
        ...     repo.create({"name": "a"}, transaction=tx)

        Used inside another block of this database (same task) it makes a savepoint.
        ``isolation``: "read committed", "repeatable read" or "serializable". ``settings``:
        transaction-local settings (``set_config(name, value, true)``) for row-level security,
        added to those of an enclosing `local_settings` block.
        """
        return TransactionBlock(
            self,
            isolation=isolation,
            read_only=read_only,
            settings=check_settings(settings or {}),
        )

    def begin_transaction(
        self,
        *,
        isolation: str | None = None,
        read_only: bool = False,
        settings: Mapping[str, str] | None = None,
    ) -> Transaction:
        """Begin a transaction and return its handle; end it with ``commit()`` or ``rollback()``.

        >>> tx = db.begin_transaction(read_only=True)
        >>> rows = repo.find({"limit": 10}, transaction=tx)
        >>> tx.commit()
        """
        return begin(
            self,
            isolation=isolation,
            read_only=read_only,
            settings=check_settings(settings or {}),
        )

    # -- statements of the caller's --------------------------------------------------------------

    def execute(
        self,
        query: Any,
        params: Sequence[Any] | Mapping[str, Any] | None = None,
        *,
        transaction: Transaction | Autocommit | None = None,
    ) -> int:
        """Run one statement; returns the affected row count. Outside a transaction block it is
        its own transaction; inside one (or with ``transaction=tx``) it joins it.

        Statements that change the session (``SET``, ``LISTEN``, temporary tables...) do not
        outlive the call: the connection is reset before anyone else borrows it.
        """
        cursor = self._statement(query, params, transaction)
        return cursor.rowcount

    def fetch_all(
        self,
        query: Any,
        params: Sequence[Any] | Mapping[str, Any] | None = None,
        *,
        transaction: Transaction | Autocommit | None = None,
    ) -> list[tuple[Any, ...]]:
        """Run a query and return all rows as tuples (joins the ambient transaction)."""
        cursor = self._statement(query, params, transaction, "fetch_all")
        return cursor.rows

    def fetch_value(
        self,
        query: Any,
        params: Sequence[Any] | Mapping[str, Any] | None = None,
        *,
        transaction: Transaction | Autocommit | None = None,
    ) -> Any:
        """Run a query and return the first column of the first row (None if no row)."""
        rows = (self._statement(query, params, transaction, "fetch_value")).rows
        return rows[0][0] if rows else None

    # -- watching -------------------------------------------------------------------------------

    def add_query_hook(self, hook: QueryHook) -> Callable[[], None]:
        """Call `hook` with a `QueryEvent` after every statement of this database (see
        `nxdata.observe`); returns a function that removes it.

        >>> remove = db.add_query_hook(lambda event: metrics.observe(event.duration))
        """
        return self._observer.add(hook)

    def watch_queries(self) -> AbstractContextManager[list[QueryEvent]]:
        """The statements run on this database while the block runs, as `QueryEvent` s.

        >>> with db.watch_queries() as events:
        ...     repo.find({"where": {"status": "open"}})
        >>> [e.method for e in events]
        ['find']
        """
        return self._observer.watch()

    def _statement(
        self,
        query: Any,
        params: Any,
        transaction: Transaction | Autocommit | None,
        method: str = "execute",
    ) -> _Result:
        """Run a statement of the caller's in `transaction` (or the ambient one; else on its own,
        autocommit) with the block's local settings; its rows are read before the connection
        goes back. A connection lost while it ran outside a transaction is `OutcomeUnknown`."""
        tx = self._transaction(transaction)
        if self._pooler:
            refusal = pooler_refusal(query)
            if refusal is not None:
                raise ConfigurationError(refusal)
        conn = tx._connection() if tx is not None else self._acquire()
        if changes_session(query):
            self.mark_dirty(conn)
        started = self._observer.start()
        try:
            cursor = self._run(
                conn, query, params, settings=self._local(), in_transaction=tx is not None
            )
            rows = cursor.fetchall() if cursor.description is not None else []
            if started is not None:
                count = len(rows) if cursor.description is not None else cursor.rowcount
                self._observer.done(started, query, _listed(params), method=method, rows=count)
            return _Result(cursor.rowcount, rows)
        except psycopg.Error as exc:
            error = map_database_error(exc)
            if tx is None and isinstance(error, ConnectionFailed):
                error = unknown_outcome(error, "the statement")
            if started is not None:
                self._observer.done(started, query, _listed(params), method=method, error=error)
            raise error from exc
        finally:
            if tx is None:
                self._release(conn)

    # -- reads sent together ---------------------------------------------------------------------

    @overload
    def read_together(
        self,
        a: Deferred[R1],
        b: Deferred[R2],
        /,
        *,
        transaction: Transaction | Autocommit | None = None,
    ) -> tuple[R1, R2]: ...

    @overload
    def read_together(
        self,
        a: Deferred[R1],
        b: Deferred[R2],
        c: Deferred[R3],
        /,
        *,
        transaction: Transaction | Autocommit | None = None,
    ) -> tuple[R1, R2, R3]: ...

    @overload
    def read_together(
        self, *reads: Deferred[Any], transaction: Transaction | Autocommit | None = None
    ) -> tuple[Any, ...]: ...

    def read_together(
        self, *reads: Deferred[Any], transaction: Transaction | Autocommit | None = None
    ) -> tuple[Any, ...]:
        """Run deferred reads (``repo.later.find(...)``, see `nxdata.batch`) in one round trip:
        every statement is sent on one connection before any answer is awaited (psycopg's
        pipeline mode). Returns their results, in order, typed as the repository methods'.

        >>> user, orders_ = db.read_together(
        ...     users.later.find_by_id(7), orders.later.find({"where": {"user_id": 7}})
        ... )

        Outside a transaction the reads are independent statements, on a replica when there are
        replicas, run again on a fresh connection if theirs is lost. The first that fails
        raises its error.
        """
        deferred = check_reads(reads)
        if not deferred:
            return ()
        for read in deferred:
            if read.repository.db is not self:
                raise TypeError(
                    f"{read!r} was made by a repository of another database handle: "
                    "read_together runs reads of this database only"
                )
        tx = self._transaction(transaction)
        settings = self._local() if tx is None else ()
        timeouts = [
            policy.timeout_ms
            for read in deferred
            if (policy := read.repository.policy).client and policy.timeout_ms is not None
        ]
        inner_timeout: str | None = None
        if timeouts and tx is None:  # client reads: the strictest of their policies' timeouts
            settings = (*settings, ("statement_timeout", str(min(timeouts))))
        elif timeouts:  # in a transaction: set for these reads, then put back
            inner_timeout = str(min(timeouts))
        for attempt in range(3):
            conn = tx._connection() if tx is not None else self._acquire(write=False)
            started = self._observer.start()
            try:
                if self._pooler_of(conn):  # no pipeline behind PgBouncer: one by one
                    if inner_timeout is not None:
                        conn.execute(_SAVE_TIMEOUT, [inner_timeout])
                    rows = _read_one_by_one(conn, deferred, settings)
                    if inner_timeout is not None:
                        conn.execute(_RESTORE_TIMEOUT)
                else:
                    with conn.pipeline():  # one implicit transaction: settings once
                        if settings:
                            conn.execute(set_config_sql(len(settings)), _flat(settings))
                        if inner_timeout is not None:
                            conn.execute(_SAVE_TIMEOUT, [inner_timeout])
                        cursors = []
                        for read in deferred:
                            cursors.append(conn.execute(read.statement.sql, read.params))
                        if inner_timeout is not None:
                            conn.execute(_RESTORE_TIMEOUT)
                        rows = []
                        for read, cursor in zip(deferred, cursors, strict=True):
                            rows.append(cursor.fetchall() if read.mode == 0 else cursor.fetchone())
            except psycopg.Error as exc:
                error = map_database_error(exc)
                if tx is None and isinstance(error, ConnectionFailed) and attempt < 2:
                    continue  # reads changed nothing: again, on a fresh connection
                if started is not None:
                    self._observer.done(
                        started, "read_together", None, method="read_together", error=error
                    )
                raise error from exc
            finally:
                if tx is None:
                    self._release(conn)
            if started is not None:
                self._observer.done(
                    started,
                    "; ".join(r.statement.sql for r in deferred),
                    None,
                    method="read_together",
                    rows=len(deferred),
                )
            return tuple(read.decode(found) for read, found in zip(deferred, rows, strict=True))
        raise AssertionError("unreachable")  # pragma: no cover

    # -- retries ---------------------------------------------------------------------------------

    def run_in_transaction(
        self,
        work: Callable[[Transaction], R],
        *,
        retries: int = 5,
        isolation: str | None = None,
        read_only: bool = False,
        settings: Mapping[str, str] | None = None,
        backoff: float = 0.02,
        max_backoff: float = 1.0,
        on_retry: Callable[[int, BaseException, float], Any] | None = None,
    ) -> R:
        """Run ``work(tx)`` in a transaction, again (up to `retries` more times, after a
        jittered exponential backoff) when it fails for reasons of concurrency or a lost
        connection: `TransientError` (serialization failure, deadlock) or `ConnectionFailed`
        before COMMIT was sent — never `OutcomeUnknown` (COMMIT sent, outcome unknown), never
        any other error. ``tx.attempt`` says which run this is; each retry is logged (logger
        ``nxdata``, WARNING) and passed to ``on_retry(attempt, error, delay)``; the error that
        ends the retries carries ``attempts``.

        >>> def transfer(tx):
        ...     a = wallets.find_by_id(src)          # joins tx: it is the ambient one
        ...     wallets.update_by_id(src, {"balance": a.balance - 10})
        >>> db.run_in_transaction(transfer, isolation="serializable")

        `work` must be safe to run again (no side effects outside the database). Inside an
        enclosing transaction there is nothing to retry on its own: `work` runs once, in a
        savepoint, and a failure goes to whoever runs the enclosing transaction.
        """
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        if self._ambient_transaction() is not None:
            with self.transaction() as inner:
                return work(inner)
        attempt = 1
        while True:
            try:
                with self.transaction(
                    isolation=isolation, read_only=read_only, settings=settings
                ) as tx:
                    tx.attempt = attempt
                    return work(tx)
            except (TransientError, ConnectionFailed) as exc:
                if isinstance(exc, OutcomeUnknown) or attempt > retries:
                    exc.attempts = attempt
                    raise
                delay = min(max_backoff, backoff * 2 ** (attempt - 1))
                delay *= random.uniform(0.5, 1.5)  # jitter: retries of a conflict do not meet again
                logger.warning(
                    "transaction attempt %d of %d failed (%s: %s); retrying in %.0f ms",
                    attempt,
                    retries + 1,
                    type(exc).__name__,
                    str(exc).splitlines()[0],
                    delay * 1000,
                )
                if on_retry is not None:
                    on_retry(attempt, exc, delay)
                sleep(delay)
                attempt += 1

    def transactional(
        self,
        *,
        retries: int = 5,
        isolation: str | None = None,
        read_only: bool = False,
    ) -> Callable[[Callable[Concatenate[Transaction, P], R]], Callable[P, R]]:
        """A decorator: the function runs through `run_in_transaction`, its transaction passed
        first.

        >>> @db.transactional(isolation="serializable")
        ... def transfer(tx, src, dst, amount): ...
        >>> transfer(a, b, 10)
        """

        def decorate(
            function: Callable[Concatenate[Transaction, P], R],
        ) -> Callable[P, R]:
            @functools.wraps(function)
            def run(*args: P.args, **kwargs: P.kwargs) -> R:
                def work(tx: Transaction) -> R:
                    return function(tx, *args, **kwargs)

                return self.run_in_transaction(
                    work, retries=retries, isolation=isolation, read_only=read_only
                )

            return run

        return decorate


class _Result:
    """What a statement of the caller's returned, read before its connection went back."""

    __slots__ = ("rowcount", "rows")

    def __init__(self, rowcount: int, rows: list[tuple[Any, ...]]) -> None:
        self.rowcount, self.rows = rowcount, rows


# DISCARD ALL without DEALLOCATE ALL: psycopg keeps its own prepared statements (and would not
# notice them gone). Settings, role, cursors, notifications, advisory locks, temporary objects.
_RESET_SESSION = (
    "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; "
    "SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES"
)


def _listed(params: Any) -> Sequence[Any] | None:
    """Parameters as a sequence for a `QueryEvent` (a mapping's values)."""
    if params is None or isinstance(params, Sequence):
        return params
    if isinstance(params, Mapping):
        return list(params.values())
    return None


def _server(url: str) -> tuple[str | None, int | None, str | None]:
    """Host, port and database name of a URL, for spans."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.Error:
        return None, None, None
    port = str(info.get("port") or "").split(",")[0]
    host = str(info.get("host") or "").split(",")[0] or None
    name = info.get("dbname")
    return host, int(port) if port.isdigit() else None, str(name) if name else None


def _alive(conn: psycopg.Connection[Any]) -> bool:
    """Whether a pooled connection is still usable, without a round trip: an idle connection
    has nothing to read, so a readable socket means the server said goodbye (a shutdown, a
    terminated backend) or closed it; a notification is read and the socket looked at again."""
    if conn.closed:
        return False
    pgconn = conn.pgconn
    try:
        if pgconn.status != _OK:
            return False
        fd = pgconn.socket
        if not select.select([fd], [], [], 0)[0]:
            return True
        pgconn.consume_input()
        return pgconn.status == _OK and not select.select([fd], [], [], 0)[0]
    except (OSError, ValueError, psycopg.Error):
        return False


def unknown_outcome(error: ConnectionFailed, what: str) -> OutcomeUnknown:
    """`OutcomeUnknown` for a connection lost after `what` was sent outside a transaction."""
    if isinstance(error, OutcomeUnknown):
        return error
    return OutcomeUnknown(
        f"the connection was lost after {what} was sent: it may have been applied or not ({error})",
        original=error.original,
        sqlstate=error.sqlstate,
    )


def _read_one_by_one(
    conn: psycopg.Connection[Any], deferred: Sequence[Deferred[Any]], settings: Settings
) -> list[Any]:
    """`read_together` without pipeline mode (behind PgBouncer): one transaction, the reads one
    after another."""
    if settings:
        conn.execute(settings_script("BEGIN", settings))
    rows = []
    for read in deferred:
        cursor = conn.execute(read.statement.sql, read.params)
        rows.append(cursor.fetchall() if read.mode == 0 else cursor.fetchone())
    if settings:
        conn.execute("COMMIT", prepare=False)
    return rows


def _flat(settings: Settings) -> list[str]:
    return [item for pair in settings for item in pair]


# A client policy's statement_timeout inside a transaction: set for one statement, then put back
# (the previous value kept in a setting of nxdata's own).
_SAVE_TIMEOUT = (
    "SELECT set_config('nxdata.saved_timeout', current_setting('statement_timeout'), true), "
    "set_config('statement_timeout', %s, true)"
)
_RESTORE_TIMEOUT = (
    "SELECT set_config('statement_timeout', current_setting('nxdata.saved_timeout'), true)"
)


def _commit(conn: psycopg.Connection[Any]) -> None:
    # COMMIT after a failed statement is answered with ROLLBACK, silently: say so instead.
    if conn.pgconn.transaction_status == _INERROR:
        raise TransactionError(_FAILED)  # the caller's _release rolls back
    try:
        conn.commit()
    except psycopg.Error as exc:
        raise map_database_error(exc) from exc


_FAILED = (
    "the transaction was rolled back, not committed: a statement in it failed earlier, and "
    "PostgreSQL ignores everything after an error until the transaction ends. To go on after an "
    "error you expect, run the statement that may fail in `with conn.transaction():` "
    "(a savepoint)"
)
