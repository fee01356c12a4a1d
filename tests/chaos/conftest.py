"""Chaos fixtures: one process-mode cluster with every master role three times.

`pytest tests/chaos` (part of `make test`) runs each scenario once with a small
workload, so the suite stays within a few minutes on a 2-core machine;
`pytest tests/chaos --chaos-full` (`make chaos`) repeats each fault several
times under a larger workload and runs the monkey for a minute. Every scenario
appends its measurements to a JSON file (`--chaos-results`, by default
`chaos-results.json` in pytest's base temp dir) that `tests/chaos/report.py`
turns into docs/RELIABILITY.md.
"""
from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from minik8s import errors
from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from tests.chaos.base import DEFAULT, FULL, Chaos, ChaosConfig, ProcWatch
from tests.chaos.results import Results
from tests.integration.conftest import KUBELET_ARGS, PROXY_ARGS, ROOT, _start


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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Full runs repeat every fault: give their tests the time that takes."""
    if not _full(config):
        return
    for item in items:
        if "tests/chaos/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.timeout(1500))


@pytest.fixture(scope="session")
def chaos_config(pytestconfig: pytest.Config) -> ChaosConfig:
    return FULL if _full(pytestconfig) else DEFAULT


@pytest.fixture(scope="session")
def results(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory,
            chaos_config: ChaosConfig) -> Results:
    path = pytestconfig.getoption("--chaos-results", default="") or \
        str(tmp_path_factory.getbasetemp() / "chaos-results.json")
    res = Results(Path(path), chaos_config.mode)
    pytestconfig.stash[_RESULTS] = res
    return res


_RESULTS = pytest.StashKey[Results]()


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    res = config.stash.get(_RESULTS, None)
    if res is not None:
        terminalreporter.write_line(f"chaos measurements: {res.path} "
                                    f"(python tests/chaos/report.py {res.path})")


@pytest.fixture(scope="module")
def chaos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chaos]:
    """3 × (etcd, apiserver, scheduler, controller-manager), 2 kubelets and the proxy."""
    for script in ("start-docker.sh", "build-images.sh"):
        subprocess.run([str(ROOT / "scripts" / script)], check=True, capture_output=True)
    cluster = _start(tmp_path_factory.mktemp("chaos"), masters=3, schedulers=3,
                     controller_managers=3, nodes=2, proxy=True, kubelet_args=KUBELET_ARGS,
                     proxy_args=PROXY_ARGS)
    watch = ProcWatch(cluster)
    try:
        yield Chaos(cluster, watch)
    finally:
        watch.stop()
        cluster.stop()


@pytest.fixture
async def api(chaos: Chaos) -> AsyncIterator[ApiClient]:
    async with ApiClient(chaos.cluster.servers) as client:
        yield client


@pytest.fixture
async def chaos_ns(api: ApiClient, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A namespace of the scenario's own; deleted (with its pods) afterwards."""
    short = request.node.name.removeprefix("test_").replace("_", "-")[:20].strip("-")
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
