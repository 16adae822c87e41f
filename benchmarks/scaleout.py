"""``python -m benchmarks.scaleout``: what a read replica and PgBouncer do for PK lookups.

Starts its own servers (nothing touches the configured one): a throwaway PostgreSQL cluster, a
streaming replica of it and a PgBouncer in transaction mode in front of it, from the test
suite's helpers (``tests/pgcluster.py``). ``bench."Item"`` (the benchmark's table shape, 10,000
rows by default) is loaded on the primary before the replica is cloned from it.

(a) **Read replicas.** Primary-key lookups (`find_by_id`) from concurrent clients (16 asyncio
    tasks, 8 threads) on a handle without replicas, with ``replicas=[replica, primary]`` (reads
    round robin over both servers) and with ``replicas=[replica]`` (every read on the replica).
(b) **PgBouncer.** The same lookups from 16 clients through PgBouncer (transaction mode, 4
    server connections) against direct connections: 16 of them, and 4 shared by the 16 clients.

Every measurement runs all clients for a fixed time (each also stops after a fixed count), and
the configurations of a table are interleaved over several rounds in an order rotated each
round; the report gives the median lookups/s and the spread (± half the range, relative to the
median). Beside it, where the CPU went (medians over the rounds): microseconds of CPU per lookup
in the client process and in our servers (both postmasters with their backends, PgBouncer),
and the cores taken by every other process on the machine (a noise gauge: on a shared box
they are what makes one round slower than the next) or left idle. On a machine whose cores are
all busy, throughput is about cores ÷ CPU per lookup, whatever the number of servers.
Writes the report to ``benchmarks/results/scaleout.md`` (git-ignored; ``--out``) and prints it.
About two minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg

import nxdata as nx
from nxdata.config import redact
from nxdata.replicas import ReplicaState

from .data import SQL, Item, ids, load

# The throwaway clusters and PgBouncer are the test suite's (tests/pgcluster.py); this module is
# their only user outside the tests, so it borrows them from there rather than moving them.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from pgcluster import Cluster, PgBouncer, pgbouncer_binary

DBNAME = "scaleout"
ROWS = 10_000
SETTINGS = {
    # Every handle of a phase is open at once, pools full (min_size = max_size); a hot standby
    # needs max_connections at least the primary's, and gets the same settings.
    "max_connections": "200",
}


@dataclass(frozen=True)
class Config:
    """One way of reaching the data: a handle's URL and options, and how many clients use it."""

    label: str
    url: str
    clients: int
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def pool(self) -> int:
        return int(self.options["max_size"])


@dataclass
class Sample:
    """One measurement: lookups per second; CPU per lookup (µs) of the clients (this process),
    of our PostgreSQL servers (both clusters) and of PgBouncer; cores used meanwhile by every
    other process on the machine, and cores left idle."""

    rate: float
    client_us: float
    postgres_us: float
    bouncer_us: float
    others: float
    idle: float


@dataclass
class Figures:
    label: str
    samples: list[Sample] = field(default_factory=list)
    reads: str = ""

    def median(self) -> float:
        return statistics.median(s.rate for s in self.samples)

    def spread(self) -> float:
        rates = [s.rate for s in self.samples]
        return (max(rates) - min(rates)) / 2 / statistics.median(rates)


# -- measuring -------------------------------------------------------------------------------


_TICK = os.sysconf("SC_CLK_TCK")


