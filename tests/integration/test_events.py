"""A crash-looping pod's BackOff is one Event whose count grows, and minictl shows it."""
from __future__ import annotations

import os
import re

import pytest

from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from minik8s.localcluster import LocalCluster
from tests.integration.helpers import eventually, minictl
from tests.integration.kubelet_helpers import echo_pod

REPEATED = re.compile(r"\(x(\d+) over \S+\)")


@pytest.fixture
def env(node_cluster: LocalCluster) -> dict[str, str]:
    return dict(os.environ, MINIK8S_SERVERS=",".join(node_cluster.servers))


async def backoffs(client: ApiClient, pod: t.Pod) -> list[t.Event]:
    events, _ = await client.list("Event", pod.metadata.namespace)
    return [e for e in events if e.reason == "BackOff"
            and e.involved_object.uid == pod.metadata.uid]


async def count_reaches(client: ApiClient, pod: t.Pod, at_least: int) -> t.Event:
    async def reached() -> t.Event | None:
        found = await backoffs(client, pod)
        assert len(found) <= 1, [(e.metadata.name, e.count) for e in found]
        return found[0] if found and found[0].count >= at_least else None
    return await eventually(reached, timeout=60, interval=0.5)


async def test_crash_loop_back_off_is_one_event_whose_count_grows(
        env: dict[str, str], node_client: ApiClient, node_namespace: str) -> None:
    ns = node_namespace
    pod = await node_client.create(echo_pod("crash", ns, "sh", "-c", "exit 1"))

    first = await count_reaches(node_client, pod, 2)
    assert first.type == "Warning" and first.source.component == "kubelet"
    assert first.message == (f"Back-off restarting failed container c in pod "
                             f"crash_{ns}({pod.metadata.uid})")
    assert first.source.host == (await node_client.get("Pod", "crash", ns)).spec.node_name
    watch = await minictl(env, "get", "events", "-n", ns, "-w", "--watch-timeout", "20")
    later = await count_reaches(node_client, pod, first.count + 1)
    assert later.metadata.name == first.metadata.name
    assert later.last_timestamp.ToNanoseconds() > first.last_timestamp.ToNanoseconds()
    assert later.first_timestamp == first.first_timestamp
    assert len(await backoffs(node_client, pod)) == 1

    # the watch printed the listed event, then its updates with a growing count
    assert watch.code == 0, watch.err
    rows = [line for line in watch.out.splitlines() if " BackOff " in line]
    counts = [int(m[1]) for m in map(REPEATED.search, rows) if m]
    assert len(counts) == len(rows) >= 2, watch.out
    assert counts == sorted(counts) and counts[-1] > counts[0], counts

    # describe shows the one event with its count, as kubectl does
    described = await minictl(env, "describe", "pod", "crash", "-n", ns)
    assert described.code == 0, described.err
    lines = [line for line in described.out.splitlines() if " BackOff " in line]
    assert len(lines) == 1, described.out
    assert re.match(r"^\s+Warning\s+BackOff\s+\S+ \(x(\d+) over \S+\)\s+kubelet\s+"
                    r"Back-off restarting failed container c in pod ", lines[0]), lines[0]
    assert int(REPEATED.search(lines[0])[1]) >= later.count
