"""minictl logs, exec and image load, through the kubelets of a real cluster,
and who the kubelets let do them."""
from __future__ import annotations

import os
import uuid

import docker
import grpc
import pytest

from minik8s import config, errors
from minik8s.api.v1 import kubelet_pb2 as k
from minik8s.api.v1 import kubelet_pb2_grpc as k_grpc
from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from minik8s.kubeletclient import KubeletClient, kubelet_target
from minik8s.localcluster import LocalCluster
from tests.integration.helpers import eventually, minictl
from tests.integration.kubelet_helpers import ECHO, echo_pod, until_phase, until_ready


def env_of(cluster: LocalCluster) -> dict[str, str]:
    return dict(os.environ, MINIK8S_SERVERS=",".join(cluster.servers))


async def test_logs_and_exec(node_cluster: LocalCluster, node_client: ApiClient,
                             node_namespace: str) -> None:
    env, ns = env_of(node_cluster), node_namespace
    await node_client.create(echo_pod("talker", ns, "sh", "-c",
                                      "echo first; echo second; sleep 3600"))
    await until_phase(node_client, "talker", ns, "Running")

    logs = await minictl(env, "logs", "talker", "-n", ns)
    assert logs.code == 0, logs.err
    assert logs.out.splitlines()[:2] == ["first", "second"]
    assert (await minictl(env, "logs", "talker", "-n", ns, "--tail", "1")).out == "second\n"

    done = await minictl(env, "exec", "talker", "-n", ns, "--", "sh", "-c",
                         "echo out; echo err >&2; exit 3")
    assert (done.code, done.out, done.err) == (3, "out\n", "err\n")

    missing = await minictl(env, "logs", "nobody", "-n", ns)
    assert missing.code != 0 and "nobody" in missing.err
    assert "Traceback" not in missing.err


async def test_logs_previous_shows_the_last_run(node_cluster: LocalCluster,
                                                node_client: ApiClient,
                                                node_namespace: str) -> None:
    await node_client.create(echo_pod("phoenix", node_namespace, "sh", "-c",
                                      "echo run-$RANDOM; sleep 1; exit 1"))

    async def restarted() -> bool:
        pod = await node_client.get("Pod", "phoenix", node_namespace)
        return bool(pod.status.container_statuses) and \
            pod.status.container_statuses[0].restart_count >= 1
    await eventually(restarted, timeout=30)
    previous = await minictl(env_of(node_cluster), "logs", "phoenix", "-p", "-n",
                             node_namespace)
    assert previous.code == 0, previous.err
    assert previous.out.startswith("run-")


async def test_image_load_into_every_node(node_cluster: LocalCluster, node_client: ApiClient,
                                          node_namespace: str) -> None:
    engine = docker.from_env()
    tag = f"minik8s/loaded:{uuid.uuid4().hex[:8]}"
    engine.images.get(ECHO).tag(tag)
    try:
        loaded = await minictl(env_of(node_cluster), "image", "load", tag)
        assert loaded.code == 0, loaded.err
        assert {line.split(":")[0] for line in loaded.out.splitlines()} == {"node-0", "node-1"}
        pod = echo_pod("from-loaded", node_namespace)
        pod.spec.containers[0].image = tag
        pod.spec.containers[0].image_pull_policy = "Never"
        await node_client.create(pod)
        await until_ready(node_client, "from-loaded", node_namespace)
    finally:
        await node_client.delete("Pod", "from-loaded", node_namespace)
        engine.images.remove(tag)  # only the tag: the image is the echo image


async def _bind_edit(client: ApiClient, user: str, namespace: str) -> None:
    await client.create(t.RoleBinding(
        metadata=t.ObjectMeta(name=f"{user}-edit", namespace=namespace),
        subjects=[t.Subject(kind="User", name=user)],
        role_ref=t.RoleRef(kind="ClusterRole", name="edit")))


async def test_kubelets_authorize_each_caller(node_cluster: LocalCluster, node_client: ApiClient,
                                              node_namespace: str) -> None:
    ns = node_namespace
    await node_client.create(echo_pod("guarded", ns, "sh", "-c", "echo secret; sleep 3600"))
    await until_phase(node_client, "guarded", ns, "Running")
    pod = await node_client.get("Pod", "guarded", ns)
    node = await node_client.get("Node", pod.spec.node_name)
    target = kubelet_target(node)

    ca = config.credentials().ca
    async with grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(ca)) as anonymous:
        with pytest.raises(grpc.aio.AioRpcError) as no_cert:
            await k_grpc.KubeletStub(anonymous).Stats(k.StatsRequest(), timeout=10)
    assert no_cert.value.code() == grpc.StatusCode.UNAVAILABLE

    dana = config.credentials(node_cluster.users.issue_certificate("dana"))
    async with KubeletClient(target, dana) as kubelet:
        with pytest.raises(errors.Forbidden) as refused:
            await kubelet.exec(ns, "guarded", ["true"])
        assert str(refused.value) == (f'pods "guarded" is forbidden: User "dana" cannot create '
                                      f'resource "pods" subresource "exec" in the namespace "{ns}"')
        with pytest.raises(errors.Forbidden, match='User "dana" cannot get resource "nodes"'):
            await kubelet.stats()

        await _bind_edit(node_client, "dana", ns)

        async def logs_allowed() -> bytes:
            try:
                return b"".join([c async for c in kubelet.logs(ns, "guarded")])
            except errors.Forbidden:
                return b""
        assert (await eventually(logs_allowed, timeout=30)).startswith(b"secret")
        with pytest.raises(errors.Forbidden, match="nodes"):
            await kubelet.stats()   # edit in a namespace says nothing about the node

    async with KubeletClient(target) as admin:
        assert (await admin.exec(ns, "guarded", ["echo", "hi"])).stdout == b"hi\n"
