"""Watch semantics served from the watch cache."""
from __future__ import annotations

import asyncio
import urllib.request

from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient, WatchEvent
from minik8s.kinds import KINDS
from minik8s.localcluster import LocalCluster
from tests.integration.helpers import pod


async def next_events(stream, count: int, timeout: float = 10) -> list[WatchEvent]:
    """The next count non-bookmark events of a watch stream."""
    out: list[WatchEvent] = []

    async def take() -> None:
        async for ev in stream:
            if ev.type != "BOOKMARK":
                out.append(ev)
                if len(out) == count:
                    return
    await asyncio.wait_for(take(), timeout)
    return out


async def test_resume_waits_for_revision_on_another_replica(cluster: LocalCluster,
                                                            namespace: str) -> None:
    a, b = ApiClient([cluster.servers[0]]), ApiClient([cluster.servers[1]])
    try:
        for i in range(20):
            created = await a.create(pod(f"p{i}", namespace))
            before = str(int(created.metadata.resource_version) - 1)
            # b may not have seen this write yet; it must wait, not skip it
            events = await next_events(b.watch("Pod", namespace, resource_version=before), 1)
            assert (events[0].type, events[0].object.metadata.name) == ("ADDED", f"p{i}")
            assert events[0].resource_version == created.metadata.resource_version
    finally:
        await a.close()
        await b.close()


async def test_initial_state_then_changes(client: ApiClient, namespace: str) -> None:
    await client.create(pod("old", namespace))
    stream = client.watch("Pod", namespace)  # no resourceVersion: current state first
    first = await next_events(stream, 1)
    assert (first[0].type, first[0].object.metadata.name) == ("ADDED", "old")
    await client.create(pod("new", namespace))
    second = await next_events(stream, 1)
    assert (second[0].type, second[0].object.metadata.name) == ("ADDED", "new")
    await stream.aclose()


async def test_filters_send_objects_entering_and_leaving(client: ApiClient,
                                                         namespace: str) -> None:
    _, rv = await client.list("Pod", namespace)
    stream = client.watch("Pod", namespace, label_selector="tier=web", resource_version=rv)
    p = await client.create(pod("p", namespace, tier="db"))
    p.metadata.labels["tier"] = "web"
    p = await client.update(p)          # enters the filter: ADDED
    p.metadata.labels["tier"] = "db"
    p = await client.update(p)          # leaves it: DELETED
    events = await next_events(stream, 2)
    assert [(e.type, e.object.metadata.labels["tier"]) for e in events] == [
        ("ADDED", "web"), ("DELETED", "web")]
    assert events[1].resource_version == p.metadata.resource_version
    await stream.aclose()


async def test_field_selector_on_node_name(client: ApiClient, namespace: str) -> None:
    _, rv = await client.list("Pod", namespace)
    stream = client.watch("Pod", namespace, field_selector="spec.nodeName=node-a",
                          resource_version=rv)
    await client.create(pod("elsewhere", namespace))
    await client.create(pod("here", namespace))
    await client.bind(namespace, "elsewhere", "node-b")
    await client.bind(namespace, "here", "node-a")
    events = await next_events(stream, 1)
    assert (events[0].type, events[0].object.metadata.name) == ("ADDED", "here")
    await stream.aclose()


async def test_idle_watch_gets_bookmarks(own_cluster: LocalCluster) -> None:
    async with ApiClient(own_cluster.servers) as client:
        _, rv = await client.list("Pod", "default")
        await client.create(t.Namespace(metadata=t.ObjectMeta(name="busy")))
        _, later = await client.list("Namespace")
        bookmarks: list[str] = []

        async def collect() -> None:
            async for ev in client.watch("Pod", "default", resource_version=rv):
                assert ev.type == "BOOKMARK"
                bookmarks.append(ev.resource_version)
                if int(ev.resource_version) >= int(later):
                    return
        # own_cluster sends bookmarks every second; a pod watch sees the
        # namespace's revision without any pod changing
        await asyncio.wait_for(collect(), 10)
        assert int(bookmarks[-1]) >= int(later)


async def test_etcd_watches_do_not_grow_with_client_watches(cluster: LocalCluster,
                                                           client: ApiClient,
                                                           namespace: str) -> None:
    streams = [client.watch("Pod", namespace) for _ in range(50)]
    await asyncio.gather(*(anext(s) for s in streams))  # each got its initial BOOKMARK
    try:
        for proc in cluster.role("apiserver"):
            url = f"http://{cluster.host}:{proc.ports['http']}/metrics"
            with urllib.request.urlopen(url, timeout=5) as resp:
                metrics = resp.read().decode()
            line = next(m for m in metrics.splitlines()
                        if m.startswith("apiserver_etcd_watches "))
            assert float(line.split()[1]) == len(KINDS)
    finally:
        for s in streams:
            await s.aclose()
