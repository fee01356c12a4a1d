"""Scheduler failover time on a fresh local cluster: SIGKILL the leader, time the successor.

`python -m bench.failover` starts 3 etcd members, 3 apiservers and 3 schedulers
(leader-elected, supervised: a killed one is started again) and registers a
few Ready nodes. A steady trickle of pods (one every 50 ms) runs throughout.
Then, --rounds times (default 10):

1. find the leader through the Lease kube-system/kube-scheduler (its holder
   identity, host_pid_random, names the process by its pid) and check that it
   is binding;
2. SIGKILL it;
3. time the successor's first bind: the first pod observed bound (by a watch)
   at an etcd revision after the successor's lease acquisition. Fencing makes
   that exact: once the acquisition has committed, no write of the old leader
   can, so a bind at a later revision is the successor's, while a bind the old
   leader had in flight before it died lands earlier and does not count;
4. wait until the supervisor has started the killed scheduler again and it is
   ready, so the next round has three candidates again.

The report goes into docs/BENCHMARKS.md between the `bench:failover` markers.
The cluster runs in a temporary workdir and is always stopped at the end, also
on error or Ctrl-C. All traffic is to 127.0.0.1.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from bench.api import machine, percentile, versions, yes_no
from bench.common import DOC, log
from bench.scheduler import (
    LEASE_NAME,
    LEASE_NAMESPACE,
    add_lease_flags,
    check_lease_flags,
    create_namespaces,
    create_nodes,
    find_leader,
    follow,
    lease_flags,
    perf_pod,
    proc_of,
    run_benchmark,
)
from minik8s import errors
from minik8s.client import ApiClient, WatchEvent
from minik8s.localcluster import LocalCluster, Proc

TARGET_P99 = 3.0          # seconds
K8S_TYPICAL = 15.0        # seconds: Kubernetes' failover with its default 15 s leases
NAMESPACE = "failover"
STEADY_TIMEOUT = 30.0     # seconds for a new leader to show it binds before a round
READY_TIMEOUT = 60.0      # seconds for a killed scheduler to be back and ready
SETTLE = 1.0              # seconds between rounds
MAX_PODS = 100_000        # the trickle stops after this many pods in any case

T = TypeVar("T")


# ---------------------------------------------------------------- what the watches see

@dataclass(frozen=True)
class Seen:
    revision: int
    at: float        # time.monotonic() when the watch delivered it
    what: str        # a pod's name, or a lease holder identity


@dataclass
class Observer:
    """Binds (pods newly seen with spec.nodeName) and lease holder changes, in revision order."""

    binds: list[Seen] = field(default_factory=list)
    holders: list[Seen] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _bound: set[str] = field(default_factory=set)

    def on_pod(self, ev: WatchEvent) -> None:
        pod = ev.object
        if ev.type != "BOOKMARK" and pod.spec.node_name and pod.metadata.name not in self._bound:
            self._bound.add(pod.metadata.name)
            self.binds.append(Seen(int(pod.metadata.resource_version), time.monotonic(),
                                   pod.metadata.name))

    def on_lease(self, ev: WatchEvent) -> None:
        lease = ev.object
        if ev.type == "BOOKMARK" or lease.metadata.name != LEASE_NAME:
            return
        holder = lease.spec.holder_identity
        if not self.holders or self.holders[-1].what != holder:
            self.holders.append(Seen(int(lease.metadata.resource_version), time.monotonic(),
                                     holder))

    def start(self, client: ApiClient) -> list[asyncio.Task]:
        return [asyncio.create_task(follow(client, "Pod", NAMESPACE, self.on_pod,
                                           self.failures)),
                asyncio.create_task(follow(client, "Lease", LEASE_NAMESPACE, self.on_lease,
                                           self.failures))]

    def takeover(self, after: float, old: str) -> Seen | None:
        """The first change of holder to someone other than `old`, seen after `after`."""
        return next((h for h in self.holders if h.at >= after and h.what not in ("", old)), None)

    def first_bind(self, after_revision: int) -> Seen | None:
        return next((b for b in self.binds if b.revision > after_revision), None)


async def until(check: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll check() until it returns something truthy; TimeoutError after timeout."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not within {timeout:.0f}s")
        await asyncio.sleep(0.005)
    return result


# ---------------------------------------------------------------- the pod trickle

@dataclass
class Trickle:
    """Creates one pod every `interval` seconds until cancelled, on schedule (late creates
    are not made up for in a burst)."""

    clients: list[ApiClient]
    interval: float
    created: list[float] = field(default_factory=list)   # monotonic send times
    failures: list[str] = field(default_factory=list)

    async def run(self) -> None:
        start = time.monotonic()
        for k in range(MAX_PODS):
            await asyncio.sleep(max(0.0, start + k * self.interval - time.monotonic()))
            self.created.append(time.monotonic())
            try:
                await self.clients[k % len(self.clients)].create(perf_pod(f"p-{k}", NAMESPACE))
            except errors.ApiError as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")

    def between(self, start: float, end: float) -> int:
        return sum(start <= c < end for c in self.created)


# ---------------------------------------------------------------- rounds

@dataclass
class Round:
    number: int
    killed: str
    successor: str
    takeover: float        # seconds: kill -> successor's acquisition observed
    first_bind: float      # seconds: kill -> successor's first bind observed
    waiting: int           # pods created between the kill and that bind
    restarted: float       # seconds: kill -> killed scheduler back and ready


class Bench:
    def __init__(self, cluster: LocalCluster, args: argparse.Namespace) -> None:
        self.cluster = cluster
        self.args = args
        self.clients = [ApiClient([s]) for s in cluster.servers]
        self.watch_client = ApiClient(cluster.servers[:1])
        self.seen = Observer()
        self.trickle = Trickle(self.clients, args.interval)
        self.tasks: list[asyncio.Task] = []

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for c in (*self.clients, self.watch_client):
            await c.close()

    async def setup(self) -> None:
        await create_namespaces(self.clients[0], NAMESPACE)
        await create_nodes(self.clients, self.args.nodes, 8, cpu="64", memory="256Gi",
                           pods="1000")
        self.tasks = [*self.seen.start(self.watch_client),
                      asyncio.create_task(self.trickle.run())]

    async def steady_leader(self) -> tuple[Proc, str]:
        """The leader and its identity, once a pod has been bound since it was found."""
        leader, _ = await find_leader(self.clients[0], self.cluster)
        since = time.monotonic()
        await until(lambda: self.seen.binds and self.seen.binds[-1].at > since + 0.2,
                    STEADY_TIMEOUT, f"a bind by {leader.name}")
        leader, lease = await find_leader(self.clients[0], self.cluster)
        return leader, lease.spec.holder_identity

    async def one_round(self, number: int) -> Round:
        leader, old = await self.steady_leader()
        killed_at = time.monotonic()
        await asyncio.to_thread(self.cluster.kill, leader.name)
        back = asyncio.create_task(self.restarted(leader.name))
        self.tasks.append(back)   # cancelled by close() if this round fails
        timeout = self.args.round_timeout
        taken = await until(lambda: self.seen.takeover(killed_at, old), timeout,
                            "a successor's lease acquisition")
        bind = await until(lambda: self.seen.first_bind(taken.revision), timeout,
                           "the successor's first bind")
        ready_at = await back
        successor = proc_of(self.cluster, taken.what)
        return Round(number, leader.name, successor.name if successor else taken.what,
                     taken.at - killed_at, bind.at - killed_at,
                     self.trickle.between(killed_at, bind.at), ready_at - killed_at)

    async def restarted(self, name: str) -> float:
        """When the supervisor's new process for `name` answers /readyz (caches synced)."""
        await asyncio.to_thread(self.cluster.wait_ready, READY_TIMEOUT, [name])
        return time.monotonic()

    async def run(self, report: Report) -> None:
        await self.setup()
        for number in range(1, self.args.rounds + 1):
            r = await self.one_round(number)
            log(f"round {number}: killed {r.killed}, {r.successor} took over after "
                f"{r.takeover:.2f}s, first bind after {r.first_bind:.2f}s")
            report.rounds.append(r)
            await asyncio.sleep(SETTLE)
        report.pods_created = len(self.trickle.created)
        report.pods_bound = len(self.seen.binds)
        report.failures = self.trickle.failures + self.seen.failures


