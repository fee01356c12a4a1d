"""Tables for `minictl get`: kubectl's columns for each kind, aligned as kubectl does.

PRINTERS maps a kind name to its Columns: the headers and a row function,
plus the extra headers and row function of `-o wide`. A row function takes the
object and the current time (for AGE) and returns one string per header.
`-o custom-columns=` tables take their headers and cells (JSON paths into the
object's Kubernetes-style JSON) from the user instead.
"""
from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import click
from click.shell_completion import CompletionItem
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from minik8s import manifest
from minik8s.kinds import Kind

RowFn = Callable[[Any, datetime.datetime], list[str]]

NONE = "<none>"
PADDING = 3       # spaces between columns, as kubectl's tabwriter
MIN_WIDTH = 6     # narrowest column, padding included
ROLE_LABEL_PREFIX = "node-role.kubernetes.io/"


class Columns(NamedTuple):
    headers: tuple[str, ...]
    row: RowFn
    wide_headers: tuple[str, ...] = ()
    wide_row: RowFn | None = None


# ---------------------------------------------------------------- names

def qualified_kind(kind: Kind) -> str:
    """kind.group as kubectl names resources: "pod", "deployment.apps"."""
    group = kind.api_version.rpartition("/")[0]
    return f"{kind.name.lower()}.{group}" if group else kind.name.lower()


def resource_name(kind: Kind, name: str) -> str:
    """"deployment.apps/web", as apply and -o name print it."""
    return f"{qualified_kind(kind)}/{name}"


# ---------------------------------------------------------------- cells

def human_duration(seconds: float) -> str:
    """kubectl's AGE: 45s, 3m20s, 25m, 5h10m, 20h, 3d4h, 40d, 2y100d (k8s HumanDuration)."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes, hours, days = s // 60, s // 3600, s // 86400
    if minutes < 10:
        return _two_units(minutes, "m", s % 60, "s")
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return _two_units(hours, "h", minutes % 60, "m")
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return _two_units(days, "d", hours % 24, "h")
    if days < 365 * 2:
        return f"{days}d"
    if days < 365 * 8:
        return _two_units(days // 365, "y", days % 365, "d")
    return f"{days // 365}y"


def _two_units(big: int, big_unit: str, small: int, small_unit: str) -> str:
    return f"{big}{big_unit}{small}{small_unit}" if small else f"{big}{big_unit}"


def since(ts: Timestamp, now: datetime.datetime) -> str:
    """The age of a timestamp, or <unknown> when it is not set."""
    if not ts.seconds and not ts.nanos:
        return "<unknown>"
    return human_duration((now - ts.ToDatetime(tzinfo=datetime.UTC)).total_seconds())


def age(obj: Any, now: datetime.datetime) -> str:
    return since(obj.metadata.creation_timestamp, now)


def labels_text(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or NONE


def selector_text(selector: Any) -> str:
    """A LabelSelector as kubectl shows it: app=web,tier in (a,b)."""
    parts = [f"{k}={v}" for k, v in sorted(selector.match_labels.items())]
    for req in selector.match_expressions:
        values = f" ({','.join(req.values)})" if req.values else ""
        parts.append(f"{req.key} {req.operator.lower()}{values}".strip())
    return ",".join(parts) or NONE


def service_ports(ports: Iterable[Any]) -> str:
    """PORT(S): "80:30080/TCP,443/TCP"."""
    cells = []
    for p in ports:
        node_port = f":{p.node_port}" if p.node_port else ""
        cells.append(f"{p.port}{node_port}/{p.protocol or 'TCP'}")
    return ",".join(cells) or NONE


def endpoints_text(endpoints: Any, limit: int = 3) -> str:
    """ENDPOINTS: "10.1.0.5:80,10.1.0.6:80 + 2 more..."."""
    addrs = []
    for subset in endpoints.subsets:
        ports = [p.port for p in subset.ports] or [None]
        addrs += [a.ip if port is None else f"{a.ip}:{port}"
                  for port in ports for a in subset.addresses]
    if not addrs:
        return NONE
    more = f" + {len(addrs) - limit} more..." if len(addrs) > limit else ""
    return ",".join(addrs[:limit]) + more


def _replicas(spec: Any) -> int:
    return spec.replicas if spec.HasField("replicas") else 1


def _containers_images(template: Any) -> list[str]:
    containers = template.spec.containers
    return [",".join(c.name for c in containers), ",".join(c.image for c in containers)]


# ---------------------------------------------------------------- pods

def pod_status(pod: Any) -> str:
    """STATUS: the phase, a container's waiting/terminated reason, or Terminating."""
    reason = pod.status.reason or pod.status.phase or "Pending"
    for cs in reversed(pod.status.container_statuses):
        state = cs.state
        if state.HasField("waiting") and state.waiting.reason:
            reason = state.waiting.reason
        elif state.HasField("terminated"):
            term = state.terminated
            reason = term.reason or (f"Signal:{term.signal}" if term.signal
                                     else f"ExitCode:{term.exit_code}")
    if pod.metadata.HasField("deletion_timestamp"):
        return "Terminating"
    return reason


