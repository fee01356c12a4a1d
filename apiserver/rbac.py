"""Role-based access control over the apiserver's own watch caches.

A request is allowed when some rule of a role bound to the user (or one of
its groups) names its verb and its resource ("*" matches any), in the
request's namespace (a Role, or a ClusterRole through a RoleBinding) or
anywhere (a ClusterRole through a ClusterRoleBinding). Bindings are indexed
by subject, and the index is rebuilt only when an RBAC object changes, so a
decision costs a few dictionary lookups; decisions are memoised between changes.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from apiserver.authn import User
from apiserver.watchcache import WatchCache
from minik8s.api.v1 import types_pb2 as t

RBAC_KINDS = ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")
_MEMO_LIMIT = 50_000
# Asking whether another user may do something (AccessReview with a user) is
# creating one of these, as in Kubernetes; kubelets do it for their API's callers.
REVIEWS = "subjectaccessreviews"


@dataclass(frozen=True)
class Attributes:
    """One thing a request does: verb on resource (plural[/subresource]) in namespace."""

    user: User
    verb: str
    resource: str
    namespace: str = ""
    name: str = ""
    field_selector: str = ""
    resource_version: str = ""

    def denial(self) -> str:
        """Kubernetes' wording of a refusal (without the API group)."""
        plural, _, sub = self.resource.partition("/")
        what = f'resource "{plural}"' + (f' subresource "{sub}"' if sub else "")
        where = f' in the namespace "{self.namespace}"' if self.namespace else \
            " at the cluster scope"
        named = f'{plural} "{self.name}"' if self.name else plural
        return f'{named} is forbidden: User "{self.user.name}" cannot {self.verb} {what}{where}'


def _matches(values: Iterable[str], wanted: str) -> bool:
    return any(v == "*" or v == wanted for v in values)


def rule_allows(rule: t.PolicyRule, attrs: Attributes) -> bool:
    plural = attrs.resource.partition("/")[0]
    resource_ok = any(r in ("*", attrs.resource) or r == f"{plural}/*" for r in rule.resources)
    return (resource_ok and _matches(rule.verbs, attrs.verb)
            and (not rule.resource_names or attrs.name in rule.resource_names))


def _subject_keys(user: User) -> list[tuple[str, str]]:
    return [("User", user.name), *(("Group", g) for g in user.groups)]


class RbacAuthorizer:
    def __init__(self, cache: WatchCache) -> None:
        self.cache = cache
        self._version: tuple = ()
        self._cluster: dict[tuple[str, str], list[str]] = {}
        self._namespaced: dict[tuple[str, str, str], list[tuple[str, str]]] = {}
        self._memo: dict[tuple, bool] = {}

    def _state(self) -> tuple:
        """Changes whenever an RBAC object does (a new event or a relisted cache)."""
        caches = [self.cache[k] for k in RBAC_KINDS]
        return tuple((id(c.objects), c.ring[-1].revision if c.ring else 0) for c in caches)

    def _refresh(self) -> None:
        state = self._state()
        if state == self._version:
            return
        cluster: dict[tuple[str, str], list[str]] = defaultdict(list)
        for crb in self.cache["ClusterRoleBinding"].objects.values():
            for s in crb.subjects:
                cluster[(s.kind, s.name)].append(crb.role_ref.name)
        namespaced: dict[tuple[str, str, str], list[tuple[str, str]]] = defaultdict(list)
        for rb in self.cache["RoleBinding"].objects.values():
            for s in rb.subjects:
                namespaced[(rb.metadata.namespace, s.kind, s.name)].append(
                    (rb.role_ref.kind, rb.role_ref.name))
        self._cluster, self._namespaced = dict(cluster), dict(namespaced)
        self._memo.clear()
        self._version = state

    def _rules(self, kind: str, namespace: str, name: str) -> Iterable[t.PolicyRule]:
        key = f"/registry/{'roles/' + namespace if kind == 'Role' else 'clusterroles'}/{name}"
        role = self.cache[kind].objects.get(key)
        return role.rules if role is not None else ()

    def allows(self, attrs: Attributes) -> bool:
        self._refresh()
        memo_key = (attrs.user, attrs.verb, attrs.resource, attrs.namespace, attrs.name)
        decision = self._memo.get(memo_key)
        if decision is None:
            decision = self._decide(attrs)
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            self._memo[memo_key] = decision
        return decision

    def _decide(self, attrs: Attributes) -> bool:
        for subject in _subject_keys(attrs.user):
            for role in self._cluster.get(subject, ()):
                if any(rule_allows(r, attrs) for r in self._rules("ClusterRole", "", role)):
                    return True
            if not attrs.namespace:
                continue
            for kind, role in self._namespaced.get((attrs.namespace, *subject), ()):
                if any(rule_allows(r, attrs) for r in self._rules(kind, attrs.namespace, role)):
                    return True
        return False
