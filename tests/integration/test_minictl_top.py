"""`minictl top nodes|pods` against the kubelets of a real cluster, with a busy pod."""
from __future__ import annotations

import os
import re

import pytest

from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from minik8s.localcluster import LocalCluster
from tests.integration.helpers import eventually, minictl
from tests.integration.kubelet_helpers import echo_pod, until_phase

NODE_ROW = re.compile(r"^(node-\d)\s+(\d+)m\s+(\d+)%\s+(\d+)Mi\s+(\d+)%$")
POD_ROW = re.compile(r"^(?:(\S+)\s+)?(\S+)\s+(\d+)m\s+(\d+)Mi$")


@pytest.fixture
def env(node_cluster: LocalCluster) -> dict[str, str]:
    return dict(os.environ, MINIK8S_SERVERS=",".join(node_cluster.servers))


def pod_cpu(out: str) -> dict[str, int]:
    """NAME -> millicores from a `top pods` table."""
    rows = [POD_ROW.match(line) for line in out.splitlines()[1:]]
    assert all(rows), out
    return {m[2]: int(m[3]) for m in rows if m}


async def test_top_shows_a_busy_pod_above_an_idle_one(env: dict[str, str],
                                                      node_client: ApiClient,
                                                      node_namespace: str) -> None:
    ns = node_namespace
    limits = t.ResourceRequirements(limits={"cpu": "500m", "memory": "64Mi"})
    busy = echo_pod("busy", ns, "sh", "-c", "while :; do :; done", resources=limits)
    busy.metadata.labels["app"] = "busy"
    await node_client.create(busy)
    await node_client.create(echo_pod("idle", ns, "sleep", "3600"))
    busy = await until_phase(node_client, "busy", ns, "Running", timeout=60)
    await until_phase(node_client, "idle", ns, "Running", timeout=60)

    async def both_measured() -> dict[str, int] | None:
        result = await minictl(env, "top", "pods", "-n", ns)
        if result.code != 0:
            return None
        assert result.out.splitlines()[0].split() == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
        cpu = pod_cpu(result.out)
        return cpu if {"busy", "idle"} <= set(cpu) and cpu["busy"] >= 100 else None
    cpu = await eventually(both_measured, timeout=90, interval=2)
    assert cpu["busy"] > 10 * max(cpu["idle"], 1), cpu

    # nodes: every node, usage in kubectl's units; the busy pod's node shows its load
    nodes = await minictl(env, "top", "nodes")
    assert nodes.code == 0, nodes.err
    lines = nodes.out.splitlines()
    assert lines[0].split() == ["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"]
    rows = {m[1]: m for m in map(NODE_ROW.match, lines[1:]) if m}
    assert set(rows) == {"node-0", "node-1"}, nodes.out
    assert int(rows[busy.spec.node_name][2]) >= 100

    # a label selector, all namespaces, one pod by name
    selected = await minictl(env, "top", "pods", "-n", ns, "-l", "app=busy")
    assert selected.code == 0 and set(pod_cpu(selected.out)) == {"busy"}, selected
    everywhere = await minictl(env, "top", "pods", "-A")
    assert everywhere.out.splitlines()[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert re.search(rf"^{ns}\s+busy\s+\d+m\s+\d+Mi$", everywhere.out, re.M), everywhere.out
    one = await minictl(env, "top", "pod", "idle", "-n", ns)
    assert one.code == 0 and set(pod_cpu(one.out)) == {"idle"}, one


async def test_top_errors_are_messages(env: dict[str, str], node_namespace: str) -> None:
    empty = await minictl(env, "top", "pods", "-n", node_namespace)
    assert empty.code == 0
    assert empty.err.strip() == f"No resources found in {node_namespace} namespace."
    missing = await minictl(env, "top", "pod", "nope", "-n", node_namespace)
    assert missing.code == 1
    assert missing.err.strip() == 'Error from server (NotFound): pods "nope" not found'
    node = await minictl(env, "top", "node", "no-such-node")
    assert node.code == 1 and "Traceback" not in node.err
    assert node.err.strip() == 'Error from server (NotFound): nodes "no-such-node" not found'
