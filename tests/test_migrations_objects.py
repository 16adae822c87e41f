"""Everything in a schema, declared: views, materialized views, functions, procedures, triggers,
sequences, row-level security and policies, grants, comments and roles — created by a diff from
an empty database, changed, dropped only with --unsafe, `check` clean after `migrate`; the
dependency cases (a view over a column whose type changes, a trigger over a replaced function);
objects made by hand refused or left alone, never dropped silently; byte-identical output."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from nxdata import create_statements
from nxdata.errors import ConfigurationError, NxdataError, UnsafeMigrationError
from nxdata.migrations import load_models, load_settings
from nxdata.migrations.generate import check_drift, generate_migrations
from nxdata.migrations.linting import lint
from nxdata.migrations.runner import migrate
from nxdata.objects import Unmanaged
from tests.conftest import create_database, drop_database
from tests.migration_models.helpers import query, write_models


@pytest.fixture
def role(admin_url: str) -> Iterator[str]:
    """A role name of this test's own; dropped after the test's database (set up first, torn
    down last)."""
    name = f"nx_obj_{secrets.token_hex(3)}"
    yield name
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP ROLE IF EXISTS "{name}"')


@pytest.fixture
def project(role: str, fresh_database_url: str, tmp_path: Path) -> Project:
    return Project(fresh_database_url, tmp_path, role)


class Project:
    """A migrations folder and model versions on a fresh database."""

    def __init__(self, url: str, tmp: Path, role: str) -> None:
        self.url, self.tmp, self.role = url, tmp, role
        self.root = tmp / "migrations"
        self.versions = 0

    def models(self, text: str) -> Any:
        self.versions += 1
        return load_models(write_models(self.tmp / f"v{self.versions}", text))

    def diff(self, text: str, **kwargs: Any) -> list[Any]:
        return generate_migrations(self.url, self.models(text), self.root, **kwargs)

    def migrate(self, **kwargs: Any) -> Any:
        return migrate(self.url, self.root, **kwargs)

    def drift(self, text: str, **kwargs: Any) -> list[Any]:
        return check_drift(self.url, self.models(text), **kwargs)

    def one(self, sql: str, params: Any = None) -> Any:
        rows = query(self.url, sql, params)
        return rows[0][0] if rows else None


MODELS = '''
ob = nx.Schema("ob")
tenant = nx.Role("{role}")

refuse = ob.function(
    "refuse_change",
    body="BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END",
    comment="{function_comment}",
)
double = ob.function(
    "double_it", args="n integer", returns="integer", language="sql",
    volatility="immutable", body="SELECT n * 2",
)
ob.procedure(
    "archive", args="keep integer", body="BEGIN DELETE FROM ob.\\"Entry\\" WHERE id < keep; END"
)
number = ob.sequence("entry_number", start=1000, increment={increment})

@ob.table(
    "Entry",
    triggers=[nx.Trigger("immutable", refuse, events=("update",), update_of=("amount",))],
    row_level_security={rls},
    policies=[nx.Policy("tenant", to=tenant, using="{using}")],
    grants=[nx.Grant("{table_grant}", to=tenant)],
)
class Entry(msgspec.Struct, kw_only=True):
    """A ledger entry."""

    id: Annotated[int, Column(primary_key=True, identity="always")]
    merchant: str
    """The tenant it belongs to."""
    amount: {amount}
    number: Annotated[int, Column(server_default="nextval('ob.entry_number')")] = 0

total = ob.view(
    "EntryTotal",
    'SELECT merchant, {total} AS total FROM ob."Entry" GROUP BY merchant',
    comment="Totals per merchant",
    security_invoker=True,
)
counts = ob.materialized_view(
    "EntryCount",
    'SELECT merchant, count(*) AS n FROM ob."Entry" GROUP BY merchant',
    indexes=[nx.Index("merchant", unique=True)],
)
ob.grant("usage", to=tenant)
ob.grant("select", on=total, to=tenant)
ob.grant("usage", on=number, to=tenant)
ob.grant("execute", on=double, to=tenant)
{extra}
'''


def models(role: str, **changes: Any) -> str:
    values = {
        "role": role,
        "function_comment": "Refuses changes",
        "increment": 1,
        "rls": "True",
        "using": "merchant = current_setting('app.merchant', true)",
        "table_grant": "select, insert",
        "amount": "int",
        "total": "sum(amount)",
        "extra": "",
        **changes,
    }
    return MODELS.format(**values)


def acl(project: Project, kind: str, name: str) -> set[str]:
    """Privileges the test's role holds on an object."""
    if kind == "schema":
        sql = (
            "SELECT p FROM unnest(ARRAY['USAGE', 'CREATE']) p WHERE has_schema_privilege(%s, %s, p)"
        )
    elif kind == "sequence":
        sql = (
            "SELECT p FROM unnest(ARRAY['USAGE', 'SELECT', 'UPDATE']) p"
            " WHERE has_sequence_privilege(%s, %s, p)"
        )
    elif kind == "function":
        sql = "SELECT p FROM unnest(ARRAY['EXECUTE']) p WHERE has_function_privilege(%s, %s, p)"
    else:
        sql = (
            "SELECT p FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE']) p"
            " WHERE has_table_privilege(%s, %s, p)"
        )
    return {r[0] for r in query(project.url, sql, [project.role, name])}


