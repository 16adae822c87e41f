"""Run settings: workload sizes and repetition counts for the full, quick and tiny modes."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

__all__ = ["FULL", "GC_MODES", "QUICK", "TINY", "Settings", "Sizes"]


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much data and how many operations one measurement uses.

    ``*_ops`` are operations per timed measurement (the time per operation is the measurement's
    time divided by them); ``rounds`` / ``heavy_rounds`` / ``bulk_rounds`` are the measured
    rounds of the light scenarios, the 100k-row fetch and the bulk insert, each preceded by
    ``warmup`` unmeasured rounds.

    Concurrency (scenario 10): every pool size of ``conc_pools`` with every task count of
    ``conc_tasks`` (async) or thread count of ``conc_threads`` (sync), on PK lookups
    (``concurrent_ops`` per measurement) and on the filtered query (``concurrent_filter_ops``),
    ``conc_rounds`` rounds. The headline (the old scenario 10) is ``workers`` on ``pool_size``.
    Scale curves (12): fetch and stream ``curve_rows`` rows, ``curve_rounds`` rounds.
    """

    fetch_rows: int = 100_000
    stream_rows: int = 1_000_000
    bulk_rows: int = 100_000
    write_rows: int = 10_000
    wallets: int = 1_000
    pk_ops: int = 300
    filter_ops: int = 180
    insert_ops: int = 120
    update_ops: int = 120
    delete_ops: int = 120
    transfer_ops: int = 60
    reads_ops: int = 40
    compile_cold_ops: int = 120
    compile_cached_ops: int = 1_200
    borrow_ops: int = 3_000
    workers: int = 8
    pool_size: int = 4
    conc_pools: tuple[int, ...] = (4, 16)
    conc_tasks: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128)
    conc_threads: tuple[int, ...] = (1, 2, 4, 8)
    concurrent_ops: int = 1_200
    concurrent_filter_ops: int = 400
    conc_rounds: int = 3
    curve_rows: tuple[int, ...] = (10_000, 30_000, 100_000, 300_000, 1_000_000)
    curve_rounds: int = 1
    rounds: int = 9
    heavy_rounds: int = 3
    bulk_rounds: int = 3
    warmup: int = 1
    memory_parallel: int = 2

    @property
    def curve_min(self) -> int:
        return min(self.curve_rows)

    @property
    def curve_max(self) -> int:
        return max(self.curve_rows)


FULL = Sizes()
QUICK = Sizes(
    fetch_rows=10_000,
    stream_rows=50_000,
    bulk_rows=20_000,
    write_rows=2_000,
    wallets=200,
    pk_ops=100,
    filter_ops=60,
    insert_ops=40,
    update_ops=40,
    delete_ops=40,
    transfer_ops=25,
    reads_ops=12,
    compile_cold_ops=30,
    compile_cached_ops=200,
    borrow_ops=500,
    conc_tasks=(1, 8, 32, 128),
    conc_threads=(1, 8),
    concurrent_ops=384,
    concurrent_filter_ops=192,
    conc_rounds=3,
    curve_rows=(10_000, 20_000, 50_000),
    curve_rounds=1,
    rounds=7,
    heavy_rounds=3,
    bulk_rounds=3,
    warmup=1,
    memory_parallel=3,
)
TINY = Sizes(
    fetch_rows=300,
    stream_rows=500,
    bulk_rows=200,
    write_rows=100,
    wallets=20,
    pk_ops=5,
    filter_ops=5,
    insert_ops=3,
    update_ops=3,
    delete_ops=3,
    transfer_ops=3,
    reads_ops=2,
    compile_cold_ops=3,
    compile_cached_ops=10,
    borrow_ops=20,
    workers=2,
    pool_size=2,
    conc_pools=(2, 3),
    conc_tasks=(1, 2, 8),
    conc_threads=(1, 2),
    concurrent_ops=16,
    concurrent_filter_ops=8,
    conc_rounds=1,
    curve_rows=(100, 300, 500),
    curve_rounds=1,
    rounds=1,
    heavy_rounds=1,
    bulk_rounds=1,
    warmup=0,
    memory_parallel=4,
)
MODES = {"full": FULL, "quick": QUICK, "tiny": TINY}

GC_MODES = ("on", "off")
"""How every contender's measurements treat the cyclic garbage collector: collected before each
measurement, then ``on`` (enabled during it, as in production: collections are part of the cost)
or ``off`` (disabled during it, for every contender alike)."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything one run needs to know besides the database."""

    mode: str = "full"
    sizes: Sizes = FULL
    url: str | None = None
    only: tuple[str, ...] = ()
    contenders: tuple[str, ...] = ()
    out: Path = Path(__file__).parent / "results"
    memory: bool = True
    gc: str = "on"
    extra: dict[str, Any] = field(default_factory=dict)

    def with_sizes(self, **changes: Any) -> Settings:
        """A copy with some sizes changed."""
        return replace(self, sizes=replace(self.sizes, **changes))
