"""A filter dict turned into SQL by hand with ``psycopg.sql``: what a raw-driver user writes to
accept the same filters an nxdata repository takes (the raw side of the compile scenarios)."""

from __future__ import annotations

from typing import Any

from psycopg import sql

import nxdata as nx

from ..data import ITEM_COLUMNS, Item

__all__ = ["compose_filter"]

_OPS = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_COLUMNS = frozenset(ITEM_COLUMNS)
_TABLE = nx.table_of(Item)
_SELECT = sql.SQL("SELECT {} FROM {}.{}").format(
    sql.SQL(", ").join(sql.Identifier(c) for c in ITEM_COLUMNS),
    sql.Identifier(_TABLE.schema.name),
    sql.Identifier(_TABLE.name),
)


def _column(name: str) -> sql.Identifier:
    if name not in _COLUMNS:
        raise ValueError(f"unknown column {name!r}")
    return sql.Identifier(name)


def compose_filter(spec: dict[str, Any]) -> tuple[str, list[Any]]:
    """``{"where": {...}, "order": [...], "limit": n}`` → (SQL text, parameters)."""
    parts: list[sql.Composable] = []
    params: list[Any] = []
    for name, cond in spec.get("where", {}).items():
        column = _column(name)
        if not isinstance(cond, dict):
            cond = {"eq": cond}
        for op, value in cond.items():
            if op == "between":
                parts.append(sql.SQL("{} BETWEEN %s AND %s").format(column))
                params.extend(value)
            elif op == "inq":
                parts.append(sql.SQL("{} = ANY(%s)").format(column))
                params.append(list(value))
            elif value is None and op in ("eq", "neq"):
                parts.append(
                    sql.SQL("{} IS {}NULL").format(column, sql.SQL("" if op == "eq" else "NOT "))
                )
            else:
                parts.append(sql.SQL("{} {} %s").format(column, sql.SQL(_OPS[op])))
                params.append(value)
    query: list[sql.Composable] = [_SELECT]
    if parts:
        query += [sql.SQL(" WHERE "), sql.SQL(" AND ").join(parts)]
    order = spec.get("order") or []
    if order:
        keys = []
        for item in order:
            name, _, direction = item.partition(" ")
            direction = direction.strip().upper() or "ASC"
            if direction not in ("ASC", "DESC"):
                raise ValueError(f"bad order {item!r}")
            keys.append(sql.SQL("{} " + direction).format(_column(name)))
        query += [sql.SQL(" ORDER BY "), sql.SQL(", ").join(keys)]
    if "limit" in spec:
        query.append(sql.SQL(" LIMIT %s"))
        params.append(int(spec["limit"]))
    return sql.Composed(query).as_string(), params