def pod_row(pod: Any, now: datetime.datetime) -> list[str]:
    statuses = pod.status.container_statuses
    ready = sum(1 for cs in statuses if cs.ready)
    restarts = sum(cs.restart_count for cs in statuses)
    return [pod.metadata.name, f"{ready}/{len(pod.spec.containers)}", pod_status(pod),
            str(restarts), age(pod, now)]


def pod_wide(pod: Any, now: datetime.datetime) -> list[str]:
    return [pod.status.pod_ip or NONE, pod.spec.node_name or NONE]


# ---------------------------------------------------------------- workloads

def deployment_row(d: Any, now: datetime.datetime) -> list[str]:
    st = d.status
    return [d.metadata.name, f"{st.ready_replicas}/{_replicas(d.spec)}",
            str(st.updated_replicas), str(st.available_replicas), age(d, now)]


def replicaset_row(rs: Any, now: datetime.datetime) -> list[str]:
    st = rs.status
    return [rs.metadata.name, str(_replicas(rs.spec)), str(st.replicas),
            str(st.ready_replicas), age(rs, now)]


def daemonset_row(ds: Any, now: datetime.datetime) -> list[str]:
    st = ds.status
    return [ds.metadata.name, str(st.desired_number_scheduled),
            str(st.current_number_scheduled), str(st.number_ready),
            str(st.updated_number_scheduled), str(st.number_available),
            labels_text(ds.spec.template.spec.node_selector), age(ds, now)]


def statefulset_row(sts: Any, now: datetime.datetime) -> list[str]:
    return [sts.metadata.name, f"{sts.status.ready_replicas}/{_replicas(sts.spec)}",
            age(sts, now)]


def workload_wide(obj: Any, now: datetime.datetime) -> list[str]:
    return [*_containers_images(obj.spec.template), selector_text(obj.spec.selector)]


def statefulset_wide(sts: Any, now: datetime.datetime) -> list[str]:
    return _containers_images(sts.spec.template)


# ---------------------------------------------------------------- networking

def service_row(svc: Any, now: datetime.datetime) -> list[str]:
    spec = svc.spec
    return [svc.metadata.name, spec.type or "ClusterIP", spec.cluster_ip or NONE, NONE,
            service_ports(spec.ports), age(svc, now)]


def service_wide(svc: Any, now: datetime.datetime) -> list[str]:
    return [labels_text(svc.spec.selector)]


def endpoints_row(ep: Any, now: datetime.datetime) -> list[str]:
    return [ep.metadata.name, endpoints_text(ep), age(ep, now)]


# ---------------------------------------------------------------- cluster

def node_status(node: Any) -> str:
    ready = next((c.status for c in node.status.conditions if c.type == "Ready"), "")
    status = {"True": "Ready", "": "Unknown"}.get(ready, "NotReady")
    return f"{status},SchedulingDisabled" if node.spec.unschedulable else status


def node_roles(node: Any) -> str:
    roles = sorted(k.removeprefix(ROLE_LABEL_PREFIX) for k in node.metadata.labels
                   if k.startswith(ROLE_LABEL_PREFIX))
    return ",".join(r for r in roles if r) or NONE


def node_row(node: Any, now: datetime.datetime) -> list[str]:
    return [node.metadata.name, node_status(node), node_roles(node), age(node, now),
            node.status.node_info.kubelet_version or NONE]


def node_wide(node: Any, now: datetime.datetime) -> list[str]:
    internal = [a.address for a in node.status.addresses if a.type == "InternalIP"]
    info = node.status.node_info
    return [",".join(internal) or NONE, info.os_image or NONE, info.kernel_version or NONE,
            info.container_runtime_version or NONE]


def namespace_row(ns: Any, now: datetime.datetime) -> list[str]:
    return [ns.metadata.name, ns.status.phase or "Active", age(ns, now)]


def lease_row(lease: Any, now: datetime.datetime) -> list[str]:
    return [lease.metadata.name, lease.spec.holder_identity or NONE, age(lease, now)]


def event_time(ev: Any) -> Timestamp:
    """When an event last happened: lastTimestamp, else firstTimestamp, else its creation."""
    for ts in (ev.last_timestamp, ev.first_timestamp):
        if ts.seconds or ts.nanos:
            return ts
    return ev.metadata.creation_timestamp