# -- created, checked clean, byte-identical -------------------------------------------------------


def test_every_kind_is_created_from_an_empty_database(project: Project) -> None:
    source = models(project.role)
    first = project.diff(source, dry_run=True)
    again = project.diff(source, dry_run=True)
    assert [g.text for g in first] == [g.text for g in again]  # byte-identical
    [generated] = project.diff(source, label="init")
    text = generated.text
    assert text.index("CREATE ROLE") < text.index("GRANT")  # the role first, in the file itself
    project.migrate()
    assert project.drift(source) == []

    one = project.one
    assert one("SELECT reloptions FROM pg_class WHERE relname = 'EntryTotal'") == [
        "security_invoker=true"
    ]
    assert one("SELECT relkind FROM pg_class WHERE relname = 'EntryCount'") == "m"
    assert one(
        "SELECT indisunique FROM pg_index"
        " WHERE indexrelid = 'ob.\"UQ_EntryCount_merchant\"'::regclass"
    )
    assert one("SELECT prokind FROM pg_proc WHERE proname = 'archive'") == "p"
    assert one("SELECT ob.double_it(21)") == 42
    assert (
        one(
            "SELECT tgname FROM pg_trigger"
            " WHERE tgrelid = 'ob.\"Entry\"'::regclass AND NOT tgisinternal"
        )
        == "immutable"
    )
    assert one(
        "SELECT (seqstart, seqincrement) FROM pg_sequence"
        " WHERE seqrelid = 'ob.entry_number'::regclass"
    ) == ("1000", "1")
    assert one(
        "SELECT (relrowsecurity, relforcerowsecurity) FROM pg_class"
        " WHERE oid = 'ob.\"Entry\"'::regclass"
    ) == ("t", "f")
    assert one("SELECT polname FROM pg_policy") == "tenant"
    assert acl(project, "table", 'ob."Entry"') == {"SELECT", "INSERT"}
    assert acl(project, "table", 'ob."EntryTotal"') == {"SELECT"}
    assert acl(project, "sequence", "ob.entry_number") == {"USAGE"}
    assert acl(project, "function", "ob.double_it(integer)") == {"EXECUTE"}
    assert acl(project, "schema", "ob") == {"USAGE"}
    assert one("SELECT obj_description('ob.\"Entry\"'::regclass, 'pg_class')") == "A ledger entry."
    assert one("SELECT col_description('ob.\"Entry\"'::regclass, 2)") == "The tenant it belongs to."
    assert one("SELECT obj_description('ob.\"EntryTotal\"'::regclass, 'pg_class')") == (
        "Totals per merchant"
    )
    assert one("SELECT obj_description('ob.refuse_change()'::regprocedure, 'pg_proc')") == (
        "Refuses changes"
    )

    # the objects work: numbers from the sequence, the trigger, the policy for the tenant
    query(project.url, "INSERT INTO ob.\"Entry\" (merchant, amount) VALUES ('a', 5), ('b', 7)")
    assert one('SELECT min(number) FROM ob."Entry"') == 1000
    with pytest.raises(psycopg.errors.RaiseException, match="Entry is append-only"):
        query(project.url, 'UPDATE ob."Entry" SET amount = 6')
    with psycopg.connect(project.url) as conn:
        conn.execute(f'SET ROLE "{project.role}"')
        conn.execute("SELECT set_config('app.merchant', 'a', false)")
        assert conn.execute('SELECT merchant, total FROM ob."EntryTotal"').fetchall() == [("a", 5)]


