"""Validation errors say what is wrong with which column: a column that cannot be set is not
called unknown, a nested jsonb error names its column, and integers out of their SQL type's range
are refused before the server sees them."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import psycopg
import pytest
from test_repository_support import Models, create_tables, make_models

import nxdata as nx
from nxdata import AsyncDatabase, AsyncRepository, Database, Repository
from nxdata.ddl import create_statements
from nxdata.errors import ValidationError

Conn = psycopg.Connection[Any]

SMALL, INT, BIG = 2**15, 2**31, 2**63  # smallint, integer and bigint hold -n .. n - 1


@pytest.fixture
def models(conn: Conn, schema_name: str) -> Models:
    m = make_models(schema_name)
    create_tables(conn, m)
    return m


# -- columns that cannot be set --------------------------------------------------------------------


def test_update_of_a_column_that_cannot_be_updated_says_why(db: Database, models: Models) -> None:
    items = Repository(db, models.Item)
    row = items.create({"name": "a"})
    cases = [
        ({"id": "x"}, "id", "field `id` cannot be updated (primary key)"),
        ({"created_at": "2020-01-01T00:00:00Z"}, "created_at", "`created_at` cannot be updated"),
        ({"modified_at": "2020-01-01T00:00:00Z"}, "modified_at", "set to now() by every update"),
    ]
    for data, field, reason in cases:
        with pytest.raises(ValidationError) as info:
            items.update_by_id(row.id, {"name": "b", **data})
        assert (info.value.table, info.value.field) == (items.table.qualified_name, field)
        assert reason in info.value.reason
        assert "unknown" not in str(info.value)
    assert items.find_by_id(row.id) == row  # nothing was written


def test_insert_into_an_identity_always_column_says_it_is_generated(
    db: Database, models: Models
) -> None:
    entries = Repository(db, models.Entry)
    with pytest.raises(ValidationError) as info:
        entries.create({"id": 7, "label": "x"})
    assert info.value.field == "id"
    assert info.value.reason == "field `id` is generated (identity always) and cannot be inserted"
    with pytest.raises(ValidationError, match=r"field `id` cannot be updated \(primary key\)"):
        entries.update_by_id(1, {"id": 7})
    assert entries.count() == 0


def test_every_reason_a_column_cannot_be_updated() -> None:
    s = nx.Schema("not_settable")

    @s.table("Doc")
    class Doc(nx.IdColumns):
        seq: Annotated[int, nx.Column(identity="by default")]
        code: Annotated[str, nx.Column(immutable=True)]
        touched: Annotated[str, nx.Column(server_default="'x'", on_update="'y'")]

    t = nx.table_of(Doc)
    for field, why in [
        ("id", "primary key"),
        ("seq", "identity by default"),
        ("code", "immutable"),
        ("touched", "set to 'y' by every update"),
    ]:
        with pytest.raises(ValidationError) as info:
            t.validate_update({field: 1})
        assert info.value.field == field
        assert info.value.reason == f"field `{field}` cannot be updated ({why})"
    # an identity "by default" column may be inserted
    assert t.validate_insert({"seq": 5, "code": "c"}).seq == 5  # type: ignore[attr-defined]


def test_unknown_fields_keep_their_message_with_a_suggestion(models: Models) -> None:
    items, entries = nx.table_of(models.Item), nx.table_of(models.Entry)
    cases: list[tuple[Any, Any, str, str]] = [
        (
            items.validate_insert,
            {"name": "a", "zzz": 1},
            "zzz",
            "Object contains unknown field `zzz`",
        ),
        (items.validate_insert, b'{"name": "a", "zzz": 1}', "zzz", "unknown field `zzz`"),
        (items.validate_insert, {"nme": "a"}, "nme", "unknown field `nme` (did you mean `name`?)"),
        (
            items.validate_update,
            {"scor": 1},
            "scor",
            "unknown field `scor` (did you mean `score`?)",
        ),
        # the SQL name of a column whose field is spelled otherwise
        (
            entries.validate_insert,
            {"label": "a", "note_text": "n"},
            "note_text",
            "unknown field `note_text` (did you mean `note`?)",
        ),
        # a key that merely looks like msgspec's path is still a key
        (items.validate_update, {"id` - at `$": 1}, "id` - at `$", "unknown field `id` - at `$`"),
    ]
    for validate, data, field, reason in cases:
        with pytest.raises(ValidationError) as info:
            validate(data)
        assert info.value.field == field
        assert info.value.reason.endswith(reason)
    with pytest.raises(ValidationError) as info:
        items.validate_insert({"name": "a", "zzz": 1})
    assert info.value.reason == "Object contains unknown field `zzz`"  # nothing close: as before


async def test_async_update_of_the_primary_key_says_why(adb: AsyncDatabase, models: Models) -> None:
    items = AsyncRepository(adb, models.Item)
    row = await items.create({"name": "a"})
    with pytest.raises(ValidationError, match=r"`id` cannot be updated \(primary key\)") as info:
        await items.update_by_id(row.id, {"id": "other"})
    assert info.value.field == "id"


# -- nested jsonb ----------------------------------------------------------------------------------


def test_a_nested_jsonb_error_names_its_column(db: Database, models: Models) -> None:
    items = Repository(db, models.Item)
    row = items.create({"name": "a"})
    cases: list[tuple[Any, str]] = [
        ({"name": "x", "meta": {}}, "Object missing required field `tier` - at `$.meta`"),
        ({"name": "x", "meta": {"tier": 1}}, "Expected `str`, got `int` - at `$.meta.tier`"),
        ({"name": "x", "meta": {"tier": "a", "seats": "2"}}, "at `$.meta.seats`"),
        (b'{"name": "x", "meta": {}}', "missing required field `tier` - at `$.meta`"),
    ]
    for data, reason in cases:
        with pytest.raises(ValidationError) as info:
            items.create(data)
        assert (info.value.field, info.value.reason.endswith(reason)) == ("meta", True)
        if isinstance(data, dict):
            with pytest.raises(ValidationError) as info:
                items.update_by_id(row.id, {"meta": data["meta"]})
            assert info.value.field == "meta"
    # at the root, the field named in the message is the one
    with pytest.raises(ValidationError) as info:
        items.create({"meta": {"tier": "a"}})
    assert (info.value.field, info.value.reason) == ("name", "Object missing required field `name`")
    assert items.count() == 1


def test_a_nested_jsonb_error_in_a_bulk_insert_names_its_column(
    db: Database, models: Models
) -> None:
    items = Repository(db, models.Item)
    good = {"name": "a", "meta": {"tier": "x"}}
    bad = {"name": "b", "meta": {}}
    struct_rows = [items.table.insert_type(name="a"), items.table.validate_insert(good)]
    cases: list[list[Any]] = [[good, good, bad], [*struct_rows, bad]]
    for rows in cases:  # dicts: one call; else row by row
        with pytest.raises(ValidationError, match=r"`tier` - at `\$\[2\]\.meta`") as info:
            items.create_all(rows)
        assert info.value.field == "meta"
    assert items.count() == 0


def test_validation_error_reads_paths_of_single_rows_and_lists(models: Models) -> None:
    t = nx.table_of(models.Item)
    cases = [
        ("Expected `int`, got `str` - at `$.score`", "score"),
        ("Object missing required field `tier` - at `$.meta`", "meta"),
        ("Object missing required field `tier` - at `$[41].meta`", "meta"),
        ("Expected `str`, got `int` - at `$[41].meta.tier`", "meta"),
        ("Object missing required field `name` - at `$[41]`", "name"),
        ("Object missing required field `name`", "name"),
        ("Expected `object`, got `array`", None),
        ("Expected `str`, got `int` - at `$[3].tags[0]`", "tags"),
    ]
    for message, field in cases:
        error = t.validation_error(message)
        assert (error.field, error.reason, error.table) == (field, message, t.qualified_name)
    unknown = t.validation_error("Object contains unknown field `id` - at `$[41]`", "update")
    assert unknown.reason == "field `id` cannot be updated (primary key) - at `$[41]`"
    assert unknown.field == "id"


# -- integer ranges --------------------------------------------------------------------------------


def make_counters(schema_name: str) -> Any:
    schema = nx.Schema(schema_name)

    @schema.table("Counter")
    class Counter(msgspec.Struct):
        id: Annotated[int, nx.Column(primary_key=True, identity="by default", sql_type="smallint")]
        qty: int = 0
        big: nx.BigInt = 0
        small: nx.SmallInt = 0
        maybe: int | None = None
        ints: list[int] = msgspec.field(default_factory=list)
        bigs: Annotated[list[int | None] | None, nx.Column(sql_type="bigint[]")] = None
        flag: bool = False
        doc: dict[str, int] | None = None  # jsonb: any JSON number
        wide: Annotated[int, nx.Column(sql_type="numeric(30)")] = 0

    return Counter


@pytest.fixture
def counters(db: Database, conn: Conn, schema_name: str) -> Repository[Any]:
    counter = make_counters(schema_name)
    for statement in create_statements([nx.table_of(counter).schema]):
        conn.execute(statement)
    return Repository(db, counter)


def test_integers_at_the_edges_of_their_sql_type_are_stored(counters: Repository[Any]) -> None:
    for sign, offset in ((-1, 0), (1, -1)):
        row = counters.create(
            {
                "id": sign * SMALL + offset,
                "qty": sign * INT + offset,
                "big": sign * BIG + offset,
                "small": sign * SMALL + offset,
                "maybe": sign * INT + offset,
                "ints": [sign * INT + offset, 0],
                "bigs": [sign * BIG + offset, None],
                "doc": {"n": 10**40},
                "wide": 10**29,
            }
        )
        assert counters.find_by_id(row.id) == row
        assert (row.id, row.qty) == (sign * SMALL + offset, sign * INT + offset)
        assert row.big == row.bigs[0] == sign * BIG + offset


def test_integers_out_of_range_are_refused_naming_the_field(counters: Repository[Any]) -> None:
    row = counters.create({})
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"qty": 10**12}, "qty", "Expected `int` <= 2147483647 - at `$.qty`"),
        ({"qty": -INT - 1}, "qty", "Expected `int` >= -2147483648 - at `$.qty`"),
        ({"maybe": INT}, "maybe", "<= 2147483647 - at `$.maybe`"),
        ({"big": BIG}, "big", "<= 9223372036854775807 - at `$.big`"),
        ({"big": -BIG - 1}, "big", ">= -9223372036854775808 - at `$.big`"),
        ({"small": SMALL}, "small", "<= 32767 - at `$.small`"),
        ({"small": -SMALL - 1}, "small", ">= -32768 - at `$.small`"),
        ({"ints": [1, INT]}, "ints", "<= 2147483647 - at `$.ints[1]`"),
        ({"bigs": [None, BIG]}, "bigs", "<= 9223372036854775807 - at `$.bigs[1]`"),
    ]
    for data, field, reason in cases:
        for write in (counters.create, lambda d: counters.update_by_id(row.id, d)):
            with pytest.raises(ValidationError) as info:
                write(data)
            assert info.value.field == field and info.value.reason.endswith(reason)
    with pytest.raises(ValidationError, match=r"<= 32767 - at `\$\.id`") as info:
        counters.create({"id": SMALL})  # an identity "by default" column may be given
    assert info.value.field == "id"
    assert counters.find({}) == [row]


def test_bulk_insert_refuses_an_integer_out_of_range(counters: Repository[Any]) -> None:
    rows: list[dict[str, Any]] = [{"qty": i} for i in range(5)]
    rows[3] = {"qty": INT}
    for returning in (False, True):
        with pytest.raises(ValidationError, match=r"<= 2147483647 - at `\$\[3\]\.qty`") as info:
            counters.create_all(rows, returning=returning)
        assert info.value.field == "qty"
    assert counters.count() == 0


def test_only_input_types_are_bounded(counters: Repository[Any]) -> None:
    t = counters.table
    assert t.by_field["qty"].python_type is int and t.by_field["ints"].python_type == list[int]
    assert t.validate_row({"id": 1, "qty": 10**12, "big": 0, "small": 0, "maybe": None, "ints": []})
    # types that are not plain SQL integers are left as declared
    assert t.validate_insert({"doc": {"n": 10**40}, "wide": 10**29, "flag": True})


# -- msgspec.Meta constraints ----------------------------------------------------------------------

INT_MAX = INT - 1
Count = Annotated[int, msgspec.Meta(ge=0)]


def make_stock(schema_name: str) -> Any:
    schema = nx.Schema(schema_name)

    @schema.table("Stock")
    class Stock(nx.IntIdColumns):
        code: Annotated[str, msgspec.Meta(max_length=8, pattern="^[A-Z]+$")]
        qty: Count
        # the user's upper bound is looser than smallint's, the lower one tighter
        small: Annotated[nx.SmallInt, msgspec.Meta(ge=-10, le=10**6)]
        # gt looser than integer's range, lt tighter
        ceiling: Annotated[int, msgspec.Meta(gt=-(2**40), lt=100)] = 0
        note: Annotated[str, msgspec.Meta(min_length=1), nx.Column(server_default="'-'")] = "-"
        rating: Annotated[float, msgspec.Meta(ge=0, le=5)] | None = None
        counts: list[Count] = msgspec.field(default_factory=list)
        maybe: Annotated[list[Count | None], msgspec.Meta(max_length=3)] | None = None

    return Stock


def test_meta_constraints_are_kept_in_insert_and_update_types() -> None:
    t = nx.table_of(make_stock("meta_types"))
    M = msgspec.Meta
    bounded_count = Annotated[int, M(ge=0, le=INT_MAX)]
    expected: dict[str, Any] = {
        "code": Annotated[str, M(max_length=8, pattern="^[A-Z]+$")],
        "qty": bounded_count,
        "small": Annotated[int, M(ge=-10, le=SMALL - 1)],
        "ceiling": Annotated[int, M(ge=-INT, lt=100)],
        "note": Annotated[str, M(min_length=1)],
        "rating": Annotated[float, M(ge=0, le=5)] | None,
        "counts": list[bounded_count],
        "maybe": Annotated[list[bounded_count | None], M(max_length=3)] | None,
    }
    inserts = {f.name: f.type for f in msgspec.structs.fields(t.insert_type)}
    updates = {f.name: f.type for f in msgspec.structs.fields(t.update_type)}
    for name, tp in expected.items():
        assert inserts[name] == tp, name
        assert updates[name] == tp | msgspec.UnsetType, name
    # the row type is as declared: constraints, no SQL range
    assert msgspec.structs.fields(t.row_type)[2].type == Count


def test_meta_constraints_are_refused_naming_the_field() -> None:
    t = nx.table_of(make_stock("meta_refused"))
    ok: dict[str, Any] = {"code": "AB", "qty": 1, "small": 1}
    # the SQL type's bounds (marked False) are not the row type's: rows read back are not checked
    cases: list[tuple[dict[str, Any], str, str, bool]] = [
        ({"qty": -1}, "qty", "Expected `int` >= 0 - at `$.qty`", True),
        ({"qty": INT}, "qty", "Expected `int` <= 2147483647 - at `$.qty`", False),
        ({"code": "abc"}, "code", "matching regex '^[A-Z]+$' - at `$.code`", True),
        ({"code": "ABCDEFGHI"}, "code", "length <= 8 - at `$.code`", True),
        ({"small": -11}, "small", "Expected `int` >= -10 - at `$.small`", True),
        ({"small": SMALL}, "small", "Expected `int` <= 32767 - at `$.small`", False),
        ({"ceiling": 100}, "ceiling", "Expected `int` <= 99 - at `$.ceiling`", True),
        ({"ceiling": -INT - 1}, "ceiling", ">= -2147483648 - at `$.ceiling`", False),
        ({"note": ""}, "note", "length >= 1 - at `$.note`", True),
        ({"rating": 5.5}, "rating", "Expected `float` <= 5.0 - at `$.rating`", True),
        ({"counts": [1, -1]}, "counts", "Expected `int` >= 0 - at `$.counts[1]`", True),
        ({"counts": [INT]}, "counts", "<= 2147483647 - at `$.counts[0]`", False),
        ({"maybe": [None, -1]}, "maybe", "Expected `int` >= 0 - at `$.maybe[1]`", True),
        ({"maybe": [1, 2, 3, 4]}, "maybe", "length <= 3 - at `$.maybe`", True),
    ]
    for change, field, reason, declared in cases:
        checks: list[tuple[Any, dict[str, Any]]] = [
            (t.validate_insert, {**ok, **change}),
            (t.validate_update, change),
        ]
        if declared:
            checks.append((t.validate_row, {"id": 1, **ok, **change}))
        for validate, data in checks:
            with pytest.raises(ValidationError) as info:
                validate(data)
            assert info.value.field == field, (validate, change)
            assert info.value.reason.endswith(reason), (validate, info.value.reason)
    # within every bound, None where nullable, omitted where defaulted
    assert t.validate_insert({**ok, "rating": None, "maybe": [None, 0]})
    assert t.validate_update({"rating": None, "counts": [0, INT_MAX]})


def test_meta_constraints_are_checked_before_the_server(
    db: Database, conn: Conn, schema_name: str
) -> None:
    stock = make_stock(schema_name)
    for statement in create_statements([nx.table_of(stock).schema]):
        conn.execute(statement)
    repo = Repository(db, stock)
    row = repo.create({"code": "AB", "qty": 1, "small": 1})
    with pytest.raises(ValidationError, match=r">= 0 - at `\$\.qty`") as info:
        repo.create({"code": "AB", "qty": -1, "small": 1})
    assert info.value.field == "qty"
    with pytest.raises(ValidationError, match=r">= 0 - at `\$\[1\]\.qty`") as info:
        repo.create_all([{"code": "A", "qty": 1, "small": 1}, {"code": "B", "qty": -1, "small": 1}])
    assert info.value.field == "qty"
    with pytest.raises(ValidationError, match=r"regex") as info:
        repo.update_by_id(row.id, {"code": "ab"})
    assert info.value.field == "code"
    assert repo.find({}) == [row]
