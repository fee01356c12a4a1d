"""The process-mode target: a LocalCluster, its pods on this host's Docker engine."""
from __future__ import annotations

import contextlib
import signal
import threading
import urllib.request
from collections import Counter
from pathlib import Path

import docker
import docker.errors

from kubelet import labels
from minik8s.localcluster import ClusterError, LocalCluster
from tests.chaos import partition
from tests.chaos.base import PodContainer
from tests.integration.net_helpers import http_get


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read().decode()


class ProcWatch:
    """Counts restarts of the cluster's processes by sampling their PIDs.

    The supervisor starts an exited supervised process again after about a
    second; a process that keeps exiting shows as a growing count.
    """

    def __init__(self, cluster: LocalCluster, interval: float = 0.1) -> None:
        self.cluster = cluster
        self.interval = interval
        self.restarts: Counter[str] = Counter()
        self._pids = {name: p.pid for name, p in cluster.procs.items()}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="procwatch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        with self._lock:
            for name, proc in self.cluster.procs.items():
                if proc.pid and proc.pid != self._pids.get(name):
                    self.restarts[name] += 1
                    self._pids[name] = proc.pid

    def snapshot(self) -> Counter[str]:
        self.sample()
        with self._lock:
            return Counter(self.restarts)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class ProcessTarget:
    kind = "process"
    stop_verb = "SIGKILL"                 # etcd and apiservers are not supervised
    node_loss = "SIGSTOP a node's kubelet"
    node_loss_restarts = False

    def __init__(self, cluster: LocalCluster, cgroup_root: Path | None) -> None:
        """cgroup_root: where cgroup v2 is mounted, if the cluster's processes have cgroups
        of their own below it (LocalCluster.cgroup_parent); partitions need them."""
        self.cluster = cluster
        self.cgroup_root = cgroup_root
        self._engine = docker.from_env()

    @property
    def servers(self) -> list[str]:
        return self.cluster.servers

    @property
    def cluster_label(self) -> str:
        return self.cluster.name

    @property
    def can_partition(self) -> bool:
        return self.cgroup_root is not None and bool(self.cluster.cgroup_parent)

    def members(self, role: str) -> list[str]:
        return [p.name for p in self.cluster.role(role)]

    def alive(self, name: str) -> bool:
        return self.cluster.procs[name].alive

    def pid(self, name: str) -> int:
        proc = self.cluster.procs[name]
        return proc.pid if proc.alive else 0

    def holder(self, identity: str) -> str | None:
        pid = int(identity.split("_")[-2])   # identities are host_pid_random
        return next((p.name for p in self.cluster.procs.values() if p.pid == pid and p.alive),
                    None)

    def kill(self, name: str) -> None:
        self.cluster.kill(name)

    def signal(self, name: str, sig: signal.Signals) -> None:
        self.cluster.signal(name, sig)

    def supervised(self, name: str) -> bool:
        return self.cluster.procs[name].supervised

    def stop(self, name: str) -> None:
        if self.supervised(name):
            raise ClusterError(f"{name} is supervised: it cannot be kept down")
        self.cluster.kill(name)

    def restart(self, name: str) -> None:
        self.cluster.restart(name)

    def wait_ready(self, timeout: float, names: list[str] | None = None) -> None:
        """Ready by their /readyz; those without an HTTP port (etcd): running."""
        self.cluster.wait_ready(timeout, names)
        dead = [n for n in names or self.cluster.procs if not self.alive(n)]
        if dead:
            raise ClusterError(f"not running: {', '.join(dead)}")

    def apiserver_metrics(self) -> dict[str, str]:
        out = {}
        for proc in self.cluster.role("apiserver"):
            url = f"http://{self.cluster.host}:{proc.ports['http']}/metrics"
            with contextlib.suppress(OSError):
                if proc.alive:
                    out[proc.name] = _fetch(url)
        return out

    def watch_restarts(self) -> ProcWatch:
        return ProcWatch(self.cluster)

    def partition(self, names: list[str]) -> None:
        if self.cgroup_root is None or not self.can_partition:
            raise ClusterError("no cgroup v2 per process: cannot partition")
        procs = [self.cluster.procs[n] for n in names]
        partition.cut(self.cluster.name, self.cgroup_root, [Path(p.cgroup) for p in procs],
                      [port for p in procs for port in p.ports.values()],
                      spared=[p.ports["http"] for p in procs if p.role == "apiserver"])

    def heal(self) -> None:
        partition.heal(self.cluster.name)

    def lose_node(self, node: str) -> None:
        self.cluster.signal(node, signal.SIGSTOP)

    def restore_node(self, node: str) -> None:
        self.cluster.signal(node, signal.SIGCONT)

    def pod_containers(self, node: str, namespace: str, *, all: bool = False) \
            -> list[PodContainer]:
        mine = [f"{labels.CLUSTER}={self.cluster.name}", f"{labels.NODE}={node}",
                f"{labels.POD_NAMESPACE}={namespace}"]
        return [PodContainer(c.id, c.name, dict(c.labels), c.status == "running")
                for c in self._engine.containers.list(all=all, ignore_removed=True,
                                                      filters={"label": mine})]

    def kill_container(self, node: str, container: str) -> None:
        with contextlib.suppress(docker.errors.APIError):  # its pod went meanwhile
            self._engine.containers.get(container).kill()

    async def http_get(self, ip: str, port: int) -> str | None:
        return await http_get(ip, port, timeout=1.0)
