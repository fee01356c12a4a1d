"""The DaemonSet controller: one pod on every eligible node, as Kubernetes'.

Placement goes through the scheduler, as Kubernetes' has since
ScheduleDaemonSetPods: each pod is created with one required node affinity
term, ``matchFields: metadata.name In [<node>]`` (in place of the template's
required terms, already checked here), so the default scheduler binds it to
that node with its usual filters and fencing. A pod's node is its
spec.nodeName once bound, that term before.

Eligibility reuses the scheduler's NodeAffinity and TaintToleration filters
on the pod as it would be created, with the tolerations Kubernetes gives
every daemon pod (not-ready, unreachable, unschedulable, ...). Unlike
Kubernetes, which leaves a running pod on a node that gains a NoSchedule
taint it does not tolerate (only NoExecute evicts), such a taint removes the
pod here too: "should run" and "may keep running" are one rule.

Per node: a pod is created where the DaemonSet should run and has none; a
terminating pod still counts, so its replacement waits until it is gone and
a node never holds two. Finished pods and all but the oldest of several are
deleted; where the DaemonSet should not run, all its pods are. Pods on nodes
that no longer exist are force-deleted (no kubelet will finish them), as
Kubernetes' pod GC does, once a live read confirms the node is gone.

RollingUpdate: pods whose controller-revision-hash label is not the
template's hash are deleted, never leaving more than maxUnavailable eligible
nodes without an available pod (maxSurge is not supported); the manage pass
then creates their replacements.
"""
from __future__ import annotations

import asyncio
import datetime
import hashlib
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from controller_manager import pods as podutil
from controller_manager.ownership import claim
from controller_manager.podowner import PodOwnerController
from minik8s import errors, selectors
from minik8s.api.v1 import types_pb2 as t
from minik8s.informer import NAMESPACE_INDEX
from scheduler.cache import NodeInfo
from scheduler.framework import SKIP, Code
from scheduler.plugins.node_affinity import NodeAffinity
from scheduler.plugins.taint_toleration import TaintToleration

REVISION_LABEL = "controller-revision-hash"
NODE_NAME_FIELD = "metadata.name"
FINISHED_PHASES = ("Succeeded", "Failed")

_AFFINITY, _TAINTS = NodeAffinity(), TaintToleration()


def _tolerate(key: str, effect: str) -> t.Toleration:
    return t.Toleration(key=f"node.kubernetes.io/{key}", operator="Exists", effect=effect)


# What Kubernetes' AddOrUpdateDaemonPodTolerations gives every daemon pod.
DAEMON_TOLERATIONS = (
    _tolerate("not-ready", "NoExecute"),
    _tolerate("unreachable", "NoExecute"),
    _tolerate("disk-pressure", "NoSchedule"),
    _tolerate("memory-pressure", "NoSchedule"),
    _tolerate("pid-pressure", "NoSchedule"),
    _tolerate("unschedulable", "NoSchedule"),
)
HOST_NETWORK_TOLERATION = _tolerate("network-unavailable", "NoSchedule")


# ---------------------------------------------------------------- pure logic

def template_hash(template: t.PodTemplateSpec) -> str:
    """The controller-revision-hash of a template, the same in every process."""
    return hashlib.sha256(template.SerializeToString(deterministic=True)).hexdigest()[:10]


def add_daemon_tolerations(spec: t.PodSpec) -> None:
    """Add, in place, the daemon tolerations the spec does not have yet."""
    extra = (HOST_NETWORK_TOLERATION,) if spec.host_network else ()
    for toleration in (*DAEMON_TOLERATIONS, *extra):
        if toleration not in spec.tolerations:
            spec.tolerations.append(toleration)


def template_pod(ds: t.DaemonSet) -> t.Pod:
    """The DaemonSet's pod before it is pinned to a node: what eligibility is decided on."""
    pod = t.Pod(metadata=ds.spec.template.metadata, spec=ds.spec.template.spec)
    add_daemon_tolerations(pod.spec)
    return pod


