"""Citus-ready declarations: the checks Citus requires, the SQL that distributes the tables (in
the DDL and in the files ``nxdata diff`` writes), that SQL on plain PostgreSQL, and — when the
server has the ``citus`` extension — the same migrations and repository calls on Citus."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import msgspec
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

import nxdata as nx
from nxdata.citus import distribution_statement
from nxdata.errors import DeclarationError, MigrationError
from nxdata.migrations import load_models
from nxdata.migrations.citus import CitusTable, citus_tables, distribute
from nxdata.migrations.generate import check_drift, generate_migrations
from nxdata.migrations.runner import migrate
from tests.conftest import create_database, drop_database
from tests.migration_models.helpers import query, write_models


def declare_saas(name: str) -> nx.Schema:
    """Plans (a reference table), invoices and their lines (distributed by tenant, co-located),
    and a local audit table that references the plans."""
    s = nx.Schema(name)

    @s.table("Plan", reference_table=True)
    class Plan(nx.IdColumns):
        name: str

    @s.table(
        "Invoice",
        distributed_by="tenant_id",
        uniques=[nx.Unique("tenant_id", "number")],
        foreign_keys=[nx.ForeignKey("plan_id", Plan)],
    )
    class Invoice(msgspec.Struct, kw_only=True):
        tenant_id: Annotated[str, nx.Column(primary_key=True)]
        id: Annotated[str, nx.Column(primary_key=True, default_factory=nx.new_id)]
        number: int
        plan_id: str

    @s.table(
        "InvoiceLine",
        distributed_by="tenant_id",
        foreign_keys=[nx.ForeignKey(("tenant_id", "invoice_id"), Invoice, on_delete="cascade")],
    )
    class InvoiceLine(msgspec.Struct, kw_only=True):
        tenant_id: Annotated[str, nx.Column(primary_key=True)]
        id: Annotated[int, nx.Column(sql_type="bigint", primary_key=True, identity="always")]
        invoice_id: str
        amount: nx.Money

    @s.table("PlanAudit", foreign_keys=[nx.ForeignKey("plan_id", Plan)])
    class PlanAudit(nx.BigIntIdColumns):
        plan_id: str
        note: str

    return s


# -- what Citus requires -----------------------------------------------------------------------


def test_a_valid_cluster_declares() -> None:
    s = declare_saas("ct_valid")
    invoice = s.tables["Invoice"]
    assert (invoice.distributed_by, invoice.reference_table) == ("tenant_id", False)
    assert (s.tables["Plan"].distributed_by, s.tables["Plan"].reference_table) == (None, True)
    assert s.tables["PlanAudit"].distributed_by is None
    assert [fk.name for fk in s.tables["InvoiceLine"].foreign_keys] == [
        "FK_InvoiceLine_tenant_id_invoice_id_Invoice_tenant_id_id"
    ]


def test_distributed_and_partitioned() -> None:
    """Citus distributes partitioned tables: the keys then hold both columns."""
    s = nx.Schema("ct_partitioned")

    @s.table(
        "Event",
        distributed_by="tenant_id",
        partition_by=nx.PartitionBy.range("created_at", nx.monthly_partitions("2026-01", 2)),
    )
    class Event(msgspec.Struct, kw_only=True):
        tenant_id: Annotated[str, nx.Column(primary_key=True)]
        id: nx.BigIntIdentity
        created_at: Annotated[datetime, nx.Column(primary_key=True, server_default="now()")]

    table = nx.table_of(Event)
    assert table.distributed_by == "tenant_id" and table.partitioning is not None
    with pytest.raises(
        DeclarationError, match=r"PK_Log \(tenant_id, id\) must include the partition"
    ):

        @s.table(
            "Log",
            distributed_by="tenant_id",
            partition_by=nx.PartitionBy.range("created_at", nx.monthly_partitions("2026-01", 2)),
        )
        class Log(msgspec.Struct, kw_only=True):
            tenant_id: Annotated[str, nx.Column(primary_key=True)]
            id: nx.BigIntIdentity
            created_at: nx.CreatedAt


def _declare(schema: str, **options: Any) -> None:
    s = nx.Schema(schema)

    @s.table("Order", **options)
    class Order(msgspec.Struct, kw_only=True):
        tenant_id: Annotated[str, nx.Column(primary_key=True)]
        id: Annotated[str, nx.Column(primary_key=True)]
        code: str
        region: str | None = None
        data: dict[str, Any] | None = None


@pytest.mark.parametrize(
    ("options", "message", "column"),
    [
        ({"distributed_by": "nope"}, "distributed_by names unknown column 'nope'", "nope"),
        ({"distributed_by": "region"}, "the distribution column must be NOT NULL", "region"),
        (
            {"distributed_by": "code"},
            r"primary key PK_Order \(tenant_id, id\) must include the distribution column 'code'",
            "code",
        ),
        (
            {"distributed_by": "tenant_id", "uniques": [nx.Unique("code")]},
            r"unique constraint UQ_Order_code \(code\) must include the distribution column",
            "tenant_id",
        ),
        (
            {"distributed_by": "tenant_id", "indexes": [nx.live_unique("code")]},
            r"unique index UQ_Order_code \(code\) must include the distribution column",
            "tenant_id",
        ),
        (
            {"distributed_by": "tenant_id", "reference_table": True},
            "either distributed .* or a reference table",
            None,
        ),
        (
            {
                "reference_table": True,
                "partition_by": nx.PartitionBy.list(
                    "tenant_id", [nx.Partition("a", values=("a",))]
                ),
            },
            "a reference table cannot be partitioned",
            None,
        ),
    ],
)
def test_own_keys_are_checked(options: dict[str, Any], message: str, column: str | None) -> None:
    with pytest.raises(DeclarationError, match=message) as caught:
        _declare("ct_keys", **options)
    assert caught.value.table == "ct_keys.Order"
    assert caught.value.column == column


def test_identity_columns_are_bigint() -> None:
    s = nx.Schema("ct_identity")
    with pytest.raises(
        DeclarationError, match="identity column of a reference table must be bigint"
    ):

        @s.table("Country", reference_table=True)
        class Country(nx.IntIdColumns):
            name: str

    @s.table("Currency", reference_table=True)
    class Currency(nx.BigIntIdColumns):
        code: str


def test_foreign_keys_follow_citus_rules() -> None:
    s = nx.Schema("ct_fk")

    @s.table("Plan", reference_table=True)
    class Plan(nx.IdColumns):
        name: str

    @s.table("Local")
    class Local(nx.IdColumns):
        name: str

    @s.table("Account", distributed_by="tenant_id")
    class Account(msgspec.Struct, kw_only=True):
        tenant_id: Annotated[str, nx.Column(primary_key=True)]
        id: Annotated[str, nx.Column(primary_key=True)]

    def distributed(name: str, *fks: nx.ForeignKey) -> None:
        @s.table(name, distributed_by="tenant_id", foreign_keys=list(fks))
        class Child(msgspec.Struct, kw_only=True):
            tenant_id: Annotated[str, nx.Column(primary_key=True)]
            id: Annotated[str, nx.Column(primary_key=True)]
            account_id: str
            ref_id: str

    # to a reference table, and between co-located distributed tables: fine
    distributed(
        "Ok",
        nx.ForeignKey("ref_id", Plan),
        nx.ForeignKey(("tenant_id", "account_id"), Account),
    )
    with pytest.raises(DeclarationError, match="must include both distribution columns") as caught:
        distributed("NoTenant", nx.ForeignKey(("account_id", "ref_id"), Account))
    assert caught.value.table == "ct_fk.NoTenant" and caught.value.column == "tenant_id"
    assert "NoTenant" not in s.tables  # refused whole: a corrected declaration may follow
    with pytest.raises(DeclarationError, match="a distributed table cannot reference a local"):
        distributed("ToLocal", nx.ForeignKey("ref_id", Local))
    with pytest.raises(DeclarationError, match="a reference table cannot reference a distributed"):

        @s.table(
            "Bad", reference_table=True, foreign_keys=[nx.ForeignKey(("tenant_id", "id"), Account)]
        )
        class Bad(msgspec.Struct, kw_only=True):
            tenant_id: str
            id: Annotated[str, nx.Column(primary_key=True)]

    with pytest.raises(DeclarationError, match="a local table cannot reference a distributed"):

        @s.table("LocalToAccount", foreign_keys=[nx.ForeignKey(("tenant_id", "id"), Account)])
        class LocalToAccount(msgspec.Struct, kw_only=True):
            tenant_id: str
            id: Annotated[str, nx.Column(primary_key=True)]

    # local and reference tables may reference each other
    @s.table("PlanNote", reference_table=True, foreign_keys=[nx.ForeignKey("local_id", Local)])
    class PlanNote(nx.BigIntIdColumns):
        local_id: str

    @s.table("LocalNote", foreign_keys=[nx.ForeignKey("plan_id", Plan)])
    class LocalNote(nx.BigIntIdColumns):
        plan_id: str


def test_a_foreign_key_to_a_table_declared_later_is_checked_when_it_is() -> None:
    s = nx.Schema("ct_later")

    @s.table(
        "Line", distributed_by="tenant_id", foreign_keys=[nx.ForeignKey("sku", "ct_later.Sku")]
    )
    class Line(msgspec.Struct, kw_only=True):
        tenant_id: Annotated[str, nx.Column(primary_key=True)]
        id: Annotated[str, nx.Column(primary_key=True)]
        sku: str

    with pytest.raises(
        DeclarationError, match=r"FK_Line_sku_Sku_code to ct_later\.Sku: a distributed"
    ):

        @s.table("Sku")
        class Sku(msgspec.Struct, kw_only=True):
            code: Annotated[str, nx.Column(primary_key=True)]

    @s.table("Sku", reference_table=True)
    class SkuFixed(msgspec.Struct, kw_only=True):
        code: Annotated[str, nx.Column(primary_key=True)]

    assert s.tables["Line"].foreign_keys[0].target is nx.table_of(SkuFixed)


# -- the SQL -----------------------------------------------------------------------------------


def test_ddl_distributes_after_the_tables_and_before_foreign_keys() -> None:
    s = declare_saas("ct_ddl")
    assert "create_distributed_table" not in nx.create_sql([s])  # only when asked
    statements = nx.create_statements([s], distribute=True)
    calls = [i for i, x in enumerate(statements) if x.startswith("DO $nxdata_citus$")]
    tables = [i for i, x in enumerate(statements) if x.startswith("CREATE TABLE")]
    foreign = [i for i, x in enumerate(statements) if "FOREIGN KEY" in x]
    assert max(tables) < min(calls) and max(calls) < min(foreign)
    assert not any("FOREIGN KEY" in x for x in statements if x.startswith("CREATE TABLE"))
    texts = [statements[i] for i in calls]
    assert 'PERFORM create_reference_table(\'"ct_ddl"."Plan"\')' in texts[0]
    assert "PERFORM create_distributed_table('\"ct_ddl\".\"Invoice\"', 'tenant_id')" in texts[1]
    assert "create_distributed_table('\"ct_ddl\".\"InvoiceLine\"', 'tenant_id')" in texts[2]
    assert len(texts) == 3  # PlanAudit is local


def test_distribution_sql_is_idempotent_and_quoted() -> None:
    s = nx.Schema("ct_quote")

    @s.table('It\'s "odd"', distributed_by="Tenant Id")
    class Odd(msgspec.Struct, kw_only=True):
        tenant: Annotated[str, nx.Column(name="Tenant Id", primary_key=True)]

    text = distribution_statement(nx.table_of(Odd))
    assert text is not None
    assert 'create_distributed_table(\'"ct_quote"."It\'\'s ""odd"""\', \'Tenant Id\')' in text
    assert 'WHERE logicalrelid = \'"ct_quote"."It\'\'s ""odd"""\'::regclass' in text
    assert "AND partmethod = 'h'" in text  # already distributed: left as it is


