"""Run settings: workload sizes and repetition counts for the full, quick and tiny modes."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

__all__ = ["FULL", "QUICK", "TINY", "Settings", "Sizes"]


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much data and how many operations one measurement uses.

    ``*_ops`` are operations per timed measurement (the time per operation is the measurement's
    time divided by them); ``rounds`` / ``heavy_rounds`` are the measured rounds of the light and
    heavy (100k-row) scenarios, each preceded by ``warmup`` unmeasured rounds.
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
    compile_cold_ops: int = 120
    compile_cached_ops: int = 1_200
    borrow_ops: int = 3_000
    workers: int = 8
    pool_size: int = 4
    concurrent_ops: int = 800
    rounds: int = 9
    heavy_rounds: int = 3
    warmup: int = 1
    memory_parallel: int = 2


FULL = Sizes()
QUICK = Sizes(
    fetch_rows=10_000,
    stream_rows=30_000,
    bulk_rows=3_000,
    write_rows=2_000,
    wallets=200,
    pk_ops=60,
    filter_ops=40,
    insert_ops=25,
    update_ops=25,
    delete_ops=25,
    transfer_ops=15,
    compile_cold_ops=30,
    compile_cached_ops=200,
    borrow_ops=500,
    concurrent_ops=96,
    rounds=5,
    heavy_rounds=2,
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
    compile_cold_ops=3,
    compile_cached_ops=10,
    borrow_ops=20,
    workers=2,
    pool_size=2,
    concurrent_ops=8,
    rounds=1,
    heavy_rounds=1,
    warmup=0,
    memory_parallel=4,
)
MODES = {"full": FULL, "quick": QUICK, "tiny": TINY}


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
    extra: dict[str, Any] = field(default_factory=dict)

    def with_sizes(self, **changes: int) -> Settings:
        """A copy with some sizes changed."""
        return replace(self, sizes=replace(self.sizes, **changes))
