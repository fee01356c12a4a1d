"""Every component's /metrics, scraped after a small workload, says what happened."""
from __future__ import annotations

import asyncio
import socket
import urllib.request
from dataclasses import dataclass

from dnslib import DNSRecord
from prometheus_client.parser import text_string_to_metric_families

from minik8s.client import ApiClient
from minik8s.localcluster import LocalCluster
from tests.integration.helpers import eventually, scrape
from tests.integration.kubelet_helpers import echo_deployment, echo_pod, web_service

CONTROLLERS = ("daemonset", "deployment", "endpoint", "garbagecollector", "namespace",
               "nodeipam", "nodelifecycle", "replicaset", "statefulset")
NODES = ("node-0", "node-1")


@dataclass(frozen=True)
class Sample:
    proc: str
    name: str
    labels: dict[str, str]
    value: float


class Scrape:
    """The samples of every process of some roles, read at one moment."""

    def __init__(self, samples: list[Sample]) -> None:
        self.samples = samples

    @classmethod
    async def of(cls, cluster: LocalCluster, *roles: str) -> Scrape:
        procs = [p for role in roles for p in cluster.role(role)]
        scraped = await asyncio.gather(*(
            asyncio.to_thread(scrape, f"http://{cluster.host}:{p.ports['http']}/metrics")
            for p in procs))
        return cls([Sample(p.name, name, labels, value)
                    for p, found in zip(procs, scraped, strict=True)
                    for name, labels, value in found])

    def find(self, metric: str, /, proc: str = "", **labels: str) -> list[Sample]:
        """The samples of a metric (of one process) whose labels include these."""
        return [s for s in self.samples if s.name == metric and (not proc or s.proc == proc)
                and all(s.labels.get(k) == v for k, v in labels.items())]

    def total(self, metric: str, /, proc: str = "", **labels: str) -> float:
        return sum(s.value for s in self.find(metric, proc, **labels))

    def one(self, metric: str, /, proc: str = "", **labels: str) -> float:
        found = self.find(metric, proc, **labels)
        assert len(found) == 1, f"{metric}{labels}: {len(found)} samples"
        return found[0].value


ALL_ROLES = ("apiserver", "scheduler", "controller-manager", "kubelet", "proxy", "dns")


async def _running_workload(client: ApiClient, ns: str) -> None:
    """A deployment of two Ready pods behind a service, and a pod in CrashLoopBackOff."""
    await client.create(echo_deployment("web", ns, 2))
    await client.create(web_service("web", ns))
    await client.create(echo_pod("crash", ns, "sh", "-c", "exit 1"))

    async def settled() -> bool:
        web = await client.get("Deployment", "web", ns)
        crash = (await client.get("Pod", "crash", ns)).status.container_statuses
        return (web.status.available_replicas == 2 and bool(crash)
                and crash[0].restart_count >= 1)
    await eventually(settled, timeout=90, interval=0.5)


