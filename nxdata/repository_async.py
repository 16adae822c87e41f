"""Repositories: typed reads and writes of one table through filters.

>>> users = AsyncRepository(db, User)
>>> await users.create({"email": "a@example.com", "name": "Ann"})
>>> await users.find({"where": {"name": {"ilike": "a%"}}, "order": ["name"], "limit": 20})

The executor is thin: statements come from `nxdata.compiler` (cached per shape), rows from
`nxdata.rows`. The sync `Repository` in ``repository.py`` is generated from this file.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import inspect
import itertools
import operator
import re
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Generic, Literal, Protocol, TypeVar, overload

import msgspec
import psycopg

from ._connect import changes_session, pooler_refusal, set_config_sql
from .ambient import Autocommit
from .batch import DeferredReads
from .compiler import (
    Compiled,
    CompiledQuery,
    Compiler,
    _Conv,
    _identity,
    _write_converter,
    trusted_key,
)
from .database_async import AsyncDatabase, unknown_outcome
from .errors import (
    ConfigurationError,
    ConnectionFailed,
    DatabaseError,
    DeclarationError,
    FilterError,
    StalePlan,
    TransactionError,
    ValidationError,
    map_database_error,
)
from .filters import Filter, FilterDict, WhereKey, check_conditions, split_filter, walk
from .locks import Lock
from .paging import Page, decode_cursor, encode_cursor
from .policy import TRUSTED, FilterPolicy
from .relations import Include, attach, parse_include, with_relations
from .rows import GC_PAUSE_ROWS, GcPause, blanked
from .table import ColumnDef, Table, table_of
from .transaction_async import AsyncTransaction
from .values import json_text_problem, shown

__all__ = ["AsyncRepository", "AsyncSoftDeletableRepository"]

T = TypeVar("T", bound=msgspec.Struct)
R = TypeVar("R", bound=msgspec.Struct)

FilterLike = Filter | FilterDict | Mapping[str, Any] | None
Tx = AsyncTransaction | Autocommit | None
"""``transaction=``: a transaction, `AUTOCOMMIT` (none, on purpose), or None: the ambient one."""
Where = Mapping[str, Any] | None
Data = Mapping[str, Any] | msgspec.Struct | bytes | str
Row = Data | tuple[Any, ...]
"""A row for `create_all`: a body (`Data`), or a tuple of the insert type's fields in order."""
"""A row to write: a mapping, a Struct, or JSON text (bytes or str), validated first."""


class SqlBuilder(Protocol):
    """Anything that renders SQL text with ``get_sql()``: a PyPika query or term."""

    def get_sql(self, **kwargs: Any) -> str: ...


Query = str | bytes | psycopg.sql.SQL | psycopg.sql.Composed | SqlBuilder

_ALL, _ONE, _COUNT = 0, 1, 2
_MAX_SHAPES = 4096  # a bound on the statement cache: shapes are few unless someone probes us
_ORDER_NAME = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)")


def _names(value: Any, part: str) -> tuple[str, ...]:
    """Column names given to `aggregate`: a list, or one name; each once."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise FilterError(f"{part} takes a list of names, not {value!r}", part=part)
    if len(set(value)) != len(value):
        raise FilterError(f"{part} names a column twice: {list(value)}", part=part)
    return tuple(value)


def _includes(filter: Any) -> bool:
    """Whether a filter includes relations (then its reads should come from one server)."""
    if isinstance(filter, Mapping):
        return bool(filter.get("include"))
    return isinstance(filter, Filter) and bool(filter.include)


def _key_text(key: Any, fold: bool) -> str:
    """A primary key as text (`fold`: in lower case, for uuid keys given as text)."""
    return str(key).lower() if fold else str(key)


class _Extras:
    """What a filter asks for besides its statement: relations to include, a page's order
    and keys, columns to select whatever ``fields`` says (see `AsyncRepository._extras`)."""

    __slots__ = ("blank", "extra", "includes", "keys", "limit", "order", "where")

    def __init__(
        self,
        includes: tuple[Include, ...],
        order: tuple[str, ...] | None,
        extra: tuple[str, ...],
        keys: tuple[tuple[ColumnDef, bool], ...],
        where: dict[str, Any] | None,
    ) -> None:
        self.includes, self.order, self.extra, self.keys = includes, order, extra, keys
        self.where = where
        self.limit: int | None = None  # a page's size
        # Fields selected for the library's own use (join keys, page keys) that the caller did
        # not ask for (outside ``fields``) or may not see (hidden): UNSET in the rows returned.
        self.blank: dict[str, Any] = {}


# The repository method of each statement kind, as `QueryEvent.method` reports it.
_METHODS = {
    "select": "find",
    "by_id": "find_by_id",
    "insert": "create",
    "insert_many": "create_all",
    "soft_delete_by_id": "delete_by_id",
    "soft_delete_all": "delete_all",
}
_MAX_OFFSET = 2**63 - 1  # a bigint: larger is a server error, so a FilterError here
_UNSET = msgspec.UNSET
_cursor_names = itertools.count(1)
_astuple = msgspec.structs.astuple
_COPY_CHUNK = 2000
"""Rows validated and converted at a time by a COPY: the server stores one chunk while the next
is prepared, so the work on our side overlaps the server's instead of preceding it."""
# A streamed COPY's own transaction, or its savepoint in the caller's: (begin, end, undo).
_COPY_OWN_TX = ("BEGIN", "COMMIT", ())
_COPY_IN_TX = (
    "SAVEPOINT nxdata_copy",
    "RELEASE SAVEPOINT nxdata_copy",
    ("ROLLBACK TO SAVEPOINT nxdata_copy", "RELEASE SAVEPOINT nxdata_copy"),
)


