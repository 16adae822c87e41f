"""`nxdata diff` as a function: declarations → throwaway database → migra → files, on real
PostgreSQL. Each case that works around a migra gap is named ``test_migra_fix_*``."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from nxdata.errors import MigrationError, UnsafeMigrationError
from nxdata.migrations import load_models
from nxdata.migrations.generate import check_drift, generate_migrations
from nxdata.migrations.runner import migrate
from tests.migration_models.helpers import columns, databases, query, write_models

BASE = """
mx = nx.Schema("mx")

@mx.table("Item"{table_args})
class Item(msgspec.Struct):
    id: Annotated[int, Column(primary_key=True, identity="always")]
    name: {name_type}
    status: {status_type} = {status_default}
{extra_columns}
{extra_tables}
"""

DEFAULTS = {
    "table_args": "",
    "name_type": "str",
    "status_type": "str",
    "status_default": '"new"',
    "extra_columns": "    note: str | None = None\n",
    "extra_tables": "",
}


def models_source(**changes: str) -> str:
    return BASE.format(**{**DEFAULTS, **changes})


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "migrations").mkdir()
    return tmp_path


def generate(url: str, workdir: Path, source: str, label: str, **kwargs: object) -> list[str]:
    """Generate (and write) migrations for `source`; return the texts."""
    models = load_models(write_models(workdir / "pkgs", source))
    generated = generate_migrations(url, models, workdir / "migrations", label=label, **kwargs)  # type: ignore[arg-type]
    return [g.text for g in generated]


def evolve(url: str, workdir: Path, after: str, base: str | None = None) -> str:
    """Migrate the base declarations in, then generate the file that leads to `after`."""
    generate(url, workdir, base or models_source(), "base")
    migrate(url, workdir / "migrations")
    if base is None:  # rows make an added NOT NULL / identity column a real test
        query(url, 'INSERT INTO mx."Item" (name) VALUES (%s)', ["first"])
    [text] = generate(url, workdir, after, "change")
    return text


def apply_and_check(url: str, workdir: Path, source: str, allow: tuple[str, ...] = ()) -> None:
    migrate(url, workdir / "migrations", allow=allow)
    assert check_drift(url, load_models(write_models(workdir / "pkgs", source))) == []


def test_diff_on_empty_database_creates_everything(fresh_database_url: str, workdir: Path) -> None:
    models = load_models("tests.migration_models.shop")
    generated = generate_migrations(
        fresh_database_url, models, workdir / "migrations", label="init"
    )
    assert [g.file.key for g in generated] == ["mt_catalog/0001_init", "mt_sales/0001_init"]
    catalog, sales = (g.text for g in generated)
    assert 'create table "mt_catalog"."Product"' in catalog
    assert 'create table "mt_sales"."Order"' in sales
    assert "-- requires: mt_catalog/0001_init" in sales  # cross-schema FK: catalog first
    assert (workdir / "migrations/mt_sales/0001_init.sql").read_text() == sales

    result = migrate(fresh_database_url, workdir / "migrations")
    assert result.files == ["mt_catalog/0001_init", "mt_sales/0001_init"]
    assert check_drift(fresh_database_url, models) == []
    # A second diff finds nothing and writes nothing.
    assert generate_migrations(fresh_database_url, models, workdir / "migrations") == []
    assert len(list((workdir / "migrations/mt_sales").iterdir())) == 1


def test_output_is_deterministic(fresh_database_url: str, workdir: Path) -> None:
    models = load_models("tests.migration_models.shop")
    runs = [
        [
            g.text
            for g in generate_migrations(
                fresh_database_url, models, workdir / "migrations", label="x", dry_run=True
            )
        ]
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
    assert not list((workdir / "migrations").iterdir())  # dry run wrote nothing


def test_one_schema_only(fresh_database_url: str, workdir: Path) -> None:
    models = load_models("tests.migration_models.shop")
    generated = generate_migrations(
        fresh_database_url, models, workdir / "migrations", schemas=["mt_catalog"], label="c"
    )
    assert [g.file.key for g in generated] == ["mt_catalog/0001_c"]
    with pytest.raises(Exception, match="not declared"):
        generate_migrations(fresh_database_url, models, workdir / "migrations", schemas=["nope"])


def test_numbering_continues_after_existing_files(fresh_database_url: str, workdir: Path) -> None:
    folder = workdir / "migrations/mx"
    folder.mkdir()
    (folder / "0007_old.sql").write_text("SELECT 1;\n")
    migrate(fresh_database_url, workdir / "migrations")  # a pending file would stop the diff
    [text] = generate(fresh_database_url, workdir, models_source(), "Next One!")
    assert (folder / "0008_next_one.sql").read_text() == text


@pytest.mark.parametrize(
    ("case", "after", "expected"),
    [
        (
            "new column",
            models_source(extra_columns="    note: str | None = None\n    price: int = 0\n"),
            'alter table "mx"."Item" add column "price" integer not null default 0;',
        ),
        (
            "new index",
            models_source(table_args=', indexes=[nx.Index("name")]'),
            # the table exists: built without blocking writes, outside a transaction
            "-- nxdata: step 1, no transaction\n"
            'CREATE INDEX CONCURRENTLY IF NOT EXISTS "IDX_Item_name" ON mx."Item" '
            "USING btree (name);",
        ),
        (
            "partial gin index",
            models_source(
                name_type="list[str]",
                table_args=', indexes=[nx.Index("name", method="gin", where="id > 10")]',
            ),
            "USING gin (name) WHERE (id > 10);",
        ),
        (
            "changed default",
            models_source(status_default='"old"'),
            'alter table "mx"."Item" alter column "status" set default \'old\'::text;',
        ),
        (
            "new table",
            models_source(
                extra_tables=(
                    '@mx.table("Tag")\nclass Tag(msgspec.Struct):\n'
                    '    id: Annotated[int, Column(primary_key=True, identity="by default")]\n'
                    "    label: str\n"
                )
            ),
            'create table "mx"."Tag" (',
        ),
        (
            "enum values",
            models_source(status_type='Literal["new", "old"]'),
            'add constraint "CK_Item_status" CHECK',
        ),
        (
            "widened type",
            models_source(name_type='Annotated[str, Column(sql_type="varchar(200)")]'),
            'alter column "name" set data type character varying(200)',
        ),
        (
            "identity column added to a table with rows",
            models_source(
                extra_columns=(
                    "    note: str | None = None\n"
                    "    number: Annotated[int, "
                    'Column(sql_type="bigint", identity="by default")] = 0\n'
                )
            ),
            'add column "number" bigint generated by default as identity not null;',
        ),
    ],
)
def test_changed_declaration_produces_the_right_file(
    fresh_database_url: str, workdir: Path, case: str, after: str, expected: str
) -> None:
    base = None
    if case == "partial gin index":  # start from an array column so only the index changes
        base = models_source(name_type="list[str]")
    elif case == "widened type":
        base = models_source(name_type='Annotated[str, Column(sql_type="varchar(20)")]')
    text = evolve(fresh_database_url, workdir, after, base)
    assert expected in text, text
    # an identity column added to a table with rows fills every row: a rewrite to accept
    allow = ("rewrite",) if case.startswith("identity column") else ()
    if allow:
        assert "-- hazard: rewrite: adds Item.number with values for every row" in text
    apply_and_check(fresh_database_url, workdir, after, allow)


def test_dropped_column_is_refused_without_unsafe(fresh_database_url: str, workdir: Path) -> None:
    after = models_source(extra_columns="")
    generate(fresh_database_url, workdir, models_source(), "base")
    migrate(fresh_database_url, workdir / "migrations")
    with pytest.raises(UnsafeMigrationError, match=r"drops column Item\.note") as info:
        generate(fresh_database_url, workdir, after, "drop")
    assert info.value.statements == ['alter table "mx"."Item" drop column "note";']
    assert sorted(p.name for p in (workdir / "migrations/mx").iterdir()) == ["0001_base.sql"]

    [text] = generate(fresh_database_url, workdir, after, "drop", unsafe=True)
    assert 'alter table "mx"."Item" drop column "note";' in text
    apply_and_check(fresh_database_url, workdir, after)
    assert "note" not in columns(fresh_database_url, "mx", "Item")


def test_narrowed_type_is_refused_without_unsafe(fresh_database_url: str, workdir: Path) -> None:
    generate(fresh_database_url, workdir, models_source(), "base")
    migrate(fresh_database_url, workdir / "migrations")
    after = models_source(name_type='Annotated[str, Column(sql_type="varchar(5)")]')
    with pytest.raises(UnsafeMigrationError, match=r"type of Item.name \(text to varchar\(5\)\)"):
        generate(fresh_database_url, workdir, after, "narrow")


def test_dropped_table_is_refused_without_unsafe(fresh_database_url: str, workdir: Path) -> None:
    two = models_source(
        extra_tables='@mx.table("Tag")\nclass Tag(msgspec.Struct):\n    label: str\n'
    )
    generate(fresh_database_url, workdir, two, "base")
    migrate(fresh_database_url, workdir / "migrations")
    with pytest.raises(UnsafeMigrationError, match="drops table"):
        generate(fresh_database_url, workdir, models_source(), "drop")


def test_migra_fix_foreign_key_after_the_unique_it_references(
    fresh_database_url: str, workdir: Path
) -> None:
    """migra adds constraints in name order: FK_... before UQ_..., which fails to apply."""
    source = models_source(
        extra_tables=(
            '@mx.table("Code", uniques=[nx.Unique("code")])\n'
            "class Code(msgspec.Struct):\n    code: str\n\n"
            '@mx.table("Alpha", foreign_keys=[nx.ForeignKey("code", Code, "code")])\n'
            "class Alpha(msgspec.Struct):\n    code: str\n"
        )
    )
    [text] = generate(fresh_database_url, workdir, source, "init")
    assert text.index('add constraint "UQ_Code_code"') < text.index('add constraint "FK_Alpha')
    apply_and_check(fresh_database_url, workdir, source)


def test_migra_fix_extension_of_a_schema(fresh_database_url: str, workdir: Path) -> None:
    """With schema= migra leaves out extensions (they live in public)."""
    available = {
        r[0] for r in query(fresh_database_url, "SELECT name FROM pg_available_extensions")
    }
    # citext on a full server; the embedded server (pgserver) ships only vector.
    choices = [("citext", "citext"), ("vector", "vector(3)")]
    found = [(ext, sql_type) for ext, sql_type in choices if ext in available]
    if not found:
        pytest.skip("neither citext nor vector is available on this server")
    ext, sql_type = found[0]
    source = (
        f'ext = nx.Schema("mx_ext", extensions=("{ext}",))\n\n@ext.table("Thing")\n'
        f'class Thing(msgspec.Struct):\n    value: Annotated[str, Column(sql_type="{sql_type}")]\n'
    )
    [text] = generate(fresh_database_url, workdir, source, "init")
    body = text.split("\n\n", 1)[1]
    assert body.startswith(f'CREATE EXTENSION IF NOT EXISTS "{ext}" WITH SCHEMA public;')
    assert "version" not in text  # migra would pin the server's extension version
    apply_and_check(fresh_database_url, workdir, source)


def test_migra_fix_identity_added_to_a_column_with_rows(
    fresh_database_url: str, workdir: Path
) -> None:
    """migra's ADD GENERATED AS IDENTITY starts at 1: the next insert would hit existing ids."""
    plain = 'p = nx.Schema("mx_id")\n\n@p.table("T")\nclass T(msgspec.Struct):\n'
    before = plain + "    id: Annotated[int, Column(primary_key=True)]\n    v: str\n"
    after = (
        plain + '    id: Annotated[int, Column(primary_key=True, identity="by default")]\n'
        "    v: str\n"
    )
    generate(fresh_database_url, workdir, before, "base")
    migrate(fresh_database_url, workdir / "migrations")
    query(fresh_database_url, "INSERT INTO mx_id.\"T\" VALUES (1, 'a'), (2, 'b')")
    [text] = generate(fresh_database_url, workdir, after, "identity")
    assert 'alter column "id" add generated by default as identity;' in text
    assert "SELECT setval(pg_get_serial_sequence(" in text
    apply_and_check(fresh_database_url, workdir, after)
    assert query(fresh_database_url, "INSERT INTO mx_id.\"T\" (v) VALUES ('c') RETURNING id") == [
        (3,)
    ]


