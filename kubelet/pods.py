"""Pod sync: make one pod's containers match its spec, then report its status.

``PodSyncer.sync(key)`` is the reconcile of the kubelet's work queue, as
Kubernetes' SyncPod: it reads the pod from the informer's cache and its
containers from the engine, and acts on the difference:

* containers of a pod that is gone (or of an older pod of the same name) are
  stopped and removed;
* a pod being deleted has its containers stopped, SIGTERM first and SIGKILL
  after the grace period, and then its object removed;
* otherwise the sandbox is made to run, then the init containers in order,
  then every app container, restarting exited ones as the restart policy
  says, with CrashLoopBackOff between restarts.

Everything it knows it reads back from the engine, so a restarted kubelet
carries on where the last one stopped, without restarting anything.
"""
from __future__ import annotations

import asyncio
import datetime
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kubelet import ipam, labels
from kubelet.backoff import Backoff
from kubelet.containers import (
    Owner,
    app_spec,
    claim_volume_labels,
    claim_volume_name,
    docker_name,
    grace_of,
    sandbox_spec,
    service_env,
)
from kubelet.dns import resolv_conf
from kubelet.podmetrics import POD_WORKER_DURATION, StartTimes
from kubelet.prober import ProbeManager
from kubelet.runtime import EngineError, Instance, Runtime
from kubelet.status import TERMINAL, Note, Observed, pod_status, runs_of
from minik8s import errors
from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from minik8s.events import EventRecorder
from minik8s.informer import Informer

log = logging.getLogger("minik8s.kubelet.pods")

Requeue = Callable[[str, float], None]


@dataclass
class PodConfig:
    owner: Owner
    pause_image: str
    host_ip: str
    root_dir: Path
    crash_backoff: tuple[float, float] = (10.0, 300.0)   # initial, cap (seconds)
    cluster_dns: str = ""          # the kube-dns ClusterIP pods resolve through
    cluster_domain: str = "cluster.local"


