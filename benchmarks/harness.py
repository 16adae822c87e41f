"""Timing: contenders interleaved round-robin in one run, warm-up rounds, measured rounds, medians.

Each round runs every contender once on the scenario, in an order rotated by one each round, so
that drift (other load on the machine, the server's caches, autovacuum) falls on all of them alike.
Arguments are prepared untimed, garbage is collected before each measurement, and async
contenders are timed inside the event loop (the loop's start-up is not counted).
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
from .scenarios import Scenario, Workload

__all__ = ["Cell", "Lineup", "paired_ratio", "rotate", "run_scenario"]


@dataclass
class Cell:
    """One contender on one scenario: the per-operation samples (seconds, or MB for memory) of
    the measured rounds, or why there are none (``na``)."""

    samples: list[float] = field(default_factory=list)
    na: str | None = None
    na_kind: str | None = None  # "inapplicable" (by design) | "unavailable" | "error"
    extra: dict[str, Any] = field(default_factory=dict)

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

    def to_json(self) -> dict[str, Any]:
        if self.na is not None:
            return {"na": self.na, "na_kind": self.na_kind, **self.extra}
        return {"median": self.median, "samples": self.samples, **self.extra}


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


class Lineup:
    """The contenders of one run, set up and ready, with the event loop the async ones run on."""

    def __init__(self, names: Iterable[str], ctx: Context) -> None:
        self.loop = asyncio.new_event_loop()
        self.ctx = ctx
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
    ) -> tuple[float, int | None]:
        """Seconds one call takes, and the size of what it returned (a count or a length); the
        result itself is dropped after the clock stops."""
        gc.collect()
        if contender.is_async:
            elapsed, result = self.loop.run_until_complete(_timed_async(fn, args))
        else:
            start = time.perf_counter()
            result = fn(*args)
            elapsed = time.perf_counter() - start
        size = result if isinstance(result, int) else (len(result) if result is not None else None)
        del result
        return elapsed, size

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


def _not_applicable(contender: Contender, scenario: Scenario) -> str | None:
    if hasattr(contender, scenario.method):
        return None
    return contender.inapplicable.get(scenario.method, "does not apply")


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
    cells: dict[str, Cell] = {}
    active: list[str] = []
    for name in order:
        if name in lineup.unavailable:
            cells[name] = Cell(na=lineup.unavailable[name], na_kind="unavailable")
            continue
        reason = _not_applicable(lineup.contenders[name], scenario)
        if reason is not None:
            kind = "unavailable" if reason.startswith("nxdata") else "inapplicable"
            cells[name] = Cell(na=reason, na_kind=kind)
            continue
        cells[name] = Cell()
        active.append(name)
    ops = scenario.ops(workload.sizes)
    for round_no in range(warmup + rounds):
        measured = round_no >= warmup
        for name in rotate(active, round_no):
            cell = cells[name]
            if cell.na is not None:
                continue
            contender = lineup.contenders[name]
            try:
                args = workload.args(scenario, warmup=not measured)
                prepare = getattr(contender, "prepare_" + scenario.method, None)
                if prepare is not None:
                    args = prepare(*args)
                elapsed, size = lineup.timed(contender, getattr(contender, scenario.method), args)
                expected = scenario.expect(workload.sizes) if scenario.expect else None
                if not measured and scenario.method == "bulk_insert":
                    expected = None
                if expected is not None and size != expected:
                    raise AssertionError(f"returned {size} rows, expected {expected}")
            except Unavailable as exc:
                cell.na, cell.na_kind, cell.samples = str(exc), "unavailable", []
                log(f"    {name}: n/a ({exc})")
                continue
            except Exception as exc:
                cell.na, cell.na_kind, cell.samples = f"{type(exc).__name__}: {exc}", "error", []
                log(f"    {name}: failed\n{traceback.format_exc()}")
                continue
            if measured:
                cell.samples.append(elapsed / ops)
    return cells
