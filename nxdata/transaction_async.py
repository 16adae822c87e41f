"""Transactions on a database: begin/commit/rollback, isolation, savepoints, the ambient
transaction of a block.

>>> async with db.transaction(isolation="serializable"):
...     wallet = await wallets.find_by_id(wallet_id, lock=Lock.UPDATE)   # joins the block
...     async with db.transaction():          # nested use: a savepoint
...         await wallets.update_by_id(wallet_id, {"amount": 0})

The sync twin `transaction.py` is generated from this file by ``nxdata/_async_to_sync.py``.
"""

from __future__ import annotations

from contextlib import suppress
from contextvars import Token
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import psycopg

from ._connect import set_config_sql, settings_script
from .errors import (
    ConnectionFailed,
    DatabaseError,
    OutcomeUnknown,
    TransactionError,
    map_database_error,
)

if TYPE_CHECKING:
    from .database_async import AsyncDatabase

__all__ = ["AsyncTransaction", "AsyncTransactionBlock", "Isolation", "begin_sql"]

Isolation = Literal["read committed", "repeatable read", "serializable"]

_INERROR = psycopg.pq.TransactionStatus.INERROR

# PostgreSQL answers COMMIT with ROLLBACK once a statement of the transaction has failed (even if
# the caller caught the error), and psycopg does not complain: without these, a commit could lose
# the data silently.
_FAILED_TRANSACTION = (
    "the transaction was rolled back, not committed: a statement in it failed earlier, and "
    "PostgreSQL ignores everything after an error until the transaction ends. To go on after an "
    "error you expect, run the statement that may fail in a nested block: "
    "`async with db.transaction() as inner:` inside the transaction makes a savepoint, and an "
    "error in it rolls back only that block"
)
_FAILED_SAVEPOINT = (
    "the savepoint was rolled back, not released: a statement in it failed earlier. The "
    "enclosing transaction is as it was before the savepoint and goes on only if this error is "
    "caught (uncaught, it ends the enclosing block too, which rolls back); to ignore an "
    "expected error, catch it outside the nested block, which then rolls back its savepoint"
)

_ISOLATION: dict[str, str] = {
    "read committed": "READ COMMITTED",
    "repeatable read": "REPEATABLE READ",
    "serializable": "SERIALIZABLE",
}


def begin_sql(isolation: str | None, read_only: bool) -> str:
    """The BEGIN statement for an isolation level and access mode (names are checked).

    >>> begin_sql("serializable", True)
    'BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY'
    """
    sql = "BEGIN"
    if isolation is not None:
        level = _ISOLATION.get(isolation.lower().replace("_", " "))
        if level is None:
            raise TransactionError(
                f"unknown isolation level {isolation!r} (one of {', '.join(_ISOLATION)})"
            )
        sql += " ISOLATION LEVEL " + level
    if read_only:
        sql += " READ ONLY"
    return sql


