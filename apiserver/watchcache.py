"""The watch cache: one etcd watch per kind, any number of client watches.

Each apiserver replica keeps, per kind, the current objects and a ring of
recent events, fed by ONE etcd watch started at the revision of its initial
list. Client watches are served from here, filtered, so etcd's load does not
grow with the number of watchers.

Revisions: etcd's revision is global, so a kind's cache only learns that it
has seen everything up to revision R from an event at R or later, or from an
etcd progress notification. A client resuming from R waits until the cache
is there; the cache asks etcd for progress while anyone waits, and four times a
second otherwise, so bookmarks carry a revision at most about half a second old. etcd 3.4 may answer a progress request ahead of events
still queued on the stream (etcd issue 15220), so a progress revision is
trusted only once a later progress answer has arrived behind it.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.message import Message
from prometheus_client import Counter, Gauge

from apiserver.etcd import Etcd, EtcdCompacted, EtcdUnavailable, range_end
from apiserver.storage import decode
from minik8s import errors, kinds
from minik8s.kinds import Kind

log = logging.getLogger("minik8s.apiserver.watchcache")

ETCD_WATCHES = Gauge("apiserver_etcd_watches", "etcd watches this apiserver holds")
OPEN_WATCHES = Gauge("apiserver_registered_watchers", "client watches open", ["kind"])
EVENTS_SENT = Counter("apiserver_watch_events_total", "watch events sent to clients", ["kind"])
LATE_EVENTS = Counter("apiserver_watch_cache_late_events_total",
                      "etcd events that arrived behind a progress notification", ["kind"])


@dataclass
class Event:
    type: str                 # ADDED, MODIFIED, DELETED, BOOKMARK
    revision: int
    obj: Message
    prev: Message | None = None
    # The event as sent on the wire, built once and shared by every watcher
    # that receives this same event (set by the server).
    wire: Any = field(default=None, compare=False, repr=False)


class _Closed(Exception):
    """Put into a watcher's queue to end it with an error."""

    def __init__(self, error: errors.ApiError) -> None:
        self.error = error


class Watcher:
    """One client watch: a filter and a bounded queue of events to send."""

    def __init__(self, matches: Callable[[Message], bool], bookmarks: bool, limit: int) -> None:
        self.matches = matches
        self.bookmarks = bookmarks
        self.limit = limit
        self.queue: asyncio.Queue[Event | _Closed] = asyncio.Queue()
        self.closed = False

    def offer(self, ev: Event) -> None:
        """Queue what this watcher should see of ev (objects entering or leaving its filter)."""
        if self.closed:
            return
        out = self._translate(ev)
        if out is None:
            return
        if self.queue.qsize() >= self.limit:
            self.close(errors.ApiError("watcher fell too far behind; resume from the last "
                                       "resourceVersion"))
            return
        self.queue.put_nowait(out)

    def _translate(self, ev: Event) -> Event | None:
        if ev.type == "BOOKMARK":
            return ev if self.bookmarks else None
        now = ev.type != "DELETED" and self.matches(ev.obj)
        before = ev.prev is not None and self.matches(ev.prev)
        if now and before:
            return ev
        if now:
            return Event("ADDED", ev.revision, ev.obj)
        if before:
            gone = ev.obj if ev.type == "DELETED" else ev.prev
            return Event("DELETED", ev.revision, _with_revision(gone, ev.revision))
        return None

    def close(self, error: errors.ApiError) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(_Closed(error))


def _with_revision(obj: Message, revision: int) -> Message:
    copy = type(obj)()
    copy.CopyFrom(obj)
    copy.metadata.resource_version = str(revision)
    return copy