def test_on_plain_postgresql_the_tables_stay_local(
    conn: psycopg.Connection[Any], schema_name: str
) -> None:
    s = declare_saas(schema_name)
    notices: list[str] = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    for statement in nx.create_statements([s], distribute=True):
        conn.execute(statement)
    assert notices == [
        f"nxdata: citus is not installed: {schema_name}.Plan stays a local table (declared a "
        "reference table)",
        f"nxdata: citus is not installed: {schema_name}.Invoice stays a local table (declared "
        "distributed by tenant_id)",
        f"nxdata: citus is not installed: {schema_name}.InvoiceLine stays a local table "
        "(declared distributed by tenant_id)",
    ]
    assert citus_tables(conn) is None


def test_diff_against_an_existing_citus_state() -> None:
    """What the diff adds for tables that exist, from what ``pg_dist_partition`` says."""
    s = declare_saas("ct_state")
    none: list[str] = []
    assert distribute(none, s, None) == []  # no Citus: existing tables are as the first file left
    held = {
        "ct_state.Plan": CitusTable("reference"),
        "ct_state.Invoice": CitusTable("local"),  # a Citus local table: distributed still
        "ct_state.InvoiceLine": CitusTable("distributed", "invoice_id"),
    }
    added = distribute(
        ["alter table x add constraint y foreign key (a) references z (b);"], s, held
    )
    assert "create_distributed_table('\"ct_state\".\"Invoice\"', 'tenant_id')" in added[0]
    assert added[1] == (
        'SELECT alter_distributed_table(\'"ct_state"."InvoiceLine"\', '
        "distribution_column := 'tenant_id');"
    )
    assert added[2].startswith("alter table x")  # before the foreign keys
    held["ct_state.Plan"] = CitusTable("distributed", "id")
    with pytest.raises(MigrationError, match=r"ct_state\.Plan is a distributed table in Citus"):
        distribute([], s, held)


