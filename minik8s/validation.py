"""Validation of typed API objects, as Kubernetes does it, simplified.

Shared by the manifest loader (so mistakes show up before anything is sent)
and the apiserver (which is authoritative). Every check raises a FieldError
naming the field by its JSON path; checks run in a fixed order, so the same
object always reports the same first problem. An empty enum-like string is
always accepted: it means "the default".
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf.message import Message

from minik8s import kinds, quantity
from minik8s.api.v1 import types_pb2

RESTART_POLICIES = ("Always", "OnFailure", "Never")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
PROTOCOLS = ("TCP", "UDP", "SCTP")
SERVICE_TYPES = ("ClusterIP", "NodePort")
UNSUPPORTED_SERVICE_TYPES = ("LoadBalancer", "ExternalName")
SESSION_AFFINITIES = ("None", "ClientIP")
TRAFFIC_POLICIES = ("Cluster", "Local")
DEPLOYMENT_STRATEGIES = ("RollingUpdate", "Recreate")
UPDATE_STRATEGIES = ("RollingUpdate", "OnDelete")
POD_MANAGEMENT_POLICIES = ("OrderedReady", "Parallel")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
TOLERATION_OPERATORS = ("Exists", "Equal")
DNS_POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")
LABEL_SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
NODE_SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")
CONDITION_STATUSES = ("True", "False", "Unknown")
EVENT_TYPES = ("Normal", "Warning")
STORAGE_MEDIA = ("Memory",)
ACCESS_MODES = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")
CLAIM_RESOURCE_NAMES = ("storage",)
RESOURCE_NAMES = ("cpu", "memory", "pods", "ephemeral-storage")
NODE_PORT_RANGE = (30000, 32767)  # inclusive, the Kubernetes default
MAX_ANNOTATIONS_BYTES = 256 * 1024
_WORKLOAD_KINDS = ("ReplicaSet", "Deployment", "DaemonSet", "StatefulSet")
# what an update may change in a StatefulSet's spec, as Kubernetes
_STATEFUL_SET_MUTABLE = ("replicas", "template", "update_strategy", "min_ready_seconds",
                         "revision_history_limit")
# "<name>-<10 character hash>" is its pods' controller-revision-hash label: at most 63
MAX_STATEFUL_SET_NAME = 52

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_IANA_SVC_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_PERCENT = re.compile(r"[0-9]+%")

_DNS_LABEL_RULE = ("a DNS-1123 label must consist of lower case alphanumeric characters or "
                   "'-', and must start and end with an alphanumeric character")
_DNS_SUBDOMAIN_RULE = ("a DNS-1123 subdomain must consist of lower case alphanumeric "
                       "characters, '-' or '.', and must start and end with an alphanumeric "
                       "character")
_QUALIFIED_NAME_RULE = ("must consist of alphanumeric characters, '-', '_' or '.', and must "
                        "start and end with an alphanumeric character")
_LABEL_VALUE_RULE = ("must be empty or consist of alphanumeric characters, '-', '_' or '.', "
                     "and must start and end with an alphanumeric character")
_IANA_SVC_NAME_RULE = ("must be a port name of at most 15 lower case alphanumeric characters "
                       "or '-', with at least one letter, not starting or ending with '-' "
                       "and with no '--'")


class FieldError(ValueError):
    """An invalid field: str() is "path: message"."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


# ---------------------------------------------------------------- public helpers

def is_dns1123_label(value: str) -> bool:
    return len(value) <= 63 and _DNS_LABEL.fullmatch(value) is not None


def is_dns1123_subdomain(value: str) -> bool:
    return len(value) <= 253 and _DNS_SUBDOMAIN.fullmatch(value) is not None


def validate_label_key(key: str, path: str) -> None:
    """A qualified name with an optional DNS subdomain prefix: "app.kubernetes.io/name"."""
    prefix, slash, name = key.rpartition("/")
    if slash and not is_dns1123_subdomain(prefix):
        raise FieldError(path, f"invalid key {key!r}: prefix must be a DNS-1123 subdomain")
    if not name:
        raise FieldError(path, f"invalid key {key!r}: name part must be non-empty")
    if len(name) > 63:
        raise FieldError(path, f"invalid key {key!r}: name part must be no more than 63 "
                               "characters")
    if not _QUALIFIED_NAME.fullmatch(name):
        raise FieldError(path, f"invalid key {key!r}: name part {_QUALIFIED_NAME_RULE}")


def validate_label_value(value: str, path: str) -> None:
    if len(value) > 63:
        raise FieldError(path, "must be no more than 63 characters")
    if not _LABEL_VALUE.fullmatch(value):
        raise FieldError(path, f"invalid value {value!r}: {_LABEL_VALUE_RULE}")


