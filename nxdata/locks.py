"""Row locks for reads: ``lock=Lock.UPDATE`` renders ``FOR UPDATE`` (inside a transaction only).

>>> with db.transaction() as tx:
...     wallet = wallets.find_by_id(wallet_id, lock=Lock.UPDATE, transaction=tx)
...     jobs = queue.find({"limit": 10}, lock=Lock.UPDATE.skip_locked(), transaction=tx)
"""

from __future__ import annotations

from typing import ClassVar, Literal

import msgspec

__all__ = ["Lock"]

Strength = Literal["update", "no key update", "share", "key share"]
WaitPolicy = Literal["wait", "nowait", "skip locked"]


class Lock(msgspec.Struct, frozen=True):
    """A row-lock clause: strength plus what to do about rows another transaction holds.

    ``Lock.UPDATE``, ``Lock.NO_KEY_UPDATE``, ``Lock.SHARE``, ``Lock.KEY_SHARE`` wait for the
    lock; ``.nowait()`` fails at once with `LockNotAvailable`; ``.skip_locked()`` leaves locked
    rows out of the result (a job queue).

    >>> Lock.UPDATE.nowait().sql
    'FOR UPDATE NOWAIT'
    """

    strength: Strength = "update"
    wait: WaitPolicy = "wait"

    UPDATE: ClassVar[Lock]
    NO_KEY_UPDATE: ClassVar[Lock]
    SHARE: ClassVar[Lock]
    KEY_SHARE: ClassVar[Lock]

    def __post_init__(self) -> None:
        if self.strength not in ("update", "no key update", "share", "key share"):
            raise ValueError(
                f"unknown lock strength {self.strength!r} "
                "(one of 'update', 'no key update', 'share', 'key share')"
            )
        if self.wait not in ("wait", "nowait", "skip locked"):
            raise ValueError(
                f"unknown lock wait policy {self.wait!r} (one of 'wait', 'nowait', 'skip locked')"
            )

    def nowait(self) -> Lock:
        """The same lock, failing at once (`LockNotAvailable`) instead of waiting."""
        return Lock(self.strength, "nowait")

    def skip_locked(self) -> Lock:
        """The same lock, skipping rows that another transaction has locked."""
        return Lock(self.strength, "skip locked")

    @property
    def sql(self) -> str:
        """The clause appended to the SELECT, e.g. ``FOR NO KEY UPDATE SKIP LOCKED``."""
        text = "FOR " + self.strength.upper()
        return text if self.wait == "wait" else f"{text} {self.wait.upper()}"


Lock.UPDATE = Lock("update")
Lock.NO_KEY_UPDATE = Lock("no key update")
Lock.SHARE = Lock("share")
Lock.KEY_SHARE = Lock("key share")
