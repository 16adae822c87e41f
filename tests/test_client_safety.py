"""Taking input from clients, against a real PostgreSQL: the README's filter semantics (NULL,
strict values, jsonb paths by type, LIKE escapes, empty logic), the structural limits, hidden and
server-managed columns, filter policies, tenant scopes, row-level security through transaction-
local settings, and connections that never carry one borrower's session state to the next."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

import msgspec
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

import nxdata as nx
from nxdata import Database, FilterPolicy, Repository, SoftDeletableRepository
from nxdata.ddl import create_statements
from nxdata.errors import FilterError, NxdataError, QueryCanceled, ValidationError

SCHEMA = "client_safety"
shop = nx.Schema(SCHEMA)


@shop.table("Account", uniques=[nx.Unique("merchant_id", "email")])
class Account(nx.CommonColumns):
    merchant_id: str
    email: str
    name: str
    password_hash: Annotated[str, nx.Column(hidden=True)] = "x"
    balance: nx.Money = Decimal(0)
    qty: int | None = None
    small: nx.SmallInt | None = None
    active: bool = True
    seen_at: datetime | None = None
    doc: dict[str, Any] | None = None
    note: str | None = None
    tier: Annotated[str, nx.Column(read_only=True)] = "free"


# Stored jsonb values of every type under doc.v (and one row without the key at all).
DOC_VALUES: dict[str, Any] = {
    "int5": 5,
    "float5": 5.0,
    "int7": 7,
    "neg": -3,
    "str5": "5",
    "strfive": "five",
    "true": True,
    "false": False,
    "object": {"max": 9},
    "array": [5],
    "null": None,
}


@pytest.fixture(scope="module")
def db(test_database_url: str) -> Iterator[Database]:
    with psycopg.connect(test_database_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        for statement in create_statements([shop]):
            conn.execute(statement)  # type: ignore[arg-type]
    database = Database(test_database_url, max_size=4).open()
    accounts = Repository(database, Account)
    rows = [
        {"merchant_id": "m1", "email": f"{k}@x", "name": k, "doc": {"v": v}}
        for k, v in DOC_VALUES.items()
    ]
    rows.append({"merchant_id": "m1", "email": "missing@x", "name": "missing", "doc": {"w": 1}})
    rows.append({"merchant_id": "m2", "email": "sqlnull@x", "name": "sqlnull", "doc": None})
    accounts.create_all(rows)
    yield database
    database.close()
    with psycopg.connect(test_database_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


@pytest.fixture
def accounts(db: Database) -> Repository[Account]:
    return Repository(db, Account)


@pytest.fixture
def fresh(db: Database) -> Iterator[tuple[Repository[Account], str]]:
    """A repository and a merchant id of this test's own (its rows are deleted afterwards)."""
    merchant = f"t-{secrets.token_hex(4)}"
    repo = Repository(db, Account)
    yield repo, merchant
    repo.delete_all({"merchant_id": merchant})


def names(rows: list[Account]) -> list[str]:
    return sorted(r.name for r in rows)


def doc(accounts: Repository[Account], where: dict[str, Any]) -> list[str]:
    return names(accounts.find({"where": {"merchant_id": "m1", **where}}))


# -- NULL matches only null tests --------------------------------------------------------------


def test_null_matches_only_null_tests(fresh: tuple[Repository[Account], str]) -> None:
    repo, m = fresh
    repo.create_all(
        [
            {"merchant_id": m, "email": "a", "name": "a", "note": "x"},
            {"merchant_id": m, "email": "b", "name": "b", "note": "y"},
            {"merchant_id": m, "email": "c", "name": "c", "note": None},
        ]
    )

    def find(cond: Any) -> list[str]:
        return names(repo.find({"where": {"merchant_id": m, "note": cond}}))

    assert find({"neq": "x"}) == ["b"]  # SQL <>: the NULL note is not "not x"
    assert find({"nin": ["x"]}) == ["b"]
    assert find({"nin": []}) == ["a", "b"]  # every non-NULL row
    assert find({"inq": []}) == []
    assert find(None) == ["c"]
    assert find({"eq": None}) == ["c"]
    assert find({"neq": None}) == ["a", "b"]
    assert find({"gt": "a"}) == ["a", "b"]
    with pytest.raises(FilterError, match="null in a list never matches") as info:
        find({"inq": ["x", None]})
    assert info.value.part == "where.note.inq"
    with pytest.raises(FilterError, match="not null"):
        find({"between": ["a", None]})


