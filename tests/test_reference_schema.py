"""The reference schema builds on a real PostgreSQL with every declared table and constraint."""

from __future__ import annotations

import io
import secrets
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from nxdata import cli
from nxdata.ddl import create_statements
from nxdata.table import Table
from schema import SCHEMAS

EXPECTED_TABLES = {
    "public": 15,
    "identity": 8,
    "pricing": 11,
    "sale": 9,
    "inventory": 12,
    "allocation": 4,
    "finance": 3,
    "payment": 1,
    "ledger": 2,
    "licensing": 5,
    "outreach": 2,
}
_ACTION_CODES = {
    "a": "no action",
    "r": "restrict",
    "c": "cascade",
    "n": "set null",
    "d": "set default",
}

Conn = psycopg.Connection[tuple[Any, ...]]


def _tables() -> list[Table[Any]]:
    return [table for schema in SCHEMAS for table in schema]


@pytest.fixture(scope="module")
def built_url(admin_url: str) -> Iterator[str]:
    """A fresh database built from ``create_statements(SCHEMAS)``, shared by this module."""
    name = f"nxdata_ref_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_conninfo(admin_url, dbname=name)
    try:
        with psycopg.connect(url) as conn, conn.transaction():
            for statement in create_statements(SCHEMAS):
                conn.execute(statement)  # type: ignore[arg-type]
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def cat(built_url: str) -> Iterator[Conn]:
    """A connection on the built database (autocommit, for catalogue reads)."""
    with psycopg.connect(built_url, autocommit=True) as conn:
        yield conn


def _constraints(conn: Conn) -> dict[tuple[str, str, str], tuple[str, str | None, str | None]]:
    """(schema, table, constraint) → (type, referenced schema.table, on-delete code)."""
    rows = conn.execute(
        """
        SELECT n.nspname, c.relname, con.conname, con.contype,
               rn.nspname || '.' || rc.relname, con.confdeltype
        FROM pg_constraint con
        JOIN pg_class c ON c.oid = con.conrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_class rc ON rc.oid = con.confrelid
        LEFT JOIN pg_namespace rn ON rn.oid = rc.relnamespace
        WHERE n.nspname = ANY(%s) AND con.contype IN ('p', 'u', 'c', 'f')
        """,
        [list(EXPECTED_TABLES)],
    ).fetchall()
    return {(r[0], r[1], r[2]): (r[3], r[4], r[5]) for r in rows}


def _indexes(conn: Conn) -> dict[tuple[str, str, str], str]:
    """(schema, table, index) → index definition, for indexes that back no constraint."""
    rows = conn.execute(
        """
        SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes i
        WHERE schemaname = ANY(%s)
          AND NOT EXISTS (SELECT 1 FROM pg_constraint con
                          WHERE con.conindid = (quote_ident(i.schemaname) || '.'
                                                || quote_ident(i.indexname))::regclass)
        """,
        [list(EXPECTED_TABLES)],
    ).fetchall()
    return {(r[0], r[1], r[2]): r[3] for r in rows}


def test_declarations_count_72_tables_in_11_schemas() -> None:
    assert SCHEMAS[0].name == "public"
    assert {s.name: len(s.tables) for s in SCHEMAS} == EXPECTED_TABLES
    assert sum(EXPECTED_TABLES.values()) == 72


def test_schemas_are_listed_in_dependency_order() -> None:
    position = {schema.name: i for i, schema in enumerate(SCHEMAS)}
    for table in _tables():
        for fk in table.foreign_keys:
            assert position[fk.target.schema.name] <= position[table.schema.name], (
                f"{table.qualified_name} → {fk.target.qualified_name}"
            )


def test_database_has_exactly_the_11_schemas(cat: Conn) -> None:
    rows = cat.execute(
        "SELECT nspname FROM pg_namespace"
        " WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'"
    ).fetchall()
    assert sorted(r[0] for r in rows) == sorted(EXPECTED_TABLES)


