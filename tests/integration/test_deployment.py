"""The Deployment controller: rollouts, their bounds, rollback, pause and history.

A real cluster with one scheduler and one controller-manager; the test plays
kubelet (FakeKubelet) so that pods become Ready and go away when deleted.
"""
from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from controller_manager.deployment import HASH_LABEL, MAX_REPLICAS, REVISION
from controller_manager.pods import is_ready
from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from minik8s.localcluster import LocalCluster
from minik8s.retry import retry_on_conflict
from minik8s.rollout import rollback
from tests.integration.conftest import _start
from tests.integration.helpers import FakeKubelet, Watching, eventually, ready_node


@pytest.fixture(scope="module")
def deploy_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = _start(Path(tmp_path_factory.mktemp("deploy")), schedulers=1, controller_managers=1)
    yield c
    c.stop()


@pytest.fixture
async def api(deploy_cluster: LocalCluster) -> AsyncIterator[ApiClient]:
    async with ApiClient(deploy_cluster.servers) as client:
        yield client


@pytest.fixture
async def ns(api: ApiClient) -> AsyncIterator[str]:
    """A fresh namespace with a node of its own and a kubelet playing it."""
    name = f"d-{uuid.uuid4().hex[:8]}"
    await api.create(t.Namespace(metadata=t.ObjectMeta(name=name)))
    await ready_node(api, name)
    async with FakeKubelet(api, name):
        yield name
    await api.delete("Node", name)


class PodObserver(Watching):
    """Watches a namespace's pods all along: after every change, how many are live
    (not terminating) per pod-template-hash, and how many live ones are Ready."""

    def __init__(self, client: ApiClient, namespace: str) -> None:
        super().__init__(client, namespace)
        self.live: dict[str, t.Pod] = {}
        self.history: list[tuple[Counter[str], int]] = []

    def apply(self, type_: str, pod: t.Pod) -> None:
        if type_ == "DELETED" or pod.metadata.HasField("deletion_timestamp"):
            self.live.pop(pod.metadata.name, None)
        else:
            self.live[pod.metadata.name] = pod

    def check(self) -> None:
        by_hash = Counter(p.metadata.labels[HASH_LABEL] for p in self.live.values())
        self.history.append((by_hash, sum(1 for p in self.live.values() if is_ready(p))))

    @property
    def most_live(self) -> int:
        return max(sum(by_hash.values()) for by_hash, _ in self.history)

    @property
    def fewest_ready(self) -> int:
        return min(ready for _, ready in self.history)


class ReplicaSetObserver(Watching):
    """Watches a namespace's ReplicaSets: the most spec.replicas they ever had in all."""

    kind = "ReplicaSet"

    def __init__(self, client: ApiClient, namespace: str) -> None:
        super().__init__(client, namespace)
        self.sizes: dict[str, int] = {}
        self.most = 0

    def apply(self, type_: str, rs: t.ReplicaSet) -> None:
        if type_ == "DELETED":
            self.sizes.pop(rs.metadata.name, None)
        else:
            self.sizes[rs.metadata.name] = rs.spec.replicas

    def check(self) -> None:
        self.most = max(self.most, sum(self.sizes.values()))


def int_or_str(v: int | str) -> t.IntOrString:
    return t.IntOrString(int_val=v) if isinstance(v, int) else t.IntOrString(str_val=v)


def deployment(namespace: str, replicas: int, *, surge: int | str = 1,
               unavailable: int | str = 0, recreate: bool = False,
               **spec: object) -> t.Deployment:
    labels = {"app": "web"}
    strategy = t.DeploymentStrategy(type="Recreate") if recreate else t.DeploymentStrategy(
        type="RollingUpdate", rolling_update=t.RollingUpdateDeployment(
            max_surge=int_or_str(surge), max_unavailable=int_or_str(unavailable)))
    return t.Deployment(
        metadata=t.ObjectMeta(name="web", namespace=namespace),
        spec=t.DeploymentSpec(
            replicas=replicas, selector=t.LabelSelector(match_labels=labels), strategy=strategy,
            template=t.PodTemplateSpec(
                metadata=t.ObjectMeta(labels=labels),
                spec=t.PodSpec(containers=[t.Container(name="c", image="busybox:1.36")])),
            **spec))


