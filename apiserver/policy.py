"""The default RBAC policy, created by every apiserver at start (apiserver/bootstrap.py).

Like Kubernetes' bootstrap policy: a role per component, bound to the user
its certificate names, and the user-facing roles view, edit and admin (bind
them in a namespace with a RoleBinding). Existing objects are left alone, so
an administrator's changes survive restarts. system:masters needs no binding
(the authorizer lets it do anything); nodes are governed by the node
authorizer (apiserver/nodeauth.py).
"""
from __future__ import annotations

from apiserver.watchcache import WatchCache
from minik8s import kinds
from minik8s.api.v1 import types_pb2 as t

READ = ("get", "list", "watch")
WRITE = ("create", "update", "patch", "delete")
WORKLOADS = ("pods", "services", "endpoints", "replicasets", "deployments", "daemonsets",
             "statefulsets", "events", "leases")
# what `minictl logs/exec` asks the kubelet for, authorized by the apiserver
KUBELET_SUBRESOURCES = ("pods/log", "pods/exec")


def _rule(verbs: tuple[str, ...], resources: tuple[str, ...]) -> t.PolicyRule:
    return t.PolicyRule(verbs=verbs, resources=resources, api_groups=["*"])


def _role(name: str, *rules: t.PolicyRule) -> t.ClusterRole:
    return t.ClusterRole(metadata=t.ObjectMeta(name=name, labels=_BOOTSTRAP), rules=rules)


def _binding(name: str, role: str, kind: str, subject: str) -> t.ClusterRoleBinding:
    return t.ClusterRoleBinding(
        metadata=t.ObjectMeta(name=name, labels=_BOOTSTRAP),
        role_ref=t.RoleRef(api_group=kinds.RBAC_GROUP, kind="ClusterRole", name=role),
        subjects=[t.Subject(kind=kind, name=subject, api_group=kinds.RBAC_GROUP)])


_BOOTSTRAP = {"kubernetes.io/bootstrapping": "rbac-defaults"}
ALL_RESOURCES = ("*",)

CLUSTER_ROLES = (
    _role("cluster-admin", _rule(("*",), ALL_RESOURCES)),
    _role("view", _rule(READ, ALL_RESOURCES)),
    _role("edit", _rule(READ + WRITE, (*WORKLOADS, "pods/status", *KUBELET_SUBRESOURCES))),
    _role("admin", _rule(READ + WRITE, (*WORKLOADS, "pods/status", *KUBELET_SUBRESOURCES,
                                        "roles", "rolebindings"))),
    _role("system:kube-scheduler",
          _rule(READ, ("pods", "nodes", "namespaces", "services", "replicasets",
                       "statefulsets", "leases")),
          _rule(("create",), ("pods/binding", "events")),
          _rule(("update", "patch"), ("pods/status", "events")),
          _rule(("create", "update"), ("leases",))),
    # The controllers create, change and delete every kind (the garbage collector
    # and the namespace controller reach all of them), as Kubernetes' do together.
    _role("system:kube-controller-manager", _rule(("*",), ALL_RESOURCES)),
    _role("system:node-proxier", _rule(READ, ("services", "endpoints", "nodes")),
          _rule(("create", "update", "patch"), ("events",))),
    _role("system:kube-dns", _rule(READ, ("services", "endpoints", "pods", "namespaces")),
          _rule(("create", "update", "patch"), ("services", "endpoints", "events"))),
)

CLUSTER_ROLE_BINDINGS = (
    _binding("cluster-admin", "cluster-admin", "Group", "system:masters"),
    _binding("system:kube-scheduler", "system:kube-scheduler", "User", "system:kube-scheduler"),
    _binding("system:kube-controller-manager", "system:kube-controller-manager", "User",
             "system:kube-controller-manager"),
    _binding("system:node-proxier", "system:node-proxier", "User", "system:kube-proxy"),
    _binding("system:kube-dns", "system:kube-dns", "User", "system:kube-dns"),
    _binding("system:dashboard", "view", "User", "system:dashboard"),
)


DEFAULTS = (*CLUSTER_ROLES, *CLUSTER_ROLE_BINDINGS)


def in_place(cache: WatchCache) -> bool:
    """Whether this apiserver's caches hold every default role and binding (made by
    whichever replica came first)."""
    present = {(kind, o.metadata.name) for kind in ("ClusterRole", "ClusterRoleBinding")
               for o in cache[kind].objects.values()}
    return all((kinds.of(obj).name, obj.metadata.name) in present for obj in DEFAULTS)
