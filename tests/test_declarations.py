"""Declarations without a database: column types, column sets, names, derived types, validation."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, TypedDict

import msgspec
import pytest

import nxdata as nx
from nxdata.errors import DeclarationError, ValidationError
from nxdata.sqltypes import bounded


class Plan(msgspec.Struct):
    tier: str
    seats: int = 1


class Address(TypedDict):
    city: str


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Weird:
    """Not a type PostgreSQL can store."""


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


def declare(schema: nx.Schema, **options: Any):  # type: ignore[no-untyped-def]
    return schema.table(**options)


def test_every_annotation_maps_to_its_sql_type() -> None:
    s = nx.Schema("types_demo")

    @s.table("AllTypes")
    class AllTypes(msgspec.Struct):
        a_text: str
        a_int: int
        a_bigint: nx.BigInt
        a_smallint: nx.SmallInt
        a_float: float
        a_real: nx.Real
        a_bool: bool
        a_timestamptz: datetime
        a_date: date
        a_time: time
        a_interval: timedelta
        a_numeric: Decimal
        a_money: nx.Money
        a_uuid: uuid.UUID
        a_bytes: bytes
        a_dict: dict[str, Any]
        a_struct: Plan
        a_typeddict: Address
        a_list_of_dicts: list[dict[str, int]]
        a_text_array: list[str]
        a_int_array: list[int]
        an_enum: Color
        an_int_enum: Level
        a_literal: Literal["x", "y"]
        a_varchar: Annotated[str, nx.Column(sql_type="varchar(20)")]
        a_nullable: str | None
        an_any: Any

    t = nx.table_of(AllTypes)
    types = {c.name: c.sql_type for c in t.columns}
    assert types == {
        "a_text": "text",
        "a_int": "integer",
        "a_bigint": "bigint",
        "a_smallint": "smallint",
        "a_float": "double precision",
        "a_real": "real",
        "a_bool": "boolean",
        "a_timestamptz": "timestamp with time zone",
        "a_date": "date",
        "a_time": "time without time zone",
        "a_interval": "interval",
        "a_numeric": "numeric",
        "a_money": "numeric(19, 4)",
        "a_uuid": "uuid",
        "a_bytes": "bytea",
        "a_dict": "jsonb",
        "a_struct": "jsonb",
        "a_typeddict": "jsonb",
        "a_list_of_dicts": "jsonb",
        "a_text_array": "text[]",
        "a_int_array": "integer[]",
        "an_enum": "text",
        "an_int_enum": "integer",
        "a_literal": "text",
        "a_varchar": "varchar(20)",
        "a_nullable": "text",
        "an_any": "jsonb",
    }
    nullable = {c.name for c in t.columns if c.nullable}
    assert nullable == {"a_nullable", "an_any"}
    kinds = {c.name: c.kind for c in t.columns}
    assert kinds["a_struct"] == "json" and kinds["a_text_array"] == "array"
    assert kinds["an_enum"] == "enum" and kinds["a_int"] == "scalar"
    # typed jsonb keeps its declared type, so rows decode into it
    assert t.by_field["a_struct"].python_type is Plan
    checks = {c.name: c.expression for c in t.checks}
    assert checks == {
        "CK_AllTypes_an_enum": "\"an_enum\" IN ('red', 'green')",
        "CK_AllTypes_an_int_enum": '"an_int_enum" IN (1, 2)',
        "CK_AllTypes_a_literal": "\"a_literal\" IN ('x', 'y')",
    }


def test_unsupported_annotation_names_table_and_column() -> None:
    s = nx.Schema("bad_types")
    with pytest.raises(DeclarationError, match=r"Bad\.thing: no PostgreSQL type"):

        @s.table("Bad")
        class Bad(msgspec.Struct):
            thing: Weird


def test_common_column_set() -> None:
    s = nx.Schema("sets_common")

    @s.table("Product")
    class Product(nx.CommonColumns):
        name: str

    t = nx.table_of(Product)
    assert [c.name for c in t.columns] == [
        "id",
        "created_at",
        "modified_at",
        "deleted_at",
        "metadata",
        "name",
    ]
    assert t.primary_key == ("id",)
    assert t.soft_delete_column is not None and t.soft_delete_column.name == "deleted_at"
    by = t.by_name
    assert by["id"].sql_type == "text" and by["id"].default_factory is nx.new_id
    assert by["created_at"].server_default == "now()" and not by["created_at"].nullable
    assert by["modified_at"].options.on_update == "now()"
    assert by["deleted_at"].nullable and by["metadata"].nullable
    assert by["metadata"].sql_type == "jsonb"


@pytest.mark.parametrize(
    ("kind", "sql_type", "identity"),
    [
        ("uuid", "text", None),
        ("uuid7", "text", None),
        ("int", "integer", "always"),
        ("bigint", "bigint", "always"),
    ],
)
def test_id_only_sets(kind: Any, sql_type: str, identity: str | None) -> None:
    s = nx.Schema(f"sets_id_{kind}")

    @s.table("Thing")
    class Thing(nx.id_columns(kind)):  # type: ignore[misc]
        label: str

    t = nx.table_of(Thing)
    assert [c.name for c in t.columns] == ["id", "label"]
    assert t.by_name["id"].sql_type == sql_type
    assert t.by_name["id"].identity == identity
    # identity ALWAYS cannot be inserted; text ids are generated client-side
    assert ("id" in t.insert_type.__struct_fields__) is (identity is None)


def test_timestamp_sets_with_and_without_soft_delete() -> None:
    soft = nx.timestamp_columns()
    hard = nx.timestamp_columns(soft_delete=False)
    assert soft.__struct_fields__ == ("created_at", "modified_at", "deleted_at")
    assert hard.__struct_fields__ == ("created_at", "modified_at")
    assert nx.timestamp_columns() is soft  # cached: one class per set


def test_value_columns_and_composition() -> None:
    s = nx.Schema("sets_compose")

    @s.table("PolicyFeature")
    class PolicyFeature(nx.compose(nx.common_columns(), nx.value_columns())):  # type: ignore[misc]
        code: str

    @s.table("LicenseEvent")
    class LicenseEvent(
        nx.compose(nx.id_columns("bigint"), nx.timestamp_columns(soft_delete=False))  # type: ignore[misc]
    ):
        kind: str

    pf = nx.table_of(PolicyFeature)
    assert [c.name for c in pf.columns][5:] == [
        "data_type",
        "n_value",
        "t_value",
        "bo_value",
        "j_value",
        "b_value",
        "code",
    ]
    types = {c.name: (c.sql_type, c.nullable) for c in pf.columns}
    assert types["data_type"] == ("text", False)
    assert types["n_value"] == ("double precision", True)
    assert types["t_value"] == ("text", True)
    assert types["bo_value"] == ("boolean", True)
    assert types["j_value"] == ("jsonb", True)
    assert types["b_value"] == ("bytea", True)

    ev = nx.table_of(LicenseEvent)
    assert [c.name for c in ev.columns] == ["id", "created_at", "modified_at", "kind"]
    assert ev.soft_delete_column is None
    assert ev.by_name["id"].sql_type == "bigint" and ev.by_name["id"].identity == "always"

    with pytest.raises(ValueError, match="more than one column set"):
        nx.compose(nx.common_columns(), nx.id_columns())


def test_uuid7_is_time_ordered_and_valid() -> None:
    ids = [nx.new_uuid7() for _ in range(200)]
    parsed = [uuid.UUID(i) for i in ids]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in parsed)
    stamps = [u.int >> 80 for u in parsed]
    assert stamps == sorted(stamps)
    assert len(set(ids)) == 200


def test_conventional_constraint_names_and_overrides() -> None:
    s = nx.Schema("naming")

    @s.table("Policy")
    class Policy(nx.CommonColumns):
        name: str

    @s.table(
        "License",
        indexes=[
            nx.Index("status"),
            nx.Index("policy_id", "status"),
            nx.Index("tags", method="gin"),
            nx.Index("status", name="my_status_idx"),
            nx.live_unique("license_key"),
        ],
        foreign_keys=[nx.ForeignKey("policy_id", Policy, on_delete="cascade")],
        uniques=[nx.Unique("policy_id", "seat"), nx.Unique("seat", name="seat_once")],
        checks=[nx.Check("seat >= 0"), nx.Check("seat < 1000", name="CK_License_seat_max")],
    )
    class License(nx.CommonColumns):
        policyId: str  # camelCase field → snake_case column
        license_key: str
        status: str
        seat: int
        tags: list[str]
        note: Annotated[str | None, nx.Column(name="remark", index=True, unique=True)] = None

    t = nx.table_of(License)
    assert t.by_field["policyId"].name == "policy_id"
    assert [i.name for i in t.indexes] == [
        "IDX_License_status",
        "IDX_License_policy_id_status",
        "IDX_License_tags",
        "my_status_idx",
        "UQ_License_license_key",
        "IDX_License_remark",
    ]
    assert t.indexes[2].method == "gin"
    assert t.indexes[4].unique and t.indexes[4].where == "deleted_at IS NULL"
    assert [u.name for u in t.uniques] == [
        "UQ_License_policy_id_seat",
        "seat_once",
        "UQ_License_remark",
    ]
    assert [c.name for c in t.checks] == ["CK_License_1", "CK_License_seat_max"]
    (fk,) = t.foreign_keys
    assert fk.name == "FK_License_policy_id_Policy_id"
    assert fk.on_delete == "cascade" and fk.ref_columns == ("id",)


def test_declaration_errors_name_the_problem() -> None:
    s = nx.Schema("decl_errors")
    with pytest.raises(DeclarationError, match="index names unknown column 'nope'"):

        @s.table("A", indexes=[nx.Index("nope")])
        class A(msgspec.Struct):
            x: int

    with pytest.raises(DeclarationError, match="longer than 63 bytes"):

        @s.table("B", indexes=[nx.Index("x" * 60)])
        class B(msgspec.Struct):
            x_: Annotated[int, nx.Column(name="x" * 60)]

    with pytest.raises(DeclarationError, match="unknown index method"):

        @s.table("C", indexes=[nx.Index("x", method="btrie")])
        class C(msgspec.Struct):
            x: int

    with pytest.raises(DeclarationError, match="identity columns must be integer"):

        @s.table("D")
        class D(msgspec.Struct):
            x: Annotated[str, nx.Column(identity="always")]

    with pytest.raises(DeclarationError, match=r"row type must be a msgspec\.Struct"):
        nx.Table(s, "E", dict)  # type: ignore[type-var]

    with pytest.raises(DeclarationError, match="lower snake_case"):
        nx.Schema("Bad Name")

    @s.table("F", foreign_keys=[nx.ForeignKey("x", "decl_errors.Missing")])
    class F(msgspec.Struct):
        x: int

    with pytest.raises(DeclarationError, match=r"unknown table 'decl_errors\.Missing'"):
        _ = nx.table_of(F).foreign_keys


def test_foreign_keys_resolve_by_name_across_schemas() -> None:
    a = nx.Schema("fk_a")
    b = nx.Schema("fk_b")

    @b.table(
        "Child", foreign_keys=[nx.ForeignKey("parent_id", "fk_a.Parent", on_delete="set null")]
    )
    class Child(nx.CommonColumns):
        parent_id: str | None

    @a.table("Parent")  # declared after the child: resolved lazily
    class Parent(nx.CommonColumns):
        name: str

    (fk,) = nx.table_of(Child).foreign_keys
    assert fk.target is nx.table_of(Parent)
    assert fk.name == "FK_Child_parent_id_Parent_id"


def test_insert_type_makes_defaulted_columns_optional() -> None:
    s = nx.Schema("derived")

    @s.table("Item")
    class Item(nx.CommonColumns):
        name: str
        price: Decimal
        note: str | None
        tags: list[str] = msgspec.field(default_factory=list)
        status: str = "new"

    t = nx.table_of(Item)
    payload = t.validate_insert({"name": "pen", "price": "1.50"})
    assert payload.name == "pen" and payload.price == Decimal("1.50")  # type: ignore[attr-defined]
    uuid.UUID(payload.id)  # type: ignore[attr-defined]  # python-side default
    assert payload.created_at is msgspec.UNSET  # type: ignore[attr-defined]  # the server decides
    assert payload.note is None and payload.tags == [] and payload.status == "new"  # type: ignore[attr-defined]
    assert t.by_name["status"].server_default == "'new'"

    update = t.validate_update({"price": 2})
    assert update.price == Decimal(2) and update.name is msgspec.UNSET  # type: ignore[attr-defined]
    assert set(t.update_type.__struct_fields__) == {
        "deleted_at",
        "metadata",
        "name",
        "price",
        "note",
        "tags",
        "status",
    }


def test_validation_errors_name_field_and_reason() -> None:
    s = nx.Schema("validation")

    @s.table("Account")
    class Account(nx.CommonColumns):
        email: str
        balance: nx.Money
        plan: Plan

    t = nx.table_of(Account)
    cases: list[tuple[dict[str, Any], str | None, str | None]] = [
        ({"email": 1, "balance": "1", "plan": {"tier": "x"}}, "email", "Expected `str`, got `int`"),
        ({"email": "a", "plan": {"tier": "x"}}, "balance", "missing required field `balance`"),
        ({"email": "a", "balance": "x", "plan": {"tier": "x"}}, "balance", "Invalid decimal"),
        ({"email": "a", "balance": "1", "plan": {"tier": 3}}, "plan", "Expected `str`"),
        ({"email": "a", "balance": "1", "plan": {}}, "plan", "field `tier` - at `$.plan`"),
        ({"email": "a", "balance": "1", "plan": {"tier": "x"}, "x": 1}, "x", "unknown field `x`"),
    ]
    for data, field, reason in cases:
        with pytest.raises(ValidationError) as info:
            t.validate_insert(data)
        assert info.value.table == "validation.Account"
        if field is not None:
            assert info.value.field == field
            assert reason is not None and reason in info.value.reason
    with pytest.raises(
        ValidationError, match=r"`created_at` cannot be updated \(immutable\)"
    ) as info:
        t.validate_update({"created_at": "2020-01-01T00:00:00Z"})
    assert info.value.field == "created_at"
    with pytest.raises(ValidationError, match="malformed JSON"):
        t.validate_insert(b"{not json")
    ok = t.validate_insert(b'{"email": "a@b.c", "balance": "10.25", "plan": {"tier": "pro"}}')
    assert ok.plan == Plan("pro")  # type: ignore[attr-defined]
    with pytest.raises(ValidationError, match="Expected `object`, got `array`"):
        t.validate_insert([1, 2])  # type: ignore[arg-type]


def test_input_types_bound_integers_by_their_sql_type() -> None:
    small, regular, big = (
        Annotated[int, msgspec.Meta(ge=-(2 ** (bits - 1)), le=2 ** (bits - 1) - 1)]
        for bits in (16, 32, 64)
    )
    assert bounded(int, "integer") == regular and bounded(int, "INT4") == regular
    assert bounded(int, "smallint") == small and bounded(int, "bigint") == big
    assert bounded(list[int], "integer[]") == list[regular]  # type: ignore[valid-type]
    assert bounded(list[int | None], "int8[]") == list[big | None]  # type: ignore[valid-type]
    positive = list[Annotated[int, msgspec.Meta(ge=0)]]
    for python_type, sql_type in [
        (int, "numeric(30)"),  # not a SQL integer: no bound of ours
        (bool, "boolean"),
        (Level, "integer"),  # an enum's values are its bounds
        (Literal[1, 2], "integer"),
        (dict[str, int], "jsonb"),
    ]:
        assert bounded(python_type, sql_type) == python_type
    # the user's msgspec.Meta is kept, merged with the SQL type's bounds
    assert bounded(positive, "integer[]") == list[Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]]

    s = nx.Schema("bounded")

    @s.table("Tally")
    class Tally(nx.IntIdColumns):
        small: nx.SmallInt
        count: int
        total: nx.BigInt | None
        level: Level = Level.LOW

    t = nx.table_of(Tally)
    hints = msgspec.structs.fields(t.insert_type)
    assert [(f.name, f.type) for f in hints] == [
        ("small", small),
        ("count", regular),
        ("total", big | None),
        ("level", Level),
    ]
    assert msgspec.structs.fields(t.update_type)[1].type == regular | msgspec.UnsetType
    assert msgspec.structs.fields(t.row_type)[2].type is int  # rows read back are not checked
    with pytest.raises(ValidationError, match="<= 32767") as info:
        t.validate_insert({"small": 2**15, "count": 1, "total": None})
    assert info.value.field == "small"


def test_table_of_rejects_undeclared_struct() -> None:
    class Loose(msgspec.Struct):
        x: int

    with pytest.raises(DeclarationError, match="Loose is not a declared table"):
        nx.table_of(Loose)


def test_a_column_marker_given_as_default_says_it_goes_in_the_annotation() -> None:
    s = nx.Schema("marker_default")
    with pytest.raises(DeclarationError) as info:

        @s.table("Tagged")
        class Tagged(msgspec.Struct):
            label: str = nx.Column(index=True)  # type: ignore[assignment]

    assert (info.value.table, info.value.column) == ("Tagged", "label")
    message = str(info.value)
    assert "a Column goes in the annotation" in message
    assert "`label: Annotated[str, nx.Column(index=True)]`" in message
    assert "server_default" not in message and "name=None" not in message
    assert repr(nx.Column(index=True, name="x")) == "Column(name='x', index=True)"

    with pytest.raises(DeclarationError, match=r"`qty: Annotated\[int, msgspec\.Meta\(ge=0\)\]`"):

        @s.table("Counted")
        class Counted(msgspec.Struct):
            qty: int = msgspec.Meta(ge=0)  # type: ignore[assignment]


def test_meta_constraints_of_one_type_merge_or_are_refused_at_declaration() -> None:
    s = nx.Schema("meta_merge")

    @s.table("Two")
    class Two(msgspec.Struct):
        n: Annotated[int, msgspec.Meta(ge=0), msgspec.Meta(le=5), nx.Column(sql_type="smallint")]

    fields = msgspec.structs.fields(nx.table_of(Two).insert_type)
    assert fields[0].type == Annotated[int, msgspec.Meta(ge=0, le=5)]
    with pytest.raises(DeclarationError, match=r"Clash\.n: two msgspec\.Meta set `ge`"):

        @s.table("Clash")
        class Clash(msgspec.Struct):
            n: Annotated[int, msgspec.Meta(ge=0), msgspec.Meta(ge=1)]