class KindCache:
    """The cache of one kind, fed by one etcd watch."""

    def __init__(self, kind: Kind, etcd: Etcd, *, capacity: int = 10_000,
                 watcher_queue_limit: int = 10_000) -> None:
        self.kind = kind
        self.etcd = etcd
        self.objects: dict[str, Message] = {}
        self.ring: collections.deque[Event] = collections.deque(maxlen=capacity)
        self.revision = 0          # everything up to here has been seen
        self._oldest = 0           # events after this revision are all in the ring
        self._progress_seen = 0    # last progress revision, trusted once another follows
        self._watchers: set[Watcher] = set()
        self._queue_limit = watcher_queue_limit
        # clients waiting for the cache to reach a revision: (revision, future)
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self.synced = asyncio.Event()
        self._stream = None
        self._sent = EVENTS_SENT.labels(kind.name)

    # ------------------------------------------------------------ etcd side

    async def run(self) -> None:
        """List, then follow the etcd watch for ever, relisting if it was compacted."""
        while True:
            try:
                await self._list()
                await self._follow()
            except EtcdCompacted as exc:
                log.warning("%s: etcd watch compacted (%s); relisting", self.kind.plural, exc)
                self._reset()
            except (EtcdUnavailable, grpc.aio.AioRpcError, errors.Unavailable) as exc:
                log.warning("%s: etcd unavailable (%s); retrying", self.kind.plural, exc)
                await asyncio.sleep(0.5)

    async def _list(self) -> None:
        if self.synced.is_set():
            return
        prefix = kinds.prefix(self.kind).encode()
        try:
            resp = await self.etcd.range(prefix, range_end(prefix))
        except EtcdUnavailable as exc:
            raise errors.Unavailable(str(exc)) from None
        self.objects = {kv.key.decode(): decode(self.kind, kv.value, kv.mod_revision)
                        for kv in resp.kvs}
        self.ring.clear()
        self._oldest = resp.header.revision
        self._advance(resp.header.revision)
        self.synced.set()
        log.info("%s: cached %d objects at revision %d", self.kind.plural, len(self.objects),
                 self.revision)

    def _reset(self) -> None:
        """Forget everything; watchers must relist (their revisions may be gone)."""
        self.synced.clear()
        self.close_watchers(errors.Expired("the watch cache was reset; relist"))

    def close_watchers(self, error: errors.ApiError) -> None:
        for w in list(self._watchers):
            w.close(error)

    async def _follow(self) -> None:
        stream = self.etcd.open_watch(kinds.prefix(self.kind).encode(), self.revision + 1)
        self._progress_seen = 0  # progress of an earlier stream says nothing about this one
        await stream.start()
        self._stream = stream
        ETCD_WATCHES.inc()
        try:
            while True:
                resp = await stream.read()
                if resp.events:
                    self._apply(resp.events)
                elif not resp.created:
                    await self._progress(resp.header.revision)
        finally:
            ETCD_WATCHES.dec()
            self._stream = None
            stream.cancel()

    def _apply(self, events: list) -> None:
        for e in events:
            rev = e.kv.mod_revision
            key = e.kv.key.decode()
            if rev <= self.revision:
                LATE_EVENTS.labels(self.kind.name).inc()
                log.warning("%s: event at %d behind revision %d", self.kind.plural, rev,
                            self.revision)
            prev = self.objects.get(key)
            if e.type == e.DELETE:
                if prev is None:
                    continue
                del self.objects[key]
                ev = Event("DELETED", rev, _with_revision(prev, rev), prev)
            else:
                obj = decode(self.kind, e.kv.value, rev)
                self.objects[key] = obj
                ev = Event("MODIFIED" if prev is not None else "ADDED", rev, obj, prev)
            if len(self.ring) == self.ring.maxlen:
                # a client must have seen the dropped event's revision to resume
                self._oldest = self.ring[0].revision
            self.ring.append(ev)
            self._dispatch(ev)
        self._advance(events[-1].kv.mod_revision)

    async def _progress(self, revision: int) -> None:
        trusted, self._progress_seen = self._progress_seen, revision
        self._advance(trusted)

    def _advance(self, revision: int) -> None:
        """Everything up to revision has been seen: release the clients waiting for it."""
        if revision <= self.revision:
            return
        self.revision = revision
        still = []
        for wanted, fut in self._waiters:
            if wanted <= revision:
                if not fut.done():
                    fut.set_result(None)
            else:
                still.append((wanted, fut))
        self._waiters = still

    async def request_progress(self) -> None:
        if self._stream is not None:
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
                await self._stream.request_progress()

    async def progress_loop(self, interval: float) -> None:
        """Ask etcd for progress: often while a client waits, else every interval."""
        while True:
            await self.request_progress()
            await asyncio.sleep(0.02 if self._waiters else interval)

    # ------------------------------------------------------------ client side

    def _dispatch(self, ev: Event) -> None:
        for w in list(self._watchers):
            w.offer(ev)
            if w.closed:
                self._watchers.discard(w)

    def bookmark(self) -> None:
        """Send every bookmark-enabled watcher the current revision."""
        ev = Event("BOOKMARK", self.revision, _bookmark(self.kind, self.revision))
        self._dispatch(ev)

    async def wait_for(self, revision: int, timeout: float) -> None:
        """Return once the cache has seen everything up to revision."""
        await asyncio.wait_for(self.synced.wait(), timeout)
        if self.revision >= revision:
            return
        reached = asyncio.get_running_loop().create_future()
        self._waiters.append((revision, reached))
        try:
            await asyncio.wait_for(reached, timeout)
        except TimeoutError:
            raise errors.Unavailable(
                f"resource version {revision} is ahead of this apiserver's cache "
                f"(at {self.revision}); try again") from None
        finally:
            self._waiters = [(r, f) for r, f in self._waiters if f is not reached]

    async def watch(self, matches: Callable[[Message], bool], revision: int | None,
                    bookmarks: bool, wait_timeout: float = 10.0) -> AsyncIterator[Event]:
        """Events after revision (or, for None, the current objects first), in order."""
        await asyncio.wait_for(self.synced.wait(), wait_timeout)
        w = Watcher(matches, bookmarks, self._queue_limit)
        if revision is None:
            start = self.revision
            initial = [Event("ADDED", int(o.metadata.resource_version), o)
                       for o in self.objects.values() if matches(o)]
            if bookmarks:
                initial.append(Event("BOOKMARK", start, _bookmark(self.kind, start)))
        else:
            await self.wait_for(revision, wait_timeout)
            if revision < self._oldest or await self.etcd.is_compacted(revision):
                raise errors.Expired(
                    f"too old resource version: {revision} (oldest available "
                    f"{self._oldest + 1}); relist")
            initial = [ev for ev in self.ring if ev.revision > revision]
        for ev in initial:
            if revision is None:
                w.queue.put_nowait(ev)
            else:
                w.offer(ev)
        self._watchers.add(w)
        OPEN_WATCHES.labels(self.kind.name).inc()
        try:
            while True:
                item = await w.queue.get()
                if isinstance(item, _Closed):
                    raise item.error
                self._sent.inc()
                yield item
        finally:
            self._watchers.discard(w)
            OPEN_WATCHES.labels(self.kind.name).dec()