# ---------------------------------------------------------------- report

@dataclass
class Report:
    started: datetime.datetime
    command: str
    args: argparse.Namespace
    rounds: list[Round] = field(default_factory=list)
    pods_created: int = 0
    pods_bound: int = 0
    failures: list[str] = field(default_factory=list)
    background: float = 0.0     # cores busy on the machine before the cluster started
    duration: float = 0.0

    def pct(self, q: float, attr: str = "first_bind") -> float:
        return percentile([getattr(r, attr) for r in self.rounds], q)


def render(rep: Report) -> str:
    return "\n".join([render_header(rep), render_targets(rep), render_rounds(rep)])


def render_header(rep: Report) -> str:
    a = rep.args
    return f"""## Scheduler failover: SIGKILL the leader, time the successor's first bind

* Date: {rep.started:%Y-%m-%d %H:%M} UTC; whole run {rep.duration:.0f} s (cluster start
  and stop included).
* Machine: {machine()}; {versions()}. Before the cluster started, other processes
  kept {rep.background:.2f} of its cores busy.
* Command: `{rep.command}` (from the repo root; `make bench` runs it with the defaults).
* Cluster: 3 etcd members, 3 apiservers and 3 schedulers as local processes
  (`LocalCluster`, which starts a scheduler again about a second after it exits),
  fresh in a temporary directory; {a.nodes} Ready nodes (Node objects only). Lease
  flags: `{' '.join(lease_flags(a))}`.
* Load: one pod created every {1000 * a.interval:.0f} ms throughout, round-robin over
  the apiservers; one watch on the pods and one on the leases (through apiserver-0).
* Each round: find the leader from the Lease's holder identity (its pid), check it is
  binding, SIGKILL it; failover time = kill → first pod observed bound at an etcd
  revision after the successor's lease acquisition (fencing guarantees the old
  leader wrote nothing after that revision). Then wait until the killed scheduler
  has been started again and is ready.
"""