async def change(api: ApiClient, namespace: str, fn: Callable[[t.Deployment], None]) -> None:
    async def attempt() -> None:
        d = await api.get("Deployment", "web", namespace)
        fn(d)
        await api.update(d)
    await retry_on_conflict(attempt)


def set_image(image: str) -> Callable[[t.Deployment], None]:
    def fn(d: t.Deployment) -> None:
        d.spec.template.spec.containers[0].image = image
    return fn


async def replicasets(api: ApiClient, namespace: str) -> dict[str, t.ReplicaSet]:
    """pod-template-hash -> ReplicaSet."""
    items, _ = await api.list("ReplicaSet", namespace)
    return {rs.metadata.labels[HASH_LABEL]: rs for rs in items}


async def rolled_out(api: ApiClient, namespace: str, replicas: int,
                     timeout: float = 30) -> tuple[t.Deployment, str]:
    """Wait until the latest template runs on exactly replicas available pods and every
    other ReplicaSet is at 0; the deployment and the new pod-template-hash."""
    async def done() -> tuple[t.Deployment, str] | None:
        d = await api.get("Deployment", "web", namespace)
        s = d.status
        if not (s.observed_generation == d.metadata.generation
                and s.updated_replicas == s.replicas == s.available_replicas == replicas):
            return None
        pods, _ = await api.list("Pod", namespace)
        hashes = {p.metadata.labels[HASH_LABEL] for p in pods
                  if not p.metadata.HasField("deletion_timestamp")}
        if len(hashes) > 1:
            return None
        new = hashes.pop() if hashes else ""
        sizes = {h: rs.spec.replicas for h, rs in (await replicasets(api, namespace)).items()}
        return (d, new) if new and sizes.pop(new) == replicas and not any(sizes.values()) \
            else None
    return await eventually(done, timeout=timeout, interval=0.1)


def condition(d: t.Deployment, type_: str) -> t.WorkloadCondition | None:
    return next((c for c in d.status.conditions if c.type == type_), None)


async def test_rolling_update_keeps_bounds_then_rolls_back(api: ApiClient, ns: str) -> None:
    await api.create(deployment(ns, 10, surge=2, unavailable=1))
    d, first = await rolled_out(api, ns, 10)
    assert d.metadata.annotations[REVISION] == "1"
    async with PodObserver(api, ns) as pods, ReplicaSetObserver(api, ns) as sets:
        await change(api, ns, set_image("busybox:1.37"))
        d, second = await rolled_out(api, ns, 10)
        assert second != first
        assert d.metadata.annotations[REVISION] == "2"
        assert (available := condition(d, "Available")) and available.status == "True"
        progressing = condition(d, "Progressing")
        assert progressing and progressing.reason == "NewReplicaSetAvailable"

        d = await rollback(api, ns, "web")
        assert d.spec.template.spec.containers[0].image == "busybox:1.36"
        d, back = await rolled_out(api, ns, 10)
        assert back == first   # the old ReplicaSet, scaled up again
    assert pods.most_live <= 12, pods.most_live
    assert pods.fewest_ready >= 9, pods.fewest_ready
    assert sets.most <= 12, sets.most
    assert d.metadata.annotations[REVISION] == "3"
    by_hash = await replicasets(api, ns)
    assert set(by_hash) == {first, second}
    assert by_hash[first].metadata.annotations[REVISION] == "3"
    messages = {e.message for e in (await api.list("Event", ns))[0]
                if e.reason == "ScalingReplicaSet"}
    assert f"Scaled up replica set web-{second} to 2" in messages
    assert f"Scaled down replica set web-{second} to 0" in messages


