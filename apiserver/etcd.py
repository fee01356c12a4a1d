"""A small etcd v3 client over several members, on aetcd's gRPC stubs.

Only the apiserver talks to etcd, and only through this module. Requests go
to one member; a member that refuses or resets the connection, or answers
that it has no leader, is left for the next one until the request budget is
spent. Then the call fails with EtcdUnavailable, so an apiserver whose etcd
has lost quorum answers quickly instead of hanging.

A write that did not answer may still be on its way: a member cut off by a
partition gets it from TCP once the partition heals, and applies it then,
after the copy sent to the next member was acknowledged and perhaps after
the object was deleted again. So every Txn also compares a fence key's
mod_revision, and before a write is sent again the fence is raised: the
copy still in flight can no longer apply (see Etcd.txn).
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
from aetcd.rpc import rpc_pb2 as rpc
from aetcd.rpc import rpc_pb2_grpc as rpc_grpc
from prometheus_client import Counter, Histogram

log = logging.getLogger("minik8s.apiserver.etcd")

ETCD_LATENCY = Histogram(
    "etcd_request_duration_seconds", "etcd request latency by operation",
    ["operation"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
ETCD_ERRORS = Counter("etcd_request_errors_total", "etcd requests that failed, by operation",
                      ["operation"])
for _operation in ("range", "txn", "compact"):
    ETCD_ERRORS.labels(_operation)  # exported at 0 before the first failure

# etcd closes a watch whose member loses its leader, instead of leaving it
# silently stalled on a partitioned member (as Kubernetes asks for).
REQUIRE_LEADER = (("hasleader", "true"),)

_RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
T = TypeVar("T")

# Raised before a write is resent; every write compares its mod_revision.
FENCE_KEY = b"/minik8s/write-fence"


class EtcdUnavailable(Exception):
    """No etcd member could serve the request within the budget."""


class _MaybeDelivered(Exception):
    """A write got no answer: the member may apply it yet."""


class EtcdCompacted(Exception):
    """A watch asked for a revision etcd has compacted away."""


def range_end(prefix: bytes) -> bytes:
    """The end of the key range that holds every key starting with prefix."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


# ---------------------------------------------------------------- txn helpers

def created(key: bytes, exists: bool) -> rpc.Compare:
    """Compare: the key exists (or does not)."""
    return rpc.Compare(key=key, target=rpc.Compare.CREATE, create_revision=0,
                       result=rpc.Compare.GREATER if exists else rpc.Compare.EQUAL)


def mod_revision_is(key: bytes, revision: int) -> rpc.Compare:
    return rpc.Compare(key=key, target=rpc.Compare.MOD, mod_revision=revision,
                       result=rpc.Compare.EQUAL)


def value_is(key: bytes, value: bytes) -> rpc.Compare:
    """Compare: the key exists and holds exactly value."""
    return rpc.Compare(key=key, target=rpc.Compare.VALUE, value=value, result=rpc.Compare.EQUAL)


def put(key: bytes, value: bytes) -> rpc.RequestOp:
    return rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=value))


def delete(key: bytes) -> rpc.RequestOp:
    return rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=key))


def get(key: bytes) -> rpc.RequestOp:
    return rpc.RequestOp(request_range=rpc.RangeRequest(key=key))


# ---------------------------------------------------------------- client

async def _timed(operation: str, call: Awaitable[T]) -> T:
    """A request's latency, and counted as an error if no member answered it well."""
    with ETCD_LATENCY.labels(operation).time():
        try:
            return await call
        except (EtcdUnavailable, grpc.aio.AioRpcError):
            ETCD_ERRORS.labels(operation).inc()
            raise


@dataclass(frozen=True)
class EtcdTls:
    """The CA that signed etcd's serving certificates, and our client certificate."""

    ca: Path
    cert: Path
    key: Path

    def credentials(self) -> grpc.ChannelCredentials:
        try:
            return grpc.ssl_channel_credentials(self.ca.read_bytes(), self.key.read_bytes(),
                                                self.cert.read_bytes())
        except OSError as exc:
            raise ValueError(f"etcd TLS: {exc.filename}: {exc.strerror}") from None


