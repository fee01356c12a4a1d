"""Where the scheduler puts pods: real scheduler processes, Node objects made by the test."""
from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from minik8s.localcluster import LocalCluster
from tests.integration.conftest import _start
from tests.integration.helpers import eventually, pod, ready_node


@pytest.fixture(scope="module")
def sched_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = _start(Path(tmp_path_factory.mktemp("sched")), schedulers=3)
    yield c
    c.stop()


@pytest.fixture
async def api(sched_cluster: LocalCluster) -> AsyncIterator[ApiClient]:
    """A client; every Node the test made is deleted afterwards (nodes are cluster-wide)."""
    async with ApiClient(sched_cluster.servers) as client:
        yield client
        for node in (await client.list("Node"))[0]:
            await client.delete("Node", node.metadata.name)


@pytest.fixture
async def ns(api: ApiClient) -> str:
    name = f"s-{uuid.uuid4().hex[:8]}"
    await api.create(t.Namespace(metadata=t.ObjectMeta(name=name)))
    return name


def requesting(name: str, namespace: str, cpu: str = "", memory: str = "") -> t.Pod:
    p = pod(name, namespace)
    requests = p.spec.containers[0].resources.requests
    if cpu:
        requests["cpu"] = cpu
    if memory:
        requests["memory"] = memory
    return p


async def placement(api: ApiClient, namespace: str) -> dict[str, str]:
    """pod name -> node name ("" while pending)."""
    return {p.metadata.name: p.spec.node_name for p in (await api.list("Pod", namespace))[0]}


async def bound(api: ApiClient, namespace: str, count: int) -> dict[str, str]:
    """Wait until count pods are bound; return the placement."""
    async def check() -> dict[str, str] | None:
        where = await placement(api, namespace)
        return where if sum(1 for n in where.values() if n) >= count else None
    return await eventually(check, timeout=20)


async def assert_failed_scheduling(api: ApiClient, namespace: str, pod_name: str,
                                   message: str) -> None:
    """Wait for the pod's FailedScheduling event with exactly this message."""
    async def messages() -> set[str]:
        events = (await api.list("Event", namespace))[0]
        return {e.message for e in events if e.reason == "FailedScheduling"
                and e.involved_object.name == pod_name}
    async def seen() -> bool:
        return message in await messages()
    try:
        await eventually(seen, timeout=20)
    except AssertionError:
        raise AssertionError(f"no event {message!r}; saw {await messages()}") from None


async def test_requests_are_never_overcommitted(api: ApiClient, ns: str) -> None:
    await ready_node(api, "small-a", cpu="1")
    await ready_node(api, "small-b", cpu="1")
    for i in range(5):
        await api.create(requesting(f"p{i}", ns, cpu="400m"))
    where = await bound(api, ns, 4)
    assert Counter(n for n in where.values() if n) == {"small-a": 2, "small-b": 2}
    pending = next(name for name, node in where.items() if not node)
    await assert_failed_scheduling(
        api, ns, pending,
        "0/2 nodes are available: 2 Insufficient cpu.")

    # a node that fits appears: the pending pod is scheduled soon after
    await ready_node(api, "small-c", cpu="1")
    where = await bound(api, ns, 5)
    assert where[pending] == "small-c"


async def test_node_selector_and_required_affinity(api: ApiClient, ns: str) -> None:
    await ready_node(api, "zone-a", labels={"zone": "a", "disk": "ssd"})
    await ready_node(api, "zone-b", labels={"zone": "b"})
    selected = pod("selected", ns)
    selected.spec.node_selector["zone"] = "b"
    affine = pod("affine", ns)
    terms = affine.spec.affinity.node_affinity \
        .required_during_scheduling_ignored_during_execution.node_selector_terms
    terms.add().match_expressions.add(key="disk", operator="In", values=["ssd", "nvme"])
    nowhere = pod("nowhere", ns)
    nowhere.spec.node_selector["zone"] = "c"
    for p in (selected, affine, nowhere):
        await api.create(p)
    where = await bound(api, ns, 2)
    assert (where["selected"], where["affine"], where["nowhere"]) == ("zone-b", "zone-a", "")
    await assert_failed_scheduling(
        api, ns, "nowhere",
        "0/2 nodes are available: 2 node(s) didn't match Pod's node "
        "affinity/selector.")


async def test_taints_and_tolerations(api: ApiClient, ns: str) -> None:
    gpu = t.Taint(key="dedicated", value="gpu", effect="NoSchedule")
    await ready_node(api, "gpu-node", taints=[gpu])
    plain = pod("plain", ns)
    tolerant = pod("tolerant", ns)
    tolerant.spec.tolerations.add(key="dedicated", operator="Equal", value="gpu",
                                  effect="NoSchedule")
    await api.create(plain)
    await api.create(tolerant)
    where = await bound(api, ns, 1)
    assert where == {"plain": "", "tolerant": "gpu-node"}
    await assert_failed_scheduling(
        api, ns, "plain",
        "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}.")


async def test_host_port_conflicts(api: ApiClient, ns: str) -> None:
    await ready_node(api, "port-a")
    await ready_node(api, "port-b")
    for i in range(3):
        p = pod(f"web{i}", ns)
        p.spec.containers[0].ports.add(container_port=80, host_port=8080)
        await api.create(p)
    where = await bound(api, ns, 2)
    assert sorted(n for n in where.values() if n) == ["port-a", "port-b"]
    pending = next(name for name, node in where.items() if not node)
    await assert_failed_scheduling(
        api, ns, pending,
        "0/2 nodes are available: 2 node(s) didn't have free ports for the "
        "requested pod ports.")


async def test_not_ready_and_cordoned_nodes_are_skipped(api: ApiClient, ns: str) -> None:
    await api.create(t.Node(metadata=t.ObjectMeta(name="not-ready")))
    cordoned = await ready_node(api, "cordoned")
    cordoned.spec.unschedulable = True
    await api.update(cordoned)
    await ready_node(api, "good")
    for i in range(4):
        await api.create(pod(f"p{i}", ns))
    where = await bound(api, ns, 4)
    assert set(where.values()) == {"good"}


async def test_a_replica_sets_pods_are_spread(api: ApiClient, ns: str) -> None:
    for i in range(3):
        await ready_node(api, f"spread-{i}")
    owner = t.OwnerReference(api_version="apps/v1", kind="ReplicaSet", name="web",
                             uid=str(uuid.uuid4()), controller=True)
    for i in range(6):
        p = pod(f"web-{i}", ns)
        p.metadata.owner_references.append(owner)
        await api.create(p)
    where = await bound(api, ns, 6)
    assert sorted(Counter(where.values()).values()) == [2, 2, 2]


async def test_other_schedulers_pods_are_left_alone(api: ApiClient, ns: str) -> None:
    await ready_node(api, "any")
    mine = pod("mine", ns)
    theirs = pod("theirs", ns)
    theirs.spec.scheduler_name = "my-custom-scheduler"
    await api.create(theirs)
    await api.create(mine)
    await bound(api, ns, 1)
    assert (await placement(api, ns)) == {"mine": "any", "theirs": ""}
