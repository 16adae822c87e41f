"""`AsyncDatabase`: a psycopg async connection pool with nxdata's settings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg
import psycopg_pool

from ._connect import connection_failed, pool_options, pool_timeout, resolve_url
from .config import database_url, redact
from .embedded import EmbeddedPostgres
from .errors import DatabaseClosed, TransactionError, map_database_error
from .transaction_async import AsyncTransaction, AsyncTransactionBlock, begin

_IDLE = psycopg.pq.TransactionStatus.IDLE
_INERROR = psycopg.pq.TransactionStatus.INERROR

__all__ = ["AsyncDatabase"]


class AsyncDatabase:
    """The asyncio twin of `Database`: same options, same errors, ``await``-able methods.

    >>> async with AsyncDatabase(url, max_size=20) as db:
    ...     async with db.connection() as conn:
    ...         await conn.execute("select 1")
    """

    def __init__(self, url: str | None = None, *, name: str = "nxdata-async", **options: Any):
        self.url = resolve_url(url)
        self.name = name
        self.options = pool_options(options, type(self).__name__)
        self._pool: psycopg_pool.AsyncConnectionPool[Any] | None = None
        self._embedded: EmbeddedPostgres | None = None
        self._closed = False  # close() was called: no more lazy opening
        self._opening = asyncio.Lock()

    def __repr__(self) -> str:
        state = "open" if self._pool is not None else "closed"
        return f"AsyncDatabase({redact(self.url)!r}, {state})"

    @classmethod
    def embedded(
        cls, data_dir: str | Path | None = None, *, temporary: bool = False, **options: Any
    ) -> AsyncDatabase:
        """A database on an embedded PostgreSQL started now and stopped by `close`."""
        server = EmbeddedPostgres(data_dir, temporary=temporary)
        db = cls(server.start(), **options)
        db._embedded = server
        return db

    @classmethod
    def from_env(cls, **options: Any) -> AsyncDatabase:
        """The database named by the environment, or an embedded one when none is set."""
        if database_url() is None:
            return cls.embedded(**options)
        return cls(**options)

    async def open(self) -> AsyncDatabase:
        """Check the server is reachable and open the pool (idempotent)."""
        if self._pool is not None:
            return self
        # Two threads (tasks) using a new database at once must open one pool, not two.
        async with self._opening:
            if self._pool is not None:
                return self
            kwargs = self.options.connect_kwargs()
            try:
                await (await psycopg.AsyncConnection.connect(self.url, **kwargs)).close()
            except psycopg.Error as exc:
                raise connection_failed(self.url, exc) from exc
            setup = self.options.session_setup()

            async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
                if setup:
                    await conn.execute(setup)
                    await conn.commit()

            pool: psycopg_pool.AsyncConnectionPool[Any] = psycopg_pool.AsyncConnectionPool(
                self.url,
                min_size=self.options.min_size,
                max_size=self.options.max_size,
                timeout=self.options.timeout,
                max_idle=self.options.max_idle,
                # Pooled connections are autocommit: a lone statement is one round trip (no BEGIN /
                # COMMIT); connection() and transactions open their own transactions.
                kwargs={**kwargs, "autocommit": True},
                name=self.name,
                open=False,
                configure=configure if setup else None,
            )
            try:
                await pool.open(wait=True, timeout=self.options.connect_timeout)
            except psycopg_pool.PoolTimeout as exc:
                await pool.close()
                raise connection_failed(self.url, exc) from exc
            self._pool = pool
            self._closed = False
            return self

    async def close(self) -> None:
        """Close the pool (waiting for connections in use) and stop an embedded server.

        Using the database afterwards raises `DatabaseClosed`; ``open()`` opens it again.
        """
        self._closed = True
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
        if self._embedded is not None:
            self._embedded.stop()

    async def __aenter__(self) -> AsyncDatabase:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def get_pool(self) -> psycopg_pool.AsyncConnectionPool[Any]:
        """The underlying psycopg pool (opened on first use; `DatabaseClosed` after ``close()``)."""
        if self._pool is None:
            if self._closed:
                raise DatabaseClosed(
                    f"{self!r} was closed: call open() (or enter `async with db:`) to use it again"
                )
            await self.open()
        assert self._pool is not None
        return self._pool

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """Borrow a connection: committed when the block ends, rolled back if it raises.

        Raises `PoolTimeout` when none becomes free within the pool timeout. An error at COMMIT
        (a deferred constraint, a serialization failure) is an nxdata error; so is committing
        after a statement failed in the block (`TransactionError`: it is rolled back instead).
        """
        conn = await self._acquire()
        try:
            await conn.set_autocommit(False)
            yield conn
            await _commit(conn)
        finally:
            await self._release(conn)  # rolls back what an exception left open

    # -- the connection choice and transactions --------------------------------------------------

    async def _acquire(self, *, write: bool = True) -> psycopg.AsyncConnection[Any]:
        """Borrow a connection in autocommit mode (one statement = one round trip).

        The single place that chooses where a statement runs: ``write=False`` marks reads, which
        may go to a replica pool once there is one. Pair every call with `_release`.
        """
        pool = self._pool if self._pool is not None else await self.get_pool()
        try:
            conn: psycopg.AsyncConnection[Any] = await pool.getconn()
        except psycopg_pool.PoolTimeout as exc:
            raise pool_timeout(self.name, self.options, exc) from exc
        except psycopg.OperationalError as exc:
            raise connection_failed(self.url, exc) from exc
        if not conn.autocommit:
            await conn.set_autocommit(True)
        return conn

    async def _release(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Give back a connection from `_acquire`: idle and in autocommit mode, as pooled."""
        try:
            if conn.pgconn.transaction_status != _IDLE:
                await conn.rollback()
            if not conn.autocommit:
                await conn.set_autocommit(True)
        except psycopg.Error:
            pass  # a broken connection: the pool notices and replaces it
        pool = self._pool
        if pool is not None:
            await pool.putconn(conn)

    def transaction(
        self, *, isolation: str | None = None, read_only: bool = False
    ) -> AsyncTransactionBlock:
        """A transaction block: commits at the end, rolls back on any exception.

        >>> async with db.transaction(isolation="serializable") as tx:
        ...     await repo.create({"name": "a"}, transaction=tx)

        Used inside another block of this database (same task) it makes a savepoint.
        ``isolation``: "read committed", "repeatable read" or "serializable".
        """
        return AsyncTransactionBlock(self, isolation=isolation, read_only=read_only)

    async def begin_transaction(
        self, *, isolation: str | None = None, read_only: bool = False
    ) -> AsyncTransaction:
        """Begin a transaction and return its handle; end it with ``commit()`` or ``rollback()``.

        >>> tx = await db.begin_transaction(read_only=True)
        >>> rows = await repo.find({"limit": 10}, transaction=tx)
        >>> await tx.commit()
        """
        return await begin(self, isolation=isolation, read_only=read_only)

    async def execute(self, query: Any, params: Any = None) -> int:
        """Run one statement in its own transaction; returns the affected row count."""
        async with self.connection() as conn:
            try:
                return (await conn.execute(query, params)).rowcount
            except psycopg.Error as exc:
                raise map_database_error(exc) from exc

    async def fetch_all(self, query: Any, params: Any = None) -> list[tuple[Any, ...]]:
        """Run a query and return all rows as tuples."""
        async with self.connection() as conn:
            try:
                return await (await conn.execute(query, params)).fetchall()
            except psycopg.Error as exc:
                raise map_database_error(exc) from exc

    async def fetch_value(self, query: Any, params: Any = None) -> Any:
        """Run a query and return the first column of the first row (None if no row)."""
        async with self.connection() as conn:
            try:
                row = await (await conn.execute(query, params)).fetchone()
            except psycopg.Error as exc:
                raise map_database_error(exc) from exc
        return None if row is None else row[0]


async def _commit(conn: psycopg.AsyncConnection[Any]) -> None:
    # COMMIT after a failed statement is answered with ROLLBACK, silently: say so instead.
    if conn.pgconn.transaction_status == _INERROR:
        raise TransactionError(_FAILED)  # the caller's _release rolls back
    try:
        await conn.commit()
    except psycopg.Error as exc:
        raise map_database_error(exc) from exc


_FAILED = (
    "the transaction was rolled back, not committed: a statement in it failed earlier, and "
    "PostgreSQL ignores everything after an error until the transaction ends. To go on after an "
    "error you expect, run the statement that may fail in `async with conn.transaction():` "
    "(a savepoint)"
)
