"""NodeResourcesFit, NodeResourcesLeastAllocated and NodeResourcesBalancedAllocation:
mirror kube-scheduler's plugins of those names.

Fit (filter): the pod's requests must fit in what the node's allocatable
leaves over after the pods already counted there; a resource the pod does
not request is not checked (but every pod takes one of the node's pod slots).

LeastAllocated (score): the more cpu and memory left free, the better, each
weighted equally; computed on the scoring requests, where a container's
missing request counts as 100m cpu / 200Mi memory, so best-effort pods spread.

BalancedAllocation (score): the closer the node's cpu and memory fractions
are to each other after placing the pod, the better. Like Kubernetes it uses
the real requests, and skips pods that request nothing.
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from minik8s.api.v1 import types_pb2

from ..cache import NodeInfo
from ..framework import MAX_NODE_SCORE, SKIP, SUCCESS, Code, Status
from ..resources import Resources, pod_requests, pod_requests_for_scoring


@cache
def _insufficient(reasons: tuple[str, ...]) -> Status:
    return Status(Code.UNSCHEDULABLE, reasons)


class Fit:
    name = "NodeResourcesFit"

    def pre_filter(self, pod: types_pb2.Pod) -> Resources:
        return pod_requests(pod)

    def filter(self, pod: types_pb2.Pod, node_info: NodeInfo, request: Resources) -> Status:
        used, alloc = node_info.requested, node_info.allocatable
        reasons = []
        if used.pods + 1 > alloc.pods:
            reasons.append("Too many pods")
        if request.milli_cpu and request.milli_cpu > alloc.milli_cpu - used.milli_cpu:
            reasons.append("Insufficient cpu")
        if request.memory and request.memory > alloc.memory - used.memory:
            reasons.append("Insufficient memory")
        return _insufficient(tuple(reasons)) if reasons else SUCCESS


class LeastAllocated:
    name = "NodeResourcesLeastAllocated"

    def __init__(self, weight: int = 1) -> None:
        self.weight = weight

    def pre_score(self, pod: types_pb2.Pod, node_infos: Sequence[NodeInfo]) -> Resources:
        return pod_requests_for_scoring(pod)

    def score(self, pod: types_pb2.Pod, node_info: NodeInfo, request: Resources) -> int:
        used, alloc = node_info.requested_for_scoring, node_info.allocatable
        total = counted = 0
        for requested, capacity in ((used.milli_cpu + request.milli_cpu, alloc.milli_cpu),
                                    (used.memory + request.memory, alloc.memory)):
            if capacity:  # a resource the node does not report is left out
                counted += 1
                if requested <= capacity:
                    total += (capacity - requested) * MAX_NODE_SCORE // capacity
        return total // counted if counted else 0


class BalancedAllocation:
    name = "NodeResourcesBalancedAllocation"

    def __init__(self, weight: int = 1) -> None:
        self.weight = weight

    def pre_score(self, pod: types_pb2.Pod, node_infos: Sequence[NodeInfo]) -> Resources:
        request = pod_requests(pod)
        # A best-effort pod would score best on an empty node every time and pile up
        # there (kubernetes#129138).
        return request if request.milli_cpu or request.memory else SKIP

    def score(self, pod: types_pb2.Pod, node_info: NodeInfo, request: Resources) -> int:
        used, alloc = node_info.requested, node_info.allocatable
        if not (alloc.milli_cpu and alloc.memory):
            return MAX_NODE_SCORE  # fewer than two fractions to compare: no deviation
        cpu = min(1.0, (used.milli_cpu + request.milli_cpu) / alloc.milli_cpu)
        memory = min(1.0, (used.memory + request.memory) / alloc.memory)
        # The standard deviation of the two fractions is half their difference.
        return int((1 - abs(cpu - memory) / 2) * MAX_NODE_SCORE)
