"""Random and hostile filters and bodies against a real PostgreSQL: only `NxdataError`s escape,
reads send nothing but SELECT (they run as a role whose transactions are read-only, so anything
else would fail with SQLSTATE 25006), client bodies never leave their tenant, and a canary table
is untouched at the end.

Set ``NXDATA_FUZZ_STATS=1`` to print how many inputs were tried and the errors by class.
"""

from __future__ import annotations

import collections
import json
import os
import secrets
from collections.abc import Iterator
from decimal import Decimal
from typing import Annotated, Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql
from psycopg.conninfo import make_conninfo

import nxdata as nx
from nxdata import Database, FilterPolicy, Repository
from nxdata.ddl import create_statements
from nxdata.errors import DatabaseError, NxdataError

# A falsifying example holding _LONG prints as a long repr: a warning, not the failure.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")

SCHEMA = "hostile"
hostile = nx.Schema(SCHEMA)


@hostile.table("Item")
class Item(nx.CommonColumns):
    tenant: str
    name: str
    secret: Annotated[str, nx.Column(hidden=True)] = "s"
    qty: int | None = None
    price: nx.Money | None = None
    flag: bool = False
    tags: list[str] | None = None
    seen_at: Any = None  # jsonb


@hostile.table("Canary")
class Canary(nx.IdColumns):
    word: str


STATS: collections.Counter[str] = collections.Counter()
_HUGE = 10**5000  # more digits than Python will print (repr raises ValueError)
_LONG = "a" * 20_000  # longer than a client policy's max_string


def _to_json(value: Any) -> bytes:
    try:
        return json.dumps(value, default=str).encode("utf-8", "surrogatepass")
    except (ValueError, TypeError, RecursionError):
        return b"null"


INJECTIONS = [
    '\'; DROP TABLE hostile."Canary"; --',
    '"; DELETE FROM hostile."Canary"; --',
    "' OR '1'='1",
    "$$; DROP TABLE x; $$",
    "%s",
    "%(x)s",
    "\\",
    "\\\\'",
    "*/ DROP TABLE x /*",
    "x\x00y",
    "\ud800",
    "\udfff\ud800",
    "é" * 3,
    "name DESC; DROP TABLE x",
    "deleted_at",
    "secret",
    "password_hash",
]
NAMES = [
    "id",
    "tenant",
    "name",
    "secret",
    "qty",
    "price",
    "flag",
    "tags",
    "seen_at",
    "metadata",
    "deleted_at",
    "metadata.a",
    "metadata.a.b",
    "seen_at.x",
    "name.x",
    "metadata.",
    ".x",
    "and",
    "or",
    "where",
]
OPERATORS = [*sorted(nx.OPERATORS), "gtx", "", "IS NULL; --", "and", "or"]

atoms = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.builds(lambda: _HUGE),
    st.builds(lambda: _LONG),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(INJECTIONS),
    st.binary(max_size=10),
    st.just(Decimal("sNaN")),
)
values = st.recursive(
    atoms,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from([*NAMES, *OPERATORS, *INJECTIONS]), inner, max_size=3),
    ),
    max_leaves=8,
)
keys = st.one_of(st.sampled_from(NAMES), st.sampled_from(INJECTIONS), st.text(max_size=12))


def conditions(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        values,
        st.dictionaries(st.sampled_from(OPERATORS), values, max_size=3),
        st.lists(children, max_size=4),
    )


wheres = st.recursive(
    st.dictionaries(keys, values, max_size=3),
    lambda children: st.dictionaries(keys, conditions(children), max_size=4),
    max_leaves=12,
)
filters = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "where": st.one_of(wheres, values),
            "fields": st.one_of(st.lists(keys, max_size=4), values),
            "order": st.one_of(
                st.lists(st.one_of(keys, st.sampled_from(["name DESC", "qty ASC NULLS LAST"]))),
                values,
            ),
            "limit": st.one_of(st.integers(), values),
            "offset": st.one_of(st.integers(), values),
            "skip": values,
        },
    ),
    st.dictionaries(keys, values, max_size=3),
    values,
)
json_bodies = st.one_of(
    st.binary(max_size=200),
    filters.map(_to_json),
    st.just(b'{"where": ' * 600 + b"1" + b"}" * 600),
    st.just(b'{"where": {"or": [' + b",".join([b'{"qty": 1}'] * 1200) + b"]}}"),
)


