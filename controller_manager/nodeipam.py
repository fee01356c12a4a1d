"""Node IPAM: every node gets a podCIDR of its own, a subnet of the cluster CIDR.

As kube-controller-manager's range allocator, the CIDRs in use are the ones
nodes carry in spec.podCIDR. The node informer feeds them to the allocator
from the moment the process starts, leading or not, and a replica leads only
once its caches are current: so a new leader knows every CIDR its predecessor
handed out, and never hands one out twice. A CIDR is free again once its node
is deleted. The lowest free subnet is handed out first.
"""
from __future__ import annotations

import ipaddress
import logging

from controller_manager.base import Controller
from minik8s.api.v1 import types_pb2 as t

log = logging.getLogger("minik8s.controller.nodeipam")


class CidrSet:
    """The subnets of one size in a cluster CIDR, and the node each is assigned to."""

    def __init__(self, cluster_cidr: str, mask_size: int) -> None:
        self.network = ipaddress.ip_network(cluster_cidr)
        if not self.network.prefixlen <= mask_size <= self.network.max_prefixlen:
            raise ValueError(f"node CIDR mask size /{mask_size} does not fit in {cluster_cidr}")
        self.mask_size = mask_size
        self._holder: dict[str, str] = {}   # cidr -> node
        self._cidr: dict[str, str] = {}     # node -> cidr

    def assign(self, node: str, cidr: str) -> None:
        """Record that node holds cidr (as its spec.podCIDR says)."""
        holder = self._holder.get(cidr)
        if holder is not None and holder != node:
            log.warning("podCIDR %s is on both node %s and node %s", cidr, holder, node)
        self.release(node)
        self._holder[cidr] = node
        self._cidr[node] = cidr

    def allocate(self, node: str) -> str | None:
        """The CIDR reserved for node: the one it already has, or the lowest free one.

        The reservation stands until the node is released, so a retry after a
        failed (or lost) update gets the same CIDR and no other node can.
        """
        if node in self._cidr:
            return self._cidr[node]
        for subnet in self.network.subnets(new_prefix=self.mask_size):
            cidr = str(subnet)
            if cidr not in self._holder:
                self.assign(node, cidr)
                return cidr
        return None

    def release(self, node: str) -> None:
        cidr = self._cidr.pop(node, None)
        if cidr is not None and self._holder.get(cidr) == node:
            del self._holder[cidr]


class NodeIpamController(Controller):
    name = "nodeipam"
    kind = "Node"

    def register(self) -> None:
        opts = self.ctx.options
        self.cidrs = CidrSet(opts.cluster_cidr, opts.node_cidr_mask_size)
        self.primary.add_handler(self._node_seen, lambda _old, new: self._node_seen(new),
                                 self._node_gone)

    def _node_seen(self, node: t.Node) -> None:
        if node.spec.pod_cidr:
            self.cidrs.assign(node.metadata.name, node.spec.pod_cidr)

    def _node_gone(self, node: t.Node) -> None:
        self.cidrs.release(node.metadata.name)
        for waiting in self.primary.list():  # those the exhausted range turned away
            if not waiting.spec.pod_cidr:
                self.enqueue(waiting)

    async def reconcile(self, key: str) -> None:
        node = self.primary.get(key)
        if node is None or node.spec.pod_cidr:
            return
        cidr = self.cidrs.allocate(key)
        if cidr is None:
            self.ctx.record(node, "Normal", "CIDRNotAvailable",
                            f"Node {key} status is now: CIDRNotAvailable")
            return
        updated = t.Node()
        updated.CopyFrom(node)
        updated.spec.pod_cidr = cidr
        del updated.spec.pod_cidrs[:]
        updated.spec.pod_cidrs.append(cidr)
        await self.ctx.api.update(updated)