class AsyncRepository(Generic[T]):
    """Reads and writes of one declared table, rows typed as its Struct ``T``.

    >>> licenses = AsyncRepository(db, License, max_limit=500)
    >>> row = await licenses.find_by_id(license_id)
    >>> n = await licenses.count({"status": "active"})

    Every method takes ``transaction=`` (keyword-only); reads take ``lock=`` too, which needs a
    transaction. ``max_limit`` caps a filter's ``limit`` (`FilterError` above it; None: no cap).

    ``policy``: what filters and bodies may do (`TRUSTED`, the default, is for the code's own
    filters; give a client-facing repository a `FilterPolicy`, or derive one per call with
    `with_policy`). `scoped` binds the repository to a tenant (``merchant_id = X``).
    Hidden columns (``Column(hidden=True)``) are never returned unless ``fields`` names them.
    """

    soft_delete: bool = False

    def __init__(
        self,
        db: AsyncDatabase,
        row_type: type[T],
        *,
        max_limit: int | None = 1000,
        policy: FilterPolicy = TRUSTED,
    ) -> None:
        if not isinstance(policy, FilterPolicy):
            raise TypeError(f"policy= takes a FilterPolicy (or nx.TRUSTED), not {policy!r}")
        self.db = db
        self.row_type = row_type
        self.table: Table[T] = table_of(row_type)
        self.max_limit = max_limit
        self.policy = policy
        self.scope: dict[str, Any] = {}
        """The columns this repository is bound to (`scoped`), by field name."""
        self._scope_fields: tuple[str, ...] = ()
        self._scope_values: list[Any] = []
        self._compiler = Compiler(self.table)
        self._cache: dict[tuple[Any, ...], Compiled] = {}
        self._raw_decoders: dict[tuple[str, ...], Callable[[Sequence[Any]], T]] = {}
        self._name = self.table.qualified_name
        # The repositories of included relations, with their statement caches (shared, like
        # `_cache`, by the repositories derived from this one).
        self._related: dict[tuple[str, FilterPolicy], AsyncRepository[Any]] = {}

    def __repr__(self) -> str:
        extra = "" if not self.scope else f", scope={self.scope!r}"
        if self.policy is not TRUSTED:
            extra += ", client policy"
        return f"{type(self).__name__}({self.row_type.__name__}{extra})"

    # -- derived repositories ----------------------------------------------------------------------

    def with_policy(self, policy: FilterPolicy) -> AsyncRepository[T]:
        """This repository under another policy (shares the statement cache): per endpoint or
        per call, ``repo.with_policy(public).find(filter)``."""
        if not isinstance(policy, FilterPolicy):
            raise TypeError(f"with_policy() takes a FilterPolicy, not {policy!r}")
        derived = copy.copy(self)
        derived.policy = policy
        return derived

    def scoped(self, **columns: Any) -> AsyncRepository[T]:
        """This repository bound to a scope, e.g. one tenant: ``orders.scoped(merchant_id=m)``.

        Every read, count, update, delete and lock is ANDed with ``merchant_id = m`` outside
        the caller's where clause (no filter, a top-level ``or`` included, can widen it);
        every create sets it, and a body naming another value is a `ValidationError`; an
        upsert never updates a row of another scope. Scopes add up:
        ``repo.scoped(a=1).scoped(b=2)``. `query` runs your SQL as written: use row-level
        security (`AsyncDatabase.local_settings`) to scope it.
        """
        if not columns:
            raise TypeError("scoped() takes at least one column=value")
        scope = dict(self.scope)
        for name, value in columns.items():
            column = self.table.by_field.get(name) or self.table.by_name.get(name)
            if column is None:
                raise DeclarationError(f"scoped() names unknown column {name!r}", table=self._name)
            if value is None:
                raise TypeError(f"scoped({column.field}=None): a scope needs a value")
            value = _Conv(self._name, column, f"scope.{column.field}").scalar()(value)
            if column.field in scope and scope[column.field] != value:
                raise DeclarationError(
                    f"already scoped to {column.field}={scope[column.field]!r}", table=self._name
                )
            scope[column.field] = value
        derived = copy.copy(self)
        derived.scope = scope
        derived._scope_fields = tuple(sorted(scope))
        derived._scope_values = [scope[f] for f in derived._scope_fields]
        return derived

    # -- the compile cache -------------------------------------------------------------------------

    def _statement(
        self, key: tuple[Any, ...], build: Callable[..., Compiled], *args: Any, **kwargs: Any
    ) -> Compiled:
        try:
            return self._cache[key]
        except KeyError:
            pass
        except TypeError as exc:  # an unhashable name somewhere in the filter
            raise FilterError(f"malformed filter: {exc}", table=self._name) from None
        compiled: Compiled = build(*args, **kwargs)
        compiled = compiled._replace(
            method=_METHODS.get(key[0], str(key[0])),
            shape=hashlib.blake2b(compiled.sql.encode(), digest_size=6).hexdigest(),
        )
        if len(self._cache) >= _MAX_SHAPES:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = compiled
        return compiled

    def _live(self, include_deleted: bool) -> bool:
        return self.soft_delete and not include_deleted

    def _where(
        self, where: Where, values: list[Any], *, required: bool = False, everything: bool = False
    ) -> WhereKey | None:
        """The shape of a where clause (its values appended after the scope's); a clause that
        matches every row is refused when `required`, unless `everything` (``all=True``)."""
        values += self._scope_values
        if where is not None and type(where) is not dict:
            if not isinstance(where, Mapping):
                raise FilterError(
                    f"where must be an object, not {type(where).__name__}",
                    table=self._name,
                    part="where",
                )
            where = dict(where)
        if not where:
            if required and not everything:
                raise FilterError(
                    "an empty where clause matches every row: pass all=True to mean it",
                    table=self._name,
                    part="where",
                )
            return None
        if everything:
            raise FilterError(
                "all=True takes no where clause (it means every row)",
                table=self._name,
                part="where",
            )
        before = len(values)
        where_key = walk(where, values, self._name, "where", self.policy)
        check_conditions(len(values) - before, self.policy, self._name)
        return where_key

    def _paging(self, value: Any, part: str, values: list[Any], policy: FilterPolicy) -> bool:
        if value is None:
            return False
        if type(value) is not int or value < 0:
            raise FilterError(
                f"{part} must be a non-negative integer, got {shown(value)}",
                table=self._name,
                part=part,
            )
        if part == "limit":
            cap = _tighter(self.max_limit, policy.max_limit)
        else:
            cap = _tighter(_MAX_OFFSET, policy.max_offset)
        if cap is not None and value > cap:
            raise FilterError(
                f"{part} {shown(value)} is above the maximum of {cap}",
                table=self._name,
                part=part,
            )
        values.append(value)
        return True

    def _select(
        self,
        filter: FilterLike,
        lock: Lock | None,
        transaction: AsyncTransaction | None,
        include_deleted: bool,
        *,
        by_id: Any = _UNSET,
        one: bool = False,
        page: bool = False,
        within: tuple[str, list[Any]] | None = None,
        per_parent: bool = False,
    ) -> tuple[Compiled, list[Any], _Extras | None]:
        # `within`: included rows (their parents' keys); `per_parent`: a has-many, whose limit
        # applies to each parent's rows. A belongs-to (`within`, not `per_parent`) has one row
        # per key at most: no default limit cuts it short.
        if lock is not None:
            if type(lock) is not Lock:
                raise TypeError(f"lock= takes a Lock (e.g. Lock.UPDATE.nowait()), not {lock!r}")
            if transaction is None:
                raise TransactionError(
                    f"lock={lock.sql} needs a transaction: pass transaction=tx (a lock taken "
                    "outside one would be released at once)"
                )
        policy = self.policy
        where, fields, order, limit, offset, include, after = split_filter(filter, self._name)
        values: list[Any] = [] if by_id is _UNSET else [by_id]
        if self._scope_values:
            values += self._scope_values
        join: str | None = None
        if within is not None:  # included rows: the keys of their parents
            join = within[0]
            values.append(within[1])
        # split_filter made `where` a dict (or None): walk it directly
        if where:
            before = len(values)
            where_key = walk(where, values, self._name, "where", policy)
            if policy.client:
                check_conditions(len(values) - before, policy, self._name)
        else:
            where_key = None
        live = self.soft_delete and not include_deleted
        scope = self._scope_fields
        extras: _Extras | None = None
        extra: tuple[str, ...] = ()
        if include is not None or after is not None or page or join is not None:
            extras = self._extras(where, include, after, page, order, values)
            order, extra = extras.order, extras.extra
            if join is not None and join not in extra:
                extra = tuple(sorted((*extra, join)))
            extras.blank = self._unasked(extra, fields)
        if by_id is not _UNSET:
            if order is not None or limit is not None or offset is not None or after is not None:
                part = "order" if order is not None else "limit" if limit is not None else "offset"
                raise FilterError(
                    "find_by_id takes where, fields and include only (one row: no order or paging)",
                    table=self._name,
                    part=part if after is None else "after",
                )
            key: tuple[Any, ...] = ("by_id", where_key, fields, lock, live, policy, scope, extra)
            try:
                return self._cache[key], values, extras  # a repeated shape: no keywords to build
            except (KeyError, TypeError):
                pass
            return (
                self._statement(
                    key,
                    self._compiler.select,
                    where_key=where_key,
                    fields=fields,
                    order=None,
                    has_limit=False,
                    has_offset=False,
                    lock=lock,
                    live=live,
                    by_id=True,
                    policy=policy,
                    scope=scope,
                    extra=extra,
                ),
                values,
                extras,
            )
        if limit is None and not (within is not None and not per_parent):
            limit = policy.default_limit
        if page and limit is None:
            raise FilterError(
                "find_page needs a limit (the page size)", table=self._name, part="limit"
            )
        if one:
            has_limit = True
            values.append(1)
        elif (
            type(limit) is int
            and limit >= 0
            and (self.max_limit is None or limit <= self.max_limit)
            and (policy.max_limit is None or limit <= policy.max_limit)
        ):  # the usual valid limit, inline; anything else through _paging and its errors
            has_limit = True
            values.append(limit + 1 if page else limit)  # a page reads one more: is there a next?
        else:
            has_limit = self._paging(limit, "limit", values, policy)
            if page:
                values[-1] += 1
        if extras is not None:
            extras.limit = values[-1] - 1 if page else None
        has_offset = offset is not None and self._paging(offset, "offset", values, policy)
        cursor = after is not None
        partition = join if per_parent and (has_limit or has_offset) else None
        key = (
            "select",
            where_key,
            fields,
            order,
            has_limit,
            has_offset,
            lock,
            live,
            policy,
            scope,
            cursor,
            extra,
            join,
            partition,
        )
        try:
            # A repeated shape: a dict lookup, without the call through _statement below.
            return self._cache[key], values, extras
        except (KeyError, TypeError):
            pass
        return (
            self._statement(
                key,
                self._compiler.select,
                where_key=where_key,
                fields=fields,
                order=order,
                has_limit=has_limit,
                has_offset=has_offset,
                lock=lock,
                live=live,
                policy=policy,
                scope=scope,
                after=cursor,
                extra=extra,
                within=join,
                partition=partition,
            ),
            values,
            extras,
        )

    def _extras(
        self,
        where: dict[str, Any] | None,
        include: Any,
        after: Any,
        page: bool,
        order: tuple[str, ...] | None,
        values: list[Any],
    ) -> _Extras:
        """What a filter with ``include``, ``after`` or a page needs besides its statement: the
        relations to load, the order completed with the primary key (a cursor needs unique
        keys), the cursor's values (appended to `values`), the columns to select whatever
        ``fields`` says."""
        policy = self.policy
        includes = parse_include(include, self.table, policy) if include is not None else ()
        extra = {c for item in includes for c in item.relation.source_columns}
        keys: tuple[tuple[ColumnDef, bool], ...] = ()
        if page or after is not None:
            order = self._page_order(order)
            keys = self._compiler.keys(order, policy)
            if policy.client:
                self._check_readable_keys(keys, policy)
            extra |= {column.name for column, _ in keys}
            if after is not None:
                values += decode_cursor(after, order, self._name)
        return _Extras(includes, order, tuple(sorted(extra)), keys, where)

    def _check_readable_keys(
        self, keys: tuple[tuple[ColumnDef, bool], ...], policy: FilterPolicy
    ) -> None:
        """A cursor carries its keys' values, readable by whoever holds it, and a forged one
        tests them: under a client policy, pages may only be keyed by columns the client can
        read (not hidden, allowed by ``fields``)."""
        readable = policy.allowed("fields")
        for column, _ in keys:
            if column.hidden or (
                readable is not None
                and column.field not in readable
                and column.name not in readable
            ):
                raise FilterError(
                    f"pages by cursor carry the values of their order keys, and {column.field} "
                    "is not a field this client may read: order by readable fields (the "
                    "primary key is added last) or use limit/offset",
                    table=self._name,
                    part="order",
                    field=column.field,
                )

    def _unasked(self, extra: tuple[str, ...], fields: tuple[str, ...] | None) -> dict[str, Any]:
        """Of the `extra` columns, those the rows must not carry: outside ``fields`` (when
        given) or hidden (when not), as ``{field: UNSET}``."""
        blank: dict[str, Any] = {}
        by_name = self.table.by_name
        readable = self.policy.allowed("fields") if self.policy.client else None
        for name in extra:
            column = by_name[name]
            if fields is None:  # the default columns: not hidden, allowed by the policy
                if column.hidden or (
                    readable is not None
                    and column.field not in readable
                    and column.name not in readable
                ):
                    blank[column.field] = msgspec.UNSET
            elif column.field not in fields and column.name not in fields:
                blank[column.field] = msgspec.UNSET
        return blank

    def _page_order(self, order: tuple[Any, ...] | None) -> tuple[Any, ...]:
        """`order` with the primary key's columns added (ascending) where it lacks them: a
        cursor's keys must identify one row. The added keys are `trusted_key` s: a client
        policy's ``order`` list need not name the primary key."""
        order = tuple(order or ())
        named = set()
        for text in order:
            match = _ORDER_NAME.match(text) if type(text) is str else None
            if match is not None:
                named.add(match.group(1))
        missing = [
            c.field for c in self._compiler.pk if c.field not in named and c.name not in named
        ]
        if not self._compiler.pk:
            raise FilterError(
                "pages by cursor need a primary key (the last key of the order)",
                table=self._name,
                part="order",
            )
        return order + tuple(trusted_key(field) for field in missing)

    def compile(self, filter: FilterLike = None, *, include_deleted: bool = False) -> CompiledQuery:
        """The SELECT that `find` would run for a filter, without running it: its SQL text and
        parameters. It checks the filter as `find` does and shares its per-shape cache.

        >>> q = repo.compile({"where": {"status": "active"}, "order": "name", "limit": 20})
        >>> q.params
        ['active', 20]
        """
        statement, values, _ = self._select(filter, None, None, include_deleted)
        return CompiledQuery(statement.sql, statement.params(values))

    # -- execution ---------------------------------------------------------------------------------

    def _settings(self) -> tuple[tuple[str, str], ...]:
        """Transaction-local settings for a statement: the current `local_settings` block's and,
        under a client policy, its statement_timeout."""
        settings = self.db._local()
        policy = self.policy
        if policy.client and policy.statement_timeout is not None:
            settings = (*settings, ("statement_timeout", str(policy.timeout_ms)))
        return settings

    async def _execute(
        self,
        statement: Compiled,
        values: Sequence[Any],
        transaction: AsyncTransaction | None,
        mode: int,
        *,
        write: bool,
        pause: GcPause | None = None,
        method: str | None = None,
    ) -> Any:
        """Run a compiled statement. Outside a transaction, a read whose connection is lost is
        run again on a fresh connection, up to twice (it changed nothing; a restart can kill
        the next pooled connection too), and a write whose connection is lost is
        `OutcomeUnknown` (it may have been applied)."""
        params = statement.params(values)  # checked before a connection is taken
        settings = self._settings()
        retries = 2 if transaction is None and not write else 0
        stale = self.db.options.max_size  # each pooled connection may hold the stale plan
        observer = self.db._observer
        started = observer.start()
        while True:
            conn = (
                transaction._connection()
                if transaction is not None
                else await self.db._acquire(write=write)
            )
            try:
                if settings:
                    cursor = await self.db._run(
                        conn,
                        statement.sql,
                        params,
                        settings=settings,
                        in_transaction=transaction is not None,
                    )
                else:
                    cursor = await conn.execute(statement.sql, params)
                result: Any
                if mode == _ALL:
                    if pause is not None and cursor.rowcount >= GC_PAUSE_ROWS:
                        pause.begin()  # the caller ends it once the rows are decoded
                    result = await cursor.fetchall()
                elif mode == _ONE:
                    result = await cursor.fetchone()
                else:
                    result = cursor.rowcount
                if started is not None:
                    observer.done(
                        started,
                        statement.sql,
                        params,
                        method=method or statement.method,
                        table=self._name,
                        shape=statement.shape,
                        rows=len(result) if mode == _ALL else cursor.rowcount,
                    )
                return result
            except psycopg.Error as exc:
                error = self._error(exc, statement)
                if isinstance(error, StalePlan):
                    # A migration changed the table under a prepared statement: drop the
                    # connection's prepared statements (when it goes back) and, outside a
                    # transaction, run the statement again; inside one the transaction is lost.
                    self.db._mark_stale(conn)
                    if transaction is None and stale > 0:
                        stale -= 1
                        continue
                if transaction is None and isinstance(error, ConnectionFailed):
                    if retries:
                        retries -= 1
                        continue
                    if write:
                        error = unknown_outcome(error, "the statement")
                if started is not None:
                    observer.done(
                        started,
                        statement.sql,
                        params,
                        method=method or statement.method,
                        table=self._name,
                        shape=statement.shape,
                        error=error,
                    )
                raise error from exc
            finally:
                if transaction is None:
                    await self.db._release(conn)

    def _error(self, exc: psycopg.Error, statement: Compiled) -> DatabaseError | FilterError:
        """The nxdata error for a failed statement: a regular expression the server could not
        compile is the filter's fault, so a `FilterError` naming its part."""
        error = map_database_error(exc)
        if error.sqlstate == "2201B" and statement.patterns:
            part = statement.patterns[0] if len(statement.patterns) == 1 else "where"
            return FilterError(
                f"not a valid regular expression: {str(exc).splitlines()[0]}",
                table=self._name,
                part=part,
                operator=part.rsplit(".", 1)[-1],
            )
        return error

    async def _rows(
        self,
        statement: Compiled,
        values: Sequence[Any],
        transaction: AsyncTransaction | None,
        *,
        write: bool,
        method: str | None = None,
    ) -> list[T]:
        decoder = statement.decoder
        assert decoder is not None
        # A large result is fetched and decoded with cyclic GC paused (see `GcPause`); the
        # connection goes back to the pool before the decoding.
        pause = GcPause()
        try:
            rows = await self._execute(
                statement, values, transaction, _ALL, write=write, pause=pause, method=method
            )
            return decoder.many(rows)
        finally:
            pause.end()

    async def _row(
        self,
        statement: Compiled,
        values: Sequence[Any],
        transaction: AsyncTransaction | None,
        *,
        write: bool,
        method: str | None = None,
    ) -> T | None:
        row = await self._execute(statement, values, transaction, _ONE, write=write, method=method)
        if row is None:
            return None
        assert statement.decoder is not None
        decoded: T = statement.decoder.one(row)
        return decoded

    async def _count(
        self, statement: Compiled, values: Sequence[Any], transaction: AsyncTransaction | None
    ) -> int:
        """Run a statement without RETURNING; the number of rows it affected."""
        count: int = await self._execute(statement, values, transaction, _COUNT, write=True)
        return count

    # -- reads -------------------------------------------------------------------------------------

    async def find(
        self,
        filter: FilterLike = None,
        *,
        lock: Lock | None = None,
        transaction: Tx = None,
        include_deleted: bool = False,
        primary: bool = False,
    ) -> list[T]:
        """Rows matching a filter (where, fields, order, limit, offset).

        >>> await repo.find({"where": {"status": {"inq": ["a", "b"]}}, "order": "name", "limit": 5})
        """
        if primary:
            with self.db.on_primary():
                return await self.find(
                    filter, lock=lock, transaction=transaction, include_deleted=include_deleted
                )
        if self.db._has_replicas and _includes(filter) and not self.db._pinned():
            with self.db._one_server():  # the rows and their relations from one server
                return await self.find(
                    filter, lock=lock, transaction=transaction, include_deleted=include_deleted
                )
        transaction = self.db._transaction(transaction)
        statement, values, extras = self._select(filter, lock, transaction, include_deleted)
        rows = await self._rows(statement, values, transaction, write=lock is not None)
        if extras is not None:
            if extras.includes:
                return await self._include(rows, extras.includes, transaction, blank=extras.blank)
            if extras.blank:
                return blanked(rows, extras.blank)
        return rows

    async def find_as(
        self,
        row_type: type[R],
        filter: FilterLike = None,
        *,
        transaction: Tx = None,
        include_deleted: bool = False,
        primary: bool = False,
    ) -> list[R]:
        """Rows matching a filter as `row_type`, a Struct of some of the table's fields: only
        those columns are selected, and the result's type says which are there (where
        ``fields`` leaves the others ``UNSET`` in a full row).

        >>> class Summary(msgspec.Struct):
        ...     id: str
        ...     name: str
        >>> await products.find_as(Summary, {"where": {"price": {"lt": 5}}})
        [Summary(id='...', name='Pen'), ...]

        A client policy's ``fields`` still decides which columns may be selected.
        """
        if not (isinstance(row_type, type) and issubclass(row_type, msgspec.Struct)):
            raise TypeError(f"find_as takes a msgspec.Struct class, not {row_type!r}")
        names = row_type.__struct_fields__
        unknown = [n for n in names if n not in self.table.by_field]
        if unknown:
            raise DeclarationError(
                f"{row_type.__name__}.{unknown[0]} is not a field of the table",
                table=self._name,
            )
        if isinstance(filter, Filter):
            given: dict[str, Any] = msgspec.structs.asdict(filter)
            given = {k: v for k, v in given.items() if v is not None}
        elif filter is None:
            given = {}
        elif isinstance(filter, Mapping):
            given = dict(filter)
        else:
            raise FilterError(f"a filter is a dict or a Filter, not {type(filter).__name__}")
        for part in ("fields", "include"):
            if part in given:
                raise FilterError(
                    f"find_as selects the fields of {row_type.__name__}, without relations: "
                    f"the filter takes no {part} (find() and rows_as() include relations)",
                    table=self._name,
                    part=part,
                )
        rows = await self.find(
            {**given, "fields": list(names)},
            transaction=transaction,
            include_deleted=include_deleted,
            primary=primary,
        )
        try:
            return [
                msgspec.convert({name: getattr(row, name) for name in names}, row_type)
                for row in rows
            ]
        except (msgspec.ValidationError, ValueError, TypeError) as exc:
            raise DeclarationError(
                f"{row_type.__name__} does not fit the rows of the table: {exc} (its fields "
                "must be typed as the table's, Optional where the column is nullable)",
                table=self._name,
            ) from None

    async def find_one(
        self,
        filter: FilterLike = None,
        *,
        lock: Lock | None = None,
        transaction: Tx = None,
        include_deleted: bool = False,
        primary: bool = False,
    ) -> T | None:
        """The first row matching a filter, or None.

        >>> await repo.find_one({"where": {"email": "a@example.com"}})
        """
        if primary:
            with self.db.on_primary():
                return await self.find_one(
                    filter, lock=lock, transaction=transaction, include_deleted=include_deleted
                )
        if self.db._has_replicas and _includes(filter) and not self.db._pinned():
            with self.db._one_server():
                return await self.find_one(
                    filter, lock=lock, transaction=transaction, include_deleted=include_deleted
                )
        transaction = self.db._transaction(transaction)
        statement, values, extras = self._select(
            filter, lock, transaction, include_deleted, one=True
        )
        row = await self._row(
            statement, values, transaction, write=lock is not None, method="find_one"
        )
        if row is not None and extras is not None and extras.includes:
            return (await self._include([row], extras.includes, transaction, blank=extras.blank))[0]
        return row

    async def find_by_id(
        self,
        id: Any,
        filter: FilterLike = None,
        *,
        lock: Lock | None = None,
        transaction: Tx = None,
        include_deleted: bool = False,
        primary: bool = False,
    ) -> T | None:
        """The row with this primary key (a tuple for a composite key), or None.

        ``filter`` may add ``where`` conditions and ``fields``.

        >>> await repo.find_by_id("0b6c...", lock=Lock.UPDATE, transaction=tx)
        """
        if primary:
            with self.db.on_primary():
                return await self.find_by_id(
                    id, filter, lock=lock, transaction=transaction, include_deleted=include_deleted
                )
        if self.db._has_replicas and _includes(filter) and not self.db._pinned():
            with self.db._one_server():
                return await self.find_by_id(
                    id, filter, lock=lock, transaction=transaction, include_deleted=include_deleted
                )
        transaction = self.db._transaction(transaction)
        statement, values, extras = self._select(
            filter, lock, transaction, include_deleted, by_id=id
        )
        row = await self._row(statement, values, transaction, write=lock is not None)
        if row is not None and extras is not None and extras.includes:
            return (await self._include([row], extras.includes, transaction, blank=extras.blank))[0]
        return row

    async def find_by_ids(
        self,
        ids: Iterable[Any],
        filter: FilterLike = None,
        *,
        lock: Lock | None = None,
        transaction: Tx = None,
        include_deleted: bool = False,
        primary: bool = False,
    ) -> list[T]:
        """The rows with these primary keys, in the order of `ids` (each once; keys with no row
        left out), in one query: ``WHERE id = ANY(%s)``. ``filter`` may add ``where``,
        ``fields`` and ``include``. Needs a one-column primary key.

        >>> await repo.find_by_ids([3, 1, 2])
        """
        if primary:
            with self.db.on_primary():
                return await self.find_by_ids(
                    ids,
                    filter,
                    lock=lock,
                    transaction=transaction,
                    include_deleted=include_deleted,
                )
        pk = self._compiler.pk
        if len(pk) != 1:
            raise DeclarationError(
                "find_by_ids needs a one-column primary key (use find with a where clause)",
                table=self._name,
            )
        if isinstance(ids, str | bytes | Mapping) or not isinstance(ids, Iterable):
            raise FilterError(f"ids takes a list of keys, not {type(ids).__name__}", part="ids")
        keys = list(dict.fromkeys(ids))
        policy = self.policy
        if policy.client and len(keys) > policy.max_list:
            raise FilterError(
                f"at most {policy.max_list} ids, got {len(keys)}", table=self._name, part="ids"
            )
        if not keys:
            return []
        transaction = self.db._transaction(transaction)
        _, _, order, limit, offset, _, after = split_filter(filter, self._name)
        for part, given in (
            ("order", order),
            ("limit", limit),
            ("offset", offset),
            ("after", after),
        ):
            if given is not None:
                raise FilterError(
                    "find_by_ids takes where, fields and include (the rows come in the order "
                    "of ids, every one of them)",
                    table=self._name,
                    part=part,
                )
        statement, values, extras = self._select(
            filter, lock, transaction, include_deleted, within=(pk[0].name, keys)
        )
        rows = await self._rows(
            statement, values, transaction, write=lock is not None, method="find_by_ids"
        )
        # In the order of ids, matched by the keys as converted for the statement.
        converted = statement.params(values)[len(self._scope_values)]
        fold = pk[0].sql_type == "uuid"  # a uuid may be given as text in any case
        place = {_key_text(key, fold): index for index, key in enumerate(converted)}
        field = pk[0].field
        rows.sort(key=lambda row: place.get(_key_text(getattr(row, field), fold), len(place)))
        if extras is not None:
            if extras.includes:
                return await self._include(rows, extras.includes, transaction, blank=extras.blank)
            if extras.blank:
                return blanked(rows, extras.blank)
        return rows

    # -- relations, pages, aggregates ----------------------------------------------------------

    async def _include(
        self,
        rows: list[T],
        includes: tuple[Include, ...],
        transaction: AsyncTransaction | None,
        *,
        blank: Mapping[str, Any] = {},
        carried: Mapping[str, Any] = {},
    ) -> list[T]:
        """Load the included relations of `rows`, one query per relation, and return the rows
        as instances of a subclass of their type with a field per relation (a list for a
        has-many, a row or None for a belongs-to); `blank` fields (join keys the caller did not
        ask for) are UNSET in them. `carried`: the tenant scope of the repositories above,
        applied to every table down the tree that has its columns."""
        if not rows:
            return rows
        carried = {
            **carried,
            **dict(zip(self._scope_fields, self._scope_values, strict=True)),
        }
        loaded = [await self._load(item, rows, transaction, carried) for item in includes]
        target = with_relations(type(rows[0]), tuple(item.relation.name for item in includes))
        out = []
        for row in rows:
            found: dict[str, Any] = {}
            for item, by_key in zip(includes, loaded, strict=True):
                relation = item.relation
                key = getattr(row, self.table.by_name[relation.source_columns[0]].field)
                value = by_key.get(key)
                found[relation.name] = (value or []) if relation.many else value
            if blank:
                found.update(blank)
            out.append(attach(row, target, found))
        return out

    async def _load(
        self,
        item: Include,
        rows: list[T],
        transaction: AsyncTransaction | None,
        carried: Mapping[str, Any],
    ) -> dict[Any, Any]:
        """The rows of one included relation, by the key they share with their parent."""
        relation = item.relation
        if len(relation.source_columns) != 1:
            raise FilterError(
                f"relation {relation.name} joins on several columns: include supports one",
                table=self._name,
                part=item.part,
            )
        source = self.table.by_name[relation.source_columns[0]].field
        keys = list(dict.fromkeys(k for row in rows if (k := getattr(row, source)) is not None))
        if not keys:
            return {}
        policy = self.policy.related(relation.name)
        related = self._related.get((relation.name, policy))
        if related is None:
            # Soft-deleted rows of a related table are never included.
            kind = (
                AsyncSoftDeletableRepository
                if relation.target.soft_delete_column is not None
                else AsyncRepository
            )
            related = self._related[(relation.name, policy)] = kind(
                self.db, relation.target.row_type, policy=policy
            )
        shared = {
            field: value for field, value in carried.items() if field in relation.target.by_field
        }
        if shared:  # a tenant's scope follows it into every related table that has its column
            related = related.scoped(**shared)
        scope = item.scope
        if not relation.many and ("limit" in scope or "offset" in scope or "order" in scope):
            raise FilterError(
                f"{relation.name} is one row per parent: its scope takes where, fields and include",
                table=self._name,
                part=f"{item.part}.scope",
            )
        column = relation.target_columns[0]
        scope = dict(scope)
        if relation.many and "order" not in scope:  # the same list every time: by primary key
            scope["order"] = [
                trusted_key(c.field) for c in relation.target.columns if c.primary_key
            ]
        try:
            statement, values, extras = related._select(
                scope,
                None,
                transaction,
                False,
                within=(column, keys),
                per_parent=relation.many,
            )
        except FilterError as exc:  # the same error, placed in the parent's filter
            raise FilterError(
                exc.reason,
                table=exc.table,
                part=f"{item.part}.scope.{exc.part}" if exc.part else f"{item.part}.scope",
                field=exc.field,
                operator=exc.operator,
            ) from None
        found = await related._rows(
            statement, values, transaction, write=False, method=f"include {relation.name}"
        )
        field = relation.target.by_name[column].field
        parents = [getattr(child, field) for child in found]  # before the key may be blanked
        blank = extras.blank if extras is not None else {}
        if extras is not None and extras.includes:
            found = await related._include(
                found, extras.includes, transaction, blank=blank, carried=carried
            )
        elif blank:
            found = blanked(found, blank)
        if not relation.many:
            return dict(zip(parents, found, strict=True))
        grouped: dict[Any, list[Any]] = {}
        for parent, child in zip(parents, found, strict=True):
            grouped.setdefault(parent, []).append(child)
        return grouped

    async def find_page(
        self,
        filter: FilterLike = None,
        *,
        total: Literal["exact", "estimate"] | None = None,
        transaction: Tx = None,
        include_deleted: bool = False,
        primary: bool = False,
    ) -> Page[T]:
        """A page of rows by keyset: `Page` with ``items``, ``next`` (the cursor to pass as
        the next filter's ``after``; None on the last page) and, with ``total="exact"`` (a
        ``count``) or ``"estimate"`` (the planner's estimate: no scan), ``total``.

        The order (the primary key if none) gets the primary key added, so keys are unique;
        order columns must be NOT NULL. The filter needs a limit (a client policy gives one).

        >>> page = await repo.find_page({"order": ["created_at DESC"], "limit": 20})
        >>> more = await repo.find_page({"order": ["created_at DESC"], "limit": 20,
        ...                              "after": page.next})
        """
        if primary:
            with self.db.on_primary():
                return await self.find_page(
                    filter, total=total, transaction=transaction, include_deleted=include_deleted
                )
        if total not in (None, "exact", "estimate"):  # before anything runs
            raise FilterError(
                f"total is 'exact', 'estimate' or None, not {total!r}", table=self._name
            )
        if self.db._has_replicas and not self.db._pinned():
            with self.db._one_server():  # the page, its relations and its total from one server
                return await self.find_page(
                    filter, total=total, transaction=transaction, include_deleted=include_deleted
                )
        transaction = self.db._transaction(transaction)
        statement, values, extras = self._select(
            filter, None, transaction, include_deleted, page=True
        )
        assert extras is not None and extras.limit is not None and extras.order is not None
        rows = await self._rows(statement, values, transaction, write=False, method="find_page")
        more = len(rows) > extras.limit
        rows = rows[: extras.limit]
        cursor = None
        if more and rows:
            last = rows[-1]
            cursor = encode_cursor(
                extras.order, [getattr(last, column.field) for column, _ in extras.keys]
            )
        if extras.includes:
            rows = await self._include(rows, extras.includes, transaction, blank=extras.blank)
        elif extras.blank:
            rows = blanked(rows, extras.blank)
        counted: int | None = None
        if total == "exact":
            counted = await self.count(
                extras.where, transaction=transaction, include_deleted=include_deleted
            )
        elif total == "estimate":
            counted = await self._estimate(extras.where, transaction, include_deleted)
        return Page(items=rows, next=cursor, total=counted)

    async def _estimate(
        self, where: Where, transaction: AsyncTransaction | None, include_deleted: bool
    ) -> int:
        """The planner's estimate of the rows matching `where` (EXPLAIN, no scan)."""
        statement, values, _ = self._select(
            {"where": where} if where else None, None, transaction, include_deleted
        )
        params = statement.params(values)
        rows = await self.db.fetch_all(
            "EXPLAIN (FORMAT JSON) " + statement.sql, params, transaction=transaction
        )
        plan = rows[0][0]
        if isinstance(plan, str):
            plan = msgspec.json.decode(plan)
        node = plan[0]["Plan"]
        if node.get("Node Type") == "Limit" and node.get("Plans"):
            node = node["Plans"][0]  # a client policy's default_limit would cap the estimate
        return int(node["Plan Rows"])

    async def aggregate(
        self,
        where: Where = None,
        *,
        group_by: Sequence[str] = (),
        count: bool = True,
        sum: Sequence[str] = (),
        avg: Sequence[str] = (),
        min: Sequence[str] = (),
        max: Sequence[str] = (),
        order: Sequence[str] | None = None,
        limit: int | None = None,
        transaction: Tx = None,
        include_deleted: bool = False,
        primary: bool = False,
    ) -> list[dict[str, Any]]:
        """Counts, sums, averages, minima and maxima of the rows a where clause matches,
        optionally per group: one dict per group, with the group's columns (by field name) and
        ``count``, ``sum_<field>``, ``avg_<field>``, ``min_<field>``, ``max_<field>``, typed as
        the columns are (a sum of a numeric is a Decimal, a count an int, a minimum of a
        timestamp a datetime). Groups come in group order unless `order` names result keys.

        Under a client policy the grouped and aggregated columns must be ones ``fields``
        allows, and the groups are capped like rows (``default_limit`` / ``max_limit``).

        >>> await repo.aggregate({"status": "paid"}, group_by=["merchant_id"], sum=["total"])
        [{'merchant_id': 'm-1', 'count': 12, 'sum_total': Decimal('431.5000')}, ...]
        """
        if primary:
            with self.db.on_primary():
                return await self.aggregate(
                    where,
                    group_by=group_by,
                    count=count,
                    sum=sum,
                    avg=avg,
                    min=min,
                    max=max,
                    order=order,
                    limit=limit,
                    transaction=transaction,
                    include_deleted=include_deleted,
                )
        transaction = self.db._transaction(transaction)
        values: list[Any] = []
        where_key = self._where(where, values)
        policy, scope = self.policy, self._scope_fields
        measures = tuple(
            (function, _names(columns, function))
            for function, columns in (("sum", sum), ("avg", avg), ("min", min), ("max", max))
            if columns
        )
        groups = _names(group_by, "group_by")
        ordering = _names(order, "order") if order is not None else None
        if limit is None:
            limit = policy.default_limit
        has_limit = limit is not None and self._paging(limit, "limit", values, policy)
        live = self._live(include_deleted)
        statement = self._statement(
            (
                "aggregate",
                where_key,
                groups,
                count,
                measures,
                ordering,
                has_limit,
                live,
                policy,
                scope,
            ),
            self._compiler.group,
            where_key=where_key,
            group_by=groups,
            count=count,
            measures=measures,
            order=ordering,
            has_limit=has_limit,
            live=live,
            policy=policy,
            scope=scope,
        )
        rows = await self._execute(statement, values, transaction, _ALL, write=False)
        assert statement.decoder is not None
        return statement.decoder.many(rows)

    async def count(
        self,
        where: Where = None,
        *,
        transaction: Tx = None,
        include_deleted: bool = False,
        primary: bool = False,
    ) -> int:
        """How many rows match a where clause.

        >>> await repo.count({"status": "active"})
        """
        if primary:
            with self.db.on_primary():
                return await self.count(
                    where, transaction=transaction, include_deleted=include_deleted
                )
        transaction = self.db._transaction(transaction)
        statement, values = self._aggregate_statement(where, include_deleted, "count")
        row = await self._execute(statement, values, transaction, _ONE, write=False)
        return int(row[0])

    def _aggregate_statement(
        self, where: Where, include_deleted: bool, what: str
    ) -> tuple[Compiled, list[Any]]:
        """The ``count`` / ``exists`` statement for a where clause, and its values."""
        values: list[Any] = []
        where_key = self._where(where, values)
        live = self._live(include_deleted)
        policy, scope = self.policy, self._scope_fields
        statement = self._statement(
            (what, where_key, live, policy, scope),
            self._compiler.aggregate,
            where_key=where_key,
            live=live,
            what=what,
            policy=policy,
            scope=scope,
        )
        return statement, values

    @property
    def later(self) -> DeferredReads[T]:
        """This repository's reads, deferred, for `AsyncDatabase.read_together` (one round
        trip for several reads): ``await db.read_together(users.later.find_by_id(1), ...)``."""
        return DeferredReads(self)

    async def exists(
        self,
        where: Where = None,
        *,
        transaction: Tx = None,
        include_deleted: bool = False,
        primary: bool = False,
    ) -> bool:
        """True when at least one row matches a where clause.

        >>> await repo.exists({"email": "a@example.com"})
        """
        if primary:
            with self.db.on_primary():
                return await self.exists(
                    where, transaction=transaction, include_deleted=include_deleted
                )
        transaction = self.db._transaction(transaction)
        statement, values = self._aggregate_statement(where, include_deleted, "exists")
        row = await self._execute(statement, values, transaction, _ONE, write=False)
        return bool(row[0])

    def iterate(
        self,
        filter: FilterLike = None,
        *,
        batch_size: int = 2000,
        lock: Lock | None = None,
        transaction: Tx = None,
        include_deleted: bool = False,
        primary: bool = False,
    ) -> AsyncIterator[T]:
        """Stream matching rows through a server-side cursor, `batch_size` rows at a time, so
        memory stays flat however many rows match.

        >>> async for row in repo.iterate({"order": "id"}):
        ...     handle(row)

        Without a transaction it holds one connection until the iteration ends (or the
        generator is closed). With ``lock=`` (which needs ``transaction=``) rows are locked as
        their batch is fetched, and stay locked until the transaction ends.

        The transaction (an ambient one included) and ``primary`` (an `on_primary` block
        included) are those of the call, not of the place the rows are consumed.
        """
        return self._iterate(
            filter,
            batch_size=batch_size,
            lock=lock,
            transaction=self.db._transaction(transaction),
            include_deleted=include_deleted,
            primary=primary or self.db._primary_reads.get(),
        )

    async def _iterate(
        self,
        filter: FilterLike,
        *,
        batch_size: int,
        lock: Lock | None,
        transaction: AsyncTransaction | None,
        include_deleted: bool,
        primary: bool,
    ) -> AsyncIterator[T]:
        if type(batch_size) is not int or batch_size < 1:
            raise FilterError(
                f"batch_size must be a positive integer, got {batch_size!r}",
                table=self._name,
                part="batch_size",
            )
        statement, values, extras = self._select(filter, lock, transaction, include_deleted)
        if extras is not None and extras.includes:
            raise FilterError(
                "iterate() does not include relations (batches stream): use find() per page",
                table=self._name,
                part="include",
            )
        decoder = statement.decoder
        assert decoder is not None
        params = statement.params(values)
        own = transaction is None
        if transaction is not None:
            conn = transaction._connection()
        else:
            with self.db.on_primary(primary):
                conn = await self.db._acquire(write=False)
        try:
            if own:
                # a server-side cursor lives in a transaction
                await conn.execute("BEGIN", prepare=False)
                settings = self._settings()
                if settings:  # for the whole iteration: local to its transaction
                    await conn.execute(
                        set_config_sql(len(settings)), [v for pair in settings for v in pair]
                    )
            name = f"nxdata_iter_{next(_cursor_names)}"
            cursor = conn.cursor(name=name)
            started = self.db._observer.start()
            fetched = 0
            try:
                await cursor.execute(statement.sql, params)
                large = batch_size >= GC_PAUSE_ROWS
                while True:
                    # GC paused per batch, never across a yield (the consumer's code runs there)
                    pause = GcPause()
                    try:
                        if large:
                            pause.begin()
                        if not own and transaction is not None and not transaction.active:
                            raise TransactionError(
                                "iterate() was consumed after its transaction ended: its cursor "
                                "is gone; finish the iteration inside the transaction"
                            )
                        rows = await cursor.fetchmany(batch_size)
                        if not rows:
                            break
                        fetched += len(rows)
                        batch = decoder.many(rows)
                    finally:
                        pause.end()
                    for row in batch:  # noqa: RUF100, UP028 (no yield from in async)
                        yield row
            finally:
                # Once its transaction has ended the connection may serve someone else: the
                # server closed the cursor with the transaction, so it is left alone.
                if own or (transaction is not None and transaction.active):
                    await cursor.close()
                else:
                    cursor._closed = True  # nothing to send; and no "deleted while open" warning
            if own:
                await conn.execute("COMMIT", prepare=False)
            self._observed(started, statement, params, "iterate", rows=fetched)
        except psycopg.Error as exc:
            error = self._error(exc, statement)
            self._observed(started, statement, params, "iterate", error=error)
            raise error from exc
        finally:
            if own:
                await self.db._release(conn)  # rolls back if the loop stopped early

    @overload
    async def query(
        self,
        query: Query,
        params: Sequence[Any] | Mapping[str, Any] | None = None,
        *,
        transaction: Tx = None,
        row_type: None = None,
    ) -> list[T]: ...

    @overload
    async def query(
        self,
        query: Query,
        params: Sequence[Any] | Mapping[str, Any] | None = None,
        *,
        transaction: Tx = None,
        row_type: type[R],
    ) -> list[R]: ...

    async def query(
        self,
        query: Query,
        params: Sequence[Any] | Mapping[str, Any] | None = None,
        *,
        transaction: Tx = None,
        row_type: type[R] | None = None,
    ) -> list[T] | list[R]:
        """The escape hatch: run your own PyPika query or ``psycopg.sql`` statement and get typed
        rows back. Result columns are matched to the table's columns by name; columns the query
        does not return are ``UNSET``. Your SQL runs as written: neither the policy nor the
        scope applies (row-level security does). A statement that changes the session (``SET``)
        has its connection reset before anyone else borrows it.

        ``row_type``: any msgspec Struct to decode the rows into instead (a join's columns,
        an aggregate's), by column name, with its field types checked (`ValidationError`
        naming the field).

        >>> from pypika import Parameter, PostgreSQLQuery, Table
        >>> t = Table("License", schema="licensing")
        >>> q = PostgreSQLQuery.from_(t).select("*").where(t.seats > Parameter("%s"))
        >>> await repo.query(q, [10])
        """
        if row_type is not None and not (
            isinstance(row_type, type) and issubclass(row_type, msgspec.Struct)
        ):  # before the statement runs
            raise TypeError(f"row_type takes a msgspec.Struct class, not {row_type!r}")
        transaction = self.db._transaction(transaction)
        statement: str | bytes | psycopg.sql.Composable
        if isinstance(query, str | bytes | psycopg.sql.Composable):
            statement = query
        elif callable(getattr(query, "get_sql", None)):
            statement = query.get_sql()
        else:
            raise TypeError(
                "query() takes SQL text, a psycopg.sql statement or a PyPika query, "
                f"not {type(query).__name__}"
            )
        if self.db._pooler:
            refusal = pooler_refusal(statement)
            if refusal is not None:
                raise ConfigurationError(refusal)
        conn = (
            transaction._connection()
            if transaction is not None
            else await self.db._acquire(write=True)
        )
        if changes_session(statement):
            self.db.mark_dirty(conn)
        started = self.db._observer.start()
        listed = list(params.values()) if isinstance(params, Mapping) else params
        try:
            cursor = await self.db._run(
                conn,
                statement,
                params,
                settings=self.db._local(),
                in_transaction=transaction is not None,
            )
            rows = await cursor.fetchall() if cursor.description is not None else []
            names = tuple(d.name for d in cursor.description or ())
        except psycopg.Error as exc:
            error = map_database_error(exc)
            self._observed(started, _sql_text(statement), listed, "query", error=error)
            raise error from exc
        finally:
            if transaction is None:
                await self.db._release(conn)
        self._observed(started, _sql_text(statement), listed, "query", rows=len(rows))
        if row_type is not None:
            return _decode_as(row_type, names, rows)
        decode = self._raw_decoders.get(names)
        if decode is None:
            decode = self._raw_decoders[names] = _raw_decoder(self.table, names)
        return list(map(decode, rows))

    # -- writes ------------------------------------------------------------------------------------

    def _with_scope(self, data: Any) -> Any:
        """The data of one row as a dict with the scope's columns added where it names none
        (`_check_scope` then refuses a row that names another value)."""
        if isinstance(data, bytes | bytearray | memoryview | str):
            try:
                data = msgspec.json.decode(data)
            except (msgspec.DecodeError, UnicodeError, RecursionError) as exc:
                raise ValidationError(f"malformed JSON: {exc}", table=self._name) from None
        elif isinstance(data, msgspec.Struct):
            data = {
                f: value
                for f in data.__struct_fields__
                if (value := getattr(data, f)) is not _UNSET
            }
        target = self.table.client_insert_type if self.policy.client else self.table.insert_type
        if type(data) is tuple:
            data = _tuple_dict(target.__struct_fields__, data)
        if not isinstance(data, Mapping):
            return data  # validation says what is wrong with it
        data = dict(data)
        for field, value in self.scope.items():
            column = self.table.by_field[field]
            if field not in data and column.name not in data and field in target.__struct_fields__:
                data[field] = value
        return data

    def _check_scope(
        self, validated: msgspec.Struct, position: int | None = None
    ) -> msgspec.Struct:
        """Refuse a validated insert or update that sets a scope column to another value; set
        the scope's columns a client body cannot name."""
        missing = {}
        for field, value in self.scope.items():
            given = getattr(validated, field, _UNSET)
            if given is _UNSET:
                if field in self.table.insert_type.__struct_fields__ and isinstance(
                    validated, self.table.insert_type
                ):
                    missing[field] = value
                continue
            if given != value:
                at = f"$[{position}].{field}" if position is not None else f"$.{field}"
                raise ValidationError(
                    f"{field} is fixed to {shown(value)} for this repository (its scope), "
                    f"got {shown(given)} - at `{at}`",
                    table=self._name,
                    field=field,
                )
        if missing:
            return msgspec.structs.replace(validated, **missing)
        return validated

    def _validated_insert(self, data: Data) -> msgspec.Struct:
        if self.scope:
            data = self._with_scope(data)
        validated = self.table.validate_insert(data, client=self.policy.client)
        return self._check_scope(validated) if self.scope else validated

    def _validated_update(self, data: Data) -> msgspec.Struct:
        validated = self.table.validate_update(data, client=self.policy.client)
        return self._check_scope(validated) if self.scope else validated

    async def create(self, data: Data, *, transaction: Tx = None) -> T:
        """Insert one row (validated against the insert type) and return it as stored.

        >>> await repo.create({"name": "Ann"})     # ValidationError names a bad field

        Under a client policy the data is a client body: server-managed and hidden columns
        cannot be set. A scoped repository sets the scope's columns.
        """
        transaction = self.db._transaction(transaction)
        fields, values = _set_fields(self._validated_insert(data))
        policy = self.policy
        statement = self._statement(
            ("insert", fields, policy), self._compiler.insert, fields, policy=policy
        )
        row = await self._row(statement, values, transaction, write=True)
        assert row is not None
        return row

    @overload
    async def create_all(
        self,
        rows: Iterable[Row],
        *,
        returning: Literal[False] = False,
        transaction: Tx = None,
    ) -> int: ...

    @overload
    async def create_all(
        self,
        rows: Iterable[Row],
        *,
        returning: Literal[True],
        transaction: Tx = None,
    ) -> list[T]: ...

    async def create_all(
        self,
        rows: Iterable[Row],
        *,
        returning: bool = False,
        transaction: Tx = None,
    ) -> int | list[T]:
        """Insert many rows; returns the count, or with ``returning=True`` the rows as stored, in
        the order given. Every row is validated, and the rows go in all or none: an invalid row
        raises `ValidationError` (naming its position ``$[i]`` and field) and nothing is stored;
        a caller's transaction is left as it was before the call.

        `rows`: any iterable — a list, a generator — of dicts, Structs, JSON documents or tuples
        (the insert type's fields in their declared order; trailing ones with defaults may be
        left out).

        Without ``returning``: COPY, streamed: the rows are pulled from `rows`, validated and
        converted a chunk at a time while the server stores the chunks before them, so a
        generator is never materialised (the first chunk is checked before anything is sent;
        past it, a transaction of its own, or a savepoint in the caller's, takes back what was
        sent, also when the generator raises). With it: one ``INSERT ... SELECT
        FROM unnest(...) RETURNING`` per column set, or, when the rows carry array columns (which
        unnest would flatten), the single-row INSERT sent for every row with ``executemany`` in
        one pipeline.

        >>> await repo.create_all([{"name": "a"}, {"name": "b"}])
        2
        """
        transaction = self.db._transaction(transaction)
        if not returning:
            return await self._copy_all(
                rows if type(rows) is list else _row_iter(rows), transaction
            )
        items = rows if type(rows) is list else _row_list(rows)
        total = len(items)
        # Validating and regrouping 100k rows allocates a few hundred thousand tracked objects
        # (Structs, tuples) that cannot be garbage yet: GC paused meanwhile (see `GcPause`).
        pause = GcPause()
        if total >= GC_PAUSE_ROWS:
            pause.begin()
        try:
            groups = _group_columns(self.table, self._validate_all(items))
        finally:
            pause.end()
        if not groups:
            return []
        # One INSERT from unnest is atomic by itself; several statements (column sets,
        # executemany), or transaction-local settings, make a transaction of their own.
        settings = self._settings()
        own_tx = transaction is None and (
            len(groups) > 1 or not self._compiler.unnest_safe(next(iter(groups))) or settings
        )
        conn = (
            transaction._connection()
            if transaction is not None
            else await self.db._acquire(write=True)
        )
        placed: list[Any] = [None] * total
        try:
            if own_tx:
                await self._begin(conn, settings)
            for fields, (columns, positions) in groups.items():
                created = await self._insert_returning(conn, fields, columns, len(positions))
                for index, row in zip(positions, created, strict=True):
                    placed[index] = row
            if own_tx:
                await conn.execute("COMMIT", prepare=False)
        except psycopg.Error as exc:
            raise map_database_error(exc) from exc
        finally:
            if transaction is None:
                await self.db._release(conn)  # rolls back what an error left open
        return placed

    async def _copy_all(self, items: Iterable[Any], transaction: AsyncTransaction | None) -> int:
        """`create_all` without RETURNING: COPY, fed a chunk at a time (see `_COPY_CHUNK`)
        pulled from `items` (a list or any iterator)."""
        table = self.table
        rows = iter(items)
        first = list(itertools.islice(rows, _COPY_CHUNK))
        pause = GcPause()  # as in create_all: the chunks' Structs and tuples, until written
        if len(first) >= GC_PAUSE_ROWS:
            pause.begin()
        total = len(first)
        try:
            # The first chunk is checked before anything is sent: a batch of one chunk never
            # reaches the server with an invalid row.
            groups = _group_columns(table, self._validate_all(first))
            if not groups:
                return 0
            # Later chunks are validated while earlier ones are being stored, and rows that set
            # another column set go in by a second COPY: a transaction of our own (a savepoint in
            # the caller's) makes that all or none; so do transaction-local settings.
            settings = self._settings() if transaction is None else ()
            more = len(first) == _COPY_CHUNK  # (a list's length tells; an iterator's may not)
            if type(items) is list:
                more = len(items) > _COPY_CHUNK
            streamed = more or len(groups) > 1 or bool(settings)
            del first
            conn = (
                transaction._connection()
                if transaction is not None
                else await self.db._acquire(write=True)
            )
            begin, end, undo = _COPY_OWN_TX if transaction is None else _COPY_IN_TX
            started = self.db._observer.start()
            copy_sql = self._compiler.copy_sql(next(iter(groups)))
            try:
                if streamed:
                    await conn.execute(begin, prepare=False)
                    if settings:
                        await self._begin(conn, settings, begun=True)
                try:
                    total = await self._stream_copy(conn, rows if more else iter(()), groups, total)
                except psycopg.Error:
                    raise  # the caller's transaction is failed, as by any statement error
                except BaseException:
                    # An invalid row in a later chunk (or a cancellation): take back what was
                    # sent, leaving the caller's transaction as it was before the call.
                    if streamed:
                        with contextlib.suppress(Exception):  # the first error matters more
                            for sql in undo:
                                await conn.execute(sql, prepare=False)
                    raise
                if streamed:
                    await conn.execute(end, prepare=False)
            except psycopg.Error as exc:
                error = map_database_error(exc)
                self._observed(started, copy_sql, None, "create_all", error=error)
                raise error from exc
            finally:
                if transaction is None:
                    await self.db._release(conn)  # rolls back what an error left open
        finally:
            pause.end()
        self._observed(started, copy_sql, None, "create_all", rows=total)
        return total

    async def _stream_copy(
        self,
        conn: psycopg.AsyncConnection[Any],
        rows: Iterator[Any],
        groups: dict[tuple[str, ...], tuple[Columns, list[int]]],
        start: int,
    ) -> int:
        """COPY the first chunk (validated and grouped as `groups`, `start` rows), then the
        rest of `rows` a chunk at a time; returns how many rows went in."""
        table = self.table
        fields = next(iter(groups))  # the column set of the main COPY: the first row's
        others: dict[tuple[str, ...], list[tuple[Columns, int]]] = {}
        async with conn.cursor() as cursor:
            async with cursor.copy(self._compiler.copy_sql(fields)) as copy:
                while True:
                    for group, (columns, positions) in groups.items():
                        if group != fields:
                            others.setdefault(group, []).append((columns, len(positions)))
                            continue
                        await self._copy_rows(copy, group, columns, len(positions))
                    chunk = list(itertools.islice(rows, _COPY_CHUNK))
                    if not chunk:
                        break
                    groups = _group_columns(table, self._validate_all(chunk, start))
                    start += len(chunk)
            for group, parts in others.items():
                async with cursor.copy(self._compiler.copy_sql(group)) as copy:
                    for columns, count in parts:
                        await self._copy_rows(copy, group, columns, count)
        return start

    async def _copy_rows(
        self, copy: psycopg.AsyncCopy, fields: tuple[str, ...], columns: Columns, count: int
    ) -> None:
        """Write a group's rows to a COPY, converting the columns that need it (jsonb, enums) a
        column at a time."""
        columns = list(columns)
        for i, field in enumerate(fields):
            column = self.table.by_field[field]
            if column.kind == "json":
                columns[i] = _json_texts(columns[i], self.table, field)
            elif (convert := _write_converter(column)) is not _identity:
                columns[i] = list(map(convert, columns[i]))
        for values in _rows_of(columns, count):
            await copy.write_row(values)

    async def _insert_returning(
        self,
        conn: psycopg.AsyncConnection[Any],
        fields: tuple[str, ...],
        columns: list[Sequence[Any]],
        count: int,
    ) -> list[T]:
        policy = self.policy
        started = self.db._observer.start()
        params: list[Any] | None = None
        if self._compiler.unnest_safe(fields):
            statement = self._statement(
                ("insert_many", fields, policy), self._compiler.insert_many, fields, policy=policy
            )
            params = statement.params([list(column) for column in columns])
            try:
                cursor = await conn.execute(statement.sql, params)
                found = await cursor.fetchall()
            except psycopg.Error as exc:
                self._observed(started, statement, params, "create_all", error=exc)
                raise
        else:
            statement = self._statement(
                ("insert", fields, policy), self._compiler.insert, fields, policy=policy
            )
            found = []
            try:
                async with conn.cursor() as cursor:
                    every = [statement.params(values) for values in _rows_of(columns, count)]
                    if self.db._pooler_of(conn):  # executemany pipelines: not behind PgBouncer
                        for one in every:
                            await cursor.execute(statement.sql, one)
                            found.extend(await cursor.fetchall())
                    else:
                        await cursor.executemany(statement.sql, every, returning=True)
                        while True:  # one result (of one row) per statement
                            found.extend(await cursor.fetchall())
                            if not cursor.nextset():
                                break
            except psycopg.Error as exc:
                self._observed(started, statement, None, "create_all", error=exc)
                raise
        self._observed(started, statement, params, "create_all", rows=len(found))
        assert statement.decoder is not None
        return statement.decoder.many(found)

    def _observed(
        self,
        started: float | None,
        statement: Compiled | str,
        params: Sequence[Any] | None,
        method: str,
        *,
        rows: int | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Report a statement to the database's observer (see `nxdata.observe`), if it
        listens (`started` is not None)."""
        if started is None:
            return
        if isinstance(error, psycopg.Error):
            error = map_database_error(error)
        sql, shape = (
            (statement.sql, statement.shape)
            if isinstance(statement, Compiled)
            else (statement, None)
        )
        self.db._observer.done(
            started,
            sql,
            params,
            method=method,
            table=self._name,
            shape=shape,
            rows=rows,
            error=error,
        )

    async def update_by_id(self, id: Any, data: Data, *, transaction: Tx = None) -> T | None:
        """Update the given columns of one row; returns it, or None when there is no such row.

        ``modified_at`` (any ``on_update`` column) is set too; the primary key, ``created_at``
        and other immutable columns are rejected by validation (under a client policy, every
        server-managed or hidden column too).

        >>> await repo.update_by_id(row.id, {"status": "revoked"})
        """
        transaction = self.db._transaction(transaction)
        fields, values = _set_fields(self._validated_update(data))
        values.append(id)
        values += self._scope_values
        live = self._live(False)
        policy, scope = self.policy, self._scope_fields
        statement = self._statement(
            ("update_by_id", fields, live, policy, scope),
            self._compiler.update,
            fields,
            where_key=None,
            by_id=True,
            live=live,
            returning=True,
            policy=policy,
            scope=scope,
        )
        return await self._row(statement, values, transaction, write=True)

    @overload
    async def update_all(
        self,
        data: Data,
        where: Where = None,
        *,
        returning: Literal[False] = False,
        all: bool = False,
        transaction: Tx = None,
    ) -> int: ...

    @overload
    async def update_all(
        self,
        data: Data,
        where: Where = None,
        *,
        returning: Literal[True],
        all: bool = False,
        transaction: Tx = None,
    ) -> list[T]: ...

    async def update_all(
        self,
        data: Data,
        where: Where = None,
        *,
        returning: bool = False,
        all: bool = False,
        transaction: Tx = None,
    ) -> int | list[T]:
        """Update every row matching `where`; returns the count, or the updated rows with
        ``returning=True``. A where clause that matches every row (None, ``{}``) is refused:
        pass ``all=True`` (and no where) to update every row (of the scope).

        >>> await repo.update_all({"status": "expired"}, {"expires_at": {"lt": now}})
        """
        transaction = self.db._transaction(transaction)
        fields, values = _set_fields(self._validated_update(data))
        where_key = self._where(where, values, required=True, everything=all)
        live = self._live(False)
        policy, scope = self.policy, self._scope_fields
        statement = self._statement(
            ("update_all", fields, where_key, live, returning, policy, scope),
            self._compiler.update,
            fields,
            where_key=where_key,
            by_id=False,
            live=live,
            returning=returning,
            policy=policy,
            scope=scope,
        )
        if returning:
            return await self._rows(statement, values, transaction, write=True)
        return await self._count(statement, values, transaction)

    async def delete_by_id(self, id: Any, *, transaction: Tx = None) -> T | None:
        """Delete one row; returns it as it was, or None when there is no such row.

        >>> await repo.delete_by_id(row.id)
        """
        transaction = self.db._transaction(transaction)
        return await self._hard_delete_by_id(id, transaction)

    async def _hard_delete_by_id(self, id: Any, transaction: AsyncTransaction | None) -> T | None:
        policy, scope = self.policy, self._scope_fields
        statement = self._statement(
            ("delete_by_id", policy, scope),
            self._compiler.delete,
            where_key=None,
            by_id=True,
            live=False,
            returning=True,
            policy=policy,
            scope=scope,
        )
        return await self._row(statement, [id, *self._scope_values], transaction, write=True)

    @overload
    async def delete_all(
        self,
        where: Where = None,
        *,
        returning: Literal[False] = False,
        all: bool = False,
        transaction: Tx = None,
    ) -> int: ...

    @overload
    async def delete_all(
        self,
        where: Where = None,
        *,
        returning: Literal[True],
        all: bool = False,
        transaction: Tx = None,
    ) -> list[T]: ...

    async def delete_all(
        self,
        where: Where = None,
        *,
        returning: bool = False,
        all: bool = False,
        transaction: Tx = None,
    ) -> int | list[T]:
        """Delete every row matching `where`; returns the count (or the rows). A where clause
        that matches every row is refused: pass ``all=True`` (and no where) to mean it.

        >>> await repo.delete_all({"status": "draft"})
        """
        transaction = self.db._transaction(transaction)
        values: list[Any] = []
        where_key = self._where(where, values, required=True, everything=all)
        policy, scope = self.policy, self._scope_fields
        statement = self._statement(
            ("delete_all", where_key, returning, policy, scope),
            self._compiler.delete,
            where_key=where_key,
            by_id=False,
            live=False,
            returning=returning,
            policy=policy,
            scope=scope,
        )
        if returning:
            return await self._rows(statement, values, transaction, write=True)
        return await self._count(statement, values, transaction)

    async def upsert(
        self,
        data: Data,
        *,
        conflict: str | Sequence[str],
        update: Sequence[str] | None = None,
        transaction: Tx = None,
    ) -> T | None:
        """INSERT ... ON CONFLICT (conflict) DO UPDATE SET update; returns the row.

        ``conflict`` names the columns of the primary key, a unique constraint or a unique index
        (a partial one, such as `live_unique`, is matched with its WHERE). ``update`` defaults to
        every inserted column that may be updated and is not a conflict column; an empty list
        means DO NOTHING, and then a conflict returns None (so does a conflict with a row of
        another scope, which is never updated).

        >>> await repo.upsert({"email": "a@x.io", "name": "Ann"}, conflict=["email"])
        """
        transaction = self.db._transaction(transaction)
        fields, values = _set_fields(self._validated_insert(data))
        if isinstance(conflict, str):
            conflict = (conflict,)
        conflict_cols = tuple(self._compiler.column(c, "conflict").field for c in conflict)
        if self.policy.client:
            updatable = {
                c.field for c in self.table.updatable_columns if not (c.hidden or c.server_managed)
            }
        else:
            updatable = {c.field for c in self.table.updatable_columns}
        if update is None:
            update_cols = tuple(f for f in fields if f in updatable and f not in conflict_cols)
        else:
            update_cols = tuple(self._compiler.column(c, "update").field for c in update)
            for name in update_cols:
                if name not in updatable:
                    raise DeclarationError(f"upsert may not update {name!r}", table=self._name)
        policy, scope = self.policy, self._scope_fields
        statement = self._statement(
            ("upsert", fields, conflict_cols, update_cols, self.soft_delete, policy, scope),
            self._compiler.insert,
            fields,
            conflict=conflict_cols,
            update=update_cols,
            live_reset=self.soft_delete,
            policy=policy,
            scope=scope,
        )
        return await self._row(statement, values, transaction, write=True)

    # -- helpers -----------------------------------------------------------------------------------

    async def _begin(
        self,
        conn: psycopg.AsyncConnection[Any],
        settings: tuple[tuple[str, str], ...],
        *,
        begun: bool = False,
    ) -> None:
        """BEGIN a transaction of the call's own (unless `begun`) with its local settings."""
        if not begun:
            await conn.execute("BEGIN", prepare=False)
        if settings:
            await conn.execute(
                set_config_sql(len(settings)), [v for pair in settings for v in pair]
            )

    def _validate_all(self, items: list[Any], start: int = 0) -> list[msgspec.Struct]:
        """Validate rows against the insert type (the client insert type under a client
        policy); a `ValidationError` names the row and field (``$[i]``, counted from `start`:
        the position of ``items[0]`` in the whole batch)."""
        table = self.table
        if self.scope:
            items = [self._with_scope(item) for item in items]
        validated = _validate_all(table, items, start, client=self.policy.client)
        if self.scope:
            validated = [
                self._check_scope(row, position) for position, row in enumerate(validated, start)
            ]
        return validated


class AsyncSoftDeletableRepository(AsyncRepository[T]):
    """A repository that never shows soft-deleted rows and deletes by setting ``deleted_at``.

    Every read (find, count, exists, iterate) and every update skips rows whose soft-delete
    column is set, unless a read passes ``include_deleted=True``. ``delete_by_id`` /
    ``delete_all`` set it to now(); ``restore_by_id`` clears it; ``hard_delete_by_id`` deletes.

    >>> products = AsyncSoftDeletableRepository(db, Product)
    >>> await products.delete_by_id(pid)          # UPDATE ... SET deleted_at = now()
    >>> await products.find_by_id(pid) is None
    True
    """

    soft_delete = True

    def __init__(
        self,
        db: AsyncDatabase,
        row_type: type[T],
        *,
        max_limit: int | None = 1000,
        policy: FilterPolicy = TRUSTED,
    ) -> None:
        super().__init__(db, row_type, max_limit=max_limit, policy=policy)
        soft = self.table.soft_delete_column
        if soft is None:
            raise DeclarationError(
                "has no soft-delete column (Column(soft_delete=True), e.g. deleted_at)",
                table=self._name,
            )
        self._soft_sets = ((soft.name, "now()"),)

    async def delete_by_id(self, id: Any, *, transaction: Tx = None) -> T | None:
        """Soft-delete one live row (``deleted_at = now()``); returns it, or None.

        >>> await products.delete_by_id(pid)
        """
        transaction = self.db._transaction(transaction)
        return await self._mark_by_id(id, transaction, restore=False)

    async def _mark_by_id(
        self, id: Any, transaction: AsyncTransaction | None, *, restore: bool
    ) -> T | None:
        """Soft-delete a live row, or (`restore`) undo the soft delete of a deleted one."""
        assert self.table.soft_delete_column is not None
        policy, scope = self.policy, self._scope_fields
        sets = ((self.table.soft_delete_column.name, "NULL"),) if restore else self._soft_sets
        statement = self._statement(
            ("restore_by_id" if restore else "soft_delete_by_id", policy, scope),
            self._compiler.update,
            (),
            where_key=None,
            by_id=True,
            live=not restore,
            returning=True,
            raw_sets=sets,
            require_deleted=restore,
            policy=policy,
            scope=scope,
        )
        return await self._row(statement, [id, *self._scope_values], transaction, write=True)

    @overload
    async def delete_all(
        self,
        where: Where = None,
        *,
        returning: Literal[False] = False,
        all: bool = False,
        transaction: Tx = None,
    ) -> int: ...

    @overload
    async def delete_all(
        self,
        where: Where = None,
        *,
        returning: Literal[True],
        all: bool = False,
        transaction: Tx = None,
    ) -> list[T]: ...

    async def delete_all(
        self,
        where: Where = None,
        *,
        returning: bool = False,
        all: bool = False,
        transaction: Tx = None,
    ) -> int | list[T]:
        """Soft-delete every live row matching `where`; returns the count (or the rows). A where
        clause that matches every row is refused: pass ``all=True`` (and no where) to mean it.

        >>> await products.delete_all({"status": "discontinued"})
        """
        transaction = self.db._transaction(transaction)
        values: list[Any] = []
        where_key = self._where(where, values, required=True, everything=all)
        policy, scope = self.policy, self._scope_fields
        statement = self._statement(
            ("soft_delete_all", where_key, returning, policy, scope),
            self._compiler.update,
            (),
            where_key=where_key,
            by_id=False,
            live=True,
            returning=returning,
            raw_sets=self._soft_sets,
            policy=policy,
            scope=scope,
        )
        if returning:
            return await self._rows(statement, values, transaction, write=True)
        return await self._count(statement, values, transaction)

    async def restore_by_id(self, id: Any, *, transaction: Tx = None) -> T | None:
        """Undo a soft delete; returns the restored row, or None if it was not deleted.

        >>> await products.restore_by_id(pid)
        """
        transaction = self.db._transaction(transaction)
        return await self._mark_by_id(id, transaction, restore=True)

    async def hard_delete_by_id(self, id: Any, *, transaction: Tx = None) -> T | None:
        """Delete one row for real, deleted or not; returns it as it was, or None.

        >>> await products.hard_delete_by_id(pid)
        """
        transaction = self.db._transaction(transaction)
        return await self._hard_delete_by_id(id, transaction)


def _tighter(a: int | None, b: int | None) -> int | None:
    """The smaller of two caps, None meaning no cap."""
    if a is None:
        return b
    return a if b is None else min(a, b)


def _row_iter(rows: Iterable[Row]) -> Iterator[Any]:
    """`create_all`'s rows as an iterator; a single row (or no iterable at all) is refused."""
    if isinstance(rows, Mapping | msgspec.Struct | str | bytes) or not isinstance(rows, Iterable):
        raise TypeError(
            "create_all takes many rows (an iterable of dicts, Structs, JSON documents or "
            f"tuples), not {type(rows).__name__}; for one row use create()"
        )
    return iter(rows)


def _row_list(rows: Iterable[Row]) -> list[Any]:
    """`create_all`'s rows as a list (see `_row_iter`)."""
    return list(_row_iter(rows))


def _set_fields(validated: msgspec.Struct) -> tuple[tuple[str, ...], list[Any]]:
    """The fields a validated insert/update sets (not UNSET), and their values."""
    names: tuple[str, ...] = validated.__struct_fields__
    values = _astuple(validated)
    if _UNSET not in values:
        return names, list(values)
    kept = [(name, value) for name, value in zip(names, values, strict=True) if value is not _UNSET]
    return tuple(name for name, _ in kept), [value for _, value in kept]


_ROW_INDEX = re.compile(r"`\$\[(\d+)\]")


def _validate_all(
    table: Table[Any], items: list[Any], start: int = 0, *, client: bool = False
) -> list[msgspec.Struct]:
    """Validate rows against the insert type (`client`: the client insert type, then completed
    with the insert type's defaults); a `ValidationError` names the row and field (``$[i]``,
    counted from `start`: the position of ``items[0]`` in the whole batch).

    Plain dicts go through one msgspec call for the whole list (half the cost of one call per
    row); other inputs (Structs, JSON text) row by row, with the same messages. The strict
    checks msgspec's types cannot express (text, numeric ranges) then run a column at a time.
    """
    if not items:
        return []
    target = table.client_insert_type if client else table.insert_type
    validated: list[msgspec.Struct]
    kinds = set(map(type, items))  # map(type, ...): C speed over 100k rows
    if tuple in kinds and len(kinds) > 1:  # tuples among other kinds: as dicts, like the rest
        names = target.__struct_fields__
        items = [_tuple_dict(names, item) if type(item) is tuple else item for item in items]
        kinds = set(map(type, items))
    if kinds == {dict} or kinds == {tuple}:
        # Tuples: the insert type's fields in order, read by an array-like subclass of it
        # (a tenth of the cost of making dicts of them first).
        shape = _array_like(target) if kinds == {tuple} else target
        try:
            validated = msgspec.convert(items, list[shape])  # type: ignore[valid-type]
        except msgspec.ValidationError as exc:
            message = str(exc)
            if start:
                message = _ROW_INDEX.sub(lambda m: f"`$[{int(m.group(1)) + start}]", message, 1)
            raise table.validation_error(message, "client insert" if client else "insert") from exc
        except (UnicodeError, RecursionError, ValueError, TypeError, OverflowError) as exc:
            raise ValidationError(
                f"cannot read the rows: {type(exc).__name__}", table=table.qualified_name
            ) from None
        for field, _ in table._value_checks:
            if field in target.__struct_fields__:
                table.check_column(field, list(map(operator.attrgetter(field), validated)), start)
        if client:
            insert_type = table.insert_type
            validated = [insert_type(**_given(row)) for row in validated]
        return validated
    validated = []
    for index, item in enumerate(items, start):
        try:
            validated.append(table.validate_insert(item, client=client))
        except ValidationError as exc:
            # msgspec says `$.price` of one row; in a batch it is `$[41].price`, as above.
            reason = exc.reason.replace("`$.", f"`$[{index}].").replace("`$`", f"`$[{index}]`")
            if f"$[{index}]" not in reason:
                reason += f" - at `$[{index}]`"
            raise ValidationError(reason, table=exc.table, field=exc.field) from exc
    return validated


def _tuple_dict(names: tuple[str, ...], row: tuple[Any, ...]) -> dict[str, Any] | tuple[Any, ...]:
    """A tuple row as a dict of the insert type's fields in order (trailing ones left out keep
    their defaults); one longer than the fields is left as it is, for validation to refuse."""
    if len(row) > len(names):
        return row
    return dict(zip(names, row, strict=False))


@functools.cache
def _array_like(target: type[msgspec.Struct]) -> type[msgspec.Struct]:
    """A subclass of an insert type that reads a row from a tuple (array-like)."""
    derived: type[msgspec.Struct] = msgspec.defstruct(
        f"{target.__name__}Tuple", [], bases=(target,), array_like=True
    )
    return derived


def _given(struct: msgspec.Struct) -> dict[str, Any]:
    """The fields of a Struct that are set (not UNSET), as keywords."""
    return {f: v for f in struct.__struct_fields__ if (v := getattr(struct, f)) is not _UNSET}


Columns = list[Sequence[Any]]


def _group_columns(
    table: Table[Any], validated: list[msgspec.Struct]
) -> dict[tuple[str, ...], tuple[Columns, list[int]]]:
    """Validated inserts grouped by the fields they set: ``{fields: (columns, positions)}``,
    the group's values a column per field and the rows' positions in the input. One statement
    is sent per group.

    Only fields with an UNSET default (server defaults, identities) can be left out; they are
    checked a column at a time (in C), and rows are split one by one only when such a column
    is mixed (set in some rows, not in others).
    """
    if not validated:
        return {}
    insert_type = table.insert_type
    names: tuple[str, ...] = insert_type.__struct_fields__
    columns: list[Sequence[Any]] = list(zip(*map(_astuple, validated), strict=True))
    total = len(validated)
    absent: set[int] = set()
    mixed: list[int] = []
    for i, info in enumerate(msgspec.structs.fields(insert_type)):
        if info.default is not _UNSET:
            continue
        unset = columns[i].count(_UNSET)
        if unset == total:
            absent.add(i)
        elif unset:
            mixed.append(i)
    if not mixed:  # the usual case: every row sets the same fields
        kept = [i for i in range(len(names)) if i not in absent]
        fields = tuple(names[i] for i in kept)
        return {fields: ([columns[i] for i in kept], list(range(total)))}
    split: dict[frozenset[int], list[int]] = {}
    for index in range(total):
        unset_here = absent.union(i for i in mixed if columns[i][index] is _UNSET)
        split.setdefault(frozenset(unset_here), []).append(index)
    groups: dict[tuple[str, ...], tuple[Columns, list[int]]] = {}
    for left_out, indexes in split.items():
        kept = [i for i in range(len(names)) if i not in left_out]
        pick = operator.itemgetter(*indexes)
        picked: Columns = [
            list(pick(columns[i])) if len(indexes) > 1 else [columns[i][indexes[0]]] for i in kept
        ]
        groups[tuple(names[i] for i in kept)] = (picked, indexes)
    return groups


def _rows_of(columns: Columns, count: int) -> Iterable[tuple[Any, ...]]:
    """The rows of a group's columns (`count` empty rows when it has no column)."""
    return zip(*columns, strict=True) if columns else itertools.repeat((), count)


_encode_lines = msgspec.json.Encoder().encode_lines


def _json_texts(
    values: Sequence[Any], table: Table[Any] | None = None, field: str | None = None
) -> list[str | None]:
    """jsonb values as JSON text, NULL kept: one msgspec call for the whole column.

    JSON text never holds a raw newline (strings escape it), so newline-delimited JSON
    splits back into one text per value. Text jsonb would refuse (a NUL character) is a
    `ValidationError` naming `field`.
    """
    try:
        joined = _encode_lines(values).decode()
    except (UnicodeError, ValueError, OverflowError) as exc:
        raise ValidationError(
            f"cannot write a value as JSON: {exc}",
            table=table.qualified_name if table else None,
            field=field,
        ) from None
    texts: list[str | None] = list(joined.split("\n"))
    texts.pop()  # after the last newline
    problem = json_text_problem(joined)
    if problem is not None:
        raise ValidationError(
            f"{problem} (column {field} of a row)",
            table=table.qualified_name if table else None,
            field=field,
        )
    if None in values:
        texts = [None if value is None else text for value, text in zip(values, texts, strict=True)]
    return texts


def _raw_decoder(table: Table[T], names: tuple[str, ...]) -> Callable[[Sequence[Any]], T]:
    """A decoder for rows of an arbitrary query, by result column name (escape hatch). Each
    value is checked against its column's type: `ValidationError` names the column."""
    columns = []
    for name in names:
        column = table.by_name.get(name) or table.by_field.get(name)
        if column is None:
            raise ValidationError(
                f"query() returns column {name!r}, which the table does not have (the statement "
                "has run: outside a transaction, its changes are committed); select the table's "
                "columns only, or use db.fetch_all() for other shapes",
                table=table.qualified_name,
                field=name,
            )
        columns.append(column)
    template = [_UNSET] * len(table.columns)
    index = {c.name: i for i, c in enumerate(table.columns)}
    slots = [index[c.name] for c in columns]
    row_type = table.row_type
    # kw_only Structs cannot be built positionally (as in RowDecoder)
    keyword = tuple(c.field for c in table.columns) if _keyword_only(row_type) else None

    def convert(column: ColumnDef, value: Any) -> Any:
        if value is None:
            return None
        try:
            if column.kind == "json" and isinstance(value, str):
                return msgspec.json.decode(value, type=column.python_type)
            # lax: what psycopg returns for the column's SQL type converts (Decimal to float...)
            return msgspec.convert(value, column.python_type, strict=False)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise ValidationError(
                f"query() returned {value!r} for column {column.name!r}: {exc}",
                table=table.qualified_name,
                field=column.field,
            ) from None

    def decode(row: Sequence[Any]) -> T:
        values = list(template)
        for slot, column, value in zip(slots, columns, row, strict=True):
            values[slot] = convert(column, value)
        if keyword is not None:
            return row_type(**dict(zip(keyword, values, strict=True)))
        return row_type(*values)

    return decode


def _decode_as(row_type: type[R], names: tuple[str, ...], rows: Sequence[Any]) -> list[R]:
    """Rows of a statement as `row_type` Structs, matched by column name."""
    if not (isinstance(row_type, type) and issubclass(row_type, msgspec.Struct)):
        raise TypeError(f"row_type takes a msgspec.Struct class, not {row_type!r}")
    try:
        return [msgspec.convert(dict(zip(names, row, strict=True)), row_type) for row in rows]
    except msgspec.ValidationError as exc:
        raise ValidationError(str(exc), table=row_type.__name__) from None


def _sql_text(statement: Any) -> str:
    """A statement of the caller's as text, for `nxdata.observe` (a psycopg.sql object renders
    without a connection as best it can)."""
    if isinstance(statement, str):
        return statement
    if isinstance(statement, bytes):
        return statement.decode("utf-8", "replace")
    try:
        return str(statement.as_string(None))
    except Exception:
        return repr(statement)


def _keyword_only(row_type: type[Any]) -> bool:
    parameters = inspect.signature(row_type).parameters.values()
    return any(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters)
