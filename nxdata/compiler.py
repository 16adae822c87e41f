"""Statements from declarations and filter shapes: PyPika-built SQL with ``%s`` placeholders.

I/O-free: a `Compiler` (one per table) turns a statement *shape* (the filter's shape key, the
columns written, the lock, the policy, the scope...) into a `Compiled`: the SQL text, the *plan*
that pulls parameter values out of the call's values in placeholder order (checking and
converting each), and the row decoder. Repositories cache `Compiled` per shape, so PyPika runs
once per shape.

Values never reach the SQL text: every value is a `_Param` term that renders ``%s`` (with a cast
to the column's type, so psycopg's untyped strings and lists bind correctly) and records which
value slot feeds it. Every converter is strict (see the README's filter section): a value of
the wrong type, out of the column's range, or text PostgreSQL cannot store is a `FilterError`
naming the part, before anything is sent.
"""

from __future__ import annotations

import enum
import math
import re
import string
import threading
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal, NamedTuple, cast, get_args, get_origin
from uuid import UUID

import msgspec
from pypika import PostgreSQLQuery
from pypika import Table as PTable
from pypika.terms import Criterion, Field, Term

from .errors import DeclarationError, FilterError
from .locks import Lock
from .policy import OPERATORS, TRUSTED, FilterPolicy
from .rows import RowDecoder
from .sqltypes import _INT_BITS
from .table import ColumnDef, Table, _quote
from .values import clip, json_text_problem, shown, text_problem

__all__ = ["Compiled", "CompiledQuery", "Compiler"]

Converter = Callable[[Any], Any]

_FILTER_KEYS = frozenset({"where", "fields", "order", "limit", "offset", "skip"})


class _Never:
    """No value is of this type: the `as_is` of placeholders whose values always convert."""


Step = tuple[int, Converter, type]
"""One placeholder: the value slot that feeds it, its converter, and the type of values the
converter would return unchanged (taken as they are, without the call)."""


class Compiled(NamedTuple):
    """A compiled statement: SQL text, a `Step` per placeholder, row decoder.

    ``patterns`` names the parts of the filter that hold regular expressions, so that a pattern
    the server cannot compile is reported as a `FilterError` naming them.
    """

    sql: str
    plan: tuple[Step, ...]
    decoder: RowDecoder[Any] | None
    patterns: tuple[str, ...] = ()
    method: str = ""  # the repository method, for `nxdata.observe` (set when cached)
    shape: str = ""  # a short digest of the SQL: same filter shape, same value

    def params(self, values: Sequence[Any]) -> list[Any]:
        """The parameter list for one call's values."""
        # A value already of the column's type (the common case) skips its converter call.
        return [
            value if type(value := values[slot]) is as_is else convert(value)
            for slot, convert, as_is in self.plan
        ]


class CompiledQuery(msgspec.Struct, frozen=True):
    """A statement ready for the driver: SQL text with ``%s`` placeholders, and its parameters.

    A Struct rather than a NamedTuple: built in C, a fifth of the cost, on a path measured in
    microseconds.

    >>> q = repo.compile({"where": {"status": "active"}, "limit": 20})
    >>> conn.execute(q.sql, q.params)
    """

    sql: str
    params: list[Any]


# -- PyPika terms of our own -----------------------------------------------------------------------

_render_lock = threading.Lock()
_collected: list[Step] = []


class _Param(Term):
    """A placeholder fed from value slot `slot` through `convert`; renders ``%s[::cast]``.

    ``as_is``: values of exactly this type are what `convert` would return unchanged.
    """

    def __init__(
        self,
        slot: int,
        convert: Converter,
        cast: str | None = None,
        as_is: type | None = None,
    ) -> None:
        super().__init__()
        self.slot, self.convert, self.cast = slot, convert, cast
        self.as_is = as_is if as_is is not None else _Never

    def get_sql(self, **kwargs: Any) -> str:
        _collected.append((self.slot, self.convert, self.as_is))
        return "%s::" + self.cast if self.cast else "%s"


class _Sql(Criterion):
    """A SQL fragment with terms: ``_Sql("{0} <> {1}", col, param)``.

    The template is fixed text written in this module; only terms fill it. A template that
    combines conditions (``... AND ...``) parenthesizes itself.
    """

    def __init__(self, template: str, *terms: Term) -> None:
        super().__init__()
        self.template, self.terms = template, terms

    def get_sql(self, **kwargs: Any) -> str:
        kwargs.pop("subcriterion", None)
        # Each occurrence of a term renders on its own, in text order: a term used twice
        # ("{0} IS NOT NULL AND {0} <> ...") records its placeholders twice, as they appear.
        out = []
        for literal, field, _, _ in _FORMATTER.parse(self.template):
            out.append(literal)
            if field is not None:
                out.append(self.terms[int(field)].get_sql(**kwargs))
        return "".join(out)


_FORMATTER = string.Formatter()


class _Junction(Criterion):
    """``(a AND b AND c)`` / ``(a OR b)``: a flat list of conditions, parenthesized.

    PyPika folds ``Criterion.any`` into a binary tree, whose rendering recurses once per item:
    a client's flat ``or`` of a thousand conditions would exhaust the stack. This renders in a
    loop, however long the list.
    """

    def __init__(
        self, operator: Literal["AND", "OR"], terms: Sequence[Term], *, outer: bool = False
    ) -> None:
        super().__init__()
        self.operator, self.terms, self.outer = operator, tuple(terms), outer

    def get_sql(self, **kwargs: Any) -> str:
        kwargs.pop("subcriterion", None)
        parts = [t.get_sql(**kwargs) for t in self.terms]
        if not parts:  # never built from a client filter (empty logic is refused)
            return "TRUE" if self.operator == "AND" else "FALSE"
        if len(parts) == 1:
            return parts[0]
        joined = f" {self.operator} ".join(parts)
        return joined if self.outer else f"({joined})"


class _Ident(Term):
    """A declared (trusted) identifier, quoted."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def get_sql(self, **kwargs: Any) -> str:
        return _quote(self.name)


def _render(build: Callable[[], str]) -> tuple[str, tuple[Step, ...]]:
    """Render once, collecting the placeholders in the order they appear in the text."""
    with _render_lock:
        _collected.clear()
        sql = build()
        plan = tuple(_collected)
        _collected.clear()
    if sql.count("%s") != len(plan):  # pragma: no cover - a bug in this module, not user input
        raise AssertionError(f"placeholder mismatch in {sql!r}")
    return sql, plan


def _base_type(sql_type: str) -> str:
    """The type without its modifier: a cast to numeric(19, 4) would round a filter value."""
    return re.sub(r"\s*\([^)]*\)", "", sql_type)


def _const(value: Any) -> Converter:
    return lambda _value: value


# -- value converters ------------------------------------------------------------------------------

_DECIMAL_TEXT = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d{1,4})?")
"""A decimal number as text: ``"1.50"``, ``"-3"``, ``"2e3"`` (no NaN, no Infinity, no spaces)."""

_PARSED_FROM_TEXT: dict[type, Any] = {
    datetime: Annotated[datetime, msgspec.Meta(tz=True)],
    date: date,
    time: time,
    timedelta: timedelta,
    UUID: UUID,
    bytes: bytes,
}
"""Types a filter value may also give as text (ISO 8601, a UUID, base64), parsed by msgspec;
a timestamptz needs an offset (``Z`` or ``+02:00``), an epoch number is refused."""

_TYPE_NAMES: dict[Any, str] = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    Decimal: 'a number (or a decimal string such as "12.50")',
    str: "a string",
    datetime: 'an ISO 8601 timestamp with an offset ("2024-05-01T12:00:00Z")',
    date: 'an ISO 8601 date ("2024-05-01")',
    time: 'an ISO 8601 time ("12:30:00")',
    timedelta: 'an ISO 8601 duration ("P1DT2H")',
    UUID: "a UUID",
    bytes: "base64 text",
}


def _json_kind(value: Any) -> str:
    """The JSON name of a client value's type, for messages."""
    if value is None:
        return "null"
    kind = type(value)
    if kind is bool:
        return "a boolean"
    if kind is int or kind is float:
        return "a number"
    if kind is str:
        return "a string"
    if kind is list or kind is tuple:
        return "a list"
    if kind is dict:
        return "an object"
    return f"a {kind.__name__}"


