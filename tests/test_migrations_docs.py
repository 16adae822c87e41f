"""The seed-process examples of docs/migrations.md run against the reference schema (``schema``)
on real PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

from nxdata import Database, create_statements
from nxdata.migrations import ProcessContext, load_models
from tests.migration_models.helpers import query

DOC = Path(__file__).resolve().parent.parent / "docs/migrations.md"


def _process_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    [block] = [b for b in blocks if "@process(" in b]
    return block


def test_seed_process_examples_run_on_the_reference_schema(fresh_database_url: str) -> None:
    models = load_models("schema")
    module = ModuleType("docs_migrations_example")
    exec(compile(_process_example(), str(DOC), "exec"), module.__dict__)
    with Database(fresh_database_url, min_size=1, max_size=2) as db:
        for statement in create_statements(list(models.schemas.values())):
            db.execute(statement)
        for name in ("seed_permissions", "demo_licenses", "seed_permissions"):
            with db.transaction() as tx:
                getattr(module, name)(ProcessContext(db, tx, name))
    assert query(fresh_database_url, 'SELECT code FROM public."Permission"') == [("license.read",)]
    rows = query(
        fresh_database_url,
        'SELECT l.license_key, m.code, p.code FROM licensing."License" l '
        'JOIN public."Merchant" m ON m.id = l.merchant_id '
        'JOIN licensing."Policy" p ON p.id = l.policy_id',
    )
    assert rows == [("DEMO", "DEMO", "DEMO")]
