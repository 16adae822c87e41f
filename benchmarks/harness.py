"""Timing: contenders interleaved round-robin in one run, warm-up rounds, measured rounds, medians.

Each round runs every contender once on the scenario, in an order rotated by one each round, so
that drift (other load on the machine, the server's caches, autovacuum) falls on all of them alike.
Arguments are prepared untimed; async contenders are timed inside the event loop (the loop's
start-up is not counted).

Garbage collection is handled the same way for every contender: everything alive after set-up
is frozen out of the collector (the runner's ``gc.freeze()``), a full collection runs before each
measurement, and during it the collector is left enabled (``gc="on"``, the default: collections
are part of the cost, as in production) or disabled (``gc="off"``) — for every contender alike.
The collections that ran during each measurement are counted and reported with its figure.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .contenders import Contender, Context, Unavailable, load
from .scenarios import Point, Scenario, Workload, curve_points, headline_point, matrix_points

__all__ = [
    "Cell",
    "Lineup",
    "paired_ratio",
    "rotate",
    "run_curve",
    "run_group",
    "run_matrix",
    "run_scenario",
]


@dataclass
class Cell:
    """One contender on one scenario: the per-operation samples (seconds, or MB for memory) of
    the measured rounds, or why there are none (``na``); ``gc``: the garbage collections that
    ran during each measured round; ``series``: the points of a series scenario (concurrency,
    scale curves), each a Cell of its own (the headline point's samples are also the Cell's)."""

    samples: list[float] = field(default_factory=list)
    na: str | None = None
    na_kind: str | None = None  # "inapplicable" (by design) | "unavailable" | "error"
    extra: dict[str, Any] = field(default_factory=dict)
    gc: list[int] = field(default_factory=list)
    series: dict[str, Cell] = field(default_factory=dict)

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples and self.na is None else None

    @property
    def spread(self) -> float | None:
        """(max - min) / median of the samples: how noisy the rounds were."""
        median = self.median
        if median is None or len(self.samples) < 2 or median == 0:
            return None
        return (max(self.samples) - min(self.samples)) / median

    @property
    def collections(self) -> float | None:
        """Median garbage collections per measured round (None: not counted)."""
        return statistics.median(self.gc) if self.gc else None

    def fail(self, reason: str, kind: str) -> None:
        self.na, self.na_kind, self.samples, self.gc = reason, kind, [], []

    def to_json(self) -> dict[str, Any]:
        if self.na is not None:
            return {"na": self.na, "na_kind": self.na_kind, **self.extra}
        out: dict[str, Any] = {"median": self.median, "samples": self.samples, **self.extra}
        if self.gc:
            out["gc_collections"] = self.gc
        if self.series:
            out["series"] = {label: point.to_json() for label, point in self.series.items()}
        return out


def paired_ratio(a: Cell, b: Cell) -> float | None:
    """How a compares with b: the median over rounds of a's sample / b's sample of the same
    round (measured back to back, so drift slower than a round cancels out); the ratio of the
    medians when the rounds do not pair up (a single sample, a failed round)."""
    if a.median is None or b.median is None or not b.median:
        return None
    if len(a.samples) == len(b.samples) > 1 and all(b.samples):
        return statistics.median(x / y for x, y in zip(a.samples, b.samples, strict=True))
    return a.median / b.median


def rotate(items: list[Any], by: int) -> list[Any]:
    """``items`` rotated left by ``by`` (the round-robin order of one round)."""
    if not items:
        return items
    by %= len(items)
    return items[by:] + items[:by]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _collections() -> int:
    return sum(generation["collections"] for generation in gc.get_stats())


class Lineup:
    """The contenders of one run, set up and ready, with the event loop the async ones run on."""

    def __init__(self, names: Iterable[str], ctx: Context, *, gc_mode: str = "on") -> None:
        self.loop = asyncio.new_event_loop()
        self.ctx = ctx
        self.gc_mode = gc_mode
        self.contenders: dict[str, Contender] = {}
        self.unavailable: dict[str, str] = {}
        for name in names:
            try:
                contender = load(name)(ctx)
                self.call(contender, contender.setup)
            except Unavailable as exc:
                self.unavailable[name] = str(exc)
                log(f"  {name}: n/a ({exc})")
                continue
            except Exception as exc:  # a contender that cannot start must not sink the run
                self.unavailable[name] = f"set-up failed: {type(exc).__name__}: {exc}"
                log(f"  {name}: set-up failed\n{traceback.format_exc()}")
                continue
            self.contenders[name] = contender

    def call(self, contender: Contender, fn: Callable[..., Any], *args: Any) -> Any:
        result = fn(*args)
        if contender.is_async and asyncio.iscoroutine(result):
            return self.loop.run_until_complete(result)
        return result

    def timed(
        self, contender: Contender, fn: Callable[..., Any], args: tuple[Any, ...]
    ) -> tuple[float, int | None, int]:
        """Seconds one call takes, the size of what it returned (a count or a length) and the
        garbage collections that ran meanwhile; the result itself is dropped after the clock
        stops. The same collector treatment for every contender (see the module's doc)."""
        gc.collect()
        off = self.gc_mode == "off"
        before = _collections()
        if off:
            gc.disable()
        try:
            if contender.is_async:
                elapsed, result = self.loop.run_until_complete(_timed_async(fn, args))
            else:
                start = time.perf_counter()
                result = fn(*args)
                elapsed = time.perf_counter() - start
        finally:
            if off:
                gc.enable()
        collections = _collections() - before
        size = result if isinstance(result, int) else (len(result) if result is not None else None)
        del result
        return elapsed, size, collections

    def close(self) -> None:
        for name, contender in self.contenders.items():
            try:
                self.call(contender, contender.close)
            except Exception as exc:
                log(f"  {name}: close failed: {exc}")
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()


async def _timed_async(fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = await fn(*args)
    return time.perf_counter() - start, result


def _not_applicable(contender: Contender | type[Contender], method: str) -> str | None:
    if hasattr(contender, method):
        return None
    return contender.inapplicable.get(method, "does not apply")


def _cells(
    scenario: Scenario, lineup: Lineup, order: list[str]
) -> tuple[dict[str, Cell], list[str]]:
    """A Cell per contender, failed up front for those that are unavailable or do not apply;
    and the names of those that run."""
    cells: dict[str, Cell] = {}
    active: list[str] = []
    for name in order:
        if name in lineup.unavailable:
            cells[name] = Cell(na=lineup.unavailable[name], na_kind="unavailable")
            continue
        reason = _not_applicable(lineup.contenders[name], scenario.method)
        if reason is not None:
            kind = "unavailable" if reason.startswith("nxdata") else "inapplicable"
            cells[name] = Cell(na=reason, na_kind=kind)
            continue
        cells[name] = Cell()
        active.append(name)
    return cells, active


def _ops_of(scenario: Scenario, args: tuple[Any, ...], workload: Workload) -> int:
    if scenario.series == "matrix":
        return sum(len(batch) for batch in args[1])
    return scenario.ops(workload.sizes)


def _measure(
    scenario: Scenario,
    lineup: Lineup,
    name: str,
    cell: Cell,
    workload: Workload,
    *,
    measured: bool,
    point: Point | None = None,
) -> None:
    """One measurement of one contender, recorded in `cell` (a failure fails the cell)."""
    contender = lineup.contenders[name]
    try:
        args = workload.args(scenario, warmup=not measured, point=point)
        ops = _ops_of(scenario, args, workload)
        prepare = getattr(contender, "prepare_" + scenario.method, None)
        if prepare is not None:
            args = prepare(*args)
        elapsed, size, collections = lineup.timed(
            contender, getattr(contender, scenario.method), args
        )
        expected = scenario.expect(workload.sizes) if scenario.expect else None
        if scenario.series == "curve" and point is not None:
            expected = point.rows
        if not measured and scenario.method == "bulk_insert":
            expected = None
        if expected is not None and size != expected:
            raise AssertionError(f"returned {size} rows, expected {expected}")
    except Unavailable as exc:
        cell.fail(str(exc), "unavailable")
        log(f"    {name}: n/a ({exc})")
        return
    except Exception as exc:
        cell.fail(f"{type(exc).__name__}: {exc}", "error")
        log(f"    {name}: failed\n{traceback.format_exc()}")
        return
    if measured:
        cell.samples.append(elapsed / ops)
        cell.gc.append(collections)


def run_group(
    scenarios: list[Scenario],
    lineup: Lineup,
    order: list[str],
    workload: Workload,
    *,
    warmup: int,
    rounds: int,
) -> dict[str, dict[str, Cell]]:
    """Scenarios measured together: each round runs every scenario of the group, each with
    every contender in the round's rotated order, so the group's figures pair up by round."""
    results: dict[str, dict[str, Cell]] = {}
    actives: dict[str, list[str]] = {}
    for scenario in scenarios:
        results[scenario.key], actives[scenario.key] = _cells(scenario, lineup, order)
    for round_no in range(warmup + rounds):
        measured = round_no >= warmup
        for scenario in scenarios:
            cells = results[scenario.key]
            for name in rotate(actives[scenario.key], round_no):
                if cells[name].na is None:
                    _measure(scenario, lineup, name, cells[name], workload, measured=measured)
    return results


def run_scenario(
    scenario: Scenario,
    lineup: Lineup,
    order: list[str],
    workload: Workload,
    *,
    warmup: int,
    rounds: int,
) -> dict[str, Cell]:
    """Warm-up rounds, then measured rounds, all contenders interleaved; per-operation seconds."""
    return run_group([scenario], lineup, order, workload, warmup=warmup, rounds=rounds)[
        scenario.key
    ]


def run_curve(
    scenario: Scenario,
    lineup: Lineup,
    order: list[str],
    workload: Workload,
    *,
    rounds: int,
) -> dict[str, Cell]:
    """A scale curve: every point (row count) for every contender, interleaved per point, after
    one untimed warm-up at the smallest point. The headline is the largest point."""
    cells, active = _cells(scenario, lineup, order)
    points = curve_points(workload.sizes)
    for name in active:
        _measure(scenario, lineup, name, Cell(), workload, measured=False, point=points[0])
    for round_no in range(rounds):
        for point in points:
            for name in rotate(active, round_no):
                cell = cells[name]
                if cell.na is None:
                    target = cell.series.setdefault(point.label, Cell())
                    _measure(scenario, lineup, name, target, workload, measured=True, point=point)
                    if target.na is not None:
                        cell.fail(target.na, target.na_kind or "error")
    for cell in cells.values():
        if cell.na is None and cell.series:
            last = cell.series[points[-1].label]
            cell.samples, cell.gc = list(last.samples), list(last.gc)
    return cells


def _matrix_applies(kind: str, point: Point, threads: tuple[int, ...], headline: str) -> bool:
    if kind == "tasks":
        return True
    if kind == "threads":
        return point.tasks in threads
    if kind == "headline":
        return point.label == headline
    return False


def run_matrix(
    scenario: Scenario,
    url: str,
    order: list[str],
    workload: Workload,
    *,
    gc_mode: str,
) -> dict[str, Cell]:
    """The concurrency matrix: for each pool size and round, each contender in rotated order is
    set up with a pool of that size (so at most one pool is open at a time), warmed up (every
    connection prepares its statements), measured at each of its points (query, task or thread
    count), and closed. Throughput is per operation over the whole measurement."""
    sizes = workload.sizes
    points = matrix_points(sizes)
    headline = headline_point(sizes)
    cells: dict[str, Cell] = {}
    kinds: dict[str, str] = {}
    for name in order:
        try:
            cls = load(name)
        except Unavailable as exc:
            cells[name] = Cell(na=str(exc), na_kind="unavailable")
            continue
        reason = _not_applicable(cls, scenario.method)
        if reason is not None or cls.concurrency == "none":
            cells[name] = Cell(na=reason or "does not apply", na_kind="inapplicable")
            continue
        cells[name] = Cell()
        kinds[name] = cls.concurrency
    for pool in sorted({p.pool for p in points}):
        mine = {
            name: [
                p
                for p in points
                if p.pool == pool and _matrix_applies(kind, p, sizes.conc_threads, headline)
            ]
            for name, kind in kinds.items()
        }
        active = [name for name in kinds if mine[name]]
        for round_no in range(sizes.conc_rounds):
            for name in rotate(active, round_no):
                cell = cells[name]
                if cell.na is not None:
                    continue
                threads = max(p.tasks for p in mine[name])
                lineup = Lineup([name], Context(url, pool, threads), gc_mode=gc_mode)
                try:
                    if name in lineup.unavailable:
                        cell.fail(lineup.unavailable[name], "unavailable")
                        continue
                    # Warm-up: every connection of the pool prepares its statements (nxdata
                    # after 5 executions of one, the raw drivers at the first).
                    for query in sorted({p.query for p in mine[name]}):
                        warm = Point("warm-up", query, pool, threads)
                        _measure(
                            scenario, lineup, name, Cell(), workload, measured=False, point=warm
                        )
                    for point in mine[name]:
                        target = cell.series.setdefault(point.label, Cell())
                        _measure(
                            scenario, lineup, name, target, workload, measured=True, point=point
                        )
                        if target.na is not None:
                            cell.fail(target.na, target.na_kind or "error")
                            break
                finally:
                    lineup.close()
    for cell in cells.values():
        if cell.na is None and headline in cell.series:
            top = cell.series[headline]
            cell.samples, cell.gc = list(top.samples), list(top.gc)
    return cells
