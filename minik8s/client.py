"""The API client: one object over all apiserver endpoints.

Calls go to one endpoint at a time. When that endpoint cannot be reached
(connection refused or reset: the apiserver is down), the client moves to the
next one and retries with backoff until its retry deadline, so killing an
apiserver is invisible to callers except for latency. An error that an
apiserver itself answered (including UNAVAILABLE because etcd has no quorum)
is raised at once: another apiserver would answer the same.
"""
from __future__ import annotations

import asyncio
import copy
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from minik8s import config, errors, kinds
from minik8s.api.v1 import apiserver_pb2 as api
from minik8s.api.v1 import apiserver_pb2_grpc as api_grpc
from minik8s.config import Credentials

log = logging.getLogger("minik8s.client")

# Trailing metadata the apiserver sets on every answer, so the client can tell
# an apiserver's own UNAVAILABLE (etcd down: do not fail over) from a
# transport failure (apiserver down: fail over).
ORIGIN_KEY = "minik8s-origin"
ORIGIN_APISERVER = "apiserver"

CHANNEL_OPTIONS = (
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1_000),
)


@dataclass
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK
    object: Message
    resource_version: str


def make_channel(target: str, creds: Credentials) -> grpc.aio.Channel:
    """The one place client channels are built: TLS with the cluster CA, a client
    certificate, and a bearer token on every call if the credentials hold one."""
    if creds.insecure:
        return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
    channel_creds = grpc.ssl_channel_credentials(creds.ca, creds.key or None,
                                                 creds.cert or None)
    if creds.token:
        channel_creds = grpc.composite_channel_credentials(
            channel_creds, grpc.access_token_call_credentials(creds.token))
    return grpc.aio.secure_channel(target, channel_creds, options=CHANNEL_OPTIONS)


def _answered_by_apiserver(err: grpc.aio.AioRpcError) -> bool:
    trailing = err.trailing_metadata() or ()
    return any(k == ORIGIN_KEY for k, _ in trailing)


def _is_transport_failure(err: grpc.aio.AioRpcError) -> bool:
    return err.code() == grpc.StatusCode.UNAVAILABLE and not _answered_by_apiserver(err)


def _tls_refused(err: grpc.aio.AioRpcError) -> bool:
    """The server's certificate failed our checks: every apiserver would fail them."""
    return _is_transport_failure(err) and "handshake failed" in (err.details() or "").lower()


def _error(err: grpc.aio.AioRpcError, server: str) -> errors.ApiError:
    if _tls_refused(err):
        return errors.Unavailable(
            f"TLS handshake with {server} failed: its certificate is not signed by the "
            f"configured certificate authority, or does not name {server.rsplit(':', 1)[0]}")
    if _is_transport_failure(err) and "socket closed" in (err.details() or "").lower():
        return errors.Unavailable(
            f"{server} closed the connection ({err.details()}); if it is up, it refused our "
            "client certificate: is it issued by this cluster's CA and still valid?")
    return errors.from_rpc_error(err)


def _went_unanswered(err: grpc.aio.AioRpcError) -> bool:
    """The call's deadline passed with no answer from the apiserver: it may be cut off
    (a partition drops packets; the connection itself fails only much later)."""
    return err.code() == grpc.StatusCode.DEADLINE_EXCEEDED and not _answered_by_apiserver(err)


