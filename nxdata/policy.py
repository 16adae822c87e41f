"""Filter policies: what a filter from an API client may name, use and ask for.

A repository runs every filter, body and where clause under a policy. `TRUSTED`, the default, is
for filters written by the application itself: every column (hidden ones included, when named),
every operator, no default limit. A client-facing repository gets a `FilterPolicy`::

    products = nx.Repository(
        db,
        Product,
        policy=nx.FilterPolicy(filter=["name", "price", "tags"], order=["name", "price"]),
    )
    products.find(nx.Filter.from_json(request_body))   # checked against the policy

Under a client policy: hidden columns do not exist; columns outside ``filter`` / ``order`` /
``fields`` are answered exactly as unknown ones (no oracle); operators outside ``operators``
(``regexp`` and ``iregexp`` by default) are refused; a filter without ``limit`` gets
``default_limit``; ``limit``, ``offset``, nesting, list lengths, string lengths and the number of
conditions are capped; each statement runs under ``statement_timeout``; bodies are validated
against the client insert/update types (server-managed and hidden columns cannot be set).

Policies compare by identity (they key the statement cache): build one per repository or
endpoint and reuse it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigurationError

__all__ = ["CLIENT_OPERATORS", "OPERATORS", "TRUSTED", "FilterPolicy"]

OPERATORS = frozenset(
    {
        "eq",
        "neq",
        "gt",
        "gte",
        "lt",
        "lte",
        "between",
        "inq",
        "nin",
        "like",
        "nlike",
        "ilike",
        "nilike",
        "regexp",
        "iregexp",
        "contains",
        "overlaps",
    }
)
"""Every per-column operator of the filter grammar."""

CLIENT_OPERATORS = OPERATORS - {"regexp", "iregexp"}
"""The operators a client policy allows by default: all but the regular expressions, one of
which can keep a backend busy for minutes (``(a*)*b`` against a long value)."""


@dataclass(frozen=True, eq=False, kw_only=True)
class FilterPolicy:
    """What a filter (and a body) from an API client may do on one repository.

    Column lists take field or column names; ``None`` means every column that is not hidden.
    ``filter`` may also name jsonb paths (``"metadata.plan"`` allows that path and every path
    below it; naming the jsonb column allows all its paths).

    - ``filter`` / ``order`` / ``fields``: columns a where clause may test, ``order`` may sort
      on, and ``fields`` may select. Rows returned under the policy carry only the ``fields``
      columns (the others are ``UNSET``).
    - ``operators``: allowed operators (default `CLIENT_OPERATORS`: no ``regexp``).
    - ``default_limit``: the ``limit`` of a filter that has none (None: no limit).
    - ``max_limit`` / ``max_offset``: the largest ``limit`` and ``offset`` accepted.
    - ``max_depth``: nesting of ``and`` / ``or``; ``max_conditions``: conditions in a where
      clause; ``max_list``: items of an ``inq`` / ``nin`` / ``contains`` / ``overlaps`` list;
      ``max_string``: characters of a string value.
    - ``statement_timeout``: seconds a statement run under the policy may take (None: the
      session's setting).
    - ``include``: the relations a filter may ``include`` (none by default): a list of names
      (their rows then run under ``FilterPolicy()``'s defaults), or a mapping of names to the
      policy of each related table (``{"items": FilterPolicy(fields=["name", "qty"])}``).
    - ``client``: bodies are client bodies (server-managed and hidden columns cannot be set) and
      hidden columns are unknown to filters. False only for `TRUSTED` and policies derived
      from it.

    >>> policy = FilterPolicy(order=["name", "created_at"], default_limit=50, max_limit=200)
    """

    filter: Collection[str] | None = None
    order: Collection[str] | None = None
    fields: Collection[str] | None = None
    operators: Collection[str] = CLIENT_OPERATORS
    default_limit: int | None = 100
    max_limit: int | None = 1000
    max_offset: int | None = 10_000
    max_depth: int = 8
    max_conditions: int = 100
    max_list: int = 1000
    max_string: int = 10_000
    statement_timeout: float | None = 5.0
    include: Mapping[str, FilterPolicy] | Collection[str] | None = None
    client: bool = True
    _sets: dict[str, frozenset[str] | None] = field(init=False, repr=False, compare=False)
    _related: dict[str, FilterPolicy] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        sets: dict[str, frozenset[str] | None] = {}
        for name in ("filter", "order", "fields"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise ConfigurationError(f"FilterPolicy({name}=...) takes a list of names")
            sets[name] = None if value is None else frozenset(value)
        unknown = set(self.operators) - OPERATORS
        if unknown:
            raise ConfigurationError(
                f"FilterPolicy: unknown operators {sorted(unknown)} (one of {sorted(OPERATORS)})"
            )
        object.__setattr__(self, "operators", frozenset(self.operators))
        for name in ("default_limit", "max_limit", "max_offset"):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value < 0):
                raise ConfigurationError(f"FilterPolicy({name}=...) must be an integer >= 0")
        for name in ("max_depth", "max_conditions", "max_list", "max_string"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ConfigurationError(f"FilterPolicy({name}=...) must be a positive integer")
        if (
            self.default_limit is not None
            and self.max_limit is not None
            and self.default_limit > self.max_limit
        ):
            raise ConfigurationError("FilterPolicy: default_limit is above max_limit")
        if self.statement_timeout is not None and self.statement_timeout <= 0:
            raise ConfigurationError("FilterPolicy(statement_timeout=...) must be positive")
        object.__setattr__(self, "_sets", sets)
        related: dict[str, FilterPolicy] = {}
        if isinstance(self.include, str):
            raise ConfigurationError("FilterPolicy(include=...) takes a list of relation names")
        if isinstance(self.include, Mapping):
            for name, policy in self.include.items():
                if not isinstance(policy, FilterPolicy):
                    raise ConfigurationError(
                        f"FilterPolicy(include={{{name!r}: ...}}) takes a FilterPolicy"
                    )
                related[name] = policy
        elif self.include is not None:
            related = {name: _CLIENT_DEFAULT for name in self.include}
        object.__setattr__(self, "_related", related)

    def included(self) -> frozenset[str]:
        """The relations a filter may include under this policy."""
        return frozenset(self._related)

    def related(self, name: str) -> FilterPolicy:
        """The policy the rows of an included relation run under: the one ``include`` gives,
        `TRUSTED` under `TRUSTED`."""
        if not self.client:
            return self
        return self._related[name]

    def allowed(self, part: str) -> frozenset[str] | None:
        """The names allowed in ``filter``, ``order`` or ``fields`` (None: every visible column)."""
        return self._sets[part]

    def replace(self, **changes: Any) -> FilterPolicy:
        """A copy with some settings changed: ``policy.replace(default_limit=20)``."""
        current = {
            name: getattr(self, name)
            for name in self.__dataclass_fields__
            if not name.startswith("_")
        }
        return FilterPolicy(**{**current, **changes})

    @property
    def timeout_ms(self) -> int | None:
        """``statement_timeout`` in milliseconds, as PostgreSQL's setting takes it."""
        if self.statement_timeout is None:
            return None
        return max(1, round(self.statement_timeout * 1000))


_CLIENT_DEFAULT: FilterPolicy  # set below: the policy of relations a client policy names only

TRUSTED = FilterPolicy(
    operators=OPERATORS,
    default_limit=None,
    max_limit=None,
    max_offset=None,
    max_depth=64,
    max_conditions=100_000,
    max_list=10_000_000,
    max_string=100_000_000,
    statement_timeout=None,
    client=False,
)
"""The policy of code's own filters (the default of every repository): every column, hidden
ones too when named, every operator, no default limit or offset cap, no timeout of its own.
Structural limits still apply (64 levels of ``and`` / ``or``), so no filter can exhaust the
stack."""

_CLIENT_DEFAULT = FilterPolicy()
