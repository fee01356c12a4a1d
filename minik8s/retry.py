"""Retrying: jittered exponential backoff, and retry of read-modify-write on conflict.

``retry_on_conflict`` is client-go's ``retry.RetryOnConflict``: ``fn`` must do
the whole read-modify-write (get the object afresh, change it, update it), so a
retry works on the latest version instead of resending a stale one.
"""
from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from minik8s import errors

T = TypeVar("T")


class Backoff:
    """Delays ``initial * 2**n``, capped at ``cap``, each stretched by up to ``jitter``.

    Jitter spreads out clients that failed together (an apiserver restart) so
    they do not all come back at the same instant.
    """

    def __init__(self, initial: float, cap: float = math.inf, jitter: float = 0.1) -> None:
        self.initial = initial
        self.cap = cap
        self.jitter = jitter
        self._delay = initial

    def next(self) -> float:
        """The next delay; the one after it is twice as long (up to the cap)."""
        delay = self._delay
        self._delay = min(self._delay * 2, self.cap)
        return delay * (1 + self.jitter * random.random())

    def reset(self) -> None:
        self._delay = self.initial


async def retry_on_conflict(fn: Callable[[], Awaitable[T]], *, attempts: int = 5,
                            backoff: float = 0.01) -> T:
    """``await fn()``, calling it again after a backoff while it raises errors.Conflict.

    Any other exception propagates at once; after ``attempts`` calls the last
    Conflict is re-raised.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    delays = Backoff(backoff)
    for _ in range(attempts - 1):
        try:
            return await fn()
        except errors.Conflict:
            await asyncio.sleep(delays.next())
    return await fn()
