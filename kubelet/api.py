"""The kubelet's own gRPC API: container logs, exec, image load and stats.

Users reach a pod's containers through the kubelet of the pod's node (as
`kubectl logs/exec` go through the Kubernetes kubelet), and machines with no
registry get images by `minictl image load` streaming a `docker save` archive
here. Stats answers from the kubelet's stats cache (kubelet/stats.py). Containers are found by the labels the kubelet put on them
(kubelet/labels.py), scoped to this kubelet's cluster and node, so kubelets
sharing one Docker engine never see each other's containers. Each call is
authorized before anything else (kubelet/auth.py), unless the cluster is
--insecure.

The Docker SDK blocks, so every call to it runs on the executor the kubelet
gives us; a followed log stream is read there too and handed to the event
loop through a queue, and closed when the gRPC call ends.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import IO, Any, NoReturn, TypeVar

import docker
import docker.errors
import grpc
import requests.exceptions

from kubelet import labels
from kubelet.auth import Guard, Request
from minik8s import errors
from minik8s.api.v1 import kubelet_pb2 as k
from minik8s.api.v1 import kubelet_pb2_grpc as k_grpc

log = logging.getLogger("minik8s.kubelet.api")

T = TypeVar("T")

# How many log chunks may wait for a slow client before the Docker reader pauses.
MAX_QUEUED_CHUNKS = 64
_LOADED = re.compile(r"^Loaded image(?: ID)?: (.+)$")


class Refused(Exception):
    """A request the kubelet answers with a gRPC status rather than a result."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Instance:
    """One Docker container (one run) of a pod's container, from `docker ps`."""

    id: str
    name: str
    restart_count: int
    created: int
    running: bool
    init: bool

    @classmethod
    def from_listing(cls, data: dict[str, Any]) -> Instance:
        lbls = data.get("Labels") or {}
        try:
            restarts = int(lbls.get(labels.RESTART_COUNT, "0"))
        except ValueError:
            restarts = 0
        return cls(id=data["Id"], name=lbls.get(labels.CONTAINER_NAME, ""),
                   restart_count=restarts, created=int(data.get("Created", 0)),
                   running=data.get("State") == "running",
                   init=lbls.get(labels.INIT) == "true")

    @property
    def order(self) -> tuple[int, int]:
        """Later runs sort higher: by restart count, then creation time."""
        return self.restart_count, self.created


def container_name(instances: list[Instance], pod_key: str, requested: str) -> str:
    """The container a request means: the one named, or the pod's only app container."""
    if requested:
        return requested
    apps = sorted({i.name for i in instances if not i.init})
    if len(apps) == 1:
        return apps[0]
    raise Refused(grpc.StatusCode.INVALID_ARGUMENT,
                  f'a container name must be specified for pod "{pod_key}", '
                  f"choose one of: [{' '.join(apps)}]")


def history(instances: list[Instance], name: str) -> list[Instance]:
    """The runs of one container, latest first."""
    runs = [i for i in instances if i.name == name]
    return sorted(runs, key=lambda i: i.order, reverse=True)


def _docker_message(exc: docker.errors.APIError) -> str:
    explanation = exc.explanation
    if isinstance(explanation, bytes):
        explanation = explanation.decode(errors="replace")
    return str(explanation or exc)


