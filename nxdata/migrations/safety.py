"""Which generated statements lose data: classified with PostgreSQL's own parser (pglast).

Destructive: ``DROP`` of a table, schema, sequence, type, view, materialized view, function or
extension; ``ALTER TABLE ... DROP COLUMN``; ``ALTER COLUMN ... TYPE`` unless the new type is a
known widening of the old one (``integer`` → ``bigint``, ``varchar(10)`` → ``varchar(20)`` or
``text``, ``numeric(10,2)`` → ``numeric(12,2)``, ``real`` → ``double precision``...);
``TRUNCATE`` and ``DELETE``. Dropping an index or a constraint loses no data (migra drops and
recreates them when they change), so those pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import MigrationError
from ._extras import missing_extras

try:  # the optional diff tools: a clear message, not a ModuleNotFoundError
    from pglast import parse_sql
    from pglast.enums.parsenodes import AlterTableType, ObjectType
    from pglast.parser import ParseError
except ImportError as exc:
    raise missing_extras(exc) from None

__all__ = ["ColumnKey", "UnsafeStatement", "is_widening", "normalize_type", "unsafe_statements"]

ColumnKey = tuple[str, str, str]
"""(schema, table, column)."""

_DATA_OBJECTS = {
    ObjectType.OBJECT_TABLE: "drops table",
    ObjectType.OBJECT_SCHEMA: "drops schema",
    ObjectType.OBJECT_SEQUENCE: "drops sequence",
    ObjectType.OBJECT_TYPE: "drops type",
    ObjectType.OBJECT_DOMAIN: "drops domain",
    ObjectType.OBJECT_VIEW: "drops view",
    ObjectType.OBJECT_MATVIEW: "drops materialized view",
    ObjectType.OBJECT_FUNCTION: "drops function",
    ObjectType.OBJECT_PROCEDURE: "drops procedure",
    ObjectType.OBJECT_EXTENSION: "drops extension",
}

_ALIASES = {
    "int4": "integer",
    "int": "integer",
    "int8": "bigint",
    "int2": "smallint",
    "float8": "double precision",
    "float4": "real",
    "bool": "boolean",
    "character varying": "varchar",
    "bpchar": "char",
    "character": "char",
    "decimal": "numeric",
    "timestamptz": "timestamp with time zone",
    "timestamp": "timestamp without time zone",
}

# old type → types that hold every value of it (typmods checked separately).
_WIDER: dict[str, set[str]] = {
    "smallint": {"integer", "bigint", "numeric"},
    "integer": {"bigint", "numeric"},
    "bigint": {"numeric"},
    "real": {"double precision"},
    "varchar": {"text"},
    "char": {"text", "varchar"},
    "citext": {"text"},
    "text": {"citext"},
}


@dataclass(frozen=True, slots=True)
class UnsafeStatement:
    """A generated statement that loses data, and why (``drops column``, ``narrows type``...)."""

    statement: str
    reason: str

    def __str__(self) -> str:
        return f"{self.reason}: {' '.join(self.statement.split())}"


@dataclass(frozen=True, slots=True)
class _Type:
    name: str
    mods: tuple[int, ...]
    array: bool


def _type_of(type_name: Any) -> _Type:
    names = [n.sval for n in type_name.names]
    if len(names) > 1 and names[0] == "pg_catalog":
        names = names[1:]
    name = ".".join(names)
    name = _ALIASES.get(name, name)
    mods: list[int] = []
    for mod in type_name.typmods or ():
        value = getattr(getattr(mod, "val", None), "ival", None)
        mods.append(int(value) if value is not None else -1)
    return _Type(name, tuple(mods), bool(type_name.arrayBounds))


def normalize_type(sql_type: str) -> _Type:
    """Parse a type as PostgreSQL writes it (``character varying(20)``, ``numeric(19,4)``)."""
    try:
        stmt: Any = parse_sql(f"SELECT NULL::{sql_type}")[0].stmt
        return _type_of(stmt.targetList[0].val.typeName)
    except (ParseError, AttributeError, IndexError) as exc:
        raise MigrationError(f"cannot parse the type {sql_type!r}") from exc


def is_widening(old: _Type, new: _Type) -> bool:
    """True when every value of `old` fits `new` unchanged."""
    if old.array != new.array:
        return False
    if old.name == new.name:
        if old.mods == new.mods or not new.mods:
            return True  # same type, or the new one drops the limit (varchar(10) → varchar)
        if not old.mods:
            return False  # unbounded → bounded
        if old.name in ("varchar", "char", "bit varying"):
            return new.mods[0] >= old.mods[0]
        if old.name == "numeric":
            old_p, old_s = old.mods[0], old.mods[1] if len(old.mods) > 1 else 0
            new_p, new_s = new.mods[0], new.mods[1] if len(new.mods) > 1 else 0
            return new_s >= old_s and new_p - new_s >= old_p - old_s
        return False
    if new.name not in _WIDER.get(old.name, set()):
        return False
    if new.name == "numeric" and new.mods:
        digits = {"smallint": 5, "integer": 10, "bigint": 19}.get(old.name, 1000)
        scale = new.mods[1] if len(new.mods) > 1 else 0
        return new.mods[0] - scale >= digits
    return not (new.name == "varchar" and new.mods)


def unsafe_statements(
    statements: Sequence[str], column_types: Mapping[ColumnKey, str] | None = None
) -> list[UnsafeStatement]:
    """The statements among `statements` that lose data.

    `column_types` gives the current type of each column (``format_type`` text) so that a type
    change can be told apart from a widening; a type change of an unknown column is unsafe.
    """
    column_types = column_types or {}
    out: list[UnsafeStatement] = []
    for statement in statements:
        try:
            parsed = parse_sql(statement)
        except ParseError as exc:
            raise MigrationError(f"cannot parse generated SQL ({exc}): {statement}") from exc
        for raw in parsed:
            reason = _reason(raw.stmt, column_types)
            if reason:
                out.append(UnsafeStatement(statement, reason))
                break
    return out


def _reason(stmt: Any, column_types: Mapping[ColumnKey, str]) -> str | None:
    kind = type(stmt).__name__
    if kind == "DropStmt":
        return _DATA_OBJECTS.get(stmt.removeType)
    if kind == "TruncateStmt":
        return "truncates table"
    if kind == "DeleteStmt":
        return "deletes rows"
    if kind != "AlterTableStmt":
        return None
    relation = stmt.relation
    schema = relation.schemaname or "public"
    for cmd in stmt.cmds or ():
        if cmd.subtype == AlterTableType.AT_DropColumn:
            return f"drops column {relation.relname}.{cmd.name}"
        if cmd.subtype == AlterTableType.AT_AlterColumnType:
            old_text = column_types.get((schema, relation.relname, cmd.name))
            new = _type_of(cmd.def_.typeName)
            if old_text is None or not is_widening(normalize_type(old_text), new):
                new_text = new.name + (f"({','.join(map(str, new.mods))})" if new.mods else "")
                new_text += "[]" if new.array else ""
                what = f"{old_text} to {new_text}" if old_text else f"to {new_text}"
                return f"changes the type of {relation.relname}.{cmd.name} ({what})"
    return None
