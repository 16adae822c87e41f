"""Python annotations → PostgreSQL column types.

``resolve(annotation)`` strips ``Annotated`` and ``| None`` and tells the SQL type, whether the
column is nullable, how values come back (``kind``) and the Python type to decode them into;
``bounded(annotation, sql_type)`` is the type input is validated against (the annotation's
``msgspec.Meta`` constraints kept, ints within the SQL type's range).
"""

from __future__ import annotations

import enum
import types
import typing
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from uuid import UUID

import msgspec

from .columns import Column

__all__ = ["ColumnKind", "ResolvedType", "bounded", "resolve"]

ColumnKind = Literal["scalar", "json", "enum", "array"]

_SCALARS: dict[type, str] = {
    bool: "boolean",
    int: "integer",
    float: "double precision",
    str: "text",
    datetime: "timestamp with time zone",
    date: "date",
    time: "time without time zone",
    timedelta: "interval",
    Decimal: "numeric",
    UUID: "uuid",
    bytes: "bytea",
}


@dataclass(frozen=True, slots=True)
class ResolvedType:
    """What an annotation means for a column.

    ``python_type`` is the annotation without ``None`` and markers: for jsonb columns the type the
    JSON decodes into, for enums the enum class, for arrays the ``list[...]`` type.
    ``enum_values`` lists the allowed values of an enum or Literal column (a CHECK constraint).
    """

    sql_type: str
    nullable: bool
    kind: ColumnKind
    python_type: Any
    column: Column
    enum_values: tuple[Any, ...] = ()


def _split_annotated(annotation: Any) -> tuple[Any, Column]:
    column = Column()
    while get_origin(annotation) is Annotated:
        base, *extras = get_args(annotation)
        for extra in extras:
            if isinstance(extra, Column):
                column = column.merged(extra)
        annotation = base
    return annotation, column


def _strip_none(annotation: Any) -> tuple[Any, bool, Column]:
    annotation, column = _split_annotated(annotation)
    origin = get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        members = [a for a in get_args(annotation) if a is not type(None)]
        nullable = len(members) != len(get_args(annotation))
        inner_columns = Column()
        stripped = []
        for member in members:
            member, inner = _split_annotated(member)
            inner_columns = inner_columns.merged(inner)
            stripped.append(member)
        column = inner_columns.merged(column)
        if len(stripped) == 1:
            return stripped[0], nullable, column
        return Union[tuple(stripped)], nullable, column  # noqa: UP007
    return annotation, False, column


def _is_jsonish(tp: Any) -> bool:
    if tp is Any or tp is dict or tp is list or tp is object:
        return True
    origin = get_origin(tp)
    if origin in (dict, list, tuple) or tp is tuple:
        return True
    if isinstance(tp, type):
        if issubclass(tp, msgspec.Struct):
            return True
        if typing.is_typeddict(tp):
            return True
    return origin is Union or origin is types.UnionType


def _scalar_sql(tp: Any) -> str | None:
    if isinstance(tp, type):
        for py, sql in _SCALARS.items():
            if tp is py:
                return sql
    return None


def resolve(annotation: Any) -> ResolvedType:
    """Resolve one field annotation; raises ``TypeError`` naming the unsupported type."""
    tp, nullable, column = _strip_none(annotation)
    if tp is Any:
        nullable = True
    override = column.sql_type

    if get_origin(tp) is Literal:
        values = get_args(tp)
        base = type(values[0])
        if not all(type(v) is base for v in values) or base not in (str, int):
            raise TypeError(f"a Literal column needs values of one type, str or int: {tp!r}")
        sql = override or _SCALARS[base]
        return ResolvedType(sql, nullable, "scalar", tp, column, tuple(values))

    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        values = tuple(member.value for member in tp)
        if all(isinstance(v, str) for v in values):
            sql = "text"
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            sql = "integer"
        else:
            raise TypeError(f"enum {tp.__name__} must have all-str or all-int values")
        return ResolvedType(override or sql, nullable, "enum", tp, column, values)

    scalar = _scalar_sql(tp)
    if scalar is not None:
        return ResolvedType(override or scalar, nullable, "scalar", tp, column)

    if get_origin(tp) is list:
        (item,) = get_args(tp) or (Any,)
        item_tp, _, _ = _strip_none(item)
        item_sql = _scalar_sql(item_tp)
        if item_sql is not None and item_tp is not bytes:
            return ResolvedType(override or f"{item_sql}[]", nullable, "array", tp, column)

    if _is_jsonish(tp):
        return ResolvedType(override or "jsonb", nullable, "json", tp, column)

    raise TypeError(f"no PostgreSQL type for annotation {annotation!r}")


