"""What the data plane must do, computed from Services and Endpoints.

Pure: both proxy modes (iptables and userspace) program the same list of
``ServicePort``s, one per port of every service with a ClusterIP, each with
the ready endpoints the Endpoints controller found for it. Service port and
endpoint port match by name, as in Kubernetes.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from minik8s.api.v1 import types_pb2 as t

DEFAULT_AFFINITY_SECONDS = 10800  # Kubernetes' ClientIP default: three hours


@dataclass(frozen=True)
class ServicePort:
    namespace: str
    name: str
    port_name: str
    protocol: str          # TCP, UDP
    cluster_ip: str
    port: int
    node_port: int         # 0: none
    affinity_seconds: int  # 0: no session affinity
    endpoints: tuple[str, ...]   # "ip:port", sorted

    @property
    def key(self) -> str:
        """namespace/name:port, as kube-proxy names a service port."""
        suffix = f":{self.port_name}" if self.port_name else ""
        return f"{self.namespace}/{self.name}{suffix}"


def _affinity(svc: t.Service) -> int:
    if svc.spec.session_affinity != "ClientIP":
        return 0
    config = svc.spec.session_affinity_config.client_ip
    return config.timeout_seconds if config.HasField("timeout_seconds") \
        else DEFAULT_AFFINITY_SECONDS


def _endpoints_for(endpoints: t.Endpoints | None, port: t.ServicePort) -> tuple[str, ...]:
    if endpoints is None:
        return ()
    found = set()
    for subset in endpoints.subsets:
        for ep_port in subset.ports:
            if ep_port.name == port.name and (ep_port.protocol or "TCP") == \
                    (port.protocol or "TCP"):
                found.update(f"{a.ip}:{ep_port.port}" for a in subset.addresses)
    return tuple(sorted(found))


def service_ports(services: Iterable[t.Service],
                  endpoints: Iterable[t.Endpoints]) -> list[ServicePort]:
    """Every port of every service with a ClusterIP, with its ready endpoints."""
    by_name = {(e.metadata.namespace, e.metadata.name): e for e in endpoints}
    result = []
    for svc in services:
        ip = svc.spec.cluster_ip
        if not ip or ip == "None":
            continue  # headless: DNS only
        eps = by_name.get((svc.metadata.namespace, svc.metadata.name))
        for port in svc.spec.ports:
            result.append(ServicePort(
                namespace=svc.metadata.namespace, name=svc.metadata.name,
                port_name=port.name, protocol=port.protocol or "TCP", cluster_ip=ip,
                port=port.port, node_port=port.node_port if svc.spec.type == "NodePort" else 0,
                affinity_seconds=_affinity(svc), endpoints=_endpoints_for(eps, port)))
    return sorted(result, key=lambda p: p.key)
