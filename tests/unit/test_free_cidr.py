"""Choosing a free CIDR from the host's routes (minik8s/netcheck.free_cidr)."""
from __future__ import annotations

import subprocess

import pytest

from minik8s import netcheck


def routes(monkeypatch: pytest.MonkeyPatch, *lines: str) -> None:
    def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        assert cmd == ["ip", "-4", "route"]
        return subprocess.CompletedProcess(cmd, 0, stdout="".join(f"{x}\n" for x in lines))
    monkeypatch.setattr(netcheck.subprocess, "run", run)


@pytest.mark.parametrize(("taken", "chosen"), [
    ([], "10.244.0.0/16"),
    (["10.244.0.0/16 dev br-other proto kernel scope link src 10.244.0.1"], "10.245.0.0/16"),
    (["10.244.3.0/24 dev br-a scope link",
      "10.245.7.9 via 192.168.1.1 dev eth0"], "10.246.0.0/16"),  # any overlap counts
])
def test_first_range_no_route_touches(monkeypatch: pytest.MonkeyPatch, taken: list[str],
                                      chosen: str) -> None:
    routes(monkeypatch, "default via 192.168.1.1 dev eth0", *taken)
    assert netcheck.free_cidr("cluster CIDR", netcheck.CLUSTER_CIDRS) == chosen


def test_a_wider_route_covers_every_range(monkeypatch: pytest.MonkeyPatch) -> None:
    routes(monkeypatch, "default via 192.168.1.1 dev eth0", "10.0.0.0/8 dev tun0 scope link")
    with pytest.raises(ValueError, match="no free cluster CIDR"):
        netcheck.free_cidr("cluster CIDR", netcheck.CLUSTER_CIDRS)
