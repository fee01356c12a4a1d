"""`minictl describe`: kubectl's readable description of one object.

`describe(obj, related, now)` is pure: the command fetches the object and what
its description needs (its events, the pods on a node, a deployment's
ReplicaSets, a service's endpoints) into Related, and this module only writes
text. A Description collects "Label:  value" lines and tables and aligns them
as kubectl's tabwriter does: consecutive rows share column widths; a heading
line ("Containers:") ends a block.

Each kind has a small describer; the simple parts are tables of (label,
getter). Kinds without one get their spec and status as YAML.
"""
from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from minik8s import kinds, manifest, quantity
from minik8s.cli import printers
from minik8s.cli.printers import NONE

PADDING = 2  # kubectl describe's tabwriter padding
INDENT = "  "

Getter = Callable[[Any], str | list[str]]


@dataclass
class Related:
    """What a description shows besides the object itself."""

    events: list[Any] = field(default_factory=list)
    pods: list[Any] = field(default_factory=list)           # a node's, or a workload's
    replica_sets: list[Any] = field(default_factory=list)   # a deployment's
    endpoints: Any = None                                    # a service's


# ---------------------------------------------------------------- layout

class Description:
    """Lines of a description: rows of cells (aligned per block) and headings."""

    def __init__(self) -> None:
        self._entries: list[str | list[str]] = []

    def field(self, label: str, value: str | Sequence[str], level: int = 0) -> None:
        """ "Label:  value"; a list of values goes one per line; an empty one is <none>."""
        values = [value] if isinstance(value, str) else list(value) or [NONE]
        self._entries.append([f"{INDENT * level}{label}:", values[0] or NONE])
        self._entries += [["", v] for v in values[1:]]

    def fields(self, obj: Any, getters: Iterable[tuple[str, Getter]], level: int = 0) -> None:
        for label, get in getters:
            self.field(label, get(obj), level)

    def heading(self, label: str, level: int = 0) -> None:
        self._entries.append(f"{INDENT * level}{label}:")

    def text(self, line: str, level: int = 0) -> None:
        self._entries.append(f"{INDENT * level}{line}")

    def table(self, headers: Sequence[str], rows: Iterable[Sequence[str]], level: int = 1,
              underline: bool = True) -> None:
        self._entries.append("")  # a table is a block of its own
        lines = [list(headers)]
        if underline:
            lines.append(["-" * len(h) for h in headers])
        lines += [list(r) for r in rows]
        for cells in lines:
            self._entries.append([INDENT * level + cells[0], *cells[1:]])
        self._entries.append("")  # the table is a block of its own

    def mapping(self, label: str, values: Mapping[str, str], level: int = 0,
                sort: bool = True) -> None:
        """A heading, then "key:  value" one level in (Capacity, Limits)."""
        if not values:
            self.field(label, NONE, level)
            return
        self.heading(label, level)
        for key in sorted(values) if sort else values:
            self.field(key, values[key], level + 1)

    def render(self) -> str:
        out: list[str] = []
        block: list[list[str]] = []
        for entry in [*self._entries, ""]:
            if isinstance(entry, list):
                block.append(entry)
                continue
            out += _aligned(block)
            block = []
            if entry:
                out.append(entry)
        return "\n".join(line.rstrip() for line in out) + "\n"


def _aligned(rows: list[list[str]]) -> list[str]:
    """Each cell but a row's last padded to its column's width in the block."""
    widths: list[int] = []
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            if i == len(widths):
                widths.append(0)
            widths[i] = max(widths[i], len(cell))
    return ["".join(c.ljust(widths[i] + PADDING) for i, c in enumerate(row[:-1])) + row[-1]
            for row in rows]


# ---------------------------------------------------------------- cells

def timestamp(ts: Timestamp) -> str:
    """kubectl's RFC 1123 time: "Mon, 02 Jan 2006 15:04:05 +0000"."""
    if not ts.seconds and not ts.nanos:
        return NONE
    return ts.ToDatetime(tzinfo=datetime.UTC).strftime("%a, %d %b %Y %H:%M:%S %z")


def is_set(ts: Timestamp) -> bool:
    return bool(ts.seconds or ts.nanos)


