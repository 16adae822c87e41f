"""``python -m benchmarks``: run the benchmarks (see ``--help`` and docs/benchmarks.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .contenders import BASELINE, BASELINE_POOL, CONTENDERS
from .runner import ALL_SCENARIOS, run, select_scenarios
from .settings import GC_MODES, MODES, Settings


def parse(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="nxdata side by side with raw psycopg (on a dedicated connection and "
        "through a pool), asyncpg and SQLAlchemy, interleaved in one run; medians and ratios "
        "to each scenario's baseline, the targets checked.",
    )
    parser.add_argument(
        "--url",
        help="server to run on (a fresh database is created there and dropped afterwards); "
        "default NXDATA_DATABASE_URL / DATABASE_URL, else an embedded PostgreSQL",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller sizes, fewer rounds (2-3 min on 2 cores)"
    )
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # for the test suite
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="SCENARIO",
        help="run only these scenarios (key or number, comma-separated, repeatable; 8, 11 "
        "and 12 mean all their parts): " + ", ".join(s.key for s in ALL_SCENARIOS),
    )
    parser.add_argument(
        "--contenders",
        default="",
        help="comma-separated subset of: "
        + ", ".join(CONTENDERS)
        + f" (the baselines {BASELINE} and {BASELINE_POOL} always run)",
    )
    parser.add_argument(
        "--gc",
        choices=GC_MODES,
        default="on",
        help="the collector during each measurement, for every contender alike: on (default, "
        "as in production) or off (collected before, disabled during)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).parent / "results",
        help="folder for the JSON, text and PNG reports (default: benchmarks/results/)",
    )
    args = parser.parse_args(argv)
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    contenders = tuple(c.strip() for c in args.contenders.split(",") if c.strip())
    unknown = [c for c in contenders if c not in CONTENDERS]
    if unknown:
        parser.error(f"unknown contender(s): {', '.join(unknown)}")
    if contenders:
        contenders = tuple(dict.fromkeys((BASELINE, BASELINE_POOL, *contenders)))
    try:
        select_scenarios(tuple(args.only))
    except ValueError as exc:
        parser.error(str(exc))
    return Settings(
        mode=mode,
        sizes=MODES[mode],
        url=args.url,
        only=tuple(args.only),
        contenders=contenders,
        out=args.out,
        gc=args.gc,
    )


def main(argv: list[str] | None = None) -> int:
    run(parse(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
