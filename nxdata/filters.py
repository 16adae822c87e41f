"""The filter grammar: the `Filter` type, splitting a filter into parts, and its *shape* key.

A filter arrives as a dict or JSON (LoopBack style)::

    {"where": {"status": "active", "amount": {"gt": 10}, "or": [{"tier": "pro"}, {"vip": true}]},
     "fields": ["id", "name"], "order": ["created_at DESC", "name"], "limit": 20, "offset": 40}

`walk` turns a ``where`` dict into a hashable shape key (column and operator names, nesting and
which values are ``None``, never the values) plus the values in a fixed order. Statements are
compiled once per shape and cached, so a repeated shape costs this walk and a dict lookup.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

import msgspec

from .errors import FilterError

__all__ = ["LOGICAL", "OPERATORS", "Filter", "WhereKey", "split_filter", "walk"]

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
"""Per-column operators a ``where`` may use (``{"col": {"op": value}}``)."""

LOGICAL = frozenset({"and", "or"})
"""Logical keys: ``{"or": [{...}, {...}]}``; lists of conditions that nest."""

_KEYS = frozenset({"where", "fields", "order", "limit", "offset", "skip"})


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

    @classmethod
    def from_json(cls, data: bytes | str) -> Filter:
        """Decode JSON bytes into a `Filter`; `FilterError` when it is malformed."""
        if not isinstance(data, bytes | bytearray | memoryview | str):
            raise FilterError(f"a filter's JSON is bytes or str, not {type(data).__name__}")
        try:
            return _decoder.decode(data)
        except msgspec.ValidationError as exc:
            raise FilterError(str(exc)) from exc
        except msgspec.DecodeError as exc:
            raise FilterError(f"malformed JSON: {exc}") from exc


_decoder = msgspec.json.Decoder(Filter)

WhereKey: TypeAlias = tuple[Any, ...]
"""The shape of a ``where`` dict: nested tuples of names, operators and null flags, no values."""

Split = tuple[
    dict[str, Any] | None,  # where
    tuple[str, ...] | None,  # fields
    tuple[str, ...] | None,  # order
    Any,  # limit
    Any,  # offset
]


def split_filter(filter: Filter | Mapping[str, Any] | None, table: str | None = None) -> Split:
    """``(where, fields, order, limit, offset)`` of a filter, with lists made hashable.

    >>> split_filter({"where": {"a": 1}, "order": "a DESC", "skip": 5})
    ({'a': 1}, None, ('a DESC',), None, 5)
    """
    if filter is None:
        return None, None, None, None, None
    if type(filter) is dict:
        # The hot path (every find() with a dict filter): one pass over the keys present,
        # checking them as it goes, and the common shapes of each part tested first.
        where = fields = order = limit = offset = skip = None
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
            else:
                raise FilterError(
                    f"unknown filter key {key!r} (one of {', '.join(sorted(_KEYS))})",
                    table=table,
                    part=str(key),
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
        )
    if isinstance(filter, Mapping):  # any other mapping (a MappingProxy...) as a dict
        return split_filter(dict(filter), table)
    if isinstance(filter, Filter):
        where, fields, order, limit = filter.where, filter.fields, filter.order, filter.limit
        offset = filter.offset if filter.skip is None else _skip(filter.offset, filter.skip, table)
    else:
        raise FilterError(
            f"a filter is a dict or a Filter, not {type(filter).__name__}", table=table
        )
    if where is not None and type(where) is not dict:
        where = _where_dict(where, table)
    return where, _names(fields, "fields", table), _names(order, "order", table), limit, offset


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
    where: dict[str, Any], values: list[Any], table: str | None = None, part: str = "where"
) -> WhereKey:
    """The shape key of a ``where`` dict; appends its values to `values` in key order.

    >>> values = []
    >>> walk({"a": 1, "b": {"gt": 2, "neq": None}}, values), values
    ((('a', '', False), ('b', 'gt', False), ('b', 'neq', True)), [1, 2, None])
    """
    key: list[Any] = []
    add_key, add_value = key.append, values.append  # bound once: this loop is the hot path
    for name, cond in where.items():
        if name in LOGICAL:
            if type(cond) is not list:
                raise FilterError(
                    f"{name} takes a list of conditions", table=table, part=f"{part}.{name}"
                )
            subs = []
            for i, item in enumerate(cond):
                if type(item) is not dict:
                    raise FilterError(
                        "each condition must be an object", table=table, part=f"{part}.{name}[{i}]"
                    )
                subs.append(walk(item, values, table, f"{part}.{name}[{i}]"))
            key.append((name, tuple(subs)))
        elif type(cond) is dict:
            if not cond:
                raise FilterError("empty operator object", table=table, part=f"{part}.{name}")
            for op, value in cond.items():
                add_key((name, op, value is None))
                add_value(value)
        else:
            add_key((name, "", cond is None))  # "" = plain equality
            add_value(cond)
    return tuple(key)