def int_or_string(value: Any) -> str:
    which = value.WhichOneof("value")
    return str(getattr(value, which)) if which else ""


def labels(values: Mapping[str, str]) -> list[str]:
    return [f"{k}={v}" for k, v in sorted(values.items())]


def annotations(values: Mapping[str, str]) -> list[str]:
    return [f"{k}: {v}" for k, v in sorted(values.items())]


def controller_of(obj: Any) -> str:
    """"ReplicaSet/web-5d8f", the owner that controls obj, or ""."""
    for ref in obj.metadata.owner_references:
        if ref.controller:
            return f"{ref.kind}/{ref.name}"
    return ""


def cpu_text(millis: int) -> str:
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def memory_text(amount: int) -> str:
    for suffix, shift in (("Gi", 30), ("Mi", 20), ("Ki", 10)):
        if amount and amount % (1 << shift) == 0:
            return f"{amount >> shift}{suffix}"
    return str(amount)


def _yaml_lines(value: Any) -> list[str]:
    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False).splitlines()


# ---------------------------------------------------------------- every kind

def describe(obj: Message, related: Related, now: datetime.datetime) -> str:
    kind = kinds.of(obj)
    d = Description()
    meta = obj.metadata
    d.field("Name", meta.name)
    if kind.namespaced:
        d.field("Namespace", meta.namespace)
    d.field("Labels", labels(meta.labels))
    d.field("Annotations", annotations(meta.annotations))
    d.field("CreationTimestamp", timestamp(meta.creation_timestamp))
    if meta.HasField("deletion_timestamp"):
        d.field("DeletionTimestamp", timestamp(meta.deletion_timestamp))
    if meta.finalizers:
        d.field("Finalizers", ", ".join(meta.finalizers))
    if owner := controller_of(obj):
        d.field("Controlled By", owner)
    DESCRIBERS.get(kind.name, _generic)(d, obj, related, now)
    _events(d, related.events, now)
    return d.render()


def _events(d: Description, events: list[Any], now: datetime.datetime) -> None:
    if not events:
        d.field("Events", NONE)
        return
    d.heading("Events")
    rows = [[ev.type, ev.reason, printers.event_age(ev, now),
             ev.source.component or ev.reporting_component or NONE, ev.message]
            for ev in sorted(events, key=printers.event_sort_key)]
    d.table(("Type", "Reason", "Age", "From", "Message"), rows)


def _generic(d: Description, obj: Message, related: Related, now: datetime.datetime) -> None:
    """Any other kind: its spec and status (whatever it has) as YAML."""
    body = manifest.to_dict(obj)
    for key, value in body.items():
        if key in ("apiVersion", "kind", "metadata"):
            continue
        label = key[0].upper() + key[1:]
        if not isinstance(value, dict | list):
            d.field(label, str(value))
            continue
        d.heading(label)
        for line in _yaml_lines(value):
            d.text(line, 1)


# ---------------------------------------------------------------- pods and templates

def _ports(ports: Sequence[Any], host: bool = False) -> str:
    cells = [f"{p.host_port if host else p.container_port}/{p.protocol or 'TCP'}"
             for p in ports]
    return ", ".join(cells) or NONE


def probe_text(probe: Any) -> str:
    """kubectl's one-line probe: "http-get http://:8080/healthz delay=0s timeout=1s ..."."""
    if probe.HasField("exec"):
        action = f"exec [{' '.join(probe.exec.command)}]"
    elif probe.HasField("http_get"):
        h = probe.http_get
        action = (f"http-get {(h.scheme or 'HTTP').lower()}://{h.host}:"
                  f"{int_or_string(h.port)}{h.path or '/'}")
    elif probe.HasField("tcp_socket"):
        action = f"tcp-socket {probe.tcp_socket.host}:{int_or_string(probe.tcp_socket.port)}"
    else:
        action = "unknown"
    return (f"{action} delay={probe.initial_delay_seconds}s "
            f"timeout={probe.timeout_seconds or 1}s period={probe.period_seconds or 10}s "
            f"#success={probe.success_threshold or 1} #failure={probe.failure_threshold or 3}")


