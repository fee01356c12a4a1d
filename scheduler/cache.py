"""The scheduler's view of the cluster: nodes, and the pods counted on each.

Mirrors kube-scheduler's cache. Besides the bound pods the informer reports,
it holds *assumed* pods: once the scheduler picks a node for a pod it counts
the pod there at once (assume), so the next decisions see it, although the
bind only becomes visible through the informer later. A confirmed add
replaces the assumption; a failed bind undoes it (forget); an assumption whose
bind finished but never showed up expires after a TTL, so a lost event cannot
hold a node's resources forever.

Pods may arrive before their node (events of different kinds are not
ordered), and a node may be deleted before its pods: the NodeInfo then lives on
without a node, so usage is right when the node (re)appears. Such NodeInfos
are never offered for scheduling.

Everything here is synchronous and meant for one asyncio thread: the
framework reads live NodeInfos while no event handler can run.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

from minik8s.api.v1 import types_pb2

from .resources import ZERO, Resources, allocatable, pod_requests, pod_requests_for_scoring

HostPort = tuple[str, str, int]  # (host IP, protocol, port)
Taint = tuple[str, str, str]  # (key, value, effect)

ANY_IP = "0.0.0.0"
DEFAULT_ASSUMED_TTL = 30.0
_TERMINAL_PHASES = ("Succeeded", "Failed")


def host_ports(pod: types_pb2.Pod) -> tuple[HostPort, ...]:
    """The host ports the pod's containers claim, with Kubernetes' defaults filled in.

    A host-network pod claims its container ports on the host: Kubernetes'
    defaulting copies them into hostPort, which our apiserver does not do.
    """
    host_network = pod.spec.host_network
    ports = []
    for container in (*pod.spec.init_containers, *pod.spec.containers):
        for port in container.ports:
            number = port.host_port or (port.container_port if host_network else 0)
            if number > 0:
                ports.append((port.host_ip or ANY_IP, port.protocol or "TCP", number))
    return tuple(ports)


def controller_uid(pod: types_pb2.Pod) -> str:
    """The uid of the pod's controlling owner (its ReplicaSet...), "" if none."""
    for ref in pod.metadata.owner_references:
        if ref.controller:
            return ref.uid
    return ""


@dataclass(frozen=True, slots=True)
class _PodUsage:
    """What one pod adds to its NodeInfo, kept so that removing it is exact."""

    requests: Resources
    scoring_requests: Resources
    ports: tuple[HostPort, ...]
    owner: str  # controller uid; "" if none or the pod is terminating

    @classmethod
    def of(cls, pod: types_pb2.Pod) -> _PodUsage:
        terminating = pod.metadata.HasField("deletion_timestamp")
        return cls(pod_requests(pod), pod_requests_for_scoring(pod), host_ports(pod),
                   "" if terminating else controller_uid(pod))


