"""Relations between declared tables, from their foreign keys, for a filter's ``include``.

Every declared foreign key makes two relations:

- **belongs-to**, on the table that holds the key: ``SaleOrder.merchant_id`` → ``merchant``
  (one row or None). Named after the column without ``_id``; when that is a column already,
  after the referenced table (``user``); ``ForeignKey(relation=...)`` names it yourself.
- **has-many**, on the referenced table: ``Merchant`` → ``sale_orders`` (a list). Named after
  the referencing table in snake case, plural; ``..._by_<column>`` when a table references
  the same one twice; ``ForeignKey(inverse=...)`` names it yourself.

A filter includes them by name, each with its own filter (``scope``), nested::

    orders.find({
        "where": {"status": "placed"},
        "include": [
            "merchant",
            {"relation": "sale_order_items",
             "scope": {"where": {"quantity": {"gt": 1}}, "order": ["name"], "limit": 5,
                       "include": ["product"]}},
        ],
    })

Related rows are loaded with one query per relation and level (``WHERE key = ANY(%s)``), never
one per row; a has-many ``limit`` / ``offset`` applies to each parent's rows. Each row comes
back as an instance of a subclass of its type with one field per included relation (see
`row_type` in `Repository.find` to name a class of your own, typed for ``mypy``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import msgspec

from .errors import FilterError
from .values import clip, shown

if TYPE_CHECKING:
    from .policy import FilterPolicy
    from .table import Table

__all__ = ["Include", "Relation", "parse_include", "relations", "rows_as", "with_relations"]

R = TypeVar("R", bound=msgspec.Struct)

MAX_INCLUDE_DEPTH = 4
"""How deep ``include`` may nest (an order's items' product's category...)."""


@dataclass(frozen=True, slots=True, eq=False)
class Relation:
    """A relation of ``source``: its rows whose ``source_columns`` equal ``target_columns`` of
    ``target`` rows. ``many``: has-many (a list per row), else belongs-to (one row or None)."""

    name: str
    source: Table[Any]
    target: Table[Any]
    source_columns: tuple[str, ...]
    target_columns: tuple[str, ...]
    many: bool

    @property
    def kind(self) -> Literal["belongs_to", "has_many"]:
        """``belongs_to`` or ``has_many``."""
        return "has_many" if self.many else "belongs_to"


def relations(table: Table[Any]) -> dict[str, Relation]:
    """The relations of a declared table by name: belongs-to from its own foreign keys,
    has-many from the foreign keys of every declared table that references it."""
    from .table import _SCHEMAS

    out: dict[str, Relation] = {}
    columns = set(table.by_name) | set(table.by_field)
    for fk in table.foreign_keys:
        name = fk.relation or _belongs_to_name(fk.columns, fk.target, columns)
        out[name] = Relation(name, table, fk.target, fk.columns, fk.ref_columns, many=False)
    referencing = [
        (other, fk)
        for schema in list(_SCHEMAS.values())
        for other in schema.tables.values()
        for fk in other.foreign_keys
        if fk.target is table
    ]
    plural: dict[str, int] = {}
    for other, _ in referencing:
        plural[other.qualified_name] = plural.get(other.qualified_name, 0) + 1
    for other, fk in referencing:
        name = fk.inverse or _snake_plural(other.name)
        if plural[other.qualified_name] > 1 and fk.inverse is None:
            name = f"{name}_by_{'_'.join(fk.columns)}"
        if name in out or name in columns:
            name = f"{name}_of_{other.schema.name}"
        out[name] = Relation(name, table, other, fk.ref_columns, fk.columns, many=True)
    return out


def _belongs_to_name(columns: tuple[str, ...], target: Table[Any], taken: set[str]) -> str:
    from .table import snake_case

    if len(columns) == 1 and columns[0].endswith("_id") and columns[0][:-3] not in taken:
        return columns[0][:-3]
    name = snake_case(target.name)
    return name if name not in taken else f"{'_'.join(columns)}_ref"


def _snake_plural(name: str) -> str:
    from .table import snake_case

    word = snake_case(name)
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and len(word) > 1 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


@dataclass(frozen=True, slots=True)
class Include:
    """One relation to load: its `Relation` and the filter of its rows (`scope`)."""

    relation: Relation
    scope: Mapping[str, Any]
    part: str  # where it was in the filter, for errors: "include[1]"


def parse_include(
    value: Any,
    table: Table[Any],
    policy: FilterPolicy,
    *,
    part: str = "include",
    depth: int = 0,
) -> tuple[Include, ...]:
    """The relations an ``include`` names, checked: known relations (under a client policy,
    only those its ``include`` allows — others are answered as unknown), no relation twice,
    scopes that are filters. `FilterError` naming the part otherwise."""
    if value is None:
        return ()
    if depth >= MAX_INCLUDE_DEPTH:
        raise FilterError(
            f"include nests more than {MAX_INCLUDE_DEPTH} levels",
            table=table.qualified_name,
            part=part,
        )
    items = [value] if isinstance(value, str | Mapping) else value
    if not isinstance(items, list | tuple):
        raise FilterError(
            "include is a list of relation names or {relation, scope} objects",
            table=table.qualified_name,
            part=part,
        )
    known = relations(table)
    allowed = policy.included() if policy.client else None
    out: list[Include] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        here = f"{part}[{i}]"
        scope: Any = None
        name: Any
        if isinstance(item, str):
            name = item
        elif isinstance(item, Mapping):
            unknown = set(item) - {"relation", "scope"}
            if unknown:
                raise FilterError(
                    f"unknown include key {shown(sorted(unknown)[0])} (relation, scope)",
                    table=table.qualified_name,
                    part=here,
                )
            name = item.get("relation")
            scope = item.get("scope")
        else:
            raise FilterError(
                "an include item is a relation name or a {relation, scope} object",
                table=table.qualified_name,
                part=here,
            )
        if (
            not isinstance(name, str)
            or name not in known
            or (allowed is not None and name not in allowed)
        ):
            choices = sorted(known if allowed is None else set(known) & set(allowed))
            raise FilterError(
                f"unknown relation {shown(name)}"
                + (f" (one of {', '.join(choices)})" if choices else " (none can be included)"),
                table=table.qualified_name,
                part=here,
            )
        if name in seen:
            raise FilterError(
                f"relation {name} is included twice", table=table.qualified_name, part=here
            )
        seen.add(name)
        if scope is not None and not isinstance(scope, Mapping):
            raise FilterError(
                "a relation's scope is a filter object", table=table.qualified_name, part=here
            )
        relation = known[name]
        if scope and scope.get("include") is not None:
            # The whole tree is checked before anything runs: no query for a filter that fails.
            parse_include(
                scope["include"],
                relation.target,
                policy.related(name),
                part=f"{here}.scope.include",
                depth=depth + 1,
            )
        out.append(Include(relation, dict(scope or {}), here))
    return tuple(out)


@functools.lru_cache(maxsize=512)  # bounded: clients choose which relations to include
def with_relations(row_type: type[Any], names: tuple[str, ...]) -> type[Any]:
    """A subclass of `row_type` with one more field per relation name (None by default), to
    carry included rows. Cached: one class per row type and set of relations."""
    fields = [(name, Any, None) for name in names]
    title = f"{row_type.__name__}_with_{'_'.join(names)}"
    derived: type[Any] = msgspec.defstruct(
        clip(title, 120), fields, bases=(row_type,), kw_only=True, module=row_type.__module__
    )
    return derived


def attach(row: Any, target: type[Any], values: Mapping[str, Any]) -> Any:
    """`row` as a `target` instance (a subclass of its type) with `values` for the relations."""
    data = {name: getattr(row, name) for name in type(row).__struct_fields__}
    data.update(values)
    return target(**data)


def rows_as(row_type: type[R], rows: Iterable[Any]) -> list[R]:
    """Rows (with their included relations) as instances of a Struct class of yours, so that
    ``mypy`` knows the relations' types::

        class OrderView(SaleOrder, kw_only=True):
            merchant: Merchant | None = None
            sale_order_items: list[SaleOrderItem] = []

        views = nx.rows_as(OrderView, orders.find({"include": ["merchant", "sale_order_items"]}))

    Every field of a row must be a field of `row_type` (`ValidationError` naming the first that
    is not); fields of `row_type` the rows lack keep their defaults.
    """
    from .errors import ValidationError

    wanted = set(row_type.__struct_fields__)
    out: list[R] = []
    for row in rows:
        names = type(row).__struct_fields__
        missing = [name for name in names if name not in wanted]
        if missing:
            raise ValidationError(
                f"{row_type.__name__} has no field {missing[0]!r} (the rows carry it: add it)",
                table=row_type.__name__,
                field=missing[0],
            )
        out.append(row_type(**{name: getattr(row, name) for name in names}))
    return out
