"""NodeAffinity: mirrors kube-scheduler's plugin of that name.

Filter: the node's labels must match the pod's nodeSelector (every label) and
its required node affinity: one of the nodeSelectorTerms must match, a term
matching when all its matchExpressions (on labels) and matchFields (on
metadata.name) do. A term with no requirements matches no node.

Score: the summed weights of the preferred terms a node matches, scaled so
the best node gets 100.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from minik8s.api.v1 import types_pb2

from ..cache import NodeInfo
from ..framework import SKIP, SUCCESS, Code, Status, normalize_scores

_MISMATCH = Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
                   ("node(s) didn't match Pod's node affinity/selector",))
_INTEGER = re.compile(r"[+-]?[0-9]+")

# A requirement compiled once per attempt into a test of a node's labels (or
# fields); a term is (tests on labels, tests on fields).
Requirement = Callable[[Mapping[str, str]], bool]
Term = tuple[tuple[Requirement, ...], tuple[Requirement, ...]]


def _integer(text: str | None) -> int | None:
    return int(text) if text is not None and _INTEGER.fullmatch(text) else None


def _compile(requirement: types_pb2.NodeSelectorRequirement) -> Requirement:
    key, operator, values = requirement.key, requirement.operator, frozenset(requirement.values)
    if operator == "In":
        return lambda labels: labels.get(key) in values
    if operator == "NotIn":
        return lambda labels: labels.get(key) not in values
    if operator == "Exists":
        return lambda labels: key in labels
    if operator == "DoesNotExist":
        return lambda labels: key not in labels
    bound = _integer(requirement.values[0]) if len(requirement.values) == 1 else None
    if bound is not None and operator in ("Gt", "Lt"):
        greater = operator == "Gt"
        return lambda labels: ((value := _integer(labels.get(key))) is not None
                               and (value > bound if greater else value < bound))
    return lambda labels: False  # an invalid requirement matches nothing, as in Kubernetes


def compile_term(term: types_pb2.NodeSelectorTerm) -> Term:
    return (tuple(_compile(r) for r in term.match_expressions),
            tuple(_compile(r) for r in term.match_fields))


def term_matches(term: Term, info: NodeInfo) -> bool:
    on_labels, on_fields = term
    if not on_labels and not on_fields:
        return False
    labels = info.labels
    for matches in on_labels:
        if not matches(labels):
            return False
    if on_fields:
        fields = {"metadata.name": info.name}
        for matches in on_fields:
            if not matches(fields):
                return False
    return True


def _node_affinity(pod: types_pb2.Pod) -> types_pb2.NodeAffinity | None:
    spec = pod.spec
    if spec.HasField("affinity") and spec.affinity.HasField("node_affinity"):
        return spec.affinity.node_affinity
    return None


def _required_terms(pod: types_pb2.Pod) -> tuple[Term, ...] | None:
    affinity = _node_affinity(pod)
    if affinity is None or not affinity.HasField(
            "required_during_scheduling_ignored_during_execution"):
        return None
    required = affinity.required_during_scheduling_ignored_during_execution
    return tuple(compile_term(t) for t in required.node_selector_terms)


def _preferred_terms(pod: types_pb2.Pod) -> list[tuple[int, Term]]:
    affinity = _node_affinity(pod)
    if affinity is None:
        return []
    return [(p.weight, compile_term(p.preference))
            for p in affinity.preferred_during_scheduling_ignored_during_execution if p.weight]


class NodeAffinity:
    name = "NodeAffinity"

    def __init__(self, weight: int = 2) -> None:
        self.weight = weight

    def pre_filter(self, pod: types_pb2.Pod) -> object:
        """(nodeSelector items, required terms or None), or SKIP if the pod has neither."""
        selector = tuple(pod.spec.node_selector.items())
        terms = _required_terms(pod)
        return SKIP if not selector and terms is None else (selector, terms)

    def filter(self, pod: types_pb2.Pod, node_info: NodeInfo,
               state: tuple[tuple[tuple[str, str], ...], tuple[Term, ...] | None]) -> Status:
        selector, terms = state
        labels = node_info.labels
        for key, value in selector:
            if labels.get(key) != value:
                return _MISMATCH
        if terms is None:
            return SUCCESS
        for term in terms:
            if term_matches(term, node_info):
                return SUCCESS
        return _MISMATCH

    def pre_score(self, pod: types_pb2.Pod, node_infos: Sequence[NodeInfo]) -> object:
        preferred = _preferred_terms(pod)
        if not preferred:
            return SKIP
        raw = {info.name: sum(weight for weight, term in preferred if term_matches(term, info))
               for info in node_infos}
        return normalize_scores(raw)

    def score(self, pod: types_pb2.Pod, node_info: NodeInfo, scores: dict[str, int]) -> int:
        return scores[node_info.name]