def _dns_query(port: int, name: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(DNSRecord.question(name, "A").pack(), ("127.0.0.1", port))
        DNSRecord.parse(sock.recv(4096))


async def test_metrics_of_every_component_after_a_workload(
        node_cluster: LocalCluster, node_client: ApiClient, node_namespace: str) -> None:
    ns = node_namespace
    before = await Scrape.of(node_cluster, *ALL_ROLES)
    await _running_workload(node_client, ns)
    for proc in node_cluster.role("dns"):
        await asyncio.to_thread(_dns_query, proc.ports["dns"], f"web.{ns}.svc.cluster.local")
    after = await Scrape.of(node_cluster, *ALL_ROLES)

    def grew(metric: str, /, **labels: str) -> float:
        return after.total(metric, **labels) - before.total(metric, **labels)

    # apiserver: requests, storage, etcd
    assert grew("apiserver_request_total", verb="create", resource="Pod", code="OK") >= 3
    assert after.total("apiserver_storage_objects", resource="pods") >= 3
    assert after.total("apiserver_storage_objects", resource="nodes") == len(NODES)
    assert grew("etcd_request_duration_seconds_count", operation="txn") >= 3
    assert after.find("etcd_request_errors_total", operation="txn")

    # scheduler: each pod scheduled once at least, end to end
    assert grew("scheduler_schedule_attempts_total", result="scheduled") >= 3
    assert grew("scheduler_pod_scheduling_duration_seconds_count") >= 3

    # controller-manager: a queue per controller, the workload's went through theirs
    names = {s.labels["name"] for s in after.find("workqueue_depth")}
    assert set(CONTROLLERS) <= names
    for controller in ("deployment", "replicaset", "endpoint"):
        assert grew("workqueue_adds_total", name=controller) > 0, controller
        assert after.total("workqueue_work_duration_seconds_count", name=controller) > 0

    # one leader per leader-elected component, every replica exporting the gauge
    for role, lease in (("scheduler", "kube-scheduler"),
                        ("controller-manager", "kube-controller-manager")):
        for proc in node_cluster.role(role):
            assert after.find("leader_election_master_status", proc=proc.name, name=lease)
        assert after.total("leader_election_master_status", name=lease) == 1

    # kubelets: Docker calls timed by operation, pods started and synced
    for operation in ("create_container", "start_container", "list_containers",
                      "container_status"):
        assert grew("kubelet_runtime_operations_duration_seconds_count",
                    operation_type=operation) >= 3, operation
        assert after.find("kubelet_runtime_operations_errors_total", operation_type=operation)
    assert grew("kubelet_pod_start_duration_seconds_count") >= 2
    assert grew("kubelet_pod_worker_duration_seconds_count", operation_type="create") >= 3

    # proxy: it synced the new service's rules; DNS: the queries, by type and answer
    assert grew("proxy_sync_proxy_rules_duration_seconds_count") >= 1
    assert after.total("proxy_rules_total") > 0
    assert grew("dns_requests_total", type="A", rcode="NOERROR") >= len(node_cluster.role("dns"))


async def test_cluster_state_metrics(node_cluster: LocalCluster, node_client: ApiClient,
                                     node_namespace: str) -> None:
    ns = node_namespace
    await _running_workload(node_client, ns)
    pods, _ = await node_client.list("Pod", ns, label_selector="app=web")
    web = {"namespace": ns, "deployment": "web"}
    crash = {"namespace": ns, "pod": "crash", "container": "c"}

    async def state() -> Scrape | None:
        """The apiserver's state metrics once they show the workload settled, both
        nodes Ready (a kubelet restarted by an earlier test may still be coming back)."""
        found = await Scrape.of(node_cluster, "apiserver")
        settled = (found.total("kube_deployment_status_replicas_available", **web) == 2
                   and found.find("kube_pod_container_status_waiting_reason",
                                  reason="CrashLoopBackOff", **crash)
                   and all(found.total("kube_node_status_condition", node=node,
                                       condition="Ready", status="true") for node in NODES))
        return found if settled else None
    found = await eventually(state, timeout=30, interval=0.5)

    for node in NODES:
        assert found.one("kube_node_status_condition", node=node, condition="Ready",
                         status="true") == 1
        assert found.total("kube_node_status_condition", node=node, condition="Ready") == 1
        assert found.one("kube_node_spec_unschedulable", node=node) == 0
    for pod in pods:
        phases = {s.labels["phase"]: s.value for s in found.find(
            "kube_pod_status_phase", namespace=ns, pod=pod.metadata.name)}
        assert phases == {"Pending": 0, "Running": 1, "Succeeded": 0, "Failed": 0,
                          "Unknown": 0}
    for name, value in (("kube_deployment_spec_replicas", 2),
                        ("kube_deployment_status_replicas", 2),
                        ("kube_deployment_status_replicas_updated", 2)):
        assert found.one(name, **web) == value, name
    assert found.one("kube_deployment_metadata_generation", **web) == found.one(
        "kube_deployment_status_observed_generation", **web) >= 1
    assert found.one("kube_deployment_status_condition", condition="Available",
                     status="true", **web) == 1
    assert found.one("kube_pod_container_status_restarts_total", **crash) >= 1
    assert found.one("kube_pod_container_status_waiting_reason", reason="CrashLoopBackOff",
                     **crash) == 1


async def _pods_by_node(client: ApiClient) -> dict[str, int]:
    """Pods each node should be running: bound there, not finished, not being deleted."""
    pods, _ = await client.list("Pod")
    counts = dict.fromkeys(NODES, 0)
    for pod in pods:
        if pod.spec.node_name in counts and pod.status.phase not in ("Succeeded", "Failed") \
                and not pod.metadata.HasField("deletion_timestamp"):
            counts[pod.spec.node_name] += 1
    return counts


async def test_kubelet_counts_its_running_pods_and_containers(
        node_cluster: LocalCluster, node_client: ApiClient, node_namespace: str) -> None:
    await _running_workload(node_client, node_namespace)
    assert {p.name for p in node_cluster.role("kubelet")} == set(NODES)
    crash_node = (await node_client.get("Pod", "crash", node_namespace)).spec.node_name

    async def counted() -> Scrape | None:
        """The kubelets' gauges once a housekeeping round has seen the workload: running
        pods as the API has them on each node, the web pods' containers running, the
        crashing container's last run exited, and the round's stats calls timed (they
        come after the counts)."""
        wanted = await _pods_by_node(node_client)
        found = await Scrape.of(node_cluster, "kubelet")
        pods_match = all(found.one("kubelet_running_pods", proc=node) == wanted[node]
                         for node in NODES)
        web_seen = found.total("kubelet_running_containers", container_state="running") >= 2
        crash_seen = found.total("kubelet_running_containers", proc=crash_node,
                                 container_state="exited") >= 1
        stats_timed = found.total("kubelet_runtime_operations_duration_seconds_count",
                                  operation_type="container_stats") > 0
        return found if pods_match and web_seen and crash_seen and stats_timed else None
    found = await eventually(counted, timeout=60, interval=1)

    assert found.total("kubelet_running_pods") >= 3   # this test's pods at least
    for node in NODES:
        states = {s.labels["container_state"]: s.value
                  for s in found.find("kubelet_running_containers", proc=node)}
        assert set(states) == {"created", "running", "exited", "unknown"}


async def test_metric_families_have_the_types_alert_rules_expect(
        node_cluster: LocalCluster) -> None:
    async def families(role: str) -> dict[str, str]:
        proc = node_cluster.role(role)[0]
        url = f"http://{node_cluster.host}:{proc.ports['http']}/metrics"
        text = await asyncio.to_thread(_get, url)
        return {f.name: f.type for f in text_string_to_metric_families(text)}
    api = await families("apiserver")
    assert api["kube_pod_container_status_restarts"] == "counter"
    for gauge in ("kube_node_status_condition", "kube_pod_status_phase",
                  "kube_deployment_status_replicas_available", "apiserver_storage_objects"):
        assert api[gauge] == "gauge", gauge
    kubelet = await families("kubelet")
    assert kubelet["kubelet_pod_start_duration_seconds"] == "histogram"
    assert kubelet["kubelet_runtime_operations_duration_seconds"] == "histogram"
    assert kubelet["kubelet_runtime_operations_errors"] == "counter"
    assert kubelet["kubelet_running_pods"] == "gauge"


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read().decode()