def test_database_has_72_tables_with_per_schema_counts(cat: Conn) -> None:
    rows = cat.execute(
        "SELECT table_schema, table_name FROM information_schema.tables"
        " WHERE table_type = 'BASE TABLE' AND table_schema = ANY(%s)",
        [list(EXPECTED_TABLES)],
    ).fetchall()
    assert len(rows) == 72
    assert Counter(r[0] for r in rows) == Counter(EXPECTED_TABLES)
    assert {(r[0], r[1]) for r in rows} == {(t.schema.name, t.name) for t in _tables()}


def test_every_declared_constraint_exists_by_name(cat: Conn) -> None:
    found = _constraints(cat)
    expected: dict[tuple[str, str, str], tuple[str, str | None, str | None]] = {}
    for t in _tables():
        key = (t.schema.name, t.name)
        expected[(*key, f"PK_{t.name}")] = ("p", None, " ")
        for u in t.uniques:
            expected[(*key, u.name or "")] = ("u", None, " ")
        for c in t.checks:
            expected[(*key, c.name or "")] = ("c", None, " ")
        for fk in t.foreign_keys:
            expected[(*key, fk.name)] = ("f", fk.target.qualified_name, fk.on_delete)
    assert set(found) == set(expected), "constraints differ from the declarations"
    for name, (kind, target, action) in expected.items():
        got_kind, got_target, got_action = found[name]
        assert got_kind == kind, name
        if kind == "f":
            assert got_target == target, name
            assert _ACTION_CODES[got_action or "a"] == action, name


def test_every_declared_index_exists_by_name(cat: Conn) -> None:
    found = _indexes(cat)
    expected = {(t.schema.name, t.name, i.name or ""): (t, i) for t in _tables() for i in t.indexes}
    assert set(found) == set(expected)
    for name, (_table, index) in expected.items():
        definition = found[name]
        assert definition.startswith("CREATE UNIQUE INDEX" if index.unique else "CREATE INDEX")
        assert f"USING {index.method or 'btree'}" in definition, name
        assert (" WHERE " in definition) == (index.where is not None), name


def test_names_follow_the_conventions(cat: Conn) -> None:
    for (_schema, table, name), (kind, _t, _a) in _constraints(cat).items():
        prefix = {"p": "PK", "u": "UQ", "c": "CK", "f": "FK"}[kind]
        assert name.startswith(f"{prefix}_{table}"), name
    for _schema, table, name in _indexes(cat):
        assert name.startswith((f"IDX_{table}_", f"UQ_{table}_")), name
    names = {k[2] for k in _constraints(cat)} | {k[2] for k in _indexes(cat)}
    for example in (
        "IDX_License_status",
        "FK_License_policy_id_Policy_id",
        "UQ_Activation_license_id_fingerprint",
        "UQ_License_license_key",
        "CK_Wallet_balance",
    ):
        assert example in names


def test_cross_schema_foreign_keys_exist(cat: Conn) -> None:
    cross = {
        (schema, name): target
        for (schema, _table, name), (kind, target, _a) in _constraints(cat).items()
        if kind == "f" and target is not None and not target.startswith(schema + ".")
    }
    for schema, name, target in [
        ("licensing", "FK_License_merchant_id_Merchant_id", "public.Merchant"),
        ("licensing", "FK_License_sale_order_id_SaleOrder_id", "sale.SaleOrder"),
        ("sale", "FK_SaleOrderItem_event_seat_id_EventSeat_id", "allocation.EventSeat"),
        ("sale", "FK_SaleOrderItem_fare_id_Fare_id", "pricing.Fare"),
        (
            "sale",
            "FK_SaleOrder_fulfillment_location_id_StockLocation_id",
            "inventory.StockLocation",
        ),
        ("finance", "FK_TransactionRecord_sale_order_id_SaleOrder_id", "sale.SaleOrder"),
        ("identity", "FK_UserCredential_user_id_User_id", "public.User"),
    ]:
        assert cross.get((schema, name)) == target, name
    # Every schema but public reaches into another one.
    assert {schema for schema, _ in cross} == set(EXPECTED_TABLES) - {"public"}


