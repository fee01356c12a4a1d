"""A flood of bad requests from one client does not hurt the others.

One process (tests/integration/flooder.py) sends 10 000 requests that are
refused (an unknown bearer token, a user with no role) to one apiserver,
while this test measures an administrator's reads from the same apiserver:
their p99 stays within twice the unloaded figure, and every apiserver is
still up and answering afterwards. The apiserver paces a connection whose
calls keep being refused (apiserver/limits.py: 50 a second per connection
by default), so the flood takes about 100 s.
Both figures come from windows of several seconds, as the machine's other
load comes and goes.
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable

from minik8s.client import ApiClient
from minik8s.localcluster import LocalCluster
from tests.integration.conftest import ROOT

BAD_REQUESTS = 10_000
CONCURRENCY = 32
SAMPLES = 300
BASELINE_SECONDS = 10.0
FLOOD_DEADLINE = 300.0


def p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[int(len(ordered) * 0.99) - 1]


async def _reads(client: ApiClient, count: int) -> list[float]:
    """Latencies of `count` sequential reads, in seconds."""
    latencies = []
    for _ in range(count):
        start = time.perf_counter()
        await client.get("Namespace", "default")
        latencies.append(time.perf_counter() - start)
    return latencies


async def _reads_until(client: ApiClient, done: Callable[[], bool]) -> list[float]:
    """Latencies of sequential reads until done() (and at least SAMPLES of them)."""
    latencies: list[float] = []
    while not done() or len(latencies) < SAMPLES:
        latencies += await _reads(client, 10)
    return latencies


async def test_a_flood_of_bad_requests_leaves_others_served(cluster: LocalCluster) -> None:
    server, token_server = cluster.servers[0], cluster.token_servers[0]
    mallory = cluster.users.issue_certificate("mallory")
    async with ApiClient([server]) as admin:
        await _reads(admin, 50)  # warm: connection, caches
        end = time.monotonic() + BASELINE_SECONDS
        unloaded = p99(await _reads_until(admin, lambda: time.monotonic() > end))
        flooder = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.integration.flooder", server, token_server,
            str(BAD_REQUESTS), str(CONCURRENCY), cwd=ROOT,
            env=dict(os.environ, MINIK8S_CONFIG=str(mallory)),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        assert flooder.stdout is not None
        assert await asyncio.wait_for(flooder.stdout.readline(), FLOOD_DEADLINE) == b"ready\n"
        finished = asyncio.ensure_future(asyncio.wait_for(flooder.communicate(), FLOOD_DEADLINE))
        loaded = p99(await _reads_until(admin, finished.done))
        out, err = await finished
    assert flooder.returncode == 0, err.decode()
    codes = json.loads(out)
    assert sum(codes.values()) == BAD_REQUESTS and "OK" not in codes, codes
    print(f"p99 unloaded {unloaded * 1000:.1f} ms, during the flood {loaded * 1000:.1f} ms, "
          f"answers {codes}")
    assert loaded <= 2 * unloaded, (unloaded, loaded)
    for server in cluster.servers:
        async with ApiClient([server], retry_deadline=2) as each:
            assert await each.endpoint_health(server) == "SERVING"
