"""The queue of pods waiting for a node, shaped like kube-scheduler's PriorityQueue.

Three places a pending pod can wait:

* active: ready to be tried, highest spec.priority first, then oldest;
* backoff: failed recently, becomes active when its backoff expires
  (initial * 2^(attempts-1), capped at max);
* unschedulable: no node fitted; it stays until a cluster event (a node added
  or changed, a pod deleted...) may have made room, or until flush_unschedulable
  gives it a retry anyway.

A pod being tried (popped, not yet done) is *in flight*. Events that arrive
meanwhile are not lost: if a move was requested after the pod was popped, a
failed attempt sends it to backoff instead of the unschedulable set; an update
of the pod is kept for its next attempt; a delete drops it. So the scheduler
must report the outcome (add_unschedulable / add_backoff) before done(uid).

Time comes from an injectable clock, so tests need no sleeps. Backoff expiry
needs no timer task: pop() moves expired pods to active, and while nothing
is active it sleeps only until the next expiry.
"""
from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from minik8s.api.v1 import types_pb2

log = logging.getLogger("minik8s.scheduler.queue")

DEFAULT_INITIAL_BACKOFF = 1.0
DEFAULT_MAX_BACKOFF = 10.0


class QueueClosed(Exception):
    """Raised by SchedulingQueue.pop() once the queue is closed."""


@dataclass(slots=True)
class QueuedPod:
    pod: types_pb2.Pod
    attempts: int = 0  # scheduling attempts so far (pop() counts them)
    first_seen: float = 0.0  # when the pod first entered the queue
    enqueued_at: float = 0.0  # when it last entered the queue or last failed

    @property
    def uid(self) -> str:
        return self.pod.metadata.uid


@dataclass(slots=True)
class _InFlight:
    cycle: int  # the scheduling cycle that popped the pod; -1 if unknown
    pod: types_pb2.Pod  # the latest version seen
    changed: bool = False  # it changed in a way that matters since it was popped
    deleted: bool = False


def _changed(old: types_pb2.Pod, new: types_pb2.Pod) -> bool:
    """A change that may affect scheduling; status writes (our own included) are not one."""
    return (old.spec != new.spec or old.metadata.labels != new.metadata.labels
            or old.metadata.annotations != new.metadata.annotations)