def test_money_is_numeric_never_float(cat: Conn) -> None:
    rows = cat.execute(
        "SELECT table_schema, table_name, column_name, data_type, numeric_precision, numeric_scale"
        " FROM information_schema.columns WHERE table_schema = ANY(%s)"
        " AND column_name ~ '(amount|price|total|balance|cost)' AND column_name !~ '_id$'",
        [list(EXPECTED_TABLES)],
    ).fetchall()
    assert len(rows) > 20
    for row in rows:
        assert row[3:] == ("numeric", 19, 4), row
    floats = cat.execute(
        "SELECT table_name || '.' || column_name FROM information_schema.columns"
        " WHERE table_schema = ANY(%s) AND data_type IN ('double precision', 'real')",
        [list(EXPECTED_TABLES)],
    ).fetchall()
    # Only the polymorphic feature value and seat coordinates are floats.
    assert sorted(r[0] for r in floats) == ["LayoutSeat.x", "LayoutSeat.y", "PolicyFeature.n_value"]


def test_license_event_is_hard_deleted_with_a_bigint_identity(cat: Conn) -> None:
    rows = cat.execute(
        "SELECT column_name, data_type, is_identity, identity_generation"
        " FROM information_schema.columns"
        " WHERE table_schema = 'licensing' AND table_name = 'LicenseEvent'"
    ).fetchall()
    columns = {r[0]: r[1:] for r in rows}
    assert columns["id"] == ("bigint", "YES", "ALWAYS")
    assert {"created_at", "modified_at"} <= set(columns)
    assert "deleted_at" not in columns


def test_policy_feature_has_the_polymorphic_value_columns(cat: Conn) -> None:
    rows = cat.execute(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = 'licensing' AND table_name = 'PolicyFeature'"
    ).fetchall()
    columns = dict(rows)
    assert {k: columns[k] for k in ("data_type", "n_value", "t_value", "bo_value")} == {
        "data_type": "text",
        "n_value": "double precision",
        "t_value": "text",
        "bo_value": "boolean",
    }
    assert (columns["j_value"], columns["b_value"]) == ("jsonb", "bytea")
    assert "deleted_at" in columns and "metadata" in columns


def test_constraints_hold_rows(built_url: str) -> None:
    """Live uniques, enum CHECKs and the wallet balance CHECK act on real rows."""
    with psycopg.connect(built_url) as conn:
        try:
            conn.execute(
                """INSERT INTO "public"."Merchant" (id, code, name) VALUES ('m1', 'M', 'M')"""
            )
            conn.execute(
                """INSERT INTO "licensing"."Policy" (id, code, name) VALUES ('p1', 'basic', 'B')"""
            )
            conn.execute(
                """INSERT INTO "licensing"."License" (id, policy_id, merchant_id, license_key)
                   VALUES ('l1', 'p1', 'm1', 'K-1')"""
            )
            insert_activation = (
                """INSERT INTO "licensing"."Activation" (id, license_id, fingerprint)"""
                """ VALUES (%s, 'l1', 'fp')"""
            )
            conn.execute(insert_activation, ["a1"])
            with pytest.raises(psycopg.errors.UniqueViolation), conn.transaction():
                conn.execute(insert_activation, ["a2"])
            conn.execute(
                """UPDATE "licensing"."Activation" SET deleted_at = now() WHERE id = 'a1'"""
            )
            conn.execute(insert_activation, ["a3"])  # a soft-deleted row frees the key
            with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
                conn.execute("""UPDATE "licensing"."License" SET status = 'bogus'""")
            conn.execute(
                """INSERT INTO "finance"."Wallet" (id, merchant_id, owner_type, owner_id, name,
                   balance) VALUES ('w1', 'm1', 'merchant', 'm1', 'Main', 10)"""
            )
            with pytest.raises(psycopg.errors.CheckViolation) as info, conn.transaction():
                conn.execute("""UPDATE "finance"."Wallet" SET balance = balance - 11""")
            assert info.value.diag.constraint_name == "CK_Wallet_balance"
            conn.execute(
                """INSERT INTO "licensing"."LicenseEvent" (license_id, kind)
                   VALUES ('l1', 'issued')"""
            )
            assert conn.execute(
                """DELETE FROM "licensing"."LicenseEvent" RETURNING id"""
            ).fetchall() == [(1,)]
        finally:
            conn.rollback()


