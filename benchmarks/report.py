"""The run's results as a terminal table, a JSON file and a PNG bar chart of the ratios to raw
psycopg (matplotlib, Agg backend)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .contenders import BASELINE
from .harness import Cell, paired_ratio
from .scenarios import Scenario
from .settings import Sizes

__all__ = ["SHORT", "TIMES", "format_value", "ratio", "render", "write_json", "write_png"]

TIMES = "\u00d7"

SHORT = {
    "psycopg": "psycopg",
    "psycopg-async": "pg-async",
    "asyncpg": "asyncpg",
    "sqlalchemy-core": "sa-core",
    "sqlalchemy-orm": "sa-orm",
    "sqlalchemy-async": "sa-async",
    "nxdata": "nxdata",
    "nxdata-async": "nx-async",
}

Results = dict[str, dict[str, Cell]]


def ratio(cells: dict[str, Cell], name: str) -> float | None:
    """The contender against the baseline (time, or MB for memory): see `paired_ratio`."""
    base = cells.get(BASELINE)
    mine = cells.get(name)
    if base is None or mine is None:
        return None
    return paired_ratio(mine, base)


def format_value(scenario: Scenario, value: float | None) -> str:
    """A median for people: µs or ms per operation, operations per second, or MB."""
    if value is None:
        return "n/a"
    if scenario.memory:
        return f"{value:,.1f} MB"
    if scenario.throughput:
        return f"{1 / value:,.0f} ops/s"
    if scenario.unit == "ms":
        return f"{value * 1e3:,.1f} ms"
    return f"{value * 1e6:,.1f} µs"


def _unit_caption(scenario: Scenario, sizes: Sizes) -> str:
    ops = scenario.ops(sizes)
    if scenario.memory:
        return "MB of RSS high-water growth, one fresh process each"
    if scenario.throughput:
        return f"throughput over {ops:,} lookups per round"
    if ops == 1:
        return "time per run"
    return f"time per operation, {ops:,} per round"


def render(
    results: Results,
    scenarios: list[Scenario],
    order: list[str],
    sizes: Sizes,
    meta: dict[str, Any],
    targets: list[dict[str, Any]],
) -> str:
    """The whole report as text."""
    lines = [
        f"nxdata benchmarks — {meta['mode']} mode, {meta['started']}",
        f"machine: {meta['machine']['cpu']} ({meta['machine']['cores']} cores), "
        f"Python {meta['versions']['python']}, PostgreSQL {meta['server']['version']} "
        f"({meta['server']['where']})",
        f"rounds: {sizes.warmup} warm-up + {sizes.rounds} measured "
        f"({sizes.heavy_rounds} for 100k-row scenarios), contenders interleaved; medians; "
        "ratio = contender / raw psycopg (lower is better)",
        "",
    ]
    for scenario in scenarios:
        cells = results.get(scenario.key)
        if cells is None:
            continue
        lines.append(
            f"{scenario.number}. {scenario.describe(sizes)} — {_unit_caption(scenario, sizes)}"
        )
        lines.append(f"   {'contender':<18}{'median':>16}{'ratio':>9}{'spread':>9}   note")
        for name in order:
            cell = cells.get(name)
            if cell is None:
                continue
            if cell.na is not None:
                lines.append(f"   {name:<18}{'—':>16}{'':>9}{'':>9}   n/a ({cell.na})")
                continue
            r = ratio(cells, name)
            spread = cell.spread
            note = ""
            if scenario.memory:
                note = f"{cell.extra.get('rows', 0):,} rows in {cell.extra.get('seconds', 0):.2f} s"
            elif scenario.key == "bulk_insert" and cell.median:
                note = f"{sizes.bulk_rows / cell.median:,.0f} rows/s"
            lines.append(
                f"   {name:<18}{format_value(scenario, cell.median):>16}"
                f"{(f'{r:.2f}{TIMES}' if r is not None else '—'):>9}"
                f"{(f'±{spread * 50:.0f}%' if spread is not None else ''):>9}   {note}".rstrip()
            )
        lines.append("")
    lines.append("Ratios to raw psycopg (time; memory: MB), medians of this run")
    header = f"   {'scenario':<16}" + "".join(f"{SHORT.get(n, n):>10}" for n in order)
    lines.append(header)
    for scenario in scenarios:
        cells = results.get(scenario.key)
        if cells is None:
            continue
        row = f"   {scenario.key:<16}"
        for name in order:
            r = ratio(cells, name)
            row += f"{(f'{r:.2f}' if r is not None else '—'):>10}"
        lines.append(row)
    if targets:
        lines += ["", "Targets (issue 7)"]
        if meta["mode"] != "full":
            # The targets are set for the full sizes (100k rows): fixed costs weigh more here.
            mode = meta["mode"]
            lines.append(f"   (indicative: {mode} mode runs smaller sizes; judge by make bench)")
        for t in targets:
            mark = {True: "MET   ", False: "MISSED", None: "n/a   "}[t["met"]]
            value = "—" if t["value"] is None else f"{t['value']:.2f}{t['unit']}"
            lines.append(f"   [{mark}] {t['target']}: {value}")
    return "\n".join(lines) + "\n"


def to_json(
    results: Results,
    scenarios: list[Scenario],
    order: list[str],
    sizes: Sizes,
    meta: dict[str, Any],
    targets: list[dict[str, Any]],
) -> dict[str, Any]:
    out: dict[str, Any] = {"meta": meta, "contenders": order, "scenarios": {}, "targets": targets}
    for scenario in scenarios:
        cells = results.get(scenario.key)
        if cells is None:
            continue
        entry: dict[str, Any] = {
            "number": scenario.number,
            "title": scenario.describe(sizes),
            "what": scenario.what,
            "unit": "MB" if scenario.memory else "seconds per operation",
            "ops_per_round": scenario.ops(sizes),
            "throughput": scenario.throughput,
            "results": {},
        }
        for name in order:
            cell = cells.get(name)
            if cell is None:
                continue
            data = cell.to_json()
            if cell.na is None:
                data["ratio"] = ratio(cells, name)
                data["display"] = format_value(scenario, cell.median)
            entry["results"][name] = data
        out["scenarios"][scenario.key] = entry
    return out


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")


def write_png(
    path: Path, results: Results, scenarios: list[Scenario], order: list[str], title: str
) -> None:
    """Grouped bars: for each scenario, each contender's ratio to raw psycopg (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [s for s in scenarios if s.key in results]
    names = [n for n in order if any(ratio(results[s.key], n) is not None for s in shown)]
    fig, ax = plt.subplots(figsize=(max(10, 1.25 * len(shown) + 3), 6), dpi=110)
    width = 0.8 / max(1, len(names))
    colors = plt.get_cmap("tab10")
    for i, name in enumerate(names):
        xs, ys = [], []
        for j, scenario in enumerate(shown):
            r = ratio(results[scenario.key], name)
            if r is not None and r > 0:
                xs.append(j + (i - (len(names) - 1) / 2) * width)
                ys.append(r)
        ax.bar(xs, ys, width=width, label=name, color=colors(i % 10), edgecolor="white", lw=0.3)
    ax.axhline(1.0, color="black", lw=0.8, ls="--")
    ax.set_yscale("log")
    ax.set_xticks(range(len(shown)))
    ax.set_xticklabels([f"{s.number}\n{s.key}" for s in shown], fontsize=8)
    ax.set_ylabel("ratio to raw psycopg (lower is better; memory: MB ratio)")
    ax.set_title(title, fontsize=10)
    lows = [ratio(results[s.key], n) for s in shown for n in names]
    finite = [v for v in lows if v is not None and v > 0 and math.isfinite(v)]
    if finite:
        ax.set_ylim(min(0.5, min(finite) * 0.8), max(2.0, max(finite) * 1.3))
    ax.legend(fontsize=8, ncol=4, loc="upper left")
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