# Bits of each SQL integer type. Input outside the range is refused by validation, naming the
# field, rather than by the server ("integer out of range", no field).
_INT_BITS = {
    "smallint": 16,
    "int2": 16,
    "smallserial": 16,
    "integer": 32,
    "int": 32,
    "int4": 32,
    "serial": 32,
    "bigint": 64,
    "int8": 64,
    "bigserial": 64,
}
_META_OPTIONS = (
    "gt",
    "ge",
    "lt",
    "le",
    "multiple_of",
    "pattern",
    "min_length",
    "max_length",
    "tz",
    "title",
    "description",
    "examples",
    "extra_json_schema",
    "extra",
)


def bounded(python_type: Any, sql_type: str) -> Any:
    """The type input for a column is validated against: `python_type` (the field's annotation)
    with its ``msgspec.Meta`` constraints kept and an ``int`` (or the items of a ``list[int]``
    array) bounded by the range of its SQL integer type, the tighter bound winning.

    >>> bounded(int, "smallint")
    typing.Annotated[int, msgspec.Meta(ge=-32768, le=32767)]
    >>> bounded(Annotated[int, msgspec.Meta(ge=0)], "integer")
    typing.Annotated[int, msgspec.Meta(ge=0, le=2147483647)]

    Column markers are left out (msgspec ignores them); the Metas of one type become one, since
    msgspec refuses two that set the same option. Only for input: rows read back need no check.
    """
    element, bracket, _ = sql_type.lower().partition("[")
    return _constrained(python_type, _INT_BITS.get(element.strip()), array=bool(bracket))


def _constrained(tp: Any, bits: int | None, *, array: bool) -> Any:
    """`tp` without markers, its Metas merged; an int (array: the items) bounded by `bits`."""
    metas: list[msgspec.Meta] = []
    while get_origin(tp) is Annotated:
        tp, *extras = get_args(tp)
        metas += [extra for extra in extras if isinstance(extra, msgspec.Meta)]
    options = _merged_options(metas)
    origin = get_origin(tp)
    if origin is Union or origin is types.UnionType:  # X | None: constraints live on X
        tp = Union[tuple(_constrained(member, bits, array=array) for member in get_args(tp))]  # noqa: UP007
    elif array and origin is list:
        (item,) = get_args(tp) or (Any,)
        tp = list[_constrained(item, bits, array=False)]  # type: ignore[misc]
    elif tp is int and bits is not None and not array:
        _tighten(options, -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return Annotated[tp, msgspec.Meta(**options)] if options else tp


def _merged_options(metas: list[msgspec.Meta]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for meta in metas:
        for name in _META_OPTIONS:
            value = getattr(meta, name)
            if value is None:
                continue
            if name in options:
                raise TypeError(f"two msgspec.Meta set `{name}`: msgspec accepts one")
            options[name] = value
    return options


def _tighten(options: dict[str, Any], low: int, high: int) -> None:
    """Bound an int's `options` by [low, high], keeping the user's bound (``ge``/``gt``,
    ``le``/``lt``) where it is as tight; msgspec refuses ``gt`` and ``ge`` together."""
    ge, gt = options.get("ge"), options.get("gt")
    if not ((ge is not None and ge >= low) or (gt is not None and gt >= low - 1)):
        options.pop("gt", None)
        options["ge"] = low
    le, lt = options.get("le"), options.get("lt")
    if not ((le is not None and le <= high) or (lt is not None and lt <= high + 1)):
        options.pop("lt", None)
        options["le"] = high
