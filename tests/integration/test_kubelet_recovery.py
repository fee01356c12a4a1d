"""The kubelet recovers from what happens behind its back, and from its own crash."""
from __future__ import annotations

import contextlib
import uuid

import docker
import docker.errors

from kubelet import labels
from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from minik8s.localcluster import LocalCluster
from tests.integration.helpers import eventually
from tests.integration.kubelet_helpers import (
    ECHO,
    app_container,
    containers_of,
    echo_pod,
    until_phase,
    until_ready,
)


def _ids_and_counts(pod: t.Pod) -> dict[str, tuple[str, int]]:
    return {s.name: (s.container_id, s.restart_count) for s in pod.status.container_statuses}


async def test_a_restarted_kubelet_adopts_running_containers(
        node_cluster: LocalCluster, node_client: ApiClient, node_namespace: str) -> None:
    probe = t.Probe(http_get=t.HTTPGetAction(path="/", port=t.IntOrString(int_val=8080)),
                    period_seconds=1)
    await node_client.create(echo_pod("steady", node_namespace, readiness_probe=probe))
    pod = await until_ready(node_client, "steady", node_namespace)
    before = _ids_and_counts(pod)
    docker_ids = {c.id for c in containers_of(pod, include_stopped=False)}
    node = pod.spec.node_name
    old_pid = node_cluster.procs[node].pid

    node_cluster.kill(node)  # SIGKILL; the supervisor starts it again
    await eventually(lambda: node_cluster.procs[node].alive
                     and node_cluster.procs[node].pid != old_pid, timeout=20)
    node_cluster.wait_ready(30, [node])

    # the restarted kubelet still runs its pods: a new one starts on that node ...
    fresh = echo_pod("after-restart", node_namespace)
    fresh.spec.node_name = node
    await node_client.create(fresh)
    await until_ready(node_client, "after-restart", node_namespace)
    # ... and the old one was neither restarted nor recreated, and is Ready again
    # (its probe passes at once: well before the kubelet's 30 s resync)
    pod = await until_ready(node_client, "steady", node_namespace, timeout=10)
    assert _ids_and_counts(pod) == before
    assert {c.id for c in containers_of(pod, include_stopped=False)} == docker_ids


async def test_a_container_removed_behind_the_kubelets_back_is_recreated(
        node_client: ApiClient, node_namespace: str) -> None:
    await node_client.create(echo_pod("victim", node_namespace))
    pod = await until_ready(node_client, "victim", node_namespace)
    removed = app_container(pod)
    removed.remove(force=True)

    async def replaced() -> t.Pod | None:
        current = await node_client.get("Pod", "victim", node_namespace)
        status = current.status.container_statuses[0]
        return current if (status.ready and status.container_id != f"docker://{removed.id}"
                           and status.restart_count == 1) else None
    pod = await eventually(replaced, timeout=30)
    assert app_container(pod).id != removed.id


async def test_an_orphan_container_is_removed(node_cluster: LocalCluster) -> None:
    engine = docker.from_env()
    orphan = engine.api.create_container(ECHO, ["sleep", "3600"], labels={
        labels.CLUSTER: node_cluster.name, labels.NODE: "node-0",
        labels.POD_UID: str(uuid.uuid4()), labels.POD_NAMESPACE: "default",
        labels.POD_NAME: "no-such-pod", labels.CONTAINER_NAME: "c", labels.GRACE: "1",
        "io.minik8s.test": "orphan"})["Id"]
    with contextlib.suppress(docker.errors.APIError):  # the kubelet may be quicker
        engine.api.start(orphan)
    try:
        def gone() -> bool:
            return not engine.api.containers(all=True, filters={"id": orphan})
        await eventually(gone, timeout=30)
    finally:
        for leftover in engine.api.containers(all=True, filters={"id": orphan}):
            engine.api.remove_container(leftover["Id"], force=True)


async def test_an_image_that_does_not_exist(node_client: ApiClient,
                                            node_namespace: str) -> None:
    # a registry on a closed loopback port: the engine fails fast, nothing leaves the machine
    await node_client.create(t.Pod(
        metadata=t.ObjectMeta(name="no-image", namespace=node_namespace),
        spec=t.PodSpec(containers=[t.Container(name="c", image="127.0.0.1:1/minik8s/none:1",
                                               image_pull_policy="IfNotPresent")])))
    await node_client.create(echo_pod("fine", node_namespace))
    reasons: dict[str, str] = {}

    async def backing_off() -> bool:
        pod = await node_client.get("Pod", "no-image", node_namespace)
        for status in pod.status.container_statuses:
            reasons[status.state.waiting.reason] = status.state.waiting.message
        return {"ErrImagePull", "ImagePullBackOff"} <= reasons.keys()
    try:
        await eventually(backing_off, timeout=40, interval=0.1)
    except AssertionError:
        raise AssertionError(f"waiting reasons seen: {reasons}") from None
    assert "127.0.0.1:1" in reasons["ErrImagePull"]
    assert (await node_client.get("Pod", "no-image", node_namespace)).status.phase == "Pending"
    await until_phase(node_client, "fine", node_namespace, "Running")
    events, _ = await node_client.list("Event", node_namespace)
    assert any(e.reason == "Failed" and "Failed to pull image" in e.message for e in events)
