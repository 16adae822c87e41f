"""The diff fixes found by the schema-pair corpus (`test_migrations_corpus`), one named test
each: what the generated SQL says, and that it applies as ``nxdata migrate`` applies it, also
with only ``pg_catalog`` on the search path."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

import nxdata as nx
from nxdata.errors import UnsafeMigrationError
from nxdata.migrations import load_models
from nxdata.migrations.differ import SchemaDiff, count_failing_rows, diff_databases
from nxdata.migrations.generate import generate_migrations, render
from nxdata.migrations.hazards import HAZARD_KINDS
from nxdata.migrations.runner import migrate
from tests.conftest import create_database, drop_database
from tests.migration_models.helpers import query, write_models
from tests.schema_pairs import server_has

NUMERIC = "CREATE COLLATION public.numeric (provider = libc, locale = 'C');\n"


@dataclass
class Pair:
    """Two databases, a (to migrate) and b (its target), and a migrations folder."""

    admin_url: str
    a: str
    b: str
    root: Path

    def url(self, name: str) -> str:
        return make_conninfo(self.admin_url, dbname=name)

    @property
    def a_url(self) -> str:
        return self.url(self.a)

    def build(self, a: str, b: str) -> None:
        for name, text in ((self.a, a), (self.b, b)):
            with psycopg.connect(self.url(name), autocommit=True) as conn:
                conn.execute(text.encode())

    def diff(self, *schemas: str) -> SchemaDiff:
        """The diff of a against b, for one schema (public by default)."""
        [diff] = diff_databases(
            self.a_url, self.url(self.b), [nx.Schema(s) for s in schemas or ("public",)]
        )
        return diff

    def apply(self, diff: SchemaDiff, *, search_path: str | None = "pg_catalog") -> None:
        """`diff` written as ``nxdata diff`` writes it and applied as ``nxdata migrate`` does,
        with `search_path` set on database a; then a has no diff left."""
        if search_path is not None:
            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("ALTER DATABASE {} SET search_path = {}").format(
                        sql.Identifier(self.a), sql.Identifier(search_path)
                    )
                )
        folder = self.root / diff.schema
        folder.mkdir(parents=True, exist_ok=True)
        number = len(list(folder.iterdir())) + 1
        (folder / f"{number:04d}_fix.sql").write_text(render(diff), encoding="utf-8")
        migrate(self.a_url, self.root, allow=HAZARD_KINDS)
        assert not self.diff(diff.schema), self.diff(diff.schema).sql


@pytest.fixture
def pair(admin_url: str, tmp_path: Path) -> Iterator[Pair]:
    a, b = create_database(admin_url, "nxdata_fix"), create_database(admin_url, "nxdata_fix")
    try:
        yield Pair(admin_url, a, b, tmp_path / "migrations")
    finally:
        drop_database(admin_url, a)
        drop_database(admin_url, b)


@pytest.fixture
def icu(admin_url: str) -> None:
    """Skips a test on a server without ICU collations (the embedded one)."""
    if not server_has(admin_url, "icu"):
        pytest.skip("the server has no ICU collations")


@pytest.fixture
def role(admin_url: str) -> Iterator[str]:
    """A role of the test's own: ask for it before `pair`, so that it is dropped after the
    databases that grant to it."""
    name = f"nx_fix_{secrets.token_hex(3)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(name)))
    yield name
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def test_migra_fix_collation_is_schema_qualified(pair: Pair) -> None:
    """migra prints a collation by its name alone (`collate "numeric"`), which fails where its
    schema is not on the search path, and leaves it out of `create table`."""
    pair.build(
        NUMERIC + "CREATE TABLE t (id integer, c text);",
        NUMERIC + "CREATE TABLE t (id integer, c text COLLATE public.numeric,"
        " d text COLLATE public.numeric);"
        "CREATE TABLE fresh (id integer NOT NULL DEFAULT 0, e text COLLATE public.numeric);",
    )
    diff = pair.diff()
    assert 'alter table "public"."t" add column "d" text collate public."numeric";' in diff.sql
    assert 'set data type text collate public."numeric" using "c"::text;' in diff.sql
    assert '"e" text collate public."numeric"\n);' in diff.sql  # create table left it out
    assert 'collate "numeric"' not in diff.sql
    pair.apply(diff)


def test_migra_fix_new_collation_keeps_its_locale(icu: None, pair: Pair) -> None:
    """migra writes a new ICU collation's locale as 'None' and drops `deterministic = false`."""
    pair.build(
        "SELECT 1",
        "CREATE COLLATION public.ci (provider = icu, locale = 'und-u-ks-level2', "
        "deterministic = false);",
    )
    diff = pair.diff()
    assert (
        'create collation if not exists "public"."ci" (provider = icu, '
        "locale = 'und-u-ks-level2', deterministic = false);"
    ) in diff.sql
    pair.apply(diff)