# -- strict values -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "part"),
    [
        ({"active": 1}, "where.active"),
        ({"active": "true"}, "where.active"),
        ({"qty": "10"}, "where.qty"),
        ({"qty": True}, "where.qty"),
        ({"qty": {"gt": 1.5}}, "where.qty.gt"),
        ({"qty": {"inq": [1, "2"]}}, "where.qty.inq"),
        ({"qty": 2**31}, "where.qty"),
        ({"small": {"lt": 40000}}, "where.small.lt"),
        ({"qty": 10**5000}, "where.qty"),
        ({"seen_at": {"gt": 0}}, "where.seen_at.gt"),
        ({"seen_at": {"gt": "2024-05-01T12:00:00"}}, "where.seen_at.gt"),
        ({"seen_at": {"gt": datetime(2024, 5, 1)}}, "where.seen_at.gt"),
        ({"name": "a\x00b"}, "where.name"),
        ({"name": "\ud800"}, "where.name"),
        ({"name": 5}, "where.name"),
        ({"balance": "NaN"}, "where.balance"),
        ({"balance": float("inf")}, "where.balance"),
        ({"balance": Decimal("sNaN")}, "where.balance"),
        ({"balance": "1,5"}, "where.balance"),
        ({"balance": True}, "where.balance"),
    ],
)
def test_values_are_strict(accounts: Repository[Account], where: Any, part: str) -> None:
    with pytest.raises(FilterError) as info:
        accounts.find({"where": where})
    assert info.value.part.startswith(part), info.value
    assert len(str(info.value)) < 500


def test_values_of_the_right_type_pass(fresh: tuple[Repository[Account], str]) -> None:
    repo, m = fresh
    seen = datetime(2024, 5, 1, 12, tzinfo=UTC)
    repo.create({"merchant_id": m, "email": "a", "name": "a", "qty": 3, "seen_at": seen})
    repo.update_all({"balance": "12.5"}, {"merchant_id": m})
    for where in (
        {"qty": 3},
        {"qty": {"between": [2, 4]}},
        {"active": True},
        {"seen_at": "2024-05-01T12:00:00Z"},
        {"seen_at": {"gte": "2024-05-01T14:00:00+02:00"}},
        {"seen_at": seen},
        {"balance": "12.50"},
        {"balance": 12.5},
        {"balance": {"gt": 12}},
        {"balance": Decimal("12.5")},
    ):
        assert names(repo.find({"where": {"merchant_id": m, **where}})) == ["a"], where


# -- jsonb paths by type -------------------------------------------------------------------------


def test_jsonb_numbers_compare_as_numbers_and_nothing_else(accounts: Repository[Account]) -> None:
    assert doc(accounts, {"doc.v": {"gt": 3}}) == ["float5", "int5", "int7"]
    assert doc(accounts, {"doc.v": {"lte": -1}}) == ["neg"]
    assert doc(accounts, {"doc.v": 5}) == ["float5", "int5"]  # 5 = 5.0
    assert doc(accounts, {"doc.v": {"neq": 5}}) == ["int7", "neg"]  # other types read as NULL
    assert doc(accounts, {"doc.v": {"nin": [5, 7]}}) == ["neg"]
    assert doc(accounts, {"doc.v": {"inq": [7, -3]}}) == ["int7", "neg"]
    assert doc(accounts, {"doc.v": {"between": [0, 6]}}) == ["float5", "int5"]