async def test_percentages_round_as_kubernetes(api: ApiClient, ns: str) -> None:
    await api.create(deployment(ns, 4, surge="25%", unavailable="25%"))
    await rolled_out(api, ns, 4)
    async with PodObserver(api, ns) as pods:
        await change(api, ns, set_image("busybox:1.37"))
        _, new = await rolled_out(api, ns, 4)
    assert pods.most_live <= 5, pods.most_live      # maxSurge 25% of 4 rounds up to 1
    assert pods.fewest_ready >= 3, pods.fewest_ready  # maxUnavailable 25% of 4 rounds down to 1
    assert (await replicasets(api, ns))[new].metadata.annotations[MAX_REPLICAS] == "5"


async def test_recreate_stops_old_pods_before_starting_new_ones(api: ApiClient,
                                                                ns: str) -> None:
    await api.create(deployment(ns, 3, recreate=True))
    _, first = await rolled_out(api, ns, 3)
    async with PodObserver(api, ns) as pods:
        await change(api, ns, set_image("busybox:1.37"))
        _, second = await rolled_out(api, ns, 3)
    started = next(i for i, (by_hash, _) in enumerate(pods.history) if by_hash[second])
    assert all(by_hash[first] == 0 for by_hash, _ in pods.history[started:])
    assert pods.history[started - 1][0][first] == 0   # every old pod went first


async def test_paused_deployment_scales_but_does_not_roll_out(api: ApiClient, ns: str) -> None:
    await api.create(deployment(ns, 2))
    _, first = await rolled_out(api, ns, 2)

    def pause_and_change(d: t.Deployment) -> None:
        d.spec.paused = True
        d.spec.replicas = 3
        set_image("busybox:1.37")(d)
    await change(api, ns, pause_and_change)

    async def paused_and_scaled() -> bool:
        d = await api.get("Deployment", "web", ns)
        progressing = condition(d, "Progressing")
        return (d.status.observed_generation == d.metadata.generation
                and progressing is not None and progressing.reason == "DeploymentPaused"
                and d.status.available_replicas == 3)
    await eventually(paused_and_scaled)
    sets = await replicasets(api, ns)
    assert list(sets) == [first] and sets[first].spec.replicas == 3

    await change(api, ns, lambda d: setattr(d.spec, "paused", False))
    d, second = await rolled_out(api, ns, 3)
    assert second != first and d.metadata.annotations[REVISION] == "2"


async def test_revision_history_limit(api: ApiClient, ns: str) -> None:
    await api.create(deployment(ns, 1, revision_history_limit=1))
    await rolled_out(api, ns, 1)
    for version in ("1.37", "1.38", "1.39"):
        await change(api, ns, set_image(f"busybox:{version}"))
        _, current = await rolled_out(api, ns, 1)

    async def two_left() -> dict[str, t.ReplicaSet] | None:
        sets = await replicasets(api, ns)
        return sets if len(sets) == 2 else None
    sets = await eventually(two_left)
    assert current in sets
    assert sorted(rs.metadata.annotations[REVISION] for rs in sets.values()) == ["3", "4"]


async def test_progress_deadline_exceeded(api: ApiClient, ns: str) -> None:
    d = deployment(ns, 1, progress_deadline_seconds=1)
    d.spec.template.spec.node_selector["disk"] = "none"   # never scheduled, never ready
    await api.create(d)

    async def timed_out() -> bool:
        d = await api.get("Deployment", "web", ns)
        progressing, available = condition(d, "Progressing"), condition(d, "Available")
        return (progressing is not None and progressing.status == "False"
                and progressing.reason == "ProgressDeadlineExceeded"
                and available is not None and available.reason == "MinimumReplicasUnavailable")
    await eventually(timed_out, timeout=15)
