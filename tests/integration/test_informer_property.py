"""Property: whatever several clients do, every informer ends equal to etcd."""
from __future__ import annotations

import asyncio
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minik8s import errors
from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from minik8s.informer import Informer
from minik8s.localcluster import LocalCluster
from tests.integration.helpers import etcd_state, eventually, pod

OPS = st.lists(st.tuples(st.sampled_from(["create", "update", "delete"]),
                         st.integers(min_value=0, max_value=5)), min_size=1, max_size=20)


async def run_plan(client: ApiClient, namespace: str, plan: list[tuple[str, int]]) -> None:
    for op, n in plan:
        name = f"p{n}"
        try:
            if op == "create":
                await client.create(pod(name, namespace))
            elif op == "update":
                current = await client.get("Pod", name, namespace)
                current.metadata.labels["v"] = uuid.uuid4().hex[:8]
                await client.update(current)
            else:
                await client.delete("Pod", name, namespace)
        except (errors.AlreadyExists, errors.NotFound, errors.Conflict):
            pass  # other clients race us; that is the point


async def scenario(cluster: LocalCluster, plans: list[list[tuple[str, int]]]) -> None:
    namespace = f"prop-{uuid.uuid4().hex[:8]}"
    clients = [ApiClient([s]) for s in cluster.servers]
    informers = [Informer(c, "Pod", namespace) for c in clients]
    try:
        await clients[0].create(t.Namespace(metadata=t.ObjectMeta(name=namespace)))
        for inf in informers:
            inf.start()
        for inf in informers:
            assert await inf.wait_synced(timeout=20)
        await asyncio.gather(*(run_plan(clients[i % 3], namespace, plan)
                               for i, plan in enumerate(plans)))
        want = await etcd_state(cluster, "Pod", namespace)
        for inf in informers:
            await eventually(lambda inf=inf: {o.metadata.name: o.metadata.resource_version
                                              for o in inf.list()} == want, timeout=20)
    finally:
        for inf in informers:
            await inf.stop()
        for c in clients:
            await c.close()


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plans=st.lists(OPS, min_size=3, max_size=4))
def test_informers_equal_etcd(cluster: LocalCluster, plans: list[list[tuple[str, int]]]) -> None:
    asyncio.run(scenario(cluster, plans))
