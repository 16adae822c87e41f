"""Row decoders: result tuples → row Structs, built once per statement shape.

Statements select jsonb columns as text (``"col"::text``) so that a big fetch decodes each jsonb
column with one typed msgspec call over the whole column instead of one loader call per value;
Structs are then built positionally (``map(T, *columns)``), all in C. Columns a projection
(``fields``) leaves out are set to ``msgspec.UNSET``, so the row is still a `T` and encodes
without them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from itertools import repeat, starmap
from typing import Any, Generic, Optional, TypeVar

import msgspec

from .table import ColumnDef

__all__ = ["RowDecoder"]

T = TypeVar("T", bound=msgspec.Struct)


def _column_converter(column: ColumnDef) -> tuple[Callable[[Any], Any], Any] | None:
    """(per-value converter, whole-column decoder or None) for columns psycopg does not finish."""
    if column.kind == "json":
        one = msgspec.json.Decoder(column.python_type).decode
        many = msgspec.json.Decoder(list[Optional[column.python_type]]).decode  # type: ignore[name-defined]  # noqa: UP045
        return one, many
    if column.kind == "enum":
        return column.python_type, None
    return None


class RowDecoder(Generic[T]):
    """Turns rows of ``columns`` (in select order) into ``row_type`` instances.

    >>> decoder = RowDecoder(User, table.columns, table.columns)
    >>> decoder.one(("u1", "Ann", '{"a": 1}'))
    """

    __slots__ = ("_converters", "_keyword", "_missing", "_positions", "_row_type", "_trivial")

    def __init__(
        self, row_type: type[T], all_columns: Sequence[ColumnDef], selected: Sequence[ColumnDef]
    ) -> None:
        self._row_type = row_type
        index = {c.name: i for i, c in enumerate(all_columns)}
        self._positions = tuple(index[c.name] for c in selected)
        chosen = set(self._positions)
        self._missing = tuple(i for i in range(len(all_columns)) if i not in chosen)
        self._converters = tuple(
            (i, conv) for i, c in enumerate(selected) if (conv := _column_converter(c)) is not None
        )
        # kw_only Structs cannot be built positionally: fall back to keywords for them.
        params = inspect.signature(row_type).parameters.values()
        self._keyword = (
            tuple(c.field for c in all_columns)
            if any(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params)
            else None
        )
        self._trivial = (
            not self._converters
            and not self._missing
            and self._keyword is None
            and self._positions == tuple(range(len(all_columns)))
        )

    def _build(self, values: Sequence[Any]) -> T:
        if self._keyword is not None:
            return self._row_type(**dict(zip(self._keyword, values, strict=True)))
        return self._row_type(*values)

    def one(self, row: Sequence[Any]) -> T:
        """Decode one row."""
        if self._trivial:
            return self._row_type(*row)
        values = list(row)
        for i, (convert, _) in self._converters:
            if values[i] is not None:
                values[i] = convert(values[i])
        if self._missing or self._positions != tuple(range(len(values))):
            full: list[Any] = [msgspec.UNSET] * (len(self._positions) + len(self._missing))
            for value, position in zip(values, self._positions, strict=True):
                full[position] = value
            values = full
        return self._build(values)

    def many(self, rows: Sequence[Sequence[Any]]) -> list[T]:
        """Decode many rows column by column (one msgspec call per jsonb column)."""
        if not rows:
            return []
        if self._trivial:
            return list(starmap(self._row_type, rows))
        columns: list[Any] = list(zip(*rows, strict=True))
        for i, (convert, whole) in self._converters:
            if whole is not None:
                # One decode for the column: '[v1,v2,null,...]' in a single msgspec call.
                text = "[" + ",".join("null" if v is None else v for v in columns[i]) + "]"
                columns[i] = whole(text)
            else:
                columns[i] = [None if v is None else convert(v) for v in columns[i]]
        if self._missing or self._positions != tuple(range(len(columns))):
            ordered: list[Any] = [repeat(msgspec.UNSET)] * (
                len(self._positions) + len(self._missing)
            )
            for column, position in zip(columns, self._positions, strict=True):
                ordered[position] = column
            columns = ordered
        if self._keyword is not None:
            return [self._build(values) for values in zip(*columns, strict=False)]
        return list(map(self._row_type, *columns))
