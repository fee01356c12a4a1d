"""A watch survives the SIGKILL of its apiserver, missing and repeating nothing."""
from __future__ import annotations

import asyncio

from apiserver.etcd import Etcd
from minik8s import errors, kinds
from minik8s.client import ApiClient
from minik8s.localcluster import LocalCluster
from tests.integration.helpers import pod


async def etcd_history(cluster: LocalCluster, prefix: str, after: int,
                       until: int) -> list[tuple[str, str, int]]:
    """(type, name, revision) of every change under prefix in (after, until], from etcd."""
    etcd = Etcd(cluster.etcd_endpoints, tls=cluster.etcd_tls)
    stream = etcd.open_watch(prefix.encode(), after + 1)
    await stream.start()
    out: list[tuple[str, str, int]] = []
    try:
        while not out or out[-1][2] < until:
            resp = await stream.read()
            for e in resp.events:
                name = e.kv.key.decode().rsplit("/", 1)[-1]
                if e.type == e.DELETE:
                    kind = "DELETED"
                else:
                    kind = "ADDED" if e.kv.create_revision == e.kv.mod_revision else "MODIFIED"
                out.append((kind, name, e.kv.mod_revision))
    finally:
        stream.cancel()
        await etcd.close()
    return out


async def write_load(client: ApiClient, namespace: str, count: int) -> int:
    """Create, relabel and delete pods; return the last revision written."""
    last = 0
    for i in range(count):
        p = await client.create(pod(f"p{i}", namespace))
        p.metadata.labels["round"] = str(i)
        p = await client.update(p)
        last = int(p.metadata.resource_version)
        if i % 3 == 0:
            await client.delete("Pod", f"p{i}", namespace)
            _, rv = await client.list("Pod", namespace)
            last = int(rv)
    return last


async def test_watch_resumes_on_another_apiserver(own_cluster: LocalCluster) -> None:
    namespace = "default"
    watcher = ApiClient(own_cluster.servers)
    first_server = watcher.endpoint
    # the writer stays off the apiserver we kill, so its own calls are not in doubt
    writer = ApiClient([s for s in own_cluster.servers if s != first_server])
    _, start = await writer.list("Pod", namespace)
    seen: list[tuple[str, str, int]] = []
    last_rv = start
    killed = asyncio.Event()

    async def watch_forever() -> None:
        nonlocal last_rv
        while True:
            try:
                async for ev in watcher.watch("Pod", namespace, resource_version=last_rv):
                    if ev.type != "BOOKMARK":
                        seen.append((ev.type, ev.object.metadata.name, int(ev.resource_version)))
                    last_rv = ev.resource_version
                    if len(seen) == 20 and not killed.is_set():
                        own_cluster.kill(_name_of(own_cluster, first_server))
                        killed.set()
            except errors.ApiError:
                await asyncio.sleep(0.05)

    task = asyncio.create_task(watch_forever())
    try:
        end = await write_load(writer, namespace, 30)
        assert killed.is_set(), "the apiserver was never killed"
        deadline = asyncio.get_running_loop().time() + 30
        while (not seen or seen[-1][2] < end) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await writer.close()
        await watcher.close()
    assert watcher.endpoint != first_server
    expected = await etcd_history(own_cluster, kinds.prefix(kinds.by_name("Pod"), namespace),
                                  int(start), end)
    assert seen == expected


def _name_of(cluster: LocalCluster, server: str) -> str:
    port = int(server.rsplit(":", 1)[1])
    return next(p.name for p in cluster.role("apiserver") if p.ports["grpc"] == port)
