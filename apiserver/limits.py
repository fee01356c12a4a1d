"""Per-client limits that keep one client from starving the others."""
from __future__ import annotations

import collections
import contextlib
from collections.abc import Iterator

from apiserver.authn import User
from minik8s import errors

DEFAULT_MAX_WATCHES = 1000


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
