"""The filter grammar: the `Filter` type, splitting a filter into parts, and its *shape* key.

A filter arrives as a dict or JSON (LoopBack style)::

    {"where": {"status": "active", "amount": {"gt": 10}, "or": [{"tier": "pro"}, {"vip": true}]},
     "fields": ["id", "name"], "order": ["created_at DESC", "name"], "limit": 20, "offset": 40,
     "include": ["customer", {"relation": "items", "scope": {"order": ["name"], "limit": 5}}],
     "after": "<the cursor of the previous page>"}

``include`` loads related rows along declared foreign keys (`nxdata.relations`); ``after``
continues a keyset page (`Repository.find_page`).

`walk` turns a ``where`` dict into a hashable shape key (column and operator names, nesting,
which values are ``None`` and, for jsonb paths, the JSON type of the value; never the values)
plus the values in a fixed order. Statements are compiled once per shape and cached, so a
repeated shape costs this walk and a dict lookup.

`walk` also enforces the structural limits of the policy in force (nesting depth, number of
conditions) and refuses logic that looks like a condition but is none (``{"or": []}``,
``{"and": [{}]}``), so a hostile filter is a `FilterError`, never a `RecursionError` or a
where clause that silently matches every row.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Required, TypeAlias, TypedDict
from uuid import UUID

import msgspec

from .errors import FilterError
from .policy import OPERATORS, TRUSTED, FilterPolicy
from .values import clip, shown

__all__ = [
    "LOGICAL",
    "MAX_JSON_BYTES",
    "OPERATORS",
    "Condition",
    "Filter",
    "FilterDict",
    "IncludeDict",
    "WhereDict",
    "WhereKey",
    "check_conditions",
    "json_type",
    "split_filter",
    "walk",
]

# -- the grammar as types: annotate a filter written in code to have mypy check it --------------

FilterScalar: TypeAlias = (
    str | int | float | bool | Decimal | datetime | date | time | timedelta | UUID | bytes | None
)
"""A value a condition compares with."""


class Condition(TypedDict, total=False):
    """The operators of one column: ``{"gt": 3, "lte": 9}`` (a misspelt one is a type error)."""

    eq: Any
    neq: Any
    gt: FilterScalar
    gte: FilterScalar
    lt: FilterScalar
    lte: FilterScalar
    between: Sequence[FilterScalar]
    inq: Sequence[FilterScalar]
    nin: Sequence[FilterScalar]
    like: str
    nlike: str
    ilike: str
    nilike: str
    regexp: str
    iregexp: str
    contains: Any
    overlaps: Any


WhereValue: TypeAlias = "FilterScalar | Condition | Sequence[FilterScalar] | Sequence[WhereDict]"
WhereDict: TypeAlias = Mapping[str, WhereValue]
"""A ``where`` clause: column (or jsonb path) → value or `Condition`; ``and`` / ``or`` → lists
of where clauses."""


class IncludeDict(TypedDict, total=False):
    """An ``include`` item with its own filter: ``{"relation": "items", "scope": {...}}``."""

    relation: Required[str]
    scope: FilterDict


class FilterDict(TypedDict, total=False):
    """A filter as a typed dict: annotate one written in code (``flt: nx.FilterDict = {...}``)
    and mypy refuses a misspelt key or operator. Every method also takes a plain mapping (a
    client's JSON), checked when it runs."""

    where: WhereDict
    fields: list[str] | dict[str, bool]
    order: str | list[str]
    limit: int
    offset: int
    skip: int
    include: list[str | IncludeDict]
    after: str | None


MAX_JSON_BYTES = 64 * 1024
"""The default cap on a filter's JSON text (`Filter.from_json`)."""

LOGICAL = frozenset({"and", "or"})
"""Logical keys: ``{"or": [{...}, {...}]}``; lists of conditions that nest."""

_KEYS = frozenset({"where", "fields", "order", "limit", "offset", "skip", "include", "after"})


class Filter(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    """A filter as a typed value; decode an API client's JSON in one call.

    >>> f = Filter.from_json(b'{"where": {"status": "active"}, "limit": 20}')
    >>> repo.find(f)

    ``skip`` is an alias of ``offset``. Plain dicts with the same keys are accepted everywhere a
    `Filter` is.
    """

    where: dict[str, Any] | None = None
    fields: list[str] | dict[str, bool] | None = None
    order: list[str] | str | None = None
    limit: int | None = None
    offset: int | None = None
    skip: int | None = None
    include: list[str | dict[str, Any]] | None = None
    after: str | None = None

    @classmethod
    def from_json(cls, data: bytes | str, *, max_bytes: int = MAX_JSON_BYTES) -> Filter:
        """Decode JSON bytes into a `Filter`; `FilterError` when it is malformed, larger than
        `max_bytes`, not UTF-8 or nested too deeply.

        The filter is checked against a table (and a policy) when a repository runs it.
        """
        if not isinstance(data, bytes | bytearray | memoryview | str):
            raise FilterError(f"a filter's JSON is bytes or str, not {type(data).__name__}")
        size = len(data.encode("utf-8", "surrogatepass")) if isinstance(data, str) else len(data)
        if size > max_bytes:
            raise FilterError(f"the filter is {size} bytes long, more than {max_bytes}")
        if _too_deep(data):
            # Checked here rather than left to RecursionError, whose limit depends on the
            # interpreter's settings (a tool that raises it would let a deeper filter through).
            raise FilterError(f"the filter is nested too deeply (more than {MAX_JSON_DEPTH})")
        try:
            return _decoder.decode(data)
        except msgspec.ValidationError as exc:
            raise FilterError(str(exc), part=_json_part(str(exc))) from exc
        except msgspec.DecodeError as exc:
            raise FilterError(f"malformed JSON: {exc}") from exc
        except UnicodeError:
            raise FilterError("the filter is not valid UTF-8 text") from None
        except RecursionError:
            raise FilterError("the filter is nested too deeply") from None


_decoder = msgspec.json.Decoder(Filter)
_AT = re.compile(r" - at `\$\.?(.+)`$")
_UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `(.+)`")


MAX_JSON_DEPTH = 128
"""How deeply a filter's JSON may nest objects and arrays (`Filter.from_json`)."""


def _too_deep(data: bytes | bytearray | memoryview | str) -> bool:
    """Whether JSON text nests objects and arrays deeper than `MAX_JSON_DEPTH` (brackets
    inside strings do not count)."""
    text = bytes(data) if not isinstance(data, str) else data.encode("utf-8", "surrogatepass")
    if text.count(b"[") + text.count(b"{") <= MAX_JSON_DEPTH:
        return False  # the common case: too few brackets to be too deep
    depth = 0
    in_string = escaped = False
    for byte in text:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return False


def _json_part(message: str) -> str | None:
    """The filter part a msgspec error points at: ``$.where.a`` → ``where.a``."""
    found = _AT.search(message) or _UNKNOWN_FIELD.match(message)
    return found.group(1) if found else None


WhereKey: TypeAlias = tuple[Any, ...]
"""The shape of a ``where`` dict: nested tuples of names, operators and null flags, no values."""

Split = tuple[
    dict[str, Any] | None,  # where
    tuple[str, ...] | None,  # fields
    tuple[str, ...] | None,  # order
    Any,  # limit
    Any,  # offset
    Any,  # include (checked by `nxdata.relations`)
    Any,  # after (a cursor, checked by `nxdata.paging`)
]


def split_filter(filter: Filter | Mapping[str, Any] | None, table: str | None = None) -> Split:
    """``(where, fields, order, limit, offset, include, after)`` of a filter, with lists made
    hashable.

    >>> split_filter({"where": {"a": 1}, "order": "a DESC", "skip": 5})
    ({'a': 1}, None, ('a DESC',), None, 5, None, None)
    """
    if filter is None:
        return None, None, None, None, None, None, None
    if type(filter) is dict:
        # The hot path (every find() with a dict filter): one pass over the keys present,
        # checking them as it goes, and the common shapes of each part tested first.
        where = fields = order = limit = offset = skip = include = after = None
        for key, value in filter.items():
            if key == "where":
                where = value
            elif key == "order":
                order = value
            elif key == "limit":
                limit = value
            elif key == "fields":
                fields = value
            elif key == "offset":
                offset = value
            elif key == "skip":
                skip = value
            elif key == "include":
                include = value
            elif key == "after":
                after = value
            else:
                raise FilterError(
                    f"unknown filter key {shown(key)} (one of {', '.join(sorted(_KEYS))})",
                    table=table,
                    part=clip(str(key)),
                )
        if skip is not None:
            offset = _skip(offset, skip, table)
        if where is not None and type(where) is not dict:
            where = _where_dict(where, table)
        return (
            where,
            None if fields is None else _names(fields, "fields", table),
            # A list of names is taken as it is: the compiler checks each name once per shape.
            tuple(order) if type(order) is list else _names(order, "order", table),
            limit,
            offset,
            include,
            after,
        )
    if isinstance(filter, Mapping):  # any other mapping (a MappingProxy...) as a dict
        return split_filter(dict(filter), table)
    if isinstance(filter, Filter):
        where, fields, order, limit = filter.where, filter.fields, filter.order, filter.limit
        offset = filter.offset if filter.skip is None else _skip(filter.offset, filter.skip, table)
        include, after = filter.include, filter.after
    else:
        raise FilterError(
            f"a filter is a dict or a Filter, not {type(filter).__name__}", table=table
        )
    if where is not None and type(where) is not dict:
        where = _where_dict(where, table)
    return (
        where,
        _names(fields, "fields", table),
        _names(order, "order", table),
        limit,
        offset,
        include,
        after,
    )


def _skip(offset: Any, skip: Any, table: str | None) -> Any:
    if offset is not None:
        raise FilterError("use offset or skip (its alias), not both", table=table, part="skip")
    return skip


def _where_dict(where: Any, table: str | None) -> dict[str, Any]:
    if not isinstance(where, Mapping):
        raise FilterError("where must be an object", table=table, part="where")
    return dict(where)


def _names(value: Any, part: str, table: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    if type(value) is str:
        return (value,)
    if isinstance(value, dict) and part == "fields":  # LoopBack's {"name": true} form
        value = [k for k, v in value.items() if v]
    if isinstance(value, list | tuple) and all(type(v) is str for v in value):
        return tuple(value)
    raise FilterError(f"{part} must be a list of column names", table=table, part=part)


def walk(
    where: dict[str, Any],
    values: list[Any],
    table: str | None = None,
    part: str = "where",
    policy: FilterPolicy = TRUSTED,
    depth: int = 0,
) -> WhereKey:
    """The shape key of a ``where`` dict; appends its values to `values` in key order.

    >>> values = []
    >>> walk({"a": 1, "b": {"gt": 2, "neq": None}}, values), values
    ((('a', '', False), ('b', 'gt', False), ('b', 'neq', True)), [1, 2, None])

    A jsonb path (a name with a dot) has the JSON type of its value in the key instead of the
    null flag: ``('meta.plan.seats', 'gt', 'number')``.
    """
    key: list[Any] = []
    add_key, add_value = key.append, values.append  # bound once: this loop is the hot path
    try:
        for name, cond in where.items():
            if name in LOGICAL:
                key.append((name, _logical(name, cond, values, table, part, policy, depth)))
            elif type(cond) is dict:
                if not cond:
                    raise FilterError("empty operator object", table=table, part=f"{part}.{name}")
                if "." in name:  # a jsonb path: the value's JSON type is part of the shape
                    for op, value in cond.items():
                        add_key((name, op, json_type(value, op, table, f"{part}.{name}.{op}")))
                        add_value(value)
                else:
                    for op, value in cond.items():
                        add_key((name, op, value is None))
                        add_value(value)
            elif "." in name:
                add_key((name, "", json_type(cond, "eq", table, f"{part}.{name}")))  # "" = eq
                add_value(cond)
            else:
                add_key((name, "", cond is None))  # "" = plain equality
                add_value(cond)
    except TypeError:  # a name that is not a string ("." in 5)
        bad = next(name for name in where if type(name) is not str)
        raise FilterError(
            f"column names are strings, not {shown(bad)}", table=table, part=part
        ) from None
    return tuple(key)


def _logical(
    name: str,
    cond: Any,
    values: list[Any],
    table: str | None,
    part: str,
    policy: FilterPolicy,
    depth: int,
) -> tuple[WhereKey, ...]:
    """The shape of ``{"and": [...]}`` / ``{"or": [...]}``: its conditions' keys, in order."""
    here = f"{part}.{name}"
    if type(cond) is not list:
        raise FilterError(f"{name} takes a list of conditions", table=table, part=here)
    if not cond:
        raise FilterError(
            f"an empty {name} list is not a condition (it would match "
            f"{'every row' if name == 'and' else 'no row'}): leave it out",
            table=table,
            part=here,
        )
    if depth >= policy.max_depth:
        raise FilterError(
            f"and / or nested deeper than {policy.max_depth} levels", table=table, part=here
        )
    if len(cond) > policy.max_conditions:
        raise FilterError(
            f"{len(cond)} conditions, more than the {policy.max_conditions} allowed",
            table=table,
            part=here,
        )
    subs = []
    for i, item in enumerate(cond):
        if type(item) is not dict:
            raise FilterError("each condition must be an object", table=table, part=f"{here}[{i}]")
        if not item:
            raise FilterError(
                "an empty object is not a condition (it would match every row)",
                table=table,
                part=f"{here}[{i}]",
            )
        subs.append(walk(item, values, table, f"{here}[{i}]", policy, depth + 1))
    return tuple(subs)


def check_conditions(count: int, policy: FilterPolicy, table: str | None = None) -> None:
    """Refuse a where clause of more than the policy's ``max_conditions`` conditions (`count`:
    how many values `walk` appended)."""
    if count > policy.max_conditions:
        raise FilterError(
            f"{count} conditions, more than the {policy.max_conditions} allowed",
            table=table,
            part="where",
        )


_LISTS = frozenset({"inq", "nin", "between"})


def json_type(value: Any, op: Any, table: str | None = None, part: str = "where") -> str:
    """The JSON type a jsonb path condition compares as: ``null``, ``boolean``, ``number``,
    ``string``, ``object``, ``array``; for ``inq`` / ``nin`` / ``between``, the type shared by
    the list's items (``empty`` for an empty list). Mixed lists are a `FilterError`.

    >>> json_type([1, 2.5], "inq")
    'number'
    """
    if op in _LISTS and (type(value) is list or type(value) is tuple):
        kinds = {_scalar_json_type(item) for item in value}
        if not kinds:
            return "empty"
        if len(kinds) > 1:
            raise FilterError(
                f"a list of mixed JSON types ({', '.join(sorted(kinds))}): a jsonb path compares "
                "values of one type",
                table=table,
                part=part,
            )
        return kinds.pop()
    return _scalar_json_type(value)


def _scalar_json_type(value: Any) -> str:
    kind = type(value)
    if value is None:
        return "null"
    if kind is bool:
        return "boolean"
    if kind is int or kind is float:
        return "number"
    if kind is str:
        return "string"
    if kind is dict:
        return "object"
    if kind is list or kind is tuple:
        return "array"
    from decimal import Decimal

    if kind is Decimal:
        return "number"
    return "unknown"