class SchedulingQueue:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 initial_backoff: float = DEFAULT_INITIAL_BACKOFF,
                 max_backoff: float = DEFAULT_MAX_BACKOFF) -> None:
        self._clock = clock
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._seq = itertools.count()
        # Heaps hold keys; the dicts hold the live entries. A heap entry whose key
        # no longer matches the dict is stale (the pod moved or was updated).
        self._active: dict[str, tuple[tuple, QueuedPod]] = {}
        self._active_heap: list[tuple[tuple, str]] = []
        self._backoff: dict[str, tuple[tuple, QueuedPod]] = {}
        self._backoff_heap: list[tuple[tuple, str]] = []
        self._unschedulable: dict[str, QueuedPod] = {}
        self._in_flight: dict[str, _InFlight] = {}
        self._cycle = 0
        self._move_request_cycle = -1
        self._wakeup = asyncio.Event()
        self._closed = False

    # ------------------------------------------------------------ informer events

    def add(self, pod: types_pb2.Pod) -> None:
        """A new pending pod; one the queue already knows is an update."""
        uid = pod.metadata.uid
        if self._knows(uid):
            self.update(pod)
            return
        now = self._clock()
        self._push_active(QueuedPod(pod, 0, now, now))

    def update(self, pod: types_pb2.Pod) -> None:
        """A pending pod changed. If it was unschedulable and the change matters, retry it."""
        uid = pod.metadata.uid
        if uid in self._active:
            self._update_active(pod)
        elif uid in self._backoff:
            self._backoff[uid][1].pod = pod
        elif uid in self._unschedulable:
            qp = self._unschedulable[uid]
            old, qp.pod = qp.pod, pod
            if _changed(old, pod):
                del self._unschedulable[uid]
                self._requeue(qp)
        elif uid in self._in_flight:
            flight = self._in_flight[uid]
            flight.changed = flight.changed or _changed(flight.pod, pod)
            flight.pod = pod
        else:
            self.add(pod)

    def delete(self, pod: types_pb2.Pod) -> None:
        """The pod is gone (deleted, or bound by someone): remove it wherever it is."""
        uid = pod.metadata.uid
        self._active.pop(uid, None)
        self._backoff.pop(uid, None)
        self._unschedulable.pop(uid, None)
        if uid in self._in_flight:
            self._in_flight[uid].deleted = True

    # ------------------------------------------------------------ the scheduling loop

    async def pop(self) -> QueuedPod:
        """The next pod to try, waiting for one; QueueClosed once closed."""
        while True:
            if self._closed:
                raise QueueClosed()
            self.flush_backoff()
            qp = self._pop_active()
            if qp is not None:
                return qp
            self._wakeup.clear()
            timeout = None
            if self._backoff:
                timeout = max(0.0, self._next_backoff_expiry() - self._clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout)

    def done(self, uid: str) -> None:
        """The attempt for this pod is over (after reporting a failure, if any)."""
        self._in_flight.pop(uid, None)

    def add_unschedulable(self, qp: QueuedPod) -> None:
        """No node fitted: wait for a cluster event, unless one came during the attempt."""
        flight = self._land(qp)
        if flight is None:
            return
        if flight.changed or self._move_request_cycle >= flight.cycle:
            self._requeue(qp)
        else:
            self._unschedulable[qp.uid] = qp

    def add_backoff(self, qp: QueuedPod) -> None:
        """The attempt failed with an error (a failed bind...): retry after the backoff."""
        if self._land(qp) is not None:
            self._push_backoff(qp)

    # ------------------------------------------------------------ moves

    def move_all_to_active_or_backoff(self, reason: str) -> int:
        """A cluster event may have made room: every unschedulable pod gets another try."""
        self._move_request_cycle = self._cycle
        moved = list(self._unschedulable.values())
        self._unschedulable.clear()
        for qp in moved:
            self._requeue(qp)
        if moved:
            log.debug("moved %d unschedulable pods on %s", len(moved), reason)
        return len(moved)

    def flush_unschedulable(self, max_wait: float = 60.0) -> int:
        """Retry pods that have waited over max_wait for an event that may never come."""
        now = self._clock()
        stale = [qp for qp in self._unschedulable.values() if now - qp.enqueued_at > max_wait]
        for qp in stale:
            del self._unschedulable[qp.uid]
            self._requeue(qp)
        return len(stale)

    def flush_backoff(self) -> int:
        """Move pods whose backoff has expired to active (pop() does this itself)."""
        now, moved = self._clock(), 0
        while self._backoff_heap and self._backoff_heap[0][0][0] <= now:
            key, uid = heapq.heappop(self._backoff_heap)
            entry = self._backoff.get(uid)
            if entry is not None and entry[0] == key:
                del self._backoff[uid]
                self._push_active(entry[1])
                moved += 1
        return moved

    # ------------------------------------------------------------ state

    def __len__(self) -> int:
        return len(self._active) + len(self._backoff) + len(self._unschedulable)

    def depths(self) -> dict[str, int]:
        return {"active": len(self._active), "backoff": len(self._backoff),
                "unschedulable": len(self._unschedulable)}

    def close(self) -> None:
        self._closed = True
        self._wakeup.set()

    def backoff_duration(self, attempts: int) -> float:
        """initial * 2^(attempts-1), at most max."""
        duration = self._initial_backoff
        for _ in range(attempts - 1):
            if duration >= self._max_backoff:
                break
            duration *= 2
        return min(duration, self._max_backoff)

    # ------------------------------------------------------------ internals

    def _knows(self, uid: str) -> bool:
        return (uid in self._active or uid in self._backoff or uid in self._unschedulable
                or uid in self._in_flight)

    def _push_active(self, qp: QueuedPod) -> None:
        key = (-qp.pod.spec.priority, qp.enqueued_at, next(self._seq))
        self._active[qp.uid] = (key, qp)
        heapq.heappush(self._active_heap, (key, qp.uid))
        self._wakeup.set()

    def _update_active(self, pod: types_pb2.Pod) -> None:
        key, qp = self._active[pod.metadata.uid]
        priority_changed = qp.pod.spec.priority != pod.spec.priority
        qp.pod = pod
        if priority_changed:
            self._push_active(qp)

    def _pop_active(self) -> QueuedPod | None:
        while self._active_heap:
            key, uid = heapq.heappop(self._active_heap)
            entry = self._active.get(uid)
            if entry is not None and entry[0] == key:
                del self._active[uid]
                qp = entry[1]
                qp.attempts += 1
                self._cycle += 1
                self._in_flight[uid] = _InFlight(self._cycle, qp.pod)
                return qp
        return None

    def _push_backoff(self, qp: QueuedPod) -> None:
        expiry = qp.enqueued_at + self.backoff_duration(qp.attempts)
        key = (expiry, next(self._seq))
        self._backoff[qp.uid] = (key, qp)
        heapq.heappush(self._backoff_heap, (key, qp.uid))
        self._wakeup.set()  # pop() may have to wake up earlier than it planned

    def _requeue(self, qp: QueuedPod) -> None:
        """After an event: to backoff if the pod is still backing off, else to active."""
        if qp.enqueued_at + self.backoff_duration(qp.attempts) > self._clock():
            self._push_backoff(qp)
        else:
            self._push_active(qp)

    def _next_backoff_expiry(self) -> float:
        while self._backoff_heap:
            key, uid = self._backoff_heap[0]
            entry = self._backoff.get(uid)
            if entry is not None and entry[0] == key:
                return key[0]
            heapq.heappop(self._backoff_heap)
        return self._clock()

    def _land(self, qp: QueuedPod) -> _InFlight | None:
        """End the pod's flight after a failure; None if it was deleted meanwhile."""
        flight = self._in_flight.pop(qp.uid, None) or _InFlight(cycle=-1, pod=qp.pod)
        if flight.deleted:
            return None
        qp.pod = flight.pod
        qp.enqueued_at = self._clock()
        return flight
