"""NodeUnschedulable: mirrors kube-scheduler's plugin of that name (with the old NodeReady check).

A node must be Ready (condition Ready=True), and not cordoned
(spec.unschedulable) unless the pod tolerates the
node.kubernetes.io/unschedulable:NoSchedule taint, as DaemonSet pods do.
"""
from __future__ import annotations

from minik8s.api.v1 import types_pb2

from ..cache import NodeInfo
from ..framework import SUCCESS, Code, Status
from .taint_toleration import tolerates, tolerations_of

UNSCHEDULABLE_TAINT = ("node.kubernetes.io/unschedulable", "", "NoSchedule")
_NOT_READY = Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ("node(s) were not ready",))
_UNSCHEDULABLE = Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ("node(s) were unschedulable",))


class NodeUnschedulable:
    name = "NodeUnschedulable"

    def pre_filter(self, pod: types_pb2.Pod) -> bool:
        """Whether the pod tolerates cordoned nodes."""
        return tolerates(tolerations_of(pod), UNSCHEDULABLE_TAINT)

    def filter(self, pod: types_pb2.Pod, node_info: NodeInfo, tolerates_cordon: bool) -> Status:
        if not node_info.ready:
            return _NOT_READY
        if node_info.unschedulable and not tolerates_cordon:
            return _UNSCHEDULABLE
        return SUCCESS
