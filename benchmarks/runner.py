"""One benchmark run from start to end: server and database, data, the timed scenarios with every
contender interleaved, the memory measurements, then the report files."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import os
import platform
import shutil
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from . import data
from .contenders import CONTENDERS, Context
from .environment import bench_database, server, server_version
from .harness import Cell, Lineup, log, run_scenario
from .memory import measure_all
from .report import render, to_json, write_json, write_png
from .scenarios import MEMORY, SCENARIOS, Scenario, Workload
from .settings import Settings
from .targets import evaluate

__all__ = ["ALL_SCENARIOS", "run", "select_scenarios"]

ALL_SCENARIOS: tuple[Scenario, ...] = SCENARIOS + MEMORY


def select_scenarios(only: tuple[str, ...]) -> list[Scenario]:
    """The scenarios named by key or number (all when `only` is empty); ValueError on a typo."""
    if not only:
        return list(ALL_SCENARIOS)
    wanted = {w.strip() for item in only for w in item.split(",") if w.strip()}
    known = {s.key for s in ALL_SCENARIOS} | {s.number.lower() for s in ALL_SCENARIOS}
    unknown = {w for w in wanted if w.lower() not in known}
    if unknown:
        keys = ", ".join(s.key for s in ALL_SCENARIOS)
        raise ValueError(f"unknown scenario(s) {', '.join(sorted(unknown))}; one of: {keys}")
    chosen = []
    for s in ALL_SCENARIOS:
        if (
            s.key in wanted
            or s.number.lower() in {w.lower() for w in wanted}
            or (s.number == "8a" and "8" in wanted)
            or (s.number == "8b" and "8" in wanted)
            or (s.number == "8c" and "8" in wanted)
        ):
            chosen.append(s)
    return chosen


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _versions() -> dict[str, str]:
    import psycopg

    out = {"python": platform.python_version(), "libpq": str(psycopg.pq.version())}
    for package in ("nxdata", "psycopg", "psycopg-pool", "asyncpg", "SQLAlchemy", "msgspec"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out


def run(settings: Settings) -> dict[str, Any]:
    """Run the benchmark; print the report; write JSON, PNG and text under ``settings.out``.
    Returns the JSON document."""
    started = time.time()
    sizes = settings.sizes
    scenarios = select_scenarios(settings.only)
    order = [n for n in CONTENDERS if not settings.contenders or n in settings.contenders]
    results: dict[str, dict[str, Cell]] = {}
    with server(settings.url) as (server_url, where), bench_database(server_url) as url:
        log(f"database ready ({where}); loading data")
        t0 = time.perf_counter()
        data.load(
            url,
            fetch_rows=sizes.fetch_rows,
            stream_rows=sizes.stream_rows
            if any(s.key == "memory_stream" for s in scenarios)
            else 0,
            write_rows=sizes.write_rows,
            wallets=sizes.wallets,
        )
        log(f"data loaded in {time.perf_counter() - t0:.1f} s")
        version = server_version(url)
        workload = Workload(
            url,
            sizes,
            item_ids=data.ids(url, data.SQL.item),
            write_ids=data.ids(url, data.SQL.write),
            wallet_ids=data.ids(url, data.SQL.wallet),
        )
        timed = [s for s in scenarios if not s.memory]
        if timed:
            log("setting up contenders")
            lineup = Lineup(order, Context(url, pool_size=sizes.pool_size, workers=sizes.workers))
            # Everything alive now (modules, pools, the ids) lives for the whole run: keep it out
            # of the collections made before each measurement, which then take microseconds.
            gc.collect()
            gc.freeze()
            try:
                for scenario in timed:
                    heavy = scenario.heavy
                    t0 = time.perf_counter()
                    results[scenario.key] = run_scenario(
                        scenario,
                        lineup,
                        order,
                        workload,
                        warmup=sizes.warmup,
                        rounds=sizes.heavy_rounds if heavy else sizes.rounds,
                    )
                    log(f"  {scenario.number}. {scenario.key}: {time.perf_counter() - t0:.1f} s")
            finally:
                lineup.close()
                workload.close()
        memory = [s for s in scenarios if s.memory]
        if memory:
            log("memory: one fresh process per contender and scenario")
            t0 = time.perf_counter()
            jobs = [(s.key, name, s.method) for s in memory for name in order]
            measured = measure_all(jobs, url, parallel=sizes.memory_parallel)
            for s in memory:
                cells = results.setdefault(s.key, {})
                expected = s.expect(sizes) if s.expect else None
                for name in order:
                    found = measured[(s.key, name)]
                    if "na" in found:
                        cells[name] = Cell(na=found["na"], na_kind=found["na_kind"])
                    elif expected is not None and found["rows"] != expected:
                        cells[name] = Cell(
                            na=f"read {found['rows']} rows, expected {expected}", na_kind="error"
                        )
                    else:
                        extra = {k: v for k, v in found.items() if k != "peak_mb"}
                        cells[name] = Cell(samples=[found["peak_mb"]], extra=extra)
            log(f"  memory: {time.perf_counter() - t0:.1f} s")

    meta = {
        "mode": settings.mode,
        "started": dt.datetime.fromtimestamp(started).isoformat(timespec="seconds"),
        "duration_s": round(time.time() - started, 1),
        "machine": {
            "cpu": _cpu(),
            "cores": os.cpu_count(),
            "platform": platform.platform(),
        },
        "versions": _versions(),
        "server": {"version": version, "where": where},
        "sizes": dataclasses.asdict(sizes),
        "baseline": "psycopg",
    }
    targets = evaluate(results)
    text = render(results, scenarios, order, sizes, meta, targets)
    print(text, end="", flush=True)
    document = to_json(results, scenarios, order, sizes, meta, targets)
    out = settings.out
    out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.fromtimestamp(started).strftime("%Y%m%d-%H%M%S")
    base = out / f"bench-{settings.mode}-{stamp}"
    write_json(base.with_suffix(".json"), document)
    base.with_suffix(".txt").write_text(text)
    title = (
        f"nxdata benchmarks ({settings.mode}, {meta['started']}): ratio to raw psycopg — "
        f"{meta['machine']['cpu']}, PostgreSQL {version}"
    )
    write_png(base.with_suffix(".png"), results, scenarios, order, title)
    for suffix in (".json", ".txt", ".png"):
        shutil.copyfile(base.with_suffix(suffix), out / f"latest{suffix}")
    log(f"wrote {base}.json, .txt and .png (also latest.*) in {meta['duration_s']} s")
    return document
