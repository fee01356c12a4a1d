"""What the chaos tests share: how hard they push, and the cluster they push.

The harness, the faults and the invariants see the cluster as a `Target`:
its apiservers, its processes by name (etcd-0, apiserver-1, scheduler-2,
controller-manager-0, node-1, ...) and what can be done to them. A
process-mode cluster (tests/chaos/process_target.py) and a compose project
(tests/chaos/compose_target.py) are the two kinds.
"""
from __future__ import annotations

import signal
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

MASTER_ROLES = ("etcd", "apiserver", "scheduler", "controller-manager")
LEADER_ROLES = ("scheduler", "controller-manager")   # leader-elected: exit when deposed


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


@dataclass(frozen=True)
class PodContainer:
    """A container of a pod, as the Docker engine of its node shows it."""

    id: str
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    running: bool = False


class Restarts(Protocol):
    """Counts restarts of the target's processes while a test runs."""

    def snapshot(self) -> Counter[str]: ...

    def stop(self) -> None: ...


class Target(Protocol):
    """A cluster under test. Its methods block (but http_get): from async code, call them
    in a thread."""

    kind: str        # "process" or "compose"
    servers: list[str]
    cluster_label: str   # the value of the io.minik8s.cluster label on its pods' containers
    stop_verb: str       # how stop takes a process down, for the results
    node_loss: str       # how lose_node takes a node out, for the results
    node_loss_restarts: bool   # whether restore_node starts the node's processes anew
    can_partition: bool

    def members(self, role: str) -> list[str]:
        """Its processes of a role (etcd, apiserver, scheduler, controller-manager, kubelet)."""

    def alive(self, name: str) -> bool: ...

    def pid(self, name: str) -> int:
        """The (host) PID of its main process; 0 while it is not running."""

    def holder(self, identity: str) -> str | None:
        """The process holding a lease as identity (host_pid_random), if it still runs."""

    def kill(self, name: str) -> None:
        """SIGKILL its main process; a supervised one is started again, as after a crash."""

    def signal(self, name: str, sig: signal.Signals) -> None: ...

    def supervised(self, name: str) -> bool:
        """Whether something starts it again when it exits."""

    def stop(self, name: str) -> None:
        """Take it down and keep it down (until restart)."""

    def restart(self, name: str) -> None:
        """Start again what stop (or kill, if unsupervised) took down."""

    def wait_ready(self, timeout: float, names: list[str] | None = None) -> None:
        """Until every process (or those named) runs and is ready; ClusterError if not."""

    def apiserver_metrics(self) -> dict[str, str]:
        """apiserver name -> what its /metrics serves, for each one that answers
        (a partition leaves that answering)."""

    def watch_restarts(self) -> Restarts: ...

    def partition(self, names: list[str]) -> None:
        """Cut these processes off the network: from each other and everything else
        (but the test reading an apiserver's metrics)."""

    def heal(self) -> None:
        """Undo partition; nothing else."""

    def lose_node(self, node: str) -> None:
        """Take a node out so that nobody brings it back (see node_loss)."""

    def restore_node(self, node: str) -> None: ...

    def pod_containers(self, node: str, namespace: str, *, all: bool = False) \
            -> list[PodContainer]:
        """The containers of a namespace's pods on a node (the running ones unless all)."""

    def kill_container(self, node: str, container: str) -> None:
        """`docker kill` a container of a node's engine, behind its kubelet's back."""

    async def http_get(self, ip: str, port: int) -> str | None:
        """GET / of a ClusterIP from where the cluster's proxy serves it; None if it failed."""


def master(index: int) -> list[str]:
    """The processes of master i: etcd-i, apiserver-i, scheduler-i, controller-manager-i."""
    return [f"{role}-{index}" for role in MASTER_ROLES]


@dataclass
class Chaos:
    target: Target
    restarts: Restarts