def validate_labels(labels: Mapping[str, str], path: str) -> None:
    """Keys are reported at the map's path, values at path.key."""
    for key in sorted(labels):
        validate_label_key(key, path)
        validate_label_value(labels[key], f"{path}.{key}")


# ---------------------------------------------------------------- entry points

def validate(obj: Message) -> None:
    """Raise FieldError for the first problem of a typed object (Pod, Service, ...)."""
    kind = kinds.of(obj)
    _metadata(obj.metadata, kind)
    _BY_KIND[kind.name](obj)


def validate_update(old: Message, new: Message) -> None:
    """Raise FieldError if `new` changes a field that may not change after creation.

    Only the transition is checked: call validate(new) as well.
    """
    kind = kinds.of(new)
    if kinds.of(old) is not kind:
        raise FieldError("kind", "field is immutable")
    if kind.name in _WORKLOAD_KINDS and old.spec.selector != new.spec.selector:
        raise FieldError("spec.selector", "field is immutable")
    if kind.name == "Service" and old.spec.cluster_ip and \
            new.spec.cluster_ip != old.spec.cluster_ip:
        raise FieldError("spec.clusterIP", "field is immutable")
    if kind.name == "Pod":
        _pod_update(old.spec, new.spec)
    if kind.name == "StatefulSet":
        _stateful_set_update(old.spec, new.spec)


# ---------------------------------------------------------------- small checks

def _required(value: Any, path: str) -> None:
    if not value:
        raise FieldError(path, "required value")


def _one_of(value: str, allowed: tuple[str, ...], path: str) -> None:
    if value and value not in allowed:
        raise FieldError(path, f"must be one of {', '.join(allowed)}")


def _at_least(value: int, minimum: int, path: str) -> None:
    if value < minimum:
        raise FieldError(path, "must be greater than 0" if minimum == 1
                         else f"must be greater than or equal to {minimum}")


def _between(value: int, low: int, high: int, path: str) -> None:
    if not low <= value <= high:
        raise FieldError(path, f"must be between {low} and {high}, inclusive")


def _optional_at_least(msg: Message, field: str, minimum: int, path: str) -> None:
    if msg.HasField(field):
        _at_least(getattr(msg, field), minimum, path)


def _dns_label(value: str, path: str) -> None:
    if len(value) > 63:
        raise FieldError(path, "must be no more than 63 characters")
    if not is_dns1123_label(value):
        raise FieldError(path, f"invalid value {value!r}: {_DNS_LABEL_RULE}")


def _dns_subdomain(value: str, path: str) -> None:
    if len(value) > 253:
        raise FieldError(path, "must be no more than 253 characters")
    if not is_dns1123_subdomain(value):
        raise FieldError(path, f"invalid value {value!r}: {_DNS_SUBDOMAIN_RULE}")


def _port_name(value: str, path: str) -> None:
    if (len(value) > 15 or not _IANA_SVC_NAME.fullmatch(value) or "--" in value
            or not any(c.isalpha() for c in value)):
        raise FieldError(path, f"invalid value {value!r}: {_IANA_SVC_NAME_RULE}")


def _int_or_string_port(port: types_pb2.IntOrString, path: str) -> None:
    which = port.WhichOneof("value")
    if which is None:
        raise FieldError(path, "required value")
    if which == "int_val":
        _between(port.int_val, 1, 65535, path)
    else:
        _port_name(port.str_val, path)


def _int_or_percent(value: types_pb2.IntOrString, path: str) -> None:
    if value.WhichOneof("value") == "int_val":
        _at_least(value.int_val, 0, path)
    elif value.WhichOneof("value") == "str_val" and not _PERCENT.fullmatch(value.str_val):
        raise FieldError(path, f"invalid value {value.str_val!r}: must be an integer or a "
                               "percentage (e.g. '25%')")


