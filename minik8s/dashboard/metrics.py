"""What the dashboard exports on /metrics, besides the process' own numbers."""
from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from minik8s.api.v1 import types_pb2 as t

SECTION_UPDATES = Counter("dashboard_section_updates_total",
                          "Section renderings that changed and went to the open pages",
                          ["section"])
STREAM_CLIENTS = Gauge("dashboard_stream_clients", "Pages following live updates")

PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")


class PodPhases(Collector):
    """dashboard_cluster_pods{phase}: the pods in the dashboard's cache, counted at scrape
    time (what the pods-running chart plots)."""

    def __init__(self, pods: Callable[[], Iterable[t.Pod]]) -> None:
        self._pods = pods

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = Tally(pod.status.phase or "Pending" for pod in self._pods())
        family = GaugeMetricFamily("dashboard_cluster_pods", "Pods in the cluster by phase",
                                   labels=["phase"])
        for phase in PHASES:
            family.add_metric([phase], counts[phase])
        yield family
