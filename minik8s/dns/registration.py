"""The kube-dns Service, and each DNS replica's place in its Endpoints.

The replicas run as processes, not pods, so no endpoints controller tracks
them: each replica keeps itself in the Endpoints of ``kube-system/kube-dns``
(a Service without a selector, at the fixed ClusterIP the kubelets give every
pod) and, every second, asks each peer listed there a real query; a peer that
does not answer is taken out, so lookups through the ClusterIP go on through
the replicas that live. A replica that stops takes itself out.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging

from dnslib import DNSRecord

from minik8s import errors
from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from minik8s.dns.server import exchange

log = logging.getLogger("minik8s.dns.registration")

NAMESPACE, NAME = "kube-system", "kube-dns"
Peer = tuple[str, int]


def service(cluster_ip: str) -> t.Service:
    return t.Service(
        metadata=t.ObjectMeta(name=NAME, namespace=NAMESPACE, labels={"k8s-app": "kube-dns"}),
        spec=t.ServiceSpec(cluster_ip=cluster_ip, ports=[
            t.ServicePort(name="dns", protocol="UDP", port=53),
            t.ServicePort(name="dns-tcp", protocol="TCP", port=53)]))


def peers_of(endpoints: t.Endpoints) -> set[Peer]:
    return {(a.ip, p.port) for s in endpoints.subsets for a in s.addresses
            for p in s.ports if p.name == "dns"}


def endpoints_for(peers: set[Peer]) -> list[t.EndpointSubset]:
    return [t.EndpointSubset(addresses=[t.EndpointAddress(ip=ip)], ports=[
        t.EndpointPort(name="dns", port=port, protocol="UDP"),
        t.EndpointPort(name="dns-tcp", port=port, protocol="TCP")])
        for ip, port in sorted(peers)]


async def answers(peer: Peer, name: str, timeout: float = 0.5) -> bool:
    """Whether a DNS server answers a query for name at all."""
    return await exchange(DNSRecord.question(name, "A").pack(), peer, timeout) is not None


class Registration:
    def __init__(self, client: ApiClient, me: Peer, cluster_ip: str, domain: str) -> None:
        self.client, self.me, self.cluster_ip = client, me, cluster_ip
        self.probe_name = f"{NAME}.{NAMESPACE}.svc.{domain}"

    async def run(self, period: float = 1.0) -> None:
        service_made = False
        while True:
            try:
                if not service_made:
                    await self._ensure_service()
                    service_made = True
                await self._reconcile()
            except errors.ApiError as exc:  # a conflict or an apiserver away: next round
                log.debug("kube-dns endpoints: %s", exc)
            except Exception:  # never stop keeping the endpoints
                log.exception("kube-dns endpoints")
            await asyncio.sleep(period)

    async def _ensure_service(self) -> None:
        with contextlib.suppress(errors.AlreadyExists):
            await self.client.create(service(self.cluster_ip))

    async def _reconcile(self) -> None:
        try:
            current = await self.client.get("Endpoints", NAME, NAMESPACE)
        except errors.NotFound:
            current = t.Endpoints(metadata=t.ObjectMeta(name=NAME, namespace=NAMESPACE))
        listed = peers_of(current)
        others = list(listed - {self.me})
        alive = await asyncio.gather(*(answers(p, self.probe_name) for p in others))
        wanted = {p for p, ok in zip(others, alive, strict=True) if ok} | {self.me}
        if wanted != listed:
            await self._write(current, wanted)

    async def _write(self, current: t.Endpoints, peers: set[Peer]) -> None:
        del current.subsets[:]
        current.subsets.extend(endpoints_for(peers))
        if current.metadata.resource_version:
            await self.client.update(current)
        else:
            await self.client.create(current)
        log.info("kube-dns endpoints: %s", ", ".join(f"{ip}:{port}" for ip, port in sorted(peers)))

    async def leave(self) -> None:
        """Take this replica out, so no lookup is sent to it once it stops."""
        with contextlib.suppress(errors.ApiError):
            current = await self.client.get("Endpoints", NAME, NAMESPACE)
            if self.me in peers_of(current):
                await self._write(current, peers_of(current) - {self.me})
