"""Watches a namespace's pods for a whole scenario and writes down what must never happen.

* More live (not terminating) pods of one Deployment than the most replicas it
  was ever asked for plus maxSurge: a controller created duplicates (two
  leaders acting, or expectations lost across a failover).
* A pod whose spec.nodeName changes once set: it was bound twice.
* A watch that stalls: no event and no bookmark for `stall_after` seconds
  (apiservers send a bookmark every second on an idle watch).

It resumes its watch across apiserver faults from the last resourceVersion it
saw, on whichever apiserver answers, and relists when that resourceVersion
has expired (then it compares the new list with its picture, so nothing that
happened in between is missed for the checks above that can still see it).
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Mapping

from minik8s import errors
from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from tests.chaos.workload import MAX_SURGE


def deployment_of(pod: t.Pod) -> str | None:
    """The Deployment a pod belongs to: the echo deployments label their pods app=<name>."""
    if not any(r.kind == "ReplicaSet" and r.controller for r in pod.metadata.owner_references):
        return None
    return pod.metadata.labels.get("app")


def live(pod: t.Pod) -> bool:
    return not pod.metadata.HasField("deletion_timestamp") \
        and pod.status.phase not in ("Succeeded", "Failed")


class Observer:
    def __init__(self, servers: list[str], namespace: str, max_replicas: Mapping[str, int],
                 *, stall_after: float = 10.0) -> None:
        self.api = ApiClient(servers)
        self.namespace = namespace
        self.max_replicas = max_replicas
        self.stall_after = stall_after
        self.pods: dict[str, t.Pod] = {}       # name -> latest version seen
        self.bound: dict[str, str] = {}        # pod uid -> the node it was first seen bound to
        self.most: Counter[str] = Counter()    # deployment -> most live pods seen at once
        self.violations: list[str] = []
        self.events = 0
        self.resumes = 0                      # watches started again from a resourceVersion
        self.relists = 0                      # lists after an expired resourceVersion
        self.longest_silence = 0.0
        self._last_seen = time.monotonic()
        self._stalled = False
        self._rv = ""
        self._tasks: list[asyncio.Task] = []

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Observer:
        await self._relist()
        self._tasks = [asyncio.create_task(self._watch(), name="observer-watch"),
                       asyncio.create_task(self._stall_monitor(), name="observer-stall")]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                self.violations.append(f"observer died: {task.exception()!r}")
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.api.close()

    def _violation(self, text: str) -> None:
        self.violations.append(f"{time.strftime('%H:%M:%S')} {text}")

    # ------------------------------------------------------------ watching

    async def _relist(self) -> None:
        delay = 0.1
        while True:
            try:
                items, rv = await self.api.list("Pod", self.namespace)
                break
            except errors.ApiError:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
        self._seen()
        self.pods = {}
        for pod in items:
            self._apply("ADDED", pod)
        self._check_counts()
        self._rv = rv

    async def _watch(self) -> None:
        while True:
            try:
                async for ev in self.api.watch("Pod", self.namespace, resource_version=self._rv):
                    self._seen()
                    if ev.type != "BOOKMARK":
                        self.events += 1
                        self._apply(ev.type, ev.object)
                        self._check_counts(deployment_of(ev.object))
                    self._rv = ev.resource_version or self._rv
            except errors.Expired:
                self.relists += 1
                await self._relist()
                continue
            except errors.ApiError:
                await asyncio.sleep(0.1)
            self.resumes += 1

    def _seen(self) -> None:
        now = time.monotonic()
        self.longest_silence = max(self.longest_silence, now - self._last_seen)
        self._last_seen = now
        self._stalled = False

    async def _stall_monitor(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            silent = time.monotonic() - self._last_seen
            self.longest_silence = max(self.longest_silence, silent)
            if silent > self.stall_after and not self._stalled:
                self._stalled = True
                self._violation(f"watch stalled: no pod event or bookmark for {silent:.1f}s "
                                f"(resourceVersion {self._rv}, apiserver {self.api.endpoint})")

    # ------------------------------------------------------------ the picture and the checks

    def _apply(self, type_: str, pod: t.Pod) -> None:
        name, uid = pod.metadata.name, pod.metadata.uid
        if type_ == "DELETED":
            self.pods.pop(name, None)
        else:
            self.pods[name] = pod
        node = pod.spec.node_name
        if node:
            first = self.bound.setdefault(uid, node)
            if first != node:
                self._violation(f"pod {name} (uid {uid}) bound twice: {first}, then {node}")

    def _check_counts(self, only: str | None = None) -> None:
        counts: Counter[str] = Counter()
        for pod in self.pods.values():
            dep = deployment_of(pod)
            if dep is not None and (only is None or dep == only) and live(pod):
                counts[dep] += 1
        for dep, count in counts.items():
            self.most[dep] = max(self.most[dep], count)
            bound = self.max_replicas.get(dep)
            if bound is None:
                continue  # not one of the workload's: not ours to judge
            if count > bound + MAX_SURGE:
                names = sorted(p.metadata.name for p in self.pods.values()
                               if deployment_of(p) == dep and live(p))
                self._violation(f"deployment {dep}: {count} live pods, more than its most "
                                f"replicas ever ({bound}) + maxSurge ({MAX_SURGE}): {names}")

    def live_pods(self, deployment: str) -> list[t.Pod]:
        return [p for p in self.pods.values() if deployment_of(p) == deployment and live(p)]

    @property
    def alive(self) -> bool:
        return all(not task.done() for task in self._tasks)