# -- changed --------------------------------------------------------------------------------------


def test_changes_are_diffed_and_applied(project: Project) -> None:
    project.diff(models(project.role), label="init")
    project.migrate()
    changed = models(
        project.role,
        function_comment="Refuses every change",
        increment=5,
        rls='"force"',
        using="merchant = current_setting('app.merchant', true) AND amount > 0",
        table_grant="select, insert, update",
        total="sum(amount) + 0",
    ).replace("RAISE EXCEPTION '% is append-only'", "RAISE EXCEPTION '% is append only'")
    [generated] = project.diff(changed)
    text = generated.text
    assert "CREATE OR REPLACE FUNCTION ob.refuse_change()" in text
    assert 'create or replace view "ob"."EntryTotal"' in text
    assert 'ALTER VIEW ob."EntryTotal" SET (security_invoker=true);' in text  # kept, not lost
    assert "ALTER SEQUENCE ob.entry_number AS bigint INCREMENT BY 5" in text
    assert 'ALTER TABLE ob."Entry" FORCE ROW LEVEL SECURITY;' in text
    assert 'GRANT UPDATE ON TABLE ob."Entry" TO' in text
    assert "COMMENT ON FUNCTION ob.refuse_change() IS 'Refuses every change';" in text
    assert "drop policy" in text and "amount > 0" in text
    project.migrate()
    assert project.drift(changed) == []
    assert project.one(
        "SELECT relforcerowsecurity FROM pg_class WHERE oid = 'ob.\"Entry\"'::regclass"
    )
    assert acl(project, "table", 'ob."Entry"') == {"SELECT", "INSERT", "UPDATE"}
    query(project.url, "INSERT INTO ob.\"Entry\" (merchant, amount) VALUES ('a', 5)")
    with pytest.raises(psycopg.errors.RaiseException, match="Entry is append only"):
        query(project.url, 'UPDATE ob."Entry" SET amount = 6')  # the replaced body, same trigger


def test_a_view_over_a_column_whose_type_changes(project: Project) -> None:
    """The view is dropped and created again around the change: its grant, comment and
    options come back; the materialized view gets its index back; the trigger (UPDATE OF the
    column) and the policy (USING the column), which PostgreSQL will not let the type change
    under, are dropped before it and created again after."""
    using = "merchant = current_setting('app.merchant', true) AND amount >= 0"
    project.diff(models(project.role, using=using), label="init")
    project.migrate()
    query(project.url, "INSERT INTO ob.\"Entry\" (merchant, amount) VALUES ('a', 5)")
    changed = models(project.role, amount="BigInt", using=using)
    [generated] = project.diff(changed)
    text = generated.text
    assert text.index('drop view if exists "ob"."EntryTotal"') < text.index(
        'alter column "amount" set data type bigint'
    )
    assert "hazard: breaking" not in text  # a drop to create again is no drop
    project.migrate(allow=["rewrite"])
    assert project.drift(changed) == []
    assert acl(project, "table", 'ob."EntryTotal"') == {"SELECT"}
    assert project.one("SELECT obj_description('ob.\"EntryTotal\"'::regclass, 'pg_class')") == (
        "Totals per merchant"
    )
    assert project.one("SELECT reloptions FROM pg_class WHERE relname = 'EntryTotal'") == [
        "security_invoker=true"
    ]
    assert (
        project.one("SELECT count(*) FROM pg_indexes WHERE indexname = 'UQ_EntryCount_merchant'")
        == 1
    )
    assert project.one("SELECT count(*) FROM pg_trigger WHERE tgname = 'immutable'") == 1
    assert project.one("SELECT count(*) FROM pg_policy WHERE polname = 'tenant'") == 1


