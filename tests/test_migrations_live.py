"""Migrations that are safe on a live database, on real PostgreSQL: each hazard kind found,
refused and allowed; online indexes and constraints (valid at the end, built outside a
transaction, resumed after a failed concurrent build); lock timeouts retried while the
advisory wait still works; the data checks of diff; renames; undeclared schemas; baseline;
mark-applied; missing files; throwaway clean-up; lint; deterministic labels; StalePlan."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

import nxdata as nx
from nxdata.errors import MigrationError, StalePlan, UnsafeMigrationError
from nxdata.migrations import load_models
from nxdata.migrations.apply import LockPolicy
from nxdata.migrations.generate import baseline, check_drift, generate_migrations
from nxdata.migrations.linting import lint
from nxdata.migrations.runner import mark_applied, migrate, status
from nxdata.migrations.throwaway import THROWAWAY_PREFIX, clean_leftovers
from tests.migration_models.helpers import databases, query, write_models

BASE = """
lv = nx.Schema("lv")

@lv.table("Parent")
class Parent(msgspec.Struct, kw_only=True):
    id: Annotated[int, Column(primary_key=True, identity="always")]
    code: str

@lv.table("Item"{table_args})
class Item(msgspec.Struct, kw_only=True):
    id: Annotated[int, Column(primary_key=True, identity="always")]
    name: str
    parent_id: int | None = None
    qty: {qty} = 0
{extra}
"""


def source(table_args: str = "", qty: str = "int", extra: str = "") -> str:
    return BASE.format(table_args=table_args, qty=qty, extra=extra)


def write(root: Path, key: str, text: str) -> Path:
    path = root / f"{key}.sql"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


class Project:
    """A migrations folder and model versions on a fresh database."""

    def __init__(self, url: str, tmp: Path) -> None:
        self.url, self.tmp, self.root = url, tmp, tmp / "migrations"
        self.root.mkdir(parents=True)
        self.versions = 0

    def models(self, text: str) -> Any:
        self.versions += 1
        return load_models(write_models(self.tmp / f"v{self.versions}", text))

    def diff(self, text: str, **kwargs: Any) -> list[Any]:
        return generate_migrations(self.url, self.models(text), self.root, **kwargs)

    def migrate(self, **kwargs: Any) -> Any:
        return migrate(self.url, self.root, **kwargs)

    def rows(self, n: int = 20) -> None:
        query(self.url, "INSERT INTO lv.\"Parent\" (code) VALUES ('p')")
        query(
            self.url,
            'INSERT INTO lv."Item" (name, parent_id, qty) '
            "SELECT 'item ' || g, 1, g FROM generate_series(1, %s) g",
            [n],
        )


@pytest.fixture
def project(fresh_database_url: str, tmp_path: Path) -> Project:
    p = Project(fresh_database_url, tmp_path)
    p.diff(source(), label="base")
    p.migrate()
    p.rows()
    return p


# -- online by default ----------------------------------------------------------------------------


def test_indexes_and_constraints_are_built_online(project: Project) -> None:
    after = source(
        table_args=(
            ', indexes=[nx.Index("name")], uniques=[nx.Unique("name", "qty")], '
            'checks=[nx.Check("qty >= 0")], foreign_keys=[nx.ForeignKey("parent_id", Parent)]'
        )
    )
    [generated] = project.diff(after)
    text = generated.text
    assert "-- nxdata: step 2, no transaction" in text
    assert 'CREATE INDEX CONCURRENTLY IF NOT EXISTS "IDX_Item_name"' in text
    assert 'UNIQUE using index "UQ_Item_name_qty"' in text
    # NOT VALID in one transaction, VALIDATE in later ones of their own
    assert text.index('"CK_Item_1" CHECK ((qty >= 0)) not valid') < text.index("step 2")
    assert text.count("validate constraint") == 2
    assert "fails-on-data" in text and "(0 rows would fail)" in text  # checked on the data
    project.migrate()
    assert query(
        project.url,
        "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relname IN ('IDX_Item_name', 'UQ_Item_name_qty') ORDER BY 1",
    ) == [("IDX_Item_name", True), ("UQ_Item_name_qty", True)]
    assert query(
        project.url,
        "SELECT conname, convalidated FROM pg_constraint WHERE conname IN "
        "('CK_Item_1', 'FK_Item_parent_id_Parent_id') ORDER BY 1",
    ) == [("CK_Item_1", True), ("FK_Item_parent_id_Parent_id", True)]
    steps = query(
        project.url,
        "SELECT name FROM nxdata_migrations.journal WHERE kind = 'step' ORDER BY id",
    )
    assert [s[0].rpartition("#")[2] for s in steps] == ["1", "2", "3", "4", "5"]
    assert check_drift(project.url, project.models(after)) == []


def test_set_not_null_goes_through_a_validated_check(project: Project) -> None:
    query(project.url, 'UPDATE lv."Item" SET parent_id = 1')
    after = source().replace("parent_id: int | None = None", "parent_id: int = 1")
    [generated] = project.diff(after)
    assert 'CHECK ("parent_id" IS NOT NULL) NOT VALID' in generated.text
    assert 'alter column "parent_id" set not null' in generated.text
    assert "long-lock" not in generated.text  # the CHECK proves it: no scan under the lock
    project.migrate()
    assert query(
        project.url,
        "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'lv.\"Item\"'::regclass "
        "AND attname = 'parent_id'",
    ) == [(True,)]
    assert query(project.url, "SELECT count(*) FROM pg_constraint WHERE conname LIKE 'NN_%'") == [
        (0,)
    ]


def test_a_failed_concurrent_build_resumes(project: Project) -> None:
    query(project.url, "UPDATE lv.\"Item\" SET name = 'same'")  # duplicates for a unique index
    after = source(table_args=', indexes=[nx.Index("name", unique=True)]')
    [generated] = project.diff(after, unsafe=True)  # 19 duplicate rows: accepted to show resume
    assert "rows would fail" in generated.text
    key = generated.file.key
    assert "allow" not in generated.text  # rows that would fail are never "allowed"...
    with pytest.raises(UnsafeMigrationError, match="statements that rows would fail") as refused:
        project.migrate(allow=["all"])  # ...migrate counts them first, whatever is allowed
    assert "(19 rows would fail)" in str(refused.value)  # 20 equal names: 19 beyond the first
    assert query(project.url, "SELECT count(*) FROM pg_class WHERE relname = 'UQ_Item_name'") == [
        (0,)
    ]  # refused before anything ran
    with pytest.raises(MigrationError, match=r"could not create unique index") as info:
        project.migrate(data_checks=False)  # rows that change between the count and the build
    assert key in str(info.value) and "failed outside a transaction" in str(info.value)
    # the build failed and left an INVALID index behind; the file is not applied
    assert query(
        project.url,
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relname = 'UQ_Item_name'",
    ) == [(False,)]
    assert key not in [f"{s[0]}/{s[1]}" for s in journal_sql(project.url)]
    query(project.url, "UPDATE lv.\"Item\" SET name = 'item ' || id")
    project.migrate()  # drops the invalid index, builds it again
    assert query(
        project.url,
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relname = 'UQ_Item_name'",
    ) == [(True,)]
    assert key in [f"{s[0]}/{s[1]}" for s in journal_sql(project.url)]


def journal_sql(url: str) -> list[tuple[str, str]]:
    return query(
        url, "SELECT schema, name FROM nxdata_migrations.journal WHERE kind = 'sql' ORDER BY id"
    )


def test_steps_already_done_are_not_run_again(project: Project) -> None:
    write(
        project.root,
        "lv/0002_two_steps",
        "-- nxdata: step 1\nCREATE TABLE lv.marks (n int);\n\n"
        "-- nxdata: step 2\nINSERT INTO lv.marks VALUES (1);\n\n"
        "-- nxdata: step 3\nSELECT 1/0;\n",
    )
    with pytest.raises(
        MigrationError, match=r"lv/0002_two_steps step 3 failed .* division by zero"
    ):
        project.migrate()
    path = project.root / "lv/0002_two_steps.sql"
    # step 3 fixed: a change to an unapplied file is fine
    path.write_text(path.read_text().replace("SELECT 1/0;", "SELECT 1;"))
    messages: list[str] = []
    project.migrate(progress=messages.append)
    assert any("resuming after step 2" in m for m in messages)
    assert query(project.url, "SELECT count(*) FROM lv.marks") == [(1,)]  # not inserted twice


def test_a_file_can_run_outside_a_transaction(project: Project) -> None:
    write(
        project.root,
        "lv/0002_by_hand",
        "-- nxdata: no-transaction\n"
        'CREATE INDEX CONCURRENTLY IF NOT EXISTS "IDX_hand" ON lv."Item" (qty);\n',
    )
    project.migrate()
    assert ("lv", "0002_by_hand") in journal_sql(project.url)
    assert query(project.url, "SELECT count(*) FROM pg_class WHERE relname = 'IDX_hand'") == [(1,)]


# -- lock timeouts ---------------------------------------------------------------------------------


def test_lock_timeout_is_retried_then_names_the_blocker(project: Project) -> None:
    write(project.root, "lv/0002_add_note", 'ALTER TABLE lv."Item" ADD COLUMN note text;\n')
    blocker = psycopg.connect(project.url)
    blocker.execute("SET application_name = 'report job'")
    blocker.execute('SELECT count(*) FROM lv."Item"')  # idle in transaction, ACCESS SHARE held
    messages: list[str] = []
    started = time.monotonic()
    try:
        with pytest.raises(MigrationError) as info:
            project.migrate(
                lock=LockPolicy(timeout=0.3, retries=2, backoff=0.1), progress=messages.append
            )
    finally:
        took = time.monotonic() - started
    message = str(info.value)
    assert "lock timeout" in message and "3 attempts" in message
    assert f"pid {blocker.info.backend_pid} (report job)" in message
    assert "SELECT count(*) FROM lv" in message
    assert sum("retry" in m for m in messages) == 2
    assert took < 5  # bounded: three 0.3 s waits and the backoffs
    # the blocker goes away while the migrate retries: it gets through
    threading.Timer(0.5, blocker.rollback).start()
    project.migrate(lock=LockPolicy(timeout=0.3, retries=5, backoff=0.2))
    assert "note" in [
        r[0]
        for r in query(
            project.url,
            "SELECT attname FROM pg_attribute WHERE attrelid = 'lv.\"Item\"'::regclass",
        )
    ]
    blocker.close()


def test_lock_timeout_does_not_apply_to_the_advisory_wait(project: Project) -> None:
    write(project.root, "lv/0002_slow", "SELECT pg_sleep(1.5);\n")
    results: list[Any] = []
    first = threading.Thread(
        target=lambda: results.append(project.migrate(lock=LockPolicy(timeout=0.2)))
    )
    first.start()
    time.sleep(0.3)
    waited: list[str] = []
    second = project.migrate(lock=LockPolicy(timeout=0.2), progress=waited.append)
    first.join()
    assert any("holds the migration lock" in m for m in waited)  # it waited 1 s+, no timeout
    assert second.files == [] and results[0].files == ["lv/0002_slow"]


# -- hazards: found, refused, allowed --------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "sql_text", "reason"),
    [
        ("data-loss", 'DELETE FROM lv."Item" WHERE qty > 10;', "deletes rows"),
        ("rewrite", 'ALTER TABLE lv."Item" ALTER COLUMN qty TYPE bigint;', "rewrites the table"),
        ("long-lock", 'CREATE INDEX "IDX_plain" ON lv."Item" (qty);', "blocking writes"),
        ("breaking", 'ALTER TABLE lv."Item" RENAME COLUMN name TO title;', "renames column"),
    ],
)
def test_hazards_are_refused_unless_allowed(
    project: Project, kind: str, sql_text: str, reason: str
) -> None:
    write(project.root, "lv/0002_change", sql_text + "\n")
    with pytest.raises(MigrationError, match=reason) as info:
        project.migrate()
    assert f"--allow {kind}" in str(info.value) and "recipe:" in str(info.value)
    assert ("lv", "0002_change") not in journal_sql(project.url)
    project.migrate(allow=[kind])  # a reviewer's decision on the command line...
    assert ("lv", "0002_change") in journal_sql(project.url)


def test_an_allow_line_in_the_file_accepts_its_hazards(project: Project) -> None:
    write(
        project.root,
        "lv/0002_drop",
        '-- nxdata: allow data-loss, breaking\nALTER TABLE lv."Item" DROP COLUMN qty;\n',
    )
    project.migrate()  # ...or in the file
    assert ("lv", "0002_drop") in journal_sql(project.url)


def test_rows_that_would_fail_are_counted_and_refused(project: Project) -> None:
    write(
        project.root,
        "lv/0002_require",
        'ALTER TABLE lv."Item" ALTER COLUMN parent_id SET NOT NULL;\n',
    )
    query(project.url, 'UPDATE lv."Item" SET parent_id = NULL WHERE id <= 3')
    with pytest.raises(MigrationError, match=r"3 rows would fail"):
        project.migrate(allow=["long-lock"])
    query(project.url, 'UPDATE lv."Item" SET parent_id = 1')
    project.migrate(allow=["long-lock"])
    assert ("lv", "0002_require") in journal_sql(project.url)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("    label: str\n", "adds NOT NULL column Item.label without a default"),
        ("", "unique index UQ_Item_name"),
        ("", "foreign key FK_Item_parent_id_Parent_id"),
        ("", "CHECK CK_Item_1"),
    ],
    ids=["not-null-column", "unique", "foreign-key", "check"],
)
def test_diff_counts_the_rows_that_would_fail(
    project: Project, change: str, expected: str, request: Any
) -> None:
    case = request.node.callspec.id
    query(project.url, "UPDATE lv.\"Item\" SET name = 'dup', qty = -1, parent_id = 99")
    query(
        project.url, 'ALTER TABLE lv."Item" DROP CONSTRAINT IF EXISTS "FK_Item_parent_id_Parent_id"'
    )
    args = {
        "not-null-column": "",
        "unique": ', indexes=[nx.Index("name", unique=True)]',
        "foreign-key": ', foreign_keys=[nx.ForeignKey("parent_id", Parent)]',
        "check": ', checks=[nx.Check("qty >= 0")]',
    }[case]
    with pytest.raises(UnsafeMigrationError, match="would fail on existing rows") as info:
        project.diff(source(table_args=args, extra=change))
    assert expected in str(info.value) and "rows would fail" in str(info.value)
    assert "recipe:" in str(info.value)


def test_dry_run_shows_an_unsafe_diff_without_unsafe(project: Project) -> None:
    [generated] = project.diff(source().replace("    qty: int = 0\n", ""), dry_run=True)
    assert "drop column" in generated.text and "-- hazard: data-loss" in generated.text
    assert not (project.root / "lv" / generated.file.path.name).exists()


# -- renames, schemas, baselines, repair -----------------------------------------------------------


def test_a_declared_rename_keeps_the_data(project: Project) -> None:
    after = source().replace(
        "    name: str\n", '    title: Annotated[str, Column(renamed_from="name")]\n'
    )
    [generated] = project.diff(after)
    assert 'RENAME COLUMN "name" TO "title"' in generated.text
    assert "drop column" not in generated.text
    project.migrate(allow=["breaking"])
    assert query(project.url, 'SELECT title FROM lv."Item" WHERE id = 1') == [("item 1",)]
    assert check_drift(project.url, project.models(after)) == []


def test_a_drop_and_add_of_the_same_type_suggests_a_rename(project: Project) -> None:
    after = source().replace("    name: str\n", "    title: str = ''\n")
    with pytest.raises(UnsafeMigrationError, match=r'Column\(renamed_from="name"\)') as info:
        project.diff(after)
    assert str(info.value).startswith("the migration would lose data; declare the rename")


def test_undeclared_schemas_are_reported_and_dropped_only_when_unsafe(project: Project) -> None:
    query(project.url, "CREATE SCHEMA by_hand; CREATE TABLE by_hand.t (x int)")
    models = project.models(source())
    drift = check_drift(project.url, models)
    assert [d.schema for d in drift] == ["by_hand"]
    assert check_drift(project.url, models, ignore_schemas=["by_*"]) == []
    with pytest.raises(UnsafeMigrationError, match="drops schema by_hand"):
        generate_migrations(project.url, models, project.root)
    [generated] = generate_migrations(project.url, models, project.root, unsafe=True)
    assert generated.file.key == "by_hand/0001_drop"
    project.migrate()
    assert query(project.url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'by_hand'") == [
        (0,)
    ]


def test_baseline_adopts_a_database_built_by_hand(fresh_database_url: str, tmp_path: Path) -> None:
    query(
        fresh_database_url,
        'CREATE SCHEMA lv; CREATE TABLE lv."Parent" (id int GENERATED ALWAYS AS IDENTITY '
        'CONSTRAINT "PK_Parent" PRIMARY KEY, code text NOT NULL); '
        "INSERT INTO lv.\"Parent\" (code) VALUES ('kept')",
    )
    p = Project(fresh_database_url, tmp_path)
    models = p.models(source())
    [adopted] = baseline(fresh_database_url, models, p.root)
    assert adopted.file.key == "lv/0001_baseline" and 'create table "lv"."Parent"' in adopted.text
    assert query(
        fresh_database_url, "SELECT how FROM nxdata_migrations.journal WHERE name = '0001_baseline'"
    ) == [("baseline",)]
    [change] = generate_migrations(fresh_database_url, models, p.root)
    assert 'create table "lv"."Item"' in change.text and '"Parent" (' not in change.text
    p.migrate()
    assert check_drift(fresh_database_url, models) == []
    assert query(fresh_database_url, 'SELECT code FROM lv."Parent"') == [("kept",)]
    with pytest.raises(MigrationError, match="already has migrations"):
        baseline(fresh_database_url, models, p.root)


def test_mark_applied_and_missing_applied_files(project: Project) -> None:
    write(project.root, "lv/0002_by_hand", 'ALTER TABLE lv."Item" ADD COLUMN made text;\n')
    query(project.url, 'ALTER TABLE lv."Item" ADD COLUMN made text')  # done by a DBA already
    assert mark_applied(project.url, project.root, ["lv/0002_by_hand"]) == ["lv/0002_by_hand"]
    assert query(
        project.url, "SELECT how FROM nxdata_migrations.journal WHERE name = '0002_by_hand'"
    ) == [("marked",)]
    assert project.migrate().files == []  # not run (it would fail: the column exists)
    with pytest.raises(MigrationError, match="already applied"):
        mark_applied(project.url, project.root, ["lv/0002_by_hand"])
    (project.root / "lv/0002_by_hand.sql").unlink()
    with pytest.raises(MigrationError, match=r"missing .*lv/0002_by_hand"):
        project.migrate()
    [item] = status(project.url, project.root)
    assert [e.name for e in item.missing] == ["0002_by_hand"]


def test_a_killed_diffs_throwaway_is_cleaned_up(fresh_database_url: str, admin_url: str) -> None:
    prefix = f"nxdata_tc_{os.getpid()}"
    name = f"{prefix}_999_leftover"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        gone = os.getpid() + 10_000_000  # no such process
        conn.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(name),
                sql.Literal(
                    f"nxdata diff pid={gone} host={os.uname().nodename} at={int(time.time())}"
                ),
            )
        )
    assert clean_leftovers(fresh_database_url, prefix) == [name]
    assert databases(admin_url, prefix) == []
    assert THROWAWAY_PREFIX.startswith("nxdata")


def test_labels_are_derived_from_the_change(fresh_database_url: str, tmp_path: Path) -> None:
    names = []
    for run in ("a", "b"):
        p = Project(fresh_database_url, tmp_path / run)
        [generated] = p.diff(source(), dry_run=True)
        names.append(generated.file.path.name)
    assert names[0] == names[1] == "0001_create_item_create_parent.sql"


# -- lint ------------------------------------------------------------------------------------------


def test_lint_a_good_and_a_bad_folder(project: Project) -> None:
    assert lint(project.root, url=project.url).problems == []
    assert lint(project.root).problems == []  # offline too
    write(project.root, "lv/0003_gap", 'CREATE INDEX "IDX_x" ON lv."Item" (qty);\n')
    write(project.root, "lv/0004_typo", 'ALTER TABLE lv."Nope" ADD COLUMN x int;\n')
    report = lint(project.root, url=project.url)
    text = "\n".join(report.problems)
    assert "numbering gap (missing 0002)" in text
    assert "0003_gap.sql: long-lock" in text
    write(
        project.root,
        "lv/0003_gap",
        '-- nxdata: allow long-lock\nCREATE INDEX "IDX_x" ON lv."Item" (qty);\n',
    )
    (project.root / "lv/0003_gap.sql").rename(project.root / "lv/0002_gap.sql")
    (project.root / "lv/0004_typo.sql").rename(project.root / "lv/0003_typo.sql")
    report = lint(project.root, url=project.url)
    assert [p for p in report.problems if "does not apply" in p], report.problems
    (project.root / "lv/0001_base.sql").write_text("-- edited\n")
    assert any(
        "changed after it was applied" in p for p in lint(project.root, url=project.url).problems
    )


def test_lint_judges_each_pending_file_after_the_ones_before_it(
    fresh_database_url: str, tmp_path: Path
) -> None:
    """CI lints against an empty database: a table an earlier file creates exists by the time a
    later file indexes it in production, so the plain CREATE INDEX there is a long lock; a type
    change is judged with the real old type; a failing file is reported and the rest still
    judged."""
    root = tmp_path / "migrations"
    write(root, "ln/0001_init", "CREATE SCHEMA ln;\nCREATE TABLE ln.t (a int, b text);\n")
    write(root, "ln/0002_index", "CREATE INDEX t_a ON ln.t (a);\n")
    write(root, "ln/0003_widen", "ALTER TABLE ln.t ALTER COLUMN b TYPE text;\n")  # no-op
    write(root, "ln/0004_typo", "ALTER TABLE ln.nope ADD COLUMN c int;\n")
    write(root, "ln/0005_drop", "ALTER TABLE ln.t DROP COLUMN b;\n")
    problems = lint(root, url=fresh_database_url).problems
    assert len(problems) == 4, problems
    assert "0002_index.sql: long-lock: builds index t_a on t" in problems[0]
    assert "0004_typo.sql: does not apply on a copy of the current schema" in problems[1]
    assert 'relation "ln.nope" does not exist' in problems[1]
    assert "0005_drop.sql: data-loss: drops column t.b" in problems[2]
    assert "0005_drop.sql: breaking" in problems[3]
    offline = lint(root).problems  # without a database the old type of b is unknown
    assert any("0003_widen.sql: data-loss" in p for p in offline), offline
    assert query(fresh_database_url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'ln'") == [
        (0,)
    ]  # judged on copies, never on the database itself


# -- prepared statements after a migration ---------------------------------------------------------


def test_stale_plans_are_retried_outside_a_transaction(project: Project) -> None:
    schema = nx.Schema("lv_plan")

    @schema.table("Item")
    class Item(nx.IntIdColumns):
        qty: int

    query(
        project.url,
        'CREATE SCHEMA lv_plan; CREATE TABLE lv_plan."Item" '
        "(id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, qty int NOT NULL)",
    )
    query(project.url, 'INSERT INTO lv_plan."Item" (qty) VALUES (1)')
    with nx.Database(project.url, max_size=1, prepare_threshold=1) as db:
        items = nx.Repository(db, Item)
        for _ in range(3):
            assert items.find_by_id(1) is not None  # prepared on the server now
        query(project.url, 'ALTER TABLE lv_plan."Item" ALTER COLUMN qty TYPE bigint')
        assert items.find_by_id(1).qty == 1  # type: ignore[union-attr]  # deallocated, run again
        for _ in range(3):
            items.find_by_id(1)
        query(project.url, 'ALTER TABLE lv_plan."Item" ALTER COLUMN qty TYPE numeric')
        with pytest.raises(StalePlan), db.transaction():
            items.find_by_id(1)
        attempts = []

        def read(tx: nx.Transaction) -> Any:
            attempts.append(tx.attempt)
            return items.find_by_id(1)

        for _ in range(3):
            items.find_by_id(1)
        query(project.url, 'ALTER TABLE lv_plan."Item" ALTER COLUMN qty TYPE bigint')
        assert db.run_in_transaction(read, backoff=0.01) is not None
        assert attempts == [1, 2]


# -- found by trying it as a team would ------------------------------------------------------------


def test_a_narrowed_varchar_fails_instead_of_truncating(project: Project) -> None:
    """migra writes `USING col::varchar(5)`, and an explicit cast truncates: 'item 10' would
    become 'item ' without a word. The cast goes, the values that do not fit are counted, and
    migrate refuses while there are any."""
    after = source().replace(
        "    name: str\n", '    name: Annotated[str, Column(sql_type="varchar(5)")]\n'
    )
    with pytest.raises(UnsafeMigrationError, match=r"fails on values that do not fit varchar\(5\)"):
        project.diff(after)
    [generated] = project.diff(after, unsafe=True)
    assert "using" not in generated.text.lower()
    assert "(20 rows would fail)" in generated.text  # 'item 1' .. 'item 20' are 6-7 characters
    with pytest.raises(UnsafeMigrationError, match="rows would fail"):
        project.migrate()
    with pytest.raises(MigrationError, match="value too long for type character varying"):
        project.migrate(data_checks=False)  # the statement itself refuses too: nothing cut
    assert query(project.url, 'SELECT min(name) FROM lv."Item"') == [("item 1",)]
    query(project.url, "UPDATE lv.\"Item\" SET name = 'i' || id")
    project.migrate()
    assert query(project.url, 'SELECT count(*) FROM lv."Item" WHERE name LIKE %s', ["i%"]) == [
        (20,)
    ]


def test_unsafe_accepts_the_refused_statements_only(project: Project) -> None:
    """--unsafe for a dropped column does not also accept an unrelated table rewrite."""
    after = source(qty="BigInt").replace("    parent_id: int | None = None\n", "")
    [generated] = project.diff(after, unsafe=True)
    assert "-- nxdata: allow data-loss, breaking\n" in generated.text
    assert "hazard: rewrite" in generated.text
    with pytest.raises(UnsafeMigrationError, match=r"rewrite: changes the type of Item\.qty"):
        project.migrate()
    project.migrate(allow=["rewrite"])


def test_public_and_schemas_others_depend_on_are_never_dropped(
    fresh_database_url: str, tmp_path: Path
) -> None:
    project = Project(fresh_database_url, tmp_path)
    declared = source()
    project.diff(declared, label="base")
    project.migrate()
    query(project.url, "CREATE TABLE public.stray (a int)")
    query(project.url, "CREATE SCHEMA by_hand; CREATE TYPE by_hand.mood AS ENUM ('ok')")
    query(project.url, 'ALTER TABLE lv."Item" ADD COLUMN mood by_hand.mood')  # lv depends on it
    query(project.url, "CREATE SCHEMA loose; CREATE TABLE loose.t (a int)")
    generated = project.diff(declared, unsafe=True, dry_run=True)
    statements = [s for g in generated for s in g.diff.statements]
    assert 'DROP SCHEMA "loose" CASCADE;' in statements
    assert not any("public" in s or "by_hand" in s for s in statements if "DROP SCHEMA" in s)
    models = write_models(tmp_path / "check", declared)
    code, _, err = _cli("check", "--all", "--url", project.url, "--models", models)
    assert code == 1
    assert "public exists in the database but no declaration names it: nxdata never drops" in err
    assert "by_hand exists in the database" in err and "depend on it (column mood" in err


def test_concurrent_builds_wait_for_long_transactions_without_lock_timeout(
    project: Project,
) -> None:
    """A CONCURRENTLY build waits for every running transaction and blocks nobody: under a
    0.3 s lock_timeout it would fail behind any long transaction; it waits instead."""
    write(
        project.root,
        "lv/0002_index",
        "-- nxdata: no-transaction\n"
        'CREATE INDEX CONCURRENTLY IF NOT EXISTS "IDX_Item_qty" ON lv."Item" (qty);\n',
    )
    writer = psycopg.connect(project.url)
    writer.execute('UPDATE lv."Item" SET qty = qty WHERE id = 1')  # a transaction left open
    threading.Timer(1.5, writer.commit).start()
    started = time.monotonic()
    project.migrate(lock=LockPolicy(timeout=0.3, retries=0))
    assert time.monotonic() - started >= 1.2  # it waited for the writer
    writer.close()
    assert query(
        project.url,
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relname = 'IDX_Item_qty'",
    ) == [(True,)]


def test_diff_and_lint_refuse_a_folder_that_lost_an_applied_file(project: Project) -> None:
    (project.root / "lv/0001_base.sql").rename(project.tmp / "0001_base.sql")
    with pytest.raises(MigrationError, match=r"missing .*lv/0001_base"):
        project.diff(source(qty="BigInt"))  # a new 0001 would take the lost file's number
    assert not list((project.root / "lv").glob("*.sql"))
    problems = lint(project.root, url=project.url).problems
    assert any("0001_base.sql: applied to the database but missing" in p for p in problems)


def test_an_allow_line_added_after_applying_is_not_a_change(project: Project) -> None:
    write(project.root, "lv/0002_index", 'CREATE INDEX "IDX_qty" ON lv."Item" (qty);\n')
    project.migrate(allow=["long-lock"])  # accepted on the command line, in a hurry
    assert any("0002_index.sql: long-lock" in p for p in lint(project.root).problems)
    text = (project.root / "lv/0002_index.sql").read_text()
    write(project.root, "lv/0002_index", "-- nxdata: allow long-lock\n" + text)  # written down
    assert lint(project.root).problems == []  # offline lint is green again...
    assert [s for _, s, _ in status(project.url, project.root)[0].files] == ["applied", "applied"]
    project.migrate()  # ...and nothing counts as tampered
    write(project.root, "lv/0002_index", "-- nxdata: allow long-lock\n" + text + "SELECT 1;\n")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        project.migrate()


def test_dry_runs_say_what_the_real_run_would_refuse(project: Project) -> None:
    after = source().replace("    parent_id: int | None = None\n", "")
    [generated] = project.diff(after, dry_run=True)
    assert generated.refused is not None and "drops column Item.parent_id" in generated.refused
    write(project.root, "lv/0002_widen", 'ALTER TABLE lv."Item" ALTER COLUMN qty TYPE bigint;\n')
    write(project.root, "lv/0003_note", 'ALTER TABLE lv."Item" ADD COLUMN note text;\n')
    result = project.migrate(dry_run=True)
    assert [(s.key, s.refused is not None) for s in result.steps] == [("lv/0002_widen", True)]
    assert "rewrite" in (result.steps[0].refused or "")
    assert [s.key for s in project.migrate(dry_run=True, allow=["rewrite"]).steps] == [
        "lv/0002_widen",
        "lv/0003_note",
    ]


def test_status_shows_partial_and_marked_files(project: Project) -> None:
    write(
        project.root,
        "lv/0002_two",
        '-- nxdata: step 1\nALTER TABLE lv."Item" ADD COLUMN a int;\n'
        "-- nxdata: step 2\nSELECT 1/0;\n",
    )
    with pytest.raises(MigrationError, match="step 2 failed"):
        project.migrate()
    write(project.root, "lv/0003_hand", "SELECT 1;\n")
    mark_applied(project.url, project.root, ["lv/0003_hand"])
    states = {f.name: s for f, s, _ in status(project.url, project.root)[0].files}
    assert states == {"0001_base": "applied", "0002_two": "partial", "0003_hand": "marked"}
    with pytest.raises(MigrationError, match="name the file with its schema: schema/0002_two"):
        mark_applied(project.url, project.root, ["0002_two"])


def _cli(*args: str) -> tuple[int, str, str]:
    import io

    from nxdata.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), out=out, err=err)
    return code, out.getvalue(), err.getvalue()
