"""The dashboard's view model: what each section shows, from cached objects.

Pure functions of the objects (and of the time, for ages), so that what the
page says can be checked without a cluster. Resources are counted as the
scheduler counts them (scheduler.resources), rollouts judged as `minictl
rollout status` judges them (minik8s.rollout), cells worded as `minictl get`
words them (minik8s.cli.printers).
"""
from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from minik8s import rollout
from minik8s.api.v1 import types_pb2 as t
from minik8s.cli import printers
from minik8s.cli.describe import cpu_text
from scheduler.resources import Resources, allocatable, pod_requests

LEADER_LEASES = ("kube-scheduler", "kube-controller-manager")
EVENT_LIMIT = 50
TERMINATED = ("Succeeded", "Failed")
FAILING = ("Error", "Failed", "CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull",
           "ErrImageNeverPull", "CreateContainerError", "RunContainerError")


# ---------------------------------------------------------------- views

@dataclass(frozen=True)
class ConditionView:
    type: str
    status: str
    reason: str
    message: str
    healthy: bool


@dataclass(frozen=True)
class Usage:
    """An amount in use out of what there is: "250m / 2"."""

    used: int
    total: int
    text: str

    @property
    def fraction(self) -> float:
        return self.used / self.total if self.total else 0.0


@dataclass(frozen=True)
class NodeView:
    name: str
    status: str  # Ready, NotReady, Unknown; ",SchedulingDisabled" when cordoned
    ready: bool
    conditions: tuple[ConditionView, ...]
    taints: tuple[str, ...]
    unschedulable: bool
    cpu: Usage
    memory: Usage
    pods: Usage


@dataclass(frozen=True)
class PodView:
    namespace: str
    name: str
    status: str   # as the STATUS column of `minictl get pods`
    ready: str    # "1/2"
    health: str   # ok, warn, bad
    node: str
    restarts: int
    ip: str


@dataclass(frozen=True)
class WorkloadView:
    kind: str
    namespace: str
    name: str
    desired: int
    updated: int
    ready: int
    available: int
    state: str    # complete, progressing, paused, failed, unknown
    message: str  # the line `minictl rollout status` prints
    progressing: ConditionView | None
    pods: tuple[PodView, ...]


@dataclass(frozen=True)
class ServiceView:
    namespace: str
    name: str
    type: str
    cluster_ip: str
    ports: str
    endpoints: tuple[str, ...]
    not_ready: tuple[str, ...]


@dataclass(frozen=True)
class LeaderView:
    component: str
    holder: str       # "" when nobody holds the lease
    renewed: str      # age of the last renewal
    expired: bool
    transitions: int


@dataclass(frozen=True)
class EventView:
    type: str
    reason: str
    namespace: str
    object: str   # "pod/web-1"
    message: str
    count: int
    last_seen: str


# ---------------------------------------------------------------- nodes

def node_views(nodes: Iterable[t.Node], pods: Iterable[t.Pod]) -> list[NodeView]:
    """Every node, by name, with what the pods bound to it request."""
    used: dict[str, Resources] = defaultdict(Resources)
    for pod in pods:
        if pod.spec.node_name and pod.status.phase not in TERMINATED:
            used[pod.spec.node_name] += pod_requests(pod)
    return [_node_view(node, used[node.metadata.name])
            for node in sorted(nodes, key=lambda n: n.metadata.name)]


def _node_view(node: t.Node, used: Resources) -> NodeView:
    offered = allocatable(node)
    return NodeView(
        name=node.metadata.name, status=printers.node_status(node),
        ready=any(c.type == "Ready" and c.status == "True" for c in node.status.conditions),
        conditions=tuple(_condition(c, healthy_status="True" if c.type == "Ready" else "False")
                         for c in node.status.conditions),
        taints=tuple(f"{x.key}{'=' + x.value if x.value else ''}:{x.effect}"
                     for x in node.spec.taints),
        unschedulable=node.spec.unschedulable,
        cpu=Usage(used.milli_cpu, offered.milli_cpu,
                  f"{cpu_text(used.milli_cpu)} / {cpu_text(offered.milli_cpu)}"),
        memory=Usage(used.memory, offered.memory,
                     f"{bytes_text(used.memory)} / {bytes_text(offered.memory)}"),
        pods=Usage(used.pods, offered.pods, f"{used.pods} / {offered.pods}"))


