"""StatefulSets with real pods: order, identity, storage that outlives pods, updates.

The pods are echo web servers that are Ready when they answer on :8080, so
"Ready" is the kubelet's real readiness probe. Order is checked on the watch
stream, which the apiserver delivers in resourceVersion order: no clocks.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from dataclasses import dataclass

import docker
import pytest

from controller_manager.pods import is_ready
from controller_manager.statefulset import POD_NAME_LABEL, REVISION_LABEL
from minik8s import podnet
from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from minik8s.localcluster import LocalCluster
from minik8s.retry import retry_on_conflict
from tests.integration.helpers import Watching, eventually, minictl
from tests.integration.kubelet_helpers import app_container, echo_pod
from tests.integration.net_helpers import lookup

SERVICE = "nginx"
CLAIM = "www"
TIMEOUT = 120


def web_set(namespace: str, replicas: int, policy: str = "OrderedReady",
            name: str = "web") -> t.StatefulSet:
    """Echo servers, Ready when they answer, each with a claim "www" at /data."""
    labels = {"app": name}
    pod = echo_pod(name, namespace,
                   ports=[t.ContainerPort(name="http", container_port=8080)],
                   readiness_probe=t.Probe(http_get=t.HTTPGetAction(
                       path="/", port=t.IntOrString(int_val=8080)), period_seconds=1),
                   volume_mounts=[t.VolumeMount(name=CLAIM, mount_path="/data")])
    return t.StatefulSet(
        metadata=t.ObjectMeta(name=name, namespace=namespace),
        spec=t.StatefulSetSpec(
            replicas=replicas, service_name=SERVICE, pod_management_policy=policy,
            selector=t.LabelSelector(match_labels=labels),
            template=t.PodTemplateSpec(metadata=t.ObjectMeta(labels=labels), spec=pod.spec),
            volume_claim_templates=[t.PersistentVolumeClaim(
                metadata=t.ObjectMeta(name=CLAIM),
                spec=t.PersistentVolumeClaimSpec(
                    access_modes=["ReadWriteOnce"],
                    resources=t.ResourceRequirements(requests={"storage": "64Mi"})))]))


@dataclass(frozen=True)
class Seen:
    """One watch event of a pod, reduced to what order is about."""

    type: str
    name: str
    uid: str
    ready: bool
    terminating: bool
    revision: str


class Recorder(Watching):
    """Every pod event of the namespace, in the order the watch delivered them."""

    def __init__(self, client: ApiClient, namespace: str) -> None:
        super().__init__(client, namespace)
        self.log: list[Seen] = []

    def apply(self, type_: str, pod: t.Pod) -> None:
        self.log.append(Seen(type_, pod.metadata.name, pod.metadata.uid, is_ready(pod),
                             pod.metadata.HasField("deletion_timestamp"),
                             pod.metadata.labels.get(REVISION_LABEL, "")))

    def first(self, name: str, what: str, after: int = 0) -> int:
        """Index of the first event from `after` on where the pod `name` was
        added / ready (and not terminating) / terminating / deleted."""
        for i, seen in enumerate(self.log[after:], after):
            if seen.name == name and {"added": seen.type == "ADDED",
                                      "ready": seen.ready and not seen.terminating,
                                      "terminating": seen.terminating,
                                      "deleted": seen.type == "DELETED"}[what]:
                return i
        raise AssertionError(f"{name} never {what}: {self.log}")


async def settled(client: ApiClient, namespace: str, name: str = "web",
                  timeout: float = TIMEOUT) -> t.StatefulSet:
    """Wait until the status says every pod is there, Ready and at the update revision,
    with exactly those pods in the namespace."""
    async def check() -> t.StatefulSet | None:
        sts = await client.get("StatefulSet", name, namespace)
        s, replicas = sts.status, sts.spec.replicas
        pods = (await client.list("Pod", namespace))[0]
        done = (s.observed_generation == sts.metadata.generation
                and s.replicas == s.ready_replicas == s.updated_replicas == replicas
                and s.current_revision == s.update_revision
                and sorted(p.metadata.name for p in pods) ==
                sorted(f"{name}-{i}" for i in range(replicas)))
        return sts if done else None
    return await eventually(check, timeout=timeout, interval=0.2)


async def pods_by_name(client: ApiClient, namespace: str) -> dict[str, t.Pod]:
    return {p.metadata.name: p for p in (await client.list("Pod", namespace))[0]}


def cli_env(cluster: LocalCluster) -> dict[str, str]:
    return dict(os.environ, MINIK8S_SERVERS=",".join(cluster.servers))


async def test_ordered_ready_makes_each_pod_once_the_one_before_is_ready(
        node_client: ApiClient, node_namespace: str) -> None:
    async with Recorder(node_client, node_namespace) as seen:
        await node_client.create(web_set(node_namespace, 3))
        sts = await settled(node_client, node_namespace)

    added = [seen.first(f"web-{i}", "added") for i in range(3)]
    assert added == sorted(added)
    for i in (1, 2):
        assert added[i] > seen.first(f"web-{i - 1}", "ready"), \
            f"web-{i} was created before web-{i - 1} was Ready: {seen.log}"
    assert sts.status.current_replicas == 3
    assert sts.status.current_revision.startswith("web-")

    pods = await pods_by_name(node_client, node_namespace)
    for i in range(3):
        pod = pods[f"web-{i}"]
        assert (pod.spec.hostname, pod.spec.subdomain) == (f"web-{i}", SERVICE)
        assert pod.metadata.labels[POD_NAME_LABEL] == f"web-{i}"
        assert pod.metadata.labels[REVISION_LABEL] == sts.status.update_revision
        assert [(v.name, v.persistent_volume_claim.claim_name) for v in pod.spec.volumes] == \
            [(CLAIM, f"{CLAIM}-web-{i}")]
        assert pod.metadata.owner_references[0].uid == sts.metadata.uid
        out = app_container(pod).exec_run(["hostname"])
        assert out.output.decode().strip() == f"web-{i}"

    # each pod has a stable DNS name: <hostname>.<serviceName>, from any pod
    async def web_1_resolves() -> bool:
        found = await asyncio.to_thread(lookup, app_container(pods["web-0"]),
                                        f"web-1.{SERVICE}.{node_namespace}.svc.cluster.local")
        return found == [pods["web-1"].status.pod_ip]
    await eventually(web_1_resolves, timeout=20)


async def test_a_deleted_pod_comes_back_under_its_name_with_its_data(
        node_cluster: LocalCluster, node_client: ApiClient, node_namespace: str) -> None:
    await node_client.create(web_set(node_namespace, 2))
    await settled(node_client, node_namespace)
    before = await pods_by_name(node_client, node_namespace)
    note = f"written by {before['web-1'].metadata.uid}"
    wrote = app_container(before["web-1"]).exec_run(
        ["sh", "-c", f"echo '{note}' > /data/note"])
    assert wrote.exit_code == 0, wrote.output

    volume = docker.from_env().volumes.get(
        f"minik8s-{node_cluster.name}-{node_namespace}-{CLAIM}-web-1")
    assert volume.attrs["Labels"]["io.minik8s.cluster"] == node_cluster.name

    await node_client.delete("Pod", "web-1", node_namespace)

    async def back() -> t.Pod | None:
        pod = (await pods_by_name(node_client, node_namespace)).get("web-1")
        fresh = pod is not None and pod.metadata.uid != before["web-1"].metadata.uid
        return pod if fresh and is_ready(pod) else None
    again = await eventually(back, timeout=TIMEOUT, interval=0.2)

    read = app_container(again).exec_run(["cat", "/data/note"])
    assert (read.exit_code, read.output.decode().strip()) == (0, note)
    # each pod has storage of its own
    other = app_container(before["web-0"]).exec_run(["cat", "/data/note"])
    assert other.exit_code != 0
    # web-0 was left alone
    assert (await pods_by_name(node_client, node_namespace))["web-0"].metadata.uid == \
        before["web-0"].metadata.uid


async def test_scale_down_removes_the_highest_ordinal_first_one_at_a_time(
        node_cluster: LocalCluster, node_client: ApiClient, node_namespace: str) -> None:
    await node_client.create(web_set(node_namespace, 3))
    await settled(node_client, node_namespace)
    async with Recorder(node_client, node_namespace) as seen:
        result = await minictl(cli_env(node_cluster), "-n", node_namespace, "scale",
                               "sts/web", "--replicas", "1")
        assert result.code == 0, result.err
        assert result.out.strip() == "statefulset.apps/web scaled"
        sts = await settled(node_client, node_namespace)
    assert sts.status.replicas == 1
    # web-1's deletion started only once web-2 was gone
    assert seen.first("web-2", "terminating") < seen.first("web-2", "deleted") < \
        seen.first("web-1", "terminating") < seen.first("web-1", "deleted")
    assert not any(s.name == "web-0" and s.terminating for s in seen.log)
    listed = await minictl(cli_env(node_cluster), "-n", node_namespace, "get", "sts")
    assert [line.split()[:2] for line in listed.out.splitlines()] == \
        [["NAME", "READY"], ["web", "1/1"]]


async def test_a_rolling_update_with_a_partition_updates_only_the_ordinals_above_it(
        node_cluster: LocalCluster, node_client: ApiClient, node_namespace: str) -> None:
    await node_client.create(web_set(node_namespace, 3))
    old = await settled(node_client, node_namespace)
    before = await pods_by_name(node_client, node_namespace)
    env = cli_env(node_cluster)

    async def change() -> t.StatefulSet:
        sts = await node_client.get("StatefulSet", "web", node_namespace)
        sts.spec.update_strategy.rolling_update.partition = 2
        sts.spec.template.spec.containers[0].env.add(name="VERSION", value="2")
        return await node_client.update(sts)
    await retry_on_conflict(change)
    async with Recorder(node_client, node_namespace) as seen:
        status = await minictl(env, "-n", node_namespace, "rollout", "status",
                               "statefulset/web", "--timeout", f"{TIMEOUT}s")
        assert status.code == 0, status.err
        assert status.out.splitlines()[-1] == \
            "partitioned roll out complete: 1 new pods have been updated..."
        sts = await node_client.get("StatefulSet", "web", node_namespace)
        new_revision = sts.status.update_revision
        assert new_revision != old.status.update_revision
        assert sts.status.current_revision == old.status.update_revision
        assert (sts.status.updated_replicas, sts.status.current_replicas) == (1, 2)
        now = await pods_by_name(node_client, node_namespace)
        assert now["web-2"].metadata.labels[REVISION_LABEL] == new_revision
        assert now["web-2"].spec.containers[0].env[0].value == "2"
        for name in ("web-0", "web-1"):
            assert now[name].metadata.uid == before[name].metadata.uid
            assert now[name].metadata.labels[REVISION_LABEL] == old.status.update_revision

        # a pod below the partition made again keeps the current revision
        await node_client.delete("Pod", "web-0", node_namespace)

        async def back() -> t.Pod | None:
            pod = (await pods_by_name(node_client, node_namespace)).get("web-0")
            fresh = pod is not None and pod.metadata.uid != before["web-0"].metadata.uid
            return pod if fresh and is_ready(pod) else None
        web0 = await eventually(back, timeout=TIMEOUT, interval=0.2)
        assert web0.metadata.labels[REVISION_LABEL] == old.status.update_revision
        assert not web0.spec.containers[0].env
        mark = len(seen.log)

        # partition 0: the rest follows, from the highest ordinal down
        async def unpartition() -> None:
            sts = await node_client.get("StatefulSet", "web", node_namespace)
            sts.spec.update_strategy.rolling_update.partition = 0
            await node_client.update(sts)
        await retry_on_conflict(unpartition)
        status = await minictl(env, "-n", node_namespace, "rollout", "status", "sts/web",
                               "--timeout", f"{TIMEOUT}s")
        assert status.code == 0, status.err
        assert status.out.splitlines()[-1] == \
            f"statefulset rolling update complete 3 pods at revision {new_revision}..."
        await settled(node_client, node_namespace)
    # web-0 goes only once web-1 is back and Ready
    web1_goes = seen.first("web-1", "terminating", mark)
    assert web1_goes < seen.first("web-1", "ready", web1_goes) < \
        seen.first("web-0", "terminating", mark)
    assert not any(s.name == "web-2" and s.terminating for s in seen.log[mark:])


async def test_parallel_makes_every_pod_at_once_and_the_set_takes_them_when_deleted(
        node_client: ApiClient, node_namespace: str) -> None:
    async with Recorder(node_client, node_namespace) as seen:
        await node_client.create(web_set(node_namespace, 3, policy="Parallel"))
        await settled(node_client, node_namespace)
    first_ready = min(i for i, s in enumerate(seen.log) if s.ready)
    assert max(seen.first(f"web-{i}", "added") for i in range(3)) < first_ready, seen.log

    # cascading deletion by the garbage collector
    await node_client.delete("StatefulSet", "web", node_namespace)

    async def emptied() -> bool:
        return not (await node_client.list("Pod", node_namespace))[0]
    await eventually(emptied, timeout=TIMEOUT, interval=0.2)


def test_tearing_a_cluster_down_removes_its_volumes(images: None) -> None:
    engine = docker.from_env()
    cluster = f"minik8s-test-{uuid.uuid4().hex[:8]}"
    mine = engine.volumes.create(f"minik8s-{cluster}-ns-www-web-0",
                                 labels={podnet.CLUSTER_LABEL: cluster})
    other = engine.volumes.create(f"minik8s-{cluster}x-ns-www-web-0",
                                  labels={podnet.CLUSTER_LABEL: f"{cluster}x"})
    try:
        podnet.remove(cluster)
        with pytest.raises(docker.errors.NotFound):
            engine.volumes.get(mine.name)
        assert engine.volumes.get(other.name).name == other.name
    finally:
        for volume in (mine, other):
            with contextlib.suppress(docker.errors.NotFound):
                volume.remove(force=True)