def _state(d: Description, label: str, state: Any, level: int) -> None:
    """State: Running / Waiting / Terminated, with its details one level in."""
    if state.HasField("running"):
        d.field(label, "Running", level)
        d.field("Started", timestamp(state.running.started_at), level + 1)
    elif state.HasField("terminated"):
        term = state.terminated
        d.field(label, "Terminated", level)
        d.field("Reason", term.reason or NONE, level + 1)
        if term.message:
            d.field("Message", term.message, level + 1)
        d.field("Exit Code", str(term.exit_code), level + 1)
        if term.signal:
            d.field("Signal", str(term.signal), level + 1)
        d.field("Started", timestamp(term.started_at), level + 1)
        d.field("Finished", timestamp(term.finished_at), level + 1)
    elif state.HasField("waiting"):
        d.field(label, "Waiting", level)
        d.field("Reason", state.waiting.reason or NONE, level + 1)
        if state.waiting.message:
            d.field("Message", state.waiting.message, level + 1)


CONTAINER_FIELDS: list[tuple[str, Getter]] = [
    ("Image", lambda c: c.image),
    ("Port", lambda c: _ports(c.ports)),
    ("Host Port", lambda c: _ports(c.ports, host=True)),
]


def _containers(d: Description, label: str, containers: Sequence[Any],
                statuses: Sequence[Any] = (), level: int = 0) -> None:
    if not containers:
        return
    d.heading(label, level)
    by_name = {s.name: s for s in statuses}
    for c in containers:
        d.heading(c.name, level + 1)
        inner = level + 2
        status = by_name.get(c.name)
        if status is not None and status.container_id:
            d.field("Container ID", status.container_id, inner)
        d.fields(c, CONTAINER_FIELDS, inner)
        if status is not None and status.image_id:
            d.field("Image ID", status.image_id, inner)
        for name, words in (("Command", c.command), ("Args", c.args)):
            if words:
                d.heading(name, inner)
                for word in words:
                    d.text(word, inner + 1)
        if status is not None:
            _state(d, "State", status.state, inner)
            if status.last_state.ListFields():
                _state(d, "Last State", status.last_state, inner)
            d.field("Ready", str(status.ready), inner)
            d.field("Restart Count", str(status.restart_count), inner)
        for name, values in (("Limits", c.resources.limits),
                             ("Requests", c.resources.requests)):
            if values:
                d.mapping(name, values, inner)
        for name, probe in (("Liveness", "liveness_probe"), ("Readiness", "readiness_probe"),
                            ("Startup", "startup_probe")):
            if c.HasField(probe):
                d.field(name, probe_text(getattr(c, probe)), inner)
        d.mapping("Environment", {e.name: e.value for e in c.env}, inner, sort=False)
        d.field("Mounts", [f"{m.mount_path} from {m.name} ({'ro' if m.read_only else 'rw'})"
                           for m in c.volume_mounts], inner)


def _volumes(d: Description, volumes: Sequence[Any], level: int = 0) -> None:
    if not volumes:
        d.field("Volumes", NONE, level)
        return
    d.heading("Volumes", level)
    for v in volumes:
        d.heading(v.name, level + 1)
        if v.HasField("host_path"):
            d.field("Type", f"HostPath ({v.host_path.type or 'unset'})", level + 2)
            d.field("Path", v.host_path.path, level + 2)
        else:
            d.field("Type", "EmptyDir (a temporary directory that shares a pod's lifetime)",
                    level + 2)
            d.field("Medium", v.empty_dir.medium, level + 2)
            d.field("SizeLimit", v.empty_dir.size_limit or "<unset>", level + 2)


def _tolerations(spec: Any) -> list[str]:
    out = []
    for t in spec.tolerations:
        text = t.key + (f"={t.value}" if t.value else "") if t.key else ""
        text += f":{t.effect}" if t.effect else ""
        text = text or ("op=Exists" if t.operator == "Exists" else "")
        if t.HasField("toleration_seconds"):
            text += f" for {t.toleration_seconds}s"
        out.append(text)
    return out