class _Conv:
    """Builds the converters (strict checks + adaptation) for one column and filter part."""

    def __init__(
        self, table: str, column: ColumnDef | None, part: str, policy: FilterPolicy = TRUSTED
    ) -> None:
        self.table, self.column, self.part, self.policy = table, column, part, policy

    def error(self, reason: str) -> FilterError:
        return FilterError(
            reason,
            table=self.table,
            part=self.part,
            field=self.column.field if self.column else None,
            operator=self.part.rsplit(".", 1)[-1],
        )

    # -- one value of the column's type ---------------------------------------------------------

    def scalar(self) -> Converter:
        """A value of the column's type, strictly: what the README's filter section allows."""
        column = self.column
        assert column is not None
        if column.kind == "json":
            return self.json()
        if column.kind == "array":
            (item,) = get_args(column.python_type) or (Any,)
            item_type, nullable = _optional(item)
            element = column.sql_type.partition("[")[0].strip()
            return self.listing(self._value(item_type, element), allow_null=nullable)
        return self._value(column.python_type, column.sql_type)

    def as_is(self) -> type | None:
        """The type whose values `scalar()` returns unchanged (None: it always checks)."""
        column = self.column
        assert column is not None
        tp = column.python_type
        if column.kind == "scalar" and tp in (bool, float, UUID, date, time, timedelta, bytes):
            return tp  # type: ignore[no-any-return]
        return None

    def _value(self, tp: Any, sql_type: str) -> Converter:
        """The strict converter of one value of Python type `tp` (SQL type `sql_type`)."""
        error = self.error
        if get_origin(tp) is Literal:
            return self._literal(get_args(tp))
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return self._enum(tp)
        expected = _TYPE_NAMES.get(tp, getattr(tp, "__name__", str(tp)))

        def refuse(value: Any, detail: str | None = None) -> FilterError:
            return error(detail or f"expects {expected}, got {_json_kind(value)} {shown(value)}")

        if tp is int:
            bits = _INT_BITS.get(_base_type(sql_type).strip().lower(), 64)
            low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

            def integer(value: Any) -> Any:
                if type(value) is int and low <= value <= high:
                    return value
                if type(value) is int:
                    raise refuse(value, f"{shown(value)} is out of range for {sql_type}")
                raise refuse(value)

            return integer
        if tp is str:
            limit = self.policy.max_string

            def text(value: Any) -> Any:
                # the common case inline: isascii() is a flag lookup, the NUL search a memchr
                if (
                    type(value) is str
                    and value.isascii()
                    and len(value) <= limit
                    and "\x00" not in value
                ):
                    return value
                if type(value) is not str:
                    raise refuse(value)
                return self._checked_text(value, limit)

            return text
        if tp is bool:

            def boolean(value: Any) -> Any:
                if type(value) is bool:
                    return value
                raise refuse(value)

            return boolean
        if tp is float:

            def number(value: Any) -> Any:
                if type(value) is float:
                    return value
                if type(value) is int:
                    try:
                        return float(value)
                    except OverflowError:
                        reason = f"{shown(value)} is out of range for {sql_type}"
                        raise refuse(value, reason) from None
                raise refuse(value)

            return number
        if tp is Decimal:
            return self._decimal(refuse)
        parse = _PARSED_FROM_TEXT.get(tp)
        if parse is not None:
            naive = tp is datetime and "without time zone" in sql_type
            target = datetime if naive else parse

            def parsed(value: Any) -> Any:
                kind = type(value)
                if kind is tp:
                    if tp is datetime and not naive and value.tzinfo is None:
                        raise refuse(value, "a timestamp needs an offset (UTC: add Z)")
                    return value
                if kind is str and len(value) <= 1000:
                    try:
                        return msgspec.convert(value, target)
                    except msgspec.ValidationError as exc:
                        raise refuse(value, f"{shown(value)} is not {expected}: {exc}") from None
                raise refuse(value)

            return parsed
        return self._any(tp)  # pragma: no cover - every column type is covered above

    def _checked_text(self, value: str, limit: int) -> str:
        if len(value) > limit:
            raise self.error(f"a string of {len(value)} characters, more than {limit}")
        if "\x00" in value or not value.isascii():
            problem = text_problem(value)
            if problem is not None:
                raise self.error(problem)
        return value

    def _decimal(self, refuse: Callable[..., FilterError]) -> Converter:
        def decimal(value: Any) -> Any:
            kind = type(value)
            if kind is Decimal:
                if value.is_finite():
                    return value
                raise refuse(value, f"{value} is not a finite number")
            if kind is int:
                return value
            if kind is float:
                if math.isfinite(value):
                    return Decimal(repr(value))
                raise refuse(value, f"{value} is not a finite number")
            if kind is str and len(value) <= 200 and _DECIMAL_TEXT.fullmatch(value):
                try:
                    return Decimal(value)
                except InvalidOperation:  # pragma: no cover - the pattern is a valid Decimal
                    pass
            raise refuse(value)

        return decimal

    def _literal(self, allowed: tuple[Any, ...]) -> Converter:
        kind = type(allowed[0])
        error = self.error

        def literal(value: Any) -> Any:
            if type(value) is kind and value in allowed:
                return value
            raise error(f"{shown(value)} is not one of {', '.join(map(repr, allowed))}")

        return literal

    def _enum(self, enum_type: Any) -> Converter:
        members = {member.value: member.value for member in enum_type}
        kind = type(next(iter(members)))
        error = self.error

        def enum_value(value: Any) -> Any:
            if isinstance(value, enum_type):
                return value.value
            if type(value) is kind and value in members:
                return value
            raise error(f"{shown(value)} is not one of {', '.join(map(repr, members))}")

        return enum_value

    def _any(self, tp: Any) -> Converter:  # pragma: no cover - see _value
        error = self.error

        def convert(value: Any) -> Any:
            try:
                return msgspec.convert(value, tp)
            except msgspec.ValidationError as exc:
                raise error(f"{shown(value)} does not fit the column: {exc}") from None

        return convert

    # -- jsonb ------------------------------------------------------------------------------------

    def json(self) -> Converter:
        """Any JSON value, sent as text and cast to jsonb."""
        encode = msgspec.json.encode
        error = self.error
        limit = self.policy.max_string

        def convert(value: Any) -> str:
            try:
                text = encode(value).decode()
            except (TypeError, ValueError, OverflowError, RecursionError, msgspec.EncodeError):
                raise error(f"not a JSON value: {shown(value)}") from None
            if len(text) > limit:
                raise error(f"a JSON value of {len(text)} characters, more than {limit}")
            problem = json_text_problem(text)
            if problem is not None:
                raise error(problem)
            return text

        return convert

    def json_number(self) -> Converter:
        """A JSON number compared as numeric (5 = 5.0); NaN and Infinity refused."""
        error = self.error

        def convert(value: Any) -> Any:
            kind = type(value)
            if kind is int:
                return value
            if (kind is float and math.isfinite(value)) or (kind is Decimal and value.is_finite()):
                return value
            raise error(f"expects a finite number, got {shown(value)}")

        return convert

    def json_string(self) -> Converter:
        limit = self.policy.max_string
        error = self.error

        def convert(value: Any) -> Any:
            if type(value) is not str:
                raise error(f"expects a string, got {_json_kind(value)}")
            return self._checked_text(value, limit)

        return convert

    def json_boolean(self) -> Converter:
        error = self.error

        def convert(value: Any) -> Any:
            if type(value) is not bool:
                raise error(f"expects true or false, got {_json_kind(value)}")
            return value

        return convert

    # -- patterns, lists, pairs, keys -------------------------------------------------------------

    def pattern(self, *, like: bool) -> Converter:
        """A LIKE pattern (``\\`` escapes ``%``, ``_`` and ``\\``) or a regular expression."""
        error = self.error
        limit = self.policy.max_string

        def convert(value: Any) -> str:
            if type(value) is not str:
                raise error(f"expects a string pattern, got {_json_kind(value)} {shown(value)}")
            text: str = self._checked_text(value, limit)
            if like and text.endswith("\\") and (len(text) - len(text.rstrip("\\"))) % 2:
                raise error(
                    "a LIKE pattern cannot end with a lone backslash: \\ escapes %, _ and \\ "
                    "(write \\\\ for a backslash)"
                )
            return text

        return convert

    def listing(self, item: Converter, *, allow_null: bool = False) -> Converter:
        error = self.error
        limit = self.policy.max_list

        def convert(value: Any) -> list[Any]:
            if type(value) is not list and type(value) is not tuple:
                raise error(f"expects a list, got {_json_kind(value)} {shown(value)}")
            if len(value) > limit:
                raise error(f"a list of {len(value)} items, more than {limit}")
            if not allow_null and None in value:
                raise error(
                    'null in a list never matches: test for null with {"col": null} or '
                    '{"col": {"neq": null}}'
                )
            return [None if v is None else item(v) for v in value]

        return convert

    def pair(self, item: Converter, index: int, as_is: type | None = None) -> Converter:
        """One end (0: low, 1: high) of a ``between`` value ``[low, high]``; an end of exactly
        type `as_is` is taken as it is (the hot path: a repeated shape costs only this)."""
        error = self.error
        same = as_is if as_is is not None else _Never

        def convert(value: Any) -> Any:
            if (type(value) is not list and type(value) is not tuple) or len(value) != 2:
                raise error(f"expects a list of two values [low, high], got {shown(value)}")
            end = value[index]
            if type(end) is same:
                return end
            if end is None:
                raise error("between takes two values, not null: use gte or lte for one end")
            return item(end)

        return convert

    def key_part(self, item: Converter, index: int, key: tuple[str, ...]) -> Converter:
        """Part `index` of a composite primary key value (a tuple or list of ``len(key)``)."""
        table = self.table
        size = len(key)

        def convert(value: Any) -> Any:
            if type(value) not in (list, tuple) or len(value) != size:
                raise FilterError(
                    f"the primary key is ({', '.join(key)}): pass a tuple of {size} values, "
                    f"got {shown(value)}",
                    table=table,
                    part="id",
                )
            return item(value[index])

        return convert


