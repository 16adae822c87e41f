"""The nxdata error hierarchy: every error nxdata raises derives from `NxdataError`.

NxdataError
├── ConfigurationError          bad URL or option, missing module, missing folder, missing extra
│   └── DatabaseClosed          a Database used after close() (open() reopens it)
├── DeclarationError            a table declaration that cannot be turned into SQL
├── ValidationError             untrusted data that does not fit a table's insert/update type
│   └── FilterError             a filter that does not fit the table it is applied to
├── TransactionError            a finished transaction used again, a lock outside a transaction
├── NotFoundError               a row that was required is not there
├── EmbeddedServerError         the embedded PostgreSQL could not be started
├── MigrationError              diff / migrate / check failures
│   ├── UnsafeMigrationError    hazards not allowed, rows that would fail (a refusal)
│   └── TamperedMigrationError  an applied migration file was changed afterwards
└── DatabaseError               anything PostgreSQL or the driver reported (keeps `.original`)
    ├── ConnectionFailed        the server cannot be reached, refused the connection, or lost it
    │   └── OutcomeUnknown      lost after a write or COMMIT was sent: it may have been applied
    ├── PoolTimeout             no connection became free in time
    ├── QueryCanceled           statement_timeout or cancellation
    ├── LockNotAvailable        NOWAIT lock or lock_timeout
    ├── PermissionDenied        a missing privilege, or a row-level security policy (42501)
    ├── IntegrityError
    │   ├── UniqueViolation     (alias: ConflictError)
    │   ├── ForeignKeyViolation
    │   ├── NotNullViolation
    │   └── CheckViolation
    └── TransientError          safe to retry the whole transaction
        ├── SerializationFailure
        ├── DeadlockDetected
        └── StalePlan           a prepared plan outlived a migration of its table
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
import psycopg_pool

from .values import clip

__all__ = [
    "CheckViolation",
    "ConfigurationError",
    "ConflictError",
    "ConnectionFailed",
    "DatabaseClosed",
    "DatabaseError",
    "DeadlockDetected",
    "DeclarationError",
    "EmbeddedServerError",
    "FilterError",
    "ForeignKeyViolation",
    "IntegrityError",
    "LockNotAvailable",
    "MigrationError",
    "NotFoundError",
    "NotNullViolation",
    "NxdataError",
    "OutcomeUnknown",
    "PermissionDenied",
    "PoolTimeout",
    "QueryCanceled",
    "SerializationFailure",
    "StalePlan",
    "TamperedMigrationError",
    "TransactionError",
    "TransientError",
    "UniqueViolation",
    "UnsafeMigrationError",
    "ValidationError",
    "map_database_error",
]


class NxdataError(Exception):
    """Root of every error nxdata raises."""


class ConfigurationError(NxdataError):
    """The environment or the arguments do not let nxdata start (bad URL, missing module...)."""


class DatabaseClosed(ConfigurationError):
    """A `Database` / `AsyncDatabase` was used after ``close()``.

    It does not reopen by itself (a pool nobody closes would leak); ``open()`` reopens it.
    """


class DeclarationError(NxdataError):
    """A table declaration is inconsistent: unknown column in an index, unsupported type, ..."""

    def __init__(self, message: str, *, table: str | None = None, column: str | None = None):
        self.table = table
        self.column = column
        where = ".".join(p for p in (table, column) if p)
        super().__init__(f"{where}: {message}" if where else message)


_MAX_REASON = 1000
"""Characters of a validation message kept (the rest quotes client input at length)."""


class ValidationError(NxdataError):
    """Data does not fit a table's row, insert or update type.

    `table` is the table's qualified name, `field` the offending field (or None when the whole
    payload is wrong, e.g. not an object), `reason` msgspec's explanation.
    """

    def __init__(self, reason: str, *, table: str | None = None, field: str | None = None):
        # Field names and reasons can quote client input (a megabyte-long key): kept short.
        field = clip(field) if field is not None else None
        reason = clip(reason, _MAX_REASON)
        self.table = table
        self.field = field
        self.reason = reason
        parts = []
        if table:
            parts.append(f"table {table}")
        if field:
            parts.append(f"field {field!r}")
        prefix = ", ".join(parts)
        super().__init__(f"invalid data for {prefix}: {reason}" if prefix else reason)


class FilterError(ValidationError):
    """A filter names an unknown column or operator, has a value of the wrong type, or bad paging.

    `part` is where in the filter the problem is, e.g. ``where.status.gtx`` or ``limit``.
    """

    def __init__(
        self,
        reason: str,
        *,
        table: str | None = None,
        part: str | None = None,
        field: str | None = None,
        operator: str | None = None,
    ):
        part = clip(part) if part is not None else None
        reason = clip(reason, _MAX_REASON)
        self.part = part
        self.operator = clip(operator) if operator is not None else None
        where = (f" for table {table}" if table else "") + (f" at {part}" if part else "")
        NxdataError.__init__(self, f"invalid filter{where}: {reason}")
        self.table = table
        self.field = clip(field) if field is not None else None
        self.reason = reason


class TransactionError(NxdataError):
    """A transaction was used after it ended, or something needs a transaction and got none."""


class NotFoundError(NxdataError):
    """A row that the caller required does not exist (or is soft-deleted)."""

    def __init__(self, message: str, *, table: str | None = None, id: Any = None):
        self.table = table
        self.id = id
        super().__init__(message)


class EmbeddedServerError(NxdataError):
    """The embedded PostgreSQL (pgserver) is not installed or did not start."""


class MigrationError(NxdataError):
    """A migration could not be generated, checked or applied."""


class UnsafeMigrationError(MigrationError):
    """The generated migration drops or narrows something; rerun with --unsafe to accept it."""

    def __init__(self, message: str, *, statements: list[str] | None = None):
        self.statements = statements or []
        super().__init__(message)


class TamperedMigrationError(MigrationError):
    """A migration file that was already applied has different content now."""


class DatabaseError(NxdataError):
    """PostgreSQL or the driver reported an error; `original` is the psycopg exception.

    `sqlstate`, `table`, `column` and `constraint` come from the server's diagnostics when given.
    `attempts`: how many times `run_in_transaction` ran the transaction that ended with it.
    """

    attempts: int = 1

    def __init__(
        self,
        message: str,
        *,
        original: BaseException | None = None,
        sqlstate: str | None = None,
        table: str | None = None,
        column: str | None = None,
        constraint: str | None = None,
    ):
        self.original = original
        self.sqlstate = sqlstate
        self.table = table
        self.column = column
        self.constraint = constraint
        super().__init__(message)


class ConnectionFailed(DatabaseError):
    """The server cannot be reached, refused the connection, or the connection was lost.

    A connection lost in a transaction takes the transaction with it (the server rolls it back):
    nothing was written, and the whole transaction can be run again (`run_in_transaction` does).
    Lost during COMMIT or during a write outside a transaction, it is `OutcomeUnknown`. The pool
    replaces the connection.
    """

    unknown_outcome = False


class OutcomeUnknown(ConnectionFailed):
    """The connection was lost after a write statement (or COMMIT) was sent: the server may
    have applied it or not, and nobody can tell from here. Unlike a plain `ConnectionFailed`
    (nothing was written), it is never retried by `Database.run_in_transaction`; check the
    data (or make the write idempotent) before doing it again."""

    unknown_outcome = True


class PoolTimeout(DatabaseError):
    """Every pooled connection stayed busy for longer than the pool's timeout."""


