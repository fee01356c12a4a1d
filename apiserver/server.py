"""The apiserver's gRPC service and process: request path, metrics, lifecycle."""
from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from prometheus_client import REGISTRY, Counter, Histogram

from apiserver import authz, bootstrap, fencing
from apiserver.allocators import ServiceAllocator
from apiserver.authn import AUTHENTICATED, Authenticator, TokenFile, User
from apiserver.etcd import Etcd, EtcdTls, EtcdUnavailable
from apiserver.etcd_status import etcd_status
from apiserver.limits import (
    DEFAULT_MAX_WATCHES,
    DEFAULT_REFUSED_PER_SECOND,
    REFUSALS,
    RefusalPacer,
    WatchLimiter,
)
from apiserver.rbac import REVIEWS, Attributes
from apiserver.registry import Registry, matcher
from apiserver.statemetrics import StateCollector
from apiserver.storage import DEFAULT_MAX_OBJECT_BYTES, Extras, Storage
from apiserver.watchcache import WatchCache
from minik8s import errors, kinds, serving
from minik8s.api.v1 import apiserver_pb2 as api
from minik8s.api.v1 import apiserver_pb2_grpc as api_grpc
from minik8s.client import ORIGIN_APISERVER, ORIGIN_KEY

log = logging.getLogger("minik8s.apiserver")

REQUESTS = Counter("apiserver_request_total", "API requests by verb, kind and code",
                   ["verb", "resource", "code"])
LATENCY = Histogram("apiserver_request_duration_seconds", "API request latency",
                    ["verb", "resource"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))

ORIGIN = ((ORIGIN_KEY, ORIGIN_APISERVER),)


def _resource(request: Any) -> str:
    if hasattr(request, "object") and isinstance(request.object, api.Object):
        kind = kinds.kind_of_wrapped(request.object)
        return kind.name if kind else ""
    return getattr(request, "kind", "") or ("Pod" if isinstance(request, api.BindRequest) else "")


async def _abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str) -> None:
    context.set_trailing_metadata(ORIGIN)
    await context.abort(code, message)


def _as_status(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    if isinstance(exc, errors.ApiError):
        return exc.code, exc.message
    if isinstance(exc, EtcdUnavailable):
        return grpc.StatusCode.UNAVAILABLE, str(exc)
    return grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}"


def _account(verb: str, request: Any, start: float, task: asyncio.Task) -> None:
    """Metrics (and the log of an internal error) for a finished request."""
    if task.cancelled():
        code = grpc.StatusCode.CANCELLED
    elif (exc := task.exception()) is not None:
        code = _as_status(exc)[0]
        if code == grpc.StatusCode.INTERNAL:
            log.error("internal error in %s", verb, exc_info=exc)
    else:
        code = grpc.StatusCode.OK
    if hasattr(request, "fence") and request.HasField("fence"):
        fencing.record(request.fence, verb, code == grpc.StatusCode.OK)
    resource = _resource(request)
    REQUESTS.labels(verb, resource, code.name).inc()
    LATENCY.labels(verb, resource).observe(time.perf_counter() - start)


# Calls that authorize what they do themselves (per object, or not at all).
SELF_AUTHORIZED = ("apply", "access_review")


def unary(verb: str) -> Callable:
    """Wrap a handler: pacing of a connection that keeps being refused, then
    authentication and authorization before anything else, errors to status
    codes, the origin marker, metrics.

    The handler runs to its end even if the client goes away meanwhile, so a
    write that reached etcd is always accounted for as it ended.
    """
    def wrap(handler: Callable) -> Callable:
        async def admitted(self: ApiService, request: Any,
                           context: grpc.aio.ServicerContext) -> Any:
            user = self.authn.authenticate(context)
            if verb not in SELF_AUTHORIZED:
                await self.authz.check(authz.attributes(user, verb, request))
            return await handler(self, request, user)

        @functools.wraps(handler)
        async def call(self: ApiService, request: Any, context: grpc.aio.ServicerContext) -> Any:
            waited = await self.pacer.admit(context.peer())
            task = asyncio.ensure_future(admitted(self, request, context))
            task.add_done_callback(functools.partial(_account, verb, request,
                                                     time.perf_counter()))
            try:
                result = await asyncio.shield(task)
            except Exception as exc:  # every failure becomes a status, never a traceback
                await self.refuse(context, exc, waited)
            context.set_trailing_metadata(ORIGIN)
            return result
        return call
    return wrap