MODELS = """
{schema} = nx.Schema("{schema}")


@{schema}.table("Plan", reference_table=True)
class Plan(nx.IdColumns):
    name: str


@{schema}.table(
    "Invoice",
    distributed_by="tenant_id",
    uniques=[nx.Unique("tenant_id", "number")],
    foreign_keys=[nx.ForeignKey("plan_id", Plan)],
)
class Invoice(msgspec.Struct, kw_only=True):
    tenant_id: Annotated[str, Column(primary_key=True)]
    id: Annotated[str, Column(primary_key=True, default_factory=nx.new_id)]
    number: int
    plan_id: str
    status: str = "open"


@{schema}.table(
    "InvoiceLine",
    distributed_by="tenant_id",
    foreign_keys=[nx.ForeignKey(("tenant_id", "invoice_id"), Invoice, on_delete="cascade")],
)
class InvoiceLine(msgspec.Struct, kw_only=True):
    tenant_id: Annotated[str, Column(primary_key=True)]
    id: Annotated[int, Column(sql_type="bigint", primary_key=True, identity="always")]
    invoice_id: str
    amount: nx.Money
"""


def _models(root: Path, schema: str) -> Any:
    return load_models(write_models(root / "pkgs", MODELS.format(schema=schema)))


def test_generated_migration_distributes_new_tables(
    fresh_database_url: str, tmp_path: Path
) -> None:
    schema = f"cm_{secrets.token_hex(3)}"
    declared = _models(tmp_path, schema)
    root = tmp_path / "migrations"
    [generated] = generate_migrations(fresh_database_url, declared, root, label="saas")
    lines = generated.text.split("\n\n")
    at = {
        "last table": max(i for i, x in enumerate(lines) if x.startswith("create table")),
        "last key": max(i for i, x in enumerate(lines) if "PRIMARY KEY" in x or "UNIQUE" in x),
        "reference": next(i for i, x in enumerate(lines) if "create_reference_table" in x),
        "distributed": next(i for i, x in enumerate(lines) if "create_distributed_table" in x),
        "first fk": min(i for i, x in enumerate(lines) if "FOREIGN KEY" in x),
    }
    assert at["last table"] < at["reference"] and at["last key"] < at["reference"], at
    assert at["reference"] < at["distributed"] < at["first fk"], at
    assert generated.text.count("PERFORM create_distributed_table(") == 2
    # On plain PostgreSQL the file applies (the tables stay local), and the diff is then empty:
    # the distribution is not drift where Citus is not.
    migrate(fresh_database_url, root)
    assert check_drift(fresh_database_url, declared) == []
    assert generate_migrations(fresh_database_url, declared, root) == []


