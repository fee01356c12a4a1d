"""Cluster state metrics: objects in, kube-state-metrics series out."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from apiserver.statemetrics import StateCollector, state_families
from minik8s.api.v1 import types_pb2 as t

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(objects: dict[str, list]) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in state_families(objects) for s in family.samples}


def pick(found: Samples, name: str, **labels: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of one metric whose labels include these."""
    return {key: value for (n, key), value in found.items()
            if n == name and set(labels.items()) <= set(key)}


def node(name: str, ready: str, unschedulable: bool = False) -> t.Node:
    return t.Node(metadata=t.ObjectMeta(name=name), spec=t.NodeSpec(unschedulable=unschedulable),
                  status=t.NodeStatus(conditions=[t.Condition(type="Ready", status=ready)]))


def test_node_conditions_have_one_current_status() -> None:
    found = samples({"Node": [node("a", "True"), node("b", "Unknown", unschedulable=True)]})
    a = pick(found, "kube_node_status_condition", node="a", condition="Ready")
    assert {dict(k)["status"]: v for k, v in a.items()} == {"true": 1, "false": 0, "unknown": 0}
    b = pick(found, "kube_node_status_condition", node="b")
    assert {dict(k)["status"]: v for k, v in b.items()} == {"true": 0, "false": 0, "unknown": 1}
    assert pick(found, "kube_node_spec_unschedulable", node="a") == {(("node", "a"),): 0}
    assert pick(found, "kube_node_spec_unschedulable", node="b") == {(("node", "b"),): 1}


def crashing_pod() -> t.Pod:
    waiting = t.ContainerState(waiting=t.ContainerStateWaiting(reason="CrashLoopBackOff"))
    running = t.ContainerState(running=t.ContainerStateRunning())
    return t.Pod(
        metadata=t.ObjectMeta(name="p", namespace="ns"),
        status=t.PodStatus(phase="Running", container_statuses=[
            t.ContainerStatus(name="app", restart_count=4, state=waiting),
            t.ContainerStatus(name="side", restart_count=0, state=running)]))


def test_pod_phase_restarts_and_waiting_reason() -> None:
    found = samples({"Pod": [crashing_pod(), t.Pod(metadata=t.ObjectMeta(name="new",
                                                                        namespace="ns"))]})
    phases = pick(found, "kube_pod_status_phase", pod="p")
    assert {dict(k)["phase"]: v for k, v in phases.items()} == {
        "Pending": 0, "Running": 1, "Succeeded": 0, "Failed": 0, "Unknown": 0}
    # a pod with no phase yet is Pending
    assert pick(found, "kube_pod_status_phase", pod="new", phase="Pending") == {
        (("namespace", "ns"), ("phase", "Pending"), ("pod", "new")): 1}
    restarts = pick(found, "kube_pod_container_status_restarts_total", pod="p")
    assert {dict(k)["container"]: v for k, v in restarts.items()} == {"app": 4, "side": 0}
    # only waiting containers have a reason, with value 1
    assert pick(found, "kube_pod_container_status_waiting_reason") == {
        (("container", "app"), ("namespace", "ns"), ("pod", "p"),
         ("reason", "CrashLoopBackOff")): 1}


def test_deployment_replicas_generations_and_conditions() -> None:
    d = t.Deployment(
        metadata=t.ObjectMeta(name="web", namespace="ns", generation=3),
        spec=t.DeploymentSpec(replicas=4),
        status=t.DeploymentStatus(
            observed_generation=2, replicas=5, updated_replicas=2, available_replicas=3,
            conditions=[t.WorkloadCondition(type="Available", status="False"),
                        t.WorkloadCondition(type="Progressing", status="True")]))
    defaulted = t.Deployment(metadata=t.ObjectMeta(name="one", namespace="ns"))
    found = samples({"Deployment": [d, defaulted]})
    web = {"namespace": "ns", "deployment": "web"}
    expected = {"kube_deployment_spec_replicas": 4, "kube_deployment_status_replicas": 5,
                "kube_deployment_status_replicas_available": 3,
                "kube_deployment_status_replicas_updated": 2,
                "kube_deployment_metadata_generation": 3,
                "kube_deployment_status_observed_generation": 2}
    for name, value in expected.items():
        assert list(pick(found, name, **web).values()) == [value], name
    assert list(pick(found, "kube_deployment_spec_replicas", deployment="one").values()) == [1]
    available = pick(found, "kube_deployment_status_condition", condition="Available", **web)
    assert {dict(k)["status"]: v for k, v in available.items()} == {
        "true": 0, "false": 1, "unknown": 0}
    progressing = pick(found, "kube_deployment_status_condition", condition="Progressing")
    assert sum(progressing.values()) == 1


def test_storage_objects_by_resource() -> None:
    found = samples({"Pod": [crashing_pod()] * 3, "Node": [], "Deployment": []})
    assert pick(found, "apiserver_storage_objects") == {
        (("resource", "pods"),): 3, (("resource", "nodes"),): 0,
        (("resource", "deployments"),): 0}


class _Cache:
    def __init__(self, *objs: object) -> None:
        self.objects = {str(i): o for i, o in enumerate(objs)}


def test_the_collector_reads_the_cache_at_every_scrape() -> None:
    cache = {"Node": _Cache(node("a", "True")), "Pod": _Cache(), "Deployment": _Cache()}
    registry = CollectorRegistry()
    registry.register(StateCollector(cache))

    def scraped() -> dict[str, list]:
        text = generate_latest(registry).decode()
        return {f.name: f.samples for f in text_string_to_metric_families(text)}
    assert len(scraped()["kube_node_spec_unschedulable"]) == 1
    cache["Node"].objects["b"] = node("b", "False")
    assert len(scraped()["kube_node_spec_unschedulable"]) == 2
    restarts = scraped()["kube_pod_container_status_restarts"]
    assert restarts == []  # the family is there, with no pods
