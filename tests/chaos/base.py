"""What the chaos tests share: how hard they push, and the cluster with its restart counter."""
from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass

from minik8s.localcluster import LocalCluster


@dataclass(frozen=True)
class ChaosConfig:
    """How hard the suite pushes: the bounded default, or --chaos-full."""

    full: bool
    iterations: int           # times each fault is repeated
    clients: int              # workload clients (each its own ApiClient)
    ops_per_client: int       # writes each client makes per iteration, at most
    round_seconds: float      # a workload round stops issuing writes after this, at most
    deployments_per_client: int
    monkey_seconds: float     # how long the monkey injects faults
    converge_timeout: float = 60.0   # fault healed -> everything converged, at most
    stall_after: float = 10.0        # a pod watch silent this long while it runs: stalled

    @property
    def mode(self) -> str:
        return "full" if self.full else "default"


DEFAULT = ChaosConfig(full=False, iterations=1, clients=2, ops_per_client=3, round_seconds=8,
                      deployments_per_client=1, monkey_seconds=20)
FULL = ChaosConfig(full=True, iterations=5, clients=3, ops_per_client=6, round_seconds=12,
                   deployments_per_client=1, monkey_seconds=60)


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


@dataclass
class Chaos:
    cluster: LocalCluster
    procs: ProcWatch
