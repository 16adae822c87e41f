"""Column options, SQL type markers and the reusable column sets (common, id, timestamps, values).

A column is a field of a table's row Struct. Its SQL type comes from the annotation; extra options
ride along in ``Annotated[..., Column(...)]``::

    from typing import Annotated
    from nxdata import Column, BigInt

    class Event(nx.columns.id_columns("bigint")):
        sequence: BigInt
        code: Annotated[str, Column(unique=True)]

msgspec lets a Struct inherit fields from one base only, so column sets compose by factory:
``compose(id_columns("bigint"), timestamp_columns(soft_delete=False))`` returns one base Struct
with the fields of both, in order.

To a type checker a base made by a call is dynamic (its fields are ``Any``): for typed fields
derive from the classes (`CommonColumns`, `IdColumns`, `IntIdColumns`, `BigIntIdColumns`,
`EventColumns`, `ValueColumns`), or write your own set as a class of the column types::

    class AuditColumns(msgspec.Struct):
        id: nx.Id7
        created_at: nx.CreatedAt
        created_by: str | None = None
"""

from __future__ import annotations

import functools
import os
import time
import typing
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec

__all__ = [
    "BigInt",
    "BigIntIdColumns",
    "BigIntIdentity",
    "Citext",
    "Column",
    "CommonColumns",
    "CreatedAt",
    "DeletedAt",
    "EventColumns",
    "Id",
    "Id7",
    "IdColumns",
    "IntIdColumns",
    "IntIdentity",
    "ModifiedAt",
    "Money",
    "Real",
    "SmallInt",
    "ValueColumns",
    "common_columns",
    "compose",
    "id_columns",
    "new_id",
    "new_uuid7",
    "timestamp_columns",
    "value_columns",
]

IdKind = Literal["uuid", "uuid7", "int", "bigint"]


@dataclass(frozen=True, slots=True)
class Column:
    """Options of one column, given as ``Annotated[type, Column(...)]``.

    - ``name``: the column's SQL name (default: the field name in snake_case).
    - ``sql_type``: override the SQL type derived from the annotation (e.g. ``"numeric(12, 2)"``).
    - ``primary_key``: part of the primary key.
    - ``server_default``: a SQL expression the server fills in when the insert omits the column,
      e.g. ``"now()"``; a plain Python default (``x: int = 0``) becomes a SQL ``DEFAULT`` too.
    - ``identity``: ``"always"`` or ``"by default"`` for ``GENERATED ... AS IDENTITY``.
    - ``default_factory``: called at insert time when the value is missing (e.g. a new UUID).
    - ``unique`` / ``index``: a one-column unique constraint / index with conventional names.
    - ``on_update``: a SQL expression written on every update (``modified_at = now()``).
    - ``immutable``: updates may not change it (``created_at``; primary keys always are).
    - ``soft_delete``: this column marks a row as deleted (``deleted_at``).
    - ``hidden``: never returned unless code names it (``fields``), and unknown to client
      filters and bodies (a password hash, an internal flag).
    - ``read_only``: managed by the server: client bodies cannot set it, trusted code can.
    - ``renamed_from``: the column's previous name: ``nxdata diff`` writes ``RENAME COLUMN``
      (keeping the data) instead of a drop and an add, while the database still has that name.
    - ``comment``: the column's SQL comment.
    """

    name: str | None = None
    sql_type: str | None = None
    primary_key: bool = False
    server_default: str | None = None
    identity: Literal["always", "by default"] | None = None
    default_factory: Any = None
    unique: bool = False
    index: bool = False
    on_update: str | None = None
    immutable: bool = False
    soft_delete: bool = False
    hidden: bool = False
    read_only: bool = False
    renamed_from: str | None = None
    comment: str | None = None
    _set: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    def __post_init__(self) -> None:
        given = frozenset(
            f.name
            for f in self.__dataclass_fields__.values()
            if f.name != "_set" and getattr(self, f.name) != f.default
        )
        object.__setattr__(self, "_set", given)

    def __repr__(self) -> str:
        # Only the options given: what one would write (``Column(index=True)``), not twelve fields.
        given = [f"{n}={getattr(self, n)!r}" for n in self.__dataclass_fields__ if n in self._set]
        return f"Column({', '.join(given)})"

    def merged(self, other: Column) -> Column:
        """Combine two markers; options set explicitly on `other` win."""
        return replace(self, **{name: getattr(other, name) for name in other._set})