# -- on Citus ----------------------------------------------------------------------------------


@pytest.fixture
def citus_url(admin_url: str) -> Iterator[str]:
    """A database with the ``citus`` extension, or a skip saying why there is none."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        available = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'citus'"
        ).fetchone()
    if available is None:
        pytest.skip(
            "Citus integration not run: this PostgreSQL server has no citus extension "
            "(pg_available_extensions has no 'citus'); the checks and the emitted SQL are "
            "tested above without it"
        )
    name = create_database(admin_url, "nxdata_citus")
    url = make_conninfo(admin_url, dbname=name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            try:
                conn.execute("CREATE EXTENSION citus")
            except psycopg.Error as exc:
                pytest.skip(
                    "Citus integration not run: the citus extension is available but cannot "
                    f"be created ({str(exc).strip().splitlines()[0]}; it needs "
                    "shared_preload_libraries = 'citus')"
                )
            # A single-node cluster: the coordinator holds the shards too.
            host = conninfo_to_dict(url).get("host") or "localhost"
            port = int(conninfo_to_dict(url).get("port") or 5432)
            with contextlib.suppress(psycopg.Error):
                conn.execute("SELECT citus_set_coordinator_host(%s, %s)", [host, port])
        yield url
    finally:
        drop_database(admin_url, name)


def test_migrations_and_repositories_on_citus(citus_url: str, tmp_path: Path) -> None:
    schema = f"cz_{secrets.token_hex(3)}"
    declared = _models(tmp_path, schema)
    root = tmp_path / "migrations"
    generate_migrations(citus_url, declared, root, label="saas")
    migrate(citus_url, root)
    held = dict(
        query(
            citus_url,
            "SELECT c.relname, p.partmethod FROM pg_dist_partition p"
            " JOIN pg_class c ON c.oid = p.logicalrelid WHERE c.relnamespace = %s::regnamespace",
            [schema],
        )
    )
    assert held == {"Plan": "n", "Invoice": "h", "InvoiceLine": "h"}
    assert check_drift(citus_url, declared) == []
    assert generate_migrations(citus_url, declared, root) == []  # idempotent: nothing more

    tables = declared.schemas[schema].tables
    with nx.Database(citus_url) as db:
        plans = nx.Repository(db, tables["Plan"].row_type)
        plan = plans.create({"name": "pro"})
        invoices = nx.Repository(db, tables["Invoice"].row_type).scoped(tenant_id="t1")
        lines = nx.Repository(db, tables["InvoiceLine"].row_type).scoped(tenant_id="t1")
        invoice = invoices.create({"number": 1, "plan_id": plan.id})
        lines.create({"invoice_id": invoice.id, "amount": "9.50"})
        nx.Repository(db, tables["Invoice"].row_type).scoped(tenant_id="t2").create(
            {"number": 1, "plan_id": plan.id}
        )
        assert invoices.count() == 1
        assert invoices.update_all({"status": "paid"}, where={"number": 1}) == 1
        with db.watch_queries() as seen:
            found = invoices.find({"where": {"status": "paid"}})
        assert [i.number for i in found] == [1]
        # The scope is the distribution column: Citus routes the statement to one shard.
        [statement] = seen
        plan_text = "\n".join(
            r[0] for r in db.fetch_all("EXPLAIN (COSTS OFF) " + statement.sql, statement.params)
        )
        assert "Task Count: 1" in plan_text, plan_text
        assert invoices.delete_by_id(("t1", invoice.id)) is not None
        assert lines.count() == 0  # the cascade ran on the shard
