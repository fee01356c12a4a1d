"""The authorization hook: what each API call does, and whether its caller may.

Every RPC is turned into Attributes (verb, resource, namespace, name) and
checked before the registry touches storage. system:masters may do anything;
a kubelet goes to the node authorizer first; then RBAC decides. A refusal is
PERMISSION_DENIED naming the user, the verb and the resource.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from apiserver import policy
from apiserver.authn import User
from apiserver.nodeauth import NodeAuthorizer, node_name
from apiserver.rbac import Attributes, RbacAuthorizer
from apiserver.watchcache import WatchCache
from minik8s import errors, kinds
from minik8s.api.v1 import apiserver_pb2 as api


def _kind(name: str) -> kinds.Kind:
    try:
        return kinds.by_name(name)
    except kinds.UnknownKind as exc:
        raise errors.Invalid(f"kind: {exc}") from None


def _scope(kind: kinds.Kind, namespace: str) -> str:
    return (namespace or "default") if kind.namespaced else ""


def _of_object(user: User, verb: str, wrapped: api.Object, subresource: str = "") -> Attributes:
    kind = kinds.kind_of_wrapped(wrapped)
    if kind is None:
        raise errors.Invalid("object: must hold an object of a known kind")
    meta = kinds.unwrap(wrapped).metadata
    return Attributes(user, verb, kind.plural + subresource, _scope(kind, meta.namespace),
                      meta.name, resource_version=meta.resource_version)


def _of_name(user: User, verb: str, request: Any) -> Attributes:
    kind = _kind(request.kind)
    return Attributes(user, verb, kind.plural, _scope(kind, request.namespace), request.name,
                      resource_version=getattr(request, "resource_version", ""))


def _of_collection(user: User, verb: str, request: Any) -> Attributes:
    kind = _kind(request.kind)
    return Attributes(user, verb, kind.plural, request.namespace if kind.namespaced else "",
                      field_selector=request.field_selector)


def attributes(user: User, verb: str, request: Any) -> Attributes:
    """What one call does (Apply is checked per object: apply_attributes)."""
    if verb == "create":
        return _of_object(user, "create", request.object)
    if verb == "update":
        return _of_object(user, "update", request.object)
    if verb == "update_status":
        return _of_object(user, "update", request.object, "/status")
    if verb in ("get", "delete"):
        return _of_name(user, verb, request)
    if verb in ("list", "watch"):
        return _of_collection(user, verb, request)
    if verb == "bind":
        return Attributes(user, "create", "pods/binding", request.namespace or "default",
                          request.name)
    if verb == "etcd_status":
        return Attributes(user, "get", "componentstatuses")
    raise errors.Invalid(f"no authorization rule for {verb}")


def apply_attributes(user: User, objects: Iterable[Any], create_only: bool) -> list[Attributes]:
    """Apply creates or changes each object: create, else patch, as kubectl apply."""
    verb = "create" if create_only else "patch"
    return [_of_object(user, verb, kinds.wrap(o)) for o in objects]


class Authorizer:
    def __init__(self, cache: WatchCache) -> None:
        self.cache = cache
        self.rbac = RbacAuthorizer(cache)
        self.nodes = NodeAuthorizer(cache)
        self._policy_seen = False

    async def allows(self, attrs: Attributes) -> bool:
        if attrs.user.is_master:
            return True
        node = node_name(attrs.user)
        if node is not None and await self.nodes.allows(node, attrs):
            return True
        return self.rbac.allows(attrs)

    async def check(self, attrs: Attributes) -> None:
        """errors.Forbidden unless attrs is allowed.

        Until the default policy is in this apiserver's caches (a new cluster's
        first seconds), a denial may be false: the component's role is not there
        yet. It is answered UNAVAILABLE then, which clients retry, not Forbidden.
        """
        if await self.allows(attrs):
            return
        self._policy_seen = self._policy_seen or (self.cache.synced()
                                                  and policy.in_place(self.cache))
        if not self._policy_seen:
            raise errors.Unavailable("authorization is starting: the default roles are not "
                                     "in place yet; try again")
        raise errors.Forbidden(attrs.denial())