BigInt = Annotated[int, Column(sql_type="bigint")]
"""An ``int`` stored as ``bigint``."""
SmallInt = Annotated[int, Column(sql_type="smallint")]
"""An ``int`` stored as ``smallint``."""
Real = Annotated[float, Column(sql_type="real")]
"""A ``float`` stored as 4-byte ``real`` (plain ``float`` is ``double precision``)."""
Money = Annotated[Decimal, Column(sql_type="numeric(19, 4)")]
"""An amount of money: ``numeric(19, 4)``, never a float."""
Citext = Annotated[str, Column(sql_type="citext")]
"""Case-insensitive text. Needs the ``citext`` extension (``Schema(extensions=["citext"])``),
which the embedded server (pgserver) does not ship: there, prefer ``text`` with
``Check("email = lower(email)")`` or an expression index on ``lower(email)``."""


def new_id() -> str:
    """A random UUID (version 4) as text: the default primary key of the common column set."""
    return str(uuid.uuid4())


def new_uuid7() -> str:
    """A time-ordered UUID (version 7, RFC 9562) as text: index-friendly primary keys."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a, 12 bits
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # rand_b, 62 bits
    return str(uuid.UUID(int=value))


Id = Annotated[str, Column(primary_key=True, default_factory=new_id)]
"""A text primary key holding a random UUID made at insert (the common set's ``id``)."""
Id7 = Annotated[str, Column(primary_key=True, default_factory=new_uuid7)]
"""A text primary key holding a time-ordered UUID v7 made at insert."""
IntIdentity = Annotated[int, Column(primary_key=True, identity="always")]
"""An ``integer GENERATED ALWAYS AS IDENTITY`` primary key."""
BigIntIdentity = Annotated[int, Column(sql_type="bigint", primary_key=True, identity="always")]
"""A ``bigint GENERATED ALWAYS AS IDENTITY`` primary key."""
CreatedAt = Annotated[datetime, Column(server_default="now()", immutable=True)]
"""``timestamptz NOT NULL DEFAULT now()``, never changed by an update."""
ModifiedAt = Annotated[datetime, Column(server_default="now()", on_update="now()")]
"""``timestamptz NOT NULL DEFAULT now()``, set to ``now()`` by every update."""
DeletedAt = Annotated[datetime | None, Column(soft_delete=True)]
"""The soft-delete marker: NULL while the row is live."""

_ID_FIELDS: dict[str, tuple[str, Any]] = {
    "uuid": ("id", Id),
    "uuid7": ("id", Id7),
    "int": ("id", IntIdentity),
    "bigint": ("id", BigIntIdentity),
}

_CREATED_AT = ("created_at", CreatedAt)
_MODIFIED_AT = ("modified_at", ModifiedAt)
_DELETED_AT = ("deleted_at", DeletedAt)
_METADATA = ("metadata", dict[str, Any] | None)
_VALUES = [
    ("data_type", str),
    ("n_value", float | None),
    ("t_value", str | None),
    ("bo_value", bool | None),
    ("j_value", Any),
    ("b_value", bytes | None),
]


# The usual sets as real classes, so type checkers see their fields (a class made by a factory
# is a dynamic base to mypy). The factories below hand these out for the same fields.


class CommonColumns(msgspec.Struct):
    """The default column set as a base class: ``class Product(CommonColumns): ...``.

    ``id`` (text, random UUID), ``created_at``, ``modified_at``, ``deleted_at``, ``metadata``.
    """

    id: Id
    created_at: CreatedAt
    modified_at: ModifiedAt
    deleted_at: DeletedAt
    metadata: dict[str, Any] | None


class IdColumns(msgspec.Struct):
    """Only a text ``id`` primary key holding a random UUID: ``id_columns("uuid")``."""

    id: Id


class IntIdColumns(msgspec.Struct):
    """Only an integer identity ``id``: ``id_columns("int")``."""

    id: IntIdentity


class BigIntIdColumns(msgspec.Struct):
    """Only a bigint identity ``id``: ``id_columns("bigint")``."""

    id: BigIntIdentity


class EventColumns(msgspec.Struct):
    """A bigint identity ``id``, ``created_at`` and ``modified_at``, no ``deleted_at``: the set of
    append-only, hard-deleted tables (``compose(id_columns("bigint"),
    timestamp_columns(soft_delete=False))``)."""

    id: BigIntIdentity
    created_at: CreatedAt
    modified_at: ModifiedAt


class ValueColumns(msgspec.Struct):
    """The polymorphic value columns: ``value_columns()``."""

    data_type: str
    n_value: float | None
    t_value: str | None
    bo_value: bool | None
    j_value: Any
    b_value: bytes | None


_STATIC: dict[tuple[tuple[str, Any], ...], Any] = {}


def _register_static(*classes: type[msgspec.Struct]) -> None:
    for cls in classes:
        hints = _hints(cls)
        _STATIC[tuple((f, hints[f]) for f in cls.__struct_fields__)] = cls


@functools.cache
def _struct(name: str, fields: tuple[tuple[str, Any], ...]) -> Any:
    # Cached so the same set asked for twice is the same class (isinstance and identity hold).
    if fields in _STATIC:
        return _STATIC[fields]
    return msgspec.defstruct(name, list(fields), module=__name__)


def id_columns(kind: IdKind = "uuid") -> Any:
    """Only the primary key ``id``.

    ``"uuid"``: text, a random UUID made at insert; ``"uuid7"``: text, a time-ordered UUID;
    ``"int"`` / ``"bigint"``: ``GENERATED ALWAYS AS IDENTITY``.
    """
    if kind not in _ID_FIELDS:
        raise ValueError(f"id kind must be one of {sorted(_ID_FIELDS)}, not {kind!r}")
    return _struct(f"Id_{kind}", (_ID_FIELDS[kind],))


def timestamp_columns(*, soft_delete: bool = True) -> Any:
    """``created_at`` and ``modified_at`` (not null, default now()), plus ``deleted_at`` if soft."""
    fields = (_CREATED_AT, _MODIFIED_AT, *((_DELETED_AT,) if soft_delete else ()))
    return _struct("SoftDeleteTimestamps" if soft_delete else "Timestamps", fields)


def value_columns() -> Any:
    """Polymorphic value columns: ``data_type`` plus ``n_value``, ``t_value``, ``bo_value``,
    ``j_value`` (jsonb) and ``b_value`` (bytea), for rows that hold a value of varying type."""
    return _struct("Values", tuple(_VALUES))


def common_columns(*, id: IdKind = "uuid", soft_delete: bool = True, metadata: bool = True) -> Any:
    """The default set: ``id``, ``created_at``, ``modified_at``, ``deleted_at``, ``metadata``."""
    fields = [_ID_FIELDS[id], _CREATED_AT, _MODIFIED_AT]
    if soft_delete:
        fields.append(_DELETED_AT)
    if metadata:
        fields.append(_METADATA)
    return _struct(f"Common_{id}{'_soft' if soft_delete else ''}", tuple(fields))


def compose(*column_sets: Any, name: str | None = None) -> Any:
    """One base Struct with the fields of every given column set, in order.

    >>> EventBase = compose(id_columns("bigint"), timestamp_columns(soft_delete=False))
    """
    fields: list[tuple[str, Any]] = []
    seen: set[str] = set()
    for column_set in column_sets:
        hints = _hints(column_set)
        for field_name in column_set.__struct_fields__:
            if field_name in seen:
                raise ValueError(f"column {field_name!r} appears in more than one column set")
            seen.add(field_name)
            fields.append((field_name, hints[field_name]))
    label = name or "_".join(c.__name__ for c in column_sets)
    return _struct(label, tuple(fields))


def _hints(struct_type: type) -> dict[str, Any]:
    return typing.get_type_hints(struct_type, include_extras=True)


_register_static(
    CommonColumns, IdColumns, IntIdColumns, BigIntIdColumns, EventColumns, ValueColumns
)
