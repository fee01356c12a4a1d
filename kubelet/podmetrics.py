"""How long pods take to start and to sync, as the Kubernetes kubelet measures it."""
from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import Histogram

from minik8s.api.v1 import types_pb2 as t

POD_START_DURATION = Histogram(
    "kubelet_pod_start_duration_seconds",
    "Seconds from the kubelet first seeing a pod to all its containers running.",
    buckets=(0.5, 1, 2, 3, 4, 5, 6, 8, 10, 20, 30, 45, 60, 120, 300, 600))
POD_WORKER_DURATION = Histogram(
    "kubelet_pod_worker_duration_seconds",
    "Seconds to sync one pod, by operation: create (no container yet), sync, or kill.",
    ["operation_type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))


class StartTimes:
    """When the kubelet first saw each pod still to start, until all its containers run.

    A pod seen already Running (a restarted kubelet adopting it) is not timed:
    its start happened before this kubelet knew of it.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._seen: dict[str, float] = {}

    def seen(self, pod: t.Pod) -> None:
        if pod.status.phase in ("", "Pending") and not pod.metadata.HasField(
                "deletion_timestamp"):
            self._seen.setdefault(pod.metadata.uid, self._clock())

    def observe(self, uid: str, status: t.PodStatus) -> None:
        """Record the start once every app container of the pod runs."""
        if uid in self._seen and status.container_statuses and all(
                s.state.HasField("running") for s in status.container_statuses):
            POD_START_DURATION.observe(self._clock() - self._seen.pop(uid))

    def forget(self, uid: str) -> None:
        self._seen.pop(uid, None)
