"""The filter grammar compiled without a database: SQL text, parameters, caching, bad filters."""

from __future__ import annotations

import time
from types import MappingProxyType
from typing import Any

import pytest
from test_repository_support import Plan, make_models

from nxdata import AsyncRepository, Filter, Lock, Repository, SoftDeletableRepository
from nxdata.compiler import CompiledQuery
from nxdata.errors import FilterError, TransactionError
from nxdata.filters import split_filter, walk

MODELS = make_models("filters_t")


def repo(soft: bool = True, max_limit: int | None = 100) -> Repository[Any]:
    cls = SoftDeletableRepository if soft else Repository
    return cls(None, MODELS.Item, max_limit=max_limit)  # type: ignore[arg-type]  # compile only


def compile_select(flt: Any, **kwargs: Any) -> tuple[str, list[Any]]:
    r = repo(**kwargs)
    statement, values, _ = r._select(flt, None, None, False)
    return statement.sql, statement.params(values)


def where_sql(where: dict[str, Any]) -> tuple[str, list[Any]]:
    sql, params = compile_select({"where": where}, soft=False)
    return sql.split(" WHERE ", 1)[1], params


def test_equality_and_null() -> None:
    assert where_sql({"name": "a"}) == ('"name" = %s::text', ["a"])
    assert where_sql({"code": None}) == ('"code" IS NULL', [])
    assert where_sql({"code": {"neq": None}}) == ('"code" IS NOT NULL', [])
    assert where_sql({"code": {"eq": None}}) == ('"code" IS NULL', [])
    # NULL matches only null tests: neq is SQL <>, so a NULL code never matches it
    assert where_sql({"code": {"neq": "x"}}) == ('"code" <> %s::text', ["x"])


@pytest.mark.parametrize(
    ("op", "sql"),
    [("gt", ">"), ("gte", ">="), ("lt", "<"), ("lte", "<=")],
)
def test_comparisons(op: str, sql: str) -> None:
    assert where_sql({"score": {op: 3}}) == (f'"score" {sql} %s::integer', [3])


def test_between_inq_nin_text_and_regex_operators() -> None:
    assert where_sql({"amount": {"between": [1, 2.5]}}) == (
        '"amount" BETWEEN %s::double precision AND %s::double precision',
        [1.0, 2.5],
    )
    assert where_sql({"name": {"inq": ["a", "b"]}}) == ('"name" = ANY(%s::text[])', [["a", "b"]])
    assert where_sql({"name": {"nin": []}}) == (
        '("name" IS NOT NULL AND "name" <> ALL(%s::text[]))',
        [[]],
    )
    for op, sql in [("like", "LIKE"), ("nlike", "NOT LIKE"), ("ilike", "ILIKE")]:
        assert where_sql({"name": {op: "a%"}}) == (f'"name" {sql} %s::text', ["a%"])
    assert where_sql({"name": {"nilike": "a%"}}) == ('"name" NOT ILIKE %s::text', ["a%"])
    assert where_sql({"name": {"regexp": "^a"}}) == ('"name" ~ %s::text', ["^a"])
    assert where_sql({"name": {"iregexp": "^a"}}) == ('"name" ~* %s::text', ["^a"])


def test_inq_list_length_does_not_change_sql() -> None:
    r = repo()
    one, values_one, _ = r._select({"where": {"name": {"inq": ["a"]}}}, None, None, False)
    many, values_many, _ = r._select(
        {"where": {"name": {"inq": list("abcdefgh")}}}, None, None, False
    )
    assert one is many  # same cached statement object
    assert one.params(values_one) == [["a"]]
    assert many.params(values_many) == [list("abcdefgh")]


def test_logical_nesting() -> None:
    sql, params = where_sql(
        {"status": "a", "or": [{"score": {"gt": 1}}, {"and": [{"name": "x"}, {"code": None}]}]}
    )
    assert sql == (
        '"status" = %s::text AND ("score" > %s::integer OR ("name" = %s::text AND "code" IS NULL))'
    )
    assert params == ["a", 1, "x"]
    for empty in ({"or": []}, {"and": []}, {"or": [{}]}, {"and": [{}]}, {"or": [{}, {"id": 1}]}):
        with pytest.raises(FilterError, match="empty"):
            where_sql(empty)


