"""Peak memory, measured in a fresh child process per contender and scenario so that contenders
do not disturb each other: the growth of the RSS high-water mark over the RSS before the work.

Children are forked from a forkserver that has imported every contender beforehand, so each starts
in a few milliseconds from the same baseline. Linux's ``/proc/self/clear_refs`` resets the
high-water mark right before the work, so import and connection spikes are not counted. Garbage
is handled the same way for every contender: a full collection and ``gc.freeze()`` after set-up,
the collector enabled during the work.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from .contenders import CONTENDERS, Context, Unavailable, load

__all__ = ["measure", "measure_all"]

_PRELOAD = ["benchmarks.memory"] + [f"benchmarks.contenders.{m}" for m, _ in CONTENDERS.values()]


def _status() -> dict[str, int]:
    """VmRSS and VmHWM in kB (from /proc/self/status)."""
    out: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def measure(name: str, method: str, url: str) -> dict[str, Any]:
    """In the child: set the contender up, run ``method`` once, report MB and seconds."""
    try:
        contender = load(name)(Context(url=url, pool_size=1, workers=1))
    except Unavailable as exc:
        return {"na": str(exc), "na_kind": "unavailable"}
    if not hasattr(contender, method):
        reason = contender.inapplicable.get(method, "does not apply")
        return {"na": reason, "na_kind": "inapplicable"}

    if contender.is_async:
        return asyncio.run(_run_async_measure(contender, method))
    contender.setup()
    try:
        return _measure_sync(lambda: getattr(contender, method)())
    finally:
        contender.close()


def _finish(
    before: dict[str, int], exact: bool, maxrss_before: int, size: int, elapsed: float
) -> dict[str, Any]:
    after = _status()
    if exact:
        peak_kb = after["VmHWM"] - before["VmRSS"]
    else:  # no clear_refs: the lifetime high-water mark (ru_maxrss) is the best there is
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - maxrss_before
    return {
        "peak_mb": max(peak_kb, 0) / 1024,
        "baseline_mb": before["VmRSS"] / 1024,
        "rows": size,
        "seconds": elapsed,
        "exact": exact,
    }


def _measure_sync(call: Any) -> dict[str, Any]:
    gc.collect()
    gc.freeze()
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    exact = _reset_peak()
    before = _status()
    start = time.perf_counter()
    result = call()
    elapsed = time.perf_counter() - start
    size = result if isinstance(result, int) else len(result)
    out = _finish(before, exact, maxrss, size, elapsed)
    del result
    return out


async def _run_async_measure(contender: Any, method: str) -> dict[str, Any]:
    await contender.setup()
    try:
        gc.collect()
        gc.freeze()
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        exact = _reset_peak()
        before = _status()
        start = time.perf_counter()
        result = await getattr(contender, method)()
        elapsed = time.perf_counter() - start
        size = result if isinstance(result, int) else len(result)
        out = _finish(before, exact, maxrss, size, elapsed)
        del result
        return out
    finally:
        await contender.close()


def measure_all(
    jobs: list[tuple[str, str, str]], url: str, *, parallel: int = 2
) -> dict[tuple[str, str], dict[str, Any]]:
    """Run each ``(scenario key, contender name, method)`` in its own fresh child process,
    `parallel` at a time (memory does not depend on timing, so they may overlap)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    results: dict[tuple[str, str], dict[str, Any]] = {}
    with ProcessPoolExecutor(max_workers=parallel, mp_context=ctx, max_tasks_per_child=1) as pool:
        futures = {
            (key, name): pool.submit(measure, name, method, url) for key, name, method in jobs
        }
        for job, future in futures.items():
            try:
                results[job] = future.result()
            except Exception as exc:
                results[job] = {"na": f"{type(exc).__name__}: {exc}", "na_kind": "error"}
    return results
