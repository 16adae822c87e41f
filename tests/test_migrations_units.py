"""The parts of the migration tools that need no database: safety classification, statement
fixes, file names and numbering, ordering of files and schemas, project settings."""

from __future__ import annotations

from pathlib import Path

import pytest

import nxdata as nx
from nxdata.errors import ConfigurationError, MigrationError
from nxdata.migrations.differ import _fix_statements, schema_order
from nxdata.migrations.files import (
    MigrationFile,
    checksum,
    list_files,
    next_file,
    parse_requires,
    slugify,
)
from nxdata.migrations.hazards import is_widening, normalize_type, unsafe_statements
from nxdata.migrations.project import load_settings
from nxdata.migrations.runner import order_pending


@pytest.mark.parametrize(
    ("old", "new", "widening"),
    [
        ("integer", "bigint", True),
        ("smallint", "integer", True),
        ("bigint", "integer", False),
        ("character varying(10)", "varchar(20)", True),
        ("character varying(20)", "varchar(10)", False),
        ("character varying(10)", "text", True),
        ("text", "varchar(10)", False),
        ("numeric(10,2)", "numeric(12,2)", True),
        ("numeric(10,2)", "numeric(10,3)", False),
        ("numeric(10,2)", "numeric", True),
        ("integer", "numeric(12,0)", True),
        ("bigint", "numeric(12,0)", False),
        ("real", "double precision", True),
        ("double precision", "real", False),
        ("text[]", "text", False),
        ("timestamp with time zone", "timestamptz", True),
        ("timestamp without time zone", "timestamptz", False),
    ],
)
def test_widening(old: str, new: str, widening: bool) -> None:
    assert is_widening(normalize_type(old), normalize_type(new)) is widening


def test_unsafe_statements_are_found_with_the_parser() -> None:
    statements = [
        'alter table "s"."T" drop column "a";',
        'drop table "s"."Old";',
        'drop index if exists "s"."IDX_T_a";',
        'alter table "s"."T" drop constraint "CK_T_1";',
        'alter table "s"."T" alter column "n" set data type bigint using "n"::bigint;',
        'alter table "s"."T" alter column "c" set data type varchar(5) using "c"::varchar(5);',
        'create table "s"."dropped" ("drop" text default \'drop me\');',  # words, not drops
        'drop type "s"."mood";',
        'drop sequence "s"."seq";',
    ]
    found = unsafe_statements(statements, {("s", "T", "n"): "integer", ("s", "T", "c"): "text"})
    assert [u.reason for u in found] == [
        "drops column T.a",
        "drops table s.Old",
        "changes the type of T.c (text to varchar(5)): values may not fit",
        "drops type s.mood",
        "drops sequence s.seq",
    ]
    # A type change of a column we know nothing about is unsafe.
    [unknown] = unsafe_statements(["alter table s.x alter column y type bigint;"])
    assert unknown.reason == "changes the type of x.y (to bigint): values may not fit"


def test_foreign_keys_move_after_everything_else_and_extensions_go() -> None:
    statements = [
        'create extension if not exists "citext" with schema "public" version \'1.6\';',
        'create table "s"."A" ("code" text);',
        'alter table "s"."A" add constraint "FK_A" FOREIGN KEY (code) REFERENCES s."B"(code) '
        "not valid;",
        'alter table "s"."A" validate constraint "FK_A";',
        'alter table "s"."B" add constraint "UQ_B" UNIQUE using index "UQ_B";',
        'drop extension if exists "hstore";',
    ]
    assert _fix_statements(statements) == [
        statements[1],
        statements[4],
        statements[2],
        statements[3],
    ]


def test_schema_order_follows_foreign_keys() -> None:
    import msgspec

    a, b, c = nx.Schema("zz_units_a"), nx.Schema("zz_units_b"), nx.Schema("zz_units_c")

    @c.table("Root")
    class Root(msgspec.Struct):
        id: int

    @a.table("Leaf", foreign_keys=[nx.ForeignKey("root_id", Root, "id")])
    class Leaf(msgspec.Struct):
        root_id: int

    assert [s.name for s in schema_order([a, b, c])] == ["zz_units_b", "zz_units_c", "zz_units_a"]


