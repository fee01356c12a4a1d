"""A rate-limited work queue of keys, and the worker loop that drains it.

Modelled on client-go's ``workqueue``: a key is held at most once in the queue
(``dirty``), and a key being worked on (``processing``) is not handed to a
second worker; if it is added meanwhile it is queued again when ``done`` is
called. So every controller sees each key by at most one worker at a time, and
a change made during a reconcile is never lost.

Controllers queue keys (``namespace/name``), not objects: the reconcile reads
the latest state from the informer cache, which makes it level-triggered.

After ``shutdown()`` the queue ignores adds and ``get()`` raises
``QueueShutDown``, even if keys are still queued (unlike client-go, which
drains first): a controller that lost leadership must stop acting at once.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

from prometheus_client import Counter, Gauge, Histogram

from minik8s import errors

log = logging.getLogger("minik8s.workqueue")

_BUCKETS = (1e-5, 1e-4, 1e-3, 0.01, 0.1, 1.0, 10.0, 60.0)
_DEPTH = Gauge("workqueue_depth", "Current number of keys waiting in the queue.", ["name"])
_ADDS = Counter("workqueue_adds_total", "Keys added to the queue.", ["name"])
_RETRIES = Counter("workqueue_retries_total", "Rate-limited re-adds of failed keys.", ["name"])
_QUEUE_DURATION = Histogram(
    "workqueue_queue_duration_seconds",
    "Seconds a key waits in the queue before a worker takes it.", ["name"], buckets=_BUCKETS)
_WORK_DURATION = Histogram(
    "workqueue_work_duration_seconds",
    "Seconds a worker holds a key (get to done).", ["name"], buckets=_BUCKETS)


class QueueShutDown(Exception):
    """Raised by WorkQueue.get() once the queue has been shut down."""


class _NoMetrics:
    """Metrics of an unnamed queue: none (as in Kubernetes)."""

    def added(self, key: str) -> None:
        pass

    def started(self, key: str) -> None:
        pass

    def finished(self, key: str) -> None:
        pass

    def retried(self) -> None:
        pass

    def depth(self, n: int) -> None:
        pass


class _Metrics(_NoMetrics):
    """The labelled children of the module-level metrics, for one queue name."""

    def __init__(self, name: str) -> None:
        self._depth = _DEPTH.labels(name)
        self._adds = _ADDS.labels(name)
        self._retries = _RETRIES.labels(name)
        self._queue_duration = _QUEUE_DURATION.labels(name)
        self._work_duration = _WORK_DURATION.labels(name)
        self._added_at: dict[str, float] = {}
        self._started_at: dict[str, float] = {}

    def added(self, key: str) -> None:
        self._adds.inc()
        self._added_at.setdefault(key, time.monotonic())

    def started(self, key: str) -> None:
        now = time.monotonic()
        self._queue_duration.observe(now - self._added_at.pop(key, now))
        self._started_at[key] = now

    def finished(self, key: str) -> None:
        now = time.monotonic()
        self._work_duration.observe(now - self._started_at.pop(key, now))

    def retried(self) -> None:
        self._retries.inc()

    def depth(self, n: int) -> None:
        self._depth.set(n)


class ExponentialBackoff:
    """Per-key delays ``base * 2**failures`` capped at ``cap`` (client-go's
    ItemExponentialFailureRateLimiter)."""

    def __init__(self, base: float = 0.005, cap: float = 60.0) -> None:
        self.base = base
        self.cap = cap
        self._failures: dict[str, int] = {}

    def when(self, key: str) -> float:
        """The delay before retrying ``key``, counting this as one more failure."""
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        return min(self.base * 2.0 ** min(n, 100), self.cap)

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def num_requeues(self, key: str) -> int:
        return self._failures.get(key, 0)


class WorkQueue:
    """Deduplicating FIFO of keys with delayed and rate-limited adds.

    ``name`` labels the ``workqueue_*`` Prometheus metrics; an unnamed queue
    exports none.
    """

    def __init__(self, name: str = "", *, base_delay: float = 0.005,
                 max_delay: float = 60.0) -> None:
        self.name = name
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._waiting: dict[str, asyncio.TimerHandle] = {}
        self._getters: deque[asyncio.Future[None]] = deque()
        self._limiter = ExponentialBackoff(base_delay, max_delay)
        self._metrics = _Metrics(name) if name else _NoMetrics()
        self._shutting_down = False

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def add(self, key: str) -> None:
        """Queue ``key`` unless already queued; if it is being processed, after done()."""
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        self._metrics.added(key)
        if key not in self._processing:
            self._push(key)

    async def get(self) -> str:
        """The next key; the caller must call done(key) when finished with it."""
        while self._shutting_down or not self._queue:
            if self._shutting_down:
                raise QueueShutDown
            await self._wait()
        key = self._queue.popleft()
        self._metrics.depth(len(self._queue))
        self._dirty.discard(key)
        self._processing.add(key)
        self._metrics.started(key)
        return key

    def done(self, key: str) -> None:
        """Mark ``key`` finished; if it was added while processing, queue it again."""
        self._processing.discard(key)
        self._metrics.finished(key)
        if key in self._dirty:
            self._push(key)

    def add_after(self, key: str, delay: float) -> None:
        """add(key) after ``delay`` seconds; of several pending delays the earliest wins."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        ready = loop.time() + delay
        pending = self._waiting.get(key)
        if pending is not None:
            if pending.when() <= ready:
                return
            pending.cancel()
        self._waiting[key] = loop.call_at(ready, self._fire, key)

    def add_rate_limited(self, key: str) -> None:
        """add_after(key) with this key's next exponential backoff delay."""
        self._metrics.retried()
        self.add_after(key, self._limiter.when(key))

    def forget(self, key: str) -> None:
        """Reset the backoff of ``key`` (call after it was processed successfully)."""
        self._limiter.forget(key)

    def num_requeues(self, key: str) -> int:
        return self._limiter.num_requeues(key)

    def shutdown(self) -> None:
        """Ignore further adds, drop delayed ones, and make every get() raise QueueShutDown."""
        self._shutting_down = True
        for handle in self._waiting.values():
            handle.cancel()
        self._waiting.clear()
        while self._getters:
            self._wake_one()

    def _fire(self, key: str) -> None:
        del self._waiting[key]
        self.add(key)

    def _push(self, key: str) -> None:
        self._queue.append(key)
        self._metrics.depth(len(self._queue))
        self._wake_one()

    def _wake_one(self) -> None:
        while self._getters:
            getter = self._getters.popleft()
            if not getter.done():
                getter.set_result(None)
                return

    async def _wait(self) -> None:
        getter = asyncio.get_running_loop().create_future()
        self._getters.append(getter)
        try:
            await getter
        except asyncio.CancelledError:
            if getter in self._getters:
                self._getters.remove(getter)
            elif not getter.cancelled() and self._queue:
                self._wake_one()  # we were woken for a key, then cancelled: pass it on
            raise


async def run_workers(queue: WorkQueue, reconcile: Callable[[str], Awaitable[None]],
                      workers: int = 1) -> None:
    """Run ``workers`` loops of get -> reconcile -> done until the queue shuts down.

    A reconcile that raises is logged and its key re-added with backoff; one
    that returns has its backoff reset. Cancelling this coroutine cancels the
    workers.
    """
    async with asyncio.TaskGroup() as group:
        for _ in range(workers):
            group.create_task(_work(queue, reconcile))


async def _work(queue: WorkQueue, reconcile: Callable[[str], Awaitable[None]]) -> None:
    while True:
        try:
            key = await queue.get()
        except QueueShutDown:
            return
        try:
            await reconcile(key)
        except Exception as exc:
            # API errors (conflicts, unavailability) are routine: no traceback.
            log.warning("reconcile %s failed (%d earlier retries): %s", key,
                        queue.num_requeues(key), exc,
                        exc_info=not isinstance(exc, errors.ApiError))
            queue.add_rate_limited(key)
        else:
            queue.forget(key)
        finally:
            queue.done(key)