def _pod_template(d: Description, template: Any) -> None:
    d.heading("Pod Template")
    d.field("Labels", labels(template.metadata.labels), 1)
    if template.metadata.annotations:
        d.field("Annotations", annotations(template.metadata.annotations), 1)
    _containers(d, "Containers", template.spec.containers, level=1)
    _volumes(d, template.spec.volumes, 1)
    if template.spec.node_selector:
        d.field("Node-Selectors", labels(template.spec.node_selector), 1)
    if template.spec.tolerations:
        d.field("Tolerations", _tolerations(template.spec), 1)


def _conditions(d: Description, conditions: Sequence[Any], reasons: bool = False) -> None:
    if not conditions:
        return
    d.heading("Conditions")
    if reasons:
        d.table(("Type", "Status", "Reason"),
                [(c.type, c.status, c.reason or NONE) for c in conditions])
    else:
        d.table(("Type", "Status"), [(c.type, c.status) for c in conditions], underline=False)


def _pod_status(pod: Any) -> str:
    phase = pod.status.phase or "Pending"
    if pod.metadata.HasField("deletion_timestamp"):
        grace = pod.metadata.deletion_grace_period_seconds
        return f"Terminating (lasts {grace}s)" if grace else "Terminating"
    return phase


def _node_of(pod: Any) -> str:
    if not pod.spec.node_name:
        return NONE
    return f"{pod.spec.node_name}/{pod.status.host_ip}" if pod.status.host_ip \
        else pod.spec.node_name


POD_FIELDS: list[tuple[str, Getter]] = [
    ("Priority", lambda p: str(p.spec.priority)),
    ("Node", _node_of),
    ("Start Time", lambda p: timestamp(p.status.start_time)),
    ("Status", _pod_status),
    ("IP", lambda p: p.status.pod_ip or NONE),
    ("IPs", lambda p: [ip.ip for ip in p.status.pod_ips] or
     ([p.status.pod_ip] if p.status.pod_ip else [])),
]


def qos_class(spec: Any) -> str:
    """Guaranteed (every container limits cpu and memory, requests equal to them),
    BestEffort (nothing requested or limited), otherwise Burstable."""
    containers = [*spec.init_containers, *spec.containers]
    resources = [c.resources for c in containers]
    if not any(r.limits or r.requests for r in resources):
        return "BestEffort"
    for r in resources:
        for name in ("cpu", "memory"):
            if name not in r.limits or (quantity.parse_quantity(r.requests.get(name, r.limits[name]))
                                        != quantity.parse_quantity(r.limits[name])):
                return "Burstable"
    return "Guaranteed"


def _pod(d: Description, pod: Any, related: Related, now: datetime.datetime) -> None:
    d.fields(pod, POD_FIELDS)
    for label, value in (("Reason", pod.status.reason), ("Message", pod.status.message)):
        if value:
            d.field(label, value)
    _containers(d, "Init Containers", pod.spec.init_containers,
                pod.status.init_container_statuses)
    _containers(d, "Containers", pod.spec.containers, pod.status.container_statuses)
    _conditions(d, pod.status.conditions)
    _volumes(d, pod.spec.volumes)
    d.field("QoS Class", pod.status.qos_class or qos_class(pod.spec))
    d.field("Node-Selectors", labels(pod.spec.node_selector))
    d.field("Tolerations", _tolerations(pod.spec))


# ---------------------------------------------------------------- workloads

def _replicas(spec: Any) -> int:
    return spec.replicas if spec.HasField("replicas") else 1


def pods_status(pods: Iterable[Any]) -> str:
    """"2 Running / 1 Waiting / 0 Succeeded / 0 Failed", as kubectl counts phases."""
    counts = {"Running": 0, "Pending": 0, "Succeeded": 0, "Failed": 0}
    for pod in pods:
        phase = pod.status.phase or "Pending"
        if phase in counts:
            counts[phase] += 1
    return (f"{counts['Running']} Running / {counts['Pending']} Waiting / "
            f"{counts['Succeeded']} Succeeded / {counts['Failed']} Failed")


def _revision(rs: Any) -> int:
    try:
        return int(rs.metadata.annotations.get("deployment.kubernetes.io/revision", "0"))
    except ValueError:
        return 0