def should_run(pod: t.Pod, node: t.Node) -> bool:
    """Whether pod (a template_pod) belongs on node, by the scheduler's own filters."""
    if pod.spec.node_name and pod.spec.node_name != node.metadata.name:
        return False
    info = NodeInfo(node.metadata.name)
    info.set_node(node)
    state = _AFFINITY.pre_filter(pod)
    if state is not SKIP and _AFFINITY.filter(pod, info, state).code is not Code.SUCCESS:
        return False
    return _TAINTS.filter(pod, info, _TAINTS.pre_filter(pod)).code is Code.SUCCESS


def daemon_pod(ds: t.DaemonSet, node_name: str, revision: str) -> t.Pod:
    """A new pod of ds for node_name, which the scheduler can only bind there."""
    pod = podutil.from_template(ds.spec.template, ds)
    pod.metadata.labels[REVISION_LABEL] = revision
    add_daemon_tolerations(pod.spec)
    required = pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
    del required.node_selector_terms[:]
    required.node_selector_terms.add().match_fields.add(
        key=NODE_NAME_FIELD, operator="In", values=[node_name])
    return pod


def target_node(pod: t.Pod) -> str:
    """The node a daemon pod is for: where it is bound, else where its affinity pins it."""
    if pod.spec.node_name:
        return pod.spec.node_name
    required = pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
    for term in required.node_selector_terms:
        for r in term.match_fields:
            if r.key == NODE_NAME_FIELD and r.operator == "In" and len(r.values) == 1:
                return r.values[0]
    return ""


def pods_by_node(pods: Iterable[t.Pod]) -> dict[str, list[t.Pod]]:
    """Pods grouped by target_node; pods pinned to no node are left out (as Kubernetes)."""
    grouped: dict[str, list[t.Pod]] = defaultdict(list)
    for pod in pods:
        if node := target_node(pod):
            grouped[node].append(pod)
    return dict(grouped)


def _keep_first(pod: t.Pod) -> tuple:
    """Sort key: the pod to keep of several on a node comes first (bound, then oldest)."""
    return not pod.spec.node_name, pod.metadata.creation_timestamp.ToNanoseconds(), \
        pod.metadata.name


def _surplus(pods: Sequence[t.Pod]) -> list[t.Pod]:
    """On a node that should run the DaemonSet: finished pods and all live ones but one."""
    live = [p for p in pods if not podutil.is_terminating(p)]
    finished = [p for p in live if p.status.phase in FINISHED_PHASES]
    running = sorted((p for p in live if p.status.phase not in FINISHED_PHASES), key=_keep_first)
    return finished + running[1:]


@dataclass
class Plan:
    """What the manage pass does."""

    create: list[str] = field(default_factory=list)  # nodes
    delete: list[t.Pod] = field(default_factory=list)
    orphaned: list[t.Pod] = field(default_factory=list)  # on nodes that no longer exist


def plan(eligible: dict[str, bool], by_node: dict[str, list[t.Pod]]) -> Plan:
    """eligible maps every existing node's name to whether the DaemonSet should run there."""
    result = Plan()
    for node, run in sorted(eligible.items()):
        pods = by_node.get(node, [])
        if run and not pods:
            result.create.append(node)
        elif run:
            result.delete.extend(_surplus(pods))
        else:
            result.delete.extend(p for p in pods if not podutil.is_terminating(p))
    for node, pods in sorted(by_node.items()):
        if node not in eligible:
            result.orphaned.extend(pods)
    return result


def max_unavailable(strategy: t.DaemonSetUpdateStrategy, desired: int) -> int:
    """maxUnavailable as a count: a percentage of desired rounds up; at least 1 (no surge)."""
    value = strategy.rolling_update.max_unavailable
    which = value.WhichOneof("value")
    if which == "str_val":
        count = math.ceil(int(value.str_val.removesuffix("%")) * desired / 100)
    else:
        count = value.int_val if which == "int_val" else 1
    return max(count, 1)


