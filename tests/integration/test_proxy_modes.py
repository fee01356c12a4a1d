"""The proxy's userspace mode, and its clean removal."""
from __future__ import annotations

import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from minik8s.localcluster import LocalCluster
from proxy.rules import Chains
from proxy.sink import Sink
from tests.integration.conftest import KUBELET_ARGS, _start
from tests.integration.helpers import eventually
from tests.integration.kubelet_helpers import app_container, echo_deployment, web_service
from tests.integration.net_helpers import answers_from_inside, names_seen


@pytest.fixture(scope="module")
def userspace_cluster(tmp_path_factory: pytest.TempPathFactory,
                      images: None) -> Iterator[LocalCluster]:
    c = _start(tmp_path_factory.mktemp("userspace"), masters=1, schedulers=1,
               controller_managers=1, nodes=1, kubelet_args=KUBELET_ARGS, proxy=True,
               proxy_args=["--proxy-mode", "userspace", "--sync-period", "2"])
    yield c
    c.stop()


@pytest.fixture
async def api(userspace_cluster: LocalCluster) -> AsyncIterator[ApiClient]:
    async with ApiClient(userspace_cluster.servers) as client:
        yield client


def our_chains(cluster: str) -> list[str]:
    prefix = Chains.for_cluster(cluster).prefix
    saved = "".join(subprocess.run(["iptables-save", "-t", table], capture_output=True,
                                   text=True, check=True).stdout for table in ("nat", "filter"))
    return [line for line in saved.splitlines() if prefix in line]


async def test_userspace_mode_reaches_every_endpoint(userspace_cluster: LocalCluster,
                                                     api: ApiClient) -> None:
    ns = f"u-{uuid.uuid4().hex[:8]}"
    await api.create(t.Namespace(metadata=t.ObjectMeta(name=ns)))
    await api.create(echo_deployment("web", ns, 2))
    svc = await api.create(web_service("web", ns, node_port=True))

    async def ready() -> set[str] | None:
        pods, _ = await api.list("Pod", ns)
        names = {p.metadata.name for p in pods
                 if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions)}
        return names if len(names) == 2 else None
    pods = await eventually(ready, timeout=60, interval=0.2)

    for ip, port in ((svc.spec.cluster_ip, 80), ("127.0.0.1", svc.spec.ports[0].node_port)):
        async def all_answer(ip: str = ip, port: int = port) -> bool:
            return set(await names_seen(ip, port, 12)) == pods
        await eventually(all_answer, timeout=30, interval=0.2)
    # and from inside a pod
    inside = app_container(await api.get("Pod", sorted(pods)[0], ns))
    assert await answers_from_inside(inside, f"http://{svc.spec.cluster_ip}/", pods) == pods
    assert not our_chains(userspace_cluster.name), "userspace mode wrote iptables rules"


async def test_stopping_the_cluster_removes_rules_and_sink(tmp_path: Path) -> None:
    cluster = _start(tmp_path / "c", masters=1, proxy=True)
    try:
        async with ApiClient(cluster.servers) as api:
            await api.create(web_service("lonely", "default"))
        await eventually(lambda: len(our_chains(cluster.name)) > 3, timeout=20)
        sink = Sink(cluster.name, cluster.service_cidr).device
        assert subprocess.run(["ip", "link", "show", sink], capture_output=True).returncode == 0
    finally:
        cluster.stop()  # which runs `minik8s proxy --cleanup`
    assert our_chains(cluster.name) == []
    assert subprocess.run(["ip", "link", "show", sink], capture_output=True).returncode != 0
