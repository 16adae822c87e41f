"""Reads sent together: several independent statements of one request in one round trip.

``repo.later`` gives the reads of a repository as `Deferred` values instead of running them;
``db.read_together(...)`` sends them all on one connection in psycopg's pipeline mode (every
statement written before any answer is awaited) and returns their results in order::

    user, recent, total = await db.read_together(
        users.later.find_by_id(user_id),
        orders.later.find({"where": {"user_id": user_id}, "order": ["placed_at DESC"], "limit": 5}),
        orders.later.count({"user_id": user_id}),
    )

Each read is checked and compiled when it is made, exactly as the repository method would do
it (filters, policies, scopes, hidden columns), and decoded into the same types. A read that
fails raises its error from ``read_together``; the reads are independent (no transaction joins
them unless ``transaction=`` is given), and outside one they go to a replica like any read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .errors import FilterError
from .rows import blanked

if TYPE_CHECKING:
    from .compiler import Compiled
    from .repository_async import FilterLike, Where

__all__ = ["Deferred", "DeferredReads"]

T = TypeVar("T")
R = TypeVar("R")

ALL, ONE = 0, 1


class Deferred(Generic[R]):
    """One compiled read, run later by ``read_together`` (see `nxdata.batch`)."""

    __slots__ = ("decode", "method", "mode", "params", "repository", "statement")

    def __init__(
        self,
        repository: Any,
        statement: Compiled,
        params: list[Any],
        mode: int,
        decode: Callable[[Any], R],
        method: str,
    ) -> None:
        self.repository = repository
        self.statement = statement
        self.params = params
        self.mode = mode  # ALL: fetchall, ONE: fetchone
        self.decode = decode
        self.method = method

    def __repr__(self) -> str:
        return f"Deferred({self.repository!r}.{self.method})"


class DeferredReads(Generic[T]):
    """The reads of one repository, deferred: ``repo.later.find(...)`` (see `nxdata.batch`)."""

    __slots__ = ("_repository",)

    def __init__(self, repository: Any) -> None:
        self._repository = repository

    def find(
        self, filter: FilterLike = None, *, include_deleted: bool = False
    ) -> Deferred[list[T]]:
        """`find`, deferred (no ``include``: it needs the rows first)."""
        repo = self._repository
        statement, values, extras = repo._select(filter, None, None, include_deleted)
        _no_include(extras, repo, "find")
        decoder = statement.decoder
        blank = extras.blank if extras is not None else None
        return Deferred(
            repo,
            statement,
            statement.params(values),
            ALL,
            (lambda rows: blanked(decoder.many(rows), blank)) if blank else decoder.many,
            "find",
        )

    def find_one(
        self, filter: FilterLike = None, *, include_deleted: bool = False
    ) -> Deferred[T | None]:
        """`find_one`, deferred."""
        repo = self._repository
        statement, values, extras = repo._select(filter, None, None, include_deleted, one=True)
        _no_include(extras, repo, "find_one")
        return Deferred(repo, statement, statement.params(values), ONE, _one(statement), "find_one")

    def find_by_id(
        self, id: Any, filter: FilterLike = None, *, include_deleted: bool = False
    ) -> Deferred[T | None]:
        """`find_by_id`, deferred."""
        repo = self._repository
        statement, values, extras = repo._select(filter, None, None, include_deleted, by_id=id)
        _no_include(extras, repo, "find_by_id")
        return Deferred(
            repo, statement, statement.params(values), ONE, _one(statement), "find_by_id"
        )

    def count(self, where: Where = None, *, include_deleted: bool = False) -> Deferred[int]:
        """`count`, deferred."""
        repo = self._repository
        statement, values = repo._aggregate_statement(where, include_deleted, "count")
        return Deferred(
            repo, statement, statement.params(values), ONE, lambda row: int(row[0]), "count"
        )

    def exists(self, where: Where = None, *, include_deleted: bool = False) -> Deferred[bool]:
        """`exists`, deferred."""
        repo = self._repository
        statement, values = repo._aggregate_statement(where, include_deleted, "exists")
        return Deferred(
            repo, statement, statement.params(values), ONE, lambda row: bool(row[0]), "exists"
        )


def _one(statement: Compiled) -> Callable[[Any], Any]:
    decoder = statement.decoder
    assert decoder is not None
    return lambda row: None if row is None else decoder.one(row)


def _no_include(extras: Any, repo: Any, method: str) -> None:
    if extras is not None and extras.includes:
        raise FilterError(
            f"a deferred {method} takes no include (its rows are needed first): run it alone",
            table=repo._name,
            part="include",
        )


def check_reads(reads: Sequence[Any] | Iterable[Any]) -> list[Deferred[Any]]:
    """The reads given to ``read_together``, each a `Deferred` of this database's repositories."""
    out = list(reads)
    for read in out:
        if not isinstance(read, Deferred):
            raise TypeError(
                "read_together takes deferred reads (repo.later.find(...)), "
                f"not {type(read).__name__}"
            )
    return out