def test_migra_fix_table_comment(fresh_database_url: str, workdir: Path) -> None:
    """migra does not compare comments."""
    after = models_source(table_args=', comment="Things in stock"')
    text = evolve(fresh_database_url, workdir, after)
    assert "COMMENT ON TABLE mx.\"Item\" IS 'Things in stock';" in text
    apply_and_check(fresh_database_url, workdir, after)


def test_migra_fix_journal_schema_is_never_diffed(fresh_database_url: str, workdir: Path) -> None:
    generate(fresh_database_url, workdir, models_source(), "base")
    migrate(fresh_database_url, workdir / "migrations")  # creates nxdata_migrations.journal
    assert query(fresh_database_url, "SELECT count(*) FROM nxdata_migrations.journal") == [(1,)]
    assert generate(fresh_database_url, workdir, models_source(), "again") == []
    with pytest.raises(Exception, match="reserved"):
        load_models(write_models(workdir / "pkgs", 'j = nx.Schema("nxdata_migrations")\n'))


def _prefix() -> str:
    return f"nxdata_tt_{secrets.token_hex(3)}"


def test_throwaway_database_is_dropped_after_success(
    fresh_database_url: str, workdir: Path
) -> None:
    prefix = _prefix()
    models = load_models("tests.migration_models.shop")
    generate_migrations(
        fresh_database_url, models, workdir / "migrations", dry_run=True, throwaway_prefix=prefix
    )
    assert databases(fresh_database_url, prefix) == []


