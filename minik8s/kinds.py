"""The registry of API kinds: names, storage paths and message classes.

Everything that needs to map between a kind name ("Deployment"), its plural
("deployments"), its short names ("deploy"), its apiVersion and its protobuf
message goes through this table.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from google.protobuf.message import Message

from minik8s.api.v1 import apiserver_pb2, types_pb2


@dataclass(frozen=True)
class Kind:
    name: str                 # "Deployment"
    plural: str               # "deployments"
    api_version: str          # "apps/v1"
    namespaced: bool
    message: type[Message]    # types_pb2.Deployment
    oneof: str                # field of apiserver_pb2.Object: "deployment"
    short_names: tuple[str, ...] = field(default=())
    has_status: bool = True

    def new(self) -> Message:
        return self.message()


RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC = f"{RBAC_GROUP}/v1"

KINDS: tuple[Kind, ...] = (
    Kind("Namespace", "namespaces", "v1", False, types_pb2.Namespace, "namespace", ("ns",)),
    Kind("Node", "nodes", "v1", False, types_pb2.Node, "node", ("no",)),
    Kind("Pod", "pods", "v1", True, types_pb2.Pod, "pod", ("po",)),
    Kind("Service", "services", "v1", True, types_pb2.Service, "service", ("svc",)),
    Kind("Endpoints", "endpoints", "v1", True, types_pb2.Endpoints, "endpoints", ("ep",),
         has_status=False),
    Kind("ReplicaSet", "replicasets", "apps/v1", True, types_pb2.ReplicaSet, "replica_set",
         ("rs",)),
    Kind("Deployment", "deployments", "apps/v1", True, types_pb2.Deployment, "deployment",
         ("deploy",)),
    Kind("DaemonSet", "daemonsets", "apps/v1", True, types_pb2.DaemonSet, "daemon_set",
         ("ds",)),
    Kind("StatefulSet", "statefulsets", "apps/v1", True, types_pb2.StatefulSet, "stateful_set",
         ("sts",)),
    Kind("Lease", "leases", "coordination.k8s.io/v1", True, types_pb2.Lease, "lease",
         has_status=False),
    Kind("Event", "events", "v1", True, types_pb2.Event, "event", ("ev",), has_status=False),
    Kind("Role", "roles", RBAC, True, types_pb2.Role, "role", has_status=False),
    Kind("ClusterRole", "clusterroles", RBAC, False, types_pb2.ClusterRole, "cluster_role",
         has_status=False),
    Kind("RoleBinding", "rolebindings", RBAC, True, types_pb2.RoleBinding, "role_binding",
         has_status=False),
    Kind("ClusterRoleBinding", "clusterrolebindings", RBAC, False, types_pb2.ClusterRoleBinding,
         "cluster_role_binding", has_status=False),
)

_BY_NAME = {k.name: k for k in KINDS}
_BY_ONEOF = {k.oneof: k for k in KINDS}
_BY_MESSAGE = {k.message.DESCRIPTOR.full_name: k for k in KINDS}
_ALIASES: dict[str, Kind] = {}
for _k in KINDS:
    for _alias in (_k.name, _k.plural, _k.name.lower(), *_k.short_names):
        _ALIASES[_alias.lower()] = _k


class UnknownKind(KeyError):
    def __str__(self) -> str:
        return f"unknown kind {self.args[0]!r}"


def by_name(name: str) -> Kind:
    """The kind called exactly `name` ("Pod"), as in manifests and requests."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UnknownKind(name) from None


def lookup(alias: str) -> Kind:
    """The kind for a CLI word: name, plural or short name, any case."""
    try:
        return _ALIASES[alias.lower()]
    except KeyError:
        raise UnknownKind(alias) from None


def of(obj: Message) -> Kind:
    """The kind of a typed object (types_pb2.Pod() -> Pod)."""
    return _BY_MESSAGE[obj.DESCRIPTOR.full_name]


def wrap(obj: Message) -> apiserver_pb2.Object:
    """Put a typed object into the Object oneof used on the wire."""
    wrapped = apiserver_pb2.Object()
    getattr(wrapped, of(obj).oneof).CopyFrom(obj)
    return wrapped


def unwrap(wrapped: apiserver_pb2.Object) -> Message:
    """The typed object inside an Object oneof."""
    which = wrapped.WhichOneof("kind")
    if which is None:
        raise ValueError("object has no kind")
    return getattr(wrapped, which)


def kind_of_wrapped(wrapped: apiserver_pb2.Object) -> Kind | None:
    which = wrapped.WhichOneof("kind")
    return _BY_ONEOF.get(which) if which else None


def key(kind: Kind, namespace: str, name: str) -> str:
    """The etcd key: /registry/<plural>/<namespace>/<name>."""
    if kind.namespaced:
        return f"/registry/{kind.plural}/{namespace}/{name}"
    return f"/registry/{kind.plural}/{name}"


def prefix(kind: Kind, namespace: str = "") -> str:
    """The etcd key prefix of all objects of a kind (in one namespace)."""
    if kind.namespaced and namespace:
        return f"/registry/{kind.plural}/{namespace}/"
    return f"/registry/{kind.plural}/"


def object_key(obj: Message) -> str:
    """namespace/name (or name for cluster-scoped kinds), as informers key objects."""
    meta = obj.metadata
    return f"{meta.namespace}/{meta.name}" if meta.namespace else meta.name
