"""Names that differ between the asyncio and the sync flavour, paired so that the generator
(`nxdata/_async_to_sync.py`) only renames: ``ALock`` → ``Lock``, ``asleep`` → ``sleep``."""

from __future__ import annotations

import asyncio
import threading
import time

__all__ = ["ALock", "Lock", "asleep", "sleep"]

ALock = asyncio.Lock
"""A lock for tasks (sync twin: `Lock`)."""
Lock = threading.Lock
"""A lock for threads."""
asleep = asyncio.sleep
"""Sleep without blocking the event loop (sync twin: `sleep`)."""
sleep = time.sleep
"""Sleep the thread."""
