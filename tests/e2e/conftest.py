"""The e2e tests share one compose cluster, the project `minik8s-e2e`.

It is brought up once for the package (scripts/compose-up.sh, after a
compose-down of that project, so it starts clean; a cluster of yours from
`make up` is left alone) and removed at the end. MINIK8S_E2E_PROJECT names
another project (for several worktrees on one machine). The test that checks
compose-down removes it runs after every other e2e test.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.compose import Compose, compose_cluster

PROJECT = os.environ.get("MINIK8S_E2E_PROJECT") or "minik8s-e2e"
HERE = Path(__file__).resolve().parent
LAST = "test_compose_down_leaves_nothing"


@pytest.fixture(scope="package")
def compose(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Compose]:
    with compose_cluster(PROJECT, tmp_path_factory.mktemp("compose")) as cluster:
        yield cluster


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Move the compose-down test after the last e2e test (other packages keep their order)."""
    ours = [i for i, item in enumerate(items) if item.path.parent == HERE]
    last = [item for item in items if item.path.parent == HERE and item.name == LAST]
    if not last:
        return
    end = ours[-1] + 1
    items[:] = ([item for item in items[:end] if item not in last] + last
                + items[end:])