def test_jsonb_strings_booleans_objects_arrays(accounts: Repository[Account]) -> None:
    assert doc(accounts, {"doc.v": "5"}) == ["str5"]
    assert doc(accounts, {"doc.v": {"neq": "5"}}) == ["strfive"]
    assert doc(accounts, {"doc.v": {"gt": "4"}}) == ["str5", "strfive"]
    assert doc(accounts, {"doc.v": {"like": "f%"}}) == ["strfive"]
    assert doc(accounts, {"doc.v": {"nlike": "f%"}}) == ["str5"]  # strings only
    assert doc(accounts, {"doc.v": {"between": ["a", "g"]}}) == ["strfive"]
    assert doc(accounts, {"doc.v": True}) == ["true"]
    assert doc(accounts, {"doc.v": {"neq": True}}) == ["false"]
    assert doc(accounts, {"doc.v": {"eq": {"max": 9}}}) == ["object"]  # an object is an operator's
    assert doc(accounts, {"doc.v": {"contains": {"max": 9}}}) == ["object"]
    assert doc(accounts, {"doc.v": [5]}) == ["array"]
    assert doc(accounts, {"doc.v": {"contains": [5]}}) == ["array"]
    assert doc(accounts, {"doc.v": {"neq": [5]}}) == []


def test_jsonb_null_and_missing(accounts: Repository[Account]) -> None:
    # null: a JSON null, no such key, or no document at all
    assert doc(accounts, {"doc.v": None}) == ["missing", "null"]
    everything = [*DOC_VALUES, "missing"]
    present = sorted(set(everything) - {"missing", "null"})
    assert doc(accounts, {"doc.v": {"neq": None}}) == present
    assert names(accounts.find({"where": {"doc.v": None, "merchant_id": "m2"}})) == ["sqlnull"]


@pytest.mark.parametrize(
    ("cond", "message"),
    [
        ({"inq": [5, "5"]}, "mixed JSON types"),
        ({"between": [1, "z"]}, "mixed JSON types"),
        ({"gt": True}, "does not apply to a JSON boolean"),
        ({"gt": {"a": 1}}, "does not apply to a JSON object"),
        ({"like": 5}, "does not apply to a JSON number"),
        ({"contains": 5}, "does not apply to a JSON number"),
        ({"gt": float("nan")}, "finite number"),
    ],
)
def test_jsonb_path_refusals(accounts: Repository[Account], cond: Any, message: str) -> None:
    with pytest.raises(FilterError, match=message) as info:
        accounts.find({"where": {"doc.v": cond}})
    assert info.value.part.startswith("where.doc.v.")


# -- LIKE escapes --------------------------------------------------------------------------------


def test_like_escapes_and_a_trailing_backslash(fresh: tuple[Repository[Account], str]) -> None:
    repo, m = fresh
    for name in ("50%", "5000", "a_b", "axb", "back\\slash"):
        repo.create({"merchant_id": m, "email": name, "name": name})

    def like(pattern: str) -> list[str]:
        return names(repo.find({"where": {"merchant_id": m, "name": {"like": pattern}}}))

    assert like("50\\%") == ["50%"]
    assert like("50%") == ["50%", "5000"]
    assert like("a\\_b") == ["a_b"]
    assert like("a_b") == ["a_b", "axb"]
    assert like("back\\\\slash") == ["back\\slash"]
    for pattern in ("x\\", "50\\\\\\"):  # refused whatever the data: no row is ever looked at
        with pytest.raises(FilterError, match="lone backslash") as info:
            repo.find({"where": {"merchant_id": "nobody", "name": {"like": pattern}}})
        assert info.value.part == "where.name.like"


# -- empty logic ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "part"),
    [
        ({"and": []}, "where.and"),
        ({"or": []}, "where.or"),
        ({"and": [{}]}, "where.and[0]"),
        ({"or": [{}]}, "where.or[0]"),
        ({"or": [{}, {"qty": -1}]}, "where.or[0]"),
        ({"or": [{"and": []}]}, "where.or[0].and"),
    ],
)
def test_empty_logic_is_refused(accounts: Repository[Account], where: Any, part: str) -> None:
    for call in (
        lambda: accounts.find({"where": where}),
        lambda: accounts.count(where),
        lambda: accounts.update_all({"note": "all"}, where),
        lambda: accounts.delete_all(where),
    ):
        with pytest.raises(FilterError, match="empty") as info:
            call()
        assert info.value.part == part
    assert accounts.count({"note": "all"}) == 0


