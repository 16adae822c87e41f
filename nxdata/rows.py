"""Row decoders: result tuples → row Structs, built once per statement shape.

Statements select jsonb columns as text (``"col"::text``) so that a big fetch decodes each jsonb
column with one typed msgspec call over the whole column instead of one loader call per value;
Structs are then built positionally (``starmap(T, rows)``, the decoded columns set in place; or
``map(T, *columns)`` for projections), all in C. Columns a projection
(``fields``) leaves out are set to ``msgspec.UNSET``, so the row is still a `T` and encodes
without them.
"""

from __future__ import annotations

import gc
import inspect
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from itertools import repeat, starmap
from operator import itemgetter
from types import TracebackType
from typing import Any, Generic, Optional, TypeVar

import msgspec

from .table import ColumnDef

__all__ = ["GC_PAUSE_ROWS", "GcPause", "RowDecoder", "blanked"]

T = TypeVar("T", bound=msgspec.Struct)

GC_PAUSE_ROWS = 1000
"""Results with at least this many rows are fetched and decoded with cyclic GC paused."""

# Building 100k rows allocates hundreds of thousands of tracked objects (tuples, Structs), each
# allocation counting towards the next collection: cyclic GC then takes half the decode time
# and repeatedly walks objects that cannot be garbage yet. Pausing it is process-wide, so the
# pauses of all threads and tasks share one counter: the first pauser disables GC (only if it
# was enabled), the last one re-enables it (only if a pauser disabled it).
_gc_lock = threading.Lock()
_gc_pausers = 0
_gc_paused_by_us = False


class GcPause:
    """Cyclic garbage collection off between `begin` and `end` (or inside ``with``).

    >>> with GcPause():
    ...     rows = decoder.many(cursor.fetchall())

    Re-entrant and thread-safe; it never re-enables a collector that was already off when the
    first pause began. Reference counting still frees acyclic garbage at once, so only cycles
    made meanwhile wait for the next collection. `begin` after the fact suits a pause decided
    mid-way (once the row count is known); `end` does nothing unless this pause began.
    """

    __slots__ = ("_active",)

    def __init__(self) -> None:
        self._active = False

    def begin(self) -> None:
        """Pause collection (once per instance)."""
        global _gc_pausers, _gc_paused_by_us
        if self._active:
            return
        with _gc_lock:
            if _gc_pausers == 0 and gc.isenabled():
                gc.disable()
                _gc_paused_by_us = True
            _gc_pausers += 1
        self._active = True

    def end(self) -> None:
        """Resume collection if this was the last pause and a pause turned it off."""
        global _gc_pausers, _gc_paused_by_us
        if not self._active:
            return
        self._active = False
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0 and _gc_paused_by_us:
                _gc_paused_by_us = False
                gc.enable()

    def __enter__(self) -> GcPause:
        self.begin()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.end()


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

    __slots__ = (
        "_converters",
        "_keyword",
        "_missing",
        "_patch",
        "_positions",
        "_row_type",
        "_trivial",
    )

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
        in_order = (
            not self._missing
            and self._keyword is None
            and self._positions == tuple(range(len(all_columns)))
        )
        self._trivial = in_order and not self._converters
        # Rows in the table's order: build the Structs straight from the rows and then set the
        # few converted columns (jsonb, enums) in place, instead of transposing every column.
        # Not with __post_init__, which would see the unconverted values.
        self._patch = (
            tuple((i, all_columns[i].field, conv) for i, conv in self._converters)
            if in_order and self._converters and not hasattr(row_type, "__post_init__")
            else None
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
        if self._patch is not None:
            return self._patched(rows, self._patch)
        columns: list[Any] = list(zip(*rows, strict=True))
        for i, (convert, whole) in self._converters:
            columns[i] = _decode_column(columns[i], convert, whole)
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

    def _patched(
        self,
        rows: Sequence[Sequence[Any]],
        patch: tuple[tuple[int, str, tuple[Callable[[Any], Any], Any]], ...],
    ) -> list[T]:
        built = list(starmap(self._row_type, rows))
        for i, field, (convert, whole) in patch:
            column = list(map(itemgetter(i), rows))
            decoded = _decode_column(column, convert, whole)
            # force_setattr: row types are usually frozen; these rows are not shared yet.
            deque(map(_force_setattr, built, repeat(field), decoded), maxlen=0)
        return built


_force_setattr = msgspec.structs.force_setattr


def _decode_column(
    column: Sequence[Any], convert: Callable[[Any], Any], whole: Callable[[str], list[Any]] | None
) -> list[Any]:
    """A column's values converted: jsonb text in one msgspec call, others one by one."""
    if whole is None:
        return [None if v is None else convert(v) for v in column]
    # '[v1,v2,null,...]' in a single msgspec call. A column without NULLs joins as it is (a C
    # loop, no generator).
    if None in column:
        column = ["null" if v is None else v for v in column]
    return whole("[" + ",".join(column) + "]")


def blanked(rows: list[Any], blank: Mapping[str, Any]) -> list[Any]:
    """`rows` with the `blank` fields set to UNSET: columns a statement selected for the
    library's own use (join and page keys) that the caller did not ask for or may not see."""
    replace = msgspec.structs.replace
    return [replace(row, **blank) for row in rows]
