"""SelectorSpread: mirrors kube-scheduler's (since retired) plugin of that name.

Spreads the pods of one controller: the fewer pods of the same controlling
owner (ownerReferences with controller=true, same uid) a node already runs,
the better. Kubernetes matched the selectors of the services and workloads
that select the pod; the controller's uid is the same set of pods for the
workloads minik8s has. Terminating pods are not counted.
"""
from __future__ import annotations

from collections.abc import Sequence

from minik8s.api.v1 import types_pb2

from ..cache import NodeInfo, controller_uid
from ..framework import MAX_NODE_SCORE, SKIP


class SelectorSpread:
    name = "SelectorSpread"

    def __init__(self, weight: int = 1) -> None:
        self.weight = weight

    def pre_score(self, pod: types_pb2.Pod, node_infos: Sequence[NodeInfo]) -> object:
        owner = controller_uid(pod)
        if not owner:
            return SKIP
        counts = {info.name: info.owner_counts.get(owner, 0) for info in node_infos}
        most = max(counts.values(), default=0)
        if most == 0:
            return dict.fromkeys(counts, MAX_NODE_SCORE)
        # Float arithmetic and truncation, exactly as Kubernetes computes it.
        return {name: int(MAX_NODE_SCORE * ((most - n) / most)) for name, n in counts.items()}

    def score(self, pod: types_pb2.Pod, node_info: NodeInfo, scores: dict[str, int]) -> int:
        return scores[node_info.name]
