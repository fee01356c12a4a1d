"""The node's resource usage and container counts, refreshed in the background.

As cAdvisor's housekeeping in the Kubernetes kubelet: every ``interval``
seconds one listing of this kubelet's containers sets the running pod and
container gauges, and each running app container is sampled with `docker
stats` (in the runtime's pool, several at once). The Stats RPC answers from
the last round, so `minictl top` never waits on the engine.

CPU is the rate between the two readings the engine takes for one sample
(about a second apart); memory is the working set, usage minus inactive file
pages, as `kubectl top` shows. A node's usage is the sum of its pods'
containers: in local mode several kubelets share one machine, whose own
figures would count every pod once per node.
"""
from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import Gauge

from kubelet import labels
from kubelet.runtime import EngineError, Runtime
from minik8s.api.v1 import kubelet_pb2 as k

log = logging.getLogger("minik8s.kubelet.stats")

RUNNING_PODS = Gauge("kubelet_running_pods", "Number of pods that have a running pod sandbox.")
RUNNING_CONTAINERS = Gauge("kubelet_running_containers",
                           "Number of containers currently on the node, by state.",
                           ["container_state"])
CONTAINER_STATES = ("created", "running", "exited", "unknown")
_DOCKER_STATES = {"created": "created", "running": "running", "exited": "exited",
                  "dead": "exited"}
MAX_PARALLEL_SAMPLES = 8   # each holds a pool thread for about a second


# ---------------------------------------------------------------- pure

def cpu_nano_cores(sample: Mapping[str, Any]) -> int | None:
    """Cores used between the sample's two readings, in billionths; None without a
    previous reading (a container that had just started)."""
    cpu, pre = sample.get("cpu_stats") or {}, sample.get("precpu_stats") or {}
    if not pre.get("system_cpu_usage"):
        return None
    used = cpu["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]
    system = cpu["system_cpu_usage"] - pre["system_cpu_usage"]   # all cpus' time
    cpus = cpu.get("online_cpus") or len(cpu["cpu_usage"].get("percpu_usage") or ()) or 1
    if system <= 0 or used < 0:
        return None
    return round(used / system * cpus * 1e9)


def working_set_bytes(sample: Mapping[str, Any]) -> int:
    """Memory usage minus inactive file pages (cgroup v1 or v2; old engines: cache)."""
    memory = sample.get("memory_stats") or {}
    detail = memory.get("stats") or {}
    inactive = next((detail[key] for key in ("total_inactive_file", "inactive_file", "cache")
                     if key in detail), 0)
    return max(0, memory.get("usage", 0) - inactive)


def _is_sandbox(summary: Mapping[str, Any]) -> bool:
    return (summary.get("Labels") or {}).get(labels.CONTAINER_NAME) == labels.SANDBOX


def container_states(summaries: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """App containers by state (kubelet_running_containers), every state present."""
    counts = Counter(_DOCKER_STATES.get(c.get("State", ""), "unknown") for c in summaries
                     if not _is_sandbox(c))
    return {state: counts[state] for state in CONTAINER_STATES}


def running_pods(summaries: Iterable[Mapping[str, Any]]) -> int:
    """Pods whose sandbox runs."""
    return len({(c.get("Labels") or {}).get(labels.POD_UID) for c in summaries
                if c.get("State") == "running" and _is_sandbox(c)})


@dataclass(frozen=True)
class ContainerUsage:
    labels: Mapping[str, str]
    nano_cores: int
    working_set: int


def summary(node: str, usages: Iterable[ContainerUsage], when: Timestamp) -> k.StatsResponse:
    """The Stats answer: each pod's containers, and the node's total."""
    response = k.StatsResponse(node=node, time=when)
    pods: dict[str, k.PodStats] = {}
    for usage in usages:
        lbls = usage.labels
        uid = lbls.get(labels.POD_UID, "")
        if uid not in pods:
            pods[uid] = response.pods.add(namespace=lbls.get(labels.POD_NAMESPACE, ""),
                                          name=lbls.get(labels.POD_NAME, ""), uid=uid)
        pods[uid].containers.add(name=lbls.get(labels.CONTAINER_NAME, ""),
                                 usage_nano_cores=usage.nano_cores,
                                 working_set_bytes=usage.working_set)
        response.usage_nano_cores += usage.nano_cores
        response.working_set_bytes += usage.working_set
    return response


# ---------------------------------------------------------------- the cache

class StatsCache:
    def __init__(self, runtime: Runtime, node: str, interval: float = 10.0) -> None:
        self.runtime, self.node, self.interval = runtime, node, interval
        self.latest = k.StatsResponse(node=node)   # no time: nothing sampled yet
        self._parallel = asyncio.Semaphore(MAX_PARALLEL_SAMPLES)

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # the engine is away; the next round tries again
                log.warning("sampling container stats: %s", exc)
            await asyncio.sleep(self.interval)

    async def refresh(self) -> None:
        summaries = await self.runtime.summaries()
        RUNNING_PODS.set(running_pods(summaries))
        for state, count in container_states(summaries).items():
            RUNNING_CONTAINERS.labels(state).set(count)
        apps = [c for c in summaries if c.get("State") == "running" and not _is_sandbox(c)]
        sampled = await asyncio.gather(*(self._usage(c) for c in apps))
        when = Timestamp()
        when.GetCurrentTime()
        self.latest = summary(self.node, [u for u in sampled if u is not None], when)

    async def _usage(self, container: Mapping[str, Any]) -> ContainerUsage | None:
        async with self._parallel:
            try:
                sample = await self.runtime.stats(container["Id"])
            except (EngineError, ValueError):  # gone meanwhile, or no answer to decode
                return None
        cores = cpu_nano_cores(sample)
        if cores is None:
            return None
        return ContainerUsage(container.get("Labels") or {}, cores, working_set_bytes(sample))