def test_migra_fix_identity_on_a_column_named_its(pair: Pair) -> None:
    """The identity `setval` wrote the column name into a string literal unescaped: a column
    named it's made `diff` fail with "cannot parse generated SQL"."""
    pair.build(
        """CREATE TABLE "it's" ("it's" integer PRIMARY KEY); INSERT INTO "it's" VALUES (1), (2);""",
        """CREATE TABLE "it's" ("it's" integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY);""",
    )
    diff = pair.diff()
    assert (
        "SELECT setval(pg_get_serial_sequence('\"public\".\"it''s\"', 'it''s'), "
        'coalesce(max("it\'s"), 0) + 1, false) FROM "public"."it\'s";'
    ) in diff.sql
    pair.apply(diff)
    assert query(pair.a_url, 'INSERT INTO public."it\'s" DEFAULT VALUES RETURNING "it\'s"') == [
        (3,)
    ]


def test_migra_fix_identity_options(pair: Pair) -> None:
    """migra writes `generated ... as identity` without the sequence's options and never
    compares them."""
    pair.build(
        "CREATE TABLE t (id integer GENERATED ALWAYS AS IDENTITY, n integer);",
        "CREATE TABLE t (id integer GENERATED ALWAYS AS IDENTITY (INCREMENT BY 10),"
        " n integer, m bigint GENERATED BY DEFAULT AS IDENTITY (START WITH 100 CACHE 5));",
    )
    diff = pair.diff()
    assert (
        'add column "m" bigint generated by default as identity (start with 100 cache 5)'
    ) in diff.sql
    assert 'ALTER TABLE public.t ALTER COLUMN "id" SET INCREMENT BY 10 ' in diff.sql
    pair.apply(diff)


def test_sequence_data_type_is_diffed(pair: Pair) -> None:
    """`AS integer` → `AS bigint` survived migra's migration: nxdata compares the type with
    the other options."""
    pair.build("CREATE SEQUENCE s AS integer;", "CREATE SEQUENCE s AS bigint;")
    diff = pair.diff()
    assert "ALTER SEQUENCE public.s AS bigint " in diff.sql
    pair.apply(diff)
    assert query(
        pair.a_url,
        "SELECT format_type(seqtypid, NULL) FROM pg_sequence WHERE seqrelid = 'public.s'::regclass",
    ) == [("bigint",)]


def test_narrowed_sequence_range_counts_the_rows(pair: Pair) -> None:
    """A sequence whose new MINVALUE is above its current value: PostgreSQL refuses the ALTER;
    the data check says so before anything runs."""
    pair.build("CREATE SEQUENCE s;", "CREATE SEQUENCE s MINVALUE 5;")
    diff = pair.diff()
    [hazard] = count_failing_rows(pair.a_url, diff.hazards)
    assert hazard.kind == "fails-on-data"
    assert str(hazard) == (
        "fails-on-data: narrows sequence public.s to 5..9223372036854775807: fails if its "
        "current value is outside (1 row would fail)"
    )
    with pytest.raises(UnsafeMigrationError, match=r"narrows sequence public\.s"):
        pair.apply(diff)


