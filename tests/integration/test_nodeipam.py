"""Node IPAM: a distinct podCIDR per node, also across a controller-manager failover."""
from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from minik8s.localcluster import LocalCluster
from tests.integration.conftest import _start
from tests.integration.helpers import eventually, leader_process

CLUSTER_CIDR = ipaddress.ip_network("10.244.0.0/16")


@pytest.fixture(scope="module")
def ipam_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = _start(Path(tmp_path_factory.mktemp("ipam")), controller_managers=2)
    yield c
    c.stop()


@pytest.fixture
async def api(ipam_cluster: LocalCluster) -> AsyncIterator[ApiClient]:
    """A client; every Node the test made is deleted afterwards (nodes are cluster-wide)."""
    async with ApiClient(ipam_cluster.servers) as client:
        yield client
        for node in (await client.list("Node"))[0]:
            await client.delete("Node", node.metadata.name)


async def create_nodes(api: ApiClient, names: list[str]) -> None:
    await asyncio.gather(*(api.create(t.Node(metadata=t.ObjectMeta(name=n))) for n in names))


async def pod_cidrs(api: ApiClient, count: int) -> dict[str, str]:
    """node -> podCIDR, once count nodes have one; checks each is well formed."""
    async def assigned() -> dict[str, str] | None:
        nodes = (await api.list("Node"))[0]
        cidrs = {n.metadata.name: n.spec.pod_cidr for n in nodes if n.spec.pod_cidr}
        if len(cidrs) < count:
            return None
        for n in nodes:
            assert list(n.spec.pod_cidrs) == [n.spec.pod_cidr]
        return cidrs
    cidrs = await eventually(assigned, interval=0.2)
    for cidr in cidrs.values():
        net = ipaddress.ip_network(cidr)
        assert net.prefixlen == 24 and net.subnet_of(CLUSTER_CIDR)
    return cidrs


async def test_concurrent_nodes_get_distinct_cidrs_and_freed_ones_are_reused(
        api: ApiClient) -> None:
    await create_nodes(api, [f"node-{i}" for i in range(20)])
    cidrs = await pod_cidrs(api, 20)
    assert len(set(cidrs.values())) == 20

    freed = cidrs["node-7"]
    await api.delete("Node", "node-7")
    await create_nodes(api, ["node-new"])
    cidrs = await pod_cidrs(api, 20)
    assert cidrs["node-new"] == freed  # the lowest free one
    assert len(set(cidrs.values())) == 20


async def test_a_new_leader_hands_out_no_cidr_twice(ipam_cluster: LocalCluster,
                                                    api: ApiClient) -> None:
    await create_nodes(api, [f"before-{i}" for i in range(5)])
    await pod_cidrs(api, 5)
    identity, name = await leader_process(ipam_cluster, api)
    ipam_cluster.kill(name)
    await create_nodes(api, [f"after-{i}" for i in range(5)])
    cidrs = await pod_cidrs(api, 10)
    assert len(set(cidrs.values())) == 10
    assert (await leader_process(ipam_cluster, api))[0] != identity
