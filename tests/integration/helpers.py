"""Shared pieces of the integration tests."""
from __future__ import annotations

import asyncio
import contextlib
import datetime
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from apiserver.etcd import Etcd, range_end
from minik8s import errors, kinds
from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from minik8s.localcluster import LocalCluster
from minik8s.retry import retry_on_conflict

T = TypeVar("T")


def pod(name: str, namespace: str, **labels: str) -> t.Pod:
    return t.Pod(metadata=t.ObjectMeta(name=name, namespace=namespace, labels=labels),
                 spec=t.PodSpec(containers=[t.Container(name="c", image="busybox:1.36")]))


async def eventually(check: Callable[[], Awaitable[T] | T], timeout: float = 20.0,
                     interval: float = 0.05) -> T:
    """Poll check until it returns a truthy value; fail with its last result after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {result!r})")
        await asyncio.sleep(interval)


async def etcd_state(cluster: LocalCluster, kind: str, namespace: str) -> dict[str, str]:
    """name -> resourceVersion of every object of a kind in a namespace, read from etcd."""
    etcd = Etcd(cluster.etcd_endpoints, tls=cluster.etcd_tls)
    try:
        prefix = kinds.prefix(kinds.by_name(kind), namespace).encode()
        resp = await etcd.range(prefix, range_end(prefix))
        return {kv.key.decode().rsplit("/", 1)[-1]: str(kv.mod_revision) for kv in resp.kvs}
    finally:
        await etcd.close()


async def ready_node(client, name: str, cpu: str = "4", memory: str = "8Gi", pods: str = "110",
                     labels: dict[str, str] | None = None,
                     taints: list[t.Taint] | None = None, unschedulable: bool = False) -> t.Node:
    """Register a Ready node as a kubelet would (the object only: no machine behind it)."""
    await client.create(t.Node(metadata=t.ObjectMeta(name=name, labels=labels or {}),
                               spec=t.NodeSpec(taints=taints or [],
                                               unschedulable=unschedulable)))

    async def report() -> t.Node:  # the node IPAM controller may write in between
        node = await client.get("Node", name)
        node.status.allocatable.update({"cpu": cpu, "memory": memory, "pods": pods})
        node.status.capacity.update({"cpu": cpu, "memory": memory, "pods": pods})
        node.status.conditions.add(type="Ready", status="True")
        return await client.update_status(node)
    return await retry_on_conflict(report)


def apiserver_samples(cluster, metric: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample of a metric, over all the cluster's apiservers."""
    return [(labels, value) for proc in cluster.role("apiserver")
            for name, labels, value in scrape(f"http://{cluster.host}:{proc.ports['http']}/metrics")
            if name == metric]


def scrape(url: str) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of every sample a /metrics endpoint serves."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    return [(s.name, s.labels, s.value)
            for family in text_string_to_metric_families(text) for s in family.samples]


def replica_set(name: str, namespace: str, replicas: int) -> t.ReplicaSet:
    labels = {"app": name}
    return t.ReplicaSet(
        metadata=t.ObjectMeta(name=name, namespace=namespace),
        spec=t.ReplicaSetSpec(
            replicas=replicas, selector=t.LabelSelector(match_labels=labels),
            template=t.PodTemplateSpec(
                metadata=t.ObjectMeta(labels=labels),
                spec=t.PodSpec(containers=[t.Container(name="c", image="busybox:1.36")]))))


async def leader_process(cluster, client, role: str = "controller-manager") -> tuple[str, str]:
    """(identity, process name) of the current leader of a component (lease kube-<role>)."""
    async def holder() -> tuple[str, str] | None:
        identity = (await client.get("Lease", f"kube-{role}", "kube-system")).spec.holder_identity
        if not identity:
            return None
        pid = int(identity.split("_")[-2])  # identities are host_pid_random
        # None while the holder is a process that just exited (its lease not yet taken over)
        return next(((identity, p.name) for p in cluster.role(role) if p.pid == pid and p.alive),
                    None)
    return await eventually(holder)


class FakeKubelet:
    """Plays the kubelet for a namespace's pods.

    A bound pod is marked Running and Ready ready_after seconds later; a pod
    being deleted is removed with grace 0, as a kubelet does once its
    containers have stopped.
    """

    def __init__(self, client: ApiClient, namespace: str,
                 ready_after: float = 0.2) -> None:
        self.client, self.namespace = client, namespace
        self.ready_after = ready_after
        self._started: set[str] = set()
        self._tasks: set[asyncio.Task] = set()

    async def __aenter__(self) -> FakeKubelet:
        self._spawn(self._watch())
        return self

    async def __aexit__(self, *exc: object) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch(self) -> None:
        async for ev in self.client.watch("Pod", self.namespace):
            pod = ev.object
            if ev.type in ("BOOKMARK", "DELETED"):
                continue
            if pod.metadata.HasField("deletion_timestamp"):
                self._spawn(self._remove(pod.metadata.name))
            elif pod.spec.node_name and pod.metadata.uid not in self._started:
                self._started.add(pod.metadata.uid)
                self._spawn(self._start(pod.metadata.name, len(self._started)))

    async def _start(self, name: str, n: int) -> None:
        await asyncio.sleep(self.ready_after)

        async def mark_ready() -> None:
            pod = await self.client.get("Pod", name, self.namespace)
            if pod.metadata.HasField("deletion_timestamp"):
                return
            pod.status.phase = "Running"
            pod.status.pod_ip = f"10.244.{n // 250}.{n % 250 + 1}"
            ready = pod.status.conditions.add(type="Ready", status="True")
            ready.last_transition_time.FromDatetime(datetime.datetime.now(datetime.UTC))
            await self.client.update_status(pod)
        with contextlib.suppress(errors.NotFound):
            await retry_on_conflict(mark_ready)

    async def _remove(self, name: str) -> None:
        with contextlib.suppress(errors.NotFound):
            await self.client.delete("Pod", name, self.namespace, grace_period_seconds=0)


class Watching:
    """Follows one kind's objects in a namespace all the time, from a list on.

    Subclasses keep their picture of the objects in apply(type, obj) and look
    at it in check(), which runs once the listed objects are in and after every
    change. Leaving the block fails if the watch ended early: part of what
    happened would have gone unseen.
    """

    kind = "Pod"

    def __init__(self, client: ApiClient, namespace: str) -> None:
        self.client, self.namespace = client, namespace
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> Any:
        items, rv = await self.client.list(self.kind, self.namespace)
        for obj in items:
            self.apply("ADDED", obj)
        self.check()
        self._task = asyncio.create_task(self._watch(rv))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        if self._task.done():
            raise AssertionError(f"the {self.kind} watch ended early") \
                from self._task.exception()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _watch(self, rv: str) -> None:
        async for ev in self.client.watch(self.kind, self.namespace, resource_version=rv):
            if ev.type != "BOOKMARK":
                self.apply(ev.type, ev.object)
                self.check()

    def apply(self, type_: str, obj: Any) -> None:
        raise NotImplementedError

    def check(self) -> None:
        """Look at the picture after a change (nothing by default)."""


MINICTL = (sys.executable, "-m", "minik8s.cli.minictl")


@dataclass
class Result:
    code: int
    out: str
    err: str


async def minictl(env: dict[str, str], *args: str, stdin: str | None = None) -> Result:
    """Run minictl as a user does, in a subprocess."""
    proc = await asyncio.create_subprocess_exec(
        *MINICTL, *args, env=env, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())
