"""Cluster state as Prometheus metrics, read from the watch cache at scrape time.

The role kube-state-metrics plays in Kubernetes, inside every apiserver: the
series carry kube-state-metrics' names and labels, so alert rules written for
it work here. Three replicas export the same series; rules aggregate them with
max or min by their labels.

Nothing is counted as events arrive: a custom Collector walks the cached
objects when /metrics is read (on the event loop, like the cache's own
updates, so it always sees a consistent map). ``state_families`` is the pure
part: objects in, metric families out.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from minik8s import kinds

CONDITION_STATUSES = ("true", "false", "unknown")
POD_PHASES = ("Pending", "Succeeded", "Failed", "Unknown", "Running")

Objects = Mapping[str, Sequence[Any]]   # kind name -> its objects


def _condition_values(status: str) -> Iterator[tuple[str, float]]:
    """("true", 1), ("false", 0), ("unknown", 0) for a condition whose status is True."""
    current = status.lower() if status.lower() in CONDITION_STATUSES else "unknown"
    for value in CONDITION_STATUSES:
        yield value, 1.0 if value == current else 0.0


def node_families(nodes: Iterable[Any]) -> list[Metric]:
    condition = GaugeMetricFamily("kube_node_status_condition",
                                  "The condition of a cluster node.",
                                  labels=["node", "condition", "status"])
    unschedulable = GaugeMetricFamily("kube_node_spec_unschedulable",
                                      "Whether a node can schedule new pods.", labels=["node"])
    for node in nodes:
        name = node.metadata.name
        unschedulable.add_metric([name], float(node.spec.unschedulable))
        for cond in node.status.conditions:
            for status, value in _condition_values(cond.status):
                condition.add_metric([name, cond.type, status], value)
    return [condition, unschedulable]


def pod_families(pods: Iterable[Any]) -> list[Metric]:
    phase = GaugeMetricFamily("kube_pod_status_phase", "The pods current phase.",
                              labels=["namespace", "pod", "phase"])
    restarts = CounterMetricFamily("kube_pod_container_status_restarts",
                                   "The number of container restarts per container.",
                                   labels=["namespace", "pod", "container"])
    waiting = GaugeMetricFamily("kube_pod_container_status_waiting_reason",
                                "Describes the reason the container is currently in "
                                "waiting state.",
                                labels=["namespace", "pod", "container", "reason"])
    for pod in pods:
        namespace, name = pod.metadata.namespace, pod.metadata.name
        current = pod.status.phase or "Pending"
        for value in POD_PHASES:
            phase.add_metric([namespace, name, value], 1.0 if value == current else 0.0)
        for status in [*pod.status.init_container_statuses, *pod.status.container_statuses]:
            restarts.add_metric([namespace, name, status.name], float(status.restart_count))
            reason = status.state.waiting.reason if status.state.HasField("waiting") else ""
            if reason:
                waiting.add_metric([namespace, name, status.name, reason], 1.0)
    return [phase, restarts, waiting]


def _gauge(name: str, documentation: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=labels)


def deployment_families(deployments: Iterable[Any]) -> list[Metric]:
    key = ["namespace", "deployment"]
    families = {
        "spec_replicas": _gauge("kube_deployment_spec_replicas",
                                "Number of desired pods for a deployment.", key),
        "replicas": _gauge("kube_deployment_status_replicas",
                           "The number of replicas per deployment.", key),
        "available": _gauge("kube_deployment_status_replicas_available",
                            "The number of available replicas per deployment.", key),
        "updated": _gauge("kube_deployment_status_replicas_updated",
                          "The number of updated replicas per deployment.", key),
        "generation": _gauge("kube_deployment_metadata_generation",
                             "Sequence number representing a specific generation of the "
                             "desired state.", key),
        "observed": _gauge("kube_deployment_status_observed_generation",
                           "The generation observed by the deployment controller.", key),
    }
    condition = _gauge("kube_deployment_status_condition",
                       "The current status conditions of a deployment.",
                       [*key, "condition", "status"])
    for d in deployments:
        labels = [d.metadata.namespace, d.metadata.name]
        spec = d.spec.replicas if d.spec.HasField("replicas") else 1
        values = {"spec_replicas": spec, "replicas": d.status.replicas,
                  "available": d.status.available_replicas,
                  "updated": d.status.updated_replicas, "generation": d.metadata.generation,
                  "observed": d.status.observed_generation}
        for field, value in values.items():
            families[field].add_metric(labels, float(value))
        for cond in d.status.conditions:
            for status, value in _condition_values(cond.status):
                condition.add_metric([*labels, cond.type, status], value)
    return [*families.values(), condition]


def storage_family(objects: Objects) -> Metric:
    family = GaugeMetricFamily("apiserver_storage_objects",
                               "Number of stored objects at the time of last check split by "
                               "kind.", labels=["resource"])
    for kind_name, items in objects.items():
        family.add_metric([kinds.by_name(kind_name).plural], float(len(items)))
    return family


def state_families(objects: Objects) -> list[Metric]:
    """Every family this module exports, from the objects of each kind."""
    return [storage_family(objects), *node_families(objects.get("Node", ())),
            *pod_families(objects.get("Pod", ())),
            *deployment_families(objects.get("Deployment", ()))]


class StateCollector(Collector):
    """Exports ``state_families`` of a watch cache on every scrape."""

    def __init__(self, cached: Mapping[str, Any]) -> None:
        self._cached = cached   # kind name -> KindCache (its .objects: key -> object)

    def collect(self) -> Iterable[Metric]:
        return state_families({name: list(cache.objects.values())
                               for name, cache in self._cached.items()})

    def describe(self) -> Iterable[Metric]:
        return state_families({})