def render_targets(rep: Report) -> str:
    n = len(rep.rounds)
    p99, worst = rep.pct(99), rep.pct(100)
    return "\n".join([
        "### Targets", "", "| target | measured | met |", "|---|---|---|",
        f"| failover p99 ≤ {TARGET_P99:.0f} s ({n} rounds: p99 = the worst) | "
        f"p50 {rep.pct(50):.2f} s, p99 {p99:.2f} s, max {worst:.2f} s | "
        f"{yes_no(n == rep.args.rounds and p99 <= TARGET_P99)} |",
        f"| (reference) Kubernetes with its default leases (15 s duration, 2 s retry): "
        f"≈ {K8S_TYPICAL:.0f} s | p99 {p99:.2f} s | {yes_no(p99 < K8S_TYPICAL)} |", ""])


def render_rounds(rep: Report) -> str:
    lines = ["### Rounds", "",
             "| round | killed | successor | kill → lease taken (s) | lease taken → first "
             "bind (s) | kill → first bind (s) | pods created meanwhile | kill → killed one "
             "ready again (s) |", "|---|---|---|---|---|---|---|---|"]
    for r in rep.rounds:
        lines.append(f"| {r.number} | {r.killed} | {r.successor} | {r.takeover:.2f} | "
                     f"{r.first_bind - r.takeover:.2f} | **{r.first_bind:.2f}** | {r.waiting} "
                     f"| {r.restarted:.1f} |")
    lines += ["", *round_notes(rep)]
    if rep.failures:
        lines.append(f"{len(rep.failures)} failures; first: `{rep.failures[0]}`.")
    return "\n".join(lines) + "\n"


def round_notes(rep: Report) -> list[str]:
    a = rep.args
    after = [r.first_bind - r.takeover for r in rep.rounds]
    return [
        f"Kill → lease taken: p50 {rep.pct(50, 'takeover'):.2f} s, max "
        f"{rep.pct(100, 'takeover'):.2f} s. A candidate takes the lease once it has seen no "
        f"change of it for the lease duration ({a.lease_duration:g} s on its own clock, from "
        f"the last renewal it saw; it polls every {a.retry_period:g} s, and the leader renewed "
        f"up to {a.retry_period:g} s before it was killed), so this lands between about "
        f"{a.lease_duration - a.retry_period:g} and {a.lease_duration + 2 * a.retry_period:g} "
        "s after the kill.",
        "",
        f"Lease taken → first bind: p50 {percentile(after, 50):.2f} s, max "
        f"{percentile(after, 100):.2f} s: the successor starting to lead, then scheduling "
        "and binding the first pod waiting in its queue (plus the watch's delivery).",
        "",
        f"Pods: {rep.pods_created} created, {rep.pods_bound} observed bound by the end (those "
        "created in the last moments may still be pending)."]


# ---------------------------------------------------------------- main

def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.failover",
                                description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=10, help="leaders to kill")
    p.add_argument("--nodes", type=int, default=10, help="Ready nodes")
    p.add_argument("--interval", type=float, default=0.05, help="seconds between pod creates")
    add_lease_flags(p)
    p.add_argument("--round-timeout", type=float, default=60.0,
                   help="seconds to wait for a successor's lease, and then for its first bind")
    p.add_argument("--doc", type=Path, default=DOC, help="markdown file to write the report to")
    p.add_argument("--no-doc", action="store_true", help="only print the report")
    p.add_argument("--keep-workdir", action="store_true",
                   help="keep the cluster's workdir (logs) after the run")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.nodes < 1 or args.interval <= 0:
        p.error("--rounds and --nodes must be at least 1, --interval positive")
    check_lease_flags(p, args)
    return args


async def run(cluster: LocalCluster, report: Report) -> None:
    bench = Bench(cluster, report.args)
    try:
        await bench.run(report)
    finally:
        await bench.close()


def main(argv: Sequence[str] | None = None) -> int:
    return run_benchmark("failover", argv, parse_args, Report, lambda args: {"schedulers": 3, "scheduler_args": lease_flags(args)}, run, render)


if __name__ == "__main__":
    sys.exit(main())