def _machine_ticks() -> tuple[int, int]:
    """(busy, idle) clock ticks of the whole machine since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields[:8]) - idle, idle  # guest time is already counted in user


class CpuMeter:
    """Where the machine's CPU goes during a measurement: the clients (this process), our
    servers (the postmasters given, their children, and PgBouncer) and everything else."""

    def __init__(self, parents: Sequence[int], others: Sequence[int]) -> None:
        self.parents = set(parents)  # postmasters: they and their backends are ours
        self.pids = set(others)  # single processes of ours (PgBouncer)

    def server_ticks(self) -> tuple[int, int]:
        """(PostgreSQL, PgBouncer) CPU ticks so far."""
        postgres = bouncer = 0
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue  # gone meanwhile
            fields = stat.rpartition(")")[2].split()
            pid, ppid = int(entry.name), int(fields[1])
            if pid in self.pids:
                bouncer += int(fields[11]) + int(fields[12])  # utime + stime
            elif pid in self.parents or ppid in self.parents:
                postgres += int(fields[11]) + int(fields[12])
        return postgres, bouncer

    def clock(self) -> _Clock:
        return _Clock(self)


class _Clock:
    """Wall time and CPU use over one measurement."""

    def __init__(self, meter: CpuMeter) -> None:
        self.meter = meter

    def __enter__(self) -> _Clock:
        gc.collect()
        self.server_ticks = self.meter.server_ticks()
        self.machine = _machine_ticks()
        self.cpu = time.process_time()
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed = time.perf_counter() - self.started
        self.cpu = time.process_time() - self.cpu
        busy, idle = (b - a for b, a in zip(_machine_ticks(), self.machine, strict=True))
        self.busy, self.idle = busy / _TICK, idle / _TICK
        pg, pgb = (b - a for b, a in zip(self.meter.server_ticks(), self.server_ticks, strict=True))
        self.postgres, self.bouncer = pg / _TICK, pgb / _TICK

    def sample(self, lookups: int) -> Sample:
        t, per = self.elapsed, 1e6 / max(lookups, 1)
        others = max(self.busy - self.cpu - self.postgres - self.bouncer, 0.0)
        return Sample(
            lookups / t,
            self.cpu * per,
            self.postgres * per,
            self.bouncer * per,
            others / t,
            self.idle / t,
        )


def _id_lists(all_ids: Sequence[str], clients: int, seed: int) -> list[list[str]]:
    """One shuffled list of every id per client, each in its own order."""
    rng = random.Random(seed)
    lists = []
    for _ in range(clients):
        mine = list(all_ids)
        rng.shuffle(mine)
        lists.append(mine)
    return lists


async def _run_async(
    repo: nx.AsyncRepository[Item],
    id_lists: list[list[str]],
    seconds: float,
    cap: int,
    meter: CpuMeter,
) -> Sample:
    async def client(mine: list[str], deadline: float) -> int:
        find_by_id, n, size = repo.find_by_id, 0, len(mine)
        while n < cap and time.perf_counter() < deadline:
            if await find_by_id(mine[n % size]) is None:
                raise AssertionError("a lookup found no row")
            n += 1
        return n

    with meter.clock() as clock:
        deadline = time.perf_counter() + seconds
        counts = await asyncio.gather(*(client(mine, deadline) for mine in id_lists))
    return clock.sample(sum(counts))


def _run_sync(
    repo: nx.Repository[Item],
    id_lists: list[list[str]],
    seconds: float,
    cap: int,
    executor: ThreadPoolExecutor,
    meter: CpuMeter,
) -> Sample:
    def client(mine: list[str], deadline: float) -> int:
        find_by_id, n, size = repo.find_by_id, 0, len(mine)
        while n < cap and time.perf_counter() < deadline:
            if find_by_id(mine[n % size]) is None:
                raise AssertionError("a lookup found no row")
            n += 1
        return n

    with meter.clock() as clock:
        deadline = time.perf_counter() + seconds
        futures = [executor.submit(client, mine, deadline) for mine in id_lists]
        total = sum(f.result() for f in futures)
    return clock.sample(total)


def _reads(states: Sequence[ReplicaState], names: dict[str, str]) -> str:
    """Reads each replica URL served, e.g. ``replica 51%, primary 49%``."""
    total = sum(s.reads for s in states) or 1
    return ", ".join(f"{names.get(s.url, s.url)} {100 * s.reads / total:.0f}%" for s in states)


@dataclass(frozen=True)
class Plan:
    rounds: int
    seconds: float
    warmup: float
    cap: int


async def measure_async(
    configs: list[Config],
    all_ids: list[str],
    plan: Plan,
    names: dict[str, str],
    meter: CpuMeter,
) -> list[Figures]:
    """Every config with asyncio tasks, interleaved over the rounds."""
    async with AsyncExitStack() as stack:
        repos = []
        for config in configs:
            db = nx.AsyncDatabase(config.url, **config.options)
            await db.open()
            stack.push_async_callback(db.close)
            repos.append((db, nx.AsyncRepository(db, Item)))
        lists = [_id_lists(all_ids, c.clients, seed=i) for i, c in enumerate(configs)]
        figures = [Figures(c.label) for c in configs]
        # Warm-up: pools filled (replica pools open in the background), statements prepared.
        for (_, repo), mine in zip(repos, lists, strict=True):
            await _run_async(repo, mine, plan.warmup, plan.cap, meter)
        for round_ in range(plan.rounds):
            for i in _rotated(len(configs), round_):
                sample = await _run_async(repos[i][1], lists[i], plan.seconds, plan.cap, meter)
                figures[i].samples.append(sample)
        for (db, _), figure in zip(repos, figures, strict=True):
            figure.reads = _reads(db.replica_states(), names)
        return figures


def measure_sync(
    configs: list[Config],
    all_ids: list[str],
    plan: Plan,
    names: dict[str, str],
    meter: CpuMeter,
) -> list[Figures]:
    """Every config with threads, interleaved over the rounds."""
    with ExitStack() as stack:
        executor = stack.enter_context(ThreadPoolExecutor(max(c.clients for c in configs)))
        repos = []
        for config in configs:
            db = stack.enter_context(nx.Database(config.url, **config.options))
            db.open()
            repos.append((db, nx.Repository(db, Item)))
        lists = [_id_lists(all_ids, c.clients, seed=i) for i, c in enumerate(configs)]
        figures = [Figures(c.label) for c in configs]
        for (_, repo), mine in zip(repos, lists, strict=True):
            _run_sync(repo, mine, plan.warmup, plan.cap, executor, meter)
        for round_ in range(plan.rounds):
            for i in _rotated(len(configs), round_):
                sample = _run_sync(repos[i][1], lists[i], plan.seconds, plan.cap, executor, meter)
                figures[i].samples.append(sample)
        for (db, _), figure in zip(repos, figures, strict=True):
            figure.reads = _reads(db.replica_states(), names)
        return figures


def _rotated(n: int, round_: int) -> list[int]:
    start = round_ % n
    return list(range(start, n)) + list(range(start))


# -- the report ------------------------------------------------------------------------------


def _table(
    title: str, figures: list[Figures], notes: str, extra: Callable[[Figures], str]
) -> list[str]:
    base = figures[0].median()
    lines = [
        f"### {title}",
        "",
        "| set-up | lookups/s (median) | spread | vs first row | CPU µs/lookup: client "
        f"| PostgreSQL | PgBouncer | other processes, cores | idle, cores | {notes} |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for f in figures:

        def med(part: str, f: Figures = f) -> float:
            return float(statistics.median(getattr(s, part) for s in f.samples))

        lines.append(
            f"| {f.label} | {f.median():,.0f} | ±{100 * f.spread():.0f}% "
            f"| {f.median() / base:.2f}x | {med('client_us'):.0f} | {med('postgres_us'):.0f} "
            f"| {med('bouncer_us'):.0f} "
            f"| {med('others'):.2f} | {med('idle'):.2f} | {extra(f)} |"
        )
    return [*lines, ""]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def _setup_lines(primary: Cluster, rows: int, plan: Plan, load_before: float) -> list[str]:
    with primary.connect() as conn:
        row = conn.execute("SHOW server_version").fetchone()
    server = row[0] if row else "?"
    binary = pgbouncer_binary()
    bouncer = "?"
    if binary is not None:
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True)
        bouncer = out.stdout.split("\n", 1)[0].removeprefix("PgBouncer ").strip()
    return [
        f"- machine: {_cpu_model()}, {os.cpu_count()} cores (client, both servers and "
        f"PgBouncer share them), load average (1 min) before the run {load_before:.2f}",
        f"- PostgreSQL {server} (throwaway initdb clusters: fsync off, shared_buffers 32MB; "
        f"a streaming replica from pg_basebackup), PgBouncer {bouncer} (transaction mode)",
        f"- Python {platform.python_version()}, nxdata {_version('nxdata')}, "
        f"psycopg {_version('psycopg')} ({psycopg.pq.__impl__}, libpq {psycopg.pq.version()}), "
        f"psycopg-pool {_version('psycopg-pool')}",
        f'- data: `bench."Item"`, {rows:,} rows of 10 columns (jsonb included); one operation = '
        "`find_by_id` of a random existing id, full row decoded into the table's Struct",
        f"- {plan.rounds} measured rounds of {plan.seconds:g} s per set-up (each client also "
        f"stops after {plan.cap:,} lookups), interleaved, after a {plan.warmup:g} s warm-up; "
        "spread = ± half the range relative to the median; all connections over TCP on "
        "127.0.0.1; pools opened full (min_size = max_size)",
    ]


def _pgbouncer_pid(pgb: PgBouncer) -> int:
    assert pgb.base_dir is not None
    return int((pgb.base_dir / "pgbouncer.pid").read_text().split()[0])


# -- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaleout", description=__doc__)
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=1.0, help="per measurement")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds per set-up")
    parser.add_argument("--cap", type=int, default=100_000, help="lookups per client at most")
    parser.add_argument("--tasks", type=int, default=16, help="async clients in (a)")
    parser.add_argument("--threads", type=int, default=8, help="sync clients in (a)")
    parser.add_argument("--clients", type=int, default=16, help="clients in (b), both kinds")
    parser.add_argument("--bouncer-pool", type=int, default=4, help="PgBouncer pool_size")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).parent / "results",
        help="folder for scaleout.md (default: benchmarks/results/); '-' to only print",
    )
    args = parser.parse_args(argv)
    plan = Plan(args.rounds, args.seconds, args.warmup, args.cap)
    if pgbouncer_binary() is None:
        parser.error("pgbouncer is not installed (apt-get install pgbouncer)")

    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    with Cluster(settings=SETTINGS) as primary:
        primary.execute(f"CREATE DATABASE {DBNAME}")
        primary_url = primary.dsn(DBNAME)
        load(primary_url, fetch_rows=args.rows, stream_rows=0, write_rows=0, wallets=0)
        all_ids = ids(primary_url, SQL.item)
        with primary.standby() as replica, PgBouncer(primary, pool_size=args.bouncer_pool) as pgb:
            primary.wait_for_replay(replica)
            replica_url = replica.dsn(DBNAME)
            bouncer_url = pgb.dsn(DBNAME)
            names = {
                redact(replica_url): "replica",
                redact(primary_url): "primary",
            }
            print(
                f"servers up and {args.rows:,} rows loaded in "
                f"{time.perf_counter() - started:.1f} s; measuring...",
                file=sys.stderr,
            )

            def replicas(clients: int) -> list[Config]:
                full = {"min_size": clients, "max_size": clients}
                return [
                    Config("primary alone", primary_url, clients, full),
                    Config(
                        "replicas=[replica, primary]: reads over both",
                        primary_url,
                        clients,
                        {**full, "replicas": [replica_url, primary_url]},
                    ),
                    Config(
                        "replicas=[replica]: reads on the replica",
                        primary_url,
                        clients,
                        {**full, "replicas": [replica_url]},
                    ),
                ]

            n, pool = args.clients, args.bouncer_pool
            bouncing = [
                Config(
                    f"PgBouncer, pool_size={pool}: {n} client connections",
                    bouncer_url,
                    n,
                    {"min_size": n, "max_size": n},
                ),
                Config(f"direct, {n} connections", primary_url, n, {"min_size": n, "max_size": n}),
                Config(
                    f"direct, {pool} connections shared by the {n} clients",
                    primary_url,
                    n,
                    {"min_size": pool, "max_size": pool},
                ),
            ]
            meter = CpuMeter(
                [pid for pid in (primary.postmaster_pid(), replica.postmaster_pid()) if pid],
                [_pgbouncer_pid(pgb)],
            )
            a_async, a_sync = replicas(args.tasks), replicas(args.threads)
            results = {
                "a_async": asyncio.run(measure_async(a_async, all_ids, plan, names, meter)),
                "a_sync": measure_sync(a_sync, all_ids, plan, names, meter),
                "b_async": asyncio.run(measure_async(bouncing, all_ids, plan, names, meter)),
                "b_sync": measure_sync(bouncing, all_ids, plan, names, meter),
            }
            setup = _setup_lines(primary, args.rows, plan, load_before)

    def reads(f: Figures) -> str:
        return f.reads or "primary only"

    pool_of = {c.label: c.pool for c in bouncing}
    lines = [
        "## Scale-out: read replica and PgBouncer (`python -m benchmarks.scaleout`)",
        "",
        *setup,
        "",
        *_table(
            f"(a) Read replicas, {args.tasks} asyncio tasks (AsyncDatabase, pool of "
            f"{args.tasks} per server)",
            results["a_async"],
            "reads served",
            reads,
        ),
        *_table(
            f"(a) Read replicas, {args.threads} threads (Database, pool of {args.threads} "
            "per server)",
            results["a_sync"],
            "reads served",
            reads,
        ),
        *_table(
            f"(b) PgBouncer, {n} asyncio tasks (AsyncDatabase)",
            results["b_async"],
            "nxdata pool",
            lambda f: f"{pool_of[f.label]} connections",
        ),
        *_table(
            f"(b) PgBouncer, {n} threads (Database)",
            results["b_sync"],
            "nxdata pool",
            lambda f: f"{pool_of[f.label]} connections",
        ),
        f"Total run time {time.perf_counter() - started:.0f} s.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if str(args.out) != "-":
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "scaleout.md").write_text(text)
        print(f"written to {args.out / 'scaleout.md'}", file=sys.stderr)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # the servers are gone already (context managers)
        sys.exit(130)
