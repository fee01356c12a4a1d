"""Losing etcd members: one lost is invisible; two lost fail fast; nothing acknowledged is lost."""
from __future__ import annotations

import time

import pytest

from minik8s import errors
from minik8s.client import ApiClient
from minik8s.localcluster import LocalCluster
from tests.integration.helpers import eventually, pod


async def test_etcd_member_loss(own_cluster: LocalCluster) -> None:
    acked: list[str] = []
    async with ApiClient(own_cluster.servers) as client:
        async def write(name: str) -> None:
            await client.create(pod(name, "default"))
            acked.append(name)

        for i in range(5):
            await write(f"before-{i}")

        own_cluster.kill("etcd-0")
        for i in range(5):  # a quorum of two carries on
            await write(f"one-down-{i}")
        assert {p.metadata.name for p in (await client.list("Pod", "default"))[0]} >= set(acked)

        own_cluster.kill("etcd-1")
        start = time.monotonic()
        with pytest.raises(errors.Unavailable, match="etcd") as info:
            await write("no-quorum")
        assert time.monotonic() - start < 15, "a call without quorum must fail fast"
        assert "quorum" in info.value.message
        with pytest.raises(errors.Unavailable):
            await client.get("Pod", "before-0", "default")
        assert all(p.alive for p in own_cluster.role("apiserver")), "apiservers must not crash"

        own_cluster.restart("etcd-0")
        own_cluster.restart("etcd-1")

        async def writable() -> bool:
            try:
                await write("after")
                return True
            except errors.Unavailable:
                return False
        await eventually(writable, timeout=60, interval=0.5)

        names = {p.metadata.name for p in (await client.list("Pod", "default"))[0]}
        assert set(acked) <= names