def _optional(tp: Any) -> tuple[Any, bool]:
    """(`tp` without ``None``, whether it admitted ``None``) for an array's item type."""
    args = get_args(tp)
    if type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else Any), True
    return tp, False


_COMPARE = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_TEXT = {"like": "LIKE", "nlike": "NOT LIKE", "ilike": "ILIKE", "nilike": "NOT ILIKE"}
_REGEX = {"regexp": "~", "iregexp": "~*"}
_ORDER = re.compile(
    r"\s*([A-Za-z_][A-Za-z0-9_]*)(?:\s+(ASC|DESC))?(?:\s+NULLS\s+(FIRST|LAST))?\s*", re.I
)

# How a jsonb path condition reads the stored value for each JSON type of the filter value:
# stored values of another type read as NULL, so they match no operator (neq and nin included).
_JSON_READ = {
    "number": ("(CASE WHEN jsonb_typeof({0}) = 'number' THEN ({0})::numeric END)", "numeric"),
    "string": ("(CASE WHEN jsonb_typeof({0}) = 'string' THEN {0} #>> '{{}}' END)", "text"),
    "boolean": ("(CASE WHEN jsonb_typeof({0}) = 'boolean' THEN ({0})::boolean END)", "boolean"),
    "object": ("(CASE WHEN jsonb_typeof({0}) = 'object' THEN {0} END)", "jsonb"),
    "array": ("(CASE WHEN jsonb_typeof({0}) = 'array' THEN {0} END)", "jsonb"),
}
_JSON_OPERATORS = {
    "number": {"eq", "neq", "gt", "gte", "lt", "lte", "between", "inq", "nin"},
    "string": {"eq", "neq", "gt", "gte", "lt", "lte", "between", "inq", "nin", *_TEXT, *_REGEX},
    "boolean": {"eq", "neq", "inq", "nin"},
    "object": {"eq", "neq", "contains"},
    "array": {"eq", "neq", "contains"},
}

Use = Literal["filter", "order", "fields"]


