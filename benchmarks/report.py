"""The run's results as a terminal table, a JSON file, a PNG bar chart of the ratios to each
scenario's baseline and a PNG of the scale curves (matplotlib, Agg backend)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .contenders import BASELINE, BASELINE_POOL
from .harness import Cell, paired_ratio
from .scenarios import Scenario, curve_points, headline_point, matrix_points
from .settings import Sizes

__all__ = [
    "SHORT",
    "TIMES",
    "baseline_of",
    "format_value",
    "ratio",
    "render",
    "write_curves_png",
    "write_json",
    "write_png",
]

TIMES = "\u00d7"

SHORT = {
    "psycopg-conn": "pg-conn",
    "psycopg": "psycopg",
    "psycopg-async": "pg-async",
    "asyncpg": "asyncpg",
    "sqlalchemy-core": "sa-core",
    "sqlalchemy-orm": "sa-orm",
    "sqlalchemy-async": "sa-async",
    "nxdata": "nxdata",
    "nxdata-async": "nx-async",
}

BASELINE_TEXT = {
    BASELINE: "raw psycopg on one dedicated connection doing nxdata's work (prepared statements, "
    "session in UTC, jsonb by msgspec, rows built into the same Structs, writes returning "
    "the row)",
    BASELINE_POOL: "raw psycopg through a psycopg_pool pool (prepared statements, tuples, default "
    "loaders: jsonb by json.loads)",
}

Results = dict[str, dict[str, Cell]]


def baseline_of(scenario: Scenario, cells: dict[str, Cell]) -> str:
    """The contender the scenario's ratios are to: its own baseline when that one has a figure,
    else raw psycopg through a pool."""
    cell = cells.get(scenario.baseline)
    if cell is not None and cell.median is not None:
        return scenario.baseline
    return BASELINE_POOL


def ratio(cells: dict[str, Cell], name: str, baseline: str = BASELINE_POOL) -> float | None:
    """The contender against the baseline (time, or MB for memory): see `paired_ratio`."""
    base = cells.get(baseline)
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
    if scenario.series == "matrix":
        return "throughput, headline point"
    if scenario.series == "curve":
        return f"time per run at {sizes.curve_rows[-1]:,} rows"
    if scenario.throughput:
        return f"throughput over {ops:,} lookups per round"
    if ops == 1:
        return "time per run"
    return f"time per operation, {ops:,} per round"


def _load_lines(meta: dict[str, Any]) -> list[str]:
    load = meta.get("load")
    if not load:
        return []
    start = " / ".join(f"{v:.2f}" for v in load["start"])
    lines = [
        f"machine load (os.getloadavg, 1/5/15 min): {start} at the start; after the scenarios "
        f"median {load['median']:.2f}, max {load['max']:.2f} (1 min; includes this run's own "
        f"client and server work); {load['cores']} cores"
    ]
    if load["loaded"]:
        lines.append(
            f"!! LOADED RUN: {load['why']}: other work competed for the cores; "
            "read the figures with suspicion and run again on a quiet machine"
        )
    return lines


def _scenario_load(meta: dict[str, Any], key: str) -> str:
    load = meta.get("load")
    if not load:
        return ""
    value = load["after_scenario"].get(key)
    if value is not None and value > load["cores"]:
        return f"  [load {value:.2f} > {load['cores']} cores]"
    return ""


def _note(
    scenario: Scenario,
    cell: Cell,
    name: str,
    baseline: str,
    sizes: Sizes,
    notes: dict[str, dict[str, str]],
) -> str:
    parts = []
    if name == baseline:
        parts.append("baseline")
    if scenario.memory:
        parts.append(f"{cell.extra.get('rows', 0):,} rows in {cell.extra.get('seconds', 0):.2f} s")
    elif scenario.key == "bulk_insert" and cell.median:
        parts.append(f"{sizes.bulk_rows / cell.median:,.0f} rows/s")
    note = notes.get(name, {}).get(scenario.method)
    if note:
        parts.append(note)
    return "; ".join(parts)


def _contender_notes(order: list[str]) -> dict[str, dict[str, str]]:
    from .contenders import Unavailable, load

    out: dict[str, dict[str, str]] = {}
    for name in order:
        try:
            out[name] = dict(load(name).notes)
        except Unavailable:
            out[name] = {}
    return out


def _matrix_lines(cells: dict[str, Cell], sizes: Sizes) -> list[str]:
    """The concurrency matrix: ops/s per point for the async and sync contenders, and nxdata's
    throughput over its raw twin's (≥ 1: nxdata sustains at least as much)."""

    def tput(name: str, label: str) -> str:
        cell = cells.get(name)
        point = cell.series.get(label) if cell is not None else None
        if point is None or point.median is None:
            return "—"
        return f"{1 / point.median:,.0f}"

    def rel(fast: str, slow: str, label: str) -> str:
        a, b = cells.get(slow), cells.get(fast)
        if a is None or b is None or label not in a.series or label not in b.series:
            return "—"
        value = paired_ratio(a.series[label], b.series[label])
        return "—" if value is None else f"{value:.2f}"

    lines = [
        "   matrix, ops/s (medians); nx/apg = nxdata async ÷ asyncpg throughput, "
        "nx/pg = nxdata ÷ raw psycopg threads (≥ 1.00: nxdata sustains at least as much)",
        f"   {'query':<9}{'pool':>5}{'tasks':>6}{'nx-async':>10}{'asyncpg':>10}{'pg-async':>10}"
        f"{'nx/apg':>8}  |{'nxdata':>9}{'psycopg':>9}{'nx/pg':>7}",
    ]
    for point in matrix_points(sizes):
        label = point.label
        sync = point.tasks in sizes.conc_threads
        row = (
            f"   {point.query:<9}{point.pool:>5}{point.tasks:>6}"
            f"{tput('nxdata-async', label):>10}{tput('asyncpg', label):>10}"
            f"{tput('psycopg-async', label):>10}{rel('nxdata-async', 'asyncpg', label):>8}  |"
        )
        if sync:
            row += (
                f"{tput('nxdata', label):>9}{tput('psycopg', label):>9}"
                f"{rel('nxdata', 'psycopg', label):>7}"
            )
        lines.append(row.rstrip(" |") if not sync else row)
    return lines