async def _abort(context: grpc.aio.ServicerContext, exc: Exception) -> NoReturn:
    """Answer a failure as a gRPC status with a clear message, never a traceback."""
    if isinstance(exc, Refused | errors.ApiError):
        await context.abort(exc.code, exc.message)
    if isinstance(exc, docker.errors.NotFound):
        await context.abort(grpc.StatusCode.NOT_FOUND, _docker_message(exc))
    if isinstance(exc, docker.errors.APIError):
        await context.abort(grpc.StatusCode.INTERNAL, f"Docker: {_docker_message(exc)}")
    if isinstance(exc, docker.errors.DockerException | requests.exceptions.ConnectionError):
        await context.abort(grpc.StatusCode.UNAVAILABLE, f"the Docker engine does not answer: {exc}")
    log.exception("kubelet API call failed", exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {exc}")


class _LogPump:
    """Reads a blocking Docker log stream on the executor and hands its chunks
    to the event loop, holding at most MAX_QUEUED_CHUNKS for a slow reader."""

    _END = object()

    def __init__(self, stream: Iterator[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self._stream = stream
        self._loop = loop
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._room = threading.Semaphore(MAX_QUEUED_CHUNKS)
        self._stopped = threading.Event()

    def run(self) -> None:
        """On the executor: read until the stream ends or stop() is called."""
        end: Any = self._END
        try:
            for chunk in self._stream:
                self._room.acquire()
                if self._stopped.is_set():
                    return
                self._loop.call_soon_threadsafe(self._queue.put_nowait, chunk)
        except Exception as exc:  # handed to the reader, which answers with a status
            end = exc
        if not self._stopped.is_set():
            self._loop.call_soon_threadsafe(self._queue.put_nowait, end)

    async def chunks(self) -> AsyncIterator[bytes]:
        while (item := await self._queue.get()) is not self._END:
            if isinstance(item, Exception):
                raise item
            self._room.release()
            yield item

    def stop(self) -> None:
        """Unblock and end the reader thread (closing the Docker stream)."""
        self._stopped.set()
        self._room.release()
        with contextlib.suppress(Exception):  # already closed or never opened fully
            self._stream.close()  # type: ignore[attr-defined]


class KubeletApi(k_grpc.KubeletServicer):
    """Serves Logs, Exec, LoadImage and Stats for the containers of one node.

    guard: who may do what (kubelet/auth.py); None only for a cluster started
    with --insecure, whose kubelet API is open to anyone who reaches it.
    """

    def __init__(self, docker_client: docker.DockerClient, executor: Executor,
                 cluster: str, node: str,
                 stats: Callable[[], k.StatsResponse] = k.StatsResponse,
                 guard: Guard | None = None) -> None:
        self._docker = docker_client
        self._executor = executor
        self._cluster = cluster
        self._node = node
        self._stats = stats
        self._guard = guard

    async def _authorize(self, context: grpc.aio.ServicerContext, request: Request) -> None:
        if self._guard is not None:
            await self._guard.check(context, request)

    async def _blocking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    # ------------------------------------------------------------ finding containers

    async def _instances(self, namespace: str, pod: str) -> list[Instance]:
        """Every run of every app and init container of a pod on this node."""
        if not namespace or not pod:
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT, "namespace and pod are required")
        selector = [*labels.owner_filter(self._cluster, self._node),
                    f"{labels.POD_NAMESPACE}={namespace}", f"{labels.POD_NAME}={pod}"]
        listing = await self._blocking(self._docker.api.containers, all=True,
                                       filters={"label": selector})
        found = [Instance.from_listing(c) for c in listing]
        found = [i for i in found if i.name and i.name != labels.SANDBOX]
        if not found:
            raise Refused(grpc.StatusCode.NOT_FOUND,
                          f'pod "{namespace}/{pod}" not found on node "{self._node}"')
        return found

    async def _runs(self, namespace: str, pod: str, container: str) -> tuple[str, list[Instance]]:
        """The container's name and its runs, latest first (never empty)."""
        key = f"{namespace}/{pod}"
        instances = await self._instances(namespace, pod)
        name = container_name(instances, key, container)
        runs = history(instances, name)
        if not runs:
            raise Refused(grpc.StatusCode.NOT_FOUND,
                          f'container "{name}" in pod "{key}" not found')
        return name, runs

    async def _log_target(self, request: k.LogsRequest) -> Instance:
        name, runs = await self._runs(request.namespace, request.pod, request.container)
        if not request.previous:
            return runs[0]
        if len(runs) < 2:
            raise Refused(grpc.StatusCode.NOT_FOUND,
                          f'previous terminated container "{name}" in pod '
                          f'"{request.namespace}/{request.pod}" not found')
        return runs[1]

    async def _exec_target(self, request: k.ExecRequest) -> Instance:
        name, runs = await self._runs(request.namespace, request.pod, request.container)
        running = [i for i in runs if i.running]
        if not running:
            raise Refused(grpc.StatusCode.FAILED_PRECONDITION,
                          f'container "{name}" in pod "{request.namespace}/{request.pod}" '
                          "is not running")
        return running[0]

    # ------------------------------------------------------------ Logs

    async def Logs(self, request: k.LogsRequest,
                   context: grpc.aio.ServicerContext) -> AsyncIterator[k.LogChunk]:
        try:
            await self._authorize(context, Request("get", "pods/log", request.namespace,
                                                   request.pod))
            target = await self._log_target(request)
            tail = request.tail_lines if request.HasField("tail_lines") else -1
            stream = await self._blocking(
                self._docker.api.logs, target.id, stream=True, follow=request.follow,
                timestamps=request.timestamps, tail=tail if tail >= 0 else "all")
        except Exception as exc:
            await _abort(context, exc)
        loop = asyncio.get_running_loop()
        pump = _LogPump(stream, loop)
        loop.run_in_executor(self._executor, pump.run)
        try:
            async for data in pump.chunks():
                yield k.LogChunk(data=data)
        except Exception as exc:
            await _abort(context, exc)
        finally:
            pump.stop()  # also when the call is cancelled: closes the Docker stream

    # ------------------------------------------------------------ Exec

    async def Exec(self, request: k.ExecRequest,
                   context: grpc.aio.ServicerContext) -> k.ExecResponse:
        try:
            await self._authorize(context, Request("create", "pods/exec", request.namespace,
                                                   request.pod))
            if not request.command:
                raise Refused(grpc.StatusCode.INVALID_ARGUMENT, "a command is required")
            target = await self._exec_target(request)
            return await self._run_exec(target, list(request.command), request.timeout_seconds)
        except Exception as exc:
            await _abort(context, exc)

    async def _run_exec(self, target: Instance, command: list[str],
                        timeout: float) -> k.ExecResponse:
        """Run the command; past the timeout answer DEADLINE_EXCEEDED and let it run on."""
        container = await self._blocking(self._docker.containers.get, target.id)
        run = self._blocking(container.exec_run, command, demux=True)
        try:
            result = await asyncio.wait_for(run, timeout if timeout > 0 else None)
        except TimeoutError:
            raise Refused(grpc.StatusCode.DEADLINE_EXCEEDED,
                          f"command {command!r} did not finish within {timeout:g}s") from None
        stdout, stderr = result.output
        return k.ExecResponse(stdout=stdout or b"", stderr=stderr or b"",
                              exit_code=result.exit_code or 0)

    # ------------------------------------------------------------ LoadImage

    async def LoadImage(self, request_iterator: AsyncIterator[k.ImageChunk],
                        context: grpc.aio.ServicerContext) -> k.LoadImageResponse:
        try:
            await self._authorize(context, Request("create", "nodes/images", name=self._node))
            with tempfile.TemporaryFile(prefix="minik8s-image-") as spool:
                if not await self._spool(request_iterator, spool):
                    raise Refused(grpc.StatusCode.INVALID_ARGUMENT, "the image archive is empty")
                spool.seek(0)
                images = await self._blocking(self._load, spool)
        except Exception as exc:
            await _abort(context, exc)
        log.info("loaded images %s", ", ".join(images))
        return k.LoadImageResponse(images=images)

    async def _spool(self, chunks: AsyncIterator[k.ImageChunk], spool: IO[bytes]) -> int:
        """Write the archive to disk as it arrives; return its size."""
        size = 0
        async for chunk in chunks:
            await self._blocking(spool.write, chunk.data)
            size += len(chunk.data)
        return size

    def _load(self, archive: IO[bytes]) -> list[str]:
        """On the executor: `docker load`; the tags (or, untagged, the ids) it loaded."""
        loaded = []
        try:
            for message in self._docker.api.load_image(archive):
                if "errorDetail" in message or "error" in message:
                    detail = message.get("errorDetail", {}).get("message") or message["error"]
                    raise Refused(grpc.StatusCode.INVALID_ARGUMENT,
                                  f"loading the image archive failed: {detail}")
                match = _LOADED.match(message.get("stream", "").strip())
                if match:
                    loaded.append(match.group(1))
        except docker.errors.APIError as exc:
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT,
                          f"loading the image archive failed: {_docker_message(exc)}") from None
        return loaded


    # ------------------------------------------------------------ Stats

    async def Stats(self, request: k.StatsRequest,
                    context: grpc.aio.ServicerContext) -> k.StatsResponse:
        try:
            await self._authorize(context, Request("get", "nodes/stats", name=self._node))
        except Exception as exc:
            await _abort(context, exc)
        return self._stats()


def add_to_server(server: grpc.aio.Server, api: KubeletApi) -> None:
    k_grpc.add_KubeletServicer_to_server(api, server)