def test_writes_to_every_row_need_all_true(fresh: tuple[Repository[Account], str]) -> None:
    repo, m = fresh
    repo.create({"merchant_id": m, "email": "a", "name": "a"})
    scoped = repo.scoped(merchant_id=m)
    for where in (None, {}):
        with pytest.raises(FilterError, match="pass all=True"):
            scoped.update_all({"note": "n"}, where)
        with pytest.raises(FilterError, match="pass all=True"):
            scoped.delete_all(where)
    with pytest.raises(FilterError, match="all=True takes no where"):
        scoped.delete_all({"name": "a"}, all=True)
    assert scoped.update_all({"note": "n"}, all=True) == 1
    assert scoped.delete_all(all=True) == 1


# -- limits --------------------------------------------------------------------------------------


def nested(depth: int) -> dict[str, Any]:
    where: dict[str, Any] = {"qty": 1}
    for _ in range(depth):
        where = {"or": [where]}
    return where


def test_structural_limits(accounts: Repository[Account]) -> None:
    client = accounts.with_policy(FilterPolicy())
    with pytest.raises(FilterError, match="nested deeper than 8") as info:
        client.find({"where": nested(9)})
    assert info.value.part.startswith("where.or[0]")
    assert client.find({"where": nested(8)}) == []
    with pytest.raises(FilterError, match="deeper than 64"):  # even trusted code: no stack blowup
        accounts.find({"where": nested(500)})
    flat = {"or": [{"qty": i} for i in range(1000)]}  # a plausible client request
    assert accounts.count(flat) == 0  # no RecursionError: rendered flat
    with pytest.raises(FilterError, match="1000 conditions, more than the 100"):
        client.find({"where": flat})
    with pytest.raises(FilterError, match="1001 items, more than 1000") as info:
        client.find({"where": {"qty": {"inq": list(range(1001))}}})
    assert info.value.part == "where.qty.inq"
    with pytest.raises(FilterError, match="more than 10000"):
        client.find({"where": {"name": "x" * 10_001}})


def test_hostile_json_is_a_filter_error() -> None:
    for body, message in [
        (b"[" * 100_000, "more than 65536"),
        (b'{"where": ' * 3000 + b"1" + b"}" * 3000, "nested too deeply"),
        (b'{"where": {"name": "\xff"}}', "not valid UTF-8"),
        (b'{"where": {"qty": 1' + b"0" * 5000 + b"}}", "Integer value out of range"),
    ]:
        with pytest.raises(FilterError, match=message):
            nx.Filter.from_json(body)
    with pytest.raises(FilterError, match="nested too deeply"):
        nx.Filter.from_json(b'{"where": {"a": ' + b"[" * 100_000, max_bytes=10**6)


def test_hostile_text_is_kept_short_in_messages(accounts: Repository[Account]) -> None:
    key = "k" * 10_000_000
    with pytest.raises(FilterError) as info:
        accounts.find({"where": {key: 1}})
    assert len(str(info.value)) < 2000 and "more characters" in str(info.value)
    with pytest.raises(ValidationError) as bad:
        accounts.create({"merchant_id": "m", "email": "e", "name": "n", key: 1})
    assert len(str(bad.value)) < 2000
    with pytest.raises(FilterError) as info:
        accounts.find({"where": {"qty": 10**5000}})
    assert "bits" in str(info.value)


# -- bodies: strict values, hidden and server-managed columns --------------------------------------


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"balance": "NaN"}, "balance", "not a finite number"),
        ({"balance": "sNaN"}, "balance", "not a finite number"),
        ({"balance": "1e15"}, "balance", "out of range"),
        ({"balance": "1.00001"}, "balance", "more than 4 decimal places"),
        ({"name": "a\x00"}, "name", "NUL"),
        ({"name": "\udc80"}, "name", "lone surrogate"),
        ({"doc": {"k": "a\x00"}}, "doc", "NUL"),
        ({"qty": 2**31}, "qty", "<="),
        ({"active": 1}, "active", "Expected `bool`"),
    ],
)
def test_bodies_are_strict(
    fresh: tuple[Repository[Account], str], change: dict[str, Any], field: str, message: str
) -> None:
    repo, m = fresh
    with pytest.raises(ValidationError, match=message) as info:
        repo.create({"merchant_id": m, "email": "e", "name": "n", **change})
    assert info.value.field == field
    assert repo.count({"merchant_id": m}) == 0