class Compiler:
    """Compiles statements for one table. Cold path only: callers cache what it returns."""

    def __init__(self, table: Table[Any]) -> None:
        self.table = table
        self.name = table.qualified_name
        self.ptable = PTable(table.name, schema=table.schema.name)
        self.columns = table.columns
        self.pk = tuple(table.by_name[n] for n in table.primary_key)
        self.soft = table.soft_delete_column
        self._returning: dict[FilterPolicy, tuple[str, RowDecoder[Any]]] = {}

    # -- names -------------------------------------------------------------------------------------

    def column(
        self, name: Any, part: str, *, policy: FilterPolicy = TRUSTED, use: Use = "filter"
    ) -> ColumnDef:
        """The column a filter names (field or SQL name); `FilterError` naming `part` if none.

        Under a client policy, hidden columns and columns the policy does not open for `use`
        are answered exactly as columns that do not exist.
        """
        found = None
        if type(name) is str:
            found = self.table.by_field.get(name) or self.table.by_name.get(name)
        if found is not None and policy.client and not self._open(found, policy, use):
            found = None
        if found is None:
            hint = ""
            if part == f"where.{name}" and name in _FILTER_KEYS:
                # count / exists / update_all / delete_all take the where part only
                hint = f"; {name!r} is a filter key: this method takes a where dict, not a filter"
            known = ", ".join(c.name for c in self.columns if self._open(c, policy, use))
            raise FilterError(
                f"unknown column {shown(name)} (columns: {known}){hint}",
                table=self.name,
                part=part,
            )
        return found

    @staticmethod
    def _open(column: ColumnDef, policy: FilterPolicy, use: Use) -> bool:
        """Whether `policy` lets a filter name `column` for `use` (trusted: every column)."""
        if not policy.client:
            return True
        if column.hidden:
            return False
        allowed = policy.allowed(use)
        if allowed is None:
            return True
        if column.field in allowed or column.name in allowed:
            return True
        # "metadata.plan" in the filter list opens the jsonb column for those paths only
        return use == "filter" and column.kind == "json" and _has_path_entry(allowed, column)

    @staticmethod
    def _select_sql(column: ColumnDef) -> str:
        # jsonb as text: decoded by msgspec, typed, a whole column at a time (see rows.py).
        return _quote(column.name) + ("::text" if column.kind == "json" else "")

    def selection(self, policy: FilterPolicy = TRUSTED) -> tuple[ColumnDef, ...]:
        """The columns a statement returns when the caller names none: every column that is
        not hidden (and, under a client policy with ``fields``, only those)."""
        if not policy.client:
            return self.table.visible_columns
        return tuple(c for c in self.table.visible_columns if self._open(c, policy, "fields"))

    def returning(self, policy: FilterPolicy = TRUSTED) -> tuple[str, RowDecoder[Any]]:
        """`` RETURNING ...`` of the policy's `selection`, and the decoder of its rows."""
        found = self._returning.get(policy)
        if found is None:
            selected = self.selection(policy)
            sql = " RETURNING " + ", ".join(self._select_sql(c) for c in selected)
            found = self._returning[policy] = (sql, self._decoder(selected))
        return found

    def _decoder(self, selected: Sequence[ColumnDef]) -> RowDecoder[Any]:
        return RowDecoder(self.table.row_type, self.columns, selected)

    def _selected(
        self, fields: tuple[str, ...] | None, policy: FilterPolicy
    ) -> tuple[ColumnDef, ...]:
        if fields is None:
            return self.selection(policy)
        chosen = {
            self.column(f, f"fields[{i}]", policy=policy, use="fields").name
            for i, f in enumerate(fields)
        }
        if not chosen:
            raise FilterError("fields selects no column", table=self.name, part="fields")
        return tuple(c for c in self.columns if c.name in chosen)

    # -- where -------------------------------------------------------------------------------------

    def where(
        self,
        key: tuple[Any, ...],
        slot: int,
        part: str = "where",
        *,
        policy: FilterPolicy = TRUSTED,
    ) -> tuple[Criterion, int]:
        """The criterion for a where shape key whose values start at `slot`."""
        terms: list[Criterion] = []
        for item in key:
            if len(item) == 2:  # ("and" | "or", (subkey, ...))
                logical, subkeys = item
                subs = []
                for i, subkey in enumerate(subkeys):
                    criterion, slot = self.where(
                        subkey, slot, f"{part}.{logical}[{i}]", policy=policy
                    )
                    subs.append(criterion)
                terms.append(_Junction("AND" if logical == "and" else "OR", subs))
                continue
            name, op, flag = item
            terms.append(self._condition(name, op, flag, slot, part, policy))
            slot += 1
        return _Junction("AND", terms), slot

    def _operator(self, op: Any, where: str, policy: FilterPolicy, column: ColumnDef) -> None:
        if op in policy.operators:
            return
        if op in OPERATORS:
            allowed = ", ".join(sorted(policy.operators))
            reason = f"operator {op} is not allowed here (allowed: {allowed})"
        else:
            reason = f"unknown operator {shown(op)} (one of {', '.join(sorted(policy.operators))})"
        raise FilterError(
            reason, table=self.name, part=where, field=column.field, operator=clip(str(op))
        )

    def _condition(
        self, name: Any, op: Any, flag: Any, slot: int, part: str, policy: FilterPolicy
    ) -> Criterion:
        here = f"{part}.{name}"
        if type(name) is str and name not in self.table.by_field and "." in name:
            base, *path = name.split(".")
            column = self.column(base, here, policy=policy)
            if column.kind != "json":
                raise FilterError(
                    f"{shown(base)} is not a jsonb column; paths need one",
                    table=self.name,
                    part=here,
                )
            if policy.client and not _path_open(policy, column, name):
                self.column(name, here, policy=policy)  # raises as for an unknown column
            op = op or "eq"
            return self._path_condition(column, path, op, flag, slot, f"{here}.{op}", policy)
        column = self.column(name, here, policy=policy)
        op = op or "eq"
        where = f"{here}.{op}"
        self._operator(op, where, policy, column)
        col = _Ident(column.name)
        conv = _Conv(self.name, column, where, policy)
        cast = _base_type(column.sql_type)
        kind = column.kind
        if flag:  # the value is None
            if op == "eq":
                return _Sql("{0} IS NULL", col)
            if op == "neq":
                return _Sql("{0} IS NOT NULL", col)
            raise conv.error("null only works with eq / neq (IS NULL / IS NOT NULL)")
        if kind == "json":
            value = _Param(slot, conv.json(), "jsonb")
            templates = {"eq": "{0} = {1}", "neq": "{0} <> {1}", "contains": "{0} @> {1}"}
            if op not in templates:
                raise conv.error(f"operator {op} does not apply to a jsonb column; use a path")
            return _Sql(templates[op], col, value)
        if kind == "array":
            whole = _Param(slot, conv.scalar(), cast)
            templates = {
                "eq": "{0} = {1}",
                "neq": "{0} <> {1}",
                "contains": "{0} @> {1}",
                "overlaps": "{0} && {1}",
            }
            if op not in templates:
                raise conv.error(f"operator {op} does not apply to an array column")
            return _Sql(templates[op], col, whole)
        if op in ("eq", "neq") or op in _COMPARE:
            sql_op = {"eq": "=", "neq": "<>", **_COMPARE}[op]
            return _Sql(
                "{0} " + sql_op + " {1}", col, _Param(slot, conv.scalar(), cast, conv.as_is())
            )
        if op == "between":
            item, same = conv.scalar(), conv.as_is()
            low, high = (
                _Param(slot, conv.pair(item, 0, same), cast),
                _Param(slot, conv.pair(item, 1, same), cast),
            )
            return _Sql("{0} BETWEEN {1} AND {2}", col, low, high)
        if op in ("inq", "nin"):
            values = _Param(slot, conv.listing(conv.scalar()), cast + "[]")
            if op == "inq":
                return _Sql("{0} = ANY({1})", col, values)
            # NULL matches only null tests, and an empty nin is every non-NULL row
            return _Sql("({0} IS NOT NULL AND {0} <> ALL({1}))", col, values)
        if op in _TEXT or op in _REGEX:
            if column.python_type is not str:
                raise conv.error(f"operator {op} needs a text column")
            sql_op = _TEXT.get(op) or _REGEX[op]
            pattern = conv.pattern(like=op in _TEXT)
            return _Sql("{0} " + sql_op + " {1}", col, _Param(slot, pattern, "text"))
        raise conv.error(f"operator {op} does not apply to this column")

    def _path_condition(
        self,
        column: ColumnDef,
        path: list[str],
        op: Any,
        json_type: str,
        slot: int,
        where: str,
        policy: FilterPolicy,
    ) -> Criterion:
        self._operator(op, where, policy, column)
        conv = _Conv(self.name, column, where, policy)
        if not all(path):
            raise conv.error("empty segment in jsonb path")
        for segment in path:
            problem = text_problem(segment)
            if problem is not None:
                raise conv.error(f"jsonb path: {problem}")
        col = _Ident(column.name)
        # The path is a parameter too (text[]): nothing from the filter is spliced into SQL.
        node = _Sql("({0} #> {1})", col, _Param(slot, _const(list(path)), "text[]"))
        if json_type == "null":
            if op == "eq":  # a JSON null or no value at all
                return _Sql("COALESCE({0}, 'null'::jsonb) = 'null'::jsonb", node)
            if op == "neq":
                return _Sql("COALESCE({0}, 'null'::jsonb) <> 'null'::jsonb", node)
            raise conv.error("null only works with eq / neq")
        if json_type == "empty":  # an empty inq / nin list
            if op == "inq":
                return _Sql("FALSE")
            if op == "nin":
                return _Sql("COALESCE({0}, 'null'::jsonb) <> 'null'::jsonb", node)
            raise conv.error("expects a list of two values [low, high], got []")
        if json_type not in _JSON_READ:
            raise conv.error("expects a JSON value (null, boolean, number, string, object, array)")
        if op not in _JSON_OPERATORS[json_type]:
            raise conv.error(
                f"operator {op} does not apply to a JSON {json_type} "
                f"(for a {json_type}: {', '.join(sorted(_JSON_OPERATORS[json_type]))})"
            )
        read, cast = _JSON_READ[json_type]
        typed = _Sql(read, node)
        item: Converter = {
            "number": conv.json_number,
            "string": conv.json_string,
            "boolean": conv.json_boolean,
        }.get(json_type, conv.json)()
        if op in ("eq", "neq") or op in _COMPARE:
            sql_op = {"eq": "=", "neq": "<>", **_COMPARE}[op]
            return _Sql("{0} " + sql_op + " {1}", typed, _Param(slot, item, cast))
        if op == "contains":
            return _Sql("{0} @> {1}", typed, _Param(slot, item, "jsonb"))
        if op == "between":
            low, high = (
                _Param(slot, conv.pair(item, 0), cast),
                _Param(slot, conv.pair(item, 1), cast),
            )
            return _Sql("{0} BETWEEN {1} AND {2}", typed, low, high)
        if op in ("inq", "nin"):
            values = _Param(slot, conv.listing(item), cast + "[]")
            if op == "inq":
                return _Sql("{0} = ANY({1})", typed, values)
            return _Sql("({0} IS NOT NULL AND {0} <> ALL({1}))", typed, values)
        sql_op = _TEXT.get(op) or _REGEX[op]  # a string's text only (see _JSON_OPERATORS)
        pattern = conv.pattern(like=op in _TEXT)
        return _Sql("{0} " + sql_op + " {1}", typed, _Param(slot, pattern, "text"))

    def _restriction(
        self,
        slot: int,
        *,
        by_id: bool,
        scope: tuple[str, ...],
        where_key: tuple[Any, ...] | None,
        live: bool,
        policy: FilterPolicy,
        deleted: bool = False,
        after: tuple[str, ...] | None = None,
        within: str | None = None,
    ) -> tuple[Criterion | None, int]:
        """The WHERE of a statement: the primary key (one slot), the scope (a slot per column),
        the where clause (its slots), the keyset condition of `after` (a slot per order key),
        the soft-delete test; all ANDed. The client's where is one parenthesized term, so
        nothing in it (a top-level ``or``) widens the rest."""
        terms: list[Criterion] = []
        if by_id:
            criterion, slot = self._pk_criterion(slot)
            terms.append(criterion)
        for field in scope:
            column = self.table.by_field[field]
            conv = _Conv(self.name, column, f"scope.{field}")
            param = _Param(slot, conv.scalar(), _base_type(column.sql_type), conv.as_is())
            terms.append(_Sql("{0} = {1}", _Ident(column.name), param))
            slot += 1
        if within is not None:  # the keys of included rows: code's own values, one array
            column = self.table.column(within)
            conv = _Conv(self.name, column, "include")
            param = _Param(slot, conv.listing(conv.scalar()), _base_type(column.sql_type) + "[]")
            terms.append(_Sql("{0} = ANY({1})", _Ident(column.name), param))
            slot += 1
        if where_key:
            criterion, slot = self.where(where_key, slot, policy=policy)
            terms.append(criterion)
        if after:
            criterion, slot = self._keyset(after, slot, policy)
            terms.append(criterion)
        if live and self.soft is not None:
            terms.append(_Sql("{0} IS NULL", _Ident(self.soft.name)))
        if deleted and self.soft is not None:
            terms.append(_Sql("{0} IS NOT NULL", _Ident(self.soft.name)))
        if not terms:
            return None, slot
        if len(terms) == 1 and isinstance(terms[0], _Junction):
            terms[0].outer = True  # the where clause alone: no parentheses around it
        return _Junction("AND", terms, outer=True), slot

    def _pk_criterion(self, slot: int, part: str = "id") -> tuple[Criterion, int]:
        """``pk = %s`` (one value slot; a composite key's value is a tuple in key order)."""
        if not self.pk:  # without this check the WHERE would be empty: every row would match
            raise DeclarationError(
                "has no primary key: the *_by_id methods need one (use the where forms)",
                table=self.name,
            )
        key = tuple(c.field for c in self.pk)
        terms = []
        for i, column in enumerate(self.pk):
            conv = _Conv(self.name, column, part)
            convert, as_is = conv.scalar(), conv.as_is()
            if len(self.pk) > 1:
                convert = conv.key_part(convert, i, key)
                as_is = None  # the value is the whole key tuple
            terms.append(
                _Sql(
                    "{0} = {1}",
                    _Ident(column.name),
                    _Param(slot, convert, _base_type(column.sql_type), as_is),
                )
            )
        return _Junction("AND", terms), slot + 1

    def keys(
        self, order: tuple[Any, ...], policy: FilterPolicy
    ) -> tuple[tuple[ColumnDef, bool], ...]:
        """The order's columns and whether each is descending; `FilterError` for a column
        the keyset cannot use (one that may be NULL: a row comparison skips NULLs)."""
        out = []
        for i, text in enumerate(order):
            if type(text) is tuple:  # a key the library added (see `trusted_key`)
                out.append((self.table.column(text[0]), text[1] == "DESC"))
                continue
            match = _ORDER.fullmatch(text) if type(text) is str and len(text) <= 200 else None
            if match is None:
                raise FilterError(
                    f"cannot read {shown(text)}: use 'column [ASC|DESC]'",
                    table=self.name,
                    part=f"order[{i}]",
                )
            column = self.column(match.group(1), f"order[{i}]", policy=policy, use="order")
            if column.nullable or column.kind != "scalar":
                raise FilterError(
                    f"a cursor pages by NOT NULL scalar columns; {column.field} "
                    + ("may be NULL" if column.nullable else f"is {column.kind}")
                    + ": order by other columns, or page with offset",
                    table=self.name,
                    part=f"order[{i}]",
                    field=column.field,
                )
            out.append((column, (match.group(2) or "ASC").upper() == "DESC"))
        return tuple(out)

    def _keyset(
        self, order: tuple[str, ...], slot: int, policy: FilterPolicy
    ) -> tuple[Criterion, int]:
        """Rows after a cursor in `order`: ``(a, b) > (%s, %s)`` — one row comparison, which
        an index on ``(a, b)`` serves — when every key goes the same way; with mixed
        directions the equivalent ``a > %s OR (a = %s AND b < %s)``."""
        keys = self.keys(order, policy)
        params = []
        for i, (column, _) in enumerate(keys):
            conv = _Conv(self.name, column, f"after[{i}]")
            params.append(
                _Param(slot + i, conv.scalar(), _base_type(column.sql_type), conv.as_is())
            )
        idents = [_Ident(column.name) for column, _ in keys]
        n = len(keys)
        if len({descending for _, descending in keys}) == 1:
            sign = "<" if keys[0][1] else ">"
            left = ", ".join(f"{{{i}}}" for i in range(n))
            right = ", ".join(f"{{{n + i}}}" for i in range(n))
            return _Sql(f"({left}) {sign} ({right})", *idents, *params), slot + n
        ors = []
        for i, (_, descending) in enumerate(keys):
            equal = [_Sql("{0} = {1}", idents[j], params[j]) for j in range(i)]
            beyond = _Sql("{0} " + ("<" if descending else ">") + " {1}", idents[i], params[i])
            ors.append(_Junction("AND", [*equal, beyond]))
        return _Junction("OR", ors), slot + n

    def _order(self, order: tuple[Any, ...], policy: FilterPolicy) -> list[_Sql]:
        if len(order) > len(self.columns):
            raise FilterError(
                f"order names {len(order)} keys; the table has {len(self.columns)} columns",
                table=self.name,
                part="order",
            )
        out = []
        for i, text in enumerate(order):
            if type(text) is tuple:  # a key the library added (see `trusted_key`)
                column = self.table.column(text[0])
                out.append(_Sql("{0} " + text[1], _Ident(column.name)))
                continue
            if type(text) is not str:  # split_filter passes lists of names through unchecked
                raise FilterError(
                    "order must be a list of column names", table=self.name, part="order"
                )
            match = _ORDER.fullmatch(text) if len(text) <= 200 else None
            if match is None:
                raise FilterError(
                    f"cannot read {shown(text)}: use 'column [ASC|DESC] [NULLS FIRST|LAST]'",
                    table=self.name,
                    part=f"order[{i}]",
                )
            column = self.column(match.group(1), f"order[{i}]", policy=policy, use="order")
            sql = "{0} " + (match.group(2) or "ASC").upper()
            if match.group(3):
                sql += " NULLS " + match.group(3).upper()
            out.append(_Sql(sql, _Ident(column.name)))
        return out

    @staticmethod
    def _patterns(where_key: tuple[Any, ...] | None, part: str = "where") -> tuple[str, ...]:
        """The parts of a where shape that hold regular expressions."""
        found: list[str] = []
        for item in where_key or ():
            if len(item) == 2:
                for i, sub in enumerate(item[1]):
                    found += Compiler._patterns(sub, f"{part}.{item[0]}[{i}]")
            elif item[1] in _REGEX:
                found.append(f"{part}.{item[0]}.{item[1]}")
        return tuple(found)

    # -- statements --------------------------------------------------------------------------------

    def select(
        self,
        *,
        where_key: tuple[Any, ...] | None,
        fields: tuple[str, ...] | None,
        order: tuple[str, ...] | None,
        has_limit: bool,
        has_offset: bool,
        lock: Lock | None,
        live: bool,
        by_id: bool = False,
        policy: FilterPolicy = TRUSTED,
        scope: tuple[str, ...] = (),
        after: bool = False,
        partition: str | None = None,
        extra: tuple[str, ...] = (),
        within: str | None = None,
    ) -> Compiled:
        """SELECT for a filter shape. Values: ``[id]`` if `by_id`, the scope's values, where
        values, the cursor's values (`after`: a keyset condition on the order's columns),
        limit, offset.

        With `partition` (a column), ``limit`` and ``offset`` apply to each value of that
        column — the rows of each parent, for an included relation — through ``row_number()``.
        `extra` names columns selected whatever ``fields`` says (the keys relations join on).
        """
        selected = self._selected(fields, policy)
        if extra:
            chosen = {c.name for c in selected} | set(extra)
            selected = tuple(c for c in self.columns if c.name in chosen)
        criterion, slot = self._restriction(
            0,
            by_id=by_id,
            scope=scope,
            where_key=where_key,
            live=live,
            policy=policy,
            after=order if after and order else None,
            within=within,
        )
        if partition is not None and (has_limit or has_offset):
            return self._ranked(
                selected, criterion, slot, order, policy, partition, has_limit, has_offset
            )
        query = PostgreSQLQuery.from_(self.ptable).select(
            *(_Sql(self._select_sql(c)) for c in selected)
        )
        if criterion is not None:
            query = query.where(criterion)
        if order:
            for term in self._order(order, policy):
                query = query.orderby(term)
        tail: list[Any] = []
        if has_limit:
            tail.append(_Sql(" LIMIT {0}", _Param(slot, int, None, int)))
            slot += 1
        if has_offset:
            tail.append(_Sql(" OFFSET {0}", _Param(slot, int, None, int)))
            slot += 1
        lock_sql = " " + lock.sql if lock is not None else ""

        def build() -> str:
            return query.get_sql() + "".join(t.get_sql() for t in tail) + lock_sql

        sql, plan = _render(build)
        return Compiled(sql, plan, self._decoder(selected), self._patterns(where_key))

    def _ranked(
        self,
        selected: tuple[ColumnDef, ...],
        criterion: Criterion | None,
        slot: int,
        order: tuple[str, ...] | None,
        policy: FilterPolicy,
        partition: str,
        has_limit: bool,
        has_offset: bool,
    ) -> Compiled:
        """``limit`` / ``offset`` per value of `partition`: the rows numbered within their
        partition (in `order`, else by primary key), then cut."""
        terms = (
            self._order(order, policy)
            if order
            else [_Sql("{0} ASC", _Ident(c.name)) for c in self.pk]
        )
        window = (
            "row_number() OVER (PARTITION BY {0} ORDER BY "
            + ", ".join(f"{{{i + 1}}}" for i in range(len(terms)))
            + ') AS "nxdata_rank"'
        )
        inner = PostgreSQLQuery.from_(self.ptable).select(
            *(_Sql(self._select_sql(c)) for c in selected),
            _Sql(window, _Ident(partition), *terms),
        )
        if criterion is not None:
            inner = inner.where(criterion)
        limit = _Param(slot, int, None, int) if has_limit else None
        slot += has_limit
        offset = _Param(slot, int, None, int) if has_offset else None
        names = ", ".join(_quote(c.name) for c in selected)
        if limit is not None and offset is not None:
            cut = _Sql('"nxdata_rank" > {0} AND "nxdata_rank" <= {0} + {1}', offset, limit)
        elif limit is not None:
            cut = _Sql('"nxdata_rank" <= {0}', limit)
        else:
            assert offset is not None
            cut = _Sql('"nxdata_rank" > {0}', offset)

        def build() -> str:
            return (
                f'SELECT {names} FROM ({inner.get_sql()}) AS "nxdata_ranked" WHERE '
                f'{cut.get_sql()} ORDER BY {_quote(partition)}, "nxdata_rank"'
            )

        sql, plan = _render(build)
        return Compiled(sql, plan, self._decoder(selected))

    def aggregate(
        self,
        *,
        where_key: tuple[Any, ...] | None,
        live: bool,
        what: Literal["count", "exists"],
        policy: FilterPolicy = TRUSTED,
        scope: tuple[str, ...] = (),
    ) -> Compiled:
        """``count``: SELECT count(*); ``exists``: SELECT EXISTS (SELECT 1 ...)."""
        criterion, _ = self._restriction(
            0, by_id=False, scope=scope, where_key=where_key, live=live, policy=policy
        )
        query = PostgreSQLQuery.from_(self.ptable).select(
            _Sql("1" if what == "exists" else "count(*)")
        )
        if criterion is not None:
            query = query.where(criterion)

        def build() -> str:
            sql = query.get_sql()
            return f"SELECT EXISTS ({sql})" if what == "exists" else sql

        sql, plan = _render(build)
        return Compiled(sql, plan, None, self._patterns(where_key))

    def group(
        self,
        *,
        where_key: tuple[Any, ...] | None,
        group_by: tuple[str, ...],
        count: bool,
        measures: tuple[tuple[str, tuple[str, ...]], ...],
        order: tuple[str, ...] | None,
        has_limit: bool,
        live: bool,
        policy: FilterPolicy = TRUSTED,
        scope: tuple[str, ...] = (),
    ) -> Compiled:
        """``SELECT group columns, count(*), sum(x)... GROUP BY ...`` (`Repository.aggregate`).
        Values: the scope's, the where clause's, the limit."""
        criterion, slot = self._restriction(
            0, by_id=False, scope=scope, where_key=where_key, live=live, policy=policy
        )
        groups = [
            self._scalar(self.column(g, f"group_by[{i}]", policy=policy, use="fields"))
            for i, g in enumerate(group_by)
        ]
        select: list[Term] = [_Sql("{0}", _Ident(c.name)) for c in groups]
        keys: list[tuple[str, ColumnDef | None]] = [(c.field, c) for c in groups]
        if count:
            select.append(_Sql('count(*) AS "count"'))
            keys.append(("count", None))
        for function, columns in measures:
            for i, name in enumerate(columns):
                column = self._scalar(
                    self.column(name, f"{function}[{i}]", policy=policy, use="fields")
                )
                numeric = column.python_type in (int, float, Decimal)
                if function in ("sum", "avg") and not numeric:
                    raise FilterError(
                        f"{function} needs a number column; {column.field} is not",
                        table=self.name,
                        part=f"{function}[{i}]",
                        field=column.field,
                    )
                alias = f"{function}_{column.field}"
                select.append(_Sql(f'{function}({{0}}) AS "{alias}"', _Ident(column.name)))
                # min/max keep the column's type; a sum of integers is numeric in PostgreSQL
                keys.append((alias, column if function in ("min", "max") else None))
        if not select:
            raise FilterError(
                "aggregate computes nothing: ask for a count or a measure", table=self.name
            )
        query = PostgreSQLQuery.from_(self.ptable).select(*select)
        if criterion is not None:
            query = query.where(criterion)
        names = [k for k, _ in keys]
        tail = ""
        if groups:
            tail += " GROUP BY " + ", ".join(_quote(c.name) for c in groups)
        if order:
            terms = []
            for i, text in enumerate(order):
                match = _ORDER.fullmatch(text) if type(text) is str and len(text) <= 200 else None
                if match is None or match.group(1) not in names:
                    raise FilterError(
                        f"order names a result key ({', '.join(names)}), not {shown(text)}",
                        table=self.name,
                        part=f"order[{i}]",
                    )
                terms.append(
                    _quote(match.group(1))
                    + " "
                    + (match.group(2) or "ASC").upper()
                    + (f" NULLS {match.group(3).upper()}" if match.group(3) else "")
                )
            tail += " ORDER BY " + ", ".join(terms)
        elif groups:
            tail += " ORDER BY " + ", ".join(_quote(c.name) for c in groups)
        limit = _Sql(" LIMIT {0}", _Param(slot, int, None, int)) if has_limit else None

        def build() -> str:
            return query.get_sql() + tail + (limit.get_sql() if limit is not None else "")

        sql, plan = _render(build)
        # A decoder of dicts where rows decoders go: the same one()/many() interface.
        decoder = cast("RowDecoder[Any]", GroupDecoder(keys))
        return Compiled(sql, plan, decoder, self._patterns(where_key))

    def _scalar(self, column: ColumnDef) -> ColumnDef:
        if column.kind not in ("scalar", "enum"):
            raise FilterError(
                f"{column.field} is {column.kind}: group and aggregate scalar columns",
                table=self.name,
                field=column.field,
            )
        return column

    def _value_param(self, column: ColumnDef, slot: int) -> _Param:
        conv = _write_converter(column, table=self.name)
        cast = "jsonb" if column.kind == "json" else _base_type(column.sql_type)
        return _Param(slot, conv, cast)

    def insert(
        self,
        fields: tuple[str, ...],
        *,
        conflict: tuple[str, ...] | None = None,
        update: tuple[str, ...] | None = None,
        live_reset: bool = False,
        policy: FilterPolicy = TRUSTED,
        scope: tuple[str, ...] = (),
    ) -> Compiled:
        """INSERT of the given fields (values in that order) RETURNING the row; with `conflict`,
        an upsert: ON CONFLICT (conflict) DO UPDATE SET update (DO NOTHING when empty).

        With a `scope`, the DO UPDATE only touches a row of the same scope: a conflict with
        another scope's row updates nothing (and returns no row).
        """
        columns = [self.table.by_field[f] for f in fields]
        query = (
            PostgreSQLQuery.into(self.ptable)
            .columns(*(_Ident(c.name) for c in columns))
            .insert(*(self._value_param(c, i) for i, c in enumerate(columns)))
        )
        suffix = ""
        if conflict is not None:
            suffix = self._conflict_target([self.column(n, "conflict") for n in conflict])
            sets = [
                f"{_quote(c.name)} = EXCLUDED.{_quote(c.name)}"
                for c in (self.column(n, "update") for n in update or ())
                if not (live_reset and c is self.soft)  # set to NULL below instead
            ]
            if sets:
                sets += [
                    f"{_quote(c.name)} = {c.options.on_update}"
                    for c in self.columns
                    if c.options.on_update
                ]
                if live_reset and self.soft is not None:
                    sets.append(f"{_quote(self.soft.name)} = NULL")
                suffix += " DO UPDATE SET " + ", ".join(sets)
                if scope:
                    same = [
                        f"{self.table.sql_name}.{_quote(n)} = EXCLUDED.{_quote(n)}"
                        for n in (self.table.by_field[f].name for f in scope)
                    ]
                    suffix += " WHERE " + " AND ".join(same)
            else:
                suffix += " DO NOTHING"
        returning, decoder = self.returning(policy)
        sql, plan = _render(lambda: query.get_sql() + suffix + returning)
        return Compiled(sql, plan, decoder)

    def _conflict_target(self, targets: list[ColumnDef]) -> str:
        """``ON CONFLICT (cols)`` for the key, unique constraint or unique index on exactly these
        columns; a partial unique index (`live_unique`) needs its WHERE for PostgreSQL to pick it.
        """
        names = [c.name for c in targets]
        wanted = set(names)
        table = self.table
        target = " ON CONFLICT (" + ", ".join(map(_quote, names)) + ")"
        if wanted == set(table.primary_key) or any(wanted == set(u.columns) for u in table.uniques):
            return target
        unique = [i for i in table.indexes if i.unique and i.expression is None]
        if any(wanted == set(i.columns) and i.where is None for i in unique):
            return target
        for index in unique:
            if wanted == set(index.columns):
                return f"{target} WHERE {index.where}"
        keys = [table.primary_key, *(u.columns for u in table.uniques)]
        keys += [i.columns for i in unique]
        raise FilterError(
            f"no primary key, unique constraint or unique index on ({', '.join(names)}): "
            "ON CONFLICT needs one (declared: "
            + "; ".join("(" + ", ".join(k) + ")" for k in keys if k)
            + ")",
            table=self.name,
            part="conflict",
        )

    def unnest_safe(self, fields: tuple[str, ...]) -> bool:
        """True when `insert_many` can write these fields: no array column among them.

        unnest() flattens a two-dimensional array parameter (and PostgreSQL arrays must be
        rectangular), so rows that carry arrays go in through `insert` and ``executemany``.
        """
        return all(self.table.by_field[f].kind != "array" for f in fields)

    def insert_many(self, fields: tuple[str, ...], *, policy: FilterPolicy = TRUSTED) -> Compiled:
        """INSERT ... SELECT FROM unnest(one array parameter per column) RETURNING the rows: one
        statement whatever the number of rows. Value slot i holds column i's list of values.

        Only for fields without array columns (`unnest_safe`). ``WITH ORDINALITY ... ORDER BY``
        keeps the returned rows in the order of the input.
        """
        columns = [self.table.by_field[f] for f in fields]
        if not self.unnest_safe(fields):  # pragma: no cover - callers check unnest_safe
            raise AssertionError("insert_many cannot write array columns")
        arrays = []
        for i, column in enumerate(columns):
            cast = ("jsonb" if column.kind == "json" else _base_type(column.sql_type)) + "[]"
            arrays.append(_Param(i, _each(_write_converter(column, table=self.name)), cast))
        names = ", ".join(_quote(c.name) for c in columns)
        # Generated aliases (c0, c1, ..., n): declared names never meet the ordinality column.
        aliases = [f"c{i}" for i in range(len(columns))]
        source = _Sql("unnest(" + ", ".join(f"{{{i}}}" for i in range(len(arrays))) + ")", *arrays)
        returning, decoder = self.returning(policy)
        sql, plan = _render(
            lambda: (
                f"INSERT INTO {self.table.sql_name} ({names}) SELECT {', '.join(aliases)} FROM "
                + source.get_sql()
                + f" WITH ORDINALITY AS _nx({', '.join(aliases)}, n) ORDER BY n"
                + returning
            )
        )
        return Compiled(sql, plan, decoder)

    def copy_sql(self, fields: tuple[str, ...]) -> str:
        """COPY ... FROM STDIN for these fields (bulk insert without RETURNING)."""
        names = ", ".join(_quote(self.table.by_field[f].name) for f in fields)
        return f"COPY {self.table.sql_name} ({names}) FROM STDIN"

    def update(
        self,
        fields: tuple[str, ...],
        *,
        where_key: tuple[Any, ...] | None,
        by_id: bool,
        live: bool,
        returning: bool,
        raw_sets: tuple[tuple[str, str], ...] = (),
        require_deleted: bool = False,
        policy: FilterPolicy = TRUSTED,
        scope: tuple[str, ...] = (),
    ) -> Compiled:
        """UPDATE setting `fields` (values first), then ``[id]`` if `by_id`, the scope's values,
        then where values.

        Columns with ``on_update`` (``modified_at``) are always set; `raw_sets` adds fixed SQL
        assignments (``deleted_at = now()``) written by this library, never from input.
        """
        columns = [self.table.by_field[f] for f in fields]
        query = PostgreSQLQuery.update(self.ptable)
        slot = 0
        for column in columns:
            query = query.set(Field(column.name), self._value_param(column, slot))
            slot += 1
        for column in self.columns:
            if column.options.on_update and column.field not in fields:
                query = query.set(Field(column.name), _Sql(column.options.on_update))
        for name, expression in raw_sets:
            query = query.set(Field(name), _Sql(expression))
        criterion, slot = self._restriction(
            slot,
            by_id=by_id,
            scope=scope,
            where_key=where_key,
            live=live,
            policy=policy,
            deleted=require_deleted,
        )
        if criterion is not None:
            query = query.where(criterion)
        suffix, decoder = self.returning(policy) if returning else ("", None)
        sql, plan = _render(lambda: query.get_sql() + suffix)
        return Compiled(sql, plan, decoder, self._patterns(where_key))

    def delete(
        self,
        *,
        where_key: tuple[Any, ...] | None,
        by_id: bool,
        live: bool,
        returning: bool,
        policy: FilterPolicy = TRUSTED,
        scope: tuple[str, ...] = (),
    ) -> Compiled:
        """DELETE (for real): ``[id]`` if `by_id`, the scope's values, then where values."""
        criterion, _ = self._restriction(
            0, by_id=by_id, scope=scope, where_key=where_key, live=live, policy=policy
        )
        query = PostgreSQLQuery.from_(self.ptable).delete()
        if criterion is not None:
            query = query.where(criterion)
        suffix, decoder = self.returning(policy) if returning else ("", None)
        sql, plan = _render(lambda: query.get_sql() + suffix)
        return Compiled(sql, plan, decoder, self._patterns(where_key))