class QueryCanceled(DatabaseError):
    """The statement was cancelled, e.g. by statement_timeout."""


class LockNotAvailable(DatabaseError):
    """A row or table lock could not be taken (NOWAIT, or lock_timeout expired)."""


class PermissionDenied(DatabaseError):
    """The role may not do this: a privilege it lacks, or a row-level security policy that
    refused the row ("new row violates row-level security policy", SQLSTATE 42501)."""


class IntegrityError(DatabaseError):
    """A constraint rejected the write."""


class UniqueViolation(IntegrityError):
    """A unique constraint or unique index rejected the write; `constraint` names it."""


ConflictError = UniqueViolation


class ForeignKeyViolation(IntegrityError):
    """A foreign key rejected the write; `constraint` names it."""


class NotNullViolation(IntegrityError):
    """A NOT NULL column got no value; `column` names it."""


class CheckViolation(IntegrityError):
    """A CHECK constraint rejected the write; `constraint` names it."""


class TransientError(DatabaseError):
    """The transaction failed for reasons of concurrency: retrying it may succeed."""


class SerializationFailure(TransientError):
    """A serializable or repeatable-read transaction could not be serialized (SQLSTATE 40001)."""


class DeadlockDetected(TransientError):
    """PostgreSQL broke a deadlock by aborting this transaction (SQLSTATE 40P01)."""