def test_hidden_columns(fresh: tuple[Repository[Account], str]) -> None:
    repo, m = fresh
    created = repo.create({"merchant_id": m, "email": "a", "name": "a", "password_hash": "h1"})
    assert created.password_hash is msgspec.UNSET  # never returned by default...
    assert repo.find_by_id(created.id).password_hash is msgspec.UNSET  # type: ignore[union-attr]
    assert b"password_hash" not in msgspec.json.encode(created)
    # ...but trusted code may filter on it and ask for it by name
    (row,) = repo.find({"where": {"password_hash": "h1"}, "fields": ["id", "password_hash"]})
    assert row.password_hash == "h1"
    client = repo.with_policy(FilterPolicy())
    unknown = {}
    for name in ("password_hash", "no_such_column"):
        for flt, part in (
            ({"where": {name: {"like": "h%"}}}, f"where.{name}"),
            ({"order": [name]}, "order[0]"),
            ({"fields": ["id", name]}, "fields[1]"),
        ):
            with pytest.raises(FilterError) as info:
                client.find(flt)
            assert info.value.part == part
            unknown[(name, part.replace(name, "?"))] = str(info.value).replace(name, "?")
    for (_, part), message in unknown.items():  # no oracle: the same answer for both
        assert message == unknown[("no_such_column", part)]
        assert "password_hash" not in message
    with pytest.raises(ValidationError, match="unknown field `password_hash`"):
        client.create({"merchant_id": m, "email": "b", "name": "b", "password_hash": "x"})


def test_server_managed_columns(fresh: tuple[Repository[Account], str]) -> None:
    repo, m = fresh
    client = repo.with_policy(FilterPolicy())
    for column, value in (
        ("id", "chosen"),
        ("created_at", "2020-01-01T00:00:00Z"),
        ("modified_at", "2020-01-01T00:00:00Z"),
        ("deleted_at", "2020-01-01T00:00:00Z"),
        ("tier", "gold"),
    ):
        with pytest.raises(ValidationError, match="managed by the server") as info:
            client.create({"merchant_id": m, "email": "e", "name": "n", column: value})
        assert info.value.field == column
    row = client.create({"merchant_id": m, "email": "e", "name": "n"})
    assert row.id and row.tier == "free"  # filled by the library / the server
    for column, value in (("deleted_at", "2020-01-01T00:00:00Z"), ("tier", "gold")):
        with pytest.raises(ValidationError, match="managed by the server"):
            client.update_by_id(row.id, {column: value})  # a PATCH cannot soft-delete
    assert client.update_by_id(row.id, {"name": "renamed"}).name == "renamed"  # type: ignore[union-attr]
    # trusted code keeps a way: imports with their own ids, seeds that set read-only columns
    imported = repo.create(
        {"id": f"{m}-1", "merchant_id": m, "email": "i", "name": "i", "tier": "gold"}
    )
    assert (imported.id, imported.tier) == (f"{m}-1", "gold")
    table = nx.table_of(Account)
    assert "id" not in table.client_insert_type.__struct_fields__
    assert "deleted_at" not in table.client_update_type.__struct_fields__
    assert table.validate_insert({"merchant_id": m, "email": "x", "name": "x"}, client=True).id


def test_soft_delete_restore_is_trusted(db: Database) -> None:
    m = f"t-{secrets.token_hex(4)}"
    repo = SoftDeletableRepository(db, Account)
    row = repo.create({"merchant_id": m, "email": "a", "name": "a"})
    client = repo.with_policy(FilterPolicy())
    assert client.delete_by_id(row.id) is not None
    assert client.find_by_id(row.id) is None
    assert repo.restore_by_id(row.id) is not None
    repo.hard_delete_by_id(row.id)


# -- policies ------------------------------------------------------------------------------------


