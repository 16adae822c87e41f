"""DDL from declarations, applied to a real PostgreSQL and read back from the catalogs."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import msgspec
import psycopg
import pytest

import nxdata as nx
from nxdata.ddl import create_sql, create_statements, order_tables


class Tier(enum.Enum):
    FREE = "free"
    PRO = "pro"


class Plan(msgspec.Struct):
    tier: Tier
    seats: int


def declare_licensing(name: str) -> nx.Schema:
    """A small licensing schema exercising every column set and constraint kind."""
    s = nx.Schema(name)

    @s.table("Policy", uniques=[nx.Unique("code")])
    class Policy(nx.CommonColumns):
        code: str
        plan: Plan
        price: nx.Money
        tier: Tier = Tier.FREE
        max_seats: int = 5

    @s.table(
        "License",
        indexes=[
            nx.Index("status"),
            nx.Index("tags", method="gin"),
            nx.live_unique("license_key"),
            nx.Index("policy_id", "status", name="IDX_License_policy_status"),
        ],
        foreign_keys=[nx.ForeignKey("policy_id", Policy, on_delete="cascade", on_update="cascade")],
        checks=[nx.Check("seats >= 0", name="CK_License_seats")],
    )
    class License(nx.CommonColumns):
        policy_id: str
        license_key: str
        seats: int
        tags: list[str]
        expires_at: datetime | None
        status: str = "active"

    @s.table(
        "Activation",
        uniques=[nx.Unique("license_id", "fingerprint")],
        foreign_keys=[nx.ForeignKey("license_id", License, on_delete="restrict")],
    )
    class Activation(nx.common_columns(id="uuid7")):  # type: ignore[misc]
        license_id: str
        fingerprint: str

    @s.table(
        "LicenseEvent", foreign_keys=[nx.ForeignKey("license_id", License, on_delete="set null")]
    )
    class LicenseEvent(
        nx.compose(nx.id_columns("bigint"), nx.timestamp_columns(soft_delete=False))
    ):  # type: ignore[misc]
        license_id: str | None
        kind: str
        payload: dict[str, Any] = msgspec.field(default_factory=dict)

    @s.table("PolicyFeature")
    class PolicyFeature(nx.compose(nx.id_columns("int"), nx.value_columns())):  # type: ignore[misc]
        code: Annotated[str, nx.Column(unique=True)]
        ratio: Annotated[Decimal, nx.Column(sql_type="numeric(5, 2)", server_default="1.00")]

    return s


def apply(conn: psycopg.Connection[Any], s: nx.Schema) -> None:
    for statement in create_statements([s]):
        conn.execute(statement)


def columns(conn: psycopg.Connection[Any], schema: str, table: str) -> dict[str, tuple[Any, ...]]:
    rows = conn.execute(
        """
        select column_name, data_type, udt_name, is_nullable, column_default, is_identity,
               identity_generation, numeric_precision, numeric_scale
        from information_schema.columns
        where table_schema = %s and table_name = %s order by ordinal_position
        """,
        (schema, table),
    ).fetchall()
    return {r[0]: r[1:] for r in rows}


def constraints(conn: psycopg.Connection[Any], schema: str) -> dict[str, tuple[str, str]]:
    rows = conn.execute(
        """
        select c.conname, c.contype, pg_get_constraintdef(c.oid)
        from pg_constraint c join pg_namespace n on n.oid = c.connamespace
        where n.nspname = %s
        """,
        (schema,),
    ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def indexes(conn: psycopg.Connection[Any], schema: str) -> dict[str, str]:
    rows = conn.execute(
        "select indexname, indexdef from pg_indexes where schemaname = %s", (schema,)
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def test_ddl_builds_tables_read_back_from_catalog(
    conn: psycopg.Connection[Any], schema_name: str
) -> None:
    s = declare_licensing(schema_name)
    apply(conn, s)

    tables = {
        r[0]
        for r in conn.execute(
            "select table_name from information_schema.tables where table_schema = %s",
            (schema_name,),
        )
    }
    assert tables == {"Policy", "License", "Activation", "LicenseEvent", "PolicyFeature"}

    policy = columns(conn, schema_name, "Policy")
    assert list(policy) == [
        "id",
        "created_at",
        "modified_at",
        "deleted_at",
        "metadata",
        "code",
        "plan",
        "price",
        "tier",
        "max_seats",
    ]
    assert policy["id"][:3] == ("text", "text", "NO")
    assert policy["created_at"][0] == "timestamp with time zone"
    assert policy["created_at"][3] == "now()" and policy["modified_at"][3] == "now()"
    assert policy["deleted_at"][2] == "YES" and policy["metadata"][1] == "jsonb"
    assert policy["plan"][1] == "jsonb" and policy["plan"][2] == "NO"
    assert policy["price"][1] == "numeric" and policy["price"][6:8] == (19, 4)
    assert policy["tier"][3] == "'free'::text"
    assert policy["max_seats"][3] == "5"

    lic = columns(conn, schema_name, "License")
    assert lic["tags"][:2] == ("ARRAY", "_text")
    assert lic["expires_at"][2] == "YES" and lic["seats"][1] == "int4"

    event = columns(conn, schema_name, "LicenseEvent")
    assert event["id"][1] == "int8" and event["id"][4:6] == ("YES", "ALWAYS")
    assert "deleted_at" not in event

    feature = columns(conn, schema_name, "PolicyFeature")
    assert feature["id"][1] == "int4" and feature["id"][5] == "ALWAYS"
    assert feature["b_value"][1] == "bytea" and feature["n_value"][1] == "float8"
    assert feature["ratio"][6:8] == (5, 2) and feature["ratio"][3] == "1.00"

    cons = constraints(conn, schema_name)
    assert cons["PK_Policy"] == ("p", "PRIMARY KEY (id)")
    assert cons["UQ_Policy_code"] == ("u", "UNIQUE (code)")
    assert cons["CK_Policy_tier"][0] == "c" and "'free'" in cons["CK_Policy_tier"][1]
    assert cons["CK_License_seats"] == ("c", "CHECK ((seats >= 0))")
    assert cons["FK_License_policy_id_Policy_id"] == (
        "f",
        f'FOREIGN KEY (policy_id) REFERENCES {schema_name}."Policy"(id) '
        "ON UPDATE CASCADE ON DELETE CASCADE",
    )
    assert cons["FK_Activation_license_id_License_id"][1].endswith("ON DELETE RESTRICT")
    assert cons["FK_LicenseEvent_license_id_License_id"][1].endswith("ON DELETE SET NULL")
    assert cons["UQ_Activation_license_id_fingerprint"] == ("u", "UNIQUE (license_id, fingerprint)")
    assert cons["UQ_PolicyFeature_code"][0] == "u"

    idx = indexes(conn, schema_name)
    assert idx["IDX_License_status"].endswith("USING btree (status)")
    assert idx["IDX_License_tags"].endswith("USING gin (tags)")
    assert idx["UQ_License_license_key"].startswith("CREATE UNIQUE INDEX")
    assert idx["UQ_License_license_key"].endswith("(license_key) WHERE (deleted_at IS NULL)")
    assert idx["IDX_License_policy_status"].endswith("(policy_id, status)")


def test_constraints_enforced(conn: psycopg.Connection[Any], schema_name: str) -> None:
    s = declare_licensing(schema_name)
    apply(conn, s)
    q = f'"{schema_name}"'
    conn.execute(
        f"""insert into {q}."Policy" (id, code, plan, price) values ('p1', 'basic',
        '{{"tier": "free", "seats": 1}}', 10)"""
    )
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            f'insert into {q}."Policy" (id, code, plan, price, tier) '
            "values ('p2', 'x', '{}', 1, 'gold')"
        )
    ins = (
        f'insert into {q}."License" (id, policy_id, license_key, seats, tags) '
        "values (%s, %s, %s, %s, %s)"
    )
    conn.execute(ins, ("l1", "p1", "K1", 1, ["a"]))
    with pytest.raises(psycopg.errors.UniqueViolation):  # live unique
        conn.execute(ins, ("l2", "p1", "K1", 1, []))
    conn.execute(f"update {q}.\"License\" set deleted_at = now() where id = 'l1'")
    conn.execute(ins, ("l2", "p1", "K1", 1, []))  # the first is soft-deleted: allowed again
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute(ins, ("l3", "nope", "K3", 1, []))
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(ins, ("l4", "p1", "K4", -1, []))
    with pytest.raises(psycopg.errors.GeneratedAlways):
        conn.execute(f"insert into {q}.\"LicenseEvent\" (id, kind) values (1, 'x')")
    row = conn.execute(
        f"insert into {q}.\"LicenseEvent\" (license_id, kind) values ('l2', 'created') returning id"
    ).fetchone()
    assert row is not None and row[0] >= 1
    conn.execute(f"delete from {q}.\"License\" where id = 'l2'")  # set null on the event
    assert conn.execute(f'select license_id, payload from {q}."LicenseEvent"').fetchone() == (
        None,
        {},
    )
    conn.execute(f"delete from {q}.\"Policy\" where id = 'p1'")  # cascades to licenses
    assert conn.execute(f'select count(*) from {q}."License"').fetchone() == (0,)


def test_order_puts_fk_targets_first_and_defers_cycles(schema_name: str) -> None:
    s = nx.Schema(schema_name)

    @s.table("A", foreign_keys=[nx.ForeignKey("b_id", f"{schema_name}.B")])
    class A(nx.CommonColumns):
        b_id: str | None

    @s.table("B", foreign_keys=[nx.ForeignKey("a_id", A)])
    class B(nx.CommonColumns):
        a_id: str | None

    @s.table(
        "C",
        foreign_keys=[
            nx.ForeignKey("z_id", f"{schema_name}.Z"),
            nx.ForeignKey("parent_id", f"{schema_name}.C"),
        ],
    )
    class C(nx.CommonColumns):
        z_id: str
        parent_id: str | None

    @s.table("Z")
    class Z(nx.CommonColumns):
        pass

    ordered, deferred = order_tables(s.tables.values())
    names = [t.name for t in ordered]
    assert names.index("Z") < names.index("C")
    assert deferred == {(f"{schema_name}.A", "FK_A_b_id_B_id")}
    statements = create_statements([s])
    assert statements[-1].startswith(
        f'ALTER TABLE "{schema_name}"."A" ADD CONSTRAINT "FK_A_b_id_B_id"'
    )


def test_cyclic_and_cross_schema_ddl_applies(
    conn: psycopg.Connection[Any], schema_name: str
) -> None:
    other = nx.Schema(schema_name + "_x")
    s = nx.Schema(schema_name)

    @s.table("Order", foreign_keys=[nx.ForeignKey("wallet_id", f"{other.name}.Wallet")])
    class Order(nx.CommonColumns):
        wallet_id: str

    @other.table("Wallet", foreign_keys=[nx.ForeignKey("last_order_id", Order)])
    class Wallet(nx.CommonColumns):
        last_order_id: str | None

    try:
        for statement in create_statements([s, other]):
            conn.execute(statement)
        cons = constraints(conn, schema_name) | constraints(conn, other.name)
        assert cons["FK_Order_wallet_id_Wallet_id"][0] == "f"
        assert cons["FK_Wallet_last_order_id_Order_id"][0] == "f"
    finally:
        conn.execute(f'drop schema if exists "{other.name}" cascade')


def test_ddl_is_deterministic(schema_name: str) -> None:
    first = create_sql([declare_licensing(schema_name)])
    second = create_sql([declare_licensing(schema_name)])
    assert first == second
    policy = first.index(f'CREATE TABLE "{schema_name}"."Policy"')
    assert policy < first.index(f'CREATE TABLE "{schema_name}"."License"')


def test_extensions_are_created_first(conn: psycopg.Connection[Any], schema_name: str) -> None:
    s = nx.Schema(schema_name, extensions=["citext"])

    @s.table("Subscriber")
    class Subscriber(nx.CommonColumns):
        email: Annotated[nx.Citext, nx.Column(unique=True)]

    statements = create_statements([s])
    assert statements[0] == 'CREATE EXTENSION IF NOT EXISTS "citext"'
    available = conn.execute(
        "select 1 from pg_available_extensions where name = 'citext'"
    ).fetchone()
    if available is None:  # the embedded server ships only plpgsql and vector
        pytest.skip("citext is not installed on this server")
    for statement in statements:
        conn.execute(statement)
    q = f'"{schema_name}"."Subscriber"'
    conn.execute(f"insert into {q} (id, email) values ('1', 'A@Example.com')")
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(f"insert into {q} (id, email) values ('2', 'a@example.COM')")


def test_server_side_defaults_fill_omitted_columns(
    conn: psycopg.Connection[Any], schema_name: str
) -> None:
    s = nx.Schema(schema_name)

    @s.table("Token")
    class Token(msgspec.Struct):
        id: Annotated[uuid.UUID, nx.Column(primary_key=True, server_default="gen_random_uuid()")]
        seq: Annotated[int, nx.Column(identity="by default")]
        issued_at: Annotated[datetime, nx.Column(server_default="now()")]
        active: bool = True
        note: str = "it's"

    t = nx.table_of(Token)
    assert set(t.insert_type.__struct_fields__) == {"id", "seq", "issued_at", "active", "note"}
    assert t.validate_insert({}).id is msgspec.UNSET  # type: ignore[attr-defined]
    for statement in create_statements([s]):
        conn.execute(statement)
    row = conn.execute(
        f'insert into "{schema_name}"."Token" default values '
        "returning id, seq, issued_at, active, note"
    ).fetchone()
    assert row is not None
    assert isinstance(row[0], uuid.UUID) and row[0].version == 4
    assert row[1] == 1 and isinstance(row[2], datetime) and row[3] is True and row[4] == "it's"
    row = conn.execute(
        f'insert into "{schema_name}"."Token" (seq) values (41) returning seq'
    ).fetchone()
    assert row == (41,)  # identity BY DEFAULT accepts explicit values


def test_expression_index(conn: psycopg.Connection[Any], schema_name: str) -> None:
    s = nx.Schema(schema_name)

    @s.table(
        "Member",
        indexes=[
            nx.Index(
                expression="lower(email)",
                name="UQ_Member_email_lower",
                unique=True,
                where="deleted_at IS NULL",
            ),
            nx.Index(expression="(metadata ->> 'plan')", name="IDX_Member_plan"),
        ],
    )
    class Member(nx.CommonColumns):
        email: str

    for statement in create_statements([s]):
        conn.execute(statement)
    idx = indexes(conn, schema_name)
    assert idx["UQ_Member_email_lower"].endswith("(lower(email)) WHERE (deleted_at IS NULL)")
    assert idx["IDX_Member_plan"].endswith("(((metadata ->> 'plan'::text)))")
    q = f'"{schema_name}"."Member"'
    conn.execute(f"insert into {q} (id, email) values ('1', 'A@x.org')")
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(f"insert into {q} (id, email) values ('2', 'a@X.org')")

    with pytest.raises(nx.errors.DeclarationError, match="needs name="):

        @s.table("Bad", indexes=[nx.Index(expression="lower(x)")])
        class Bad(msgspec.Struct):
            x: str
