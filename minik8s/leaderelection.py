"""Lease-based leader election with fencing tokens, as client-go's leaderelection.

Candidates race to hold one Lease (kube-system/<component>) by compare-and-swap
updates through the apiserver. A candidate takes a lease over only when the
holder has not renewed it for leaseDuration, measured on the candidate's own
clock from the moment it last saw the lease change (so clock skew between
machines does not matter). The leader renews every retry period; if it cannot
renew within the renew deadline it stops at once and the process exits.

Unlike Kubernetes, a leader's writes carry its token (holder and
leaseTransitions) and the apiserver checks it inside the etcd txn of each
write, so a leader that was paused or cut off and has not noticed yet cannot
change anything once a successor has taken over (docs/leader-election.md).
"""
from __future__ import annotations

import asyncio
import datetime
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from prometheus_client import Gauge

from minik8s import errors
from minik8s.api.v1 import apiserver_pb2 as api
from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient

log = logging.getLogger("minik8s.leaderelection")

IS_LEADER = Gauge("leader_election_master_status",
                  "1 while this process holds its component's lease", ["name"])


class LeadershipLost(Exception):
    """The lease could not be renewed in time, or another holder took it."""


def default_identity() -> str:
    return f"{socket.gethostname()}_{os.getpid()}_{uuid.uuid4().hex[:6]}"


