"""What a running application sees while migrations run: a reader and a writer every 20 ms on a
1M-row table (on a throwaway cluster of the test's own), while an index, a foreign key, a CHECK
and a NOT NULL column are added — the way a plain migration in one transaction does it
("before") and the way ``nxdata diff`` / ``migrate`` do it ("after": concurrent index, NOT VALID
then VALIDATE in another transaction, lock_timeout with retries) — with and without a long
transaction holding a lock on the table.

The figures (p50 / p99 / max latency of the application's statements, in ms) are printed with
``-s`` and quoted in the README.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pgcluster import Cluster

from nxdata.migrations.apply import LockPolicy
from nxdata.migrations.hazards import TargetState
from nxdata.migrations.online import plan_steps
from nxdata.migrations.runner import migrate

ROWS = int(os.environ.get("NXDATA_LATENCY_ROWS", "1000000"))
LONG_TRANSACTION = 2.0  # seconds the lock is held in the "long transaction" runs
TABLE = '"app"."Order"'

MIGRATIONS: dict[str, list[str]] = {
    "index": ['CREATE INDEX "IDX_Order_qty" ON app."Order" USING btree (qty);'],
    "foreign key": [
        'alter table "app"."Order" add constraint "FK_Order_customer_id_Customer_id" '
        'FOREIGN KEY (customer_id) REFERENCES app."Customer"(id) not valid;',
        'alter table "app"."Order" validate constraint "FK_Order_customer_id_Customer_id";',
    ],
    "check": [
        'alter table "app"."Order" add constraint "CK_Order_1" CHECK ((qty >= 0)) not valid;',
        'alter table "app"."Order" validate constraint "CK_Order_1";',
    ],
    "not null column": [
        'alter table "app"."Order" add column "status" text not null default \'new\';'
    ],
}
UNDO: dict[str, str] = {
    "index": 'DROP INDEX IF EXISTS app."IDX_Order_qty"',
    "foreign key": (
        f'ALTER TABLE {TABLE} DROP CONSTRAINT IF EXISTS "FK_Order_customer_id_Customer_id"'
    ),
    "check": f'ALTER TABLE {TABLE} DROP CONSTRAINT IF EXISTS "CK_Order_1"',
    "not null column": f"ALTER TABLE {TABLE} DROP COLUMN IF EXISTS status",
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with Cluster(settings={"max_wal_size": "1GB", "checkpoint_timeout": "30min"}) as c:
        c.execute(
            "CREATE SCHEMA app;"
            'CREATE TABLE app."Customer" (id int PRIMARY KEY);'
            'INSERT INTO app."Customer" SELECT g FROM generate_series(1, 1000) g;'
            f"CREATE TABLE {TABLE} (id bigint PRIMARY KEY, customer_id int NOT NULL,"
            " qty int NOT NULL, note text);"
            f"INSERT INTO {TABLE} SELECT g, 1 + g % 1000, g % 50, NULL "
            f"FROM generate_series(1, {ROWS}) g;"
        )
        c.execute(f"VACUUM ANALYZE {TABLE}")
        yield c


class App:
    """A reader and a writer, each one statement every 20 ms, recording their latencies."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.latencies: dict[str, list[float]] = {"read": [], "write": []}
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, args=(kind,), daemon=True)
            for kind in ("read", "write")
        ]

    def __enter__(self) -> App:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    def _loop(self, kind: str) -> None:
        rng = random.Random(kind)
        with psycopg.connect(self.url, autocommit=True) as conn:
            for _ in range(3000):  # bounded: 60 s at most
                if self._stop.is_set():
                    return
                row = rng.randint(1, ROWS)
                started = time.perf_counter()
                if kind == "read":
                    conn.execute(
                        f"SELECT id, customer_id, qty, note FROM {TABLE} WHERE id = %s", [row]
                    ).fetchall()
                else:
                    conn.execute(f"UPDATE {TABLE} SET qty = qty + 1 - 1 WHERE id = %s", [row])
                took = time.perf_counter() - started
                self.latencies[kind].append(took)
                self._stop.wait(max(0.0, 0.02 - took))

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        for kind, values in self.latencies.items():
            ordered = sorted(values)
            out[kind] = {
                "p50": 1000 * statistics.median(ordered),
                "p99": 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
                "max": 1000 * ordered[-1],
                "n": len(ordered),
            }
        return out


