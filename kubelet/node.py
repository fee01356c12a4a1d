"""The kubelet's Node: registration, status reports and the heartbeat lease.

As Kubernetes' kubelet: the Node object is registered once (or taken over
if it exists), its status (capacity, conditions, addresses, versions, the
kubelet's API port) is written every ``status_interval``, and a Lease in
kube-node-lease, renewed every ``lease_renew_interval``, is the cheap
heartbeat the node lifecycle controller watches.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import platform
from dataclasses import dataclass, field

from minik8s import errors
from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from minik8s.retry import retry_on_conflict

log = logging.getLogger("minik8s.kubelet.node")

LEASE_NAMESPACE = "kube-node-lease"
VERSION = "v1.30.0-minik8s"


@dataclass
class NodeConfig:
    name: str
    address: str
    kubelet_port: int
    runtime_version: str
    cpu: str = ""          # empty: what the machine has
    memory: str = ""
    max_pods: int = 110
    labels: dict[str, str] = field(default_factory=dict)
    status_interval: float = 10.0
    lease_duration: int = 40
    lease_renew_interval: float = 2.0


def machine_capacity(config: NodeConfig) -> dict[str, str]:
    cpu = config.cpu or str(os.cpu_count() or 1)
    memory = config.memory or f"{_mem_total_kib()}Ki"
    return {"cpu": cpu, "memory": memory, "pods": str(config.max_pods)}


def _mem_total_kib() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    return 0


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def node_labels(config: NodeConfig) -> dict[str, str]:
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return {"kubernetes.io/hostname": config.name, "kubernetes.io/os": "linux",
            "kubernetes.io/arch": arch, **config.labels}


def fill_status(node: t.Node, config: NodeConfig, ready: tuple[bool, str, str]) -> None:
    """Write what this kubelet knows of its node into node.status."""
    status = node.status
    capacity = machine_capacity(config)
    status.capacity.clear()
    status.capacity.update(capacity)
    status.allocatable.clear()
    status.allocatable.update(capacity)
    del status.addresses[:]
    status.addresses.add(type="InternalIP", address=config.address)
    status.addresses.add(type="Hostname", address=config.name)
    uname = platform.uname()
    status.node_info.CopyFrom(t.NodeSystemInfo(
        kubelet_version=VERSION, container_runtime_version=f"docker://{config.runtime_version}",
        os_image=_os_image(), kernel_version=uname.release, operating_system="linux",
        architecture=node_labels(config)["kubernetes.io/arch"]))
    status.daemon_endpoints.kubelet_endpoint.port = config.kubelet_port
    ok, reason, message = ready
    now = _now()
    old = next((c for c in status.conditions if c.type == "Ready"), None)
    cond = t.Condition(type="Ready", status="True" if ok else "False", reason=reason,
                       message=message)
    cond.last_heartbeat_time.FromDatetime(now)
    if old is not None and old.status == cond.status:
        cond.last_transition_time.CopyFrom(old.last_transition_time)
    else:
        cond.last_transition_time.FromDatetime(now)
    keep = [c for c in status.conditions if c.type != "Ready"]
    del status.conditions[:]
    status.conditions.extend([*keep, cond])


def _os_image() -> str:
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME", "Linux")
    except OSError:
        return "Linux"


class NodeAgent:
    """Keeps this node registered, reported and heartbeating."""

    def __init__(self, client: ApiClient, config: NodeConfig) -> None:
        self.client, self.config = client, config
        self.ready: tuple[bool, str, str] = (True, "KubeletReady", "kubelet is posting ready status")

    async def register(self) -> t.Node:
        """Create the Node, or take over the one a previous run of this kubelet left."""
        node = t.Node(metadata=t.ObjectMeta(name=self.config.name, labels=node_labels(self.config)))
        try:
            await self.client.create(node)
            log.info("registered node %s", self.config.name)
        except errors.AlreadyExists:
            async def relabel() -> None:
                existing = await self.client.get("Node", self.config.name)
                existing.metadata.labels.update(node_labels(self.config))
                await self.client.update(existing)
            await retry_on_conflict(relabel)
        return await self.report()

    async def report(self) -> t.Node:
        async def write() -> t.Node:
            node = await self.client.get("Node", self.config.name)
            fill_status(node, self.config, self.ready)
            return await self.client.update_status(node)
        return await retry_on_conflict(write)

    async def run_status(self) -> None:
        while True:
            await asyncio.sleep(self.config.status_interval)
            try:
                await self.report()
            except errors.NotFound:
                await self.register()   # deleted under us: register again, as kubelet does
            except errors.ApiError as err:
                log.warning("node status: %s", err)

    async def run_lease(self) -> None:
        while True:
            try:
                await self._renew()
            except errors.ApiError as err:
                log.warning("node lease: %s", err)
            await asyncio.sleep(self.config.lease_renew_interval)

    async def _renew(self) -> None:
        name = self.config.name
        try:
            lease = await self.client.get("Lease", name, LEASE_NAMESPACE)
        except errors.NotFound:
            lease = t.Lease(metadata=t.ObjectMeta(name=name, namespace=LEASE_NAMESPACE),
                            spec=t.LeaseSpec(holder_identity=name,
                                             lease_duration_seconds=self.config.lease_duration))
            lease.spec.renew_time.FromDatetime(_now())
            try:
                await self.client.create(lease)
            except errors.NotFound:  # the lease namespace is not there yet
                await self._create_lease_namespace()
            return
        lease.spec.holder_identity = name
        lease.spec.renew_time.FromDatetime(_now())
        await self.client.update(lease)

    async def _create_lease_namespace(self) -> None:
        with contextlib.suppress(errors.AlreadyExists):
            await self.client.create(t.Namespace(metadata=t.ObjectMeta(name=LEASE_NAMESPACE)))