class ApiClient:
    """Typed access to the API over several apiserver endpoints with failover."""

    def __init__(self, servers: Sequence[str], *, credentials: Credentials | None = None,
                 timeout: float = 10.0, retry_deadline: float = 20.0) -> None:
        """credentials: by default those of the config file (config.credentials());
        config.ConfigError if it has none that can work."""
        if not servers:
            raise ValueError("no apiserver endpoints given")
        self.servers = list(servers)
        self.credentials = credentials or config.credentials()
        self.timeout = timeout
        self.retry_deadline = retry_deadline
        self._current = random.randrange(len(self.servers))
        self._stubs: dict[str, tuple[grpc.aio.Channel, api_grpc.ApiServerStub]] = {}
        self.fence: api.Fence | None = None

    def with_fence(self, fence: api.Fence) -> ApiClient:
        """A view of this client (same connections) whose writes carry a leader's
        lease token, so the apiserver refuses them once leadership has moved on."""
        view = copy.copy(self)
        view.fence = fence
        return view

    def _fenced(self, request: Message) -> Message:
        if self.fence is not None:
            request.fence.CopyFrom(self.fence)
        return request

    # ------------------------------------------------------------ transport

    @property
    def endpoint(self) -> str:
        """The endpoint calls currently go to."""
        return self.servers[self._current]

    def _stub(self, server: str) -> api_grpc.ApiServerStub:
        if server not in self._stubs:
            channel = make_channel(server, self.credentials)
            self._stubs[server] = (channel, api_grpc.ApiServerStub(channel))
        return self._stubs[server][1]

    def _fail_over(self, server: str) -> None:
        """Move to the next endpoint, unless another call already did."""
        if self.servers[self._current] == server and len(self.servers) > 1:
            self._current = (self._current + 1) % len(self.servers)
            log.info("apiserver %s unreachable; trying %s", server, self.endpoint)

    async def _unary(self, method: str, request: Message, timeout: float | None = None) -> Any:
        """One call, sent again to the next apiserver while the transport fails.

        timeout bounds the whole call, retries included; by default each attempt
        has self.timeout and the retries self.retry_deadline. A call that goes
        unanswered is not sent again (a write may have happened), but the next
        call goes to the next apiserver.
        """
        deadline = time.monotonic() + (self.retry_deadline if timeout is None else timeout)
        delay = 0.05
        while True:
            server = self.endpoint
            attempt = self.timeout if timeout is None else deadline - time.monotonic()
            if attempt <= 0:
                raise errors.Timeout(f"{method}: no time left for the call")
            try:
                return await getattr(self._stub(server), method)(request, timeout=attempt)
            except grpc.aio.AioRpcError as err:
                if _tls_refused(err):
                    raise _error(err, server) from None
                if _is_transport_failure(err) or _went_unanswered(err):
                    self._fail_over(server)
                if not _is_transport_failure(err) or time.monotonic() + delay > deadline:
                    raise _error(err, server) from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def close(self) -> None:
        for channel, _ in self._stubs.values():
            await channel.close()
        self._stubs.clear()

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------ verbs

    async def create(self, obj: Message, timeout: float | None = None) -> Message:
        """Create obj. Safe to retry: the client stamps the uid, so when a retry
        after a lost answer finds the object already there with our uid, that
        object is the one we created."""
        wrapped = kinds.wrap(obj)
        meta = kinds.unwrap(wrapped).metadata
        meta.uid = meta.uid or str(uuid.uuid4())
        try:
            req = self._fenced(api.CreateRequest(object=wrapped))
            return kinds.unwrap(await self._unary("Create", req, timeout))
        except errors.AlreadyExists:
            existing = await self.get(kinds.of(obj).name, meta.name, meta.namespace, timeout)
            if existing.metadata.uid == meta.uid:
                return existing
            raise

    async def get(self, kind: str, name: str, namespace: str = "",
                  timeout: float | None = None) -> Message:
        req = api.GetRequest(kind=kind, namespace=namespace, name=name)
        return kinds.unwrap(await self._unary("Get", req, timeout))

    async def list(self, kind: str, namespace: str = "", label_selector: str = "",
                   field_selector: str = "") -> tuple[list[Message], str]:
        """All matching objects and the resourceVersion to watch from."""
        req = api.ListRequest(kind=kind, namespace=namespace, label_selector=label_selector,
                              field_selector=field_selector)
        resp = await self._unary("List", req)
        return [kinds.unwrap(o) for o in resp.items], resp.resource_version

    async def update(self, obj: Message, timeout: float | None = None) -> Message:
        req = self._fenced(api.UpdateRequest(object=kinds.wrap(obj)))
        return kinds.unwrap(await self._unary("Update", req, timeout))

    async def update_status(self, obj: Message) -> Message:
        req = self._fenced(api.UpdateRequest(object=kinds.wrap(obj)))
        return kinds.unwrap(await self._unary("UpdateStatus", req))

    async def delete(self, kind: str, name: str, namespace: str = "", *,
                     resource_version: str = "", grace_period_seconds: int | None = None,
                     propagation_policy: str = "") -> Message:
        """Delete (or, for a running pod, start deleting) an object; returns it as last stored."""
        req = api.DeleteRequest(kind=kind, namespace=namespace, name=name,
                                resource_version=resource_version,
                                propagation_policy=propagation_policy)
        if grace_period_seconds is not None:
            req.grace_period_seconds = grace_period_seconds
        return kinds.unwrap(await self._unary("Delete", self._fenced(req)))

    async def bind(self, namespace: str, name: str, node_name: str, uid: str = "") -> Message:
        req = api.BindRequest(namespace=namespace, name=name, node_name=node_name, uid=uid)
        return kinds.unwrap(await self._unary("Bind", self._fenced(req)))

    async def apply(self, manifest: str, namespace: str = "",
                    create_only: bool = False) -> list[api.ApplyResult]:
        req = api.ApplyRequest(manifest=manifest, namespace=namespace, create_only=create_only)
        return list((await self._unary("Apply", req)).results)

    async def etcd_status(self) -> list[api.EtcdMember]:
        """The etcd members, each with its health and whether it leads (asked of an apiserver)."""
        return list((await self._unary("EtcdStatus", api.EtcdStatusRequest())).members)

    async def access_review(self, verb: str, resource: str, namespace: str = "", name: str = "",
                            user: str = "", groups: Sequence[str] = ()) -> api.AccessReviewResponse:
        """May we (or, asked by an administrator, `user`) do verb on resource?"""
        req = api.AccessReviewRequest(verb=verb, resource=resource, namespace=namespace,
                                      name=name, user=user, groups=list(groups))
        return await self._unary("AccessReview", req)

    async def endpoint_health(self, server: str, timeout: float = 2.0) -> str:
        """One apiserver's gRPC health: "SERVING", "NOT_SERVING", or why it did not answer."""
        self._stub(server)
        health = health_pb2_grpc.HealthStub(self._stubs[server][0])
        try:
            resp = await health.Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.aio.AioRpcError as err:
            return f"{err.code().name}: {err.details() or 'no answer'}"
        return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)

    async def watch(self, kind: str, namespace: str = "", label_selector: str = "",
                    field_selector: str = "", resource_version: str = "",
                    allow_bookmarks: bool = True) -> AsyncIterator[WatchEvent]:
        """Stream changes after resource_version from one apiserver.

        Raises errors.Expired when resource_version is too old (relist), and
        another ApiError when the stream breaks; callers resume from the last
        resourceVersion they saw (the Informer does).
        """
        req = api.WatchRequest(kind=kind, namespace=namespace, label_selector=label_selector,
                               field_selector=field_selector, resource_version=resource_version,
                               allow_bookmarks=allow_bookmarks)
        server = self.endpoint
        call = self._stub(server).Watch(req)
        try:
            async for ev in call:
                yield WatchEvent(ev.type, kinds.unwrap(ev.object), ev.resource_version)
        except grpc.aio.AioRpcError as err:
            if _is_transport_failure(err):
                self._fail_over(server)
            raise _error(err, server) from None
        finally:
            call.cancel()