def _rs_line(rs: Any) -> str:
    return f"{rs.metadata.name} ({rs.status.replicas}/{_replicas(rs.spec)} replicas created)"


def _rolling(strategy: Any) -> str:
    ru = strategy.rolling_update
    unavailable = int_or_string(ru.max_unavailable) or "25%"
    surge = int_or_string(ru.max_surge) or "25%"
    return f"{unavailable} max unavailable, {surge} max surge"


DEPLOYMENT_FIELDS: list[tuple[str, Getter]] = [
    ("Selector", lambda o: printers.selector_text(o.spec.selector)),
    ("Replicas", lambda o: (
        f"{_replicas(o.spec)} desired | {o.status.updated_replicas} updated | "
        f"{o.status.replicas} total | {o.status.available_replicas} available | "
        f"{o.status.unavailable_replicas} unavailable")),
    ("StrategyType", lambda o: o.spec.strategy.type or "RollingUpdate"),
    ("MinReadySeconds", lambda o: str(o.spec.min_ready_seconds)),
]


def _deployment(d: Description, dep: Any, related: Related, now: datetime.datetime) -> None:
    d.fields(dep, DEPLOYMENT_FIELDS)
    if (dep.spec.strategy.type or "RollingUpdate") == "RollingUpdate":
        d.field("RollingUpdateStrategy", _rolling(dep.spec.strategy))
    if dep.spec.paused:
        d.field("Paused", "true")
    _pod_template(d, dep.spec.template)
    _conditions(d, dep.status.conditions, reasons=True)
    owned = sorted(related.replica_sets, key=_revision)
    new = owned[-1] if owned else None
    old = [rs for rs in owned[:-1] if rs.status.replicas or _replicas(rs.spec)]
    d.field("OldReplicaSets", [_rs_line(rs) for rs in old])
    d.field("NewReplicaSet", _rs_line(new) if new is not None else NONE)


REPLICASET_FIELDS: list[tuple[str, Getter]] = [
    ("Selector", lambda o: printers.selector_text(o.spec.selector)),
    ("Replicas", lambda o: f"{o.status.replicas} current / {_replicas(o.spec)} desired"),
]

STATEFULSET_FIELDS: list[tuple[str, Getter]] = [
    ("Selector", lambda o: printers.selector_text(o.spec.selector)),
    ("Replicas", lambda o: f"{_replicas(o.spec)} desired | {o.status.replicas} total"),
    ("Update Strategy", lambda o: o.spec.update_strategy.type or "RollingUpdate"),
    ("Pod Management Policy", lambda o: o.spec.pod_management_policy or "OrderedReady"),
    ("Service Name", lambda o: o.spec.service_name or NONE),
]

DAEMONSET_FIELDS: list[tuple[str, Getter]] = [
    ("Selector", lambda o: printers.selector_text(o.spec.selector)),
    ("Node-Selector", lambda o: printers.labels_text(o.spec.template.spec.node_selector)),
    ("Desired Number of Nodes Scheduled", lambda o: str(o.status.desired_number_scheduled)),
    ("Current Number of Nodes Scheduled", lambda o: str(o.status.current_number_scheduled)),
    ("Number of Nodes Scheduled with Up-to-date Pods",
     lambda o: str(o.status.updated_number_scheduled)),
    ("Number of Nodes Scheduled with Available Pods",
     lambda o: str(o.status.number_available)),
    ("Number of Nodes Misscheduled", lambda o: str(o.status.number_misscheduled)),
]


def _workload(getters: list[tuple[str, Getter]]) -> Callable[..., None]:
    """ReplicaSet, StatefulSet, DaemonSet: their fields, their pods, template, conditions."""
    def describe_workload(d: Description, obj: Any, related: Related,
                          now: datetime.datetime) -> None:
        d.fields(obj, getters)
        d.field("Pods Status", pods_status(related.pods))
        _pod_template(d, obj.spec.template)
        _conditions(d, obj.status.conditions, reasons=True)
    return describe_workload


# ---------------------------------------------------------------- networking

