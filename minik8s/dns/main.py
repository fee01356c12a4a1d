"""Wiring of the cluster DNS process (`minik8s dns`).

Informers on Services, Endpoints and Pods mark the zone stale; it is rebuilt
at once, then not again for ``min_rebuild_interval``: the changes that arrive
meanwhile (a burst of creates) are taken in one rebuild, so a new Service
resolves within that interval of its watch event, however many arrive.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from minik8s import serving
from minik8s.client import ApiClient
from minik8s.dns.registration import Registration
from minik8s.dns.server import Resolver, serve
from minik8s.dns.zone import Zone
from minik8s.informer import Informer

log = logging.getLogger("minik8s.dns")


@dataclass
class DnsOptions:
    servers: list[str]
    bind_addresses: list[str]
    port: int = 53
    http_port: int = 10054
    domain: str = "cluster.local"
    upstream: str = ""             # host:port for names outside the domain; empty: REFUSED
    cluster_ip: str = ""           # the kube-dns Service's ClusterIP; empty: not registered
    advertise_address: str = ""    # this replica's address in kube-dns's Endpoints


class ZoneKeeper:
    def __init__(self, client: ApiClient, zone: Zone, min_rebuild_interval: float = 0.1) -> None:
        self.zone, self.min_rebuild_interval = zone, min_rebuild_interval
        self.informers = [Informer(client, kind) for kind in ("Service", "Endpoints", "Pod")]
        self._stale = asyncio.Event()
        for informer in self.informers:
            informer.add_handler(self._mark, lambda _o, _n: self._mark(), self._mark)

    def _mark(self, *_: object) -> None:
        self._stale.set()

    def synced(self) -> bool:
        return all(i.has_synced() for i in self.informers)

    async def run(self) -> None:
        for informer in self.informers:
            informer.start()
        while True:
            await self._stale.wait()
            self._stale.clear()
            services, endpoints, pods = (i.list() for i in self.informers)
            self.zone.rebuild(services, endpoints, pods)
            await asyncio.sleep(self.min_rebuild_interval)

    async def stop(self) -> None:
        for informer in self.informers:
            await informer.stop()


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return (host, int(port)) if host else (text, 53)


async def run(opts: DnsOptions) -> int:
    client = ApiClient(opts.servers)
    zone = Zone(opts.domain)
    keeper = ZoneKeeper(client, zone)
    resolver = Resolver(zone, _host_port(opts.upstream) if opts.upstream else None)
    listeners = [item for host in opts.bind_addresses
                 for item in await serve(resolver, host, opts.port)]
    http = serving.HttpEndpoints(healthz=lambda: True, readyz=keeper.synced)
    http_port = await http.start(opts.bind_addresses[0], opts.http_port)
    log.info("answering %s on %s port %d; http://%s:%d (healthz, readyz, metrics)",
             opts.domain, ",".join(opts.bind_addresses), opts.port, opts.bind_addresses[0],
             http_port)
    tasks = [asyncio.create_task(keeper.run())]
    registration = None
    if opts.cluster_ip and opts.advertise_address:
        registration = Registration(client, (opts.advertise_address, opts.port),
                                    opts.cluster_ip, opts.domain)
        tasks.append(asyncio.create_task(registration.run()))
    signal_name = await serving.wait_for_termination()
    log.info("%s: stopping", signal_name)
    if registration is not None:
        await registration.leave()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for listener in listeners:
        listener.close()
    await keeper.stop()
    await http.stop()
    await client.close()
    return 0
