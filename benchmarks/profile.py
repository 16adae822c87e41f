"""Profile one contender on one scenario: ``python -m benchmarks.profile large_fetch nxdata``.

Sets up the same database and data as a run (quick sizes unless ``--full``), warms the contender
up, then runs the scenario ``--repeat`` times under pyinstrument (``pip install pyinstrument``)
and prints where the time goes, function by function.
"""

from __future__ import annotations

import argparse
import gc
import sys

from . import data
from .contenders import CONTENDERS, Context
from .environment import bench_database, server
from .harness import Lineup
from .runner import ALL_SCENARIOS
from .scenarios import Workload
from .settings import FULL, QUICK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    parser.add_argument("scenario", choices=[s.key for s in ALL_SCENARIOS if not s.memory])
    parser.add_argument("contender", choices=list(CONTENDERS))
    parser.add_argument("--url")
    parser.add_argument("--full", action="store_true", help="full-run sizes")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--interval", type=float, default=0.0001, help="sampling interval (s)")
    args = parser.parse_args(argv)
    try:
        from pyinstrument import Profiler
    except ImportError:
        parser.error("needs pyinstrument: pip install pyinstrument")
    sizes = FULL if args.full else QUICK
    scenario = next(s for s in ALL_SCENARIOS if s.key == args.scenario)
    with server(args.url) as (server_url, _), bench_database(server_url) as url:
        data.load(
            url,
            fetch_rows=sizes.fetch_rows,
            stream_rows=0,
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
        lineup = Lineup([args.contender], Context(url, sizes.pool_size, sizes.workers))
        try:
            contender = lineup.contenders[args.contender]
            method = getattr(contender, scenario.method)
            prepare = getattr(contender, "prepare_" + scenario.method, None)

            def one() -> float:
                call_args = workload.args(scenario)
                if prepare is not None:
                    call_args = prepare(*call_args)
                return lineup.timed(contender, method, call_args)[0]

            one()  # warm-up
            gc.collect()
            gc.freeze()
            profiler = Profiler(interval=args.interval, async_mode="enabled")
            times = []
            with profiler:
                for _ in range(args.repeat):
                    times.append(one())
            ops = scenario.ops(sizes)
            per_op = sorted(times)[len(times) // 2] / ops
            print(f"{args.contender} {args.scenario}: median {per_op * 1e6:,.1f} µs per operation")
            print(profiler.output_text(unicode=True, color=False, show_all=False))
        finally:
            lineup.close()
            workload.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
