"""Deleting a namespace: everything in it goes, then the namespace itself."""
from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from minik8s import errors, kinds
from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from minik8s.localcluster import LocalCluster
from tests.integration.conftest import _start
from tests.integration.helpers import eventually, pod, replica_set


@pytest.fixture(scope="module")
def ns_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = _start(Path(tmp_path_factory.mktemp("nsdel")), controller_managers=1)
    yield c
    c.stop()


@pytest.fixture
async def api(ns_cluster: LocalCluster) -> AsyncIterator[ApiClient]:
    async with ApiClient(ns_cluster.servers) as client:
        yield client


async def contents(api: ApiClient, namespace: str) -> dict[str, int]:
    """kind -> how many objects of it the namespace holds (kinds it has none of left out)."""
    counts = {k.name: len((await api.list(k.name, namespace))[0])
              for k in kinds.KINDS if k.namespaced}
    return {kind: n for kind, n in counts.items() if n}


async def test_a_namespace_is_emptied_then_removed(api: ApiClient) -> None:
    ns = f"doomed-{uuid.uuid4().hex[:8]}"
    await api.create(t.Namespace(metadata=t.ObjectMeta(name=ns)))
    for name in ("a", "b", "bound"):
        await api.create(pod(name, ns))
    await api.bind(ns, "bound", "no-kubelet-here")  # would wait for a kubelet if graceful
    await api.create(t.Service(metadata=t.ObjectMeta(name="svc", namespace=ns),
                               spec=t.ServiceSpec(ports=[t.ServicePort(port=80)])))
    await api.create(replica_set("web", ns, 2))

    async def populated() -> bool:
        return (await contents(api, ns)).get("Pod") == 5
    await eventually(populated)

    marked = await api.delete("Namespace", ns)
    assert marked.status.phase == "Terminating"

    async def namespace_gone() -> bool:
        try:
            await api.get("Namespace", ns)
        except errors.NotFound:
            return True
        return False
    await eventually(namespace_gone, interval=0.2)
    assert await contents(api, ns) == {}