# -- dropped with --unsafe only -------------------------------------------------------------------


def test_declared_objects_removed_are_dropped_only_with_unsafe(project: Project) -> None:
    project.diff(models(project.role), label="init")
    project.migrate()
    without = (
        models(project.role, table_grant="select")
        .replace('ob.grant("select", on=total, to=tenant)\n', "")
        .replace('ob.grant("usage", on=number, to=tenant)\n', "")
        .replace('ob.grant("execute", on=double, to=tenant)\n', "")
    )
    without = without[: without.index("total = ob.view(")] + 'ob.grant("usage", to=tenant)\n'
    without = without.replace(
        '    triggers=[nx.Trigger("immutable", refuse, events=("update",), '
        'update_of=("amount",))],\n',
        "",
    )
    with pytest.raises(UnsafeMigrationError) as info:
        project.diff(without)
    message = str(info.value)
    for what in (
        "drops view ob.EntryTotal, removed from the declarations",
        "drops view ob.EntryCount, removed from the declarations",
        "drops trigger ob.Entry.immutable, removed from the declarations",
        "revokes insert on ob.Entry from",
    ):
        assert what in message, message
    [generated] = project.diff(without, unsafe=True)
    assert "-- nxdata: allow breaking, drops-object" in generated.text
    project.migrate()
    assert project.drift(without) == []
    assert (
        project.one("SELECT count(*) FROM pg_class WHERE relname IN ('EntryTotal', 'EntryCount')")
        == 0
    )
    assert acl(project, "table", 'ob."Entry"') == {"SELECT"}


# -- made by hand: refused or left alone, never dropped in silence --------------------------------


