"""The namespace controller: a Terminating namespace is emptied, then removed.

Deleting a namespace that holds objects only marks it Terminating (see the
apiserver's registry). This controller deletes everything in it, kind by
kind, reading with live lists rather than caches (as Kubernetes' namespace
deleter does: no informer for every kind is needed, Events included), and
looks again until nothing is left; then it deletes the namespace again,
which the apiserver now removes since it is empty.

Pods are deleted with grace period 0. Kubernetes deletes them gracefully and
waits for their kubelets; here a pod on a node without a kubelet would keep
the namespace Terminating for ever, and the namespace is going away anyway.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging

from controller_manager.base import Controller
from minik8s import errors, kinds
from minik8s.kinds import Kind

log = logging.getLogger("minik8s.controller.namespace")

RECHECK_SECONDS = 1.0  # between passes over a namespace that still holds objects
NAMESPACED_KINDS = tuple(k for k in kinds.KINDS if k.namespaced)


class NamespaceController(Controller):
    name = "namespace"
    kind = "Namespace"

    async def reconcile(self, key: str) -> None:
        cached = self.primary.get(key)
        if cached is None or cached.status.phase != "Terminating":
            return
        # the cache may still show a namespace that is gone and made again: ask
        try:
            ns = await self.ctx.api.get("Namespace", key)
        except errors.NotFound:
            return
        if ns.status.phase != "Terminating":
            return
        counts = await asyncio.gather(*(self._delete_all(kind, key) for kind in NAMESPACED_KINDS))
        if not any(counts):
            log.info("namespace %s is empty: removing it", key)
            with contextlib.suppress(errors.NotFound, errors.Conflict):
                await self.ctx.api.delete("Namespace", key,
                                          resource_version=ns.metadata.resource_version)
        # once more: the namespace is gone, or not yet empty (finalizers, new objects)
        self.queue.add_after(key, RECHECK_SECONDS)

    async def _delete_all(self, kind: Kind, namespace: str) -> int:
        """Delete every object of kind in namespace; how many there were."""
        items, _ = await self.ctx.api.list(kind.name, namespace)
        grace = 0 if kind.name == "Pod" else None
        for obj in items:
            with contextlib.suppress(errors.NotFound):
                await self.ctx.api.delete(kind.name, obj.metadata.name, namespace,
                                          grace_period_seconds=grace)
        return len(items)
