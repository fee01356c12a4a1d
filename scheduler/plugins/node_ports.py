"""NodePorts: mirrors kube-scheduler's plugin of that name.

The host ports of the pod's containers must be free on the node: a port is
taken if another pod uses the same protocol and port on an overlapping host
IP (the same IP, or either one 0.0.0.0).
"""
from __future__ import annotations

from minik8s.api.v1 import types_pb2

from ..cache import HostPort, NodeInfo, host_ports
from ..framework import SKIP, SUCCESS, Code, Status

_CONFLICT = Status(Code.UNSCHEDULABLE,
                   ("node(s) didn't have free ports for the requested pod ports",))


class NodePorts:
    name = "NodePorts"

    def pre_filter(self, pod: types_pb2.Pod) -> tuple[HostPort, ...]:
        return host_ports(pod) or SKIP

    def filter(self, pod: types_pb2.Pod, node_info: NodeInfo,
               ports: tuple[HostPort, ...]) -> Status:
        if any(node_info.port_in_use(port) for port in ports):
            return _CONFLICT
        return SUCCESS