def test_jsonb_paths_arrays_and_enums() -> None:
    # A path compares as the JSON type of the filter's value; other stored types read as NULL.
    assert where_sql({"metadata.plan.tier": "pro"}) == (
        "(CASE WHEN jsonb_typeof((\"metadata\" #> %s::text[])) = 'string' "
        "THEN (\"metadata\" #> %s::text[]) #>> '{}' END) = %s::text",
        [["plan", "tier"], ["plan", "tier"], "pro"],
    )
    assert where_sql({"metadata.n": {"gt": 2}}) == (
        "(CASE WHEN jsonb_typeof((\"metadata\" #> %s::text[])) = 'number' "
        'THEN (("metadata" #> %s::text[]))::numeric END) > %s::numeric',
        [["n"], ["n"], 2],
    )
    sql, params = where_sql({"metadata.name": {"ilike": "a%"}})
    assert sql.endswith(" ILIKE %s::text") and "'string'" in sql and params[-1] == "a%"
    assert where_sql({"tags": {"contains": ["x"]}}) == ('"tags" @> %s::text[]', [["x"]])
    assert where_sql({"tags": {"overlaps": ["x", "y"]}}) == ('"tags" && %s::text[]', [["x", "y"]])
    assert where_sql({"plan": "pro"}) == ('"plan" = %s::text', ["pro"])
    assert where_sql({"plan": Plan.PRO}) == ('"plan" = %s::text', ["pro"])
    assert where_sql({"metadata": {"contains": {"a": 1}}}) == (
        '"metadata" @> %s::jsonb',
        ['{"a":1}'],
    )


def test_fields_order_limit_offset_and_soft_delete() -> None:
    sql, params = compile_select(
        {
            "where": {"status": "a"},
            "fields": ["id", "name"],
            "order": ["score DESC NULLS LAST", "name"],
            "limit": 20,
            "skip": 40,
        }
    )
    assert sql == (
        'SELECT "id","name" FROM "filters_t"."Item" '
        'WHERE "status" = %s::text AND "deleted_at" IS NULL '
        'ORDER BY "score" DESC NULLS LAST,"name" ASC LIMIT %s OFFSET %s'
    )
    assert params == ["a", 20, 40]


def test_lock_clause_and_lock_needs_transaction() -> None:
    r = repo()
    with pytest.raises(TransactionError, match="needs a transaction"):
        r._select(None, Lock.UPDATE, None, False)
    statement, _, _ = r._select(None, Lock.KEY_SHARE.skip_locked(), object(), False)  # type: ignore[arg-type]
    assert statement.sql.endswith("FOR KEY SHARE SKIP LOCKED")
    assert Lock.NO_KEY_UPDATE.nowait().sql == "FOR NO KEY UPDATE NOWAIT"
    assert Lock.SHARE.sql == "FOR SHARE"


def test_values_never_enter_sql() -> None:
    evil = "x'; DROP TABLE users; --"
    sql, params = compile_select({"where": {"name": evil, "metadata.a'b": evil}, "limit": 1})
    assert evil not in sql and "a'b" not in sql
    assert evil in params


@pytest.mark.parametrize(
    ("flt", "part", "message"),
    [
        ({"where": {"nope": 1}}, "where.nope", "unknown column 'nope'"),
        ({"where": {"status": {"gtx": 1}}}, "where.status.gtx", "unknown operator 'gtx'"),
        ({"where": {"or": [{"score": {"gt": "high"}}]}}, "where.or[0].score.gt", "an integer"),
        ({"where": {"score": {"gt": None}}}, "where.score.gt", "null only works"),
        ({"where": {"amount": {"between": [1]}}}, "where.amount.between", "two values"),
        ({"where": {"name": {"inq": "a"}}}, "where.name.inq", "expects a list"),
        ({"where": {"score": {"like": "a"}}}, "where.score.like", "needs a text column"),
        ({"where": {"or": {"a": 1}}}, "where.or", "list of conditions"),
        ({"where": {"name.x": 1}}, "where.name.x", "not a jsonb column"),
        ({"limit": 101}, "limit", "above the maximum of 100"),
        ({"limit": -1}, "limit", "non-negative"),
        ({"offset": -5}, "offset", "non-negative"),
        ({"order": ["name SIDEWAYS"]}, "order[0]", "cannot read"),
        ({"order": ["ghost"]}, "order[0]", "unknown column"),
        ({"fields": ["id", "ghost"]}, "fields[1]", "unknown column"),
        ({"wher": {}}, "wher", "unknown filter key"),
    ],
)
def test_bad_filters_are_rejected(flt: dict[str, Any], part: str, message: str) -> None:
    with pytest.raises(FilterError, match=message) as info:
        compile_select(flt)
    assert info.value.part == part
    assert part in str(info.value)


def test_filter_decodes_from_json_in_one_call() -> None:
    flt = Filter.from_json(
        b'{"where": {"name": {"inq": ["a"]}}, "order": "name DESC", "limit": 5, "skip": 1}'
    )
    assert split_filter(flt) == ({"name": {"inq": ["a"]}}, None, ("name DESC",), 5, 1, None, None)
    sql, params = compile_select(flt)
    assert params == [["a"], 5, 1]
    assert sql.endswith('ORDER BY "name" DESC LIMIT %s OFFSET %s')
    with pytest.raises(FilterError):
        Filter.from_json(b'{"where": [], "limit": "x"}')
    with pytest.raises(FilterError, match="malformed JSON"):
        Filter.from_json(b"{nope")