def test_grants_and_revokes_reach_the_diff(role: str, pair: Pair) -> None:
    """migra's `add_all_changes()` runs without privileges: nxdata compares them from the
    ACLs, with column privileges and the grant option."""
    r = f'"{role}"'
    pair.build(
        f"CREATE TABLE t (id integer, c text); GRANT SELECT, DELETE ON t TO {r};",
        f"CREATE TABLE t (id integer, c text); GRANT SELECT ON t TO {r} WITH GRANT OPTION;"
        f"GRANT UPDATE (c) ON t TO {r}; GRANT USAGE ON SCHEMA public TO {r};",
    )
    diff = pair.diff()
    assert diff.statements == (
        f"REVOKE DELETE ON TABLE public.t FROM {r};",
        f"REVOKE SELECT ON TABLE public.t FROM {r};",
        f'GRANT UPDATE ("c") ON TABLE public.t TO {r};',
        f"GRANT USAGE ON SCHEMA public TO {r};",
        f"GRANT SELECT ON TABLE public.t TO {r} WITH GRANT OPTION;",
    )
    assert [h.reason for h in diff.hazards] == [
        f"revokes delete on public.t from {role}, which no declaration owns and no generated "
        "migration created (made by hand?)",
        f"revokes select on public.t from {role}, which no declaration owns and no generated "
        "migration created (made by hand?)",
    ]
    pair.apply(diff)


def test_declared_grants_reach_the_diff(fresh_database_url: str, tmp_path: Path) -> None:
    """The grants the schema-objects declarations make are in the generated file, and a grant
    taken out of the declarations is revoked."""
    role = f"nx_fix_{secrets.token_hex(3)}"
    source = """
    gx = nx.Schema("gx")
    reader = nx.Role("{role}")

    @gx.table("T", grants=[nx.Grant("{privileges}", to=reader)])
    class T(msgspec.Struct):
        id: Annotated[int, Column(primary_key=True)]

    gx.grant("usage", to=reader)
    """
    root = tmp_path / "migrations"

    def diff(privileges: str, label: str, *, unsafe: bool = False) -> str:
        text = source.replace("{role}", role).replace("{privileges}", privileges)
        models = load_models(write_models(tmp_path / label, text))
        [generated] = generate_migrations(
            fresh_database_url, models, root, label=label, unsafe=unsafe
        )
        return generated.text

    try:
        first = diff("select, insert", "grant")
        assert f'GRANT INSERT ON TABLE gx."T" TO "{role}";' in first
        assert f'GRANT SELECT ON TABLE gx."T" TO "{role}";' in first
        assert f'GRANT USAGE ON SCHEMA gx TO "{role}";' in first
        migrate(fresh_database_url, root)
        with pytest.raises(
            UnsafeMigrationError, match=re.escape(f"revokes insert on gx.T from {role}")
        ):
            diff("select", "revoke")  # a grant taken away: refused without --unsafe
        second = diff("select", "revoke", unsafe=True)
        assert f'REVOKE INSERT ON TABLE gx."T" FROM "{role}";' in second
        migrate(fresh_database_url, root)
        assert query(
            fresh_database_url,
            "SELECT privilege_type FROM information_schema.role_table_grants"
            " WHERE table_schema = 'gx' AND grantee = %s",
            [role],
        ) == [("SELECT",)]
    finally:
        query(fresh_database_url, "DROP SCHEMA IF EXISTS gx CASCADE")
        query(fresh_database_url, f'DROP ROLE IF EXISTS "{role}"')


def test_function_grants_and_comments_are_schema_qualified(role: str, pair: Pair) -> None:
    """nxdata's own catalog SQL printed `f(integer)` with the diff's search path: under
    search_path=pg_catalog the file failed with `function f(integer) does not exist`."""
    function = "CREATE FUNCTION f(n integer) RETURNS integer LANGUAGE sql AS 'SELECT n';"
    pair.build(
        function,
        function
        + f"""COMMENT ON FUNCTION f(integer) IS 'it''s f';
        GRANT EXECUTE ON FUNCTION f(integer) TO "{role}";""",
    )
    diff = pair.diff()
    assert "COMMENT ON FUNCTION public.f(integer) IS 'it''s f';" in diff.sql
    assert f'GRANT EXECUTE ON ROUTINE public.f(integer) TO "{role}";' in diff.sql
    pair.apply(diff)


