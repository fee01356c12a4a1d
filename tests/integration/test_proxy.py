"""Services work: ClusterIP and NodePort through the proxy's iptables rules."""
from __future__ import annotations

import asyncio
import socket
import subprocess
import time

from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from minik8s.localcluster import LocalCluster
from proxy.rules import Chains
from tests.integration.helpers import eventually
from tests.integration.kubelet_helpers import (
    app_container,
    echo_deployment,
    echo_pod,
    until_ready,
    web_service,
)
from tests.integration.net_helpers import (
    answers_from_inside,
    assert_stays_local,
    http_get,
    names_seen,
)


async def ready_pods(client: ApiClient, namespace: str, count: int) -> set[str]:
    async def ready() -> set[str] | None:
        pods, _ = await client.list("Pod", namespace, label_selector="app=web")
        names = {p.metadata.name for p in pods if not p.metadata.HasField("deletion_timestamp")
                 and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions)}
        return names if len(names) == count and len(pods) == count else None
    return await eventually(ready, timeout=60, interval=0.2)


async def serving(ip: str, port: int, expected: set[str]) -> None:
    """Eventually exactly the expected pods answer (and every one of them)."""
    async def exactly() -> bool:
        seen = set(await names_seen(ip, port, 4 * len(expected) + 8))
        return seen == expected
    await eventually(exactly, timeout=30, interval=0.2)


async def web(client: ApiClient, namespace: str, replicas: int = 3,
              node_port: bool = False) -> tuple[t.Service, set[str]]:
    await client.create(echo_deployment("web", namespace, replicas))
    svc = await client.create(web_service("web", namespace, node_port))
    return svc, await ready_pods(client, namespace, replicas)


async def test_cluster_ip_reaches_every_endpoint_from_host_and_pod(
        node_client: ApiClient, node_namespace: str) -> None:
    svc, pods = await web(node_client, node_namespace)
    ip = svc.spec.cluster_ip
    await serving(ip, 80, pods)

    await node_client.create(echo_pod("client", node_namespace, "sleep", "3600"))
    client_pod = await until_ready(node_client, "client", node_namespace)
    inside = app_container(client_pod)
    assert await answers_from_inside(inside, f"http://{ip}/", pods) == pods


async def test_node_port_answers_on_loopback(node_client: ApiClient,
                                             node_namespace: str) -> None:
    svc, pods = await web(node_client, node_namespace, replicas=2, node_port=True)
    await serving("127.0.0.1", svc.spec.ports[0].node_port, pods)


async def test_scaling_and_deleting_change_the_rotation(node_client: ApiClient,
                                                       node_namespace: str) -> None:
    svc, pods = await web(node_client, node_namespace)
    ip = svc.spec.cluster_ip
    await serving(ip, 80, pods)

    dep = await node_client.get("Deployment", "web", node_namespace)
    dep.spec.replicas = 2
    await node_client.update(dep)
    pods = await ready_pods(node_client, node_namespace, 2)
    await serving(ip, 80, pods)

    victim = sorted(pods)[0]
    await node_client.delete("Pod", victim, node_namespace)
    replacement = await ready_pods(node_client, node_namespace, 2)
    assert victim not in replacement
    await serving(ip, 80, replacement)


async def test_rolling_update_loses_no_request(node_client: ApiClient,
                                               node_namespace: str) -> None:
    svc, pods = await web(node_client, node_namespace)
    ip = svc.spec.cluster_ip
    await serving(ip, 80, pods)
    answers: list[str | None] = []
    done = asyncio.Event()

    async def steady_load() -> None:  # bounded: stops with the rollout, or after 90 s
        deadline = time.monotonic() + 90
        while not done.is_set() and time.monotonic() < deadline:
            answers.append(await http_get(ip, 80))
            await asyncio.sleep(0.02)

    load = asyncio.create_task(steady_load())
    dep = await node_client.get("Deployment", "web", node_namespace)
    dep.spec.template.metadata.annotations["rollout"] = "2"
    await node_client.update(dep)

    async def rolled() -> bool:
        current = await node_client.get("Deployment", "web", node_namespace)
        names = await ready_pods(node_client, node_namespace, 3)
        return current.status.updated_replicas == 3 and not names & pods
    await eventually(rolled, timeout=90, interval=0.5)
    done.set()
    await load
    assert len(answers) > 50
    assert None not in answers, f"{answers.count(None)} of {len(answers)} requests failed"
    assert set(answers) - pods, "no request reached the new pods"


async def test_a_service_without_endpoints_refuses_at_once(node_client: ApiClient,
                                                           node_namespace: str) -> None:
    svc = await node_client.create(web_service("nobody", node_namespace))
    ip = svc.spec.cluster_ip
    assert_stays_local(ip)

    def connect() -> str:
        started = time.monotonic()
        try:
            socket.create_connection((ip, 80), timeout=5).close()
            return "connected"
        except ConnectionRefusedError:
            return "refused" if time.monotonic() - started < 1 else "slow refusal"
        except OSError as exc:
            return str(exc)
    outcomes: list[str] = []

    async def refused() -> bool:  # once the proxy has synced the service
        outcomes.append(await asyncio.to_thread(connect))
        return outcomes[-1] == "refused"
    try:
        await eventually(refused, timeout=20)
    except AssertionError:
        raise AssertionError(f"connections: {outcomes}") from None


def _chain_rules(table: str, chain: str) -> list[str]:
    out = subprocess.run(["iptables", "-t", table, "-S", chain], capture_output=True,
                         text=True, check=False)
    return [line for line in out.stdout.splitlines() if line.startswith("-A")]


async def test_rules_deleted_by_hand_come_back(node_cluster: LocalCluster,
                                               node_client: ApiClient,
                                               node_namespace: str) -> None:
    svc, pods = await web(node_client, node_namespace, replicas=1)
    await serving(svc.spec.cluster_ip, 80, pods)
    services = Chains.for_cluster(node_cluster.name).services
    subprocess.run(["iptables", "-t", "nat", "-F", services], check=True)
    assert not _chain_rules("nat", services)
    # the proxy's periodic sync (2 s here) puts them back
    await eventually(lambda: len(_chain_rules("nat", services)) > 0, timeout=10)
    await serving(svc.spec.cluster_ip, 80, pods)




async def test_client_ip_affinity_sticks_to_one_pod(node_client: ApiClient,
                                                    node_namespace: str) -> None:
    await node_client.create(echo_deployment("web", node_namespace, 3))
    sticky = web_service("web", node_namespace)
    sticky.spec.session_affinity = "ClientIP"
    svc = await node_client.create(sticky)
    pods = await ready_pods(node_client, node_namespace, 3)

    async def answered_by_pods() -> set[str | None] | None:
        answers = set(await names_seen(svc.spec.cluster_ip, 80, 20))
        return answers if answers <= pods else None  # every request answered
    answers = await eventually(answered_by_pods, timeout=30)
    assert len(answers) == 1, f"one client reached {answers}"
