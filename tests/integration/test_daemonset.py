"""The DaemonSet controller with a real scheduler; the test plays every node's kubelet."""
from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from controller_manager.pods import is_ready
from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from minik8s.localcluster import LocalCluster
from minik8s.retry import retry_on_conflict
from tests.integration.conftest import _start
from tests.integration.helpers import FakeKubelet, Watching, eventually, ready_node


@pytest.fixture(scope="module")
def ds_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = _start(Path(tmp_path_factory.mktemp("ds")), schedulers=1, controller_managers=1)
    yield c
    c.stop()


@pytest.fixture
async def api(ds_cluster: LocalCluster) -> AsyncIterator[ApiClient]:
    """A client; the test's DaemonSets and then its Nodes (cluster-wide) are deleted after."""
    async with ApiClient(ds_cluster.servers) as client:
        yield client
        for ds in (await client.list("DaemonSet"))[0]:
            await client.delete("DaemonSet", ds.metadata.name, ds.metadata.namespace)
        for node in (await client.list("Node"))[0]:
            await client.delete("Node", node.metadata.name)


@pytest.fixture
async def ns(api: ApiClient) -> str:
    name = f"ds-{uuid.uuid4().hex[:8]}"
    await api.create(t.Namespace(metadata=t.ObjectMeta(name=name)))
    return name


def daemon_set(name: str, namespace: str, image: str = "agent:1") -> t.DaemonSet:
    labels = {"app": name}
    return t.DaemonSet(
        metadata=t.ObjectMeta(name=name, namespace=namespace),
        spec=t.DaemonSetSpec(
            selector=t.LabelSelector(match_labels=labels),
            template=t.PodTemplateSpec(
                metadata=t.ObjectMeta(labels=labels),
                spec=t.PodSpec(containers=[t.Container(name="c", image=image)]))))


def _live(pod: t.Pod) -> bool:
    return not pod.metadata.HasField("deletion_timestamp")


class Observer(Watching):
    """Checks every observed state: never two pods on a node; counts nodes without a ready pod."""

    def __init__(self, api: ApiClient, namespace: str) -> None:
        super().__init__(api, namespace)
        self.pods: dict[str, t.Pod] = {}
        self.doubled: list[str] = []      # nodes seen holding two pods at once
        self.tracked: set[str] = set()    # nodes whose availability is being watched
        self.most_unavailable = 0
        self.seen_images: set[str] = set()

    def apply(self, type_: str, pod: t.Pod) -> None:
        if type_ == "DELETED":
            self.pods.pop(pod.metadata.name, None)
        else:
            self.pods[pod.metadata.name] = pod

    def check(self) -> None:
        per_node = Counter(p.spec.node_name for p in self.pods.values() if p.spec.node_name)
        self.doubled += [node for node, count in per_node.items() if count > 1]
        available = {p.spec.node_name for p in self.pods.values() if _live(p) and is_ready(p)}
        self.most_unavailable = max(self.most_unavailable, len(self.tracked - available))


async def placement(api: ApiClient, namespace: str) -> Counter[str]:
    """node -> pods there; pending ones count under "" and terminating ones where they are."""
    return Counter(p.spec.node_name for p in (await api.list("Pod", namespace))[0])


async def placed_on(api: ApiClient, namespace: str, nodes: set[str]) -> None:
    """Wait until the namespace has exactly one pod on each of nodes, and no other."""
    last: Counter[str] = Counter()

    async def check() -> bool:
        nonlocal last
        last = await placement(api, namespace)
        return last == Counter(nodes)
    try:
        await eventually(check)
    except AssertionError:
        raise AssertionError(f"pods per node: {dict(last)}, want one on each of {nodes}") \
            from None


async def settled(api: ApiClient, namespace: str, name: str, desired: int) -> t.DaemonSet:
    """Wait until the status says desired pods, all up to date and available."""
    async def check() -> t.DaemonSet | None:
        ds = await api.get("DaemonSet", name, namespace)
        s = ds.status
        done = s.observed_generation == ds.metadata.generation and \
            s.desired_number_scheduled == s.current_number_scheduled == s.number_ready == \
            s.updated_number_scheduled == s.number_available == desired and \
            s.number_misscheduled == s.number_unavailable == 0
        return ds if done else None
    return await eventually(check)


async def edit_node(api: ApiClient, name: str, edit) -> None:
    async def attempt() -> None:
        node = await api.get("Node", name)
        edit(node)
        await api.update(node)
    await retry_on_conflict(attempt)


async def test_one_pod_per_eligible_node(api: ApiClient, ns: str) -> None:
    nodes = [f"{ns}-{i}" for i in range(4)]
    for name in nodes[:3]:
        await ready_node(api, name)
    async with FakeKubelet(api, ns, ready_after=0), Observer(api, ns) as obs:
        await api.create(daemon_set("agent", ns))
        await placed_on(api, ns, set(nodes[:3]))
        await settled(api, ns, "agent", 3)

        await ready_node(api, nodes[3])               # a node joins
        await placed_on(api, ns, set(nodes))

        taint = t.Taint(key="dedicated", value="db", effect="NoSchedule")
        await edit_node(api, nodes[0], lambda n: n.spec.taints.append(taint))
        await placed_on(api, ns, set(nodes[1:]))      # its pod goes

        await api.delete("Node", nodes[1])            # a node leaves
        await placed_on(api, ns, set(nodes[2:]))
        await settled(api, ns, "agent", 2)
    assert obs.doubled == []
    events = (await api.list("Event", ns))[0]
    assert {e.reason for e in events} >= {"SuccessfulCreate", "SuccessfulDelete"}


async def test_node_selector(api: ApiClient, ns: str) -> None:
    edge, core = f"{ns}-edge", f"{ns}-core"
    await ready_node(api, edge, labels={"role": "edge"})
    await ready_node(api, core)
    ds = daemon_set("edge-agent", ns)
    ds.spec.template.spec.node_selector["role"] = "edge"
    async with FakeKubelet(api, ns, ready_after=0):
        await api.create(ds)
        await placed_on(api, ns, {edge})
        await edit_node(api, core, lambda n: n.metadata.labels.update(role="edge"))
        await placed_on(api, ns, {edge, core})
        await edit_node(api, edge, lambda n: n.metadata.labels.pop("role"))
        await placed_on(api, ns, {core})
        await settled(api, ns, "edge-agent", 1)


async def test_rolling_update_one_node_at_a_time(api: ApiClient, ns: str) -> None:
    nodes = {f"{ns}-{i}" for i in range(3)}
    for name in nodes:
        await ready_node(api, name)
    async with FakeKubelet(api, ns, ready_after=0), Observer(api, ns) as obs:
        await api.create(daemon_set("agent", ns, image="agent:1"))
        await placed_on(api, ns, nodes)
        await settled(api, ns, "agent", 3)
        obs.tracked = nodes

        async def new_image() -> None:
            ds = await api.get("DaemonSet", "agent", ns)
            ds.spec.template.spec.containers[0].image = "agent:2"
            await api.update(ds)
        await retry_on_conflict(new_image)

        async def images() -> Counter[str]:
            pods = (await api.list("Pod", ns))[0]
            return Counter(p.spec.containers[0].image for p in pods)
        await eventually(lambda: _equals(images(), Counter({"agent:2": 3})))
        await placed_on(api, ns, nodes)
        await settled(api, ns, "agent", 3)
    assert obs.doubled == []
    assert obs.most_unavailable == 1   # replaced one at a time (maxUnavailable defaults to 1)


async def _equals(value, want: object) -> bool:
    return await value == want
