"""Property: rows a random filter returns are exactly the rows the same predicate selects when
evaluated in Python over the table's contents (SQL NULL semantics included)."""

from __future__ import annotations

import re
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_repository_support import create_tables, make_models

from nxdata import Database, SoftDeletableRepository

NAMES = ["alpha", "beta", "Gamma", "delta", "eps", "zeta", "Eta", "theta"]
STATUSES = ["active", "paused", "closed"]


@pytest.fixture(scope="module")
def table(test_database_url: str) -> Any:
    schema = "prop_filters"
    with psycopg.connect(test_database_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        models = make_models(schema)
        create_tables(conn, models)
    db = Database(test_database_url, max_size=2).open()
    repo = SoftDeletableRepository(db, models.Item)
    rows = []
    for i, name in enumerate(NAMES):
        rows.append(
            repo.create(
                {
                    "name": name,
                    "status": STATUSES[i % 3],
                    "score": None if i % 4 == 3 else i,
                    "amount": None if i % 3 == 1 else i * 1.5,
                    "code": None if i % 2 else f"C{i}",
                }
            )
        )
    yield repo, rows
    db.close()
    with psycopg.connect(test_database_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def _like(pattern: str, value: str, insensitive: bool) -> bool:
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.S | (re.I if insensitive else 0)) is not None


def holds(row: Any, col: str, op: str, value: Any) -> bool:
    """One condition with the README's semantics: NULL matches only null tests (eq / neq
    null); every other operator, neq and nin included, is false for NULL."""
    v = getattr(row, col)
    if op == "eq":
        return v is None if value is None else (v is not None and v == value)
    if op == "neq":  # SQL <>: a NULL column matches neither {"neq": x} nor {"eq": x}
        return v is not None if value is None else (v is not None and v != value)
    if v is None:
        return False
    if op == "gt":
        return bool(v > value)
    if op == "gte":
        return bool(v >= value)
    if op == "lt":
        return bool(v < value)
    if op == "lte":
        return bool(v <= value)
    if op == "between":
        return bool(value[0] <= v <= value[1])
    if op == "inq":
        return v in value
    if op == "nin":
        return v not in value
    if op in ("like", "ilike"):
        return _like(value, v, op == "ilike")
    if op in ("nlike", "nilike"):
        return not _like(value, v, op == "nilike")
    raise AssertionError(op)


def evaluate(row: Any, where: dict[str, Any]) -> bool:
    for key, cond in where.items():
        if key == "and":
            if not all(evaluate(row, c) for c in cond):
                return False
        elif key == "or":
            if not any(evaluate(row, c) for c in cond):
                return False
        elif isinstance(cond, dict):
            if not all(holds(row, key, op, v) for op, v in cond.items()):
                return False
        elif not holds(row, key, "eq", cond):
            return False
    return True


scores = st.integers(-1, 9)
amounts = st.sampled_from([0.0, 1.5, 3.0, 4.5, 7.5, 100.0])
texts = st.sampled_from([*NAMES, "nobody"])
patterns = st.sampled_from(["%a", "a%", "%ET%", "_eta", "%", "z%", "G%"])


def _condition(column: str, values: st.SearchStrategy[Any], nullable: bool) -> Any:
    ops = st.sampled_from(["eq", "neq", "gt", "gte", "lt", "lte"])
    maybe_null = st.one_of(st.none(), values) if nullable else values
    return st.one_of(
        maybe_null.map(lambda v: {column: v}),
        st.tuples(st.sampled_from(["eq", "neq"]), maybe_null).map(lambda t: {column: {t[0]: t[1]}}),
        st.tuples(ops, values).map(lambda t: {column: {t[0]: t[1]}}),
        st.tuples(values, values).map(lambda t: {column: {"between": sorted(t)}}),
        st.tuples(st.sampled_from(["inq", "nin"]), st.lists(values, max_size=3)).map(
            lambda t: {column: {t[0]: t[1]}}
        ),
    )


leaf = st.one_of(
    _condition("score", scores, True),
    _condition("amount", amounts, True),
    _condition("name", texts, False),
    _condition("code", st.sampled_from(["C0", "C2", "C4", "C9"]), True),
    _condition("status", st.sampled_from(STATUSES), False),
    st.tuples(st.sampled_from(["like", "nlike", "ilike", "nilike"]), patterns).map(
        lambda t: {"name": {t[0]: t[1]}}
    ),
)

wheres = st.recursive(
    leaf,
    lambda children: st.one_of(
        st.tuples(st.sampled_from(["and", "or"]), st.lists(children, min_size=1, max_size=3)).map(
            lambda t: {t[0]: t[1]}
        ),
        st.tuples(children, children).map(
            lambda t: {**t[0], **{k: v for k, v in t[1].items() if k not in t[0]}}
        ),
    ),
    max_leaves=6,
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(where=wheres)
def test_random_filters_match_python(table: Any, where: dict[str, Any]) -> None:
    repo, rows = table
    expected = sorted(r.name for r in rows if evaluate(r, where))
    got = sorted(r.name for r in repo.find({"where": where}))
    assert got == expected, where
    assert repo.count(where) == len(expected)