def _condition(c: t.Condition, healthy_status: str = "True") -> ConditionView:
    return ConditionView(c.type, c.status, c.reason, c.message, c.status == healthy_status)


def bytes_text(amount: int) -> str:
    """A byte count for people: 0, 512Ki, 1.5Gi (binary units, at most one decimal)."""
    for suffix, shift in (("Gi", 30), ("Mi", 20), ("Ki", 10)):
        if amount >= 1 << shift:
            return f"{amount / (1 << shift):.1f}".removesuffix(".0") + suffix
    return str(amount)


# ---------------------------------------------------------------- pods

def pod_view(pod: t.Pod) -> PodView:
    statuses = pod.status.container_statuses
    ready = sum(1 for cs in statuses if cs.ready)
    status = printers.pod_status(pod)
    return PodView(
        namespace=pod.metadata.namespace, name=pod.metadata.name, status=status,
        ready=f"{ready}/{len(pod.spec.containers)}",
        health=_pod_health(pod, status, ready == len(pod.spec.containers)),
        node=pod.spec.node_name, restarts=sum(cs.restart_count for cs in statuses),
        ip=pod.status.pod_ip)


def _pod_health(pod: t.Pod, status: str, all_ready: bool) -> str:
    if status in FAILING or pod.status.phase == "Failed" or status.startswith("Signal:") \
            or (status.startswith("ExitCode:") and status != "ExitCode:0"):
        return "bad"
    if (status == "Running" and all_ready) or pod.status.phase == "Succeeded":
        return "ok"
    return "warn"


# ---------------------------------------------------------------- workloads

def workload_views(deployments: Iterable[t.Deployment], replica_sets: Iterable[t.ReplicaSet],
                   stateful_sets: Iterable[t.StatefulSet], daemon_sets: Iterable[t.DaemonSet],
                   pods: Iterable[t.Pod]) -> list[WorkloadView]:
    """Deployments, StatefulSets and DaemonSets, by namespace and name, with their pods.

    A Deployment's pods are those of the ReplicaSets it controls.
    """
    pods_of = _by_controller(pods)
    rs_of = _by_controller(replica_sets)
    views = [_workload_view(d, [p for rs in rs_of[d.metadata.uid]
                                for p in pods_of[rs.metadata.uid]])
             for d in deployments]
    views += [_workload_view(w, pods_of[w.metadata.uid]) for w in (*stateful_sets, *daemon_sets)]
    return sorted(views, key=lambda v: (v.namespace, v.name, v.kind))


def _by_controller(objs: Iterable[Any]) -> dict[str, list[Any]]:
    """Objects by the uid of their controller (the ownerReference with controller set)."""
    out: dict[str, list[Any]] = defaultdict(list)
    for obj in objs:
        for ref in obj.metadata.owner_references:
            if ref.controller:
                out[ref.uid].append(obj)
    return out


def _workload_view(obj: Any, pods: Sequence[t.Pod]) -> WorkloadView:
    desired, updated, ready, available = _counts(obj)
    state, message = rollout_state(obj)
    progressing = next((c for c in obj.status.conditions if c.type == "Progressing"), None)
    return WorkloadView(
        kind=type(obj).__name__, namespace=obj.metadata.namespace, name=obj.metadata.name,
        desired=desired, updated=updated, ready=ready, available=available,
        state=state, message=message,
        progressing=None if progressing is None else _condition(progressing),
        pods=tuple(pod_view(p) for p in sorted(pods, key=lambda p: p.metadata.name)))


