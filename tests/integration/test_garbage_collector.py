"""Cascading deletion by the garbage collector: background, orphan, foreground."""
from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from controller_manager.pods import controller_ref
from minik8s import errors
from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from minik8s.localcluster import LocalCluster
from tests.integration.conftest import _start
from tests.integration.helpers import eventually, pod, replica_set


@pytest.fixture(scope="module")
def gc_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = _start(Path(tmp_path_factory.mktemp("gc")), controller_managers=1)
    yield c
    c.stop()


@pytest.fixture
async def api(gc_cluster: LocalCluster) -> AsyncIterator[ApiClient]:
    async with ApiClient(gc_cluster.servers) as client:
        yield client


@pytest.fixture
async def ns(api: ApiClient) -> str:
    name = f"gc-{uuid.uuid4().hex[:8]}"
    await api.create(t.Namespace(metadata=t.ObjectMeta(name=name)))
    return name


async def pods(api: ApiClient, namespace: str) -> list[t.Pod]:
    return (await api.list("Pod", namespace))[0]


async def gone(api: ApiClient, kind: str, name: str, namespace: str) -> bool:
    try:
        await api.get(kind, name, namespace)
    except errors.NotFound:
        return True
    return False


async def replica_set_with_pods(api: ApiClient, namespace: str) -> t.ReplicaSet:
    rs = await api.create(replica_set("web", namespace, 3))

    async def three() -> bool:
        return len(await pods(api, namespace)) == 3
    await eventually(three)
    return rs


async def test_background_deletes_the_dependents(api: ApiClient, ns: str) -> None:
    await replica_set_with_pods(api, ns)
    await api.delete("ReplicaSet", "web", ns)
    assert await gone(api, "ReplicaSet", "web", ns)  # at once: the GC follows

    async def no_pods() -> bool:
        return not await pods(api, ns)
    await eventually(no_pods)


async def test_an_object_goes_when_its_last_owner_does(api: ApiClient, ns: str) -> None:
    keeper = await api.create(t.Service(metadata=t.ObjectMeta(name="keeper", namespace=ns),
                                        spec=t.ServiceSpec(ports=[t.ServicePort(port=80)])))
    missing = t.OwnerReference(api_version="apps/v1", kind="ReplicaSet", name="missing",
                               uid=str(uuid.uuid4()))
    for name, refs in (("kept", [controller_ref(keeper)]), ("dangling", [missing]),
                       ("both", [missing, controller_ref(keeper)])):
        p = pod(name, ns)
        p.metadata.owner_references.extend(refs)
        await api.create(p)
    await eventually(lambda: gone(api, "Pod", "dangling", ns))
    assert {p.metadata.name for p in await pods(api, ns)} == {"kept", "both"}

    await api.delete("Service", "keeper", ns)

    async def no_pods() -> bool:
        return not await pods(api, ns)
    await eventually(no_pods)


async def test_orphan_keeps_the_dependents_without_the_reference(api: ApiClient,
                                                                 ns: str) -> None:
    await replica_set_with_pods(api, ns)
    marked = await api.delete("ReplicaSet", "web", ns, propagation_policy="Orphan")
    assert marked.metadata.HasField("deletion_timestamp")
    assert list(marked.metadata.finalizers) == ["orphan"]
    await eventually(lambda: gone(api, "ReplicaSet", "web", ns))
    left = await pods(api, ns)
    assert len(left) == 3
    assert all(not p.metadata.owner_references for p in left)

    # a pod owns nothing: Orphan deletes it as usual (no finalizer to wait on)
    await api.delete("Pod", left[0].metadata.name, ns, propagation_policy="Orphan")
    assert await gone(api, "Pod", left[0].metadata.name, ns)


async def test_foreground_removes_the_owner_after_its_dependents(api: ApiClient,
                                                                 ns: str) -> None:
    await replica_set_with_pods(api, ns)
    marked = await api.delete("ReplicaSet", "web", ns, propagation_policy="Foreground")
    assert list(marked.metadata.finalizers) == ["foregroundDeletion"]
    await eventually(lambda: gone(api, "ReplicaSet", "web", ns))
    assert not await pods(api, ns)
