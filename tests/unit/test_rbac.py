"""RBAC rules and the authorizer's decisions over a cache of RBAC objects."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from google.protobuf.message import Message

from apiserver import policy
from apiserver.authn import User
from apiserver.authz import Authorizer
from apiserver.rbac import Attributes, RbacAuthorizer, rule_allows
from minik8s import errors, kinds
from minik8s.api.v1 import types_pb2 as t

ALICE = User("alice", ("team", "system:authenticated"))


@dataclass
class FakeKindCache:
    objects: dict[str, Message] = field(default_factory=dict)
    ring: list = field(default_factory=list)


class FakeCache(dict):
    def add(self, obj: Message) -> None:
        kind = kinds.of(obj)
        self[kind.name].objects[kinds.key(kind, obj.metadata.namespace, obj.metadata.name)] = obj
        self[kind.name].objects = dict(self[kind.name].objects)  # a new state


def _cache(*objs: Message) -> FakeCache:
    cache = FakeCache({k: FakeKindCache() for k in
                       ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")})
    for obj in objs:
        cache.add(obj)
    return cache


def _attrs(verb: str, resource: str, namespace: str = "", name: str = "",
           user: User = ALICE) -> Attributes:
    return Attributes(user, verb, resource, namespace, name)


def test_rule_wildcards_and_subresources() -> None:
    rule = t.PolicyRule(verbs=["get", "list"], resources=["pods", "deployments/*"])
    assert rule_allows(rule, _attrs("get", "pods"))
    assert not rule_allows(rule, _attrs("get", "pods/status"))
    assert rule_allows(rule, _attrs("list", "deployments/scale"))
    assert not rule_allows(rule, _attrs("delete", "pods"))
    star = t.PolicyRule(verbs=["*"], resources=["*"])
    assert rule_allows(star, _attrs("delete", "pods/status"))
    named = t.PolicyRule(verbs=["get"], resources=["leases"], resource_names=["mine"])
    assert rule_allows(named, _attrs("get", "leases", name="mine"))
    assert not rule_allows(named, _attrs("get", "leases", name="theirs"))


def test_role_binding_grants_in_its_namespace_only() -> None:
    role = t.Role(metadata=t.ObjectMeta(name="writer", namespace="a"),
                  rules=[t.PolicyRule(verbs=["create"], resources=["pods"])])
    binding = t.RoleBinding(metadata=t.ObjectMeta(name="b", namespace="a"),
                            subjects=[t.Subject(kind="User", name="alice")],
                            role_ref=t.RoleRef(kind="Role", name="writer"))
    authz = RbacAuthorizer(_cache(role, binding))
    assert authz.allows(_attrs("create", "pods", "a"))
    assert not authz.allows(_attrs("create", "pods", "b"))
    assert not authz.allows(_attrs("create", "pods"))
    assert not authz.allows(_attrs("create", "pods", "a", user=User("bob")))


def test_cluster_roles_by_group_and_by_role_binding() -> None:
    view = t.ClusterRole(metadata=t.ObjectMeta(name="view"),
                         rules=[t.PolicyRule(verbs=["get", "list"], resources=["*"])])
    everywhere = t.ClusterRoleBinding(metadata=t.ObjectMeta(name="team-view"),
                                      subjects=[t.Subject(kind="Group", name="team")],
                                      role_ref=t.RoleRef(kind="ClusterRole", name="view"))
    cache = _cache(view)
    authz = RbacAuthorizer(cache)
    assert not authz.allows(_attrs("list", "nodes"))
    cache.add(everywhere)  # a change is seen at the next decision
    assert authz.allows(_attrs("list", "nodes"))
    assert authz.allows(_attrs("get", "pods", "x"))
    assert not authz.allows(_attrs("delete", "pods", "x"))


def test_denial_names_user_verb_resource_and_namespace() -> None:
    assert _attrs("list", "pods", "b").denial() == (
        'pods is forbidden: User "alice" cannot list resource "pods" in the namespace "b"')
    assert _attrs("update", "pods/status", "b", "p").denial() == (
        'pods "p" is forbidden: User "alice" cannot update resource "pods" subresource '
        '"status" in the namespace "b"')
    assert _attrs("list", "nodes").denial().endswith("at the cluster scope")


async def test_a_denial_before_the_default_policy_is_in_place_asks_to_retry() -> None:
    cache = _cache()
    cache.synced = lambda: True  # type: ignore[attr-defined]
    authz = Authorizer(cache)  # type: ignore[arg-type]
    with pytest.raises(errors.Unavailable, match="default roles are not in place"):
        await authz.check(_attrs("list", "pods", "b"))
    for obj in policy.DEFAULTS:
        cache.add(obj)
    with pytest.raises(errors.Forbidden, match='User "alice" cannot list'):
        await authz.check(_attrs("list", "pods", "b"))
    for kind in ("ClusterRole", "ClusterRoleBinding"):  # an administrator removing defaults
        cache[kind].objects = {}
    with pytest.raises(errors.Forbidden):  # does not make denials retryable again
        await authz.check(_attrs("list", "pods", "b"))
