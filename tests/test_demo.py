"""`make demo` (``python -m schema.demo``) runs on a fresh database, and runs again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _demo(url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    env["NXDATA_DATABASE_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "schema.demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_demo_runs_on_a_fresh_database_and_again(fresh_database_url: str) -> None:
    first = _demo(fresh_database_url)
    assert first.returncode == 0, first.stdout + first.stderr
    out = first.stdout
    assert "applied: 22 files, 2 processes" in out
    assert "tables: 72" in out
    assert "rolled back: CheckViolation: CK_SaleOrderItem_quantity" in out
    assert "find_by_id after delete: None" in out
    assert "overdraft refused: CheckViolation on CK_Wallet_balance" in out
    assert "after 125.50 CAFE → TIX: CAFE=874.5000 TIX=375.5000" in out
    assert "update of the amount refused: UPDATE of finance.TransactionRecord is refused" in out
    assert "TIX writing a CAFE order: refused: new row violates row-level security" in out
    assert "merchants in sale.OrderTotal (as the owner): 2" in out
    assert "merchants in sale.OrderTotal as app_tenant for CAFE: ['CAFE']" in out
    assert "merchants in sale.OrderTotal as app_tenant for TIX: ['TIX']" in out

    second = _demo(fresh_database_url)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "applied: 0 files, 1 processes" in second.stdout
    assert "after 125.50 CAFE → TIX: CAFE=749.0000 TIX=501.0000" in second.stdout