class Etcd:
    def __init__(self, endpoints: Sequence[str], *, request_timeout: float = 5.0,
                 tls: EtcdTls | None = None, first: int | None = None) -> None:
        """first: the index of the member to ask first; by default a random one, so
        that apiserver replicas spread their load over the members."""
        if not endpoints:
            raise ValueError("no etcd endpoints")
        self.endpoints = list(endpoints)
        self._credentials = tls.credentials() if tls else None
        self.request_timeout = request_timeout
        self._current = random.randrange(len(self.endpoints)) if first is None else first
        self._fence = 0  # the fence key's mod_revision, as this client last saw it
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[tuple[str, type], Any] = {}

    def _channel(self, endpoint: str) -> grpc.aio.Channel:
        if endpoint not in self._channels:
            options = (
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 1000),
                ("grpc.max_receive_message_length", 256 * 1024 * 1024),
            )
            self._channels[endpoint] = (
                grpc.aio.secure_channel(endpoint, self._credentials, options=options)
                if self._credentials else grpc.aio.insecure_channel(endpoint, options=options))
        return self._channels[endpoint]

    def _stub(self, endpoint: str, stub_cls: type) -> Any:
        stub = self._stubs.get((endpoint, stub_cls))
        if stub is None:
            stub = self._stubs[(endpoint, stub_cls)] = stub_cls(self._channel(endpoint))
        return stub

    def _next_endpoint(self, failed: str) -> None:
        if self.endpoints[self._current] == failed:
            self._current = (self._current + 1) % len(self.endpoints)

    async def _call(self, operation: str, stub_cls: type, method: str, request: object) -> object:
        """One request to whichever member answers, within the request budget."""
        deadline = time.monotonic() + self.request_timeout
        return await _timed(operation, self._call_members(stub_cls, method, request, deadline))

    async def _call_members(self, stub_cls: type, method: str, request: object,
                            deadline: float, resend: bool = True) -> object:
        """Call one member after another until one answers or the deadline passes.

        With resend False, a request that got no answer raises _MaybeDelivered
        instead of going to the next member: the caller must fence it first.
        """
        last_error = "no member tried"
        delay = 0.02
        while True:
            endpoint = self.endpoints[self._current]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise EtcdUnavailable(
                    f"etcd unavailable ({last_error}); is a quorum of members up?")
            stub = self._stub(endpoint, stub_cls)
            try:
                return await getattr(stub, method)(request, timeout=min(remaining, 2.0),
                                                   metadata=REQUIRE_LEADER)
            except grpc.aio.AioRpcError as err:
                if err.code() not in _RETRYABLE and err.details() != "context deadline exceeded":
                    raise
                last_error = f"{endpoint}: {err.details() or err.code().name}"
                self._next_endpoint(endpoint)
                if not resend:
                    raise _MaybeDelivered(last_error) from None
            await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 0.5)

    async def txn(self, compare: Sequence[rpc.Compare], success: Sequence[rpc.RequestOp],
                  failure: Sequence[rpc.RequestOp] = ()) -> rpc.TxnResponse:
        """A Txn that applies at most once, however often it is sent.

        Each copy also compares the fence key's mod_revision with the fence
        this client last saw, and reads the fence when it fails. A copy that
        got no answer is fenced off (the fence raised) before the next copy
        goes out; a copy that failed only because another apiserver raised
        the fence is sent again with the new one.
        """
        deadline = time.monotonic() + self.request_timeout
        return await _timed("txn", self._fenced_txn(compare, success, failure, deadline))

    async def _fenced_txn(self, compare: Sequence[rpc.Compare],
                          success: Sequence[rpc.RequestOp], failure: Sequence[rpc.RequestOp],
                          deadline: float) -> rpc.TxnResponse:
        while True:
            fence = self._fence
            req = rpc.TxnRequest(compare=[*compare, mod_revision_is(FENCE_KEY, fence)],
                                 success=success, failure=[*failure, get(FENCE_KEY)])
            try:
                resp = await self._call_members(rpc_grpc.KVStub, "Txn", req, deadline,
                                                 resend=False)
            except _MaybeDelivered:
                await self._raise_fence(deadline)
                continue
            if resp.succeeded:
                return resp
            fence_kvs = resp.responses[-1].response_range.kvs
            current = fence_kvs[0].mod_revision if fence_kvs else 0
            if current == fence:
                del resp.responses[-1]
                return resp
            self._fence = max(self._fence, current)

    async def _raise_fence(self, deadline: float) -> None:
        """Move the fence key on, so that no Txn sent before can apply any more."""
        req = rpc.TxnRequest(success=[put(FENCE_KEY, b"")])
        resp = await self._call_members(rpc_grpc.KVStub, "Txn", req, deadline)
        self._fence = max(self._fence, resp.header.revision)

    async def range(self, key: bytes, end: bytes = b"", *, count_only: bool = False,
                    revision: int = 0) -> rpc.RangeResponse:
        req = rpc.RangeRequest(key=key, range_end=end, count_only=count_only, revision=revision)
        return await self._call("range", rpc_grpc.KVStub, "Range", req)  # type: ignore[return-value]

    async def get(self, key: bytes) -> rpc.KeyValue | None:
        resp = await self.range(key)
        return resp.kvs[0] if resp.kvs else None

    async def revision(self) -> int:
        """The current revision of the etcd cluster (a linearizable read)."""
        resp = await self.range(b"\0", count_only=True)
        return resp.header.revision

    async def is_compacted(self, revision: int) -> bool:
        """Whether etcd has compacted away the history at revision."""
        try:
            await self.range(b"\0", count_only=True, revision=revision)
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.OUT_OF_RANGE:
                return True
            raise
        return False

    async def compact(self, revision: int) -> None:
        req = rpc.CompactionRequest(revision=revision, physical=True)
        await self._call("compact", rpc_grpc.KVStub, "Compact", req)

    async def members(self, timeout: float = 2.0) -> list[rpc.Member]:
        """The cluster's members, as the first member to answer lists them. Listing needs
        no leader, so a member cut off from the quorum still says who its peers are."""
        failures = []
        for endpoint in self.endpoints[self._current:] + self.endpoints[:self._current]:
            stub = self._stub(endpoint, rpc_grpc.ClusterStub)
            try:
                return list((await stub.MemberList(rpc.MemberListRequest(),
                                                   timeout=timeout)).members)
            except grpc.aio.AioRpcError as err:
                failures.append(f"{endpoint}: {err.details() or err.code().name}")
        raise EtcdUnavailable(f"no etcd member lists the cluster ({'; '.join(failures)})")

    async def member_status(self, endpoint: str, timeout: float = 2.0) -> rpc.StatusResponse:
        """What one member (host:port) says of itself; no failover: that member is asked."""
        stub = self._stub(endpoint, rpc_grpc.MaintenanceStub)
        return await stub.Status(rpc.StatusRequest(), timeout=timeout)

    def open_watch(self, prefix: bytes, start_revision: int) -> EtcdWatch:
        endpoint = self.endpoints[self._current]
        return EtcdWatch(self, endpoint, prefix, start_revision)

    async def close(self) -> None:
        for ch in self._channels.values():
            await ch.close()
        self._channels.clear()
        self._stubs.clear()


