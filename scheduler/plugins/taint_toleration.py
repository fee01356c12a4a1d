"""TaintToleration: mirrors kube-scheduler's plugin of that name.

Filter: the pod must tolerate every NoSchedule and NoExecute taint of the
node. Score: the fewer PreferNoSchedule taints the pod does not tolerate,
the better.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from minik8s.api.v1 import types_pb2

from ..cache import NodeInfo, Taint
from ..framework import SKIP, SUCCESS, Code, Status, normalize_scores

Toleration = tuple[str, str, str, str]  # (key, operator, value, effect)


def tolerations_of(pod: types_pb2.Pod) -> tuple[Toleration, ...]:
    return tuple((t.key, t.operator, t.value, t.effect) for t in pod.spec.tolerations)


def tolerates(tolerations: Iterable[Toleration], taint: Taint) -> bool:
    """Kubernetes' ToleratesTaint, for any of the tolerations.

    An empty effect matches every effect and an empty key every key (with
    Exists: the toleration of everything); an empty operator means Equal.
    """
    key, value, effect = taint
    for t_key, operator, t_value, t_effect in tolerations:
        if (t_effect and t_effect != effect) or (t_key and t_key != key):
            continue
        if operator == "Exists" or (operator in ("", "Equal") and t_value == value):
            return True
    return False


class TaintToleration:
    name = "TaintToleration"

    def __init__(self, weight: int = 3) -> None:
        self.weight = weight

    def pre_filter(self, pod: types_pb2.Pod) -> tuple[Toleration, ...]:
        return tolerations_of(pod)

    def filter(self, pod: types_pb2.Pod, node_info: NodeInfo,
               tolerations: tuple[Toleration, ...]) -> Status:
        for taint in node_info.taints:  # NoSchedule and NoExecute only
            if not tolerates(tolerations, taint):
                return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
                              (f"node(s) had untolerated taint {{{taint[0]}: {taint[1]}}}",))
        return SUCCESS

    def pre_score(self, pod: types_pb2.Pod, node_infos: Sequence[NodeInfo]) -> Any:
        if not any(info.prefer_no_schedule_taints for info in node_infos):
            return SKIP  # every node would score the same: no bearing on the choice
        tolerations = [t for t in tolerations_of(pod) if t[3] in ("", "PreferNoSchedule")]
        intolerable = {info.name: sum(not tolerates(tolerations, taint)
                                      for taint in info.prefer_no_schedule_taints)
                       for info in node_infos}
        return normalize_scores(intolerable, reverse=True)

    def score(self, pod: types_pb2.Pod, node_info: NodeInfo, scores: dict[str, int]) -> int:
        return scores[node_info.name]