def test_throwaway_database_is_dropped_after_failure(
    fresh_database_url: str, workdir: Path
) -> None:
    prefix = _prefix()
    broken = (
        'b = nx.Schema("mx_bad")\n\n@b.table("T", checks=[nx.Check("no_such_column > 0")])\n'
        "class T(msgspec.Struct):\n    x: int\n"
    )
    models = load_models(write_models(workdir / "pkgs", broken))
    with pytest.raises(MigrationError, match="the declarations do not build"):
        generate_migrations(
            fresh_database_url, models, workdir / "migrations", throwaway_prefix=prefix
        )
    assert databases(fresh_database_url, prefix) == []


def test_throwaway_database_is_dropped_on_ctrl_c(
    fresh_database_url: str, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nxdata.migrations import generate as generate_module

    seen: list[str] = []

    def interrupted(
        target: str, declared: str, schemas: object, **kwargs: object
    ) -> Callable[[], None]:
        seen.append(declared)
        raise KeyboardInterrupt

    monkeypatch.setattr(generate_module, "diff_databases", interrupted)
    prefix = _prefix()
    models = load_models("tests.migration_models.shop")
    with pytest.raises(KeyboardInterrupt):
        generate_migrations(
            fresh_database_url, models, workdir / "migrations", throwaway_prefix=prefix
        )
    assert seen and databases(fresh_database_url, prefix) == []


def test_migra_fix_foreign_keys_into_public_are_schema_qualified(
    fresh_database_url: str, workdir: Path
) -> None:
    """pg_get_constraintdef leaves out schemas on the search_path: `REFERENCES "Owner"(id)`
    would only apply where public is on the search_path. We inspect with search_path=pg_catalog."""
    source = (
        'pub = nx.Schema("public")\nmxq = nx.Schema("mx_q")\n\n'
        '@pub.table("Owner")\nclass Owner(msgspec.Struct):\n'
        "    id: Annotated[int, Column(primary_key=True)]\n\n"
        '@mxq.table("Pet", foreign_keys=[nx.ForeignKey("owner_id", Owner)],'
        ' indexes=[nx.Index("owner_id")])\n'
        "class Pet(msgspec.Struct):\n"
        "    id: Annotated[int, Column(primary_key=True)]\n    owner_id: int\n"
    )
    texts = generate(fresh_database_url, workdir, source, "init")
    pet = next(t for t in texts if '"mx_q"."Pet"' in t)
    assert 'REFERENCES public."Owner"(id)' in pet
    assert 'REFERENCES "Owner"' not in pet
    # applies even where public is not on the search path
    dbname = conninfo_to_dict(fresh_database_url)["dbname"]
    query(fresh_database_url, f'ALTER DATABASE "{dbname}" SET search_path = pg_catalog')
    apply_and_check(fresh_database_url, workdir, source)