def test_shape_key_ignores_values() -> None:
    a: list[Any] = []
    b: list[Any] = []
    assert walk({"x": 1, "y": {"gt": 2}}, a) == walk({"x": 5, "y": {"gt": 9}}, b)
    assert walk({"x": None}, []) != walk({"x": 1}, [])


def test_repeated_shape_compiles_in_microseconds() -> None:
    r = repo()
    flt = {"where": {"status": "active", "score": {"gt": 1}}, "order": ["name"], "limit": 20}
    r._select(flt, None, None, False)  # cold: PyPika, once
    n = 20000
    start = time.perf_counter()
    for _ in range(n):
        statement, values, _ = r._select(flt, None, None, False)
        statement.params(values)
    per_call = (time.perf_counter() - start) / n
    assert per_call < 25e-6, f"{per_call * 1e6:.1f} µs per cache hit"  # target 5 µs; CI slack


def test_any_mapping_is_a_filter() -> None:
    frozen = MappingProxyType({"where": MappingProxyType({"name": "a"}), "limit": 2})
    sql, params = compile_select(frozen)
    assert sql == compile_select({"where": {"name": "a"}, "limit": 2})[0]
    assert params == ["a", 2]


def test_bulk_insert_statements() -> None:
    compiler = repo()._compiler
    flat = ("id", "name", "meta")
    assert compiler.unnest_safe(flat) and not compiler.unnest_safe(("name", "tags"))
    statement = compiler.insert_many(flat)
    assert statement.sql.startswith(
        f'INSERT INTO {MODELS.schema.tables["Item"].sql_name} ("id", "name", "meta") '
        "SELECT c0, c1, c2 FROM unnest(%s::text[], %s::text[], %s::jsonb[]) "
        "WITH ORDINALITY AS _nx(c0, c1, c2, n) ORDER BY n RETURNING "
    )
    columns = [["i1", "i2"], ["a", "b"], [{"tier": "x"}, None]]
    assert statement.params(columns) == [["i1", "i2"], ["a", "b"], ['{"tier":"x"}', None]]


def test_compile_is_what_find_runs() -> None:
    r = repo()
    flt = {"where": {"status": "active", "amount": {"between": [1, 2.5]}}, "limit": 20}
    query = r.compile(flt)
    assert isinstance(query, CompiledQuery)
    assert (query.sql, query.params) == compile_select(flt)
    assert query.params == ["active", 1.0, 2.5, 20]
    assert query.sql.startswith("SELECT ") and " BETWEEN %s::" in query.sql
    assert (
        ' "deleted_at" IS NULL' in query.sql
        and "deleted_at" not in (r.compile(flt, include_deleted=True).sql.split("WHERE")[1])
    )
    assert r.compile().params == [] and r.compile(None) == r.compile({})
    with pytest.raises(FilterError, match="unknown column"):
        r.compile({"where": {"ghost": 1}})


async def test_async_compile_matches_sync() -> None:
    flt = {"where": {"name": {"ilike": "a%"}}, "order": ["name DESC"], "limit": 3, "skip": 4}
    arepo = AsyncRepository(None, MODELS.Item)  # type: ignore[arg-type]  # compile only
    assert arepo.compile(flt) == repo(soft=False).compile(flt)


@pytest.mark.parametrize(
    ("order", "message"),
    [
        (["name", 5], "order must be a list of column names"),
        ([None], "order must be a list of column names"),
        (["name", ["x"]], "malformed filter"),
        (5, "order must be a list of column names"),
    ],
)
def test_order_items_are_checked(order: Any, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        compile_select({"order": order})


def test_values_of_the_column_type_pass_and_nothing_else_is_coerced() -> None:
    # Strict values (the README's filter section): no string, boolean or fraction becomes an
    # integer, no epoch number a timestamp; a JSON integer is a fine float.
    r = repo()
    native = r.compile({"where": {"score": {"gt": 3}, "amount": {"between": [1, 2.0]}}})
    assert native.params == [3, 1.0, 2.0]
    assert [type(p) for p in native.params] == [int, float, float]
    for value in ("3", True, 3.5, 3.0, None):
        with pytest.raises(FilterError):
            r.compile({"where": {"score": {"gt": value}}})
    with pytest.raises(FilterError, match="two values"):
        r.compile({"where": {"amount": {"between": (1, 2, 3)}}})
    with pytest.raises(FilterError, match="non-negative integer"):
        r.compile({"limit": True})  # bool is not int