class AsyncTransaction:
    """An open transaction (or savepoint) on one pooled connection.

    Pass it to repository methods as ``transaction=tx``. ``commit()`` / ``rollback()`` end it and
    give the connection back to the pool; using it afterwards raises `TransactionError`. As a
    context manager it commits on success and rolls back on any exception.

    >>> tx = await db.begin_transaction(isolation="repeatable read")
    >>> try:
    ...     await repo.create({"name": "a"}, transaction=tx)
    ...     await tx.commit()
    ... except BaseException:
    ...     await tx.rollback()
    ...     raise
    """

    __slots__ = (
        "_children",
        "_conn",
        "_db",
        "_done",
        "_parent",
        "_savepoint",
        "attempt",
        "isolation",
    )

    def __init__(
        self,
        db: AsyncDatabase,
        conn: psycopg.AsyncConnection[Any],
        *,
        parent: AsyncTransaction | None = None,
        savepoint: str | None = None,
        isolation: str | None = None,
    ) -> None:
        self._db = db
        self._conn = conn
        self._parent = parent
        self._savepoint = savepoint
        self._done = False
        self._children = 0
        self.isolation = isolation
        self.attempt: int = parent.attempt if parent is not None else 1
        """Which run of `AsyncDatabase.run_in_transaction` this is (1 for the first)."""

    def __repr__(self) -> str:
        kind = f"savepoint {self._savepoint}" if self._savepoint else "transaction"
        return f"<{type(self).__name__} {kind} {'active' if self.active else 'finished'}>"

    @property
    def active(self) -> bool:
        """True until this transaction (or an enclosing one) is committed or rolled back."""
        tx: AsyncTransaction | None = self
        while tx is not None:
            if tx._done:
                return False
            tx = tx._parent
        return True

    @property
    def connection(self) -> psycopg.AsyncConnection[Any]:
        """The connection the transaction runs on, for statements of your own; `TransactionError`
        once it has ended. What they change in the session (``SET``...) is reset when the
        connection goes back to the pool."""
        conn = self._connection()
        self._db.mark_dirty(conn)
        return conn

    def _connection(self) -> psycopg.AsyncConnection[Any]:
        """The connection, for nxdata's own statements (no session changes)."""
        if self._done or (self._parent is not None and not self.active):
            raise TransactionError(f"{self!r} was already committed or rolled back")
        return self._conn

    @property
    def is_savepoint(self) -> bool:
        """True for a nested transaction (a SAVEPOINT inside another transaction)."""
        return self._savepoint is not None

    async def commit(self) -> None:
        """Commit (or release the savepoint). Errors such as a serialization failure surface here
        as nxdata errors, and the transaction is over either way.

        If a statement of the transaction failed (even one whose error was caught), it cannot be
        committed: it is rolled back and `TransactionError` says so; a savepoint is rolled back
        to, which leaves the enclosing transaction usable.
        """
        conn = self._connection()
        self._done = True
        failed = conn.pgconn.transaction_status == _INERROR
        if self._savepoint is not None:
            if failed:
                await _rollback(conn, self._savepoint)
                raise TransactionError(_FAILED_SAVEPOINT)
            await _run(conn, f"RELEASE SAVEPOINT {self._savepoint}")
            return
        try:
            if failed:
                await _rollback(conn, None)
                raise TransactionError(_FAILED_TRANSACTION)
            try:
                await _run(conn, "COMMIT")
            except ConnectionFailed as exc:
                raise OutcomeUnknown(
                    "the connection was lost during COMMIT: the transaction may or may not have "
                    f"been committed ({exc})",
                    original=exc.original,
                    sqlstate=exc.sqlstate,
                ) from exc
        finally:
            await self._db._release(conn)

    async def rollback(self) -> None:
        """Roll back (to the savepoint, for a nested transaction).

        Never fails because the connection was lost: the server has ended the transaction then.
        """
        conn = self._connection()
        self._done = True
        if self._savepoint is not None:
            await _rollback(conn, self._savepoint)
            return
        try:
            await _rollback(conn, None)
        finally:
            await self._db._release(conn)

    async def begin_savepoint(self) -> AsyncTransaction:
        """Open a savepoint inside this transaction; returns it as a nested transaction."""
        conn = self._connection()
        root: AsyncTransaction = self
        while root._parent is not None:
            root = root._parent
        root._children += 1
        name = f"nxdata_sp_{root._children}"  # generated, never from user input
        await _run(conn, f"SAVEPOINT {name}")
        return type(self)(self._db, conn, parent=self, savepoint=name)

    def savepoint(self) -> AsyncTransactionBlock:
        """A nested block: ``async with tx.savepoint() as inner: ...`` rolls back only its work."""
        return AsyncTransactionBlock(self._db, parent=self)

    async def __aenter__(self) -> AsyncTransaction:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await _finish(self, exc)