def _counts(obj: Any) -> tuple[int, int, int, int]:
    """desired, updated, ready and available replicas (pods, for a DaemonSet)."""
    st = obj.status
    if isinstance(obj, t.DaemonSet):
        return (st.desired_number_scheduled, st.updated_number_scheduled, st.number_ready,
                st.number_available)
    desired = obj.spec.replicas if obj.spec.HasField("replicas") else 1
    return desired, st.updated_replicas, st.ready_replicas, st.available_replicas


def rollout_state(obj: Any) -> tuple[str, str]:
    """(state, the line `rollout status` prints) of a Deployment, StatefulSet or DaemonSet."""
    try:
        message, done = rollout.status_of(obj)
    except rollout.RolloutFailed as exc:
        return "failed", str(exc)
    except rollout.NoRolloutStatus as exc:
        return "unknown", str(exc)
    if isinstance(obj, t.Deployment) and obj.spec.paused:
        return "paused", message
    return ("complete" if done else "progressing"), message


# ---------------------------------------------------------------- services

def service_views(services: Iterable[t.Service],
                  endpoints: Iterable[t.Endpoints]) -> list[ServiceView]:
    """Services, by namespace and name, with the addresses behind them."""
    by_key = {(ep.metadata.namespace, ep.metadata.name): ep for ep in endpoints}
    views = []
    for svc in services:
        ep = by_key.get((svc.metadata.namespace, svc.metadata.name))
        subsets = ep.subsets if ep is not None else ()
        views.append(ServiceView(
            namespace=svc.metadata.namespace, name=svc.metadata.name,
            type=svc.spec.type or "ClusterIP", cluster_ip=svc.spec.cluster_ip or printers.NONE,
            ports=printers.service_ports(svc.spec.ports),
            endpoints=_addresses(subsets, "addresses"),
            not_ready=_addresses(subsets, "not_ready_addresses")))
    return sorted(views, key=lambda v: (v.namespace, v.name))


def _addresses(subsets: Iterable[t.EndpointSubset], which: str) -> tuple[str, ...]:
    """"ip:port" for each address and port of the subsets (just "ip" when there is no
    port), each once: a UDP and a TCP port of one number (DNS) are one line."""
    out: dict[str, None] = {}
    for subset in subsets:
        ports = [p.port for p in subset.ports] or [None]
        out.update((a.ip if port is None else f"{a.ip}:{port}", None)
                   for a in getattr(subset, which) for port in ports)
    return tuple(out)


# ---------------------------------------------------------------- leaders

def leader_views(leases: Iterable[t.Lease], now: datetime.datetime) -> list[LeaderView]:
    """Who leads each leader-elected component, from its kube-system Lease."""
    by_name = {lease.metadata.name: lease for lease in leases
               if lease.metadata.namespace == "kube-system"}
    return [_leader_view(name, by_name.get(name), now) for name in LEADER_LEASES]


def _leader_view(name: str, lease: t.Lease | None, now: datetime.datetime) -> LeaderView:
    if lease is None:
        return LeaderView(name, "", printers.NONE, True, 0)
    spec = lease.spec
    renewed = spec.renew_time.ToDatetime(tzinfo=datetime.UTC)
    expired = (not spec.holder_identity or not spec.renew_time.seconds
               or (now - renewed).total_seconds() > spec.lease_duration_seconds)
    return LeaderView(name, spec.holder_identity, printers.since(spec.renew_time, now),
                      expired, spec.lease_transitions)


# ---------------------------------------------------------------- events

def event_views(events: Iterable[t.Event], now: datetime.datetime,
                limit: int = EVENT_LIMIT) -> list[EventView]:
    """The most recent events, newest first."""
    recent = sorted(events, key=printers.event_sort_key, reverse=True)[:limit]
    return [EventView(
        type=ev.type or "Normal", reason=ev.reason, namespace=ev.metadata.namespace,
        object=f"{ev.involved_object.kind.lower()}/{ev.involved_object.name}",
        message=ev.message, count=max(ev.count, 1),
        last_seen=printers.since(printers.event_time(ev), now)) for ev in recent]
