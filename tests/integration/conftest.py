"""Integration fixtures: a real local cluster (etcd x3, apiserver x3) as processes."""
from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from minik8s.localcluster import LocalCluster
from tests.session_pki import session_pki

ROOT = Path(__file__).resolve().parents[2]
# fast restarts, so back-off can be watched growing within a test
KUBELET_ARGS = ["--crash-loop-backoff-initial", "1", "--crash-loop-backoff-max", "8"]
# a short resync, so rules changed by hand come back within a test
PROXY_ARGS = ["--sync-period", "2"]


def _start(tmp: Path, **kwargs: object) -> LocalCluster:
    cluster = LocalCluster(workdir=tmp, pki_dir=session_pki(), **kwargs)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One cluster shared by the tests that do not break it."""
    c = _start(tmp_path_factory.mktemp("cluster"))
    yield c
    c.stop()


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """A cluster of the test's own, for tests that kill its processes."""
    c = _start(tmp_path / "cluster", apiserver_args=["--bookmark-interval", "1"])
    yield c
    c.stop()


@pytest.fixture
async def client(cluster: LocalCluster) -> AsyncIterator[ApiClient]:
    async with ApiClient(cluster.servers) as c:
        yield c


@pytest.fixture
async def namespace(client: ApiClient) -> AsyncIterator[str]:
    """A fresh namespace, so tests sharing the cluster do not see each other."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    await client.create(t.Namespace(metadata=t.ObjectMeta(name=name)))
    yield name


@pytest.fixture
def cli_env(cluster: LocalCluster) -> dict[str, str]:
    """Environment for running minictl against the shared cluster."""
    return dict(os.environ, MINIK8S_SERVERS=",".join(cluster.servers))


@pytest.fixture(scope="session")
def images() -> None:
    """The local images (pause, echo), built if missing: no registry is reachable."""
    for script in ("start-docker.sh", "build-images.sh"):
        subprocess.run([str(ROOT / "scripts" / script)], check=True, capture_output=True)


@pytest.fixture(scope="session")
def node_cluster(tmp_path_factory: pytest.TempPathFactory, images: None) -> Iterator[LocalCluster]:
    """Two kubelets on the host's Docker engine, the proxy, two DNS replicas, one of every master."""
    c = _start(tmp_path_factory.mktemp("nodes"), masters=1, schedulers=1,
               controller_managers=1, nodes=2, kubelet_args=KUBELET_ARGS, proxy=True,
               proxy_args=PROXY_ARGS, dns=2)
    yield c
    c.stop()


@pytest.fixture
async def node_client(node_cluster: LocalCluster) -> AsyncIterator[ApiClient]:
    async with ApiClient(node_cluster.servers) as c:
        yield c


@pytest.fixture
async def node_namespace(node_client: ApiClient) -> AsyncIterator[str]:
    name = f"k-{uuid.uuid4().hex[:8]}"
    await node_client.create(t.Namespace(metadata=t.ObjectMeta(name=name)))
    yield name
    await node_client.delete("Namespace", name)  # its pods' containers go with it