class AsyncTransactionBlock:
    """What ``db.transaction()`` returns: ``async with`` it to run a block in a transaction.

    Inside the block, the transaction is *ambient*: repository calls and ``db.execute`` /
    ``fetch_*`` that pass no ``transaction=`` join it. Inside another block of the same
    database (same task) it opens a savepoint instead.
    """

    __slots__ = ("_db", "_isolation", "_parent", "_read_only", "_settings", "_token", "_tx")

    def __init__(
        self,
        db: AsyncDatabase,
        *,
        isolation: str | None = None,
        read_only: bool = False,
        parent: AsyncTransaction | None = None,
        settings: tuple[tuple[str, str], ...] = (),
    ) -> None:
        if isolation is not None:
            begin_sql(isolation, read_only)  # fail early on a misspelt level
        self._db = db
        self._isolation = isolation
        self._read_only = read_only
        self._parent = parent
        self._settings = settings
        self._tx: AsyncTransaction | None = None
        self._token: Token[AsyncTransaction | None] | None = None

    async def __aenter__(self) -> AsyncTransaction:
        parent = self._parent
        if parent is None:
            current = self._db._ambient.get()
            if current is not None and current.active:
                parent = current
        if parent is not None:
            tx = await parent.begin_savepoint()
            if self._settings:  # local to the transaction: they outlive the savepoint's release
                await _apply_settings(tx._connection(), self._settings)
        else:
            tx = await begin(
                self._db,
                isolation=self._isolation,
                read_only=self._read_only,
                settings=self._settings,
            )
        self._tx = tx
        self._token = self._db._ambient.set(tx)
        return tx

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._tx is not None and self._token is not None
        # Exited in another context (e.g. a different task): there is nothing to undo there.
        with suppress(ValueError):
            self._db._ambient.reset(self._token)
        await _finish(self._tx, exc)


async def begin(
    db: AsyncDatabase,
    *,
    isolation: str | None = None,
    read_only: bool = False,
    settings: tuple[tuple[str, str], ...] = (),
) -> AsyncTransaction:
    """Borrow a connection and BEGIN on it (see `AsyncDatabase.begin_transaction`), then apply
    the transaction-local settings of the current `local_settings` block and `settings`."""
    sql = begin_sql(isolation, read_only)
    settings = db._local() + settings
    for attempt in (1, 2):
        conn = await db._acquire(write=True)  # transactions run on the primary
        if read_only:
            db._not_a_write(conn)  # read-your-writes does not start
        try:
            if settings and db._pooler_of(conn):  # one round trip without pipeline mode
                await conn.execute(settings_script(sql, settings))
            elif settings:
                async with conn.pipeline():  # one round trip
                    await conn.execute(sql, prepare=False)
                    await _apply_settings(conn, settings)
            else:
                await conn.execute(sql, prepare=False)  # see `_run`
        except BaseException as exc:
            await db._release(conn)
            if not isinstance(exc, psycopg.Error):
                raise
            error = map_database_error(exc)
            # Lost before the transaction began: nothing happened, another connection will do
            # (the connection died between its check and BEGIN).
            if isinstance(error, ConnectionFailed) and attempt == 1:
                continue
            raise error from exc
        return AsyncTransaction(db, conn, isolation=isolation)
    raise AssertionError("unreachable")  # pragma: no cover


async def _apply_settings(
    conn: psycopg.AsyncConnection[Any], settings: tuple[tuple[str, str], ...]
) -> None:
    """``set_config(name, value, true)`` for each setting: local to the transaction."""
    try:
        await conn.execute(set_config_sql(len(settings)), [v for pair in settings for v in pair])
    except psycopg.Error as exc:
        raise map_database_error(exc) from exc


async def _finish(tx: AsyncTransaction, exc: BaseException | None) -> None:
    if not tx.active:
        return
    if exc is None:
        await tx.commit()
    else:
        try:
            await tx.rollback()
        except Exception:  # the original error matters more than a failed rollback
            if tx._savepoint is None:
                return
            raise


async def _rollback(conn: psycopg.AsyncConnection[Any], savepoint: str | None) -> None:
    """Roll back the transaction, or to the savepoint and release it; a lost connection is fine."""
    try:
        if savepoint is None:
            await _run(conn, "ROLLBACK")
        else:
            await _run(conn, f"ROLLBACK TO SAVEPOINT {savepoint}")
            await _run(conn, f"RELEASE SAVEPOINT {savepoint}")
    except DatabaseError:
        # A closed connection has no transaction left to roll back (the server ended it with
        # the session); the pool discards the connection when it comes back.
        if not conn.closed:
            raise


async def _run(conn: psycopg.AsyncConnection[Any], sql: str) -> None:
    try:
        # Fixed text built here (savepoint names are generated). prepare=False: psycopg would
        # otherwise prepare BEGIN / COMMIT after `prepare_threshold` runs like any query, and
        # without parameters it sends them in the simple protocol: one message, no Parse/Bind.
        await conn.execute(sql, prepare=False)
    except psycopg.Error as exc:
        raise map_database_error(exc) from exc
