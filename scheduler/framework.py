"""The scheduling framework: filter plugins, then score plugins, as in kube-scheduler.

One scheduling attempt for a pod:

1. every filter plugin's pre_filter(pod) computes what it needs from the pod
   once (requests, tolerations, parsed affinity), or returns SKIP when it has
   nothing to check (a pod without host ports never conflicts);
2. nodes are visited round-robin from where the previous attempt stopped,
   and the first filter to reject a node gives its Status for that node; the
   search stops once enough feasible nodes are found (percentage of nodes to
   score: adaptive by default, as Kubernetes);
3. every score plugin's pre_score(pod, feasible) prepares its state (or
   SKIPs), score() rates each feasible node 0..100, and the weighted sum
   ranks them; ties are broken at random.

Plugins receive live NodeInfos from the cache; the framework is synchronous,
so nothing changes under them during an attempt.
"""
from __future__ import annotations

import enum
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from minik8s.api.v1 import types_pb2

from .cache import NodeInfo

MAX_NODE_SCORE = 100
MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND = 5
NO_NODES_MESSAGE = "no nodes available to schedule pods"


class Code(enum.Enum):
    SUCCESS = "Success"
    UNSCHEDULABLE = "Unschedulable"  # might fit after other pods go (preemption could help)
    UNSCHEDULABLE_AND_UNRESOLVABLE = "UnschedulableAndUnresolvable"  # the node itself does not fit
    ERROR = "Error"  # the attempt failed, not the pod: retry after a backoff


@dataclass(frozen=True, slots=True)
class Status:
    code: Code
    reasons: tuple[str, ...] = ()


SUCCESS = Status(Code.SUCCESS)


class _Skip:
    def __repr__(self) -> str:
        return "SKIP"


SKIP: Any = _Skip()
"""Returned by pre_filter/pre_score: the plugin has nothing to do for this pod."""


class FilterPlugin(Protocol):
    name: str

    def pre_filter(self, pod: types_pb2.Pod) -> Any:
        """Per-pod state for filter(), computed once per attempt; or SKIP."""

    def filter(self, pod: types_pb2.Pod, node_info: NodeInfo, state: Any) -> Status:
        """SUCCESS if the pod may run on the node, else why not."""


class ScorePlugin(Protocol):
    name: str
    weight: int

    def pre_score(self, pod: types_pb2.Pod, node_infos: Sequence[NodeInfo]) -> Any:
        """State for score(), computed once per attempt over the feasible nodes; or SKIP."""

    def score(self, pod: types_pb2.Pod, node_info: NodeInfo, state: Any) -> int:
        """How good the node is for the pod, 0..100."""


class FrameworkError(Exception):
    """A plugin failed (Code.ERROR, or a score out of range): the attempt is void."""


@dataclass(frozen=True)
class ScheduleResult:
    node_name: str | None  # None: no node fits; see diagnosis
    evaluated: int  # nodes filtered
    feasible: int  # nodes that passed every filter
    diagnosis: dict[str, Status]  # node name -> why it was rejected


