"""What every contender is: a name, set-up and close, and one method per scenario it runs."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = ["Contender", "Context", "Threaded", "Unavailable"]


class Unavailable(Exception):
    """Raised by a contender (at set-up or from a scenario method) when it cannot run: a missing
    package, or an nxdata API that does not exist yet. The message is the reason shown."""


@dataclass(frozen=True, slots=True)
class Context:
    """What contenders are built from."""

    url: str
    pool_size: int
    workers: int
    seed: int = 7

    def rng(self) -> random.Random:
        return random.Random(self.seed)


class Contender:
    """A way of talking to PostgreSQL, measured side by side with the others.

    Scenario methods (sync, or coroutines when ``is_async``) have the names of the scenarios'
    ``method`` and take the arguments the scenario prepares; a method that is absent means "does
    not apply" with the reason in ``inapplicable``. ``prepare_<method>(*args)``, when defined,
    turns the shared arguments into this contender's native form, untimed.

    ``notes``: per scenario method, what this contender does differently from the others (more
    or less work), shown next to its figure. ``concurrency``: which points of the concurrency
    matrix it runs — ``"tasks"`` (every pool size and task count), ``"threads"`` (every pool
    size, the thread counts), ``"headline"`` (only the headline point) or ``"none"``.
    """

    name: ClassVar[str]
    label: ClassVar[str]
    is_async: ClassVar[bool] = False
    inapplicable: ClassVar[dict[str, str]] = {}
    notes: ClassVar[dict[str, str]] = {}
    concurrency: ClassVar[str] = "none"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def setup(self) -> Any:
        """Open pools / engines (a coroutine for async contenders)."""

    def close(self) -> Any:
        """Release everything `setup` opened (a coroutine for async contenders)."""


class Threaded:
    """Sync contenders' concurrency: one thread per batch, on thread pools made untimed (in
    ``prepare_concurrent``) and kept until `close_threads`. Each thread runs the contender's own
    ``pk_lookup`` / ``filtered_query`` on its batch, so every operation borrows a pooled
    connection as it does alone."""

    _executors: dict[int, ThreadPoolExecutor]

    def prepare_concurrent(self, query: str, batches: list[list[Any]]) -> tuple[Any, ...]:
        executors = self.__dict__.setdefault("_executors", {})
        if len(batches) not in executors:
            executors[len(batches)] = ThreadPoolExecutor(len(batches))
            # start every thread now, not inside the timed region
            list(executors[len(batches)].map(lambda _: None, range(len(batches) * 2)))
        return (query, batches)

    def concurrent(self, query: str, batches: list[list[Any]]) -> None:
        work = getattr(self, "pk_lookup" if query == "pk" else "filtered_query")
        executor = self._executors[len(batches)]
        for future in [executor.submit(work, batch) for batch in batches]:
            future.result()

    def close_threads(self) -> None:
        for executor in self.__dict__.get("_executors", {}).values():
            executor.shutdown()
