"""The node authorizer: what a kubelet (`system:node:<name>` in `system:nodes`)
may do, decided from what the API says is bound to its node.

It may read nodes, services and endpoints; list and watch pods only with the
field selector spec.nodeName=<its node>, and get a pod bound to it; create
and update events; register and update its own Node (and its status); get,
create and update its own Lease in kube-node-lease; update the status of,
and delete, pods bound to it; ask whether another user may do something
(the callers of its own API: create subjectaccessreviews). Nothing else (RBAC may still grant more: the
default policy grants nodes nothing). Which node a pod is bound to comes from
the watch cache, first brought up to the revision the request names, so a
kubelet can never act on a pod by claiming it in the request.
"""
from __future__ import annotations

from apiserver.authn import NODE_PREFIX, NODES, User
from apiserver.rbac import REVIEWS, Attributes
from apiserver.watchcache import WatchCache
from minik8s import errors, selectors

LEASE_NAMESPACE = "kube-node-lease"
READ = ("get", "list", "watch")
READABLE = ("nodes", "services", "endpoints", "namespaces")
CACHE_WAIT = 5.0


def node_name(user: User) -> str | None:
    """The node a kubelet's identity names, or None for any other user."""
    if NODES in user.groups and user.name.startswith(NODE_PREFIX):
        return user.name[len(NODE_PREFIX):] or None
    return None


class NodeAuthorizer:
    def __init__(self, cache: WatchCache) -> None:
        self.cache = cache

    async def allows(self, node: str, attrs: Attributes) -> bool:
        resource, verb = attrs.resource, attrs.verb
        if resource in READABLE and verb in READ:
            return True
        if resource == REVIEWS:
            return verb == "create"
        if resource == "events":
            return verb in ("create", "update", "patch", "get")
        if resource in ("nodes", "nodes/status"):
            return attrs.name == node and verb in ("create", "get", "update", "patch")
        if resource == "leases":
            return (attrs.namespace == LEASE_NAMESPACE and attrs.name == node
                    and verb in ("get", "create", "update"))
        if resource == "pods" and verb in ("list", "watch"):
            return _selects_node(attrs.field_selector, node)
        if (resource, verb) in (("pods", "get"), ("pods/status", "update"), ("pods", "delete")):
            return await self._pod_node(attrs) == node
        return False

    async def _pod_node(self, attrs: Attributes) -> str:
        """The node the pod is bound to, as of the revision the request saw (if it says)."""
        pods = self.cache["Pod"]
        if attrs.resource_version.isdigit():
            try:
                await pods.wait_for(int(attrs.resource_version), CACHE_WAIT)
            except (errors.ApiError, TimeoutError):
                return ""
        pod = pods.objects.get(f"/registry/pods/{attrs.namespace}/{attrs.name}")
        return pod.spec.node_name if pod is not None else ""


def _selects_node(field_selector: str, node: str) -> bool:
    try:
        fields = selectors.FieldSelector.parse(field_selector)
    except ValueError:
        return False
    return any(r.path == "spec.nodeName" and r.operator == "=" and r.value == node
               for r in fields.requirements)
