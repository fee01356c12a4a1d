"""The node lifecycle controller: a node whose kubelet went quiet is marked and emptied.

Heartbeats are Leases in kube-node-lease, named after their node and renewed
by its kubelet. As client-go's leader election does, a lease's age is judged
by this process's own clock (how long since *we* saw spec.renewTime change),
never by comparing renewTime with our clock, so clock skew does not matter.

* No renewal seen for node_monitor_grace_period: the node's Ready condition
  becomes Unknown and it gets the node.kubernetes.io/unreachable taints
  (NoSchedule, NoExecute).
* Renewed again: the taints go (the kubelet sets Ready itself).
* Pods bound to an unreachable node are deleted with grace period 0 (nobody
  is there to stop them gracefully), as Kubernetes' taint manager does, once
  they have tolerated the NoExecute taint for as long as they may: a pod with
  no toleration for it gets pod_eviction_timeout (what the
  DefaultTolerationSeconds admission plugin gives every pod), one tolerating
  it without tolerationSeconds stays. Their controllers replace them.

A node without a lease is not monitored: it has no kubelet (tests register
bare Node objects), and nothing here touches it. Likewise a Ready=False that
a kubelet reports itself is left alone (no not-ready taint).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass

from google.protobuf.timestamp_pb2 import Timestamp

from controller_manager import pods as podutil
from controller_manager.base import Controller
from minik8s import errors
from minik8s.api.v1 import types_pb2 as t
from minik8s.retry import Backoff

log = logging.getLogger("minik8s.controller.nodelifecycle")

LEASE_NAMESPACE = "kube-node-lease"
UNREACHABLE = "node.kubernetes.io/unreachable"
UNREACHABLE_EFFECTS = ("NoSchedule", "NoExecute")


@dataclass
class _Heartbeat:
    renew_time: Timestamp
    seen_at: float  # time.monotonic() when renew_time was seen to change


class NodeLifecycleController(Controller):
    name = "nodelifecycle"
    kind = "Node"

    def register(self) -> None:
        self.heartbeats: dict[str, _Heartbeat] = {}
        leases = self.ctx.informer("Lease")  # shared with the GC, which watches all of them
        leases.add_handler(self._lease_seen, lambda _old, new: self._lease_seen(new),
                           self._lease_gone)
        self.pods = self.ctx.informer("Pod")
        self.pods.add_handler(self._pod_seen, lambda _old, new: self._pod_seen(new))

    async def run(self) -> None:
        await self._ensure_lease_namespace()
        await super().run()

    async def _ensure_lease_namespace(self) -> None:
        """Kubelets renew their leases in kube-node-lease: it must exist."""
        backoff = Backoff(0.1, 5.0)
        while True:
            try:
                await self.ctx.api.create(t.Namespace(metadata=t.ObjectMeta(name=LEASE_NAMESPACE)))
                return
            except errors.AlreadyExists:
                return
            except errors.Fenced:
                self.ctx.fenced.set()
                raise
            except errors.ApiError as exc:
                log.warning("creating namespace %s: %s; retrying", LEASE_NAMESPACE, exc)
            await asyncio.sleep(backoff.next())

    # ------------------------------------------------------------ events

    def _lease_seen(self, lease: t.Lease) -> None:
        if lease.metadata.namespace != LEASE_NAMESPACE:
            return
        name = lease.metadata.name
        beat = self.heartbeats.get(name)
        if beat is None or beat.renew_time != lease.spec.renew_time:
            self.heartbeats[name] = _Heartbeat(lease.spec.renew_time, time.monotonic())
            self.queue.add(name)

    def _lease_gone(self, lease: t.Lease) -> None:
        if lease.metadata.namespace == LEASE_NAMESPACE:
            self.heartbeats.pop(lease.metadata.name, None)

    def _pod_seen(self, pod: t.Pod) -> None:
        """A pod on an unreachable node: it may have to be evicted."""
        node = pod.spec.node_name
        if node and node in self.heartbeats and time.monotonic() >= self._stale_at(node):
            self.queue.add(node)

    def _stale_at(self, node: str) -> float:
        """When (time.monotonic()) the node counts as unreachable unless it renews."""
        return self.heartbeats[node].seen_at + self.ctx.options.node_monitor_grace_period

    # ------------------------------------------------------------ reconcile

    async def reconcile(self, key: str) -> None:
        node = self.primary.get(key)
        if node is None or key not in self.heartbeats:
            return  # gone, or not monitored
        now, stale_at = time.monotonic(), self._stale_at(key)
        if now < stale_at:
            await self._set_taints(node, present=False)
            self.queue.add_after(key, stale_at - now)
            return
        node = await self._mark_unknown(node)
        await self._set_taints(node, present=True)
        await self._evict(node, stale_at, now)

    async def _mark_unknown(self, node: t.Node) -> t.Node:
        """Set the Ready condition to Unknown, as Kubernetes does for a silent kubelet."""
        ready = next((c for c in node.status.conditions if c.type == "Ready"), None)
        if ready is not None and ready.status == "Unknown":
            return node
        updated = t.Node()
        updated.CopyFrom(node)
        cond = next((c for c in updated.status.conditions if c.type == "Ready"), None) \
            or updated.status.conditions.add(type="Ready")
        cond.status, cond.reason = "Unknown", "NodeStatusUnknown"
        cond.message = "Kubelet stopped posting node status."
        cond.last_transition_time.FromDatetime(podutil.now())
        node = await self.ctx.api.update_status(updated)
        self.ctx.record(node, "Normal", "NodeNotReady",
                        f"Node {node.metadata.name} status is now: NodeNotReady")
        return node

    async def _set_taints(self, node: t.Node, present: bool) -> t.Node:
        """Add (present) or remove the unreachable taints, if they are not so already."""
        ours = sorted(x.effect for x in node.spec.taints if x.key == UNREACHABLE)
        if ours == (sorted(UNREACHABLE_EFFECTS) if present else []):
            return node
        updated = t.Node()
        updated.CopyFrom(node)
        kept = [x for x in node.spec.taints if x.key != UNREACHABLE]
        del updated.spec.taints[:]
        updated.spec.taints.extend(kept)
        if present:
            for effect in UNREACHABLE_EFFECTS:
                updated.spec.taints.add(key=UNREACHABLE, effect=effect).time_added.FromDatetime(
                    podutil.now())
        return await self.ctx.api.update(updated)

    async def _evict(self, node: t.Node, stale_at: float, now: float) -> None:
        """Delete the node's pods whose time is up; look again when the next one's is."""
        due: list[t.Pod] = []
        next_due = math.inf
        for pod in self.pods.list():
            if pod.spec.node_name != node.metadata.name:
                continue
            allowed = tolerated_for(pod, self.ctx.options.pod_eviction_timeout)
            if allowed is None:
                continue
            if stale_at + allowed <= now:
                due.append(pod)
            else:
                next_due = min(next_due, stale_at + allowed)
        if next_due < math.inf:
            self.queue.add_after(node.metadata.name, next_due - now)
        results = await asyncio.gather(*(self._evict_pod(p) for p in due),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _evict_pod(self, pod: t.Pod) -> None:
        meta = pod.metadata
        self.ctx.record(pod, "Normal", "TaintManagerEviction",
                        f"Marking for deletion Pod {meta.namespace}/{meta.name}")
        # the resourceVersion precondition spares a namesake made meanwhile
        with contextlib.suppress(errors.NotFound):
            await self.ctx.api.delete("Pod", meta.name, meta.namespace,
                                      resource_version=meta.resource_version,
                                      grace_period_seconds=0)


def tolerates_unreachable(tol: t.Toleration) -> bool:
    """Kubernetes' ToleratesTaint, for the unreachable:NoExecute taint."""
    if (tol.effect and tol.effect != "NoExecute") or (tol.key and tol.key != UNREACHABLE):
        return False
    return tol.operator == "Exists" or (tol.operator in ("", "Equal") and not tol.value)


def tolerated_for(pod: t.Pod, default: float) -> float | None:
    """Seconds pod may stay on an unreachable node (None: for ever).

    As the taint manager: the least tolerationSeconds of the matching
    tolerations; for ever if none of them has tolerationSeconds; default if
    none matches.
    """
    matching = [tol for tol in pod.spec.tolerations if tolerates_unreachable(tol)]
    if not matching:
        return default
    limits = [tol.toleration_seconds for tol in matching if tol.HasField("toleration_seconds")]
    return max(0, min(limits)) if limits else None