def _has_path_entry(allowed: frozenset[str], column: ColumnDef) -> bool:
    return any(entry.split(".", 1)[0] in (column.field, column.name) for entry in allowed)


def _path_open(policy: FilterPolicy, column: ColumnDef, path: str) -> bool:
    """Whether a client policy's ``filter`` list opens this jsonb path."""
    allowed = policy.allowed("filter")
    if allowed is None or column.field in allowed or column.name in allowed:
        return True
    rest = path.split(".", 1)[1]
    for entry in allowed:
        head, _, entry_rest = entry.partition(".")
        if head in (column.field, column.name) and (
            rest == entry_rest or rest.startswith(entry_rest + ".")
        ):
            return True
    return False


def _write_converter(column: ColumnDef, *, table: str | None = None) -> Converter:
    """Validated insert/update values → what psycopg binds (jsonb as text, enums as values).

    jsonb text that PostgreSQL would refuse (a NUL character in a string, a lone surrogate) is
    a `ValidationError` naming the column, before anything is sent.
    """
    if column.kind == "json":
        encode = msgspec.json.encode
        from .errors import ValidationError

        def json_value(value: Any) -> Any:
            if value is None:
                return None
            try:
                text = encode(value).decode()
            except (UnicodeError, ValueError, OverflowError) as exc:
                raise ValidationError(
                    f"cannot write the value as JSON: {exc}", table=table, field=column.field
                ) from None
            problem = json_text_problem(text)
            if problem is not None:
                raise ValidationError(problem, table=table, field=column.field)
            return text

        return json_value
    if column.kind == "enum":
        return lambda value: None if value is None else getattr(value, "value", value)
    return _identity


