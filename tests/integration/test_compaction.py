"""After etcd compaction an old resourceVersion is OUT_OF_RANGE; informers relist."""
from __future__ import annotations

import pytest

from apiserver.etcd import Etcd
from minik8s import errors
from minik8s.client import ApiClient
from minik8s.informer import Informer
from minik8s.localcluster import LocalCluster
from tests.integration.helpers import etcd_state, eventually, pod


async def compact(cluster: LocalCluster) -> None:
    etcd = Etcd(cluster.etcd_endpoints, tls=cluster.etcd_tls)
    try:
        await etcd.compact(await etcd.revision())
    finally:
        await etcd.close()


async def test_old_resource_version_is_out_of_range(own_cluster: LocalCluster) -> None:
    async with ApiClient(own_cluster.servers) as client:
        _, old = await client.list("Pod", "default")
        for i in range(3):
            await client.create(pod(f"p{i}", "default"))
        await compact(own_cluster)
        with pytest.raises(errors.Expired, match="too old resource version"):
            async for _ in client.watch("Pod", "default", resource_version=old):
                pass


async def test_informer_relists_and_converges(own_cluster: LocalCluster) -> None:
    first = own_cluster.role("apiserver")[0]
    async with ApiClient(own_cluster.servers) as writer, \
            ApiClient([own_cluster.servers[0]]) as reader:
        for i in range(5):
            await writer.create(pod(f"keep-{i}", "default"))
        informer = Informer(reader, "Pod", "default")
        deleted: list[str] = []
        informer.add_handler(on_delete=lambda obj: deleted.append(obj.metadata.name))
        informer.start()
        try:
            assert await informer.wait_synced(timeout=20)
            own_cluster.kill(first.name)   # the informer's watch breaks
            for i in range(3):
                await writer.delete("Pod", f"keep-{i}", "default")
                await writer.create(pod(f"new-{i}", "default"))
            await compact(own_cluster)     # its last resourceVersion is gone
            own_cluster.restart(first.name)

            async def converged() -> bool:
                want = await etcd_state(own_cluster, "Pod", "default")
                have = {o.metadata.name: o.metadata.resource_version for o in informer.list()}
                return have == want
            await eventually(converged, timeout=30)
            assert sorted(deleted) == ["keep-0", "keep-1", "keep-2"]
        finally:
            await informer.stop()
