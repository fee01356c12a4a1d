"""The proxy's loop: Services and Endpoints in, the node's data plane out.

Informers on Services and Endpoints mark the state dirty; the loop syncs the
backend (iptables or userspace) with the whole desired state each time,
no more often than ``min_sync_period`` and at least every ``sync_period``,
as kube-proxy's bounded-frequency runner: the periodic sync is what repairs
a data plane changed behind the proxy's back.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import Gauge, Histogram

from minik8s import serving
from minik8s.client import ApiClient
from minik8s.informer import Informer
from proxy.model import ServicePort, service_ports
from proxy.sink import Sink

log = logging.getLogger("minik8s.proxy")

SYNC_DURATION = Histogram("proxy_sync_proxy_rules_duration_seconds",
                          "Seconds one sync of the data plane took.",
                          buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10))
LAST_SYNC = Gauge("proxy_sync_proxy_rules_last_timestamp_seconds",
                  "Unix time of the last successful sync.")
RULES = Gauge("proxy_rules_total", "iptables rules (or userspace listeners) programmed.")
SERVICE_PORTS = Gauge("proxy_service_ports", "Service ports the data plane serves.")


class Backend(Protocol):
    rules: int

    def setup(self) -> None: ...

    async def sync(self, ports: Sequence[ServicePort]) -> None: ...

    async def close(self) -> None: ...


@dataclass
class ProxyOptions:
    servers: list[str]
    node_name: str
    cluster: str = "minik8s"
    mode: str = ""                  # iptables, userspace; empty: iptables where possible
    service_cidr: str = "10.96.0.0/16"
    cluster_cidr: str = "10.244.0.0/16"
    node_ip: str = "127.0.0.1"
    bind_address: str = "127.0.0.1"
    port: int = 10256               # gRPC health
    http_port: int = 10249          # /healthz, /readyz, /metrics
    sync_period: float = 30.0
    min_sync_period: float = 0.0


class Proxier:
    def __init__(self, client: ApiClient, backend: Backend, sync_period: float,
                 min_sync_period: float) -> None:
        self.backend = backend
        self.sync_period, self.min_sync_period = sync_period, min_sync_period
        self.services = Informer(client, "Service")
        self.endpoints = Informer(client, "Endpoints")
        self.synced_once = False
        self._dirty = asyncio.Event()
        for informer in (self.services, self.endpoints):
            informer.add_handler(self._mark, lambda _o, _n: self._mark(), self._mark)

    def _mark(self, *_: object) -> None:
        self._dirty.set()

    def ready(self) -> bool:
        return self.synced_once

    async def run(self) -> None:
        for informer in (self.services, self.endpoints):
            informer.start()
        await self.services.wait_synced()
        await self.endpoints.wait_synced()
        while True:
            self._dirty.clear()
            await self._sync_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), self.sync_period)
            await asyncio.sleep(self.min_sync_period)

    async def _sync_once(self) -> None:
        ports = service_ports(self.services.list(), self.endpoints.list())
        started = time.monotonic()
        try:
            await self.backend.sync(ports)
        except Exception as exc:  # the next sync tries again
            log.error("sync failed: %s", exc)
            return
        SYNC_DURATION.observe(time.monotonic() - started)
        LAST_SYNC.set(time.time())
        RULES.set(self.backend.rules)
        SERVICE_PORTS.set(len(ports))
        self.synced_once = True

    async def stop(self) -> None:
        for informer in (self.services, self.endpoints):
            await informer.stop()


def make_backend(opts: ProxyOptions, sink: Sink) -> Backend:
    from proxy import iptables, userspace

    mode = opts.mode or ("iptables" if iptables.available() else "userspace")
    log.info("%s mode", mode)
    if mode == "iptables":
        return iptables.IptablesProxier(opts.cluster, opts.cluster_cidr)
    if mode == "userspace":
        return userspace.UserspaceProxier(sink, opts.node_ip)
    raise ValueError(f"--proxy-mode: must be iptables or userspace, not {mode!r}")


async def run(opts: ProxyOptions) -> int:
    sink = Sink(opts.cluster, opts.service_cidr)
    sink.ensure()
    backend = make_backend(opts, sink)
    backend.setup()
    client = ApiClient(opts.servers)
    proxier = Proxier(client, backend, opts.sync_period, opts.min_sync_period)
    grpc_server = serving.make_grpc_server()
    health = serving.add_grpc_health(grpc_server)
    port = grpc_server.add_insecure_port(f"{opts.bind_address}:{opts.port}")
    await grpc_server.start()
    http = serving.HttpEndpoints(healthz=lambda: True, readyz=proxier.ready)
    http_port = await http.start(opts.bind_address, opts.http_port)
    log.info("node %s: health on gRPC %s:%d, http://%s:%d (healthz, readyz, metrics)",
             opts.node_name, opts.bind_address, port, opts.bind_address, http_port)
    await serving.set_serving(health, True)
    work = asyncio.create_task(proxier.run())
    stop = asyncio.create_task(serving.wait_for_termination())
    done, _ = await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
    if work in done and work.exception() is not None:
        log.error("proxy stopped: %s", work.exception())
    work.cancel()
    stop.cancel()
    await asyncio.gather(work, stop, return_exceptions=True)
    await proxier.stop()
    await backend.close()
    await http.stop()
    await grpc_server.stop(1)
    await client.close()
    return 0 if stop in done else 1


async def cleanup(opts: ProxyOptions) -> None:
    """--cleanup: remove everything the proxy of this cluster programmed."""
    from proxy import iptables

    if iptables.available():
        await asyncio.to_thread(iptables.IptablesProxier(opts.cluster, opts.cluster_cidr)
                                .cleanup)
    Sink(opts.cluster, opts.service_cidr).remove()