def _curve_lines(
    scenario: Scenario, cells: dict[str, Cell], order: list[str], sizes: Sizes
) -> list[str]:
    names = [n for n in order if cells.get(n) is not None and cells[n].series]
    lines = [
        f"   ms per run, by rows ({sizes.curve_rounds} round(s), after an untimed warm-up)",
        f"   {'rows':>10}" + "".join(f"{SHORT.get(n, n):>10}" for n in names),
    ]
    for point in curve_points(sizes):
        row = f"   {point.rows:>10,}"
        for name in names:
            found = cells[name].series.get(point.label)
            median = found.median if found is not None else None
            row += f"{(f'{median * 1e3:,.1f}' if median is not None else '—'):>10}"
        lines.append(row)
    return lines


def render(
    results: Results,
    scenarios: list[Scenario],
    order: list[str],
    sizes: Sizes,
    meta: dict[str, Any],
    targets: list[dict[str, Any]],
) -> str:
    """The whole report as text."""
    gc_text = (
        "enabled during it (collections are part of the cost)"
        if meta.get("gc", "on") == "on"
        else "disabled during it"
    )
    lines = [
        f"nxdata benchmarks — {meta['mode']} mode, {meta['started']}",
        f"machine: {meta['machine']['cpu']} ({meta['machine']['cores']} cores), "
        f"Python {meta['versions']['python']}, PostgreSQL {meta['server']['version']} "
        f"({meta['server']['where']})",
        *_load_lines(meta),
        f"rounds: {sizes.warmup} warm-up + {sizes.rounds} measured ({sizes.heavy_rounds} for "
        f"the large fetch, {sizes.bulk_rounds} for the bulk insert, {sizes.conc_rounds} for "
        f"concurrency, {sizes.curve_rounds} for the curves), contenders interleaved in a "
        "rotated order; medians; spread = ± half the range of the rounds",
        "garbage collection, the same for every contender: a full collection before each "
        f"measurement, the collector {gc_text}; column gc: collections during a measurement",
        "ratio = contender ÷ the scenario's baseline (lower is better; throughput: baseline "
        "ops/s ÷ contender's). Baselines:",
        *(f"   {name}: {text}" for name, text in BASELINE_TEXT.items()),
        "",
    ]
    notes = _contender_notes(order)
    for scenario in scenarios:
        cells = results.get(scenario.key)
        if cells is None:
            continue
        base = baseline_of(scenario, cells)
        lines.append(
            f"{scenario.number}. {scenario.describe(sizes)} — {_unit_caption(scenario, sizes)}"
            f" — baseline {base}{_scenario_load(meta, scenario.key)}"
        )
        lines.append(f"   {'contender':<18}{'median':>16}{'ratio':>9}{'spread':>9}{'gc':>5}   note")
        for name in order:
            cell = cells.get(name)
            if cell is None:
                continue
            if cell.na is not None:
                lines.append(f"   {name:<18}{'—':>16}{'':>9}{'':>9}{'':>5}   n/a ({cell.na})")
                continue
            r = ratio(cells, name, base)
            spread = cell.spread
            collections = cell.collections
            lines.append(
                f"   {name:<18}{format_value(scenario, cell.median):>16}"
                f"{(f'{r:.2f}{TIMES}' if r is not None else '—'):>9}"
                f"{(f'±{spread * 50:.0f}%' if spread is not None else ''):>9}"
                f"{(f'{collections:.0f}' if collections is not None else ''):>5}   "
                f"{_note(scenario, cell, name, base, sizes, notes)}".rstrip()
            )
        if scenario.series == "matrix":
            lines += _matrix_lines(cells, sizes)
        elif scenario.series == "curve":
            lines += _curve_lines(scenario, cells, order, sizes)
        lines.append("")
    lines.append("Ratios to each scenario's baseline (time; throughput inverted; memory: MB)")
    lines.append(
        f"   {'scenario':<18}{'baseline':>10}" + "".join(f"{SHORT.get(n, n):>10}" for n in order)
    )
    for scenario in scenarios:
        cells = results.get(scenario.key)
        if cells is None:
            continue
        base = baseline_of(scenario, cells)
        row = f"   {scenario.key:<18}{SHORT.get(base, base):>10}"
        for name in order:
            r = ratio(cells, name, base)
            row += f"{(f'{r:.2f}' if r is not None else '—'):>10}"
        lines.append(row)
    if targets:
        met = sum(1 for t in targets if t["met"])
        lines += [
            "",
            f"Targets (issue 7) as revised and extended by issue 17: {met} of {len(targets)} met",
        ]
        if meta["mode"] != "full":
            # The targets are set for the full sizes (100k rows): fixed costs weigh more here.
            mode = meta["mode"]
            lines.append(f"   (indicative: {mode} mode runs smaller sizes; judge by make bench)")
        if meta.get("load", {}).get("loaded"):
            lines.append("   (taken on a loaded machine: see the load line at the top)")
        for t in targets:
            mark = {True: "MET   ", False: "MISSED", None: "n/a   "}[t["met"]]
            value = "—" if t["value"] is None else f"{t['value']:.2f}{t['unit']}"
            issue = "" if t.get("issue", 17) == 17 else f" (issue {t['issue']})"
            lines.append(f"   [{mark}] {t['target']}{issue}: {value}")
            if t.get("detail"):
                lines.append(f"              {t['detail']}")
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
        base = baseline_of(scenario, cells)
        entry: dict[str, Any] = {
            "number": scenario.number,
            "title": scenario.describe(sizes),
            "what": scenario.what,
            "unit": "MB" if scenario.memory else "seconds per operation",
            "ops_per_round": scenario.ops(sizes),
            "throughput": scenario.throughput,
            "baseline": base,
            "results": {},
        }
        if scenario.series == "matrix":
            entry["headline"] = headline_point(sizes)
        for name in order:
            cell = cells.get(name)
            if cell is None:
                continue
            found = cell.to_json()
            if cell.na is None:
                found["ratio"] = ratio(cells, name, base)
                found["display"] = format_value(scenario, cell.median)
            entry["results"][name] = found
        out["scenarios"][scenario.key] = entry
    return out


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")


