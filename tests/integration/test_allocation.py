"""ClusterIPs and NodePorts stay unique when three apiservers allocate at once."""
from __future__ import annotations

import asyncio
import ipaddress

import pytest

from minik8s import errors
from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from minik8s.localcluster import LocalCluster


def service(name: str, namespace: str, node_port: bool = False) -> t.Service:
    return t.Service(metadata=t.ObjectMeta(name=name, namespace=namespace),
                     spec=t.ServiceSpec(type="NodePort" if node_port else "ClusterIP",
                                        selector={"app": name},
                                        ports=[t.ServicePort(port=80)]))


async def _create_everywhere(cluster: LocalCluster, services: list[t.Service]) -> list[t.Service]:
    clients = [ApiClient([s]) for s in cluster.servers]  # one per apiserver
    try:
        return list(await asyncio.gather(*(clients[i % len(clients)].create(svc)
                                           for i, svc in enumerate(services))))
    finally:
        for c in clients:
            await c.close()


async def test_cluster_ips_unique(cluster: LocalCluster, namespace: str) -> None:
    created = await _create_everywhere(
        cluster, [service(f"s{i}", namespace) for i in range(50)])
    ips = [s.spec.cluster_ip for s in created]
    assert len(set(ips)) == 50
    assert all(ipaddress.ip_address(ip) in ipaddress.ip_network("10.96.0.0/16") for ip in ips)


async def test_node_ports_unique_and_released(cluster: LocalCluster, client: ApiClient,
                                              namespace: str) -> None:
    created = await _create_everywhere(
        cluster, [service(f"n{i}", namespace, node_port=True) for i in range(20)])
    ports = [s.spec.ports[0].node_port for s in created]
    assert len(set(ports)) == 20 and all(30000 <= p <= 32767 for p in ports)

    # an explicit port that is taken is refused; once released it can be had
    taken = ports[0]
    clash = service("clash", namespace, node_port=True)
    clash.spec.ports[0].node_port = taken
    with pytest.raises(errors.Invalid, match="already allocated"):
        await client.create(clash)
    await client.delete("Service", "n0", namespace)
    again = await client.create(clash)
    assert again.spec.ports[0].node_port == taken


async def test_apply_keeps_allocations(client: ApiClient, namespace: str) -> None:
    manifest = f"""
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {namespace}}}
spec:
  type: NodePort
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: http}}]
"""
    first = (await client.apply(manifest))[0]
    second = (await client.apply(manifest))[0]
    assert (first.action, second.action) == ("created", "unchanged")
    a, b = first.object.service, second.object.service
    assert a.spec.cluster_ip == b.spec.cluster_ip
    assert a.spec.ports[0].node_port == b.spec.ports[0].node_port
    assert a.spec.ports[0].target_port.str_val == "http"
