"""Read replicas: which replica a read may use, and what nxdata knows of each one.

The database handle (`AsyncDatabase` / `Database`) owns one pool per replica and asks
`ReplicaSet.candidates` where a read may go; everything that is not a read outside a transaction
stays on the primary. A replica is left out while it cannot be reached (for ``replica_retry``
seconds, then tried again) and while its replay lag is above ``max_replica_lag``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .config import redact

__all__ = [
    "LAG_CHECK_INTERVAL",
    "LAG_SQL",
    "Replica",
    "ReplicaSet",
    "ReplicaState",
    "ReplicaWatch",
]

LAG_CHECK_INTERVAL = 1.0
"""Seconds between two looks at a replica's replay lag (one statement on a borrowed connection)."""

# Seconds the replica is behind: 0 when it has replayed all it received (an idle primary sends
# nothing, and an old last-replay time then means no lag), else the age of the last transaction
# it replayed. On a server that is not in recovery (the primary listed as a replica), 0.
LAG_SQL = (
    "SELECT CASE WHEN NOT pg_is_in_recovery() THEN 0"
    " WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0"
    " ELSE coalesce(extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()), 0)"
    " END::float8"
)


@dataclass(frozen=True, slots=True)
class ReplicaState:
    """What the handle knows of one replica (see `AsyncDatabase.replica_states`).

    ``url`` is redacted; ``usable``: reads may go there now; ``lag``: seconds of replay lag at
    the last look (None before the first); ``down_for``: seconds since it last could not be
    reached (None while it can); ``reads``: reads it served.
    """

    url: str
    usable: bool
    lag: float | None
    down_for: float | None
    reads: int


class Replica:
    """One replica: its pool (set by the database handle) and its health."""

    __slots__ = (
        "down_since",
        "lag",
        "lag_checked",
        "lagging_until",
        "pool",
        "pooler",
        "reads",
        "url",
    )

    def __init__(self, url: str) -> None:
        self.url = url
        self.pool: Any = None
        self.pooler: bool | None = None  # behind PgBouncer? found out on open (see the handle)
        self.down_since: float | None = None  # a connection could not be made or was lost
        self.lag: float | None = None
        self.lag_checked = 0.0
        self.lagging_until = 0.0
        self.reads = 0

    def __repr__(self) -> str:
        return f"Replica({redact(self.url)!r})"

    def usable(self, now: float, retry: float) -> bool:
        """Reads may go here: reachable (or its ``retry`` seconds are over) and not lagging."""
        if self.down_since is not None and now - self.down_since < retry:
            return False
        return now >= self.lagging_until

    def lag_due(self, now: float) -> bool:
        return now - self.lag_checked >= LAG_CHECK_INTERVAL

    def saw_lag(self, lag: float, now: float, maximum: float) -> bool:
        """Record a look at the lag; False (and left out until the next look) when too far
        behind."""
        self.lag, self.lag_checked = lag, now
        if lag > maximum:
            self.lagging_until = now + LAG_CHECK_INTERVAL
            return False
        self.lagging_until = 0.0
        return True

    def went_down(self, now: float | None = None) -> None:
        """Could not be reached (again): left alone for ``replica_retry`` seconds from now."""
        self.down_since = time.monotonic() if now is None else now

    def came_up(self) -> None:
        self.down_since = None

    def state(self, now: float, retry: float) -> ReplicaState:
        return ReplicaState(
            url=redact(self.url),
            usable=self.usable(now, retry),
            lag=self.lag,
            down_for=None if self.down_since is None else now - self.down_since,
            reads=self.reads,
        )


class ReplicaSet:
    """The replicas of one handle, handed out round robin among those usable."""

    __slots__ = ("_next", "replicas", "retry")

    def __init__(self, urls: Sequence[str], *, retry: float) -> None:
        self.replicas = [Replica(url) for url in urls]
        self.retry = retry
        self._next = 0

    def __bool__(self) -> bool:
        return bool(self.replicas)

    def candidates(self, *, turn: bool = True) -> list[Replica]:
        """Usable replicas, starting with the next one in turn (`turn`: and move the turn on;
        not for the later reads of a call that keeps to one server)."""
        now = time.monotonic()
        replicas = self.replicas
        count = len(replicas)
        start = self._next
        if turn:
            self._next = (start + 1) % count
        return [
            replica
            for replica in (replicas[(start + i) % count] for i in range(count))
            if replica.usable(now, self.retry)
        ]

    def states(self) -> list[ReplicaState]:
        now = time.monotonic()
        return [replica.state(now, self.retry) for replica in self.replicas]


class ReplicaWatch:
    """Cuts the connection of a replica read that waits past its deadline.

    A replica that stops answering while its host still acknowledges packets (a stopped
    process, a hung VM, a frozen proxy) trips neither TCP keepalives nor ``tcp_user_timeout``,
    and its ``statement_timeout`` never runs: the read would wait forever. A thread looks at the
    reads in flight every quarter second and shuts down the socket of one past its deadline
    (``shutdown`` wakes the waiting reader, which then sees the connection lost, and nxdata runs
    the read again elsewhere); the replica is left alone for ``replica_retry`` seconds.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._reads: dict[int, tuple[float, int, Replica]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def watch(self, key: int, fd: int, replica: Replica) -> None:
        with self._lock:
            self._reads[key] = (time.monotonic() + self.timeout, fd, replica)
            if self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._run, name="nxdata-replica-watch", daemon=True
                )
                self._thread.start()

    def done(self, key: int) -> None:
        with self._lock:
            self._reads.pop(key, None)

    def close(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=2)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            now = time.monotonic()
            with self._lock:
                late = [(k, v) for k, v in self._reads.items() if v[0] <= now]
                for key, _ in late:
                    del self._reads[key]
            for _, (_, fd, replica) in late:
                replica.went_down(now)
                with contextlib.suppress(OSError):
                    # a duplicate of the descriptor: shutdown acts on the socket itself
                    sock = socket.socket(fileno=os.dup(fd))
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    finally:
                        sock.close()
