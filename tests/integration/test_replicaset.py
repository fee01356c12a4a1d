"""The ReplicaSet controller, and exact counts while controller-manager leaders die."""
from __future__ import annotations

import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from minik8s.localcluster import LocalCluster
from minik8s.retry import retry_on_conflict
from tests.integration.conftest import _start
from tests.integration.helpers import (
    Watching,
    apiserver_samples,
    eventually,
    leader_process,
    pod,
    replica_set,
)


@pytest.fixture(scope="module")
def cm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = _start(Path(tmp_path_factory.mktemp("cm")), controller_managers=3)
    yield c
    c.stop()


@pytest.fixture
async def api(cm_cluster: LocalCluster) -> AsyncIterator[ApiClient]:
    async with ApiClient(cm_cluster.servers) as client:
        yield client


@pytest.fixture
async def ns(api: ApiClient) -> str:
    name = f"rs-{uuid.uuid4().hex[:8]}"
    await api.create(t.Namespace(metadata=t.ObjectMeta(name=name)))
    return name


class Observer(Watching):
    """Watches a namespace's live pods all the time and remembers the most it ever saw."""

    def __init__(self, client: ApiClient, namespace: str) -> None:
        super().__init__(client, namespace)
        self.live: set[str] = set()
        self.most = 0

    def apply(self, type_: str, pod: t.Pod) -> None:
        if type_ == "DELETED" or pod.metadata.HasField("deletion_timestamp"):
            self.live.discard(pod.metadata.name)
        else:
            self.live.add(pod.metadata.name)

    def check(self) -> None:
        self.most = max(self.most, len(self.live))


async def scale(client: ApiClient, namespace: str, name: str, replicas: int) -> None:
    async def attempt() -> None:
        rs = await client.get("ReplicaSet", name, namespace)
        rs.spec.replicas = replicas
        await client.update(rs)
    await retry_on_conflict(attempt)


async def settled_at(client: ApiClient, obs: Observer, namespace: str, count: int) -> None:
    """Wait until the observer and the ReplicaSet status both say count."""
    async def done() -> bool:
        rs = await client.get("ReplicaSet", "web", namespace)
        return len(obs.live) == count and rs.status.replicas == count \
            and rs.status.observed_generation == rs.metadata.generation
    await eventually(done, timeout=60)


async def test_scale_and_adopt(api: ApiClient, ns: str) -> None:
    orphan = pod("orphan", ns, app="web")
    await api.create(orphan)
    async with Observer(api, ns) as obs:
        await api.create(replica_set("web", ns, 3))
        await settled_at(api, obs, ns, 3)
        adopted = await api.get("Pod", "orphan", ns)
        assert adopted.metadata.owner_references[0].name == "web"   # adopted, not replaced
        await scale(api, ns, "web", 1)
        await settled_at(api, obs, ns, 1)
        assert obs.most == 3
    events = (await api.list("Event", ns))[0]
    assert {e.reason for e in events} >= {"SuccessfulCreate", "SuccessfulDelete"}


async def test_leader_killed_while_scaling_to_50(cm_cluster: LocalCluster, api: ApiClient,
                                                 ns: str) -> None:
    await api.create(replica_set("web", ns, 0))
    async with Observer(api, ns) as obs:
        identity, name = await leader_process(cm_cluster, api)
        await scale(api, ns, "web", 50)
        await eventually(lambda: len(obs.live) >= 5, interval=0.01)
        cm_cluster.kill(name)
        await settled_at(api, obs, ns, 50)
        assert (await leader_process(cm_cluster, api))[0] != identity
        assert obs.most == 50


async def test_leader_paused_past_its_lease_while_scaling(cm_cluster: LocalCluster,
                                                         api: ApiClient, ns: str) -> None:
    await api.create(replica_set("web", ns, 0))
    async with Observer(api, ns) as obs:
        identity, name = await leader_process(cm_cluster, api)
        old_pid = cm_cluster.procs[name].pid
        await scale(api, ns, "web", 50)
        await eventually(lambda: len(obs.live) >= 5, interval=0.01)
        cm_cluster.signal(name, signal.SIGSTOP)
        try:
            async def successor() -> bool:
                return (await leader_process(cm_cluster, api))[0] != identity
            await eventually(successor, timeout=15)
            await settled_at(api, obs, ns, 50)
        finally:
            cm_cluster.signal(name, signal.SIGCONT)
        # the old leader wakes up, is refused, and exits (to be started again)
        await eventually(lambda: cm_cluster.procs[name].pid != old_pid, timeout=20)
        await settled_at(api, obs, ns, 50)
        assert obs.most == 50
    refused = sum(int(value) for labels, value in
                  apiserver_samples(cm_cluster, "apiserver_fenced_writes_total")
                  if labels["holder"] == identity and labels["result"] == "rejected")
    print(f"writes of the paused leader refused after it woke: {refused}")
