"""The garbage collector: cascading deletion along ownerReferences.

A simplified kube-controller-manager garbage collector. Informers of every
kind (Events aside: they neither own nor are owned) feed a graph of objects
by uid, with the edges owner uid -> dependent uids. What a delete's
propagationPolicy asks for is done here:

* Background (the default): the owner is removed at once. An object none of
  whose owners exists any more (not in the synced caches, and confirmed by a
  live GET, as a cache may lag) is deleted in turn, in the background too.
* Orphan: the apiserver gives the owner the "orphan" finalizer; the GC
  removes the owner's ownerReferences from its dependents, then the
  finalizer, which lets the apiserver remove the owner.
* Foreground: the apiserver gives the owner the "foregroundDeletion"
  finalizer; the GC deletes the dependents (in the foreground too) and
  removes the finalizer once none is left. Unlike Kubernetes, every
  dependent blocks its owner's removal, whatever its blockOwnerDeletion.

Also unlike Kubernetes, references to missing owners are kept while the
object has another owner that exists.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass

from google.protobuf.message import Message

from controller_manager.base import Context, Controller, split_key
from minik8s import errors, kinds
from minik8s.api.v1 import types_pb2 as t
from minik8s.informer import Informer
from minik8s.retry import retry_on_conflict
from minik8s.workqueue import WorkQueue, run_workers

log = logging.getLogger("minik8s.controller.garbagecollector")

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
UNWATCHED_KINDS = ("Event",)
CATCH_UP_TIMEOUT = 10.0  # seconds to wait for the caches to reach an owner's deletion


@dataclass(frozen=True)
class _Vertex:
    kind: str
    key: str                  # namespace/name, as the kind's informer keys it
    owners: frozenset[str]    # uids
    finalizing: bool          # being deleted, waiting for the GC (orphan or foreground)


class _Graph:
    def __init__(self) -> None:
        self.vertices: dict[str, _Vertex] = {}
        self.dependents: dict[str, set[str]] = {}  # owner uid -> dependent uids

    def put(self, uid: str, vertex: _Vertex) -> None:
        self.remove(uid)
        self.vertices[uid] = vertex
        for owner in vertex.owners:
            self.dependents.setdefault(owner, set()).add(uid)

    def remove(self, uid: str) -> _Vertex | None:
        vertex = self.vertices.pop(uid, None)
        for owner in vertex.owners if vertex is not None else ():
            deps = self.dependents[owner]
            deps.discard(uid)
            if not deps:
                del self.dependents[owner]
        return vertex

    def dependents_of(self, uid: str) -> list[_Vertex]:
        return [self.vertices[d] for d in sorted(self.dependents.get(uid, ()))]


def gc_finalizer(obj: Message) -> str | None:
    """The finalizer of the GC's that obj waits for, if it is being deleted."""
    meta = obj.metadata
    if not meta.HasField("deletion_timestamp"):
        return None
    return next((f for f in (ORPHAN, FOREGROUND) if f in meta.finalizers), None)