def test_enum_recreated_says_what_changes(pair: Pair) -> None:
    """migra re-creates a changed enum; the hazard said "changes the type of orders.status
    (order_status to public.order_status)", the same type named twice."""
    pair.build(
        "CREATE TYPE order_status AS ENUM ('new', 'paid', 'shipped');"
        "CREATE TABLE orders (id integer, status order_status);"
        "INSERT INTO orders VALUES (1, 'new'), (2, 'paid');",
        "CREATE TYPE order_status AS ENUM ('new', 'shipped', 'lost');"
        "CREATE TABLE orders (id integer, status order_status);",
    )
    diff = pair.diff()
    hazards = [str(h) for h in count_failing_rows(pair.a_url, diff.hazards)]
    what = "re-creates enum public.order_status (removes 'paid'; adds 'lost') for orders.status"
    assert hazards == [
        f"fails-on-data: {what}: fails on rows that hold a removed value (1 row would fail)",
        f"rewrite: {what}: rewrites the table under an ACCESS EXCLUSIVE lock",
    ]
    assert not any("public.order_status)" in h or "__old_version" in h for h in hazards)
    with pytest.raises(UnsafeMigrationError, match="1 row would fail"):
        pair.apply(diff)
    query(pair.a_url, "DELETE FROM public.orders WHERE status = 'paid'")
    pair.apply(diff)


def test_migra_fix_enum_values_and_columns_are_quoted(pair: Pair) -> None:
    """migra writes enum values without doubling quotes, and moves an enum's columns with
    their names unquoted (`Status` would name `status`)."""
    pair.build(
        """CREATE TYPE mood AS ENUM ('ok'); CREATE TABLE t ("Status" mood);""",
        """CREATE TYPE mood AS ENUM ('ok', 'it''s'); CREATE TABLE t ("Status" mood);
        CREATE TYPE "it's" AS ENUM ('it''s');""",
    )
    diff = pair.diff()
    assert """create type "public"."it's" as enum ('it''s');""" in diff.sql
    assert 'alter column "Status" type "public"."mood" using "Status"::text::' in diff.sql
    pair.apply(diff)


def test_migra_fix_function_whose_result_changes_is_dropped_first(pair: Pair) -> None:
    """`CREATE OR REPLACE` cannot change a function's result type or its parameters' names:
    migra wrote it anyway, and the file failed."""
    pair.build(
        "CREATE FUNCTION f(n integer) RETURNS integer LANGUAGE sql AS 'SELECT n';"
        "COMMENT ON FUNCTION f(integer) IS 'kept';",
        "CREATE FUNCTION f(m integer) RETURNS bigint LANGUAGE sql AS 'SELECT m';"
        "COMMENT ON FUNCTION f(integer) IS 'kept';",
    )
    diff = pair.diff()
    drop = diff.sql.index("DROP FUNCTION IF EXISTS public.f(integer);")
    assert drop < diff.sql.index("CREATE OR REPLACE FUNCTION public.f(m integer)")
    assert "COMMENT ON FUNCTION public.f(integer) IS 'kept';" in diff.sql  # lost with the drop
    assert not diff.hazards
    pair.apply(diff)


def test_migra_fix_new_columns_in_declared_order(pair: Pair) -> None:
    """migra adds a table's new columns in name order."""
    pair.build(
        "CREATE TABLE t (id integer);", "CREATE TABLE t (id integer, zebra text, apple text);"
    )
    diff = pair.diff()
    assert diff.sql.index('"zebra"') < diff.sql.index('"apple"')
    pair.apply(diff)
    columns = (
        "SELECT attname FROM pg_attribute WHERE attrelid = 'public.t'::regclass AND attnum > 0"
    )
    assert query(pair.a_url, columns + " ORDER BY attnum") == [("id",), ("zebra",), ("apple",)]


def test_migra_fix_inherited_columns_and_constraints(pair: Pair) -> None:
    """migra adds a parent's new column and CHECK to each child too, and lists a new child's
    inherited columns as its own."""
    pair.build(
        "CREATE TABLE base (id integer); CREATE TABLE a_child (x text) INHERITS (base);",
        "CREATE TABLE base (id integer, note text, CHECK (id > 0));"
        "CREATE TABLE a_child (x text) INHERITS (base);"
        "CREATE TABLE b_child (y text) INHERITS (base);",
    )
    diff = pair.diff()
    assert '"a_child"' not in diff.sql
    assert 'create table "public"."b_child" (\n    "y" text\n) inherits ("public"."base");' in (
        diff.sql
    )
    pair.apply(diff)
    local = "SELECT attname FROM pg_attribute WHERE attrelid = 'public.b_child'::regclass"
    assert query(pair.a_url, local + " AND attislocal AND attnum > 0") == [("y",)]