@pytest.fixture(scope="module")
def setup(test_database_url: str) -> Iterator[tuple[Database, Database, str]]:
    role = f"nx_reader_{secrets.token_hex(3)}"
    with psycopg.connect(test_database_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        for statement in create_statements([hostile]):
            conn.execute(statement)  # type: ignore[arg-type]
        conn.execute(f"INSERT INTO {SCHEMA}.\"Canary\" (id, word) VALUES ('c1', 'tweet')")
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"ALTER ROLE {role} SET default_transaction_read_only = on")
        conn.execute(f"GRANT USAGE ON SCHEMA {SCHEMA} TO {role}")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {SCHEMA} TO {role}")
    writer = Database(test_database_url, max_size=2).open()
    Repository(writer, Item).create_all(
        [
            {"tenant": "t1", "name": f"n{i}", "qty": i, "price": f"{i}.5", "tags": ["a"]}
            for i in range(20)
        ]
    )
    reader = Database(make_conninfo(test_database_url, user=role), max_size=2).open()
    yield reader, writer, role
    reader.close()
    writer.close()
    if os.environ.get("NXDATA_FUZZ_STATS"):
        print("\nfuzz:", dict(STATS))
    with psycopg.connect(test_database_url, autocommit=True) as conn:
        canary = conn.execute(f'SELECT id, word FROM {SCHEMA}."Canary"').fetchall()
        conn.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    assert canary == [("c1", "tweet")], canary


def _tried(call: Any) -> None:
    """Run one hostile call: it may succeed or raise an NxdataError, nothing else; a read may
    never be refused for writing (25006) or for a privilege a SELECT does not need (42501)."""
    STATS["inputs"] += 1
    try:
        call()
    except NxdataError as exc:
        STATS[type(exc).__name__] += 1
        if isinstance(exc, DatabaseError):
            assert exc.sqlstate not in ("25006", "42501"), exc
    else:
        STATS["accepted"] += 1


FUZZ = settings(
    max_examples=int(os.environ.get("NXDATA_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(flt=filters, client=st.booleans())
def test_hostile_filters(setup: tuple[Database, Database, str], flt: Any, client: bool) -> None:
    reader, _, _ = setup
    repo = Repository(reader, Item)
    if client:
        repo = repo.with_policy(FilterPolicy(operators=nx.OPERATORS, statement_timeout=2))
    _tried(lambda: repo.find(flt))
    _tried(lambda: repo.find_one(flt))
    _tried(lambda: repo.find_by_id("x", flt))
    _tried(lambda: repo.count(flt))
    _tried(lambda: repo.exists(flt))
    _tried(lambda: list(repo.iterate(flt, batch_size=5)))
    _tried(lambda: repo.scoped(tenant="t1").find(flt))
    try:
        compiled = repo.compile(flt)
    except NxdataError:
        pass
    else:
        assert compiled.sql.startswith("SELECT "), compiled.sql


@FUZZ
@given(body=json_bodies)
def test_hostile_json_filters(setup: tuple[Database, Database, str], body: bytes) -> None:
    reader, _, _ = setup
    repo = Repository(reader, Item).with_policy(FilterPolicy())
    _tried(lambda: repo.find(nx.Filter.from_json(body)))


bodies = st.one_of(
    st.dictionaries(keys, values, max_size=6),
    st.fixed_dictionaries(
        {"name": st.one_of(st.text(max_size=20), values)},
        optional={
            "tenant": st.one_of(st.just("t2"), values),
            "qty": values,
            "price": values,
            "flag": values,
            "tags": values,
            "seen_at": values,
            "secret": values,
            "id": values,
            "deleted_at": values,
            "metadata": values,
        },
    ),
    st.binary(max_size=100),
    values,
)


@FUZZ
@given(body=bodies, batch=st.lists(bodies, max_size=3))
def test_hostile_bodies_stay_in_their_tenant(
    setup: tuple[Database, Database, str], body: Any, batch: list[Any]
) -> None:
    _, writer, _ = setup
    repo = Repository(writer, Item).with_policy(FilterPolicy()).scoped(tenant="fuzz")
    _tried(lambda: repo.create(body))
    _tried(lambda: repo.create_all(batch))
    _tried(lambda: repo.create_all(batch, returning=True))
    _tried(lambda: repo.update_by_id("x", body))
    _tried(lambda: repo.update_all(body, {"name": "n1"}))
    _tried(lambda: repo.upsert(body, conflict=["id"]))
    trusted = Repository(writer, Item)
    assert trusted.count({"tenant": {"nin": ["t1", "fuzz"]}}) == 0
    assert trusted.count({"tenant": "t1", "name": {"nin": [f"n{i}" for i in range(20)]}}) == 0