class GarbageCollector(Controller):
    """Its queue holds uids of objects of any kind: it has no primary kind."""

    name = "garbagecollector"
    kind = ""

    def __init__(self, ctx: Context) -> None:  # no primary informer: Controller's is not called
        self.ctx = ctx
        self.queue = WorkQueue(self.name)
        self.graph = _Graph()
        self.informers: dict[str, Informer] = {
            k.name: ctx.informer(k.name) for k in kinds.KINDS if k.name not in UNWATCHED_KINDS}
        for informer in self.informers.values():
            informer.add_handler(self._seen, self._updated, self._gone)

    async def run(self) -> None:
        for informer in self.informers.values():
            for obj in informer.list():
                if self._needs_attention(obj):
                    self.queue.add(obj.metadata.uid)
        await run_workers(self.queue, self._reconcile, self.ctx.options.workers)

    # ------------------------------------------------------------ the graph

    def _seen(self, obj: Message) -> None:
        uid = obj.metadata.uid
        self.graph.put(uid, _Vertex(kinds.of(obj).name, kinds.object_key(obj),
                                    frozenset(r.uid for r in obj.metadata.owner_references),
                                    gc_finalizer(obj) is not None))
        if self._needs_attention(obj):
            self.queue.add(uid)

    def _updated(self, old: Message, new: Message) -> None:
        if old.metadata.uid != new.metadata.uid:  # deleted and made again meanwhile
            self._gone(old)
        self._seen(new)

    def _gone(self, obj: Message) -> None:
        uid = obj.metadata.uid
        vertex = self.graph.remove(uid)
        for dependent in self.graph.dependents.get(uid, ()):
            self.queue.add(dependent)  # its last owner may be gone
        for owner in vertex.owners if vertex is not None else ():
            waiting = self.graph.vertices.get(owner)
            if waiting is not None and waiting.finalizing:
                self.queue.add(owner)  # one dependent fewer to wait for

    def _needs_attention(self, obj: Message) -> bool:
        return gc_finalizer(obj) is not None or self._owners_gone(obj)

    def _owners_gone(self, obj: Message) -> bool:
        """True if obj has owners and none of them is in the caches."""
        refs = obj.metadata.owner_references
        return bool(refs) and not any(r.uid in self.graph.vertices for r in refs)

    # ------------------------------------------------------------ reconcile

    async def reconcile(self, key: str) -> None:
        uid = key  # the GC's keys are uids
        vertex = self.graph.vertices.get(uid)
        if vertex is None:
            return
        if not all(i.has_synced() for i in self.informers.values()):
            self.queue.add_after(uid, 1.0)  # an owner may just not be listed yet
            return
        obj = self.informers[vertex.kind].get(vertex.key)
        if obj is None or obj.metadata.uid != uid:
            return
        finalizer = gc_finalizer(obj)
        if finalizer == ORPHAN:
            await self._orphan_dependents(obj)
        elif finalizer == FOREGROUND:
            await self._delete_dependents(obj)
        elif self._owners_gone(obj):
            await self._collect(vertex, uid)

    async def _collect(self, vertex: _Vertex, uid: str) -> None:
        """Delete the object if a live read confirms that all its owners are gone."""
        namespace, name = split_key(vertex.key)
        try:
            live = await self.ctx.api.get(vertex.kind, name, namespace)
        except errors.NotFound:
            return
        if live.metadata.uid != uid or live.metadata.HasField("deletion_timestamp"):
            return
        for ref in live.metadata.owner_references:
            if await self._owner_exists(ref, namespace):
                return
        log.info("deleting %s %s: its owners are gone", vertex.kind, vertex.key)
        with contextlib.suppress(errors.NotFound):
            # the precondition: not if it changed (was adopted?) since the read
            await self.ctx.api.delete(vertex.kind, name, namespace,
                                      resource_version=live.metadata.resource_version,
                                      propagation_policy="Background")

    async def _owner_exists(self, ref: t.OwnerReference, namespace: str) -> bool:
        if ref.uid in self.graph.vertices:
            return True
        try:
            kind = kinds.by_name(ref.kind)
        except kinds.UnknownKind:
            return True  # cannot tell: keep the dependent
        if kind.namespaced and not namespace:
            return False  # a cluster-scoped object cannot be owned by a namespaced one
        try:
            owner = await self.ctx.api.get(kind.name, ref.name, namespace if kind.namespaced
                                           else "")
        except errors.NotFound:
            return False
        return owner.metadata.uid == ref.uid

    async def _orphan_dependents(self, owner: Message) -> None:
        await self._catch_up(owner)
        uid = owner.metadata.uid
        await _all(self._disown(dependent, uid) for dependent in self.graph.dependents_of(uid))
        await self._remove_finalizer(owner, ORPHAN)

    async def _delete_dependents(self, owner: Message) -> None:
        """Delete the dependents; remove the finalizer once they are all gone.

        Each dependent's disappearance queues the owner again (see _gone).
        """
        await self._catch_up(owner)
        dependents = self.graph.dependents_of(owner.metadata.uid)
        if not dependents:
            await self._remove_finalizer(owner, FOREGROUND)
            return
        await _all(self._delete_in_foreground(d) for d in dependents)

    async def _catch_up(self, owner: Message) -> None:
        """Wait until the caches hold every dependent made before owner was marked deleted.

        Its controller makes none afterwards, so then the graph has them all.
        """
        revision = int(owner.metadata.resource_version)
        caught_up = await asyncio.gather(*(i.wait_for_revision(revision, CATCH_UP_TIMEOUT)
                                           for i in self.informers.values()))
        if not all(caught_up):
            log.warning("caches did not reach revision %d in %ss; going on", revision,
                        CATCH_UP_TIMEOUT)

    async def _disown(self, dependent: _Vertex, owner_uid: str) -> None:
        """Remove the ownerReference to owner_uid from dependent."""
        namespace, name = split_key(dependent.key)

        async def attempt() -> None:
            try:
                obj = await self.ctx.api.get(dependent.kind, name, namespace)
            except errors.NotFound:
                return
            refs = [r for r in obj.metadata.owner_references if r.uid != owner_uid]
            if len(refs) == len(obj.metadata.owner_references):
                return
            del obj.metadata.owner_references[:]
            obj.metadata.owner_references.extend(refs)
            await self.ctx.api.update(obj)
        await retry_on_conflict(attempt)

    async def _delete_in_foreground(self, dependent: _Vertex) -> None:
        cached = self.informers[dependent.kind].get(dependent.key)
        if cached is None or cached.metadata.HasField("deletion_timestamp"):
            return
        namespace, name = split_key(dependent.key)
        with contextlib.suppress(errors.NotFound):
            await self.ctx.api.delete(dependent.kind, name, namespace,
                                      propagation_policy="Foreground")

    async def _remove_finalizer(self, owner: Message, finalizer: str) -> None:
        """Remove finalizer; the apiserver removes the owner if it was the last one."""
        kind = kinds.of(owner).name
        meta = owner.metadata

        async def attempt() -> None:
            try:
                obj = await self.ctx.api.get(kind, meta.name, meta.namespace)
            except errors.NotFound:
                return
            if obj.metadata.uid != meta.uid or finalizer not in obj.metadata.finalizers:
                return
            obj.metadata.finalizers.remove(finalizer)
            await self.ctx.api.update(obj)
        await retry_on_conflict(attempt)


async def _all(calls: Iterable[Awaitable[None]]) -> None:
    """Await calls concurrently; raise the first failure once all have ended."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