class NodeInfo:
    """A node (None while unknown) and the pods counted on it, with running totals.

    The node's labels, taints, readiness and allocatable are parsed once when the
    node is set, so that filters only compare. Only the SchedulerCache changes it.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.pods: dict[str, types_pb2.Pod] = {}
        self.requested = ZERO
        self.requested_for_scoring = ZERO
        # Multisets: a port stays used until the last pod that uses it is gone.
        self.used_ports: Counter[HostPort] = Counter()
        self._used_any_ip: Counter[tuple[str, int]] = Counter()
        self.owner_counts: Counter[str] = Counter()
        self._usage: dict[str, _PodUsage] = {}
        self.set_node(None)

    def set_node(self, node: types_pb2.Node | None) -> None:
        self.node = node
        if node is None:
            self.allocatable, self.labels = ZERO, {}
            self.taints: tuple[Taint, ...] = ()
            self.prefer_no_schedule_taints: tuple[Taint, ...] = ()
            self.ready = self.unschedulable = False
            return
        self.allocatable = allocatable(node)
        self.labels = dict(node.metadata.labels)
        taints = [(t.key, t.value, t.effect) for t in node.spec.taints]
        self.taints = tuple(t for t in taints if t[2] in ("NoSchedule", "NoExecute"))
        self.prefer_no_schedule_taints = tuple(t for t in taints if t[2] == "PreferNoSchedule")
        self.ready = any(c.type == "Ready" and c.status == "True"
                         for c in node.status.conditions)
        self.unschedulable = node.spec.unschedulable

    def add_pod(self, uid: str, pod: types_pb2.Pod, usage: _PodUsage) -> None:
        self.pods[uid] = pod
        self._usage[uid] = usage
        self.requested += usage.requests
        self.requested_for_scoring += usage.scoring_requests
        for ip, protocol, port in usage.ports:
            self.used_ports[ip, protocol, port] += 1
            self._used_any_ip[protocol, port] += 1
        if usage.owner:
            self.owner_counts[usage.owner] += 1

    def remove_pod(self, uid: str) -> None:
        del self.pods[uid]
        usage = self._usage.pop(uid)
        self.requested -= usage.requests
        self.requested_for_scoring -= usage.scoring_requests
        for ip, protocol, port in usage.ports:
            _decrement(self.used_ports, (ip, protocol, port))
            _decrement(self._used_any_ip, (protocol, port))
        if usage.owner:
            _decrement(self.owner_counts, usage.owner)

    def replace_pod(self, uid: str, pod: types_pb2.Pod, usage: _PodUsage) -> None:
        """A new version of a pod on this node; totals are only redone if its usage changed."""
        if self._usage[uid] == usage:
            self.pods[uid] = pod
            return
        self.remove_pod(uid)
        self.add_pod(uid, pod, usage)

    def port_in_use(self, host_port: HostPort) -> bool:
        """True if the port conflicts: same protocol and port, and one IP is 0.0.0.0 or both equal."""
        ip, protocol, port = host_port
        if ip == ANY_IP:
            return (protocol, port) in self._used_any_ip
        return host_port in self.used_ports or (ANY_IP, protocol, port) in self.used_ports

    def __repr__(self) -> str:
        return f"NodeInfo({self.name!r}, pods={len(self.pods)}, requested={self.requested})"


def _decrement(counter: Counter, key: object) -> None:
    if counter[key] <= 1:
        del counter[key]
    else:
        counter[key] -= 1


@dataclass(slots=True)
class _PodState:
    node_name: str
    assumed: bool
    deadline: float | None = None  # set when an assumed pod's bind has finished


class SchedulerCache:
    """Nodes and the pods bound or assumed on them, keyed by node name and pod uid."""

    def __init__(self, ttl: float = DEFAULT_ASSUMED_TTL) -> None:
        self.ttl = ttl
        self._infos: dict[str, NodeInfo] = {}
        self._pods: dict[str, _PodState] = {}
        self._node_list: list[NodeInfo] | None = None  # node_infos(), rebuilt when nodes change

    # ------------------------------------------------------------ nodes

    def add_node(self, node: types_pb2.Node) -> None:
        info = self._info(node.metadata.name)
        if info.node is None:
            self._node_list = None
        info.set_node(node)

    update_node = add_node

    def remove_node(self, node: types_pb2.Node) -> None:
        info = self._infos.get(node.metadata.name)
        if info is None or info.node is None:
            return
        info.set_node(None)
        self._node_list = None
        self._drop_if_empty(info)

    def node_infos(self) -> list[NodeInfo]:
        """The known nodes in name order (stable, so round-robin is fair); do not modify it."""
        if self._node_list is None:
            self._node_list = sorted((i for i in self._infos.values() if i.node is not None),
                                     key=lambda i: i.name)
        return self._node_list

    def node_count(self) -> int:
        return len(self.node_infos())

    # ------------------------------------------------------------ pods (from the informer)

    def add_pod(self, pod: types_pb2.Pod) -> None:
        """The informer's word on a bound pod: adds, updates, or confirms an assumed pod.

        A finished pod (Succeeded/Failed) holds no resources, so it is dropped.
        """
        uid = pod.metadata.uid
        if pod.status.phase in _TERMINAL_PHASES:
            self.remove_pod(pod)
            return
        if not pod.spec.node_name:
            return
        self._place(uid, pod, pod.spec.node_name)
        self._pods[uid].assumed = False

    update_pod = add_pod

    def remove_pod(self, pod: types_pb2.Pod) -> None:
        uid = pod.metadata.uid
        state = self._pods.pop(uid, None)
        if state is not None:
            info = self._infos[state.node_name]
            info.remove_pod(uid)
            self._drop_if_empty(info)

    # ------------------------------------------------------------ assumed pods

    def assume(self, pod: types_pb2.Pod, node_name: str) -> None:
        """Count the pod on node_name now, before its bind is visible."""
        uid = pod.metadata.uid
        self._place(uid, pod, node_name)
        state = self._pods[uid]
        state.assumed, state.deadline = True, None

    def finish_binding(self, pod: types_pb2.Pod, now: float | None = None) -> None:
        """The bind call returned: the assumption expires ttl seconds from now unless confirmed."""
        state = self._pods.get(pod.metadata.uid)
        if state is not None and state.assumed:
            state.deadline = (time.monotonic() if now is None else now) + self.ttl

    def forget(self, pod: types_pb2.Pod) -> None:
        """The bind failed: stop counting the pod (unless the informer confirmed it meanwhile)."""
        if self.is_assumed(pod.metadata.uid):
            self.remove_pod(pod)

    def cleanup_expired(self, now: float | None = None) -> list[types_pb2.Pod]:
        """Drop assumed pods whose bind finished more than ttl ago unconfirmed; returns them."""
        now = time.monotonic() if now is None else now
        expired = [uid for uid, s in self._pods.items()
                   if s.assumed and s.deadline is not None and s.deadline < now]
        pods = []
        for uid in expired:
            pod = self._infos[self._pods[uid].node_name].pods[uid]
            self.remove_pod(pod)
            pods.append(pod)
        return pods

    def is_assumed(self, uid: str) -> bool:
        state = self._pods.get(uid)
        return state is not None and state.assumed

    # ------------------------------------------------------------ internals

    def _info(self, node_name: str) -> NodeInfo:
        info = self._infos.get(node_name)
        if info is None:
            info = self._infos[node_name] = NodeInfo(node_name)
        return info

    def _place(self, uid: str, pod: types_pb2.Pod, node_name: str) -> None:
        """Count the pod on node_name, moving it if it was counted elsewhere."""
        usage = _PodUsage.of(pod)
        state = self._pods.get(uid)
        if state is not None and state.node_name == node_name:
            self._infos[node_name].replace_pod(uid, pod, usage)
            return
        if state is not None:
            self.remove_pod(pod)
        self._info(node_name).add_pod(uid, pod, usage)
        self._pods[uid] = _PodState(node_name, assumed=False)

    def _drop_if_empty(self, info: NodeInfo) -> None:
        if info.node is None and not info.pods:
            del self._infos[info.name]
