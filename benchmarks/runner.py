"""One benchmark run from start to end: server and database, data, the timed scenarios with every
contender interleaved, the concurrency matrix, the memory measurements, then the report files."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import os
import platform
import re
import shutil
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from . import data
from .contenders import CONTENDERS, Context
from .environment import bench_database, server, server_version
from .harness import Cell, Lineup, log, run_curve, run_group, run_matrix
from .memory import measure_all
from .report import render, to_json, write_curves_png, write_json, write_png
from .scenarios import MEMORY, SCENARIOS, Scenario, Workload
from .settings import Settings
from .targets import evaluate

__all__ = ["ALL_SCENARIOS", "run", "select_scenarios"]

ALL_SCENARIOS: tuple[Scenario, ...] = SCENARIOS + MEMORY


def select_scenarios(only: tuple[str, ...]) -> list[Scenario]:
    """The scenarios named by key or number (all when `only` is empty; a number without its
    letter, such as ``8`` or ``11``, means all its parts); ValueError on a typo."""
    if not only:
        return list(ALL_SCENARIOS)
    wanted = {w.strip().lower() for item in only for w in item.split(",") if w.strip()}
    families = {re.sub(r"[a-z]+$", "", s.number.lower()) for s in ALL_SCENARIOS}
    known = {s.key for s in ALL_SCENARIOS} | {s.number.lower() for s in ALL_SCENARIOS} | families
    unknown = {w for w in wanted if w not in known}
    if unknown:
        keys = ", ".join(s.key for s in ALL_SCENARIOS)
        raise ValueError(f"unknown scenario(s) {', '.join(sorted(unknown))}; one of: {keys}")
    return [
        s
        for s in ALL_SCENARIOS
        if s.key in wanted
        or s.number.lower() in wanted
        or re.sub(r"[a-z]+$", "", s.number.lower()) in wanted
    ]


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


class LoadLog:
    """The machine's load average (``os.getloadavg``), sampled at the start of the run (before
    any of its own work), after each scenario and at the end. A run whose load at the start, or
    whose median sample, is above the core count is marked in the report; so is each scenario
    after which the 1-minute load was above it (the benchmark itself keeps about one core busy,
    its client and the server's backend taking turns, more in the concurrency matrix)."""

    def __init__(self) -> None:
        self.cores = os.cpu_count() or 1
        self.start = os.getloadavg()
        self.after: dict[str, float] = {}

    def sample(self, key: str) -> None:
        self.after[key] = round(os.getloadavg()[0], 2)

    def to_json(self) -> dict[str, Any]:
        end = os.getloadavg()
        samples = sorted(self.after.values())
        median = samples[len(samples) // 2] if samples else end[0]
        reasons = []
        if self.start[0] > self.cores:
            reasons.append(f"1-minute load {self.start[0]:.2f} at the start > {self.cores} cores")
        if median > self.cores:
            reasons.append(f"median 1-minute load {median:.2f} during the run > {self.cores} cores")
        return {
            "cores": self.cores,
            "start": [round(v, 2) for v in self.start],
            "end": [round(v, 2) for v in end],
            "after_scenario": self.after,
            "median": median,
            "max": max(samples) if samples else end[0],
            "loaded": bool(reasons),
            "why": "; ".join(reasons),
        }


def run(settings: Settings) -> dict[str, Any]:
    """Run the benchmark; print the report; write JSON, PNGs and text under ``settings.out``.
    Returns the JSON document."""
    started = time.time()
    load_log = LoadLog()
    sizes = settings.sizes
    scenarios = select_scenarios(settings.only)
    order = [n for n in CONTENDERS if not settings.contenders or n in settings.contenders]
    results: dict[str, dict[str, Cell]] = {}
    streams = any(s.key in ("memory_stream", "fetch_curve", "stream_curve") for s in scenarios)
    with server(settings.url) as (server_url, where), bench_database(server_url) as url:
        log(f"database ready ({where}); loading data")
        t0 = time.perf_counter()
        data.load(
            url,
            fetch_rows=sizes.fetch_rows,
            stream_rows=sizes.stream_rows if streams else 0,
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
        try:
            timed = [s for s in scenarios if not s.memory and s.series != "matrix"]
            if timed:
                log("setting up contenders")
                lineup = Lineup(
                    order,
                    Context(url, pool_size=sizes.pool_size, workers=sizes.workers),
                    gc_mode=settings.gc,
                )
                # Everything alive now (modules, pools, the ids) lives for the whole run: keep it
                # out of the collections made before each measurement, which then take
                # microseconds.
                gc.collect()
                gc.freeze()
                try:
                    done: set[str] = set()
                    for scenario in timed:
                        if scenario.key in done:
                            continue
                        group = [
                            s for s in timed if scenario.group and s.group == scenario.group
                        ] or [scenario]
                        t0 = time.perf_counter()
                        if scenario.series == "curve":
                            results[scenario.key] = run_curve(
                                scenario,
                                lineup,
                                order,
                                workload,
                                rounds=scenario.rounds(sizes),
                            )
                        else:
                            results.update(
                                run_group(
                                    group,
                                    lineup,
                                    order,
                                    workload,
                                    warmup=sizes.warmup,
                                    rounds=max(s.rounds(sizes) for s in group),
                                )
                            )
                        for s in group:
                            done.add(s.key)
                            load_log.sample(s.key)
                        names = ", ".join(f"{s.number}. {s.key}" for s in group)
                        log(f"  {names}: {time.perf_counter() - t0:.1f} s")
                finally:
                    lineup.close()
            for scenario in (s for s in scenarios if s.series == "matrix"):
                log("concurrency matrix: a pool per contender and pool size, in turn")
                t0 = time.perf_counter()
                results[scenario.key] = run_matrix(
                    scenario, url, order, workload, gc_mode=settings.gc
                )
                load_log.sample(scenario.key)
                log(f"  {scenario.number}. {scenario.key}: {time.perf_counter() - t0:.1f} s")
        finally:
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
                load_log.sample(s.key)
            log(f"  memory: {time.perf_counter() - t0:.1f} s")

    meta: dict[str, Any] = {
        "mode": settings.mode,
        "started": dt.datetime.fromtimestamp(started).isoformat(timespec="seconds"),
        "duration_s": round(time.time() - started, 1),
        "machine": {
            "cpu": _cpu(),
            "cores": os.cpu_count(),
            "platform": platform.platform(),
        },
        "load": load_log.to_json(),
        "gc": settings.gc,
        "versions": _versions(),
        "server": {"version": version, "where": where},
        "sizes": dataclasses.asdict(sizes),
        "baselines": {s.key: s.baseline for s in scenarios},
    }
    targets = evaluate(results, sizes)
    document = to_json(results, scenarios, order, sizes, meta, targets)
    out = settings.out
    out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.fromtimestamp(started).strftime("%Y%m%d-%H%M%S")
    base = out / f"bench-{settings.mode}-{stamp}"
    write_json(base.with_suffix(".json"), document)  # first: the figures survive a report bug
    text = render(results, scenarios, order, sizes, meta, targets)
    print(text, end="", flush=True)
    base.with_suffix(".txt").write_text(text)
    title = (
        f"nxdata benchmarks ({settings.mode}, {meta['started']}) — "
        f"{meta['machine']['cpu']}, PostgreSQL {version}"
    )
    write_png(base.with_suffix(".png"), results, scenarios, order, title)
    curves = base.with_name(base.name + "-curves.png")
    wrote_curves = write_curves_png(curves, results, sizes, title)
    for suffix in (".json", ".txt", ".png"):
        shutil.copyfile(base.with_suffix(suffix), out / f"latest{suffix}")
    if wrote_curves:
        shutil.copyfile(curves, out / "latest-curves.png")
    log(
        f"wrote {base}.json, .txt, .png{' and -curves.png' if wrote_curves else ''} "
        f"(also latest.*) in {meta['duration_s']} s"
    )
    return document