@dataclass
class ElectionConfig:
    name: str                          # the Lease's name: the component
    namespace: str = "kube-system"
    identity: str = field(default_factory=default_identity)
    lease_duration: float = 2.0        # a lease not renewed for this long may be taken
    renew_deadline: float = 1.5        # a leader that cannot renew for this long stops
    retry_period: float = 0.25         # how often to try to acquire or renew

    def __post_init__(self) -> None:
        if not self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError("need retry period < renew deadline < lease duration")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class LeaderElector:
    def __init__(self, client: ApiClient, config: ElectionConfig) -> None:
        self.client = client
        self.config = config
        self.fence: api.Fence | None = None
        self.revision = 0  # the resourceVersion of our last write of the lease
        self._held: t.Lease | None = None  # the lease as we last wrote it, while we hold it
        self._observed: tuple[str, int, str] | None = None  # holder, transitions, renewTime
        self._observed_at = 0.0
        self._gauge = IS_LEADER.labels(config.name)
        self._gauge.set(0)

    # ------------------------------------------------------------ one attempt

    def _expired(self, lease: t.Lease) -> bool:
        spec = lease.spec
        record = (spec.holder_identity, spec.lease_transitions, spec.renew_time.ToJsonString())
        if record != self._observed:
            self._observed, self._observed_at = record, time.monotonic()
        duration = spec.lease_duration_seconds or self.config.lease_duration
        return time.monotonic() > self._observed_at + duration

    def _lease(self) -> t.Lease:
        lease = t.Lease(metadata=t.ObjectMeta(name=self.config.name,
                                              namespace=self.config.namespace))
        spec = lease.spec
        spec.holder_identity = self.config.identity
        spec.lease_duration_seconds = max(1, round(self.config.lease_duration))
        spec.acquire_time.FromDatetime(_now())
        spec.renew_time.FromDatetime(_now())
        return lease

    async def try_acquire_or_renew(self, timeout: float | None = None) -> bool:
        """One CAS attempt, within timeout (seconds) if given; True if we hold the
        lease afterwards."""
        deadline = None if timeout is None else time.monotonic() + timeout

        def left() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        if self._held is not None and await self._renew_held(left()):
            return True
        me = self.config.identity
        try:
            lease = await self.client.get("Lease", self.config.name, self.config.namespace,
                                          left())
        except errors.NotFound:
            try:
                created = await self.client.create(self._lease(), left())
            except errors.AlreadyExists:
                return False
            return self._hold(created)
        holder = lease.spec.holder_identity
        if holder and holder != me and not self._expired(lease):
            return False
        if holder != me:
            lease.spec.lease_transitions += 1
            lease.spec.acquire_time.FromDatetime(_now())
            lease.spec.holder_identity = me
        lease.spec.lease_duration_seconds = max(1, round(self.config.lease_duration))
        lease.spec.renew_time.FromDatetime(_now())
        try:
            return self._hold(await self.client.update(lease, left()))
        except errors.Conflict:
            return False

    async def _renew_held(self, timeout: float | None) -> bool:
        """Renew in one request: CAS on the lease as we last wrote it.

        A conflict means someone else wrote it since; the caller then reads
        it and decides as a candidate would.
        """
        lease = t.Lease()
        lease.CopyFrom(self._held)
        lease.spec.renew_time.FromDatetime(_now())
        try:
            return self._hold(await self.client.update(lease, timeout))
        except errors.Conflict:
            self._held = None
            return False

    def _hold(self, lease: t.Lease) -> bool:
        self._held = lease
        spec = lease.spec
        self.revision = int(lease.metadata.resource_version)
        self.fence = api.Fence(lease_namespace=lease.metadata.namespace,
                               lease_name=lease.metadata.name,
                               holder=spec.holder_identity, transitions=spec.lease_transitions)
        return True

    # ------------------------------------------------------------ loops

    async def acquire(self) -> api.Fence:
        """Wait until this candidate holds the lease; return its fencing token."""
        log.info("candidate %s waiting for lease %s/%s", self.config.identity,
                 self.config.namespace, self.config.name)
        while True:
            try:
                if await self.try_acquire_or_renew(self.config.renew_deadline):
                    assert self.fence is not None
                    self._gauge.set(1)
                    log.info("%s became leader of %s (transitions %d)", self.config.identity,
                             self.config.name, self.fence.transitions)
                    return self.fence
            except errors.ApiError as exc:
                log.warning("acquiring lease: %s", exc)
            await asyncio.sleep(self.config.retry_period)

    async def keep_renewing(self) -> None:
        """Renew until that fails for renew_deadline; then raise LeadershipLost."""
        last = time.monotonic()
        while True:
            await asyncio.sleep(self.config.retry_period)
            # a late wake-up (a busy event loop) still gets a fair attempt: if
            # nobody took the lease meanwhile, renewing it is safe, and if
            # someone did, the CAS fails (and fencing covers anything in between)
            left = last + self.config.renew_deadline - time.monotonic()
            # half the deadline at most: an apiserver that does not answer costs one
            # attempt, and the next one (through the next apiserver) still has time
            timeout = max(self.config.retry_period, min(left, self.config.renew_deadline / 2))
            try:
                held = await self.try_acquire_or_renew(timeout)
            except errors.ApiError as exc:
                log.warning("renewing lease: %s", exc)
                held = None
            if held:
                last = time.monotonic()
            elif held is False or time.monotonic() - last > self.config.renew_deadline:
                self._gauge.set(0)
                raise LeadershipLost(
                    f"{self.config.identity} lost lease {self.config.name}: "
                    + ("another holder took it" if held is False else
                       f"not renewed for {self.config.renew_deadline}s"))

    async def run(self, lead: Callable[[ApiClient], Awaitable[None]]) -> None:
        """Acquire, then run lead(fenced client) while renewing; raise LeadershipLost.

        lead is cancelled the moment leadership is lost; its writes carry the
        fencing token in any case.
        """
        fence = await self.acquire()
        leading = asyncio.create_task(lead(self.client.with_fence(fence)), name="leading")
        renewing = asyncio.create_task(self.keep_renewing(), name="renewing")
        try:
            done, _ = await asyncio.wait({leading, renewing},
                                         return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # raises LeadershipLost, or lead's own error
        finally:
            for task in (leading, renewing):
                task.cancel()
            await asyncio.gather(leading, renewing, return_exceptions=True)
            self._gauge.set(0)