def _ip(value: str, path: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise FieldError(path, f"invalid value {value!r}: must be a valid IP address") from None


def _resources(resources: Mapping[str, str], path: str,
               names: tuple[str, ...] = RESOURCE_NAMES) -> None:
    for name in sorted(resources):
        _one_of(name, names, f"{path}.{name}")
        try:
            amount = quantity.parse_quantity(resources[name])
        except ValueError:
            raise FieldError(f"{path}.{name}", f"invalid quantity {resources[name]!r}") from None
        if amount < 0:
            raise FieldError(f"{path}.{name}", "must be greater than or equal to 0")


def _conditions(conditions: Iterable[Any], path: str) -> None:
    for i, condition in enumerate(conditions):
        _one_of(condition.status, CONDITION_STATUSES, f"{path}[{i}].status")


# ---------------------------------------------------------------- metadata

def _metadata(meta: types_pb2.ObjectMeta, kind: kinds.Kind) -> None:
    if meta.name:
        _object_name(meta.name, kind, "metadata.name")
    elif meta.generate_name:
        _generate_name(meta.generate_name, kind)
    else:
        raise FieldError("metadata.name", "name or generateName is required")
    if meta.namespace:
        _dns_label(meta.namespace, "metadata.namespace")
    _labels_and_annotations(meta, "metadata")


def _object_name(name: str, kind: kinds.Kind, path: str) -> None:
    if kind.name in ("Namespace", "Service"):
        _dns_label(name, path)
    elif kind.api_version == kinds.RBAC:
        _path_segment(name, path)
    else:
        _dns_subdomain(name, path)


def _path_segment(name: str, path: str) -> None:
    """RBAC names are free-form ("system:node-proxier") except for what breaks a path."""
    if name in (".", "..") or "/" in name or "%" in name:
        raise FieldError(path, f"invalid value {name!r}: may not be '.' or '..' and may not "
                               "contain '/' or '%'")


def _generate_name(prefix: str, kind: kinds.Kind) -> None:
    """The server appends random characters, so a trailing '-' is fine."""
    masked = prefix[:-1] + "a" if prefix.endswith("-") else prefix
    try:
        _object_name(masked, kind, "metadata.generateName")
    except FieldError:
        raise FieldError("metadata.generateName",
                         f"invalid value {prefix!r}: must be the start of a valid name") from None


def _labels_and_annotations(meta: types_pb2.ObjectMeta, path: str) -> None:
    validate_labels(meta.labels, f"{path}.labels")
    for key in sorted(meta.annotations):
        validate_label_key(key, f"{path}.annotations")
    size = sum(len(k.encode()) + len(v.encode()) for k, v in meta.annotations.items())
    if size > MAX_ANNOTATIONS_BYTES:
        raise FieldError(f"{path}.annotations",
                         f"too long: must have at most {MAX_ANNOTATIONS_BYTES} bytes")


# ---------------------------------------------------------------- selectors

def _requirement(req: Any, operators: tuple[str, ...], path: str) -> None:
    """A LabelSelectorRequirement or NodeSelectorRequirement."""
    _required(req.key, f"{path}.key")
    validate_label_key(req.key, f"{path}.key")
    _required(req.operator, f"{path}.operator")
    _one_of(req.operator, operators, f"{path}.operator")
    if req.operator in ("In", "NotIn") and not req.values:
        raise FieldError(f"{path}.values", f"must be non-empty when operator is {req.operator}")
    if req.operator in ("Exists", "DoesNotExist") and req.values:
        raise FieldError(f"{path}.values", f"must be empty when operator is {req.operator}")
    if req.operator in ("Gt", "Lt") and (len(req.values) != 1 or
                                          not re.fullmatch(r"-?[0-9]+", req.values[0])):
        raise FieldError(f"{path}.values",
                         f"must have a single integer value when operator is {req.operator}")


def _label_selector(selector: types_pb2.LabelSelector, path: str) -> None:
    if not selector.match_labels and not selector.match_expressions:
        raise FieldError(path, "required value")
    validate_labels(selector.match_labels, f"{path}.matchLabels")
    for i, req in enumerate(selector.match_expressions):
        _requirement(req, LABEL_SELECTOR_OPERATORS, f"{path}.matchExpressions[{i}]")
        for j, value in enumerate(req.values):
            validate_label_value(value, f"{path}.matchExpressions[{i}].values[{j}]")


def _node_selector_term(term: types_pb2.NodeSelectorTerm, path: str) -> None:
    for i, req in enumerate(term.match_expressions):
        _requirement(req, NODE_SELECTOR_OPERATORS, f"{path}.matchExpressions[{i}]")
    for i, req in enumerate(term.match_fields):
        _requirement(req, NODE_SELECTOR_OPERATORS, f"{path}.matchFields[{i}]")


def _affinity(affinity: types_pb2.Affinity, path: str) -> None:
    node = affinity.node_affinity
    path = f"{path}.nodeAffinity"
    if node.HasField("required_during_scheduling_ignored_during_execution"):
        required = node.required_during_scheduling_ignored_during_execution
        req_path = f"{path}.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"
        if not required.node_selector_terms:
            raise FieldError(req_path, "must have at least one node selector term")
        for i, term in enumerate(required.node_selector_terms):
            _node_selector_term(term, f"{req_path}[{i}]")
    pref_path = f"{path}.preferredDuringSchedulingIgnoredDuringExecution"
    for i, pref in enumerate(node.preferred_during_scheduling_ignored_during_execution):
        _between(pref.weight, 1, 100, f"{pref_path}[{i}].weight")
        _node_selector_term(pref.preference, f"{pref_path}[{i}].preference")


# ---------------------------------------------------------------- pods

def _pod_spec(spec: types_pb2.PodSpec, path: str, claims: Iterable[str] = ()) -> None:
    """claims: volumes the pods will have besides spec.volumes (a StatefulSet's claims)."""
    if not spec.containers:
        raise FieldError(f"{path}.containers", "must have at least one container")
    names: set[str] = set()
    volumes = {v.name for v in spec.volumes} | set(claims)
    for i, container in enumerate(spec.containers):
        _container(container, f"{path}.containers[{i}]", names, volumes)
    for i, container in enumerate(spec.init_containers):
        _container(container, f"{path}.initContainers[{i}]", names, volumes)
    _volumes(spec.volumes, f"{path}.volumes")
    _one_of(spec.restart_policy, RESTART_POLICIES, f"{path}.restartPolicy")
    _optional_at_least(spec, "termination_grace_period_seconds", 0,
                       f"{path}.terminationGracePeriodSeconds")
    _optional_at_least(spec, "active_deadline_seconds", 1, f"{path}.activeDeadlineSeconds")
    _one_of(spec.dns_policy, DNS_POLICIES, f"{path}.dnsPolicy")
    validate_labels(spec.node_selector, f"{path}.nodeSelector")
    if spec.node_name:
        _dns_subdomain(spec.node_name, f"{path}.nodeName")
    if spec.hostname:
        _dns_label(spec.hostname, f"{path}.hostname")
    if spec.subdomain:
        _dns_label(spec.subdomain, f"{path}.subdomain")
    _affinity(spec.affinity, f"{path}.affinity")
    for i, toleration in enumerate(spec.tolerations):
        _toleration(toleration, f"{path}.tolerations[{i}]")


def _container(container: types_pb2.Container, path: str, names: set[str],
               volumes: set[str]) -> None:
    _required(container.name, f"{path}.name")
    _dns_label(container.name, f"{path}.name")
    if container.name in names:
        raise FieldError(f"{path}.name", f"duplicate name {container.name!r}")
    names.add(container.name)
    _required(container.image, f"{path}.image")
    _container_ports(container.ports, f"{path}.ports")
    for i, env in enumerate(container.env):
        _required(env.name, f"{path}.env[{i}].name")
    _resources(container.resources.limits, f"{path}.resources.limits")
    _resources(container.resources.requests, f"{path}.resources.requests")
    _requests_within_limits(container.resources, f"{path}.resources.requests")
    for i, mount in enumerate(container.volume_mounts):
        _volume_mount(mount, volumes, f"{path}.volumeMounts[{i}]")
    for field, json_name in (("liveness_probe", "livenessProbe"),
                             ("readiness_probe", "readinessProbe"),
                             ("startup_probe", "startupProbe")):
        if container.HasField(field):
            _probe(getattr(container, field), f"{path}.{json_name}")
    _one_of(container.image_pull_policy, PULL_POLICIES, f"{path}.imagePullPolicy")


def _container_ports(ports: Iterable[types_pb2.ContainerPort], path: str) -> None:
    names: set[str] = set()
    for i, port in enumerate(ports):
        if port.name:
            _port_name(port.name, f"{path}[{i}].name")
            if port.name in names:
                raise FieldError(f"{path}[{i}].name", f"duplicate name {port.name!r}")
            names.add(port.name)
        _between(port.container_port, 1, 65535, f"{path}[{i}].containerPort")
        _between(port.host_port, 0, 65535, f"{path}[{i}].hostPort")
        _one_of(port.protocol, PROTOCOLS, f"{path}[{i}].protocol")
        if port.host_ip:
            _ip(port.host_ip, f"{path}[{i}].hostIP")


def _requests_within_limits(resources: types_pb2.ResourceRequirements, path: str) -> None:
    for name in sorted(set(resources.requests) & set(resources.limits)):
        if (quantity.parse_quantity(resources.requests[name])
                > quantity.parse_quantity(resources.limits[name])):
            raise FieldError(f"{path}.{name}", f"must be less than or equal to {name} limit")


def _volume_mount(mount: types_pb2.VolumeMount, volumes: set[str], path: str) -> None:
    _required(mount.name, f"{path}.name")
    if mount.name not in volumes:
        raise FieldError(f"{path}.name", f"volume {mount.name!r} not found")
    _required(mount.mount_path, f"{path}.mountPath")


def _probe(probe: types_pb2.Probe, path: str) -> None:
    handlers = [h for h in ("exec", "http_get", "tcp_socket") if probe.HasField(h)]
    if not handlers:
        raise FieldError(path, "must specify a handler type (exec, httpGet or tcpSocket)")
    if len(handlers) > 1:
        raise FieldError(path, "may not specify more than 1 handler type")
    if probe.HasField("http_get"):
        _int_or_string_port(probe.http_get.port, f"{path}.httpGet.port")
    if probe.HasField("tcp_socket"):
        _int_or_string_port(probe.tcp_socket.port, f"{path}.tcpSocket.port")
    for field, json_name in (("initial_delay_seconds", "initialDelaySeconds"),
                             ("timeout_seconds", "timeoutSeconds"),
                             ("period_seconds", "periodSeconds"),
                             ("success_threshold", "successThreshold"),
                             ("failure_threshold", "failureThreshold")):
        _at_least(getattr(probe, field), 0, f"{path}.{json_name}")
    _optional_at_least(probe, "termination_grace_period_seconds", 0,
                       f"{path}.terminationGracePeriodSeconds")


def _volumes(volumes: Iterable[types_pb2.Volume], path: str) -> None:
    names: set[str] = set()
    for i, volume in enumerate(volumes):
        _required(volume.name, f"{path}[{i}].name")
        _dns_label(volume.name, f"{path}[{i}].name")
        if volume.name in names:
            raise FieldError(f"{path}[{i}].name", f"duplicate name {volume.name!r}")
        names.add(volume.name)
        sources = [s for s in ("empty_dir", "host_path", "persistent_volume_claim")
                   if volume.HasField(s)]
        if not sources:
            raise FieldError(f"{path}[{i}]", "must specify a volume type (emptyDir, hostPath "
                                             "or persistentVolumeClaim)")
        if len(sources) > 1:
            raise FieldError(f"{path}[{i}]", "may not specify more than 1 volume type")
        if volume.HasField("empty_dir"):
            _empty_dir(volume.empty_dir, f"{path}[{i}].emptyDir")
        elif volume.HasField("host_path"):
            _required(volume.host_path.path, f"{path}[{i}].hostPath.path")
        else:
            claim = f"{path}[{i}].persistentVolumeClaim.claimName"
            _required(volume.persistent_volume_claim.claim_name, claim)
            _dns_subdomain(volume.persistent_volume_claim.claim_name, claim)


def _empty_dir(empty_dir: types_pb2.EmptyDirVolumeSource, path: str) -> None:
    _one_of(empty_dir.medium, STORAGE_MEDIA, f"{path}.medium")
    if empty_dir.size_limit and not quantity.is_valid_quantity(empty_dir.size_limit):
        raise FieldError(f"{path}.sizeLimit", f"invalid quantity {empty_dir.size_limit!r}")


def _toleration(toleration: types_pb2.Toleration, path: str) -> None:
    if toleration.key:
        validate_label_key(toleration.key, f"{path}.key")
    _one_of(toleration.operator, TOLERATION_OPERATORS, f"{path}.operator")
    if not toleration.key and toleration.operator != "Exists":
        raise FieldError(f"{path}.operator", "must be Exists when key is empty")
    if toleration.operator == "Exists" and toleration.value:
        raise FieldError(f"{path}.value", "must be empty when operator is Exists")
    _one_of(toleration.effect, TAINT_EFFECTS, f"{path}.effect")
    if toleration.HasField("toleration_seconds") and toleration.effect != "NoExecute":
        raise FieldError(f"{path}.effect", "must be NoExecute when tolerationSeconds is set")


def _pod(pod: types_pb2.Pod) -> None:
    _pod_spec(pod.spec, "spec")
    _conditions(pod.status.conditions, "status.conditions")


def _pod_update(old: types_pb2.PodSpec, new: types_pb2.PodSpec) -> None:
    if old.node_name != new.node_name:
        raise FieldError("spec.nodeName", "field is immutable; use Bind")
    old_rest, new_rest = _without_images(old), _without_images(new)
    if old_rest != new_rest:
        raise FieldError(_first_difference(old_rest, new_rest, "spec"),
                         "field is immutable: a pod may only change containers[*].image "
                         "and initContainers[*].image")


def _without_images(spec: types_pb2.PodSpec) -> types_pb2.PodSpec:
    copy = types_pb2.PodSpec()
    copy.CopyFrom(spec)
    for container in (*copy.containers, *copy.init_containers):
        container.ClearField("image")
    return copy


def _first_difference(a: Message, b: Message, path: str) -> str:
    """The JSON path of the first field that differs between two unequal messages."""
    for field in a.DESCRIPTOR.fields:
        sub = f"{path}.{field.json_name}"
        if field.has_presence and a.HasField(field.name) != b.HasField(field.name):
            return sub
        left, right = getattr(a, field.name), getattr(b, field.name)
        if left == right:
            continue
        is_map = field.message_type is not None and field.message_type.GetOptions().map_entry
        if field.message_type is None or is_map:
            return sub
        if not field.is_repeated:
            return _first_difference(left, right, sub)
        if len(left) != len(right):
            return sub
        i = next(i for i, (x, y) in enumerate(zip(left, right, strict=True)) if x != y)
        return _first_difference(left[i], right[i], f"{sub}[{i}]")
    return path


# ---------------------------------------------------------------- services

def _service(service: types_pb2.Service) -> None:
    spec = service.spec
    if spec.type in UNSUPPORTED_SERVICE_TYPES:
        raise FieldError("spec.type", f"{spec.type} is not supported: must be one of "
                                      f"{', '.join(SERVICE_TYPES)}")
    _one_of(spec.type, SERVICE_TYPES, "spec.type")
    validate_labels(spec.selector, "spec.selector")
    if spec.cluster_ip and spec.cluster_ip != "None":
        _ip(spec.cluster_ip, "spec.clusterIP")
    if not spec.ports and spec.cluster_ip != "None":
        raise FieldError("spec.ports", "must have at least one port (unless clusterIP is None)")
    names: set[str] = set()
    for i, port in enumerate(spec.ports):
        _service_port(port, spec, names, f"spec.ports[{i}]")
    _one_of(spec.session_affinity, SESSION_AFFINITIES, "spec.sessionAffinity")
    client_ip = spec.session_affinity_config.client_ip
    if client_ip.HasField("timeout_seconds"):
        _between(client_ip.timeout_seconds, 1, 86400,
                 "spec.sessionAffinityConfig.clientIP.timeoutSeconds")
    _one_of(spec.external_traffic_policy, TRAFFIC_POLICIES, "spec.externalTrafficPolicy")
    _conditions(service.status.conditions, "status.conditions")


def _service_port(port: types_pb2.ServicePort, spec: types_pb2.ServiceSpec, names: set[str],
                  path: str) -> None:
    if len(spec.ports) > 1:
        if not port.name:
            raise FieldError(f"{path}.name", "required value when there is more than one port")
        if port.name in names:
            raise FieldError(f"{path}.name", f"duplicate name {port.name!r}")
        names.add(port.name)
    if port.name:
        _dns_label(port.name, f"{path}.name")
    _one_of(port.protocol, PROTOCOLS, f"{path}.protocol")
    _between(port.port, 1, 65535, f"{path}.port")
    if port.HasField("target_port"):
        _int_or_string_port(port.target_port, f"{path}.targetPort")
    if port.node_port:
        _between(port.node_port, *NODE_PORT_RANGE, f"{path}.nodePort")
        if spec.type != "NodePort":
            raise FieldError(f"{path}.nodePort", "may only be set when type is NodePort")


def _endpoints(endpoints: types_pb2.Endpoints) -> None:
    for i, subset in enumerate(endpoints.subsets):
        path = f"subsets[{i}]"
        for field, json_name in (("addresses", "addresses"),
                                 ("not_ready_addresses", "notReadyAddresses")):
            for j, address in enumerate(getattr(subset, field)):
                _ip(address.ip, f"{path}.{json_name}[{j}].ip")
        for j, port in enumerate(subset.ports):
            _between(port.port, 1, 65535, f"{path}.ports[{j}].port")
            _one_of(port.protocol, PROTOCOLS, f"{path}.ports[{j}].protocol")


# ---------------------------------------------------------------- workloads


def _template(spec: Any, claims: Iterable[str] = ()) -> None:
    """selector + template, shared by every workload kind (claims: see _pod_spec)."""
    # Imported here: selectors uses this module's label checks.
    from minik8s.selectors import LabelSelector

    _label_selector(spec.selector, "spec.selector")
    _labels_and_annotations(spec.template.metadata, "spec.template.metadata")
    if not LabelSelector.from_proto(spec.selector).matches(spec.template.metadata.labels):
        raise FieldError("spec.template.metadata.labels", "selector does not match template "
                                                          "labels")
    _pod_spec(spec.template.spec, "spec.template.spec", claims)
    if spec.template.spec.restart_policy not in ("", "Always"):
        raise FieldError("spec.template.spec.restartPolicy", "must be Always")


def _workload_counts(spec: Any) -> None:
    """The counts that must not be negative, where the kind has them."""
    fields = spec.DESCRIPTOR.fields_by_name
    for name in ("replicas", "min_ready_seconds", "revision_history_limit",
                 "progress_deadline_seconds"):
        if name in fields and (not fields[name].has_presence or spec.HasField(name)):
            _at_least(getattr(spec, name), 0, f"spec.{fields[name].json_name}")


def _rolling(rolling: Any, path: str) -> None:
    for field, json_name in (("max_unavailable", "maxUnavailable"), ("max_surge", "maxSurge")):
        if field in rolling.DESCRIPTOR.fields_by_name and rolling.HasField(field):
            _int_or_percent(getattr(rolling, field), f"{path}.{json_name}")


def _replica_set(rs: types_pb2.ReplicaSet) -> None:
    _workload_counts(rs.spec)
    _template(rs.spec)
    _conditions(rs.status.conditions, "status.conditions")


def _deployment(deployment: types_pb2.Deployment) -> None:
    spec = deployment.spec
    _workload_counts(spec)
    _template(spec)
    strategy = spec.strategy
    _one_of(strategy.type, DEPLOYMENT_STRATEGIES, "spec.strategy.type")
    if strategy.type == "Recreate" and strategy.HasField("rolling_update"):
        raise FieldError("spec.strategy.rollingUpdate",
                         "may not be specified when strategy type is Recreate")
    _rolling(strategy.rolling_update, "spec.strategy.rollingUpdate")
    rolling = strategy.rolling_update
    if _is_zero(rolling.max_surge) and _is_zero(rolling.max_unavailable):
        raise FieldError("spec.strategy.rollingUpdate.maxUnavailable",
                         "may not be 0 when maxSurge is 0")
    _conditions(deployment.status.conditions, "status.conditions")


def _is_zero(value: types_pb2.IntOrString) -> bool:
    """Set to 0 or "0%" (an unset value defaults to 25%); call after _int_or_percent."""
    which = value.WhichOneof("value")
    if which == "int_val":
        return value.int_val == 0
    return which == "str_val" and int(value.str_val.removesuffix("%")) == 0


def _daemon_set(ds: types_pb2.DaemonSet) -> None:
    _workload_counts(ds.spec)
    _template(ds.spec)
    _one_of(ds.spec.update_strategy.type, UPDATE_STRATEGIES, "spec.updateStrategy.type")
    _rolling(ds.spec.update_strategy.rolling_update, "spec.updateStrategy.rollingUpdate")
    _conditions(ds.status.conditions, "status.conditions")


def _stateful_set(sts: types_pb2.StatefulSet) -> None:
    spec = sts.spec
    if len(sts.metadata.name) > MAX_STATEFUL_SET_NAME:
        raise FieldError("metadata.name", f"must be no more than {MAX_STATEFUL_SET_NAME} "
                                          "characters (its pods' controller-revision-hash "
                                          "label is <name>-<hash>)")
    _workload_counts(spec)
    _required(spec.service_name, "spec.serviceName")
    _dns_label(spec.service_name, "spec.serviceName")
    _claim_templates(spec.volume_claim_templates, "spec.volumeClaimTemplates")
    _template(spec, [c.metadata.name for c in spec.volume_claim_templates])
    _one_of(spec.pod_management_policy, POD_MANAGEMENT_POLICIES, "spec.podManagementPolicy")
    _one_of(spec.update_strategy.type, UPDATE_STRATEGIES, "spec.updateStrategy.type")
    rolling = spec.update_strategy.rolling_update
    _optional_at_least(rolling, "partition", 0, "spec.updateStrategy.rollingUpdate.partition")
    _rolling(rolling, "spec.updateStrategy.rollingUpdate")
    _conditions(sts.status.conditions, "status.conditions")


def _claim_templates(claims: Iterable[types_pb2.PersistentVolumeClaim], path: str) -> None:
    names: set[str] = set()
    for i, claim in enumerate(claims):
        here = f"{path}[{i}]"
        name = claim.metadata.name
        _required(name, f"{here}.metadata.name")
        _dns_label(name, f"{here}.metadata.name")
        if name in names:
            raise FieldError(f"{here}.metadata.name", f"duplicate name {name!r}")
        names.add(name)
        _labels_and_annotations(claim.metadata, f"{here}.metadata")
        modes = claim.spec.access_modes
        if not modes:
            raise FieldError(f"{here}.spec.accessModes", "at least 1 access mode is required")
        for j, mode in enumerate(modes):
            _one_of(mode, ACCESS_MODES, f"{here}.spec.accessModes[{j}]")
        if "storage" not in claim.spec.resources.requests:
            raise FieldError(f"{here}.spec.resources.requests.storage", "required value")
        _resources(claim.spec.resources.requests, f"{here}.spec.resources.requests",
                   CLAIM_RESOURCE_NAMES)
        _resources(claim.spec.resources.limits, f"{here}.spec.resources.limits",
                   CLAIM_RESOURCE_NAMES)
        if claim.spec.storage_class_name:
            _dns_subdomain(claim.spec.storage_class_name, f"{here}.spec.storageClassName")


def _stateful_set_update(old: types_pb2.StatefulSetSpec, new: types_pb2.StatefulSetSpec) -> None:
    """Only the fields of _STATEFUL_SET_MUTABLE may change, as Kubernetes."""
    def rest(spec: types_pb2.StatefulSetSpec) -> types_pb2.StatefulSetSpec:
        copy = types_pb2.StatefulSetSpec()
        copy.CopyFrom(spec)
        for field in _STATEFUL_SET_MUTABLE:
            copy.ClearField(field)
        return copy
    if rest(old) != rest(new):
        raise FieldError("spec", "updates to statefulset spec for fields other than 'replicas', "
                                 "'template', 'updateStrategy', 'minReadySeconds' and "
                                 "'revisionHistoryLimit' are forbidden")


# ---------------------------------------------------------------- the rest

def _namespace(_: types_pb2.Namespace) -> None:
    """Only the name, checked with the metadata."""


def _node(node: types_pb2.Node) -> None:
    for i, taint in enumerate(node.spec.taints):
        path = f"spec.taints[{i}]"
        _required(taint.key, f"{path}.key")
        validate_label_key(taint.key, f"{path}.key")
        validate_label_value(taint.value, f"{path}.value")
        _required(taint.effect, f"{path}.effect")
        _one_of(taint.effect, TAINT_EFFECTS, f"{path}.effect")
    _resources(node.status.capacity, "status.capacity")
    _resources(node.status.allocatable, "status.allocatable")
    _conditions(node.status.conditions, "status.conditions")


def _lease(lease: types_pb2.Lease) -> None:
    _optional_at_least(lease.spec, "lease_duration_seconds", 1, "spec.leaseDurationSeconds")
    _at_least(lease.spec.lease_transitions, 0, "spec.leaseTransitions")


def _event(event: types_pb2.Event) -> None:
    _required(event.involved_object.name, "involvedObject.name")
    _at_least(event.count, 0, "count")
    _one_of(event.type, EVENT_TYPES, "type")


ROLE_KINDS = ("Role", "ClusterRole")
SUBJECT_KINDS = ("User", "Group")


def _rules(rules: Iterable[types_pb2.PolicyRule], path: str) -> None:
    for i, rule in enumerate(rules):
        if not rule.verbs:
            raise FieldError(f"{path}[{i}].verbs", "Required value: verbs must contain at least "
                                                   "one value")
        if not rule.resources:
            raise FieldError(f"{path}[{i}].resources", "Required value: resources must contain "
                                                       "at least one value")


def _role(role: types_pb2.Role | types_pb2.ClusterRole) -> None:
    _rules(role.rules, "rules")


def _binding(binding: types_pb2.RoleBinding | types_pb2.ClusterRoleBinding) -> None:
    ref = binding.role_ref
    _required(ref.name, "roleRef.name")
    _required(ref.kind, "roleRef.kind")
    allowed = ROLE_KINDS if binding.DESCRIPTOR.name == "RoleBinding" else ROLE_KINDS[1:]
    _one_of(ref.kind, allowed, "roleRef.kind")
    if ref.api_group and ref.api_group != kinds.RBAC_GROUP:
        raise FieldError("roleRef.apiGroup", f'Unsupported value: "{ref.api_group}": supported '
                                             f'values: "{kinds.RBAC_GROUP}"')
    for i, subject in enumerate(binding.subjects):
        _one_of(subject.kind, SUBJECT_KINDS, f"subjects[{i}].kind")
        _required(subject.name, f"subjects[{i}].name")


_BY_KIND = {
    "Namespace": _namespace,
    "Node": _node,
    "Pod": _pod,
    "Service": _service,
    "Endpoints": _endpoints,
    "ReplicaSet": _replica_set,
    "Deployment": _deployment,
    "DaemonSet": _daemon_set,
    "StatefulSet": _stateful_set,
    "Lease": _lease,
    "Event": _event,
    "Role": _role,
    "ClusterRole": _role,
    "RoleBinding": _binding,
    "ClusterRoleBinding": _binding,
}
