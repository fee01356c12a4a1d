"""Cluster DNS: names resolve from inside pods, through the kube-dns Service."""
from __future__ import annotations

import asyncio
import signal
import socket

from dnslib import RCODE, DNSRecord

from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from minik8s.localcluster import LocalCluster
from tests.integration.helpers import eventually
from tests.integration.kubelet_helpers import (
    app_container,
    echo_deployment,
    echo_pod,
    until_ready,
    web_service,
)
from tests.integration.net_helpers import lookup


async def client_pod(client: ApiClient, namespace: str):
    await client.create(echo_pod("client", namespace, "sleep", "3600"))
    return app_container(await until_ready(client, "client", namespace))


def query(port: int, name: str, qtype: str = "A") -> DNSRecord:
    """One query straight to a replica on loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(DNSRecord.question(name, qtype).pack(), ("127.0.0.1", port))
        return DNSRecord.parse(sock.recv(4096))


async def test_service_names_resolve_from_a_pod(node_client: ApiClient,
                                                node_namespace: str) -> None:
    ns = node_namespace
    await node_client.create(echo_deployment("web", ns, 2))
    svc = await node_client.create(web_service("web", ns))
    inside = await client_pod(node_client, ns)
    full = f"web.{ns}.svc.cluster.local"
    found = await eventually(lambda: asyncio.to_thread(lookup, inside, full), timeout=20)
    assert found == [svc.spec.cluster_ip]

    # the pod's resolver (libc, with the search path) finds every form of the name
    for name in ("web", f"web.{ns}", full):
        async def reached(url: str = f"http://{name}/") -> str:
            out = await asyncio.to_thread(inside.exec_run, ["wget", "-qO-", url])
            return out.output.decode().strip() if out.exit_code == 0 else ""
        assert (await eventually(reached, timeout=30)).startswith("web-"), name


async def test_a_headless_service_follows_its_ready_pods(node_client: ApiClient,
                                                         node_namespace: str) -> None:
    ns = node_namespace
    await node_client.create(echo_deployment("web", ns, 2))
    headless = web_service("web", ns)
    headless.spec.cluster_ip = "None"
    await node_client.create(headless)
    inside = await client_pod(node_client, ns)

    async def resolves_to_ready_pods(count: int) -> bool:
        pods, _ = await node_client.list("Pod", ns, label_selector="app=web")
        ready = sorted(p.status.pod_ip for p in pods
                       if not p.metadata.HasField("deletion_timestamp")
                       and any(c.type == "Ready" and c.status == "True"
                               for c in p.status.conditions))
        return len(ready) == count and await asyncio.to_thread(lookup, inside, "web") == ready
    await eventually(lambda: resolves_to_ready_pods(2), timeout=40, interval=0.5)
    for replicas in (3, 1):
        dep = await node_client.get("Deployment", "web", ns)
        dep.spec.replicas = replicas
        await node_client.update(dep)
        await eventually(lambda r=replicas: resolves_to_ready_pods(r), timeout=40, interval=0.5)


async def test_unknown_names_and_malformed_queries(node_cluster: LocalCluster) -> None:
    port = node_cluster.procs["dns-0"].ports["dns"]
    reply = await asyncio.to_thread(query, port, "nothing.default.svc.cluster.local")
    assert reply.header.rcode == RCODE.NXDOMAIN
    assert (await asyncio.to_thread(query, port, "example.com")).header.rcode == RCODE.REFUSED

    def garbage() -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(2)
            sock.sendto(b"\x12\x34\xff\xff\x00\x01garbage", ("127.0.0.1", port))
            return DNSRecord.parse(sock.recv(4096)).header.rcode
    assert await asyncio.to_thread(garbage) == RCODE.FORMERR
    reply = await asyncio.to_thread(query, port, "kube-dns.kube-system.svc.cluster.local")
    assert [str(r.rdata) for r in reply.rr] == [node_cluster.dns_ip]  # still serving


async def test_lookups_go_on_when_one_replica_stops(node_cluster: LocalCluster,
                                                    node_client: ApiClient,
                                                    node_namespace: str) -> None:
    ns = node_namespace
    await node_client.create(t.Service(
        metadata=t.ObjectMeta(name="db", namespace=ns),
        spec=t.ServiceSpec(ports=[t.ServicePort(port=5432)])))
    inside = await client_pod(node_client, ns)
    await eventually(lambda: asyncio.to_thread(lookup, inside, "db"), timeout=20)
    node_cluster.signal("dns-0", signal.SIGSTOP)  # frozen: alive to its supervisor, deaf to us
    try:
        async def ten_in_a_row() -> bool:
            results = [await asyncio.to_thread(lookup, inside, "db") for _ in range(10)]
            return all(results)
        await eventually(ten_in_a_row, timeout=30, interval=0.2)
    finally:
        node_cluster.signal("dns-0", signal.SIGCONT)