def _typed(wrapped: api.Object) -> Any:
    if kinds.kind_of_wrapped(wrapped) is None:
        raise errors.Invalid("object: must hold an object of a known kind")
    return kinds.unwrap(wrapped)


def _fence(request: Any) -> Extras:
    return fencing.guard(request.fence if request.HasField("fence") else None)


def _watch_revision(rv: str) -> int | None:
    if rv in ("", "0"):
        return None
    try:
        return int(rv)
    except ValueError:
        raise errors.Invalid(f"resourceVersion: invalid value {rv!r}") from None


class ApiService(api_grpc.ApiServerServicer):
    def __init__(self, registry: Registry, cache: WatchCache, authn: Authenticator,
                 max_watches_per_user: int = DEFAULT_MAX_WATCHES,
                 refused_per_second: float = DEFAULT_REFUSED_PER_SECOND) -> None:
        self.registry = registry
        self.cache = cache
        self.authn = authn
        self.authz = authz.Authorizer(cache)
        self.watches = WatchLimiter(max_watches_per_user)
        self.pacer = RefusalPacer(refused_per_second)

    async def refuse(self, context: grpc.aio.ServicerContext, exc: Exception,
                     waited: bool) -> None:
        """Answer a failure as its status, charging the connection for a refusal."""
        code, message = _as_status(exc)
        if code in REFUSALS and not waited:
            self.pacer.refused(context.peer())
        await _abort(context, code, message)

    @unary("create")
    async def Create(self, request: api.CreateRequest, _user: User) -> api.Object:
        return kinds.wrap(await self.registry.create(_typed(request.object), _fence(request)))

    @unary("get")
    async def Get(self, request: api.GetRequest, _user: User) -> api.Object:
        return kinds.wrap(await self.registry.get(request.kind, request.namespace, request.name))

    @unary("list")
    async def List(self, request: api.ListRequest, _user: User) -> api.ListResponse:
        items, revision = await self.registry.list(request)
        return api.ListResponse(items=[kinds.wrap(o) for o in items],
                                resource_version=str(revision))

    @unary("update")
    async def Update(self, request: api.UpdateRequest, _user: User) -> api.Object:
        return kinds.wrap(await self.registry.update(_typed(request.object),
                                                     fence=_fence(request)))

    @unary("update_status")
    async def UpdateStatus(self, request: api.UpdateRequest, _user: User) -> api.Object:
        return kinds.wrap(await self.registry.update(_typed(request.object), status=True,
                                                     fence=_fence(request)))

    @unary("delete")
    async def Delete(self, request: api.DeleteRequest, _user: User) -> api.Object:
        return kinds.wrap(await self.registry.delete(request, _fence(request)))

    @unary("bind")
    async def Bind(self, request: api.BindRequest, _user: User) -> api.Object:
        return kinds.wrap(await self.registry.bind(request, _fence(request)))

    @unary("apply")
    async def Apply(self, request: api.ApplyRequest, user: User) -> api.ApplyResponse:
        objects = self.registry.load_manifest(request)
        for attrs in authz.apply_attributes(user, objects, request.create_only):
            await self.authz.check(attrs)
        return api.ApplyResponse(results=await self.registry.apply(objects, request.create_only))

    @unary("etcd_status")
    async def EtcdStatus(self, request: api.EtcdStatusRequest, _user: User) -> api.EtcdStatusResponse:
        return await etcd_status(self.registry.storage.etcd)

    @unary("access_review")
    async def AccessReview(self, request: api.AccessReviewRequest,
                           user: User) -> api.AccessReviewResponse:
        """May the caller do this? Or, asked by one allowed to create
        subjectaccessreviews (administrators, kubelets), may request.user?"""
        if request.user:
            if not await self.authz.allows(Attributes(user, "create", REVIEWS)):
                raise errors.Forbidden(f'users "{request.user}" is forbidden: User '
                                       f'"{user.name}" cannot impersonate users (create '
                                       f'{REVIEWS})')
            user = User(request.user, (*request.groups, AUTHENTICATED))
        attrs = Attributes(user, request.verb, request.resource, request.namespace,
                           request.name)
        allowed = await self.authz.allows(attrs)
        return api.AccessReviewResponse(allowed=allowed, user=user.name,
                                        reason="" if allowed else attrs.denial())

    async def Watch(self, request: api.WatchRequest,
                    context: grpc.aio.ServicerContext) -> AsyncIterator[api.WatchEvent]:
        REQUESTS.labels("watch", request.kind, "OK").inc()
        waited = await self.pacer.admit(context.peer())
        try:
            user = self.authn.authenticate(context)
            await self.authz.check(authz.attributes(user, "watch", request))
            kind = kinds.by_name(request.kind)
            matches = matcher(kind, request.namespace, request.label_selector,
                              request.field_selector)
            revision = _watch_revision(request.resource_version)
            with self.watches.hold(user):
                events = self.cache[kind.name].watch(matches, revision, request.allow_bookmarks)
                async for ev in events:
                    if ev.wire is None:
                        ev.wire = api.WatchEvent(type=ev.type, object=kinds.wrap(ev.obj),
                                                 resource_version=str(ev.revision))
                    yield ev.wire
        except Exception as exc:  # every failure becomes a status, never a traceback
            if _as_status(exc)[0] == grpc.StatusCode.INTERNAL:
                log.error("internal error in watch", exc_info=exc)
            await self.refuse(context, exc, waited)


