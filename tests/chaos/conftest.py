"""Chaos fixtures: a cluster with every master role three times, of either kind.

Every scenario runs on a process-mode cluster; those marked `compose` run on
a compose project of the tests' own (`minik8s-chaos`, deploy/docker-compose.yml)
too, after all the process-mode ones (MINIK8S_SKIP_E2E=1 leaves them out: they
need the compose image). `pytest tests/chaos` (part of `make test`) runs each
scenario once with a small workload, so the suite stays within a few minutes
on a 2-core machine; `pytest tests/chaos --chaos-full` (`make chaos`) repeats
each fault several times under a larger workload and runs the monkey for a
minute. Every scenario appends its measurements to a JSON file
(`--chaos-results`, by default `chaos-results.json` in pytest's base temp dir)
that `tests/chaos/report.py` turns into docs/RELIABILITY.md.
"""
from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from minik8s import errors
from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from minik8s.localcluster import cluster_name
from tests.chaos import partition
from tests.chaos.base import DEFAULT, FULL, Chaos, ChaosConfig
from tests.chaos.compose_target import ComposeTarget
from tests.chaos.process_target import ProcessTarget
from tests.chaos.results import Results
from tests.compose import compose_cluster
from tests.integration.conftest import KUBELET_ARGS, PROXY_ARGS, ROOT, _start

COMPOSE_PROJECT = "minik8s-chaos"
COMPOSE_TIMEOUT = 900   # a compose scenario may first build the image and bring the project up


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chaos")
    group.addoption("--chaos-full", action="store_true", default=False,
                    help="chaos tests: repeat every fault (5 iterations), a 60 s monkey")
    group.addoption("--chaos-results", default="",
                    help="chaos tests: JSON file the measurements are appended to "
                         "(default: chaos-results.json in pytest's base temp dir)")


def _full(config: pytest.Config) -> bool:
    # the option exists only when this conftest was loaded at start-up
    return bool(config.getoption("--chaos-full", default=False))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "compose: a chaos scenario that runs on a compose "
                                       "cluster too")


def _kinds(definition: pytest.Item) -> list[str]:
    if definition.get_closest_marker("compose") and os.environ.get("MINIK8S_SKIP_E2E") != "1":
        return ["process", "compose"]
    return ["process"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Each scenario once per kind of cluster it runs on; pytest groups them by kind."""
    if "chaos" in metafunc.fixturenames:
        metafunc.parametrize("chaos", _kinds(metafunc.definition), indirect=True,
                             scope="module")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Full runs repeat every fault, and a compose cluster may need its image built:
    give their tests the time that takes."""
    for item in items:
        if "tests/chaos/" not in str(item.path).replace("\\", "/"):
            continue
        callspec = getattr(item, "callspec", None)
        if _full(config):
            item.add_marker(pytest.mark.timeout(1500))
        elif callspec is not None and callspec.params.get("chaos") == "compose":
            item.add_marker(pytest.mark.timeout(COMPOSE_TIMEOUT))


@pytest.fixture(scope="session")
def chaos_config(pytestconfig: pytest.Config) -> ChaosConfig:
    return FULL if _full(pytestconfig) else DEFAULT


@pytest.fixture(scope="session")
def results(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory,
            chaos_config: ChaosConfig) -> Results:
    path = pytestconfig.getoption("--chaos-results", default="") or \
        str(tmp_path_factory.getbasetemp() / "chaos-results.json")
    command = shlex.join(["pytest", *pytestconfig.invocation_params.args])
    res = Results(Path(path), chaos_config.mode, command)
    pytestconfig.stash[_RESULTS] = res
    return res


_RESULTS = pytest.StashKey[Results]()


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    res = config.stash.get(_RESULTS, None)
    if res is not None:
        terminalreporter.write_line(f"chaos measurements: {res.path} "
                                    f"(python tests/chaos/report.py {res.path})")


@contextmanager
def process_cluster(workdir: Path) -> Iterator[ProcessTarget]:
    """3 × (etcd, apiserver, scheduler, controller-manager), 2 kubelets and the proxy,
    each process in a cgroup of its own where cgroup v2 allows (for partitions)."""
    for script in ("start-docker.sh", "build-images.sh"):
        subprocess.run([str(ROOT / "scripts" / script)], check=True, capture_output=True)
    root = partition.cgroup2_root() if partition.supported() else None
    cluster = _start(workdir, masters=3, schedulers=3, controller_managers=3, nodes=2,
                     proxy=True, kubelet_args=KUBELET_ARGS, proxy_args=PROXY_ARGS,
                     cgroup_parent=str(root / cluster_name(workdir)) if root else "")
    target = ProcessTarget(cluster, root)
    try:
        yield target
    finally:
        target.heal()
        cluster.stop()


@contextmanager
def compose_project(workdir: Path) -> Iterator[ComposeTarget]:
    """The compose cluster (3 × etcd, apiserver, scheduler, controller-manager; 2 nodes).

    Its CA is its own: while it is up, the tests' API clients use its
    administrator's config (MINIK8S_CONFIG), as minictl on the host does.
    """
    with compose_cluster(COMPOSE_PROJECT, workdir, demo=False) as compose, \
            pytest.MonkeyPatch.context() as env:
        env.setenv("MINIK8S_CONFIG", compose.env["MINIK8S_CONFIG"])
        target = ComposeTarget(compose)
        try:
            yield target
        finally:
            target.heal()


@pytest.fixture(scope="module")
def chaos(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chaos]:
    """The cluster of the kind the test is parametrized with, and its restart counter."""
    start = {"process": process_cluster, "compose": compose_project}[request.param]
    with start(tmp_path_factory.mktemp(f"chaos-{request.param}")) as target:
        restarts = target.watch_restarts()
        try:
            yield Chaos(target, restarts)
        finally:
            restarts.stop()


@pytest.fixture
async def api(chaos: Chaos) -> AsyncIterator[ApiClient]:
    async with ApiClient(chaos.target.servers) as client:
        yield client


@pytest.fixture
async def chaos_ns(api: ApiClient, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A namespace of the scenario's own; deleted (with its pods) afterwards."""
    short = request.node.originalname.removeprefix("test_").replace("_", "-")[:20].strip("-")
    name = f"{short}-{uuid.uuid4().hex[:5]}"
    await api.create(t.Namespace(metadata=t.ObjectMeta(name=name)))
    yield name
    start = time.monotonic()
    while True:  # the cluster may still be recovering from the last fault
        try:
            await api.delete("Namespace", name)
            break
        except errors.NotFound:
            break
        except errors.ApiError:
            if time.monotonic() - start > 30:
                raise
            await asyncio.sleep(0.5)
