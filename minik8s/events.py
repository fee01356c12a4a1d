"""Recording Events, as client-go's event recorder: fire and forget.

A component calls record(...) and carries on; background workers write the
events. Repeats of the same event (same object, type, reason and message)
are folded into one Event whose count and lastTimestamp grow, so a pod that
fails to schedule a hundred times is one event with count 100. The repeats of
one event always go to the same worker, in order, so two of them never race
to create two Events. When the apiserver cannot keep up, events beyond
max_pending are dropped: events are for people, never worth slowing the
component down.
"""
from __future__ import annotations

import asyncio
import datetime
import logging
import uuid
from collections import OrderedDict
from dataclasses import dataclass

from google.protobuf.message import Message
from prometheus_client import Counter

from minik8s import errors, kinds
from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient

log = logging.getLogger("minik8s.events")

DROPPED = Counter("events_dropped_total", "events not recorded because too many were pending",
                  ["component"])

MAX_REMEMBERED = 4096  # events kept for folding repeats into; older ones start anew


@dataclass(frozen=True)
class _Key:
    namespace: str
    uid: str
    type: str
    reason: str
    message: str


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _reference(obj: Message) -> t.ObjectReference:
    kind = kinds.of(obj)
    meta = obj.metadata
    return t.ObjectReference(api_version=kind.api_version, kind=kind.name,
                             namespace=meta.namespace, name=meta.name, uid=meta.uid,
                             resource_version=meta.resource_version)


class EventRecorder:
    def __init__(self, client: ApiClient, component: str, host: str = "",
                 max_pending: int = 1000, workers: int = 4) -> None:
        self.client = client
        self.component = component
        self.host = host
        # one queue per worker; an event's repeats all go to the same one
        self._pending: list[asyncio.Queue[tuple[_Key, t.ObjectReference]]] = [
            asyncio.Queue(max(1, max_pending // workers)) for _ in range(workers)]
        self._seen: OrderedDict[_Key, t.Event] = OrderedDict()  # the most recent, for folding
        self._dropped = DROPPED.labels(component)

    def record(self, obj: Message, type_: str, reason: str, message: str) -> None:
        """Queue an event about obj; never blocks."""
        ref = _reference(obj)
        key = _Key(ref.namespace or "default", ref.uid, type_, reason, message)
        try:
            self._pending[hash(key) % len(self._pending)].put_nowait((key, ref))
        except asyncio.QueueFull:
            self._dropped.inc()

    async def run(self) -> None:
        await asyncio.gather(*(self._work(queue) for queue in self._pending))

    async def _work(self, pending: asyncio.Queue[tuple[_Key, t.ObjectReference]]) -> None:
        while True:
            key, ref = await pending.get()
            try:
                await self._write(key, ref)
            except errors.ApiError as exc:
                log.warning("could not record event %s for %s/%s: %s", key.reason,
                            ref.namespace, ref.name, exc)

    async def _write(self, key: _Key, ref: t.ObjectReference) -> None:
        seen = self._seen.get(key)
        if seen is not None:
            seen.count += 1
            seen.last_timestamp.FromDatetime(_now())
            try:
                self._remember(key, await self.client.update(seen))
                return
            except (errors.Conflict, errors.NotFound):
                self._seen.pop(key, None)
        self._remember(key, await self.client.create(self._new(key, ref)))

    def _remember(self, key: _Key, event: t.Event) -> None:
        self._seen[key] = event
        self._seen.move_to_end(key)
        while len(self._seen) > MAX_REMEMBERED:
            self._seen.popitem(last=False)

    def _new(self, key: _Key, ref: t.ObjectReference) -> t.Event:
        ev = t.Event(
            metadata=t.ObjectMeta(name=f"{ref.name}.{uuid.uuid4().hex[:12]}",
                                  namespace=key.namespace),
            involved_object=ref, reason=key.reason, message=key.message, type=key.type,
            count=1, source=t.EventSource(component=self.component, host=self.host),
            reporting_component=self.component, reporting_instance=self.host)
        ev.first_timestamp.FromDatetime(_now())
        ev.last_timestamp.FromDatetime(_now())
        return ev
