"""Per-client limits that keep one client from starving the others."""
from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable, Iterator

import grpc

from apiserver.authn import User
from minik8s import errors

DEFAULT_MAX_WATCHES = 1000
DEFAULT_REFUSED_PER_SECOND = 50.0
# What a client that keeps getting these is doing wrong: no or bad credentials,
# or asking for what it may not have. A working client rarely meets them.
REFUSALS = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
_FORGET_ABOVE = 10_000


class WatchLimiter:
    """At most `limit` open watches per user on this apiserver."""

    def __init__(self, limit: int = DEFAULT_MAX_WATCHES) -> None:
        self.limit = limit
        self._open: collections.Counter[str] = collections.Counter()

    @contextlib.contextmanager
    def hold(self, user: User) -> Iterator[None]:
        if self._open[user.name] >= self.limit:
            raise errors.TooManyRequests(
                f'User "{user.name}" has {self._open[user.name]} open watches on this '
                f"apiserver, the most allowed; close some first")
        self._open[user.name] += 1
        try:
            yield
        finally:
            self._open[user.name] -= 1
            if not self._open[user.name]:
                del self._open[user.name]


class RefusalPacer:
    """Slows down a connection whose calls keep being refused.

    Each connection (gRPC peer) may have `rate` calls a second refused, in
    bursts of a tenth of that; past that, its next calls wait their turn, one every
    1/rate seconds, before they are handled at all (a generic cell rate
    algorithm: `_due` is when the connection's debt is paid). So a client
    flooding the apiserver with bad requests gets them answered at `rate` a
    second, parked coroutines costing nothing meanwhile, and other clients
    keep their latency. Successful calls of a connection in good standing
    never wait.
    """

    def __init__(self, rate: float = DEFAULT_REFUSED_PER_SECOND,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = 1.0 / rate
        self._tolerance = 0.1   # seconds' worth of refusals before any wait: a burst
        self._clock = clock
        self._due: dict[str, float] = {}

    async def admit(self, peer: str) -> bool:
        """Wait this call's turn if the connection is in debt; True if it waited
        (its turn is already paid for, whatever its answer)."""
        now = self._clock()
        due = self._due.get(peer, now)
        if due - self._tolerance <= now:
            return False
        self._due[peer] = due + self._interval
        await asyncio.sleep(due - self._tolerance - now)
        return True

    def refused(self, peer: str) -> None:
        """Charge a refusal of a call that did not wait."""
        now = self._clock()
        if len(self._due) > _FORGET_ABOVE:
            self._due = {p: d for p, d in self._due.items() if d > now}
        self._due[peer] = max(self._due.get(peer, now), now) + self._interval