def event_age(ev: Any, now: datetime.datetime) -> str:
    """LAST SEEN, as kubectl: "45s", or "3m (x5 over 10m)" for a repeated event."""
    seen = since(event_time(ev), now)
    first = ev.first_timestamp
    if ev.count > 1 and (first.seconds or first.nanos):
        return f"{seen} (x{ev.count} over {since(first, now)})"
    return seen


def event_sort_key(ev: Any) -> tuple[int, str]:
    """Oldest first, as `kubectl events` lists them."""
    return event_time(ev).ToNanoseconds(), ev.metadata.name


def event_row(ev: Any, now: datetime.datetime) -> list[str]:
    ref = ev.involved_object
    return [event_age(ev, now), ev.type, ev.reason, f"{ref.kind.lower()}/{ref.name}",
            ev.message]


WORKLOAD_WIDE = ("CONTAINERS", "IMAGES", "SELECTOR")

PRINTERS: dict[str, Columns] = {
    "Pod": Columns(("NAME", "READY", "STATUS", "RESTARTS", "AGE"), pod_row,
                   ("IP", "NODE"), pod_wide),
    "Deployment": Columns(("NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"), deployment_row,
                          WORKLOAD_WIDE, workload_wide),
    "ReplicaSet": Columns(("NAME", "DESIRED", "CURRENT", "READY", "AGE"), replicaset_row,
                          WORKLOAD_WIDE, workload_wide),
    "DaemonSet": Columns(("NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE",
                          "NODE SELECTOR", "AGE"), daemonset_row, WORKLOAD_WIDE, workload_wide),
    "StatefulSet": Columns(("NAME", "READY", "AGE"), statefulset_row,
                           ("CONTAINERS", "IMAGES"), statefulset_wide),
    "Service": Columns(("NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"),
                       service_row, ("SELECTOR",), service_wide),
    "Endpoints": Columns(("NAME", "ENDPOINTS", "AGE"), endpoints_row),
    "Node": Columns(("NAME", "STATUS", "ROLES", "AGE", "VERSION"), node_row,
                    ("INTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"),
                    node_wide),
    "Namespace": Columns(("NAME", "STATUS", "AGE"), namespace_row),
    "Lease": Columns(("NAME", "HOLDER", "AGE"), lease_row),
    "Event": Columns(("LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"), event_row),
}


# ---------------------------------------------------------------- tables

class Table:
    """The rows of one kind. The first call to lines() prints the header and fixes
    the column widths; later calls (watch events) keep them, widening if needed."""

    def __init__(self, kind: Kind, *, wide: bool = False, namespace_column: bool = False,
                 kind_prefix: bool = False) -> None:
        self.kind = kind
        self.columns = PRINTERS[kind.name]
        self.wide = wide and self.columns.wide_row is not None
        self.namespace_column = namespace_column and kind.namespaced
        self.kind_prefix = kind_prefix
        self.headers = self._headers()
        self.widths: list[int] = []

    def _headers(self) -> list[str]:
        headers = list(self.columns.headers)
        if self.wide:
            headers += self.columns.wide_headers
        return ["NAMESPACE", *headers] if self.namespace_column else headers

    def row(self, obj: Message, now: datetime.datetime) -> list[str]:
        cells = self.columns.row(obj, now)
        if self.kind_prefix and "NAME" in self.columns.headers:
            i = self.columns.headers.index("NAME")
            cells[i] = f"{qualified_kind(self.kind)}/{cells[i]}"
        if self.wide and self.columns.wide_row is not None:
            cells += self.columns.wide_row(obj, now)
        return [obj.metadata.namespace, *cells] if self.namespace_column else cells

    def lines(self, objs: Iterable[Message], now: datetime.datetime | None = None) -> list[str]:
        now = now or datetime.datetime.now(datetime.UTC)
        rows = [self.row(obj, now) for obj in objs]
        if not self.widths:
            rows.insert(0, self.headers)
            self.widths = [0] * len(self.headers)
        self.widths = [max([w, *(len(r[i]) for r in rows)]) for i, w in enumerate(self.widths)]
        return [render_row(r, self.widths) for r in rows]


def render_row(cells: Sequence[str], widths: Sequence[int]) -> str:
    """Cells left-aligned in columns of the given widths; the last one is not padded."""
    padded = [c.ljust(max(w + PADDING, MIN_WIDTH)) for c, w in zip(cells[:-1], widths[:-1],
                                                                   strict=True)]
    return "".join(padded) + cells[-1]


# ---------------------------------------------------------------- -o custom-columns

CUSTOM_COLUMNS = "custom-columns="
JsonPath = tuple[str | int | slice, ...]


class CustomColumn(NamedTuple):
    header: str
    path: JsonPath