def _port_endpoints(endpoints: Any, port: Any) -> str:
    """The ready addresses behind one service port ("10.1.0.5:8080,10.1.0.6:8080")."""
    if endpoints is None:
        return NONE
    addrs = [f"{a.ip}:{p.port}" for s in endpoints.subsets for p in s.ports
             if p.name == port.name or len(s.ports) == 1 for a in s.addresses]
    return ",".join(addrs) or NONE


def _service(d: Description, svc: Any, related: Related, now: datetime.datetime) -> None:
    spec = svc.spec
    d.field("Selector", printers.labels_text(spec.selector))
    d.field("Type", spec.type or "ClusterIP")
    d.field("IP", spec.cluster_ip or NONE)
    d.field("IPs", list(spec.cluster_ips) or ([spec.cluster_ip] if spec.cluster_ip else []))
    for p in spec.ports:
        proto = p.protocol or "TCP"
        d.field("Port", f"{p.name or '<unset>'}  {p.port}/{proto}")
        d.field("TargetPort", f"{int_or_string(p.target_port) or p.port}/{proto}")
        if p.node_port:
            d.field("NodePort", f"{p.name or '<unset>'}  {p.node_port}/{proto}")
        d.field("Endpoints", _port_endpoints(related.endpoints, p))
    if not spec.ports:
        d.field("Endpoints", printers.endpoints_text(related.endpoints)
                if related.endpoints is not None else NONE)
    d.field("Session Affinity", spec.session_affinity or "None")
    if (spec.type or "ClusterIP") == "NodePort":
        d.field("External Traffic Policy", spec.external_traffic_policy or "Cluster")


def _endpoints(d: Description, ep: Any, related: Related, now: datetime.datetime) -> None:
    if not ep.subsets:
        d.field("Subsets", NONE)
    else:
        d.heading("Subsets")
    for subset in ep.subsets:
        d.field("Addresses", ",".join(a.ip for a in subset.addresses) or NONE, 1)
        d.field("NotReadyAddresses", ",".join(a.ip for a in subset.not_ready_addresses)
                or NONE, 1)
        d.heading("Ports", 1)
        d.table(("Name", "Port", "Protocol"),
                [(p.name or "<unset>", str(p.port), p.protocol or "TCP") for p in subset.ports],
                level=2)


# ---------------------------------------------------------------- cluster

SYSTEM_INFO = (("Machine ID", "machine_id"), ("Kernel Version", "kernel_version"),
               ("OS Image", "os_image"), ("Operating System", "operating_system"),
               ("Architecture", "architecture"),
               ("Container Runtime Version", "container_runtime_version"),
               ("Kubelet Version", "kubelet_version"))


def _pod_resources(pod: Any) -> dict[str, int]:
    """cpu (millicores) and memory (bytes) requested and limited by a pod's containers."""
    out = {"cpu_requests": 0, "cpu_limits": 0, "memory_requests": 0, "memory_limits": 0}
    for c in pod.spec.containers:
        for kind, values in (("requests", c.resources.requests),
                             ("limits", c.resources.limits)):
            if "cpu" in values:
                out[f"cpu_{kind}"] += quantity.cpu_millis(values["cpu"])
            if "memory" in values:
                out[f"memory_{kind}"] += quantity.to_bytes(values["memory"])
    return out


def _percent(part: int, whole: int) -> str:
    return f"{part * 100 // whole}%" if whole else "0%"


