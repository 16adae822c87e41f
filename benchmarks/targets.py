"""The speed and memory targets (issue 17, and those of issue 7 it did not replace), each checked
against the numbers of the same run: the measured figure, and met or not."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .harness import Cell, paired_ratio
from .settings import Sizes

__all__ = ["TARGETS", "Target", "evaluate"]

X = "\u00d7"  # the multiplication sign

Results = dict[str, dict[str, Cell]]
Figure = Callable[[Results, Sizes], tuple[float | None, str]]


@dataclass(frozen=True, slots=True)
class Target:
    """One target: its text, how to compute its figure (and a detail line) from the results,
    and the test the figure must pass."""

    scenario: str
    text: str
    figure: Figure
    met: Callable[[float], bool]
    unit: str = X
    issue: int = 17


def _cell(results: Results, scenario: str, name: str) -> Cell | None:
    return results.get(scenario, {}).get(name)


def _pair(a: Cell | None, b: Cell | None) -> float | None:
    return paired_ratio(a, b) if a is not None and b is not None else None


def _best(a: Cell | None, b: Cell | None) -> str:
    """The ratio of the two best (fastest) rounds: a noise check beside the paired median, as
    load from elsewhere only ever adds time."""
    if a is None or b is None or a.median is None or b.median is None or len(a.samples) < 2:
        return ""
    if not min(b.samples):
        return ""
    return f"best rounds: {min(a.samples) / min(b.samples):.2f}{X}"


def _ratio(scenario: str, a: str, b: str, *, also: tuple[str, str, str] | None = None) -> Figure:
    """time(a) / time(b) on one scenario: below 1 means a is faster. `also`: another pair
    (a, b, what the figure is) shown in the detail."""

    def figure(results: Results, sizes: Sizes) -> tuple[float | None, str]:
        ca, cb = _cell(results, scenario, a), _cell(results, scenario, b)
        value = _pair(ca, cb)
        details = [_best(ca, cb)]
        if also is not None:
            other = _pair(_cell(results, scenario, also[0]), _cell(results, scenario, also[1]))
            if other is not None:
                details.append(f"{also[2]}: {other:.2f}{X}")
        return value, "; ".join(d for d in details if d)

    return figure


def _across(name: str, slow: str, fast: str) -> Figure:
    """time(`slow`) / time(`fast`) of one contender on two scenarios of a group (their rounds
    were interleaved, so they pair up): how many times faster `fast` is."""

    def figure(results: Results, sizes: Sizes) -> tuple[float | None, str]:
        ca, cb = _cell(results, slow, name), _cell(results, fast, name)
        raw = _pair(_cell(results, slow, "psycopg-conn"), _cell(results, fast, "psycopg-conn"))
        details = [_best(ca, cb)]
        if raw is not None:
            details.append(f"raw psycopg on one connection: {raw:.2f}{X}")
        return _pair(ca, cb), "; ".join(d for d in details if d)

    return figure


def _series(
    query: str,
    pools: Callable[[Sizes], tuple[int, ...]],
    tasks: tuple[int, ...],
    slow: str,
    fast: str,
    unit: str = "tasks",
) -> Figure:
    """The worst over the concurrency points of time(`slow`) / time(`fast`), i.e. throughput
    of `fast` / throughput of `slow` (≥ 1: `fast` sustains at least as much)."""

    def figure(results: Results, sizes: Sizes) -> tuple[float | None, str]:
        a, b = _cell(results, "concurrency", slow), _cell(results, "concurrency", fast)
        if a is None or b is None:
            return None, ""
        found = []
        for pool in pools(sizes):
            for n in tasks:
                label = f"{query}/p{pool}/t{n}"
                if label in a.series and label in b.series:
                    value = paired_ratio(a.series[label], b.series[label])
                    if value is not None:
                        found.append((value, f"pool {pool}, {n} {unit}: {value:.2f}{X}"))
        if not found:
            return None, ""
        return min(v for v, _ in found), ", ".join(text for _, text in found)

    return figure


def _value(scenario: str, name: str, scale: float) -> Figure:
    def figure(results: Results, sizes: Sizes) -> tuple[float | None, str]:
        cell = _cell(results, scenario, name)
        m = cell.median if cell is not None else None
        return (m * scale if m is not None else None), ""

    return figure


def _pools(sizes: Sizes) -> tuple[int, ...]:
    return tuple(sorted(sizes.conc_pools))


_POOLED = ("nxdata", "psycopg", "against raw psycopg through a pool (its own work: see the table)")


def _point_queries() -> list[Target]:
    out = []
    for key, what in (("pk_lookup", "PK lookup"), ("filtered_query", "filtered query")):
        out += [
            Target(
                key,
                f"{what}: nxdata ≤ 1.05{X} raw psycopg on a dedicated connection",
                _ratio(key, "nxdata", "psycopg-conn", also=_POOLED),
                lambda v: v <= 1.05,
            ),
            Target(
                key,
                f"{what}: nxdata ≥ 1.5{X} faster than SQLAlchemy Core",
                _ratio(key, "sqlalchemy-core", "nxdata"),
                lambda v: v >= 1.5,
            ),
        ]
    return out


def _concurrency() -> list[Target]:
    out = []
    for query, what in (("pk", "PK lookups"), ("filtered", "filtered queries")):
        out.append(
            Target(
                "concurrency",
                f"concurrency, {what}, 8/32/128 tasks on pools of 4 and 16: "
                f"nxdata async throughput ≥ asyncpg's (worst point)",
                _series(query, _pools, (8, 32, 128), "asyncpg", "nxdata-async"),
                lambda v: v >= 1.0,
            )
        )
    for query, what in (("pk", "PK lookups"), ("filtered", "filtered queries")):
        out.append(
            Target(
                "concurrency",
                f"concurrency, {what}, 8 threads on pools of 4 and 16: "
                f"nxdata throughput ≥ raw psycopg threads' (worst point)",
                _series(query, _pools, (8,), "psycopg", "nxdata", "threads"),
                lambda v: v >= 1.0,
            )
        )
    return out


TARGETS: tuple[Target, ...] = (
    *_point_queries(),
    Target(
        "bulk_insert",
        f"bulk insert from a generator: nxdata rows/s ≥ 1.0{X} raw COPY write_row "
        "(dedicated connection, msgspec jsonb)",
        _ratio(
            "bulk_insert",
            "psycopg-conn",
            "nxdata",
            also=("psycopg", "nxdata", "against raw COPY through the pool, jsonb by json.dumps"),
        ),
        lambda v: v >= 1.0,
    ),
    *_concurrency(),
    Target(
        "reads_together",
        f"ten find_by_id over 3 tables: nxdata read_together ≥ 3{X} faster than one by one",
        _across("nxdata", "reads_one_by_one", "reads_together"),
        lambda v: v >= 3.0,
    ),
    Target(
        "reads_by_ids",
        f"the same rows: nxdata find_by_ids (3 queries) ≥ 3{X} faster than one by one",
        _across("nxdata", "reads_one_by_one", "reads_by_ids"),
        lambda v: v >= 3.0,
    ),
    *(
        Target(
            key,
            f"{what}: nxdata ≤ 1.05{X} raw psycopg on a dedicated connection (same rows back)",
            _ratio(key, "nxdata", "psycopg-conn", also=_POOLED),
            lambda v: v <= 1.05,
        )
        for key, what in (
            ("update_by_id", "update by id"),
            ("delete_by_id", "delete by id"),
            ("transfer", "wallet transfer"),
        )
    ),
    Target(
        "large_fetch",
        f"large fetch: nxdata ≤ 0.35{X} raw psycopg (default loaders, tuples)",
        _ratio(
            "large_fetch",
            "nxdata",
            "psycopg",
            also=("nxdata", "psycopg-conn", "against raw psycopg building the same Structs"),
        ),
        lambda v: v <= 0.35,
    ),
    Target(
        "large_fetch",
        f"large fetch: nxdata ≤ 0.60{X} asyncpg + msgspec codec",
        _ratio("large_fetch", "nxdata", "asyncpg"),
        lambda v: v <= 0.60,
    ),
    Target(
        "memory_stream",
        "streaming: nxdata peak < 20 MB (1M rows in full mode)",
        _value("memory_stream", "nxdata", 1.0),
        lambda v: v < 20.0,
        unit=" MB",
    ),
    Target(
        "memory_stream",
        "streaming: nxdata async peak < 20 MB (1M rows in full mode)",
        _value("memory_stream", "nxdata-async", 1.0),
        lambda v: v < 20.0,
        unit=" MB",
    ),
    # Issue 7's targets that issue 17 kept.
    *(
        Target(
            key,
            f"{what}: nxdata async ≤ 1.10{X} raw psycopg async",
            _ratio(key, "nxdata-async", "psycopg-async"),
            lambda v: v <= 1.10,
            issue=7,
        )
        for key, what in (("pk_lookup", "PK lookup"), ("filtered_query", "filtered query"))
    ),
    Target(
        "large_fetch",
        f"large fetch: nxdata ≥ 4{X} faster than SQLAlchemy ORM",
        _ratio("large_fetch", "sqlalchemy-orm", "nxdata"),
        lambda v: v >= 4.0,
        issue=7,
    ),
    Target(
        "compile_cached",
        "filter compile, repeated shape: nxdata ≤ 5 µs",
        _value("compile_cached", "nxdata", 1e6),
        lambda v: v <= 5.0,
        unit=" µs",
        issue=7,
    ),
)
"""Each target as the issue states it; ratios are of times measured in this run."""


def evaluate(results: Results, sizes: Sizes) -> list[dict[str, Any]]:
    """Every target whose scenario ran: its figure, a detail, and whether it was met (None: no
    figure)."""
    out = []
    for target in TARGETS:
        if target.scenario not in results:
            continue
        value, detail = target.figure(results, sizes)
        out.append(
            {
                "scenario": target.scenario,
                "target": target.text,
                "issue": target.issue,
                "value": value,
                "unit": target.unit,
                "detail": detail,
                "met": None if value is None else bool(target.met(value)),
            }
        )
    return out