def normalize_scores(raw: Mapping[str, int], reverse: bool = False) -> dict[str, int]:
    """Scale raw scores so the highest is 100 (reverse: so the lowest is 100).

    Kubernetes' DefaultNormalizeScore: all zero stays zero, or all 100 if reversed.
    """
    highest = max(raw.values(), default=0)
    if highest == 0:
        return dict.fromkeys(raw, MAX_NODE_SCORE if reverse else 0)
    if reverse:
        return {name: MAX_NODE_SCORE - MAX_NODE_SCORE * n // highest for name, n in raw.items()}
    return {name: MAX_NODE_SCORE * n // highest for name, n in raw.items()}


def failure_message(total_nodes: int, diagnosis: Mapping[str, Status]) -> str:
    """Kubernetes' FailedScheduling text, e.g.
    "0/5 nodes are available: 2 node(s) had untolerated taint {dedicated: gpu}, 3 Insufficient cpu."

    Each reason is counted over the nodes; the "count reason" strings are sorted
    as strings, exactly as kube-scheduler sorts them.
    """
    if total_nodes == 0:
        return NO_NODES_MESSAGE
    counts = Counter(reason for status in diagnosis.values() for reason in status.reasons)
    histogram = ", ".join(sorted(f"{n} {reason}" for reason, n in counts.items()))
    message = f"0/{total_nodes} nodes are available:"
    return f"{message} {histogram}." if histogram else message


class Framework:
    def __init__(self, filters: Sequence[FilterPlugin], scores: Sequence[ScorePlugin],
                 percentage_of_nodes_to_score: int = 0, rng: random.Random | None = None) -> None:
        self.filters = tuple(filters)
        self.scores = tuple(scores)
        self.percentage_of_nodes_to_score = percentage_of_nodes_to_score
        self._rng = rng or random.Random()
        self._next_start = 0  # round-robin: where the next search begins

    def num_feasible_nodes_to_find(self, total: int) -> int:
        """How many feasible nodes are enough: all of a small cluster, a share of a big one.

        0 (the default) means adaptive: 50% minus 1% per 125 nodes, at least 5%;
        and never fewer than 100 nodes.
        """
        if total < MIN_FEASIBLE_NODES_TO_FIND or self.percentage_of_nodes_to_score >= 100:
            return total
        percentage = self.percentage_of_nodes_to_score
        if percentage <= 0:
            percentage = max(50 - total // 125, MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND)
        return max(total * percentage // 100, MIN_FEASIBLE_NODES_TO_FIND)

    def find_nodes(self, pod: types_pb2.Pod, node_infos: Sequence[NodeInfo],
                   ) -> tuple[list[NodeInfo], dict[str, Status]]:
        """The feasible nodes found, and the rejected ones with the first failing Status."""
        checks = [(p.name, p.filter, state) for p in self.filters
                  if (state := p.pre_filter(pod)) is not SKIP]
        total = len(node_infos)
        if total == 0:
            return [], {}
        wanted = self.num_feasible_nodes_to_find(total)
        start = self._next_start % total
        feasible: list[NodeInfo] = []
        diagnosis: dict[str, Status] = {}
        for i in range(total):
            info = node_infos[(start + i) % total]
            for name, check, state in checks:
                status = check(pod, info, state)
                if status.code is not Code.SUCCESS:
                    if status.code is Code.ERROR:
                        raise FrameworkError(f"filter {name} on node {info.name}: "
                                             f"{'; '.join(status.reasons)}")
                    diagnosis[info.name] = status
                    break
            else:
                feasible.append(info)
                if len(feasible) >= wanted:
                    break
        self._next_start = (start + len(feasible) + len(diagnosis)) % total
        return feasible, diagnosis

    def score(self, pod: types_pb2.Pod, feasible: Sequence[NodeInfo]) -> list[tuple[str, int]]:
        """Each feasible node with the weighted sum of its plugin scores."""
        totals = [0] * len(feasible)
        for plugin in self.scores:
            state = plugin.pre_score(pod, feasible)
            if state is SKIP:
                continue
            score, weight = plugin.score, plugin.weight
            scores = [score(pod, info, state) for info in feasible]
            if scores and not 0 <= min(scores) <= max(scores) <= MAX_NODE_SCORE:
                raise FrameworkError(f"score plugin {plugin.name} returned a score "
                                     f"outside 0..{MAX_NODE_SCORE}")
            totals = [t + weight * s for t, s in zip(totals, scores, strict=True)]
        return [(info.name, t) for info, t in zip(feasible, totals, strict=True)]

    def select_host(self, scored: Sequence[tuple[str, int]]) -> str:
        """The node with the highest total; a random one of them if several tie."""
        best = max(total for _, total in scored)
        return self._rng.choice([name for name, total in scored if total == best])

    def schedule(self, pod: types_pb2.Pod, node_infos: Sequence[NodeInfo]) -> ScheduleResult:
        feasible, diagnosis = self.find_nodes(pod, node_infos)
        evaluated = len(feasible) + len(diagnosis)
        if len(feasible) <= 1:  # nothing to rank
            node = feasible[0].name if feasible else None
            return ScheduleResult(node, evaluated, len(feasible), diagnosis)
        node = self.select_host(self.score(pod, feasible))
        return ScheduleResult(node, evaluated, len(feasible), diagnosis)