class StalePlan(TransientError):
    """A statement prepared before a migration changed its table can no longer run ("cached
    plan must not change result type", SQLSTATE 0A000). Outside a transaction nxdata drops the
    connection's prepared statements and runs the statement again; inside one the transaction
    is lost, and running it again works (`run_in_transaction` does)."""


_BY_SQLSTATE: dict[str, type[DatabaseError]] = {
    "23505": UniqueViolation,
    "23503": ForeignKeyViolation,
    "23502": NotNullViolation,
    "23514": CheckViolation,
    "40001": SerializationFailure,
    "40P01": DeadlockDetected,
    "55P03": LockNotAvailable,
    "42501": PermissionDenied,
    "57014": QueryCanceled,
}

_BY_CLASS: dict[str, type[DatabaseError]] = {
    "23": IntegrityError,
    "40": TransientError,
    "08": ConnectionFailed,
}

# Operator intervention that ends the session: admin_shutdown (pg_terminate_backend or a server
# shutdown), crash_shutdown, cannot_connect_now, database_dropped, idle_session_timeout.
_SESSION_ENDED = frozenset({"57P01", "57P02", "57P03", "57P04", "57P05"})

# The driver's own reports of a lost connection carry no SQLSTATE; psycopg also raises
# OperationalError without one for requests the server never saw (e.g. too many parameters),
# so the message has to tell them apart.
_LOST = re.compile(
    r"connection is (closed|lost|bad)|connection socket closed|server closed the connection"
    r"|consuming input failed|could not (receive|send) data|no connection to the server"
    r"|SSL (SYSCALL error|connection has been closed)|connection to server .* failed"
    r"|flushing failed|terminating connection",
    re.IGNORECASE,
)

# SQLSTATE 25P02: the message alone does not say what to do about it.
_IN_FAILED_TRANSACTION_HINT = (
    "an earlier statement in this transaction failed, so PostgreSQL ignores the rest: roll the "
    "transaction back, or run statements that may fail in a savepoint (a `db.transaction()` "
    "block nested in the transaction makes one)"
)


def _error_class(exc: BaseException, sqlstate: str | None) -> type[DatabaseError]:
    if sqlstate:
        if sqlstate in _SESSION_ENDED:
            return ConnectionFailed
        return _BY_SQLSTATE.get(sqlstate) or _BY_CLASS.get(sqlstate[:2], DatabaseError)
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return PoolTimeout
    if isinstance(exc, psycopg.OperationalError) and not isinstance(exc, psycopg_pool.PoolClosed):
        pgconn = exc.pgconn
        if pgconn is not None and pgconn.status == psycopg.pq.ConnStatus.BAD:
            return ConnectionFailed
        if _LOST.search(str(exc)):
            return ConnectionFailed
    return DatabaseError


def is_stale_plan(exc: BaseException) -> bool:
    """Whether a psycopg error is PostgreSQL's "cached plan must not change result type"."""
    return getattr(exc, "sqlstate", None) == "0A000" and "cached plan" in str(exc)


def map_database_error(exc: BaseException) -> DatabaseError:
    """Translate a psycopg error into the matching nxdata error, keeping it as `original`.

    The message names the constraint, table and column that the server reported. A connection
    lost on the way (server gone, backend terminated) is `ConnectionFailed`.
    """
    diag = getattr(exc, "diag", None)
    sqlstate = getattr(exc, "sqlstate", None)
    table = getattr(diag, "table_name", None) if diag else None
    schema = getattr(diag, "schema_name", None) if diag else None
    column = getattr(diag, "column_name", None) if diag else None
    constraint = getattr(diag, "constraint_name", None) if diag else None
    if table and schema:
        table = f"{schema}.{table}"
    cls = StalePlan if is_stale_plan(exc) else _error_class(exc, sqlstate)
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    details = []
    if constraint:
        details.append(f"constraint {constraint}")
    if table:
        details.append(f"table {table}")
    if column:
        details.append(f"column {column}")
    message = first_line + (f" ({', '.join(details)})" if details else "")
    if sqlstate == "25P02":
        message += f": {_IN_FAILED_TRANSACTION_HINT}"
    return cls(
        message,
        original=exc,
        sqlstate=sqlstate,
        table=table,
        column=column,
        constraint=constraint,
    )
