"""Every apiserver serves health and metrics, and stops cleanly on SIGTERM."""
from __future__ import annotations

import signal
import urllib.request

from grpc_health.v1 import health_pb2, health_pb2_grpc

from minik8s import config
from minik8s.client import make_channel
from minik8s.localcluster import LocalCluster


def http_get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status, resp.read().decode()


async def test_health_and_metrics(cluster: LocalCluster) -> None:
    for proc in cluster.role("apiserver"):
        base = f"http://{cluster.host}:{proc.ports['http']}"
        assert http_get(f"{base}/healthz") == (200, "ok\n")
        assert http_get(f"{base}/readyz") == (200, "ok\n")
        status, metrics = http_get(f"{base}/metrics")
        assert status == 200 and "apiserver_request_total" in metrics
        async with make_channel(f"{cluster.host}:{proc.ports['grpc']}",
                                config.credentials()) as ch:
            resp = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest())
            assert resp.status == health_pb2.HealthCheckResponse.SERVING


def test_sigterm_exits_cleanly(own_cluster: LocalCluster) -> None:
    name = own_cluster.role("apiserver")[0].name
    own_cluster.signal(name, signal.SIGTERM)
    assert own_cluster.wait(name, timeout=10) == 0
    assert "stopped" in own_cluster.log_path(name).read_text()
