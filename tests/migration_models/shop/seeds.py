"""Seed processes of the shop: one run-once, one always-run (they count their runs)."""

from __future__ import annotations

from nxdata.migrations import ProcessContext, process


@process("mt_sales-0001-seed-permissions")
def seed_permissions(ctx: ProcessContext) -> None:
    ctx.execute(
        'INSERT INTO mt_sales."Permission" (code) VALUES (%s), (%s) ON CONFLICT DO NOTHING',
        ["order.read", "order.write"],
    )


@process("mt_sales-0002-count-runs", always_run=True)
def count_runs(ctx: ProcessContext) -> None:
    ctx.execute(
        'INSERT INTO mt_sales."Permission" (code, runs) VALUES (%s, 1) '
        'ON CONFLICT (code) DO UPDATE SET runs = "Permission".runs + 1',
        ["always"],
    )
