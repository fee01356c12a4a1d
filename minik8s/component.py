"""Running a leader-elected component: the scheduler, the controller-manager.

Every replica starts its informers at once, so a standby's caches are warm
and a failover costs only the lease expiry. The replica that holds the lease
runs the component's work with a client whose writes carry the lease token.
Losing the lease stops the work at once and exits non-zero (the supervisor
starts the process again as a candidate); SIGTERM releases the lease, so a
successor takes over without waiting for it to expire.
"""
from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from minik8s import errors, serving
from minik8s.client import ApiClient
from minik8s.informer import SharedInformerFactory
from minik8s.leaderelection import ElectionConfig, LeaderElector, LeadershipLost

log = logging.getLogger("minik8s.component")

Lead = Callable[[ApiClient], Awaitable[None]]


@dataclass
class Work:
    """What the leader runs, given the fenced client, and the kinds it writes.

    Before it starts, the caches of those kinds must hold everything a
    predecessor wrote (None: every informer's).
    """

    lead: Lead
    writes: tuple[str, ...] | None = None


Setup = Callable[[ApiClient, SharedInformerFactory], Awaitable[Work]]


@dataclass
class ComponentOptions:
    servers: list[str]
    election: ElectionConfig
    bind_address: str = "127.0.0.1"
    port: int = 0          # gRPC health service
    http_port: int = 0     # /healthz, /readyz, /metrics


async def run_component(opts: ComponentOptions, setup: Setup) -> int:
    """Run until SIGTERM (exit code 0) or until leadership is lost (exit code 1)."""
    client = ApiClient(opts.servers)
    factory = SharedInformerFactory(client)
    work_to_do = await setup(client, factory)
    factory.start()

    grpc_server = serving.make_grpc_server()
    health = serving.add_grpc_health(grpc_server)
    port = grpc_server.add_insecure_port(f"{opts.bind_address}:{opts.port}")
    await grpc_server.start()
    await serving.set_serving(health, True)
    http = serving.HttpEndpoints(healthz=lambda: True, readyz=factory.has_synced)
    http_port = await http.start(opts.bind_address, opts.http_port)
    log.info("%s: health on gRPC %s:%d, http://%s:%d (healthz, readyz, metrics)",
             opts.election.identity, opts.bind_address, port, opts.bind_address, http_port)

    elector = LeaderElector(client, opts.election)

    async def lead_from_current_state(fenced: ApiClient) -> None:
        # Everything a predecessor wrote committed before our acquisition
        # (fencing refuses the rest): once the caches are there, nothing it
        # did is missing from them, so we cannot act twice on its behalf.
        if not await factory.wait_for_revision(elector.revision, 15, work_to_do.writes):
            log.warning("caches did not reach revision %d; leading anyway", elector.revision)
        await work_to_do.lead(fenced)

    work = asyncio.create_task(elector.run(lead_from_current_state), name="elected")
    stop = asyncio.create_task(serving.wait_for_termination(), name="signals")
    await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if work.done():
        code = 1
        exc = work.exception()
        if isinstance(exc, LeadershipLost):
            log.error("%s; stopping", exc)
        else:
            log.error("work ended unexpectedly: %r", exc)
    else:
        log.info("received %s; shutting down", stop.result())
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)
        await _release(client, elector)
    stop.cancel()
    await factory.stop()
    await http.stop()
    await grpc_server.stop(grace=1)
    await client.close()
    log.info("stopped")
    return code


async def _release(client: ApiClient, elector: LeaderElector) -> None:
    """Give the lease up on a clean shutdown, so a successor need not wait it out."""
    fence = elector.fence
    if fence is None:
        return
    try:
        lease = await client.get("Lease", fence.lease_name, fence.lease_namespace)
        if lease.spec.holder_identity != fence.holder:
            return
        lease.spec.holder_identity = ""
        lease.spec.renew_time.FromDatetime(datetime.datetime.now(datetime.UTC))
        await client.update(lease)
        log.info("released lease %s/%s", fence.lease_namespace, fence.lease_name)
    except errors.ApiError as exc:
        log.warning("releasing lease: %s", exc)
