"""Per-container restart back-off: CrashLoopBackOff and ImagePullBackOff.

As Kubernetes' flowcontrol.Backoff: the first failure is retried at once;
each retry after that waits twice as long as the one before, from the moment
of the failure, up to a cap. A container that then runs well for twice the
cap starts again from the initial delay.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Entry:
    delay: float
    last: float


class Backoff:
    def __init__(self, initial: float, cap: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.initial, self.cap, self.clock = initial, cap, clock
        self._entries: dict[str, _Entry] = {}

    def remaining(self, key: str, since: float) -> float:
        """Seconds still to wait before retrying a failure that happened at `since`."""
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, since):
            return 0.0  # a first failure, or the first after a good run: retry at once
        return max(0.0, since + entry.delay - self.clock())

    def delay(self, key: str) -> float:
        entry = self._entries.get(key)
        return entry.delay if entry else 0.0

    def next(self, key: str, since: float) -> None:
        """Record a retry (now) of the failure at `since`: the next one waits longer."""
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, since):
            self._entries[key] = _Entry(self.initial, self.clock())
        else:
            entry.delay, entry.last = min(entry.delay * 2, self.cap), self.clock()

    def _expired(self, entry: _Entry, since: float) -> bool:
        """The failure at `since` came after running well for twice the cap since the retry."""
        return since - entry.last > 2 * self.cap

    def forget(self, prefix: str) -> None:
        """Drop every key starting with prefix (a pod's uid: the pod is gone)."""
        for key in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[key]