def _bookmark(kind: Kind, revision: int) -> Message:
    obj = kind.new()
    obj.metadata.resource_version = str(revision)
    return obj


class WatchCache:
    """The caches of all kinds of one apiserver replica."""

    def __init__(self, etcd: Etcd, *, capacity: int = 10_000, progress_interval: float = 0.25,
                 bookmark_interval: float = 1.0) -> None:
        self.caches = {k.name: KindCache(k, etcd, capacity=capacity) for k in kinds.KINDS}
        self._progress_interval = progress_interval
        self._bookmark_interval = bookmark_interval
        self._tasks: list[asyncio.Task] = []

    def __getitem__(self, kind: str) -> KindCache:
        return self.caches[kind]

    def start(self) -> None:
        for c in self.caches.values():
            self._tasks.append(asyncio.create_task(c.run(), name=f"cache-{c.kind.plural}"))
            self._tasks.append(asyncio.create_task(c.progress_loop(self._progress_interval)))
        self._tasks.append(asyncio.create_task(self._bookmarks()))

    async def _bookmarks(self) -> None:
        while True:
            await asyncio.sleep(self._bookmark_interval)
            for c in self.caches.values():
                c.bookmark()

    def synced(self) -> bool:
        return all(c.synced.is_set() for c in self.caches.values())

    async def wait_synced(self) -> None:
        await asyncio.gather(*(c.synced.wait() for c in self.caches.values()))

    def end_watches(self, reason: str) -> None:
        """End every client watch, so its client resumes on another apiserver."""
        for c in self.caches.values():
            c.close_watchers(errors.Unavailable(reason))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