def test_policy_columns_operators_and_paging(fresh: tuple[Repository[Account], str]) -> None:
    repo, m = fresh
    repo.create_all(
        [{"merchant_id": m, "email": f"{i}", "name": f"n{i:03}", "qty": i} for i in range(150)]
    )
    policy = FilterPolicy(
        filter=["merchant_id", "name", "qty", "doc.plan"],
        order=["name"],
        fields=["id", "name"],
        default_limit=20,
        max_limit=50,
        max_offset=100,
    )
    client = repo.with_policy(policy)
    rows = client.find({"where": {"merchant_id": m}, "order": ["name"]})
    assert len(rows) == 20  # default_limit
    assert rows[0].name == "n000" and rows[0].email is msgspec.UNSET  # only the policy's fields
    assert len(client.find({"where": {"merchant_id": m}, "limit": 50})) == 50
    for flt, part, message in (
        ({"limit": 51}, "limit", "above the maximum of 50"),
        ({"offset": 101}, "offset", "above the maximum of 100"),
        ({"order": ["qty"]}, "order[0]", "unknown column 'qty'"),
        ({"fields": ["email"]}, "fields[0]", "unknown column 'email'"),
        ({"where": {"email": "x"}}, "where.email", "unknown column 'email'"),
        ({"where": {"doc.secret": 1}}, "where.doc.secret", "unknown column"),
        ({"where": {"name": {"regexp": "^n"}}}, "where.name.regexp", "not allowed here"),
    ):
        with pytest.raises(FilterError, match=message) as info:
            client.find(flt)
        assert info.value.part == part
    assert client.find({"where": {"doc.plan.tier": "x"}}) == []  # below an allowed path
    assert len(repo.find({"where": {"merchant_id": m}})) == 150  # trusted: no default limit
    assert repo.count({"name": {"regexp": "^n0"}, "merchant_id": m}) == 100


def test_policy_statement_timeout_bounds_a_regexp(fresh: tuple[Repository[Account], str]) -> None:
    repo, m = fresh
    repo.create({"merchant_id": m, "email": "a", "name": "a" * 20_000})
    policy = FilterPolicy(operators=nx.OPERATORS, statement_timeout=0.3, max_string=100)
    client = repo.with_policy(policy)
    with pytest.raises(QueryCanceled):
        client.count({"merchant_id": m, "name": {"regexp": "(a*)*(b|\\1)$"}})
    # the timeout was local to that statement: the next one on the pool has the default
    assert repo.db.fetch_value("SHOW statement_timeout") == "0"
    with pytest.raises(FilterError, match="not a valid regular expression") as info:
        repo.find({"where": {"name": {"regexp": "(unclosed"}}})
    assert info.value.part == "where.name.regexp"


def test_policy_declaration_errors() -> None:
    with pytest.raises(nx.errors.ConfigurationError, match="unknown operators"):
        FilterPolicy(operators=["gtx"])
    with pytest.raises(nx.errors.ConfigurationError, match="default_limit is above max_limit"):
        FilterPolicy(default_limit=10, max_limit=5)
    with pytest.raises(nx.errors.ConfigurationError, match="list of names"):
        FilterPolicy(filter="name")  # type: ignore[arg-type]
    assert FilterPolicy().replace(default_limit=5).default_limit == 5


# -- tenant scopes -------------------------------------------------------------------------------