def test_migra_fix_composite_type_before_its_columns(pair: Pair) -> None:
    """migra creates composite types after the tables: a column of one came first."""
    pair.build(
        "CREATE TABLE t (id integer);",
        "CREATE TYPE price AS (amount numeric, currency char(3));"
        "CREATE TABLE t (id integer, p price);",
    )
    diff = pair.diff()
    assert diff.sql.index('create type "public"."price"') < diff.sql.index('add column "p"')
    pair.apply(diff)


def test_migra_fix_comments_on_more_objects(pair: Pair) -> None:
    """Comments on indexes, constraints, triggers, policies, types and the schema are compared
    too; an index that migra creates again gets its comment back."""
    base = """CREATE TYPE mood AS ENUM ('ok');
    CREATE TABLE t (id integer CONSTRAINT positive CHECK (id > 0), c text);
    CREATE INDEX t_c ON t ({index});
    COMMENT ON INDEX t_c IS 'kept';
    CREATE POLICY p ON t USING (true);
    """
    pair.build(
        base.format(index="c"),
        base.format(index="c, id")
        + """COMMENT ON SCHEMA public IS 'the schema'; COMMENT ON TYPE mood IS 'a type';
        COMMENT ON CONSTRAINT positive ON t IS 'a constraint';
        COMMENT ON POLICY p ON t IS 'a policy';""",
    )
    diff = pair.diff()
    for comment in (
        "COMMENT ON SCHEMA public IS 'the schema';",
        "COMMENT ON TYPE public.mood IS 'a type';",
        "COMMENT ON CONSTRAINT positive ON public.t IS 'a constraint';",
        "COMMENT ON POLICY p ON public.t IS 'a policy';",
        "COMMENT ON INDEX public.t_c IS 'kept';",
    ):
        assert comment in diff.sql
    pair.apply(diff)


def test_migra_fix_table_storage_parameters(pair: Pair) -> None:
    """migra neither compares a table's storage parameters nor creates tables with them."""
    pair.build(
        "CREATE TABLE t (id integer) WITH (autovacuum_enabled = false);",
        "CREATE TABLE t (id integer) WITH (fillfactor = 70);"
        "CREATE TABLE fresh (id integer) WITH (fillfactor = 50);",
    )
    diff = pair.diff()
    assert "ALTER TABLE public.t SET (fillfactor=70);" in diff.sql
    assert "ALTER TABLE public.t RESET (autovacuum_enabled);" in diff.sql
    assert "ALTER TABLE public.fresh SET (fillfactor=50);" in diff.sql
    pair.apply(diff)


def test_migra_fix_generated_column_expression(pair: Pair) -> None:
    """migra changes a generated column's expression with `set default`, which PostgreSQL
    refuses; before 17 the column is dropped and added again, with its indexes, as a rewrite
    (no data is lost: it is computed)."""
    table = "CREATE TABLE t (qty integer, twice integer GENERATED ALWAYS AS ({}) STORED);"
    pair.build(
        table.format("qty * 2") + "CREATE INDEX t_twice ON t (twice); INSERT INTO t VALUES (5);",
        table.format("qty * 3") + "CREATE INDEX t_twice ON t (twice);",
    )
    diff = pair.diff()
    if query(pair.a_url, "SHOW server_version_num")[0][0] >= "170000":
        assert 'alter column "twice" set expression as ((qty * 3));' in diff.sql
    else:
        assert 'alter table "public"."t" drop column "twice";' in diff.sql
        assert "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_twice" in diff.sql
        assert [h.kind for h in diff.hazards] == ["rewrite"]
    pair.apply(diff)
    assert query(pair.a_url, "SELECT twice FROM public.t") == [(15,)]
