"""Node lifecycle: a node whose lease stops being renewed is marked, tainted and emptied.

No kubelets exist yet: the test plays each node's kubelet by renewing its
Lease in kube-node-lease, and stops renewing to make the node "die".
"""
from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from controller_manager.pods import controller_ref, now
from minik8s import errors
from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from minik8s.localcluster import LocalCluster
from tests.integration.conftest import _start
from tests.integration.helpers import eventually, pod, ready_node, replica_set

GRACE = 3.0          # --node-monitor-grace-period
EVICTION = 3.0       # --pod-eviction-timeout
SLACK = 4.0          # for a loaded machine
RENEW_INTERVAL = 0.3
LEASE_NAMESPACE = "kube-node-lease"
UNREACHABLE = "node.kubernetes.io/unreachable"


@pytest.fixture(scope="module")
def lc_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = _start(Path(tmp_path_factory.mktemp("lifecycle")), schedulers=1, controller_managers=1,
               controller_manager_args=["--node-monitor-grace-period", str(GRACE),
                                        "--pod-eviction-timeout", str(EVICTION)])
    yield c
    c.stop()


@pytest.fixture
async def api(lc_cluster: LocalCluster) -> AsyncIterator[ApiClient]:
    """A client; every Node the test made is deleted afterwards (nodes are cluster-wide)."""
    async with ApiClient(lc_cluster.servers) as client:
        yield client
        for node in (await client.list("Node"))[0]:
            await client.delete("Node", node.metadata.name)


@pytest.fixture
async def ns(api: ApiClient) -> str:
    name = f"lc-{uuid.uuid4().hex[:8]}"
    await api.create(t.Namespace(metadata=t.ObjectMeta(name=name)))
    return name


class Kubelet:
    """Renews a node's Lease, as its kubelet would, between start() and stop()."""

    def __init__(self, api: ApiClient, node: t.Node) -> None:
        self.api = api
        self.node = node
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._renew())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _renew(self) -> None:
        lease = await self._lease()
        while True:
            lease.spec.renew_time.FromDatetime(now())
            lease = await self.api.update(lease)
            await asyncio.sleep(RENEW_INTERVAL)

    async def _lease(self) -> t.Lease:
        name = self.node.metadata.name
        try:
            return await self.api.get("Lease", name, LEASE_NAMESPACE)
        except errors.NotFound:
            lease = t.Lease(metadata=t.ObjectMeta(name=name, namespace=LEASE_NAMESPACE),
                            spec=t.LeaseSpec(holder_identity=name, lease_duration_seconds=40))
            lease.metadata.owner_references.append(controller_ref(self.node))
            lease.spec.renew_time.FromDatetime(now())
            return await self.api.create(lease)


def ready_condition(node: t.Node) -> t.Condition | None:
    return next((c for c in node.status.conditions if c.type == "Ready"), None)


def unreachable_taints(node: t.Node) -> set[str]:
    return {x.effect for x in node.spec.taints if x.key == UNREACHABLE}


async def placement(api: ApiClient, namespace: str) -> dict[str, str]:
    """pod name -> node name, of the pods not being deleted."""
    return {p.metadata.name: p.spec.node_name for p in (await api.list("Pod", namespace))[0]
            if not p.metadata.HasField("deletion_timestamp")}


async def test_a_silent_node_is_tainted_and_emptied(api: ApiClient, ns: str) -> None:
    async def lease_namespace() -> bool:
        try:
            return bool(await api.get("Namespace", LEASE_NAMESPACE))
        except errors.NotFound:
            return False
    await eventually(lease_namespace)  # the controller makes it
    await ready_node(api, "bare", unschedulable=True)  # no lease: not monitored; no pods
    doomed = Kubelet(api, await ready_node(api, "doomed"))
    doomed.start()
    spare: Kubelet | None = None
    try:
        first = await fill(api, ns, "doomed")
        spare = Kubelet(api, await ready_node(api, "spare"))
        spare.start()
        stopped = time.monotonic()
        await doomed.stop()
        await assert_marked_unreachable(api, stopped)
        await assert_evicted_and_replaced(api, ns, first, stopped)
        assert "tolerant" in await placement(api, ns)  # tolerates unreachable for ever

        doomed.start()  # the node comes back: the taints go

        async def untainted() -> bool:
            return not unreachable_taints(await api.get("Node", "doomed"))
        await eventually(untainted, timeout=SLACK)
    finally:
        for kubelet in (doomed, spare):
            if kubelet is not None:
                await kubelet.stop()
    bare = await api.get("Node", "bare")
    assert not unreachable_taints(bare) and ready_condition(bare).status == "True"


async def fill(api: ApiClient, ns: str, node: str) -> dict[str, str]:
    """Put 3 pods of a ReplicaSet and one tolerating unreachable for ever on node."""
    tolerant = pod("tolerant", ns)
    tolerant.spec.tolerations.add(key=UNREACHABLE, operator="Exists", effect="NoExecute")
    tolerant.spec.node_name = node
    await api.create(tolerant)
    await api.create(replica_set("web", ns, 3))

    async def all_there() -> dict[str, str] | None:
        where = await placement(api, ns)
        return where if len(where) == 4 and set(where.values()) == {node} else None
    return await eventually(all_there)


async def assert_marked_unreachable(api: ApiClient, stopped: float) -> None:
    async def unknown() -> t.Node | None:
        node = await api.get("Node", "doomed")
        cond = ready_condition(node)
        return node if cond is not None and cond.status == "Unknown" else None
    node = await eventually(unknown, timeout=GRACE + SLACK, interval=0.1)
    elapsed = time.monotonic() - stopped
    assert elapsed > GRACE - RENEW_INTERVAL - 0.5, f"NotReady after only {elapsed:.1f}s"
    cond = ready_condition(node)
    assert (cond.reason, cond.message) == ("NodeStatusUnknown",
                                           "Kubelet stopped posting node status.")

    async def tainted() -> t.Node | None:
        node = await api.get("Node", "doomed")
        return node if unreachable_taints(node) == {"NoSchedule", "NoExecute"} else None
    node = await eventually(tainted, timeout=SLACK)
    assert all(x.time_added.seconds for x in node.spec.taints if x.key == UNREACHABLE)


async def assert_evicted_and_replaced(api: ApiClient, ns: str, first: dict[str, str],
                                      stopped: float) -> None:
    async def replaced() -> dict[str, str] | None:
        where = await placement(api, ns)
        web = {p: n for p, n in where.items() if p.startswith("web-")}
        return web if len(web) == 3 and set(web.values()) == {"spare"} else None
    web = await eventually(replaced, timeout=GRACE + EVICTION + SLACK, interval=0.2)
    assert time.monotonic() - stopped > GRACE + EVICTION - RENEW_INTERVAL - 0.5
    assert not set(web) & set(first)

    async def eviction_events() -> set[str]:
        events = (await api.list("Event", ns))[0]
        return {e.involved_object.name for e in events if e.reason == "TaintManagerEviction"}
    evicted = await eventually(eviction_events)
    assert evicted == {p for p in first if p.startswith("web-")}
    node_events = (await api.list("Event", "default"))[0]
    assert any(e.reason == "NodeNotReady" and e.involved_object.name == "doomed"
               for e in node_events)