def rolling_deletions(by_node: dict[str, list[t.Pod]], eligible_nodes: Iterable[str],
                      revision: str, limit: int, min_ready_seconds: int,
                      now: datetime.datetime) -> list[t.Pod]:
    """The out-of-date pods to delete now, as Kubernetes' rollingUpdate without surge.

    A node without exactly one live pod, or whose pod is not available,
    counts as unavailable. Old pods that are unavailable anyway are replaced
    at once; available ones only while fewer than limit nodes are
    unavailable (Kubernetes does not count the former, and so may briefly
    exceed maxUnavailable).
    """
    unavailable, broken, candidates = 0, [], []
    for node in eligible_nodes:
        live = [p for p in by_node.get(node, []) if not podutil.is_terminating(p)]
        if len(live) != 1:
            unavailable += 1
            continue
        pod = live[0]
        available = podutil.is_available(pod, min_ready_seconds, now)
        if pod.metadata.labels.get(REVISION_LABEL) == revision:
            unavailable += not available
        elif available:
            candidates.append(pod)
        else:
            unavailable += 1
            broken.append(pod)
    return broken + candidates[:max(0, limit - unavailable)]


def daemon_status(ds: t.DaemonSet, eligible: dict[str, bool], by_node: dict[str, list[t.Pod]],
                  revision: str, now: datetime.datetime) -> t.DaemonSetStatus:
    """The status counts; per node, the pod kept of several is the one counted."""
    status = t.DaemonSetStatus(observed_generation=ds.metadata.generation,
                               conditions=ds.status.conditions)
    for node, run in eligible.items():
        live = sorted((p for p in by_node.get(node, []) if not podutil.is_terminating(p)),
                      key=_keep_first)
        if not run:
            status.number_misscheduled += bool(live)
            continue
        status.desired_number_scheduled += 1
        if not live:
            continue
        pod = live[0]
        status.current_number_scheduled += 1
        status.number_ready += podutil.is_ready(pod)
        status.number_available += podutil.is_available(pod, ds.spec.min_ready_seconds, now)
        status.updated_number_scheduled += pod.metadata.labels.get(REVISION_LABEL) == revision
    status.number_unavailable = max(0, status.desired_number_scheduled - status.number_available)
    return status


# ---------------------------------------------------------------- controller