def test_file_names_and_numbering(tmp_path: Path) -> None:
    assert slugify("Add status, v2!") == "add_status_v2"
    with pytest.raises(ConfigurationError):
        slugify("!!!")
    assert next_file(tmp_path, "s", "init").path == tmp_path / "s/0001_init.sql"
    (tmp_path / "s").mkdir()
    (tmp_path / "s/0001_init.sql").write_text("-- requires: a/0001_x, b/0002_y\nSELECT 1;\n")
    (tmp_path / "s/0009_later.sql").write_text("SELECT 1;\n")
    (tmp_path / "s/README.md").write_text("not a migration")
    files = list_files(tmp_path, "s")
    assert [f.name for f in files] == ["0001_init", "0009_later"]
    assert files[0].requires == ("a/0001_x", "b/0002_y")
    assert next_file(tmp_path, "s", "more").name == "0010_more"
    (tmp_path / "s/0009_clash.sql").write_text("SELECT 2;\n")
    with pytest.raises(MigrationError, match="two migration files numbered 9"):
        list_files(tmp_path, "s")


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("0003_AddIndex.sql", "rename it to 0003_addindex.sql"),
        ("0004_add-index.sql", "rename it to 0004_add_index.sql"),
        ("3_fix.sql", "rename it to 0003_fix.sql"),
        ("fix.sql", None),
        ("0005_carrier.SQL", "rename it to 0005_carrier.sql"),
    ],
)
def test_misnamed_sql_file_is_an_error_not_skipped(
    tmp_path: Path, name: str, hint: str | None
) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s/0001_init.sql").write_text("SELECT 1;\n")
    (tmp_path / "s" / name).write_text("SELECT 2;\n")
    with pytest.raises(MigrationError) as info:
        list_files(tmp_path, "s")
    message = str(info.value)
    assert name in message and "0007_add_index.sql" in message and "four digits" in message
    if hint is None:
        assert "rename" not in message
    else:
        assert hint in message
    with pytest.raises(MigrationError, match="not a valid migration file name"):
        next_file(tmp_path, "s", "more")  # diff numbers after the files: it must not skip it


def test_non_utf8_file_is_a_migration_error(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s/0001_init.sql").write_bytes(b"-- caf\xe9\nSELECT 1;\n")
    with pytest.raises(MigrationError, match=r"0001_init.sql is not UTF-8 text \(byte 0xe9"):
        list_files(tmp_path, "s")


def test_checksum_ignores_line_endings() -> None:
    assert checksum("a;\r\nb;\r\n") == checksum("a;\nb;\n") != checksum("a;\nc;\n")
    assert parse_requires("-- requires: x/0001_a\n-- requires: y/0002_b\n") == (
        "x/0001_a",
        "y/0002_b",
    )


def _file(key: str, *requires: str) -> MigrationFile:
    schema, name = key.split("/")
    number, label = name.split("_", 1)
    return MigrationFile(schema, int(number), label, Path(f"{key}.sql"), requires)


def test_order_pending_respects_numbers_and_requires() -> None:
    files = [
        _file("aa/0001_init", "zz/0001_init"),
        _file("aa/0002_more"),
        _file("zz/0001_init"),
        _file("zz/0002_next", "aa/0001_init"),
    ]
    assert [f.key for f in order_pending(files, set())] == [
        "zz/0001_init",
        "aa/0001_init",
        "aa/0002_more",
        "zz/0002_next",
    ]
    assert [f.key for f in order_pending(files, {"zz/0001_init", "aa/0001_init"})] == [
        "aa/0002_more",
        "zz/0002_next",
    ]
    with pytest.raises(MigrationError, match="requires zz/0001_init, which is not applied"):
        order_pending([files[0]], set())
    cycle = [_file("aa/0001_x", "zz/0001_y"), _file("zz/0001_y", "aa/0001_x")]
    with pytest.raises(MigrationError, match="cycle"):
        order_pending(cycle, set())


def test_settings_from_pyproject(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.nxdata]\nmodels = "app.models"\nmigrations = "db/migrations"\n'
    )
    (tmp_path / "sub").mkdir()
    settings = load_settings(tmp_path / "sub")
    assert settings.models == "app.models"
    assert settings.migrations_dir == tmp_path / "db/migrations"
    monkeypatch.chdir(tmp_path / "sub")
    override = load_settings(models="other", migrations="m")
    assert override.models == "other" and override.migrations_dir == tmp_path / "sub/m"
    (tmp_path / "pyproject.toml").write_text("[tool.nxdata\n")
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_settings(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.nxdata]\nmodles = "app"\nmigrate = "m"\n')
    with pytest.raises(ConfigurationError, match=r"unknown key 'migrate' in \[tool.nxdata\]"):
        load_settings(tmp_path)
