"""What every contender is: a name, set-up and close, and one method per scenario it runs."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = ["Contender", "Context", "Unavailable"]


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
    """

    name: ClassVar[str]
    label: ClassVar[str]
    is_async: ClassVar[bool] = False
    inapplicable: ClassVar[dict[str, str]] = {}

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def setup(self) -> Any:
        """Open pools / engines (a coroutine for async contenders)."""

    def close(self) -> Any:
        """Release everything `setup` opened (a coroutine for async contenders)."""