def _identity(value: Any) -> Any:
    return value


def _each(convert: Converter) -> Converter:
    """A converter of a list of values, one `convert` per item."""

    def convert_all(values: Sequence[Any]) -> list[Any]:
        return [convert(v) for v in values]

    return convert_all


class GroupDecoder:
    """Rows of an aggregate as dicts keyed by result name; enum columns back as their enum."""

    __slots__ = ("_converters", "_names")

    def __init__(self, keys: Sequence[tuple[str, ColumnDef | None]]) -> None:
        self._names = tuple(name for name, _ in keys)
        self._converters = tuple(
            (i, column.python_type)
            for i, (_, column) in enumerate(keys)
            if column is not None and column.kind == "enum" and isinstance(column.python_type, type)
        )

    def one(self, row: Sequence[Any]) -> dict[str, Any]:
        """One result row."""
        out = dict(zip(self._names, row, strict=True))
        for i, convert in self._converters:
            name = self._names[i]
            if out[name] is not None:
                out[name] = convert(out[name])
        return out

    def many(self, rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
        """Every result row."""
        return [self.one(row) for row in rows]


def trusted_key(field: str, direction: Literal["ASC", "DESC"] = "ASC") -> tuple[str, str]:
    """An order key the library adds itself (a page's primary key, a relation's default order):
    a tuple, which no client filter can hold (JSON gives lists and strings), so it is checked
    against no policy and keys the statement cache apart from a client's ``"id"``."""
    return (field, direction)