class PodSyncer:
    def __init__(self, config: PodConfig, client: ApiClient, runtime: Runtime,
                 pods: Informer, services: Informer, probes: ProbeManager,
                 events: EventRecorder, requeue: Requeue) -> None:
        self.config, self.client, self.runtime = config, client, runtime
        self.pods, self.services, self.probes = pods, services, probes
        self.events, self.requeue = events, requeue
        self.pod_cidr = ""
        self.starts = StartTimes()
        self.crash = Backoff(*config.crash_backoff)
        self.pulls = Backoff(*config.crash_backoff)
        self._pull_failed: dict[str, float] = {}
        self._ip_lock = asyncio.Lock()
        self._reserved: set[str] = set()
        self._written: dict[str, tuple[int, t.PodStatus]] = {}  # uid -> (rv, status) we wrote

    # ------------------------------------------------------------ sync

    async def sync(self, key: str) -> None:
        started = time.monotonic()
        operation = await self._sync(key)
        if operation:
            POD_WORKER_DURATION.labels(operation).observe(time.monotonic() - started)

    async def _sync(self, key: str) -> str:
        """One sync; what it was (create, sync, kill), or "" if there was nothing to do."""
        namespace, name = key.split("/", 1)
        pod = self.pods.get(key)
        instances = await self.runtime.pod_instances(namespace, name)
        uid = pod.metadata.uid if pod is not None else None
        stale = [i for i in instances if i.pod_uid != uid]
        if stale:
            await self._remove(stale)
        if pod is None:
            return "kill" if stale else ""
        mine = [i for i in instances if i.pod_uid == uid]
        if pod.metadata.HasField("deletion_timestamp"):
            await self._terminate(pod, mine)
            return "kill"
        if pod.status.phase in TERMINAL:
            await self._stop(pod, [i for i in mine if i.running])
            return "kill"
        operation = "sync" if mine else "create"
        notes: dict[str, Note] = {}
        if await self._start_what_is_missing(pod, mine, notes):
            mine = await self.runtime.pod_instances(namespace, name)
            mine = [i for i in mine if i.pod_uid == uid]
        if await self._report(pod, mine, notes) in TERMINAL:
            await self._stop(pod, [i for i in mine if i.running])  # the sandbox
        await self._prune(mine)
        return operation

    async def _start_what_is_missing(self, pod: t.Pod, mine: list[Instance],
                                     notes: dict[str, Note]) -> bool:
        """Do what the pod needs next; True if the engine's state changed."""
        sandbox = self._current_sandbox(mine)
        if sandbox is None or not sandbox.running:
            if not self.pod_cidr:
                for c in pod.spec.containers:
                    notes[c.name] = Note("ContainerCreating",
                                         "network is not ready: the node has no podCIDR yet")
                return False
            await self._stop(pod, [i for i in mine if i.running and not i.sandbox])
            return await self._start_sandbox(pod, sandbox, notes)
        if not await self._init_containers_done(pod, mine, sandbox, notes):
            return True
        changed = False
        for spec in pod.spec.containers:
            changed |= await self._ensure_running(pod, spec, mine, sandbox, notes, init=False)
        return changed

    # ------------------------------------------------------------ sandbox

    @staticmethod
    def _current_sandbox(mine: list[Instance]) -> Instance | None:
        sandboxes = [i for i in mine if i.sandbox]
        return max(sandboxes, key=lambda i: (i.restart_count, i.created), default=None)

    async def _start_sandbox(self, pod: t.Pod, old: Instance | None,
                             notes: dict[str, Note]) -> bool:
        pause = self.config.pause_image
        if not await self.runtime.image_present(pause):
            for c in pod.spec.containers:
                notes[c.name] = Note("ContainerCreating", f'pause image "{pause}" is not present')
            self.requeue(_key(pod), 5.0)
            return False
        attempt = old.restart_count + 1 if old else 0
        ip = ""
        try:
            ip = await self._reserve_ip()
            config, host = sandbox_spec(
                self.config.owner, pod, pause_image=pause, attempt=attempt,
                network=self.runtime.network, ip=ip, host_ip=self.config.host_ip)
            sandbox_id = await self.runtime.create(
                docker_name(pod, labels.SANDBOX, attempt), config, host, ip=ip)
            await self.runtime.start(sandbox_id)
        except (EngineError, ipam.Exhausted) as err:
            self.events.record(pod, "Warning", "FailedCreatePodSandBox", str(err))
            for c in pod.spec.containers:
                notes[c.name] = Note("ContainerCreating", f"sandbox: {err}")
            self.requeue(_key(pod), 2.0)
            return False
        finally:
            self._reserved.discard(ip)  # once started, the sandbox's label holds it
        return True

    async def _reserve_ip(self) -> str:
        """A free pod address, held in memory until its sandbox runs.

        Only the choice is serialised: sandboxes of different pods are created
        and started concurrently.
        """
        async with self._ip_lock:
            ip = ipam.allocate(self.pod_cidr, await self.runtime.sandbox_ips() | self._reserved)
            self._reserved.add(ip)
            return ip

    # ------------------------------------------------------------ containers

    async def _init_containers_done(self, pod: t.Pod, mine: list[Instance],
                                    sandbox: Instance, notes: dict[str, Note]) -> bool:
        for spec in pod.spec.init_containers:
            runs = runs_of(mine, spec.name)
            if runs and not runs[0].running and runs[0].exit_code == 0:
                continue
            if not (runs and runs[0].running):
                await self._ensure_running(pod, spec, mine, sandbox, notes, init=True)
            return False
        return True

    async def _ensure_running(self, pod: t.Pod, spec: t.Container, mine: list[Instance],
                              sandbox: Instance, notes: dict[str, Note], init: bool) -> bool:
        """Start (or restart) one container if it needs it; True if it was started."""
        runs = runs_of(mine, spec.name)
        current = runs[0] if runs else None
        if current is not None and current.running:
            uid = pod.metadata.uid
            probe = ("liveness" if self.probes.liveness_failed(uid, spec.name, current.id)
                     else "startup" if self.probes.startup_failed(uid, spec.name, current.id)
                     else None)
            if probe is None:
                return False
            self.events.record(pod, "Normal", "Killing",
                               f"Container {spec.name} failed {probe} probe, will be restarted")
            await self.runtime.stop(current.id, grace_of(pod))
            current = await self.runtime.refresh(current)
        if current is not None and not _restarts(pod, current, init):
            return False
        if current is not None and not self._backoff_over(pod, spec, current, notes):
            return False
        if not await self._image_ready(pod, spec, notes):
            return False
        return await self._create(pod, spec, sandbox, self._restart_count(pod, spec, current),
                                  notes, init)

    def _backoff_over(self, pod: t.Pod, spec: t.Container, current: Instance,
                      notes: dict[str, Note]) -> bool:
        key = f"{pod.metadata.uid}/{spec.name}"
        since = (current.finished_at or datetime.datetime.now(datetime.UTC)).timestamp()
        wait = self.crash.remaining(key, since)
        if wait > 0:
            delay = self.crash.delay(key)
            self.events.record(pod, "Warning", "BackOff", "Back-off restarting failed "
                               f"container {spec.name} in pod {_described(pod)}")
            notes[spec.name] = Note(
                "CrashLoopBackOff", f"back-off {delay:g}s restarting failed container="
                f"{spec.name} pod={_described(pod)}")
            self.requeue(_key(pod), wait)
            return False
        self.crash.next(key, since)
        return True

    @staticmethod
    def _restart_count(pod: t.Pod, spec: t.Container, current: Instance | None) -> int:
        """One more than the last run's; if its container is gone, one more than reported."""
        if current is not None:
            return current.restart_count + 1
        for status in [*pod.status.container_statuses, *pod.status.init_container_statuses]:
            if status.name == spec.name and status.container_id:
                return status.restart_count + 1
        return 0

    async def _image_ready(self, pod: t.Pod, spec: t.Container, notes: dict[str, Note]) -> bool:
        policy = spec.image_pull_policy or "IfNotPresent"
        present = await self.runtime.image_present(spec.image)
        if policy == "Never" or (present and policy == "IfNotPresent"):
            if not present:
                message = (f'Container image "{spec.image}" is not present with pull '
                           "policy of Never")
                notes[spec.name] = Note("ErrImageNeverPull", message)
                self.events.record(pod, "Warning", "ErrImageNeverPull", message)
            return present
        return await self._pull(pod, spec, notes)

    async def _pull(self, pod: t.Pod, spec: t.Container, notes: dict[str, Note]) -> bool:
        key = f"{pod.metadata.uid}/{spec.name}/pull"
        wait = self.pulls.remaining(key, self._pull_failed.get(key, 0.0))
        if wait > 0:
            notes[spec.name] = Note("ImagePullBackOff", f'Back-off pulling image "{spec.image}"')
            self.requeue(_key(pod), wait)
            return False
        self.events.record(pod, "Normal", "Pulling", f'Pulling image "{spec.image}"')
        try:
            await self.runtime.pull(spec.image)
        except EngineError as err:
            now = time.time()
            self._pull_failed[key] = now
            self.pulls.next(key, now)
            message = f'Failed to pull image "{spec.image}": {err}'
            notes[spec.name] = Note("ErrImagePull", message)
            self.events.record(pod, "Warning", "Failed", message)
            # look again halfway through the back-off, so ImagePullBackOff shows
            self.requeue(_key(pod), self.pulls.delay(key) / 2)
            return False
        self._pull_failed.pop(key, None)
        self.events.record(pod, "Normal", "Pulled", f'Successfully pulled image "{spec.image}"')
        return True

    async def _create(self, pod: t.Pod, spec: t.Container, sandbox: Instance,
                      restart_count: int, notes: dict[str, Note], init: bool) -> bool:
        try:
            volume_dirs = await self._volume_dirs(pod)
            config, host = app_spec(
                self.config.owner, pod, spec, sandbox_id=sandbox.id,
                restart_count=restart_count, init=init,
                service_env=service_env(self._services(pod.metadata.namespace)),
                volume_dirs=volume_dirs)
            resolv = await self._resolv_conf(pod)
            if resolv:
                host["binds"].append(f"{resolv}:/etc/resolv.conf:ro")
            container_id = await self.runtime.create(
                docker_name(pod, spec.name, restart_count), config, host)
        except (EngineError, OSError, ValueError) as err:
            notes[spec.name] = Note("CreateContainerError", str(err))
            self.events.record(pod, "Warning", "Failed", f"Error: {err}")
            self.requeue(_key(pod), 2.0)
            return False
        self.events.record(pod, "Normal", "Created", f"Created container {spec.name}")
        try:
            await self.runtime.start(container_id)
        except EngineError as err:
            self.events.record(pod, "Warning", "Failed", f"Error: {err}")
            return True  # it exists, exited: the restart policy takes it from here
        self.events.record(pod, "Normal", "Started", f"Started container {spec.name}")
        return True

    def _services(self, namespace: str) -> list[t.Service]:
        return [s for s in self.services.list() if s.metadata.namespace == namespace]

    # ------------------------------------------------------------ volumes

    def _pod_dir(self, uid: str) -> Path:
        return self.config.root_dir / "pods" / uid

    async def _volume_dirs(self, pod: t.Pod) -> dict[str, str]:
        """Mount sources of the pod's volumes: host directories (emptyDirs are made
        here), and for claims the names of Docker volumes (made here too)."""
        dirs = {}
        for volume in pod.spec.volumes:
            if volume.HasField("persistent_volume_claim"):
                dirs[volume.name] = await self._claim_volume(
                    pod.metadata.namespace, volume.persistent_volume_claim.claim_name)
            elif volume.HasField("host_path"):
                path = Path(volume.host_path.path)
                if volume.host_path.type in ("DirectoryOrCreate", "") and not path.exists():
                    await asyncio.to_thread(path.mkdir, parents=True, exist_ok=True)
                elif volume.host_path.type == "Directory" and not path.is_dir():
                    raise ValueError(f'hostPath "{path}" is not a directory')
                dirs[volume.name] = str(path)
            else:
                path = self._pod_dir(pod.metadata.uid) / "volumes" / "empty-dir" / volume.name
                await asyncio.to_thread(path.mkdir, parents=True, exist_ok=True)
                os.chmod(path, 0o777)
                dirs[volume.name] = str(path)
        return dirs

    async def _claim_volume(self, namespace: str, claim: str) -> str:
        """The Docker volume holding a claim's data on this node, created with the
        cluster's label if missing. It outlives the pod: only tearing the cluster
        down removes it (minik8s.podnet.remove)."""
        cluster = self.config.owner.cluster
        name = claim_volume_name(cluster, namespace, claim)
        wanted = claim_volume_labels(cluster, namespace, claim)
        found = await self.runtime.ensure_volume(name, wanted)
        if any(found.get(k) != v for k, v in wanted.items()):
            raise ValueError(f'Docker volume "{name}" exists but does not hold claim '
                             f'"{claim}" of namespace "{namespace}" in this cluster '
                             f"(its labels: {found})")
        return name

    async def _resolv_conf(self, pod: t.Pod) -> str:
        """The pod's resolv.conf file on the host, or "" to keep the engine's."""
        text = resolv_conf(pod, self.config.cluster_dns, self.config.cluster_domain)
        if text is None:
            return ""
        path = self._pod_dir(pod.metadata.uid) / "resolv.conf"
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(path.write_text, text)
        return str(path)

    # ------------------------------------------------------------ stopping

    async def _stop(self, pod: t.Pod, running: list[Instance]) -> None:
        """Stop app containers (SIGTERM, SIGKILL after the grace period), then sandboxes."""
        grace = grace_of(pod)
        apps = [i for i in running if not i.sandbox]
        if apps:
            names = ", ".join(sorted(i.name for i in apps))
            self.events.record(pod, "Normal", "Killing", f"Stopping container {names}")
        await asyncio.gather(*(self.runtime.stop(i.id, grace) for i in apps))
        await asyncio.gather(*(self.runtime.stop(i.id, 0) for i in running if i.sandbox))

    async def _terminate(self, pod: t.Pod, mine: list[Instance]) -> None:
        await self._stop(pod, [i for i in mine if i.running])
        self.probes.forget(pod.metadata.uid)
        await self._delete_object(pod)

    async def _delete_object(self, pod: t.Pod) -> None:
        """Containers stopped: remove the object, unless it is already another pod."""
        try:
            await self.client.delete("Pod", pod.metadata.name, pod.metadata.namespace,
                                     resource_version=pod.metadata.resource_version,
                                     grace_period_seconds=0)
        except errors.NotFound:
            pass
        except errors.Conflict:
            self.requeue(_key(pod), 0.0)  # changed meanwhile: the informer brings it

    async def _remove(self, instances: list[Instance]) -> None:
        """Containers whose pod is gone: stop, remove, and forget the pod."""
        await asyncio.gather(*(self.runtime.stop(i.id, i.grace) for i in instances
                               if i.running and not i.sandbox))
        await asyncio.gather(*(self.runtime.remove(i.id) for i in instances))
        for uid in {i.pod_uid for i in instances}:
            self.forget(uid)
            await asyncio.to_thread(shutil.rmtree, self._pod_dir(uid), True)

    def forget(self, uid: str) -> None:
        self._written.pop(uid, None)
        self.starts.forget(uid)
        self.probes.forget(uid)
        self.crash.forget(uid)
        self.pulls.forget(uid)
        for key in [k for k in self._pull_failed if k.startswith(uid)]:
            del self._pull_failed[key]

    async def _prune(self, mine: list[Instance]) -> None:
        """Keep each container's newest two runs (for logs --previous) and the newest sandbox."""
        doomed = []
        for name in {i.name for i in mine}:
            runs = sorted((i for i in mine if i.name == name),
                          key=lambda i: (i.restart_count, i.created), reverse=True)
            keep = 1 if name == labels.SANDBOX else 2
            doomed += [i for i in runs[keep:] if not i.running]
        await asyncio.gather(*(self.runtime.remove(i.id) for i in doomed))

    # ------------------------------------------------------------ status

    def _reported(self, pod: t.Pod) -> t.PodStatus:
        """The pod's status as the apiserver has it now, as far as we know.

        The informer's copy may not have our last write yet; comparing with it
        would skip a change back (Ready, written False, then True again before
        the watch caught up) until the next resync.
        """
        written = self._written.get(pod.metadata.uid)
        if written is not None and written[0] >= int(pod.metadata.resource_version or 0):
            return written[1]
        return pod.status

    async def _report(self, pod: t.Pod, mine: list[Instance], notes: dict[str, Note]) -> str:
        """Write the pod's status if it changed; return its phase."""
        uid = pod.metadata.uid
        sandbox = self._current_sandbox(mine)
        running = {i.name: i.id for i in mine
                   if i.running and not i.sandbox and not i.init}
        self.probes.sync(pod, running)
        seen = Observed(
            instances=mine, notes=notes,
            ready=lambda name, cid: self.probes.ready(uid, name, cid),
            started=lambda name, cid: self.probes.started(uid, name, cid),
            host_ip=self.config.host_ip,
            pod_ip=sandbox.ip if sandbox is not None and sandbox.running else "",
            now=datetime.datetime.now(datetime.UTC))
        status = pod_status(pod, seen)
        self.starts.observe(uid, status)
        if status == self._reported(pod):
            return status.phase
        updated = t.Pod()
        updated.CopyFrom(pod)
        updated.status.CopyFrom(status)
        try:
            written = await self.client.update_status(updated)
            self._written[uid] = (int(written.metadata.resource_version), status)
        except errors.Conflict:
            self.requeue(_key(pod), 0.0)
        except errors.NotFound:
            pass
        return status.phase


def _restarts(pod: t.Pod, exited: Instance, init: bool) -> bool:
    """Whether the restart policy starts an exited container again."""
    policy = pod.spec.restart_policy or "Always"
    if init:
        return exited.exit_code != 0 and policy != "Never"
    return policy == "Always" or (policy == "OnFailure" and exited.exit_code != 0)


def _key(pod: t.Pod) -> str:
    return f"{pod.metadata.namespace}/{pod.metadata.name}"


def _described(pod: t.Pod) -> str:
    """A pod as Kubernetes' kubelet names it in messages: name_namespace(uid)."""
    return f"{pod.metadata.name}_{pod.metadata.namespace}({pod.metadata.uid})"