def _before(url: str, statements: list[str]) -> None:
    """Today's behaviour: the whole file in one transaction, no lock_timeout."""
    with psycopg.connect(url) as conn, conn.transaction():
        for statement in statements:
            conn.execute(statement)


def _after(url: str, statements: list[str], root: Path) -> None:
    """nxdata's: the diff's steps (online), applied by migrate under lock_timeout with retries."""
    state = TargetState(tables=frozenset({("app", "Order"), ("app", "Customer")}))
    steps = plan_steps(statements, state)
    parts = []
    for number, step in enumerate(steps, start=1):
        marker = f"-- nxdata: step {number}" + ("" if step.transaction else ", no transaction")
        parts.append(marker + "\n" + "\n\n".join(step.statements) + "\n")
    folder = root / "app"
    folder.mkdir(parents=True)
    (folder / "0001_change.sql").write_text("\n".join(parts))
    migrate(url, root, lock=LockPolicy(timeout=0.3, retries=20, backoff=0.2), data_checks=False)


def _run(
    cluster: Cluster, name: str, how: str, long_transaction: bool, root: Path
) -> dict[str, Any]:
    url = cluster.url
    statements = MIGRATIONS[name]
    with App(url) as app:
        time.sleep(0.5)  # a baseline before the migration starts
        holder, timer = None, None
        if long_transaction:
            holder = psycopg.connect(url)
            holder.execute(f"SELECT count(*) FROM {TABLE} WHERE id < 10")  # ACCESS SHARE held
            timer = threading.Timer(LONG_TRANSACTION, holder.rollback)
            timer.start()
        started = time.perf_counter()
        if how == "before":
            _before(url, statements)
        else:
            _after(url, statements, root)
        took = time.perf_counter() - started
        time.sleep(0.5)
    if timer is not None and holder is not None:
        timer.join()  # the long transaction ends on its own schedule
        holder.close()
    cluster.execute(UNDO[name])
    cluster.execute("DROP SCHEMA IF EXISTS nxdata_migrations CASCADE")  # the next run's files
    return {"migration s": round(took, 2), **app.summary()}


@pytest.mark.parametrize("long_transaction", [False, True], ids=["idle", "long-transaction"])
def test_the_application_keeps_running_during_migrations(
    cluster: Cluster, tmp_path: Path, long_transaction: bool
) -> None:
    results: dict[str, dict[str, Any]] = {}
    for name in MIGRATIONS:
        for how in ("before", "after"):
            folder = tmp_path / f"{name}-{how}".replace(" ", "_")
            results[f"{name}, {how}"] = _run(cluster, name, how, long_transaction, folder)
    print(
        f"\n{'long transaction' if long_transaction else 'no other transaction'} ({ROWS:,} rows):"
    )
    for key, value in results.items():
        print(f"  {key:28} {json.dumps(value)}")
    worst_write_after = max(results[f"{n}, after"]["write"]["max"] for n in MIGRATIONS)
    if long_transaction:
        # before: every statement queues behind the DDL that waits for the long transaction
        assert max(results[f"{n}, before"]["write"]["max"] for n in MIGRATIONS) > 1500
        # after: a DDL waits lock_timeout (0.3 s) at most, then steps aside and retries
        assert worst_write_after < 1200, results
    else:
        # a plain CREATE INDEX blocks writes for the whole build; CONCURRENTLY does not
        assert results["index, after"]["write"]["max"] < results["index, before"]["write"]["max"]
        assert worst_write_after < 1000, results
