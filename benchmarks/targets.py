"""The speed and memory targets of issue 7, checked against the numbers of the same run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .harness import Cell, paired_ratio

__all__ = ["TARGETS", "Target", "evaluate"]

X = "\u00d7"  # the multiplication sign

Results = dict[str, dict[str, Cell]]


@dataclass(frozen=True, slots=True)
class Target:
    """One target: its text, and how to compute the figure it is about from the results."""

    scenario: str
    text: str
    figure: Callable[[Results], float | None]
    met: Callable[[float], bool]
    unit: str = X


def _median(results: Results, scenario: str, name: str) -> float | None:
    cell = results.get(scenario, {}).get(name)
    return cell.median if cell is not None else None


def _ratio(scenario: str, a: str, b: str) -> Callable[[Results], float | None]:
    """time(a) / time(b): below 1 means a is faster."""

    def figure(results: Results) -> float | None:
        ca, cb = results.get(scenario, {}).get(a), results.get(scenario, {}).get(b)
        return paired_ratio(ca, cb) if ca is not None and cb is not None else None

    return figure


def _value(scenario: str, name: str, scale: float) -> Callable[[Results], float | None]:
    def figure(results: Results) -> float | None:
        m = _median(results, scenario, name)
        return m * scale if m is not None else None

    return figure


def _pk_and_filter() -> list[Target]:
    out = []
    for key, what in (("pk_lookup", "PK lookup"), ("filtered_query", "filtered query")):
        out += [
            Target(
                key,
                f"{what}: nxdata ≤ 1.05{X} raw psycopg",
                _ratio(key, "nxdata", "psycopg"),
                lambda v: v <= 1.05,
            ),
            Target(
                key,
                f"{what}: nxdata ≥ 1.5{X} faster than SQLAlchemy Core",
                _ratio(key, "sqlalchemy-core", "nxdata"),
                lambda v: v >= 1.5,
            ),
            Target(
                key,
                f"{what}: nxdata async ≤ 1.10{X} raw psycopg async",
                _ratio(key, "nxdata-async", "psycopg-async"),
                lambda v: v <= 1.10,
            ),
        ]
    return out


TARGETS: tuple[Target, ...] = (
    *_pk_and_filter(),
    Target(
        "large_fetch",
        f"large fetch: nxdata ≤ 0.40{X} raw psycopg (default loaders)",
        _ratio("large_fetch", "nxdata", "psycopg"),
        lambda v: v <= 0.40,
    ),
    Target(
        "large_fetch",
        f"large fetch: nxdata ≤ 1.0{X} asyncpg + msgspec codec",
        _ratio("large_fetch", "nxdata", "asyncpg"),
        lambda v: v <= 1.0,
    ),
    Target(
        "large_fetch",
        f"large fetch: nxdata ≥ 4{X} faster than SQLAlchemy ORM",
        _ratio("large_fetch", "sqlalchemy-orm", "nxdata"),
        lambda v: v >= 4.0,
    ),
    Target(
        "bulk_insert",
        f"bulk insert: nxdata rows/s ≥ 0.9{X} raw psycopg COPY",
        _ratio("bulk_insert", "psycopg", "nxdata"),
        lambda v: v >= 0.9,
    ),
    Target(
        "compile_cached",
        "filter compile, repeated shape: nxdata ≤ 5 µs",
        _value("compile_cached", "nxdata", 1e6),
        lambda v: v <= 5.0,
        unit=" µs",
    ),
    Target(
        "memory_stream",
        "streaming: nxdata peak < 100 MB",
        _value("memory_stream", "nxdata", 1.0),
        lambda v: v < 100.0,
        unit=" MB",
    ),
    Target(
        "memory_stream",
        "streaming: nxdata async peak < 100 MB",
        _value("memory_stream", "nxdata-async", 1.0),
        lambda v: v < 100.0,
        unit=" MB",
    ),
)
"""Each target as the issue states it; ratios are of times in this run (raw psycopg = 1.00)."""


def evaluate(results: Results) -> list[dict[str, Any]]:
    """Every target whose scenario ran: its figure and whether it was met (None: no figure)."""
    out = []
    for target in TARGETS:
        if target.scenario not in results:
            continue
        value = target.figure(results)
        out.append(
            {
                "scenario": target.scenario,
                "target": target.text,
                "value": value,
                "unit": target.unit,
                "met": None if value is None else bool(target.met(value)),
            }
        )
    return out