def parse_custom_columns(spec: str) -> list[CustomColumn]:
    """kubectl's "NAME:.metadata.name,NODE:.spec.nodeName" (the custom-columns= prefix
    optional); ValueError naming the bad part."""
    spec = spec.removeprefix(CUSTOM_COLUMNS)
    if not spec.strip():
        raise ValueError("custom-columns format specified but no custom columns given")
    columns = []
    for part in spec.split(","):
        header, sep, expr = part.partition(":")
        if not sep or not header.strip() or not expr.strip():
            raise ValueError(f"unexpected custom-columns spec: {part!r}, "
                             "expected <header>:<json-path-expr>")
        columns.append(CustomColumn(header.strip(), parse_json_path(expr.strip())))
    return columns


def parse_json_path(expr: str) -> JsonPath:
    """A relaxed JSONPath as kubectl takes it: ".spec.containers[0].image",
    "spec.nodeName" or "{.metadata.name}"; "[*]" for every item, "['a.b/c']" or
    "a\\.b" for a key with dots in it."""
    text = expr[1:-1] if expr.startswith("{") and expr.endswith("}") else expr
    tokens: list[str | int | slice] = []
    name, i = "", 0

    def flush() -> None:
        nonlocal name
        if name:
            tokens.append(name)
        name = ""

    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            name += text[i + 1]
            i += 2
        elif c == ".":
            flush()
            i += 1
        elif c == "[":
            flush()
            end = text.find("]", i)
            if end < 0:
                raise ValueError(f"unclosed [ in {expr!r}")
            tokens.append(_subscript(text[i + 1:end], expr))
            i = end + 1
        else:
            name += c
            i += 1
    flush()
    if not tokens:
        raise ValueError(f"empty JSON path {expr!r}")
    return tuple(tokens)


def _subscript(inner: str, expr: str) -> str | int | slice:
    inner = inner.strip()
    if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
        return inner[1:-1]
    try:
        if inner == "*":
            return slice(None)
        if ":" in inner:
            start, _, stop = inner.partition(":")
            return slice(int(start) if start else None, int(stop) if stop else None)
        return int(inner)
    except ValueError:
        raise ValueError(f"invalid subscript [{inner}] in {expr!r}") from None


def json_path_values(data: Any, path: JsonPath) -> list[Any]:
    """Every value the path reaches in plain JSON data; [] when it reaches none."""
    current = [data]
    for token in path:
        found: list[Any] = []
        for value in current:
            if isinstance(token, slice):
                if isinstance(value, list):
                    found += value[token]
                elif isinstance(value, dict) and token == slice(None):
                    found += value.values()
            elif isinstance(token, int):
                if isinstance(value, list) and -len(value) <= token < len(value):
                    found.append(value[token])
            elif isinstance(value, dict) and token in value:
                found.append(value[token])
        current = found
    return current


def json_cell(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def custom_cell(data: Any, path: JsonPath) -> str:
    """One cell: the values joined by commas, or <none>."""
    return ",".join(json_cell(v) for v in json_path_values(data, path)) or NONE


class CustomColumnsTable(Table):
    """-o custom-columns: the user's headers, each cell a JSON path into the object's
    Kubernetes-style JSON (manifest.to_dict)."""

    def __init__(self, columns: Sequence[CustomColumn]) -> None:
        self.custom = list(columns)
        self.headers = [c.header for c in self.custom]
        self.widths = []

    def row(self, obj: Message, now: datetime.datetime) -> list[str]:
        data = manifest.to_dict(obj)
        return [custom_cell(data, c.path) for c in self.custom]


class OutputFormat(click.ParamType):
    """`get -o`: one of the fixed formats, or custom-columns=SPEC (checked here, so a
    bad spec is a usage error before anything is fetched)."""

    name = "format"

    def __init__(self, choices: Sequence[str]) -> None:
        self.choices = tuple(choices)

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return f"[{'|'.join(self.choices)}|{CUSTOM_COLUMNS}SPEC]"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> str:
        if value in self.choices:
            return value
        if isinstance(value, str) and value.startswith(CUSTOM_COLUMNS):
            try:
                parse_custom_columns(value)
            except ValueError as exc:
                self.fail(str(exc), param, ctx)
            return value
        if isinstance(value, str) and value.startswith(("jsonpath", "go-template")):
            self.fail(f"{value.partition('=')[0]} output is not supported; "
                      f"use -o {CUSTOM_COLUMNS}HEADER:.json.path,...", param, ctx)
        self.fail(f"{value!r} is not one of {', '.join(map(repr, self.choices))} "
                  f"or {CUSTOM_COLUMNS}SPEC", param, ctx)

    def shell_complete(self, ctx: click.Context, param: click.Parameter,
                       incomplete: str) -> list[CompletionItem]:
        return [CompletionItem(c) for c in (*self.choices, CUSTOM_COLUMNS)
                if c.startswith(incomplete)]
