"""The kubelet's probe manager, as Kubernetes' pkg/kubelet/prober.

Each probe of each running container instance gets its own asyncio worker
that probes on the probe's schedule and turns raw results into state through
the success/failure thresholds, so a single flaky probe neither marks a pod
unready nor gets a container killed. The kubelet reads that state
(ready/started/liveness_failed) when it computes pod status and container
actions, and is told through on_change when it should look again: probing
is decoupled from the pod sync loop, which only has to call sync() with the
containers it sees running.

Results belong to a container *instance* (its Docker id): a restarted
container starts over unready with fresh counters, and a liveness failure
is reported for the instance that failed, never for its replacement.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from prometheus_client import Counter

from kubelet.probe import ExecFn, run_probe
from minik8s.api.v1 import types_pb2 as t

log = logging.getLogger("minik8s.kubelet.prober")

LIVENESS, READINESS, STARTUP = "liveness", "readiness", "startup"
_FIELDS = {LIVENESS: "liveness_probe", READINESS: "readiness_probe", STARTUP: "startup_probe"}

DEFAULT_PERIOD_SECONDS = 10
DEFAULT_SUCCESS_THRESHOLD = 1
DEFAULT_FAILURE_THRESHOLD = 3

PROBES = Counter("kubelet_prober_probe_total", "Container probes run, by probe type and result.",
                 ["probe_type", "result"])


@dataclass(eq=False)
class _Worker:
    """One probe of one container instance, and what its results add up to."""
    kind: str
    pod_key: str
    pod_uid: str
    pod_ip: str
    container: t.Container
    container_id: str
    result: bool | None = None  # None until a threshold has been reached
    message: str = ""           # of the probe that settled `result`
    last: bool | None = None    # the latest raw result ...
    run: int = 0                # ... and how many times in a row it came
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.kind == READINESS:
            self.result = False  # unready until proven ready, as in Kubernetes

    @property
    def probe(self) -> t.Probe:
        return getattr(self.container, _FIELDS[self.kind])

    def record(self, success: bool, message: str) -> bool:
        """Count one raw result; return whether it changed the settled result."""
        self.run = self.run + 1 if success == self.last else 1
        self.last = success
        needed = (self.probe.success_threshold or DEFAULT_SUCCESS_THRESHOLD) if success \
            else (self.probe.failure_threshold or DEFAULT_FAILURE_THRESHOLD)
        if self.run < needed or self.result == success:
            return False
        self.result, self.message = success, message
        return True

    @property
    def finished(self) -> bool:
        """Nothing left to learn about this instance: a startup probe that
        settled, or a liveness probe that failed (the kubelet restarts it)."""
        return (self.kind == STARTUP and self.result is not None) or \
            (self.kind == LIVENESS and self.result is False)


class ProbeManager:
    """Runs the liveness, readiness and startup probes of running containers.

    on_change(pod_key, reason) is called synchronously whenever a readiness
    or startup result changes and when a liveness probe fails past its
    threshold; it must be cheap (the kubelet just enqueues the pod).
    time_scale multiplies every probe delay, period and timeout: 1.0 in the
    kubelet, small in tests so that one-second periods take milliseconds.
    """

    def __init__(self, exec_fn: ExecFn, on_change: Callable[[str, str], None],
                 time_scale: float = 1.0) -> None:
        self.exec_fn = exec_fn
        self.on_change = on_change
        self.time_scale = time_scale
        self._workers: dict[tuple[str, str, str], _Worker] = {}  # (pod uid, container, kind)
        self._declared: dict[str, dict[str, frozenset[str]]] = {}  # pod uid -> container -> kinds

    def sync(self, pod: t.Pod, running: Mapping[str, str]) -> None:
        """Probe exactly the running instances (container name -> container id)."""
        uid, key = pod.metadata.uid, f"{pod.metadata.namespace}/{pod.metadata.name}"
        containers = {c.name: c for c in pod.spec.containers}
        self._declared[uid] = {name: frozenset(k for k, f in _FIELDS.items() if c.HasField(f))
                               for name, c in containers.items()}
        wanted = {(uid, name, kind): cid for name, cid in running.items() if name in containers
                  for kind in self._declared[uid][name]}
        for wkey, worker in list(self._workers.items()):
            if wkey[0] == uid and wanted.get(wkey) != worker.container_id:
                self._stop(wkey)
        for wkey, cid in wanted.items():
            worker = self._workers.get(wkey)
            if worker is None:
                self._start(_Worker(wkey[2], key, uid, pod.status.pod_ip,
                                    containers[wkey[1]], cid))
            else:
                worker.pod_ip = pod.status.pod_ip

    def forget(self, pod_uid: str) -> None:
        """Stop probing a deleted pod and drop its results."""
        for wkey in [k for k in self._workers if k[0] == pod_uid]:
            self._stop(wkey)
        self._declared.pop(pod_uid, None)

    async def stop(self) -> None:
        """Stop every worker and wait until they are gone."""
        tasks = [w.task for w in self._workers.values() if w.task]
        for wkey in list(self._workers):
            self._stop(wkey)
        await asyncio.gather(*tasks, return_exceptions=True)

    def ready(self, pod_uid: str, container_name: str, container_id: str) -> bool:
        """Readiness of a running instance: True without a readiness probe,
        else once it succeeded successThreshold times in a row; never before
        the startup probe passed."""
        return self.started(pod_uid, container_name, container_id) and \
            self._passed(pod_uid, container_name, container_id, READINESS)

    def started(self, pod_uid: str, container_name: str, container_id: str) -> bool:
        """Whether the instance passed its startup probe (True without one)."""
        return self._passed(pod_uid, container_name, container_id, STARTUP)

    def liveness_failed(self, pod_uid: str, container_name: str, container_id: str) -> str | None:
        """The failure message once the instance failed its liveness probe
        failureThreshold times in a row: the kubelet must restart it."""
        return self._failure(pod_uid, container_name, container_id, LIVENESS)

    def startup_failed(self, pod_uid: str, container_name: str, container_id: str) -> str | None:
        """The failure message once the instance failed its startup probe
        failureThreshold times in a row: Kubernetes restarts it too."""
        return self._failure(pod_uid, container_name, container_id, STARTUP)

    def _passed(self, uid: str, name: str, cid: str, kind: str) -> bool:
        """Whether the instance passed its `kind` probe; True if it has none."""
        if kind not in self._declared.get(uid, {}).get(name, frozenset()):
            return True
        worker = self._workers.get((uid, name, kind))
        return bool(worker and worker.container_id == cid and worker.result)

    def _failure(self, uid: str, name: str, cid: str, kind: str) -> str | None:
        worker = self._workers.get((uid, name, kind))
        if worker and worker.container_id == cid and worker.result is False:
            return worker.message
        return None

    def _start(self, worker: _Worker) -> None:
        self._workers[(worker.pod_uid, worker.container.name, worker.kind)] = worker
        worker.task = asyncio.create_task(
            self._work(worker), name=f"{worker.kind} probe {worker.pod_key}/{worker.container.name}")

    def _stop(self, wkey: tuple[str, str, str]) -> None:
        worker = self._workers.pop(wkey)
        if worker.task:
            worker.task.cancel()

    async def _work(self, worker: _Worker) -> None:
        probe = worker.probe
        await asyncio.sleep(probe.initial_delay_seconds * self.time_scale)
        period = (probe.period_seconds or DEFAULT_PERIOD_SECONDS) * self.time_scale
        while True:
            try:
                await self._probe_once(worker)
            except Exception:
                log.exception("%s probe of %s/%s failed to run", worker.kind, worker.pod_key,
                              worker.container.name)
            if worker.finished:
                return
            await asyncio.sleep(period)

    async def _probe_once(self, worker: _Worker) -> None:
        name = worker.container.name
        if worker.kind != STARTUP and not self.started(worker.pod_uid, name, worker.container_id):
            return  # liveness and readiness wait for the startup probe
        success, message = await run_probe(worker.probe, worker.container, worker.pod_ip,
                                           worker.container_id, self.exec_fn,
                                           time_scale=self.time_scale)
        PROBES.labels(worker.kind, "successful" if success else "failed").inc()
        if not worker.record(success, message):
            return
        outcome = "succeeded" if success else "failed"
        log.info("%s probe of %s/%s %s: %s", worker.kind, worker.pod_key, name, outcome, message)
        if worker.kind != LIVENESS or not success:
            self.on_change(worker.pod_key, f"{worker.kind} probe {outcome}")