class DaemonSetController(PodOwnerController):
    name = "daemonset"
    kind = "DaemonSet"

    def register(self) -> None:
        super().register()
        self.nodes = self.ctx.informer("Node")
        self.nodes.add_handler(self._node_added, self._node_updated, self._node_deleted)

    def might_adopt(self, owner: t.DaemonSet, pod: t.Pod) -> bool:
        return selectors.LabelSelector.from_proto(owner.spec.selector).matches(
            pod.metadata.labels)

    # ------------------------------------------------------------ node events

    def _enqueue_if(self, changed: Callable[[t.Pod], bool]) -> None:
        """Enqueue the DaemonSets for whose template_pod changed() holds."""
        for ds in self.primary.list():
            if changed(template_pod(ds)):
                self.enqueue(ds)

    def _node_added(self, node: t.Node) -> None:
        self._enqueue_if(lambda pod: should_run(pod, node))

    def _node_updated(self, old: t.Node, new: t.Node) -> None:
        # eligibility depends on the name, labels and taints only
        if old.metadata.labels != new.metadata.labels or old.spec != new.spec:
            self._enqueue_if(lambda pod: should_run(pod, old) != should_run(pod, new))

    def _node_deleted(self, _node: t.Node) -> None:
        for ds in self.primary.list():
            self.enqueue(ds)

    # ------------------------------------------------------------ reconcile

    def _satisfied(self, key: str) -> bool:
        return self.creations.satisfied(key) and self.deletions.satisfied(key)

    async def reconcile(self, key: str) -> None:
        ds = self.primary.get(key)
        if ds is None:
            self.creations.forget(key)
            self.deletions.forget(key)
            return
        mine = await claim(self.ctx.api, ds,
                           self.pods.by_index(NAMESPACE_INDEX, ds.metadata.namespace),
                           adoptable=podutil.is_active)
        template = template_pod(ds)
        eligible = {n.metadata.name: should_run(template, n) for n in self.nodes.list()}
        by_node = pods_by_node(mine)
        revision = template_hash(ds.spec.template)
        if self._satisfied(key) and not podutil.is_terminating(ds):
            acted = await self._manage(key, ds, plan(eligible, by_node), revision)
            # the rollout goes on from what the manage pass left, once that is observed
            if not acted and ds.spec.update_strategy.type == "RollingUpdate":
                await self._roll(key, ds, eligible, by_node, revision)
        status = daemon_status(ds, eligible, by_node, revision, podutil.now())
        await self._update_status(key, ds, status)

    async def _manage(self, key: str, ds: t.DaemonSet, todo: Plan, revision: str) -> bool:
        """Carry out the plan; False if there was nothing to do."""
        gone = await self._vanished({target_node(p) for p in todo.orphaned})
        doomed: list[tuple[t.Pod, int | None]] = [(p, None) for p in todo.delete]
        doomed += [(p, 0) for p in todo.orphaned if target_node(p) in gone]
        await asyncio.gather(self._create(key, ds, todo.create, revision),
                             self._delete(key, ds, doomed))
        return bool(todo.create or doomed)

    async def _vanished(self, nodes: Iterable[str]) -> set[str]:
        """Those nodes a live read says are gone: the node cache may lag the pod cache."""
        gone = set()
        for name in nodes:
            try:
                await self.ctx.api.get("Node", name)
            except errors.NotFound:
                gone.add(name)
        return gone

    async def _roll(self, key: str, ds: t.DaemonSet, eligible: dict[str, bool],
                    by_node: dict[str, list[t.Pod]], revision: str) -> None:
        nodes = sorted(name for name, run in eligible.items() if run)
        limit = max_unavailable(ds.spec.update_strategy, len(nodes))
        doomed = rolling_deletions(by_node, nodes, revision, limit, ds.spec.min_ready_seconds,
                                   podutil.now())
        await self._delete(key, ds, [(p, None) for p in doomed])

    async def _create(self, key: str, ds: t.DaemonSet, nodes: list[str], revision: str) -> None:
        if not nodes:
            return
        self.creations.expect_creations(key, len(nodes))
        results = await asyncio.gather(
            *(self.ctx.api.create(daemon_pod(ds, node, revision)) for node in nodes),
            return_exceptions=True)
        failures = []
        for result in results:
            if isinstance(result, BaseException):
                self.creations.creation_observed(key)  # never to be observed otherwise
                failures.append(result)
            else:
                self.ctx.record(ds, "Normal", "SuccessfulCreate",
                                f"Created pod: {result.metadata.name}")
        if failures:
            raise failures[0]

    async def _delete(self, key: str, ds: t.DaemonSet,
                      doomed: list[tuple[t.Pod, int | None]]) -> None:
        """Delete pods, each with its grace period (None: the pod's own)."""
        if not doomed:
            return
        self.deletions.expect_deletions(key, [p.metadata.uid for p, _ in doomed])
        results = await asyncio.gather(
            *(self.ctx.api.delete("Pod", p.metadata.name, p.metadata.namespace,
                                  grace_period_seconds=grace) for p, grace in doomed),
            return_exceptions=True)
        failures = []
        for (pod, _), result in zip(doomed, results, strict=True):
            if isinstance(result, BaseException):
                self.deletions.deletion_observed(key, pod.metadata.uid)
                if not isinstance(result, errors.NotFound):
                    failures.append(result)
            else:
                self.ctx.record(ds, "Normal", "SuccessfulDelete",
                                f"Deleted pod: {pod.metadata.name}")
        if failures:
            raise failures[0]

    async def _update_status(self, key: str, ds: t.DaemonSet,
                             status: t.DaemonSetStatus) -> None:
        if status.number_ready > status.number_available:
            # look again once they have been ready for minReadySeconds
            self.queue.add_after(key, ds.spec.min_ready_seconds)
        if status == ds.status:
            return
        updated = t.DaemonSet()
        updated.CopyFrom(ds)
        updated.status.CopyFrom(status)
        await self.ctx.api.update_status(updated)