@dataclass
class Options:
    etcd_servers: list[str]
    bind_address: str = "127.0.0.1"
    port: int = 6443
    http_port: int = 8080
    service_cidr: str = "10.96.0.0/16"
    watch_cache_size: int = 10_000
    bookmark_interval: float = 1.0
    etcd_request_timeout: float = 5.0
    max_object_bytes: int = DEFAULT_MAX_OBJECT_BYTES
    tls: serving.TlsFiles | None = None       # None: --insecure (development only)
    token_auth_file: Path | None = None
    token_port: int = 0                       # server-side TLS + bearer token; 0: none
    max_watches_per_user: int = DEFAULT_MAX_WATCHES
    refused_per_second: float = DEFAULT_REFUSED_PER_SECOND   # per connection, then paced
    etcd_tls: EtcdTls | None = None


async def run(opts: Options) -> None:
    """Run one apiserver replica until SIGTERM."""
    etcd = Etcd(opts.etcd_servers, request_timeout=opts.etcd_request_timeout, tls=opts.etcd_tls)
    cache = WatchCache(etcd, capacity=opts.watch_cache_size,
                       bookmark_interval=opts.bookmark_interval)
    cache.start()
    state_metrics = StateCollector(cache.caches)
    REGISTRY.register(state_metrics)
    cidr = ipaddress.ip_network(opts.service_cidr)
    allocator = ServiceAllocator(cidr, lambda: cache["Service"].objects.values())
    registry = Registry(Storage(etcd, opts.max_object_bytes), cache, allocator)

    server = serving.make_grpc_server(max_message_bytes=2 * opts.max_object_bytes + 65536)
    tokens = TokenFile(opts.token_auth_file) if opts.token_auth_file else None
    authn = Authenticator(tokens, insecure=opts.tls is None)
    api_grpc.add_ApiServerServicer_to_server(
        ApiService(registry, cache, authn, opts.max_watches_per_user,
                   opts.refused_per_second), server)
    health = serving.add_grpc_health(server)
    port = serving.add_port(server, f"{opts.bind_address}:{opts.port}", opts.tls)
    if opts.token_port and opts.tls is not None:
        token_port = serving.add_port(server, f"{opts.bind_address}:{opts.token_port}",
                                      opts.tls, require_client_cert=False)
        log.info("serving bearer-token clients on %s:%d", opts.bind_address, token_port)
    if opts.tls is None:
        log.warning("--insecure: no TLS, no authentication, no authorization")

    async def ready() -> bool:
        if not cache.synced():
            return False
        await asyncio.wait_for(etcd.revision(), 2)
        return True

    http = serving.HttpEndpoints(healthz=lambda: True, readyz=ready)
    http_port = await http.start(opts.bind_address, opts.http_port)
    await server.start()
    log.info("serving the API on %s:%d, health and metrics on http://%s:%d", opts.bind_address,
             port, opts.bind_address, http_port)
    bootstrapping = asyncio.create_task(bootstrap.run(registry))
    synced = asyncio.create_task(_serving_when_synced(cache, health))
    signame = await serving.wait_for_termination()
    log.info("received %s; shutting down", signame)
    await serving.set_serving(health, False)
    bootstrapping.cancel()
    synced.cancel()
    cache.end_watches("apiserver shutting down; resume on another")
    await server.stop(grace=2)
    await http.stop()
    await cache.stop()
    REGISTRY.unregister(state_metrics)
    await etcd.close()
    log.info("stopped")


async def _serving_when_synced(cache: WatchCache, health: Any) -> None:
    await serving.set_serving(health, False)
    await cache.wait_synced()
    await serving.set_serving(health, True)
    log.info("watch caches synced")