def write_png(
    path: Path, results: Results, scenarios: list[Scenario], order: list[str], title: str
) -> None:
    """Grouped bars: for each scenario, each contender's ratio to its baseline (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [s for s in scenarios if s.key in results]
    bases = {s.key: baseline_of(s, results[s.key]) for s in shown}

    def r(s: Scenario, name: str) -> float | None:
        return ratio(results[s.key], name, bases[s.key])

    names = [n for n in order if any(r(s, n) is not None for s in shown)]
    fig, ax = plt.subplots(figsize=(max(10, 1.25 * len(shown) + 3), 6), dpi=110)
    width = 0.8 / max(1, len(names))
    colors = plt.get_cmap("tab10")
    for i, name in enumerate(names):
        xs, ys = [], []
        for j, scenario in enumerate(shown):
            value = r(scenario, name)
            if value is not None and value > 0:
                xs.append(j + (i - (len(names) - 1) / 2) * width)
                ys.append(value)
        ax.bar(xs, ys, width=width, label=name, color=colors(i % 10), edgecolor="white", lw=0.3)
    ax.axhline(1.0, color="black", lw=0.8, ls="--")
    ax.set_yscale("log")
    ax.set_xticks(range(len(shown)))
    ax.set_xticklabels(
        [f"{s.number}\n{s.key}\n({SHORT.get(bases[s.key], bases[s.key])})" for s in shown],
        fontsize=7,
    )
    ax.set_ylabel("ratio to the scenario's baseline, in brackets (lower is better)")
    ax.set_title(title, fontsize=10)
    values = [r(s, n) for s in shown for n in names]
    finite = [v for v in values if v is not None and v > 0 and math.isfinite(v)]
    if finite:
        ax.set_ylim(min(0.5, min(finite) * 0.8), max(2.0, max(finite) * 1.3))
    ax.legend(fontsize=8, ncol=5, loc="upper left")
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_curves_png(path: Path, results: Results, sizes: Sizes, title: str) -> bool:
    """The scale curves: fetch and stream time vs rows, throughput vs tasks (PK lookups and the
    filtered query, a line per contender and pool size). False when none of them ran."""
    panels = [
        key
        for key in ("fetch_curve", "stream_curve", "concurrency", "concurrency_f")
        if key.removesuffix("_f") in results
    ]
    if not panels:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    columns = 2 if len(panels) > 1 else 1
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(7 * columns, 4.8 * rows), dpi=110)
    axes_list = list(axes.flat) if len(panels) > 1 else [axes]
    for extra in axes_list[len(panels) :]:
        extra.set_visible(False)
    whole = FuncFormatter(lambda value, _: f"{value:,.0f}")
    colors = plt.get_cmap("tab10")
    index = {name: i for i, name in enumerate(SHORT)}
    for ax, key in zip(axes_list, panels, strict=False):
        if key in ("fetch_curve", "stream_curve"):
            for name, cell in results[key].items():
                if cell.na is not None or not cell.series:
                    continue
                xs, ys = [], []
                for point in curve_points(sizes):
                    found = cell.series.get(point.label)
                    if found is not None and found.median is not None:
                        xs.append(point.rows)
                        ys.append(found.median * 1e3)
                ax.plot(xs, ys, marker="o", label=name, color=colors(index.get(name, 0) % 10))
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xticks([p.rows for p in curve_points(sizes)])
            ax.xaxis.set_major_formatter(whole)
            ax.xaxis.set_minor_formatter(FuncFormatter(lambda value, _: ""))
            ax.set_xlabel("rows")
            ax.yaxis.set_major_formatter(whole)
            ax.yaxis.set_minor_formatter(FuncFormatter(lambda value, _: ""))
            ax.set_ylabel("milliseconds (lower is better)")
            what = "fetch into typed rows" if key == "fetch_curve" else "stream (rows dropped)"
            ax.set_title(f"{what}: time vs rows", fontsize=9)
        else:
            query = "pk" if key == "concurrency" else "filtered"
            pools = sorted({p.pool for p in matrix_points(sizes)})
            styles = ["-", "--", ":", "-."]
            for name, cell in results["concurrency"].items():
                if cell.na is not None:
                    continue
                for k, pool in enumerate(pools):
                    xs, ys = [], []
                    for point in matrix_points(sizes):
                        found = cell.series.get(point.label)
                        if point.query != query or point.pool != pool or found is None:
                            continue
                        if found.median:
                            xs.append(point.tasks)
                            ys.append(1 / found.median)
                    if len(xs) > 1:
                        ax.plot(
                            xs,
                            ys,
                            marker="o",
                            ls=styles[k % len(styles)],
                            color=colors(index.get(name, 0) % 10),
                            label=f"{name}, pool {pool}",
                        )
            ax.set_xscale("log", base=2)
            ax.set_xticks(sorted({p.tasks for p in matrix_points(sizes)}))
            ax.xaxis.set_major_formatter(whole)
            ax.set_xlabel("tasks (async) / threads (sync)")
            ax.set_ylabel("operations per second (higher is better)")
            what = "PK lookups" if query == "pk" else "filtered queries"
            ax.set_title(f"throughput vs concurrency, {what}", fontsize=9)
        ax.grid(which="both", alpha=0.3)
        ax.legend(fontsize=6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def load_results(document: dict[str, Any]) -> tuple[Results, list[Scenario], Sizes]:
    """A run's results, scenarios and sizes back from its JSON document (to render it again)."""
    from .runner import ALL_SCENARIOS

    def cell(found: dict[str, Any]) -> Cell:
        if "na" in found:
            return Cell(na=found["na"], na_kind=found["na_kind"])
        extra = {
            k: v
            for k, v in found.items()
            if k not in ("median", "samples", "gc_collections", "series", "ratio", "display")
        }
        out = Cell(samples=list(found["samples"]), gc=list(found.get("gc_collections", [])))
        out.extra = extra
        out.series = {label: cell(point) for label, point in found.get("series", {}).items()}
        return out

    sizes_found = dict(document["meta"]["sizes"])
    for name in ("conc_pools", "conc_tasks", "conc_threads", "curve_rows"):
        if name in sizes_found:
            sizes_found[name] = tuple(sizes_found[name])
    sizes = Sizes(**sizes_found)
    results = {
        key: {name: cell(found) for name, found in entry["results"].items()}
        for key, entry in document["scenarios"].items()
    }
    scenarios = [s for s in ALL_SCENARIOS if s.key in results]
    return results, scenarios, sizes


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.report RUN.json``: render a run's report again from its JSON
    (the targets are evaluated again, by the current `benchmarks.targets`)."""
    import sys

    from .targets import evaluate

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m benchmarks.report RUN.json", file=sys.stderr)
        return 2
    document = json.loads(Path(args[0]).read_text())
    results, scenarios, sizes = load_results(document)
    targets = evaluate(results, sizes)
    print(render(results, scenarios, document["contenders"], sizes, document["meta"], targets))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
