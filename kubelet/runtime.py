"""The kubelet's view of the Docker engine: its own containers, and the calls it makes.

The Docker SDK blocks, so every call runs on a thread pool of its own (a
container stop waits out the grace period; the default executor is too small
to hold many of those). Containers are read back into ``Instance`` records
built from ``docker inspect``: the labels say which pod and container an
instance belongs to, the state says how it is doing.

Every Docker call goes through ``Runtime.call``, which times it and counts its
failures by operation (kubelet_runtime_operations_*, with CRI-style names).
"""
from __future__ import annotations

import asyncio
import datetime
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import docker
import docker.errors
from prometheus_client import Counter, Histogram

from kubelet import labels

log = logging.getLogger("minik8s.kubelet.runtime")

T = TypeVar("T")
_EPOCH = "0001-01-01T00:00:00Z"

# The Docker SDK functions the runtime calls, by the operation Kubernetes' metrics name.
OPERATIONS = {
    "containers": "list_containers", "inspect_container": "container_status",
    "create_container": "create_container", "start": "start_container",
    "stop": "stop_container", "remove_container": "remove_container",
    "stats": "container_stats", "exec_sync": "exec_sync", "pull": "pull_image",
    "inspect_image": "image_status", "create_volume": "create_volume",
    "version": "version", "ping": "ping",
}
OPERATION_DURATION = Histogram(
    "kubelet_runtime_operations_duration_seconds", "Seconds a Docker engine call took.",
    ["operation_type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
OPERATION_ERRORS = Counter(
    "kubelet_runtime_operations_errors_total", "Docker engine calls that failed.",
    ["operation_type"])
for _operation in OPERATIONS.values():
    OPERATION_ERRORS.labels(_operation)  # exported at 0 before the first failure


class EngineError(Exception):
    """The engine refused a call; the message is the engine's own."""


@dataclass
class Instance:
    """One Docker container of a pod: the sandbox, or one run of an app or init container."""

    id: str
    name: str                 # the pod's container name (labels.SANDBOX for the pause)
    pod_uid: str
    pod_key: str
    restart_count: int
    running: bool
    exit_code: int
    oom_killed: bool
    error: str
    created: str
    started_at: datetime.datetime | None
    finished_at: datetime.datetime | None
    image: str
    image_id: str
    labels: dict[str, str] = field(default_factory=dict)
    ip: str = ""

    @property
    def sandbox(self) -> bool:
        return self.name == labels.SANDBOX

    @property
    def init(self) -> bool:
        return self.labels.get(labels.INIT) == "true"

    @property
    def grace(self) -> int:
        return int(self.labels.get(labels.GRACE, "30"))


def _time(value: str | None) -> datetime.datetime | None:
    if not value or value.startswith("0001-01-01"):
        return None
    # Docker gives nanoseconds; Python parses at most microseconds
    head, _, rest = value.rstrip("Z").partition(".")
    micros = (rest + "000000")[:6] if rest else "000000"
    return datetime.datetime.fromisoformat(f"{head}.{micros}+00:00")


def instance_from_inspect(data: dict[str, Any], network: str) -> Instance:
    lbls = data["Config"].get("Labels") or {}
    state = data["State"]
    networks = (data.get("NetworkSettings") or {}).get("Networks") or {}
    ip = (networks.get(network) or {}).get("IPAddress", "") or lbls.get(labels.POD_IP, "")
    return Instance(
        id=data["Id"], name=lbls.get(labels.CONTAINER_NAME, ""),
        pod_uid=lbls.get(labels.POD_UID, ""), pod_key=labels.pod_key(lbls) or "",
        restart_count=int(lbls.get(labels.RESTART_COUNT, "0")),
        running=bool(state.get("Running")) and not state.get("Restarting"),
        exit_code=int(state.get("ExitCode", 0)), oom_killed=bool(state.get("OOMKilled")),
        error=state.get("Error", ""), created=data.get("Created", ""),
        started_at=_time(state.get("StartedAt", _EPOCH)),
        finished_at=_time(state.get("FinishedAt", _EPOCH)),
        image=data["Config"].get("Image", ""), image_id=data.get("Image", ""),
        labels=dict(lbls), ip=ip,
    )


class Runtime:
    """Async calls into the Docker engine, scoped to one kubelet's containers."""

    def __init__(self, client: docker.DockerClient, cluster: str, node: str,
                 network: str, threads: int = 32) -> None:
        self.client = client
        self.cluster, self.node, self.network = cluster, node, network
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="docker")

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """fn(*args, **kwargs) on the pool; an engine refusal as EngineError.

        Docker SDK calls (those named in OPERATIONS) are timed and their
        failures counted; other blocking work (iptables, files) is not.
        """
        loop = asyncio.get_running_loop()
        operation = OPERATIONS.get(getattr(fn, "__name__", ""))
        started = time.perf_counter()
        try:
            return await loop.run_in_executor(self.executor, lambda: fn(*args, **kwargs))
        except Exception as err:
            if operation is not None:
                OPERATION_ERRORS.labels(operation).inc()
            if isinstance(err, docker.errors.APIError):
                raise EngineError(str(err.explanation or err)) from None
            raise
        finally:
            if operation is not None:
                OPERATION_DURATION.labels(operation).observe(time.perf_counter() - started)

    # ------------------------------------------------------------ reading

    async def instances(self, *extra: str) -> list[Instance]:
        """Every container of ours (running or not) matching extra label filters."""
        filters = {"label": [*labels.owner_filter(self.cluster, self.node), *extra]}
        found = await self.call(self.client.api.containers, all=True, filters=filters)
        result = []
        for summary in found:
            try:
                data = await self.call(self.client.api.inspect_container, summary["Id"])
            except EngineError:
                continue  # removed in between
            result.append(instance_from_inspect(data, self.network))
        return result

    async def pod_instances(self, namespace: str, name: str) -> list[Instance]:
        return await self.instances(f"{labels.POD_NAMESPACE}={namespace}",
                                    f"{labels.POD_NAME}={name}")

    async def refresh(self, instance: Instance) -> Instance:
        """The instance as it is now."""
        data = await self.call(self.client.api.inspect_container, instance.id)
        return instance_from_inspect(data, self.network)

    async def summaries(self, *extra: str, running: bool = False) -> list[dict[str, Any]]:
        """`docker ps` of our containers (id, state, labels: no inspect of each)."""
        filters: dict = {"label": [*labels.owner_filter(self.cluster, self.node), *extra]}
        if running:
            filters["status"] = "running"
        return await self.call(self.client.api.containers, all=not running, filters=filters)

    async def _labels(self, *extra: str, running: bool = False) -> list[dict[str, str]]:
        """The labels of our containers (from the list: no inspect of each)."""
        return [c["Labels"] or {} for c in await self.summaries(*extra, running=running)]

    async def sandbox_ips(self) -> set[str]:
        """Addresses held by this node's running sandboxes."""
        found = await self._labels(f"{labels.CONTAINER_NAME}={labels.SANDBOX}", running=True)
        return {lbls.get(labels.POD_IP, "") for lbls in found} - {""}

    async def pod_keys(self) -> set[str]:
        """"namespace/name" of every pod with a container of ours, running or not."""
        return {key for lbls in await self._labels() if (key := labels.pod_key(lbls))}

    async def stats(self, container_id: str) -> dict[str, Any]:
        """One `docker stats --no-stream` sample: the engine reads twice, about a second
        apart, so cpu_stats and precpu_stats give the CPU rate."""
        return await self.call(self.client.api.stats, container_id, stream=False)

    async def image_present(self, image: str) -> bool:
        try:
            await self.call(self.client.api.inspect_image, image)
            return True
        except EngineError:
            return False

    async def pull(self, image: str) -> None:
        repository, tag = _split_image(image)
        await self.call(self.client.api.pull, repository, tag=tag)

    # ------------------------------------------------------------ writing

    async def create(self, name: str, config: dict[str, Any], host_config: dict[str, Any],
                     ip: str = "") -> str:
        """Create a container from low-level config dicts; return its id."""
        api = self.client.api
        networking = None
        if ip:
            networking = api.create_networking_config(
                {self.network: api.create_endpoint_config(ipv4_address=ip)})
        created = await self.call(api.create_container, name=name,
                                  host_config=api.create_host_config(**host_config),
                                  networking_config=networking, **config)
        return created["Id"]

    async def ensure_volume(self, name: str, volume_labels: dict[str, str]) -> dict[str, str]:
        """Create the named volume with these labels unless it exists; return its labels.

        An existing volume keeps the labels it was created with.
        """
        created = await self.call(self.client.api.create_volume, name=name, driver="local",
                                  labels=volume_labels)
        return created.get("Labels") or {}

    async def start(self, container_id: str) -> None:
        await self.call(self.client.api.start, container_id)

    async def stop(self, container_id: str, grace: int) -> None:
        """SIGTERM, then SIGKILL after grace seconds (Docker's own stop)."""
        try:
            await self.call(self.client.api.stop, container_id, timeout=max(grace, 0))
        except EngineError as err:
            if "No such container" not in str(err):
                raise

    async def remove(self, container_id: str) -> None:
        try:
            await self.call(self.client.api.remove_container, container_id, force=True, v=True)
        except EngineError as err:
            if "No such container" not in str(err) and "already in progress" not in str(err):
                raise

    async def exec(self, container_id: str, command: list[str],
                   timeout: float) -> tuple[int, bytes]:
        """Run a command in a container (a probe); (exit code, output)."""
        def exec_sync() -> tuple[int, bytes]:
            result = self.client.containers.get(container_id).exec_run(command)
            return result.exit_code if result.exit_code is not None else -1, result.output
        return await asyncio.wait_for(self.call(exec_sync), timeout)

    async def version(self) -> str:
        return (await self.call(self.client.version)).get("Version", "unknown")

    # ------------------------------------------------------------ events

    def watch_events(self, on_event: Callable[[str, dict[str, str]], None]) -> EventStream:
        """Call on_event(action, labels) on the event loop for each event of our containers."""
        return EventStream(self, on_event, asyncio.get_running_loop())


class EventStream:
    """Docker's event stream for one kubelet's containers, read on a thread of its own."""

    def __init__(self, runtime: Runtime, on_event: Callable[[str, dict[str, str]], None],
                 loop: asyncio.AbstractEventLoop) -> None:
        self._runtime, self._on_event, self._loop = runtime, on_event, loop
        self._stream: Any = None
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="docker-events", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        filters = {"type": "container",
                   "label": labels.owner_filter(self._runtime.cluster, self._runtime.node)}
        while not self._closed.is_set():
            try:
                self._stream = self._runtime.client.api.events(decode=True, filters=filters)
                for event in self._stream:
                    attrs = (event.get("Actor") or {}).get("Attributes") or {}
                    self._loop.call_soon_threadsafe(self._on_event, event.get("Action", ""),
                                                    attrs)
            except Exception as exc:  # the engine restarted; read on after a pause
                if not self._closed.is_set():
                    log.warning("docker events: %s; reconnecting", exc)
                    self._closed.wait(1.0)

    def close(self) -> None:
        self._closed.set()
        if self._stream is not None:
            self._stream.close()


def _split_image(image: str) -> tuple[str, str]:
    """"repo:tag" (or "repo@digest") into the repository and the tag (default latest)."""
    if "@" in image:
        return image, ""
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon + 1:]
    return image, "latest"
