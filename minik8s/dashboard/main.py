"""Wiring of the dashboard process (`minik8s dashboard`).

One informer per kind the page shows feeds the live sections; the HTTP
server serves them. It writes nothing, needs no leader, and any number of
replicas may run.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import REGISTRY

from minik8s import serving
from minik8s.client import ApiClient
from minik8s.dashboard import sections, server
from minik8s.dashboard.live import LiveSections
from minik8s.dashboard.metrics import PodPhases
from minik8s.dashboard.prometheus import Prometheus
from minik8s.informer import Informer, SharedInformerFactory

log = logging.getLogger("minik8s.dashboard")


@dataclass
class DashboardOptions:
    servers: list[str]
    bind_address: str = "127.0.0.1"
    port: int = 8001
    prometheus: str = ""  # base URL; empty: no charts


def _follow(informer: Informer, live: LiveSections) -> None:
    """Mark the sections that show the informer's kind stale on each of its changes."""
    def changed(*_: object) -> None:
        live.changed(informer.kind)
    informer.add_handler(changed, changed, changed)


async def run(opts: DashboardOptions) -> int:
    """Serve until SIGTERM or SIGINT (exit code 0); 1 if the port cannot be had."""
    client = ApiClient(opts.servers)
    factory = SharedInformerFactory(client)
    informers = {kind: factory.informer_for(kind, sections.NAMESPACES.get(kind, ""))
                 for kind in sections.KINDS}
    live = LiveSections(sections.SECTIONS, lambda kind: informers[kind].list())
    for informer in informers.values():
        _follow(informer, live)
    charts = Prometheus(opts.prometheus) if opts.prometheus else None
    pod_phases = PodPhases(informers["Pod"].list)
    REGISTRY.register(pod_phases)
    runner = web.AppRunner(server.make_app(server.Dashboard(live, charts, factory.has_synced)),
                           access_log=log if log.isEnabledFor(logging.DEBUG) else None)
    await runner.setup()
    code = 0
    try:
        await web.TCPSite(runner, opts.bind_address, opts.port, shutdown_timeout=2).start()
    except OSError as exc:
        log.error("cannot serve on %s:%d: %s", opts.bind_address, opts.port, exc)
        code = 1
    else:
        code = await _serve(runner, factory, live, opts)
    await runner.cleanup()
    await factory.stop()
    if charts is not None:
        await charts.close()
    REGISTRY.unregister(pod_phases)
    await client.close()
    log.info("stopped")
    return code


async def _serve(runner: web.AppRunner, factory: SharedInformerFactory, live: LiveSections,
                 opts: DashboardOptions) -> int:
    factory.start()
    renderer = asyncio.create_task(live.run(), name="sections")
    host, port = runner.addresses[0][:2]
    log.info("serving http://%s:%d/ (also /healthz, /readyz, /metrics, /api/charts) from "
             "apiservers %s; charts: %s", host, port, ",".join(opts.servers),
             opts.prometheus or "none (no --prometheus)")
    log.info("received %s; shutting down", await serving.wait_for_termination())
    renderer.cancel()
    await asyncio.gather(renderer, return_exceptions=True)
    return 0
