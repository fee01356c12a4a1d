"""Defaulting: the values the apiserver fills in, as Kubernetes does."""
from __future__ import annotations

from google.protobuf.message import Message

from minik8s.api.v1 import types_pb2 as t


def _image_pull_policy(image: str) -> str:
    tag = image.rsplit("/", 1)[-1]
    if "@" in tag:
        return "IfNotPresent"
    return "Always" if ":" not in tag or tag.endswith(":latest") else "IfNotPresent"


def _probe(p: t.Probe) -> None:
    p.timeout_seconds = p.timeout_seconds or 1
    p.period_seconds = p.period_seconds or 10
    p.success_threshold = p.success_threshold or 1
    p.failure_threshold = p.failure_threshold or 3
    if p.HasField("http_get"):
        p.http_get.path = p.http_get.path or "/"
        p.http_get.scheme = p.http_get.scheme or "HTTP"


def _container(c: t.Container) -> None:
    c.image_pull_policy = c.image_pull_policy or _image_pull_policy(c.image)
    for port in c.ports:
        port.protocol = port.protocol or "TCP"
    for probe in ("liveness_probe", "readiness_probe", "startup_probe"):
        if c.HasField(probe):
            _probe(getattr(c, probe))


def pod_spec(spec: t.PodSpec) -> None:
    spec.restart_policy = spec.restart_policy or "Always"
    spec.dns_policy = spec.dns_policy or "ClusterFirst"
    spec.scheduler_name = spec.scheduler_name or "default-scheduler"
    if not spec.HasField("termination_grace_period_seconds"):
        spec.termination_grace_period_seconds = 30
    for c in (*spec.init_containers, *spec.containers):
        _container(c)


def _replicas(spec: Message) -> None:
    if not spec.HasField("replicas"):
        spec.replicas = 1


def _revision_history(spec: Message) -> None:
    if not spec.HasField("revision_history_limit"):
        spec.revision_history_limit = 10


def _pod(p: t.Pod) -> None:
    pod_spec(p.spec)
    p.status.phase = p.status.phase or "Pending"


def _service(s: t.Service) -> None:
    s.spec.type = s.spec.type or "ClusterIP"
    s.spec.session_affinity = s.spec.session_affinity or "None"
    for port in s.spec.ports:
        port.protocol = port.protocol or "TCP"
        if not port.HasField("target_port"):
            port.target_port.int_val = port.port


def _deployment(d: t.Deployment) -> None:
    _replicas(d.spec)
    _revision_history(d.spec)
    if not d.spec.HasField("progress_deadline_seconds"):
        d.spec.progress_deadline_seconds = 600
    strategy = d.spec.strategy
    strategy.type = strategy.type or "RollingUpdate"
    if strategy.type == "RollingUpdate":
        ru = strategy.rolling_update
        if not ru.HasField("max_surge"):
            ru.max_surge.str_val = "25%"
        if not ru.HasField("max_unavailable"):
            ru.max_unavailable.str_val = "25%"
    pod_spec(d.spec.template.spec)


def _replica_set(rs: t.ReplicaSet) -> None:
    _replicas(rs.spec)
    pod_spec(rs.spec.template.spec)


def _daemon_set(ds: t.DaemonSet) -> None:
    _revision_history(ds.spec)
    strategy = ds.spec.update_strategy
    strategy.type = strategy.type or "RollingUpdate"
    if strategy.type == "RollingUpdate" and not strategy.rolling_update.HasField(
            "max_unavailable"):
        strategy.rolling_update.max_unavailable.int_val = 1
    pod_spec(ds.spec.template.spec)


def _stateful_set(ss: t.StatefulSet) -> None:
    _replicas(ss.spec)
    _revision_history(ss.spec)
    ss.spec.pod_management_policy = ss.spec.pod_management_policy or "OrderedReady"
    strategy = ss.spec.update_strategy
    strategy.type = strategy.type or "RollingUpdate"
    if strategy.type == "RollingUpdate" and not strategy.rolling_update.HasField("partition"):
        strategy.rolling_update.partition = 0
    pod_spec(ss.spec.template.spec)


def _namespace(ns: t.Namespace) -> None:
    ns.status.phase = ns.status.phase or "Active"


def _event(ev: t.Event) -> None:
    ev.count = ev.count or 1
    ev.type = ev.type or "Normal"


_BY_KIND = {
    "Pod": _pod,
    "Service": _service,
    "Deployment": _deployment,
    "ReplicaSet": _replica_set,
    "DaemonSet": _daemon_set,
    "StatefulSet": _stateful_set,
    "Namespace": _namespace,
    "Event": _event,
}


def apply_defaults(kind: str, obj: Message) -> None:
    """Fill the defaults of a kind into obj, in place."""
    fill = _BY_KIND.get(kind)
    if fill is not None:
        fill(obj)