def test_hand_made_objects_are_refused_then_left_alone(project: Project, admin_url: str) -> None:
    source = models(project.role)
    project.diff(source, label="init")
    project.migrate()
    hand_role = f"{project.role}_ro"
    query(admin_url, f'CREATE ROLE "{hand_role}" NOLOGIN')
    try:
        for sql in (
            'CREATE INDEX idx_custom ON ob."Entry" (amount)',
            "CREATE FUNCTION ob.audit() RETURNS trigger LANGUAGE plpgsql"
            " AS $$BEGIN RETURN NEW; END$$",
            'CREATE TRIGGER audit_entry AFTER INSERT ON ob."Entry"'
            " FOR EACH ROW EXECUTE FUNCTION ob.audit()",
            'CREATE VIEW ob.report AS SELECT merchant FROM ob."Entry"',
            'CREATE POLICY dba_read ON ob."Entry" FOR SELECT TO PUBLIC USING (true)',
            f'GRANT SELECT ON ob."Entry" TO "{hand_role}"',
            'ALTER TABLE ob."Entry" ADD CONSTRAINT ck_hand CHECK (amount < 1000000)',
        ):
            query(project.url, sql)
        with pytest.raises(UnsafeMigrationError, match="would drop objects") as info:
            project.diff(source)
        message = str(info.value)
        for what in (
            "drops index ob.idx_custom, which no declaration owns",
            "drops function ob.audit, which no declaration owns",
            "drops trigger ob.Entry.audit_entry, which no declaration owns",
            "drops view ob.report, which no declaration owns",
            "drops policy ob.Entry.dba_read, which no declaration owns",
            "drops constraint ob.Entry.ck_hand, which no declaration owns",
            f"revokes select on ob.Entry from {hand_role}",
        ):
            assert what in message, message
        assert project.drift(source)  # drift, reported by check

        # left alone for good: in the declarations, or in [tool.nxdata] unmanaged
        alone = source + (
            'ob.unmanaged("index idx_*", "function audit", "trigger Entry.audit_*", '
            '"view report", "policy Entry.dba_*", "constraint Entry.ck_hand")\n'
        )
        project_level = (Unmanaged.parse(f"grant {hand_role}"),)
        assert project.diff(alone, unmanaged=project_level) == []
        assert project.drift(alone, unmanaged=project_level) == []
        assert (
            project.one("SELECT count(*) FROM pg_class WHERE relname IN ('idx_custom', 'report')")
            == 2
        )

        # or dropped on purpose
        [generated] = project.diff(source, unsafe=True)
        assert "drops-object" in generated.text
        project.migrate(allow=["breaking"])
        assert project.drift(source) == []
        assert (
            project.one("SELECT count(*) FROM pg_class WHERE relname IN ('idx_custom', 'report')")
            == 0
        )
    finally:
        with psycopg.connect(project.url, autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{hand_role}"')
        query(admin_url, f'DROP ROLE IF EXISTS "{hand_role}"')


def test_a_hand_made_index_alone_is_never_dropped_silently(project: Project) -> None:
    """The case that started it: a DBA's index (or one a hand-written CONCURRENTLY file made)
    and nothing else; diff used to write `drop index` without a word."""
    source = models(project.role)
    project.diff(source, label="init")
    project.migrate()
    query(project.url, 'CREATE INDEX idx_custom ON ob."Entry" (merchant, amount)')
    with pytest.raises(UnsafeMigrationError, match=r"drops index ob\.idx_custom"):
        project.diff(source)
    # a declared index removed from the declarations goes without --unsafe, as before
    indexed = source.replace(
        '    grants=[nx.Grant("select, insert", to=tenant)],\n',
        '    grants=[nx.Grant("select, insert", to=tenant)],\n    indexes=[nx.Index("amount")],\n',
    )
    indexed += 'ob.unmanaged("index idx_custom")\n'
    project.diff(indexed)
    project.migrate()
    unindexed = source + 'ob.unmanaged("index idx_custom")\n'
    [generated] = project.diff(unindexed)
    assert 'drop index if exists "ob"."IDX_Entry_amount"' in generated.text
    assert "drops-object" not in generated.text


# -- declarations that cannot work are refused when declared --------------------------------------


@pytest.mark.parametrize(
    ("source", "says"),
    [
        (
            'ob = nx.Schema("ob")\n@ob.table("T", policies=[nx.Policy("p", using="true")])\n'
            "class T(msgspec.Struct):\n    a: int\n",
            "policies have no effect without row level security",
        ),
        (
            'ob = nx.Schema("ob")\nob.grant("execute", to="x")\n',
            "a schema takes usage, create or all, not 'execute'",
        ),
        (
            'ob = nx.Schema("ob")\nob.view("v", "SELECT 1")\nob.view("v", "SELECT 2")\n',
            "view ob.v is declared twice",
        ),
        (
            'ob = nx.Schema("ob")\nob.unmanaged("idx foo")\n',
            "unmanaged kind 'idx' is not one of index",
        ),
        (
            'ob = nx.Schema("ob")\n@ob.table("T", policies=[nx.Policy("p", command="insert", '
            'using="true")], row_level_security=True)\nclass T(msgspec.Struct):\n    a: int\n',
            "an insert policy takes with_check=",
        ),
    ],
)
def test_bad_declarations_say_what_is_wrong(tmp_path: Path, source: str, says: str) -> None:
    with pytest.raises(NxdataError) as info:
        models_ = load_models(write_models(tmp_path, source))
        create_statements(models_.select(None))
    assert says in str(info.value)


# -- found by trying it as a team would ------------------------------------------------------------

CALLS = """
ca = nx.Schema("ca")
valid = ca.function(
    "valid_code", args="code text", returns="boolean", language="sql",
    volatility="immutable", body="SELECT code ~ '^[A-Z]+$'",
)
new_code = ca.function("new_code", returns="text", language="sql", body="SELECT 'AUTO'")

@ca.table("Item", checks=[nx.Check("ca.valid_code(code)", name="CK_Item_code")])
class Item(msgspec.Struct, kw_only=True):
    id: Annotated[int, Column(primary_key=True, identity="always")]
    code: Annotated[str, Column(sql_type="varchar(10)", server_default="ca.new_code()")]
    label: Annotated[str, Column(sql_type="varchar(10)")] = "x"

labels = ca.view("Labels", 'SELECT id, label FROM ca."Item"')
counts = ca.materialized_view(
    "LabelCount", 'SELECT label, count(*) AS n FROM ca."Item" GROUP BY label',
    indexes=[nx.Index("label", unique=True)],
)
ca.grant("select", on=labels, to=nx.Role("{role}"))
"""


def test_functions_come_before_the_checks_and_defaults_that_call_them(
    project: Project, fresh_database_url: str, admin_url: str
) -> None:
    source = CALLS.format(role=project.role)
    [generated] = project.diff(source, label="init")
    text = generated.text
    assert text.index("FUNCTION ca.valid_code") < text.index('create table "ca"."Item"')
    assert text.index("set check_function_bodies = off") < text.index("FUNCTION ca.new_code")
    project.migrate()  # a fresh database: failed with "function ca.valid_code does not exist"
    assert project.drift(source) == []
    query(project.url, 'INSERT INTO ca."Item" DEFAULT VALUES')
    assert project.one('SELECT code FROM ca."Item"') == "AUTO"
    other = create_database(admin_url, "nxdata_t")  # lint, as CI runs it: an empty database
    try:
        url = admin_url.replace("dbname=postgres", f"dbname={other}")
        assert lint(project.root, url=url).problems == []
    finally:
        drop_database(admin_url, other)


def test_a_size_change_under_views_drops_and_creates_them_again(project: Project) -> None:
    """migra sees varchar(10) -> varchar(20) as compatible and leaves the views in place;
    PostgreSQL then refuses the change ("used by a view or rule")."""
    source = CALLS.format(role=project.role)
    project.diff(source, label="init")
    project.migrate()
    query(project.url, "INSERT INTO ca.\"Item\" (code, label) VALUES ('A', 'one'), ('B', 'one')")
    wider = source.replace(
        'label: Annotated[str, Column(sql_type="varchar(10)")]',
        'label: Annotated[str, Column(sql_type="varchar(20)")]',
    )
    [generated] = project.diff(wider)
    text = generated.text
    assert text.index('DROP VIEW IF EXISTS ca."Labels"') < text.index(
        "set data type character varying(20)"
    )
    assert "hazard" not in text  # widening, and views created again: nothing to fear
    project.migrate()
    assert project.drift(wider) == []
    assert acl(project, "table", 'ca."Labels"') == {"SELECT"}
    assert project.one('SELECT n FROM ca."LabelCount"') == 2
    assert project.one("SELECT count(*) FROM pg_indexes WHERE indexname = 'UQ_LabelCount_label'")


def test_drops_of_hand_made_objects_replay_where_they_never_were(
    project: Project, fresh_database_url: str, admin_url: str, tmp_path: Path
) -> None:
    """A file that removes one environment's hand-made objects runs everywhere."""
    source = models(project.role)
    project.diff(source, label="init")
    project.migrate()
    query(project.url, 'CREATE POLICY hand ON ob."Entry" FOR SELECT USING (true)')
    query(project.url, 'ALTER TABLE ob."Entry" ADD CONSTRAINT ck_hand CHECK (amount > -1)')
    [generated] = project.diff(source, unsafe=True)
    assert 'drop policy if exists "hand"' in generated.text
    assert 'drop constraint if exists "ck_hand"' in generated.text
    other = create_database(admin_url, "nxdata_t")
    try:
        url = admin_url.replace("dbname=postgres", f"dbname={other}")
        migrate(url, project.root)  # the init file, then the drops of what was never there
        assert [r[0] for r in query(url, "SELECT name FROM nxdata_migrations.journal")] == [
            "0001_init",
            generated.file.name,
        ]
    finally:
        drop_database(admin_url, other)


def test_execute_can_be_kept_from_public(project: Project) -> None:
    source = models(project.role).replace('comment="{function_comment}",', "") + (
        'secret = ob.function("secret", returns="integer", language="sql", body="SELECT 42",'
        " public_execute=False, security_definer=True, search_path='pg_catalog')\n"
        'ob.grant("execute", on=secret, to=tenant)\n'
    )
    [generated] = project.diff(source, label="init")
    assert "TO PUBLIC" not in generated.text  # new functions have it by default: no noise
    assert "REVOKE EXECUTE ON ROUTINE ob.secret() FROM PUBLIC;" in generated.text
    project.migrate()
    assert project.drift(source) == []
    assert query(
        project.url, "SELECT has_function_privilege('public', 'ob.secret()', 'EXECUTE')"
    ) == [(False,)]
    assert acl(project, "function", "ob.secret()") == {"EXECUTE"}


def test_a_view_that_loses_a_column_is_a_breaking_change(project: Project) -> None:
    source = models(project.role)
    project.diff(source, label="init")
    project.migrate()
    narrower = source.replace(
        "SELECT merchant, {total} AS total".format(total="sum(amount)"),
        "SELECT merchant AS shop, sum(amount) AS total",
    )
    [generated] = project.diff(narrower)
    assert "hazard: breaking: view ob.EntryTotal loses column merchant" in generated.text
    assert generated.file.label.startswith("view_entrytotal")
    with pytest.raises(UnsafeMigrationError, match="loses column merchant"):
        project.migrate()  # the header says what only the diff could see
    project.migrate(allow=["breaking"])
    assert project.drift(narrower) == []


def test_offline_lint_knows_a_materialized_view_made_in_the_same_file(project: Project) -> None:
    project.diff(models(project.role), label="init")
    assert lint(project.root).problems == []  # its index is on a new view: no long lock


@pytest.mark.parametrize(
    ("source", "says"),
    [
        (
            'ob = nx.Schema("ob")\nob.grant("select", on="Nope", to="x")\n',
            "grant on 'Nope' in schema ob: not a declared table, view, function or sequence",
        ),
        (
            'ob = nx.Schema("ob")\nob.view("v", "SELECT * FROM \\"T\\"")\n',
            "name every table with its schema in views, functions and policies",
        ),
        (
            'ob = nx.Schema("ob")\n@ob.table("T", grants=[nx.Grant("select", to="nx_nobody_x")])\n'
            "class T(msgspec.Struct):\n    a: int\n",
            "declare nx.Role(...) to have it created",
        ),
    ],
)
def test_declarations_that_do_not_build_say_why(
    fresh_database_url: str, tmp_path: Path, source: str, says: str
) -> None:
    with pytest.raises(NxdataError) as info:
        generate_migrations(
            fresh_database_url, load_models(write_models(tmp_path, source)), tmp_path / "m"
        )
    assert says in str(info.value)


def test_an_unmanaged_pattern_without_its_schema_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.nxdata]\nunmanaged = ["index idx_*"]\n')
    with pytest.raises(ConfigurationError, match=r"name the schema \('index sale.idx_\*'"):
        load_settings(tmp_path)
