"""The pytest plugin as a user's project uses it: a separate pytest run (a subprocess) of a small
project whose tests use the fixtures — rows of one test never seen by the next (sync and async),
a clone per test for code that commits, and `assert_max_queries` failing with the statements
listed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PYPROJECT = """
[tool.nxdata]
models = "shopmodels"

[tool.pytest.ini_options]
asyncio_mode = "auto"
asyncio_default_fixture_loop_scope = "session"
asyncio_default_test_loop_scope = "session"
"""

MODELS = """
from typing import Annotated
import msgspec
import nxdata as nx

shop = nx.Schema("plugin_shop")

@shop.table("Product", uniques=[nx.Unique("name")])
class Product(msgspec.Struct, kw_only=True):
    id: Annotated[int, nx.Column(primary_key=True, identity="always")]
    name: str

@shop.table("Review", foreign_keys=[nx.ForeignKey("product_id", Product)])
class Review(msgspec.Struct, kw_only=True):
    id: Annotated[int, nx.Column(primary_key=True, identity="always")]
    product_id: int
    stars: int
"""

TESTS = """
import psycopg
import pytest
import nxdata as nx
from shopmodels import Product, Review


def test_a_writes(nxdata_transaction, nxdata_db):
    repo = nx.Repository(nxdata_db, Product)
    repo.create({"name": "kept only here"})
    with nxdata_db.transaction():  # a block inside: a savepoint of the test's transaction
        repo.create({"name": "inner"})
    assert repo.count() == 2


def test_b_sees_nothing(nxdata_transaction, nxdata_db):
    assert nx.Repository(nxdata_db, Product).count() == 0


async def test_c_async_writes(nxdata_atransaction, nxdata_adb):
    repo = nx.AsyncRepository(nxdata_adb, Product)
    await repo.create({"name": "async"})
    assert await repo.count() == 1


async def test_d_async_sees_nothing(nxdata_atransaction, nxdata_adb):
    assert await nx.AsyncRepository(nxdata_adb, Product).count() == 0


def test_e_clone_commits(nxdata_fresh_url):
    with nx.Database(nxdata_fresh_url) as db:
        nx.Repository(db, Product).create({"name": "committed"})
    with psycopg.connect(nxdata_fresh_url) as conn:
        assert conn.execute('SELECT count(*) FROM plugin_shop."Product"').fetchone() == (1,)


def test_f_counts_queries(nxdata_transaction, nxdata_db, assert_max_queries, nxdata_queries):
    products = nx.Repository(nxdata_db, Product)
    reviews = nx.Repository(nxdata_db, Review)
    made = [products.create({"name": f"p{i}"}) for i in range(3)]
    for p in made:
        reviews.create({"product_id": p.id, "stars": 5})
    with assert_max_queries(2):
        products.find({"include": ["reviews"]})  # two: products, then all their reviews
    assert [e.method for e in nxdata_queries][-2:] == ["find", "include reviews"]


def test_h_an_expected_error_in_a_block(nxdata_transaction, nxdata_db):
    repo = nx.Repository(nxdata_db, Product)
    repo.create({"name": "unique"})
    with pytest.raises(nx.errors.UniqueViolation), nxdata_db.transaction():
        repo.create({"name": "unique"})
    assert repo.count() == 1  # the test's transaction goes on


def test_g_n_plus_one_is_caught(nxdata_transaction, nxdata_db, assert_max_queries):
    products = nx.Repository(nxdata_db, Product)
    reviews = nx.Repository(nxdata_db, Review)
    for i in range(3):
        products.create({"name": f"p{i}"})
    with assert_max_queries(2):
        for p in products.find():
            reviews.find({"where": {"product_id": p.id}})  # one query per product
"""


def test_the_plugin_in_a_users_project(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    (tmp_path / "shopmodels.py").write_text(textwrap.dedent(MODELS))
    (tmp_path / "test_shop.py").write_text(textwrap.dedent(TESTS))
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    if "NXDATA_DATABASE_URL" not in env and "DATABASE_URL" not in env:
        env["NXDATA_DATABASE_URL"] = ""  # the plugin then starts its embedded server
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = done.stdout + done.stderr
    assert "1 failed, 7 passed" in out, out
    assert "FAILED test_shop.py::test_g_n_plus_one_is_caught" in out
    assert "4 statements, at most 2 expected:" in out
    assert "plugin_shop.Review find: SELECT" in out  # the statements are listed
    assert "3 of one shape (plugin_shop.Review find): an N+1 loop?" in out
