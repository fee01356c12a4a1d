"""Creation and deletion expectations, as kube-controller-manager's.

A controller that has just asked for N pods must not count them missing
before its informer has seen them, or a slow watch makes it create them
twice. So before creating it records "expect N creations for this key";
each pod the informer reports (or each create that failed) lowers that, and
the controller acts on the key again only once nothing is outstanding — or
after a timeout, in case an event was lost.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

EXPECTATIONS_TIMEOUT = 300.0  # as Kubernetes: forget outstanding expectations after 5 minutes


@dataclass
class _Expected:
    adds: int = 0
    deletes: set[str] = field(default_factory=set)
    since: float = field(default_factory=time.monotonic)


class Expectations:
    def __init__(self, timeout: float = EXPECTATIONS_TIMEOUT) -> None:
        self._timeout = timeout
        self._by_key: dict[str, _Expected] = {}

    def expect_creations(self, key: str, count: int) -> None:
        self._by_key[key] = _Expected(adds=count)

    def expect_deletions(self, key: str, uids: list[str]) -> None:
        self._by_key[key] = _Expected(deletes=set(uids))

    def creation_observed(self, key: str) -> None:
        if (e := self._by_key.get(key)) is not None and e.adds > 0:
            e.adds -= 1

    def deletion_observed(self, key: str, uid: str) -> None:
        if (e := self._by_key.get(key)) is not None:
            e.deletes.discard(uid)

    def satisfied(self, key: str) -> bool:
        """True if nothing is outstanding for key (or it has been too long)."""
        e = self._by_key.get(key)
        if e is None or (e.adds <= 0 and not e.deletes):
            return True
        return time.monotonic() - e.since > self._timeout

    def forget(self, key: str) -> None:
        self._by_key.pop(key, None)
