"""Profile one contender on one scenario: ``python -m benchmarks.profile large_fetch nxdata``.

Sets up the same database and data as a run (quick sizes unless ``--full``), warms the contender
up, then runs the scenario ``--repeat`` times under pyinstrument (``pip install pyinstrument``)
and prints where the time goes, function by function. ``--cprofile`` uses the standard library's
deterministic profiler instead and prints the top cumulative costs, those inside nxdata/ first
(``--top``). Series scenarios take a ``--point``: ``pk/p16/t128`` (concurrency: query, pool size,
tasks) or a row count (the scale curves); default: the headline point.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import sys
from typing import Any

from . import data
from .contenders import CONTENDERS, Context
from .environment import bench_database, server
from .harness import Lineup
from .runner import ALL_SCENARIOS
from .scenarios import Point, Workload, headline_point
from .settings import FULL, QUICK


def _point(scenario_series: str | None, label: str | None, sizes: Any) -> Point | None:
    if scenario_series == "matrix":
        label = label or headline_point(sizes)
        query, pool, tasks = label.split("/")
        return Point(label, query, int(pool.removeprefix("p")), int(tasks.removeprefix("t")))
    if scenario_series == "curve":
        rows = int(label) if label else max(sizes.curve_rows)
        return Point(str(rows), rows=rows)
    return None


def _cprofile_report(profile: cProfile.Profile, top: int, ops: int) -> str:
    """nxdata's own time per operation (the self time of its functions), then the top
    cumulative costs, those inside nxdata/ first, then everything."""
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    entries: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(row[2] for row in entries.values())
    own = sum(row[2] for key, row in entries.items() if "/nxdata/" in key[0])
    out.write(
        f"self time inside nxdata/: {own / ops * 1e6:,.1f} µs per operation "
        f"({own / total:.0%} of the profiled {total / ops * 1e6:,.1f} µs; the rest is the "
        "driver, the pool, the harness and waiting for the server)\n"
    )
    stats.sort_stats("cumulative")
    out.write(f"-- top {top} cumulative, inside nxdata/ --\n")
    stats.print_stats(r"/nxdata/", top)
    out.write(f"-- top {top} cumulative, everything --\n")
    stats.print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    parser.add_argument("scenario", choices=[s.key for s in ALL_SCENARIOS if not s.memory])
    parser.add_argument("contender", choices=list(CONTENDERS))
    parser.add_argument("--url")
    parser.add_argument("--full", action="store_true", help="full-run sizes")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--point", help="series scenarios: pk/p16/t128, or a row count")
    parser.add_argument("--interval", type=float, default=0.0001, help="sampling interval (s)")
    parser.add_argument("--cprofile", action="store_true", help="cProfile, cumulative costs")
    parser.add_argument("--top", type=int, default=25, help="cProfile: lines per listing")
    args = parser.parse_args(argv)
    profiler: Any = None
    if not args.cprofile:
        try:
            from pyinstrument import Profiler
        except ImportError:
            parser.error("needs pyinstrument (pip install pyinstrument), or use --cprofile")
        profiler = Profiler(interval=args.interval, async_mode="enabled")
    sizes = FULL if args.full else QUICK
    scenario = next(s for s in ALL_SCENARIOS if s.key == args.scenario)
    point = _point(scenario.series, args.point, sizes)
    pool = point.pool if point is not None and point.pool else sizes.pool_size
    workers = point.tasks if point is not None and point.tasks else sizes.workers
    with server(args.url) as (server_url, _), bench_database(server_url) as url:
        data.load(
            url,
            fetch_rows=sizes.fetch_rows,
            stream_rows=sizes.stream_rows if scenario.series == "curve" else 0,
            write_rows=sizes.write_rows,
            wallets=sizes.wallets,
        )
        workload = Workload(
            url,
            sizes,
            item_ids=data.ids(url, data.SQL.item),
            write_ids=data.ids(url, data.SQL.write),
            wallet_ids=data.ids(url, data.SQL.wallet),
        )
        lineup = Lineup([args.contender], Context(url, pool, workers))
        try:
            if args.contender not in lineup.contenders:
                parser.error(f"{args.contender}: {lineup.unavailable.get(args.contender)}")
            contender = lineup.contenders[args.contender]
            if not hasattr(contender, scenario.method):
                parser.error(f"{args.contender} does not run {scenario.key}")
            method = getattr(contender, scenario.method)
            prepare = getattr(contender, "prepare_" + scenario.method, None)

            def one() -> tuple[float, int]:
                call_args = workload.args(scenario, point=point)
                ops = (
                    sum(len(b) for b in call_args[1])
                    if scenario.series == "matrix"
                    else scenario.ops(sizes)
                )
                if prepare is not None:
                    call_args = prepare(*call_args)
                return lineup.timed(contender, method, call_args)[0], ops

            for _ in range(2):  # warm-up: statements prepared on every connection
                one()
            gc.collect()
            gc.freeze()
            times = []
            total_ops = 0
            if args.cprofile:
                profile = cProfile.Profile()
                for _ in range(args.repeat):
                    profile.enable()
                    elapsed, ops = one()
                    profile.disable()
                    times.append(elapsed / ops)
                    total_ops += ops
            else:
                with profiler:
                    for _ in range(args.repeat):
                        elapsed, ops = one()
                        times.append(elapsed / ops)
            per_op = sorted(times)[len(times) // 2]
            where = f" at {point.label}" if point is not None else ""
            print(
                f"{args.contender} {args.scenario}{where}: median {per_op * 1e6:,.1f} µs per "
                f"operation{' (under cProfile: slower than unprofiled)' if args.cprofile else ''}"
            )
            if args.cprofile:
                print(_cprofile_report(profile, args.top, total_ops))
            else:
                print(profiler.output_text(unicode=True, color=False, show_all=False))
        finally:
            lineup.close()
            workload.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