def test_scopes_cannot_be_widened(db: Database) -> None:
    a, b = f"t-{secrets.token_hex(4)}", f"t-{secrets.token_hex(4)}"
    repo = SoftDeletableRepository(db, Account)
    mine = repo.scoped(merchant_id=a).with_policy(FilterPolicy())
    theirs = repo.scoped(merchant_id=b)
    own = mine.create({"email": "own", "name": "own"})
    other = theirs.create({"email": "other", "name": "other"})
    assert own.merchant_id == a and other.merchant_id == b
    try:
        for where in (
            {"or": [{"name": "other"}, {"name": "own"}]},
            {"or": [{"merchant_id": b}, {"name": {"neq": "x"}}]},
            {"merchant_id": b},
        ):
            assert names(mine.find({"where": where})) in (["own"], []), where
            assert mine.count(where) <= 1
            assert mine.update_all({"note": "hacked"}, where) <= 1
        assert mine.find_by_id(other.id) is None
        assert mine.update_by_id(other.id, {"note": "hacked"}) is None
        assert mine.delete_by_id(other.id) is None
        assert not mine.exists({"name": "other"})
        with db.transaction() as tx:
            assert mine.find_by_id(other.id, lock=nx.Lock.UPDATE, transaction=tx) is None
        assert theirs.find_by_id(other.id).note is None  # type: ignore[union-attr]
        assert mine.delete_all({"or": [{"name": "other"}, {"merchant_id": b}]}) == 0
        assert theirs.count() == 1
        with pytest.raises(ValidationError, match="fixed to") as info:
            mine.create({"merchant_id": b, "email": "x", "name": "x"})
        assert info.value.field == "merchant_id"
        with pytest.raises(ValidationError, match="fixed to"):
            mine.update_by_id(own.id, {"merchant_id": b})
        clash = theirs.create({"email": "shared", "name": "theirs"})
        with pytest.raises(ValidationError, match="fixed to"):
            repo.scoped(merchant_id=a).upsert(
                {"merchant_id": b, "email": "shared", "name": "mine"},
                conflict=["merchant_id", "email"],
            )
        assert theirs.find_by_id(clash.id).name == "theirs"  # type: ignore[union-attr]
        assert [r.name for r in mine.iterate()] == ["own"]
        assert mine.scoped(merchant_id=a).count() == 1
        with pytest.raises(nx.errors.DeclarationError, match="already scoped"):
            mine.scoped(merchant_id=b)
    finally:
        repo.delete_all({"merchant_id": {"inq": [a, b]}})


def test_scoped_upsert_never_touches_another_scope(db: Database, conn: Any) -> None:
    # A unique key that does not include the scope column: the clash is with another tenant.
    schema = nx.Schema(f"ups_{secrets.token_hex(3)}")

    @schema.table("Handle", uniques=[nx.Unique("handle")])
    class Handle(nx.IdColumns):
        tenant: str
        handle: str
        owner: str

    for statement in create_statements([schema]):
        conn.execute(statement)
    try:
        repo = Repository(db, Handle)
        theirs = repo.scoped(tenant="b").create({"handle": "@x", "owner": "b"})
        got = repo.scoped(tenant="a").upsert({"handle": "@x", "owner": "a"}, conflict=["handle"])
        assert got is None
        assert repo.find_by_id(theirs.id).owner == "b"  # type: ignore[union-attr]
        mine = repo.scoped(tenant="b").upsert({"handle": "@x", "owner": "b2"}, conflict=["handle"])
        assert mine is not None and mine.owner == "b2"
    finally:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema.name)))


# -- row-level security --------------------------------------------------------------------------


def test_row_level_security_through_local_settings(test_database_url: str, conn: Any) -> None:
    role = f"nx_app_{secrets.token_hex(3)}"
    schema = nx.Schema(f"rls_{secrets.token_hex(3)}")

    @schema.table("Note")
    class Note(nx.IdColumns):
        tenant_id: str
        body: str

    for statement in create_statements([schema]):
        conn.execute(statement)
    qualified = nx.table_of(Note).sql_name
    conn.execute(f"CREATE ROLE {role} LOGIN")
    conn.execute(f"GRANT USAGE ON SCHEMA {schema.name} TO {role}")
    conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {qualified} TO {role}")
    conn.execute(f"ALTER TABLE {qualified} ENABLE ROW LEVEL SECURITY")
    conn.execute(f"ALTER TABLE {qualified} FORCE ROW LEVEL SECURITY")
    conn.execute(
        f"CREATE POLICY tenant ON {qualified} "
        "USING (tenant_id = current_setting('app.tenant_id', true)) "
        "WITH CHECK (tenant_id = current_setting('app.tenant_id', true))"
    )
    try:
        with Database(make_conninfo(test_database_url, user=role), max_size=2) as app:
            notes = Repository(app, Note)
            for tenant in ("t1", "t2"):
                with app.local_settings({"app.tenant_id": tenant}):
                    notes.create({"tenant_id": tenant, "body": f"{tenant} secret"})
            with app.local_settings({"app.tenant_id": "t1"}):
                assert [n.body for n in notes.find()] == ["t1 secret"]
                assert [n.body for n in notes.query(f"SELECT * FROM {qualified}")] == ["t1 secret"]
                assert app.fetch_value(f"SELECT count(*) FROM {qualified}") == 1
                assert sum(1 for _ in notes.iterate()) == 1
                with app.transaction() as tx:  # begun inside the block: settings applied
                    assert notes.count(transaction=tx) == 1
                with pytest.raises(nx.errors.DatabaseError, match="row-level security"):
                    notes.create({"tenant_id": "t2", "body": "forged"})
            assert notes.find() == []  # no tenant: the policy sees none
            with app.transaction(settings={"app.tenant_id": "t2"}) as tx:
                assert [n.body for n in notes.find(transaction=tx)] == ["t2 secret"]
            # nothing of it stays on the pooled connections
            assert app.fetch_value("SELECT current_setting('app.tenant_id', true)") in (None, "")
    finally:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema.name)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


