"""Pod networking when every node has an engine of its own (`--network-mode node`).

As the bridge CNI plugin with host-gw routes (what flannel's host-gw backend
does): the kubelet creates its pod bridge over the node's podCIDR once the
node IPAM controller has assigned it, and routes every other node's podCIDR
via that node's InternalIP, so pods reach each other by pod IP, without NAT.
The whole cluster CIDR is also routed to an empty bridge (a sink): a packet
for a pod address no node holds is dropped on this node. Forwarding of
cluster traffic is accepted ahead of Docker's own FORWARD rules, which would
drop traffic between nodes' pods.
"""
from __future__ import annotations

import hashlib
import logging
import subprocess

from kubelet.runtime import Runtime
from minik8s import podnet
from minik8s.api.v1 import types_pb2 as t

log = logging.getLogger("minik8s.kubelet.nodenet")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=10, check=False)


def _checked(*args: str) -> None:
    done = _run(*args)
    if done.returncode != 0:
        raise OSError(f"{' '.join(args)}: {done.stderr.strip()}")


def internal_ip(node: t.Node) -> str:
    return next((a.address for a in node.status.addresses if a.type == "InternalIP"), "")


class NodeNetwork:
    def __init__(self, runtime: Runtime, cluster_cidr: str) -> None:
        self.runtime, self.cluster_cidr = runtime, cluster_cidr
        self.sink = "mkpods" + hashlib.sha256(cluster_cidr.encode()).hexdigest()[:8]
        self._routes: dict[str, str] = {}   # podCIDR -> next hop, as programmed

    async def pod_cidr_assigned(self, pod_cidr: str) -> None:
        await self.runtime.call(podnet.create, self.runtime.network, pod_cidr,
                                self.runtime.client)
        await self.runtime.call(self._base)

    def _base(self) -> None:
        """The sink for the cluster CIDR and the FORWARD exceptions for it."""
        if _run("ip", "link", "show", self.sink).returncode != 0:
            _checked("ip", "link", "add", self.sink, "type", "bridge")
        _checked("ip", "link", "set", self.sink, "up")
        _checked("ip", "route", "replace", self.cluster_cidr, "dev", self.sink)
        for direction in ("-s", "-d"):
            rule = ["FORWARD", direction, self.cluster_cidr, "-m", "comment", "--comment",
                    "minik8s pod traffic", "-j", "ACCEPT"]
            if _run("iptables", "-C", *rule).returncode != 0:
                _checked("iptables", "-I", *rule)

    async def sync_routes(self, nodes: list[t.Node], own: str) -> None:
        wanted = {n.spec.pod_cidr: internal_ip(n) for n in nodes
                  if n.metadata.name != own and n.spec.pod_cidr and internal_ip(n)}
        if wanted != self._routes:
            await self.runtime.call(self._program, wanted)

    def _program(self, wanted: dict[str, str]) -> None:
        for cidr, via in wanted.items():
            if self._routes.get(cidr) != via:
                _checked("ip", "route", "replace", cidr, "via", via)
                log.info("route %s via %s", cidr, via)
        for cidr in set(self._routes) - set(wanted):
            _run("ip", "route", "del", cidr)
        self._routes = dict(wanted)