class EtcdWatch:
    """One etcd watch stream on a key prefix, with on-demand progress requests."""

    def __init__(self, etcd: Etcd, endpoint: str, prefix: bytes, start_revision: int) -> None:
        self._etcd = etcd
        self.endpoint = endpoint
        self._prefix = prefix
        self._start = start_revision
        self._call: grpc.aio.StreamStreamCall | None = None

    async def start(self) -> None:
        stub = self._etcd._stub(self.endpoint, rpc_grpc.WatchStub)
        self._call = stub.Watch(metadata=REQUIRE_LEADER)
        create = rpc.WatchCreateRequest(key=self._prefix, range_end=range_end(self._prefix),
                                        start_revision=self._start, prev_kv=True)
        await self._call.write(rpc.WatchRequest(create_request=create))

    async def request_progress(self) -> None:
        if self._call is not None:
            await self._call.write(rpc.WatchRequest(progress_request=rpc.WatchProgressRequest()))

    async def read(self) -> rpc.WatchResponse:
        """The next response; raises EtcdCompacted, or an error when the stream breaks."""
        assert self._call is not None
        try:
            resp = await self._call.read()
        except grpc.aio.AioRpcError:
            self._etcd._next_endpoint(self.endpoint)
            raise
        if resp is grpc.aio.EOF:
            self._etcd._next_endpoint(self.endpoint)
            raise EtcdUnavailable(f"etcd watch on {self.endpoint} ended")
        if resp.compact_revision:
            raise EtcdCompacted(f"revision {self._start} compacted (now {resp.compact_revision})")
        if resp.canceled:
            self._etcd._next_endpoint(self.endpoint)
            raise EtcdUnavailable(f"etcd watch canceled: {resp.cancel_reason}")
        return resp

    def cancel(self) -> None:
        if self._call is not None:
            self._call.cancel()
