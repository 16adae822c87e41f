"""The migration files say what shop/models.py says: a declaration changed without its
migration (``nxdata diff --schema example_shop``) fails here, in CI, rather than in production."""

from __future__ import annotations

from nxdata.migrations import check_drift, load_models


def test_the_migrations_match_the_declarations(nxdata_url: str) -> None:
    # nxdata_url was built from shop/migrations (nxdata_build = "migrations"): diff it against
    # a throwaway database built from the declarations.
    drift = check_drift(nxdata_url, load_models("shop.models"), ["example_shop"])
    assert not drift, "\n".join(d.sql for d in drift)