def test_seeds_load_permissions_idempotently_and_demo_data_once(built_url: str) -> None:
    from schema.processes import PERMISSIONS, seed_demo_data, seed_permissions

    with psycopg.connect(built_url) as conn:
        try:
            assert seed_permissions(conn) == len(PERMISSIONS)
            assert seed_permissions(conn) == len(PERMISSIONS)  # always-run: a second run is a no-op
            count = conn.execute("""SELECT count(*) FROM "public"."Permission" """).fetchone()
            assert count == (len(PERMISSIONS),)
            owner_links = conn.execute(
                """SELECT count(*) FROM "public"."RolePermission" rp
                   JOIN "public"."Role" r ON r.id = rp.role_id WHERE r.code = 'owner'"""
            ).fetchone()
            assert owner_links == (len(PERMISSIONS),)
            ids = seed_demo_data(conn)
            balances = conn.execute(
                """SELECT sum(balance) FROM "finance"."Wallet" WHERE id = ANY(%s)""",
                [[ids["wallet:CAFE"], ids["wallet:TIX"], ids["wallet:bob"]]],
            ).fetchone()
            assert balances == (Decimal("1290.0000"),)
            features = conn.execute(
                """SELECT code, data_type, n_value, t_value, bo_value, j_value
                   FROM "licensing"."PolicyFeature" ORDER BY code"""
            ).fetchall()
            assert [f[:2] for f in features] == [
                ("max_devices", "NUMBER"),
                ("offline_mode", "BOOLEAN"),
                ("receipt_layout", "JSON"),
                ("support_tier", "TEXT"),
            ]
            licenses = conn.execute(
                """SELECT count(*) FROM "licensing"."License" WHERE status = 'active'"""
            ).fetchone()
            assert licenses == (2,)
            assert seed_demo_data(conn) == {}  # meeting its own data, it writes nothing
            assert conn.execute("""SELECT count(*) FROM "finance"."Wallet" """).fetchone() == (3,)
        finally:
            conn.rollback()


MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def _cli(*args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    status = cli.main(list(args), out=out, err=err)
    return status, out.getvalue() + err.getvalue()


def test_committed_migrations_build_the_declared_database(fresh_database_url: str) -> None:
    """``nxdata migrate --all`` on an empty database from the committed files, then
    ``nxdata check --all`` is clean and ``nxdata diff --all`` has nothing to write."""
    where = ["--url", fresh_database_url, "--models", "schema", "--migrations-dir", str(MIGRATIONS)]
    assert sorted(p.name for p in MIGRATIONS.iterdir() if p.is_dir()) == sorted(EXPECTED_TABLES)
    status, output = _cli("migrate", "--all", *where)
    assert status == 0, output
    for schema in EXPECTED_TABLES:
        assert f"applied  {schema}/0001_initial" in output
    assert "public-0001-seed-permissions" in output and "public-0002-seed-demo-data" in output

    status, output = _cli("check", "--all", *where)
    assert status == 0, output
    status, output = _cli("diff", "--all", "--dry-run", *where)
    assert status == 0, output
    assert "create table" not in output.lower() and "alter table" not in output.lower()

    # A second migrate applies no file and re-runs only the always-run permissions seed.
    status, output = _cli("migrate", "--all", *where)
    assert status == 0, output
    assert "applying" not in output
    assert "public-0001-seed-permissions" in output
    assert "public-0002-seed-demo-data" not in output
    with psycopg.connect(fresh_database_url) as conn:
        count = conn.execute(
            "SELECT count(*) FROM information_schema.tables"
            " WHERE table_type = 'BASE TABLE' AND table_schema = ANY(%s)",
            [list(EXPECTED_TABLES)],
        ).fetchone()
        assert count == (72,)
        wallets = conn.execute("""SELECT count(*) FROM "finance"."Wallet" """).fetchone()
        assert wallets == (3,)