def _node_pods(d: Description, node: Any, pods: list[Any], now: datetime.datetime) -> None:
    running = [p for p in pods if p.status.phase not in ("Succeeded", "Failed")]
    alloc = node.status.allocatable
    cpu = quantity.cpu_millis(alloc["cpu"]) if "cpu" in alloc else 0
    memory = quantity.to_bytes(alloc["memory"]) if "memory" in alloc else 0
    totals = dict.fromkeys(("cpu_requests", "cpu_limits", "memory_requests", "memory_limits"), 0)
    rows = []
    for pod in sorted(running, key=lambda p: (p.metadata.namespace, p.metadata.name)):
        r = _pod_resources(pod)
        for key in totals:
            totals[key] += r[key]
        rows.append((pod.metadata.namespace, pod.metadata.name,
                     f"{cpu_text(r['cpu_requests'])} ({_percent(r['cpu_requests'], cpu)})",
                     f"{cpu_text(r['cpu_limits'])} ({_percent(r['cpu_limits'], cpu)})",
                     f"{memory_text(r['memory_requests'])} "
                     f"({_percent(r['memory_requests'], memory)})",
                     f"{memory_text(r['memory_limits'])} ({_percent(r['memory_limits'], memory)})",
                     printers.age(pod, now)))
    d.field("Non-terminated Pods", f"({len(running)} in total)")
    if rows:
        d.table(("Namespace", "Name", "CPU Requests", "CPU Limits", "Memory Requests",
                 "Memory Limits", "Age"), rows)
    d.heading("Allocated resources")
    d.text("(Total limits may be over 100 percent, i.e., overcommitted.)", 1)
    d.table(("Resource", "Requests", "Limits"), [
        ("cpu", f"{cpu_text(totals['cpu_requests'])} ({_percent(totals['cpu_requests'], cpu)})",
         f"{cpu_text(totals['cpu_limits'])} ({_percent(totals['cpu_limits'], cpu)})"),
        ("memory", f"{memory_text(totals['memory_requests'])} "
                   f"({_percent(totals['memory_requests'], memory)})",
         f"{memory_text(totals['memory_limits'])} "
         f"({_percent(totals['memory_limits'], memory)})"),
    ])


def _node(d: Description, node: Any, related: Related, now: datetime.datetime) -> None:
    d.field("Roles", printers.node_roles(node))
    d.field("Taints", [f"{t.key}{'=' + t.value if t.value else ''}:{t.effect}"
                       for t in node.spec.taints])
    d.field("Unschedulable", str(node.spec.unschedulable).lower())
    conditions = node.status.conditions
    if conditions:
        d.heading("Conditions")
        d.table(("Type", "Status", "LastHeartbeatTime", "LastTransitionTime", "Reason",
                 "Message"),
                [(c.type, c.status, timestamp(c.last_heartbeat_time),
                  timestamp(c.last_transition_time), c.reason, c.message) for c in conditions])
    else:
        d.field("Conditions", NONE)
    if node.status.addresses:
        d.heading("Addresses")
        for a in node.status.addresses:
            d.field(a.type, a.address, 1)
    else:
        d.field("Addresses", NONE)
    d.mapping("Capacity", node.status.capacity)
    d.mapping("Allocatable", node.status.allocatable)
    d.heading("System Info")
    info = node.status.node_info
    for label, name in SYSTEM_INFO:
        d.field(label, getattr(info, name), 1)
    d.field("PodCIDR", node.spec.pod_cidr or NONE)
    d.field("PodCIDRs", ",".join(node.spec.pod_cidrs) or NONE)
    _node_pods(d, node, related.pods, now)


def _namespace(d: Description, ns: Any, related: Related, now: datetime.datetime) -> None:
    d.field("Status", ns.status.phase or "Active")
    d.text("No resource quota.")
    d.text("No LimitRange resource.")


LEASE_FIELDS: list[tuple[str, Getter]] = [
    ("Holder Identity", lambda o: o.spec.holder_identity or NONE),
    ("Lease Duration Seconds", lambda o: str(o.spec.lease_duration_seconds)
     if o.spec.HasField("lease_duration_seconds") else NONE),
    ("Acquire Time", lambda o: timestamp(o.spec.acquire_time)),
    ("Renew Time", lambda o: timestamp(o.spec.renew_time)),
    ("Lease Transitions", lambda o: str(o.spec.lease_transitions)),
]


def _lease(d: Description, lease: Any, related: Related, now: datetime.datetime) -> None:
    d.fields(lease, LEASE_FIELDS)


DESCRIBERS: dict[str, Callable[[Description, Any, Related, datetime.datetime], None]] = {
    "Pod": _pod,
    "Deployment": _deployment,
    "ReplicaSet": _workload(REPLICASET_FIELDS),
    "StatefulSet": _workload(STATEFULSET_FIELDS),
    "DaemonSet": _workload(DAEMONSET_FIELDS),
    "Service": _service,
    "Endpoints": _endpoints,
    "Node": _node,
    "Namespace": _namespace,
    "Lease": _lease,
}