# -- session state does not leak between borrowers -----------------------------------------------


def test_session_state_never_reaches_the_next_borrower(test_database_url: str) -> None:
    with Database(test_database_url, max_size=1) as single:  # one connection: every call meets it
        single.execute("SET search_path = pg_catalog")
        single.execute("SET statement_timeout = 1234")
        single.fetch_value("SELECT set_config('app.tenant_id', 'leak', false)")
        single.execute("CREATE TEMP TABLE leak (x int)")
        with single.connection() as conn:
            conn.execute("SET application_name = 'leaky'")
        with single.transaction() as tx:
            tx.connection.execute("SET TIME ZONE 'Asia/Tokyo'")
        assert single.fetch_value("SHOW search_path") == '"$user", public'
        assert single.fetch_value("SHOW statement_timeout") == "0"
        assert single.fetch_value("SELECT current_setting('app.tenant_id', true)") in (None, "")
        assert single.fetch_value("SELECT to_regclass('pg_temp.leak')") is None
        assert single.fetch_value("SHOW application_name") == "nxdata"
        assert single.fetch_value("SHOW TimeZone") == "UTC"


# -- every error from untrusted input is an NxdataError ------------------------------------------


def test_non_utf8_and_odd_inputs_are_nxdata_errors(accounts: Repository[Account]) -> None:
    table = nx.table_of(Account)
    for call in (
        lambda: table.validate_insert(b'{"name": "\xff"}'),
        lambda: table.validate_insert(b"[" * 5000),
        lambda: table.validate_update('{"name": "\\ud800"}'),
        lambda: accounts.create(b'{"merchant_id": "m", "email": "e", "name": "\xc3"}'),
        lambda: accounts.find({"where": {"name": {"like": b"x"}}}),
        lambda: accounts.find({"where": {("a",): 1}}),
        lambda: accounts.find({"where": {"doc.a\x00b": 1}}),
        lambda: accounts.find({"where": {"doc..b": 1}}),
        lambda: accounts.find({"order": ["name" * 100]}),
        lambda: accounts.find({"limit": 10**30}),
        lambda: accounts.find({"offset": 2**63}),
        lambda: accounts.scoped(merchant_id=5),
    ):
        with pytest.raises(NxdataError):
            call()


async def test_async_policy_scope_and_local_settings(db: Database, test_database_url: str) -> None:
    async with nx.AsyncDatabase(test_database_url, max_size=2) as adb:
        repo = nx.AsyncRepository(adb, Account)
        m = f"t-{secrets.token_hex(4)}"
        client = repo.with_policy(FilterPolicy(statement_timeout=1)).scoped(merchant_id=m)
        try:
            row = await client.create({"email": "a", "name": "a", "qty": 1})
            assert row.merchant_id == m and row.password_hash is msgspec.UNSET
            assert [r.name for r in await client.find({"where": {"qty": {"gte": 1}}})] == ["a"]
            with pytest.raises(FilterError, match="expects an integer"):
                await client.find({"where": {"qty": "1"}})
            with adb.local_settings({"app.tenant_id": m}):
                value = await adb.fetch_value("SELECT current_setting('app.tenant_id', true)")
                assert value == m
                async with adb.transaction() as tx:
                    assert await client.count(transaction=tx) == 1
                    assert await adb.fetch_value("SHOW statement_timeout") == "0"
            assert await adb.fetch_value("SELECT current_setting('app.tenant_id', true)") in (
                None,
                "",
            )
        finally:
            await repo.delete_all({"merchant_id": m})
