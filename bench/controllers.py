"""Controller-manager throughput on a fresh local cluster: a ReplicaSet created at full size,
and a Deployment's rollout.

`python -m bench.controllers` starts 3 etcd members, 3 apiservers, 3 schedulers and 3
controller-managers (each leader-elected: one works, two stand by), registers --nodes
Ready nodes (Node objects only), then:

1. creates a ReplicaSet of --replicas pods (default 1000) from nothing and times, with a
   watch on its namespace's pods, until every pod exists and until every pod is bound;
2. creates a Deployment of --deployment-replicas pods (default 100; maxSurge and
   maxUnavailable left to their 25% defaults), waits until it is fully available, changes
   its image and times the rollout until it is complete: the new ReplicaSet's pods all
   available (updatedReplicas = availableReplicas = replicas) and the old ReplicaSet at 0.

No kubelets run: a child process plays kubelet for the Deployment's namespace
(tests/integration/helpers.FakeKubelet): it marks bound pods Running and Ready and
removes pods being deleted. It is a process of its own so that its CPU shows apart.

During both phases the CPU of every process is recorded, the apiservers' request counts
and the controller-manager leader's work queues are scraped, and the leader is profiled
with py-spy (if installed). The report goes into docs/BENCHMARKS.md between the
`bench:controllers` markers. The cluster runs in a temporary workdir and is always
stopped at the end, also on error or Ctrl-C. All traffic is to 127.0.0.1.
"""
from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import datetime
import math
import multiprocessing
import multiprocessing.connection
import multiprocessing.process
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf.timestamp_pb2 import Timestamp

from bench.api import cpus, machine, metric, percentile, saturation, scrape, versions, yes_no
from bench.common import DOC, log
from bench.scheduler import (
    PROFILE_RATE,
    ClusterCpu,
    Profile,
    Profiler,
    busy,
    create_namespaces,
    create_nodes,
    follow,
    identity_pid,
    metrics_url,
    profile_lines,
    request_counts,
    run_benchmark,
)
from controller_manager.deployment import same_template
from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient, WatchEvent
from minik8s.localcluster import LocalCluster, Proc
from minik8s.retry import retry_on_conflict
from tests.integration.helpers import FakeKubelet
from tests.integration.test_deployment import PodObserver

TARGET_RATE = 500.0          # pods/s: ReplicaSet create -> all its pods exist
K8S_QPS, K8S_BURST = 20, 30  # kube-controller-manager's default client rate limit
RS_NS, DEPLOY_NS = "ctl-replicaset", "ctl-deployment"
RS_NAME, DEPLOY_NAME = "burst", "web"
IMAGES = ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.10")
NODE_CPU, NODE_MEMORY, NODE_PODS = "32", "64Gi", 110
POD_REQUESTS = {"cpu": "10m", "memory": "16Mi"}
CM_LEASE, SCHED_LEASE = "kube-controller-manager", "kube-scheduler"
QUEUES = ("replicaset", "deployment")
KUBELET_START_TIMEOUT = 60.0  # seconds for the fake kubelet's process to start watching
TIMELINE_ROWS = 10
SETTLE = 1.0                 # seconds between the phases


# ---------------------------------------------------------------- objects

def pod_template(app: str, image: str) -> t.PodTemplateSpec:
    resources = t.ResourceRequirements(requests=POD_REQUESTS, limits=POD_REQUESTS)
    container = t.Container(name="app", image=image, resources=resources)
    return t.PodTemplateSpec(metadata=t.ObjectMeta(labels={"app": app}),
                             spec=t.PodSpec(containers=[container]))


def replica_set(replicas: int) -> t.ReplicaSet:
    return t.ReplicaSet(
        metadata=t.ObjectMeta(name=RS_NAME, namespace=RS_NS),
        spec=t.ReplicaSetSpec(replicas=replicas,
                              selector=t.LabelSelector(match_labels={"app": RS_NAME}),
                              template=pod_template(RS_NAME, IMAGES[0])))


def deployment(replicas: int) -> t.Deployment:
    """The strategy is left out: the apiserver defaults it to RollingUpdate, 25% / 25%."""
    return t.Deployment(
        metadata=t.ObjectMeta(name=DEPLOY_NAME, namespace=DEPLOY_NS),
        spec=t.DeploymentSpec(replicas=replicas,
                              selector=t.LabelSelector(match_labels={"app": DEPLOY_NAME}),
                              template=pod_template(DEPLOY_NAME, IMAGES[0])))


async def change_image(client: ApiClient, image: str) -> t.Deployment:
    async def attempt() -> t.Deployment:
        d = await client.get("Deployment", DEPLOY_NAME, DEPLOY_NS)
        d.spec.template.spec.containers[0].image = image
        return await client.update(d)
    return await retry_on_conflict(attempt)


def monotonic_of(stamp: Timestamp) -> float:
    """A wall-clock protobuf Timestamp (the apiserver's, on this machine) on time.monotonic()."""
    return stamp.ToNanoseconds() / 1e9 - (time.time() - time.monotonic())


async def until_count(seen: dict[str, float], count: int, timeout: float) -> bool:
    """Wait until seen has count entries; False on timeout."""
    deadline = time.monotonic() + timeout
    while len(seen) < count:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


# ---------------------------------------------------------------- what the watches see

@dataclass
class Leases:
    """Who holds the controller-manager's and the scheduler's leases, and every change."""

    holders: dict[str, str] = field(default_factory=dict)
    changes: list[tuple[float, str, str]] = field(default_factory=list)  # (time, lease, holder)
    failures: list[str] = field(default_factory=list)

    def on_lease(self, ev: WatchEvent) -> None:
        lease = ev.object
        if ev.type == "BOOKMARK" or lease.metadata.name not in (CM_LEASE, SCHED_LEASE):
            return
        name, holder = lease.metadata.name, lease.spec.holder_identity
        if name in self.holders and holder != self.holders[name]:
            self.changes.append((time.monotonic(), name, holder))
        self.holders[name] = holder

    def pid(self, lease: str) -> int:
        return identity_pid(self.holders.get(lease, ""))

    def between(self, start: float, end: float) -> list[tuple[float, str, str]]:
        return [c for c in self.changes if start <= c[0] <= end]


@dataclass
class PodTimes:
    """Per pod of one namespace (time.monotonic()): first seen, first seen bound, and its
    creationTimestamp (stamped by the apiserver before the write) on the same clock."""

    seen: dict[str, float] = field(default_factory=dict)
    bound: dict[str, float] = field(default_factory=dict)
    created: dict[str, float] = field(default_factory=dict)
    established: asyncio.Event = field(default_factory=asyncio.Event)
    failures: list[str] = field(default_factory=list)

    def on_pod(self, ev: WatchEvent) -> None:
        if ev.type == "BOOKMARK":
            self.established.set()
            return
        now, pod = time.monotonic(), ev.object
        name = pod.metadata.name
        if name not in self.seen:
            self.seen[name] = now
            self.created[name] = monotonic_of(pod.metadata.creation_timestamp)
        if pod.spec.node_name and name not in self.bound:
            self.bound[name] = now


def rolled_out(d: t.Deployment, replicasets: Iterable[t.ReplicaSet], replicas: int) -> bool:
    """d's current generation complete: its new ReplicaSet's pods all available, the rest at 0."""
    s = d.status
    if s.observed_generation < d.metadata.generation or not (
            s.updated_replicas == s.replicas == s.available_replicas == replicas):
        return False
    new = [rs for rs in replicasets if same_template(rs.spec.template, d.spec.template)]
    old = [rs for rs in replicasets if not same_template(rs.spec.template, d.spec.template)]
    return (len(new) == 1 and new[0].spec.replicas == replicas
            and all(rs.spec.replicas == rs.status.replicas == 0 for rs in old))


@dataclass
class RolloutWatch:
    """The deployment and its ReplicaSets as watches see them: when each generation was first
    seen rolled out, and each change of the ReplicaSets' sizes (time, new, old ones)."""

    replicas: int
    d: t.Deployment | None = None
    replicasets: dict[str, t.ReplicaSet] = field(default_factory=dict)
    complete: dict[int, float] = field(default_factory=dict)   # generation -> time
    sizes: list[tuple[float, int, int]] = field(default_factory=list)
    established: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def on_deployment(self, ev: WatchEvent) -> None:
        if ev.type == "BOOKMARK":
            self.established["Deployment"] += 1
        elif ev.object.metadata.name == DEPLOY_NAME:
            self.d = ev.object
            self._check()

    def on_replicaset(self, ev: WatchEvent) -> None:
        if ev.type == "BOOKMARK":
            self.established["ReplicaSet"] += 1
            return
        if ev.type == "DELETED":
            self.replicasets.pop(ev.object.metadata.name, None)
        else:
            self.replicasets[ev.object.metadata.name] = ev.object
        self._record_sizes()
        self._check()

    def _record_sizes(self) -> None:
        if self.d is None:
            return
        template = self.d.spec.template
        new = sum(rs.spec.replicas for rs in self.replicasets.values()
                  if same_template(rs.spec.template, template))
        old = sum(rs.spec.replicas for rs in self.replicasets.values()) - new
        if not self.sizes or self.sizes[-1][1:] != (new, old):
            self.sizes.append((time.monotonic(), new, old))

    def _check(self) -> None:
        d = self.d
        if d is not None and d.metadata.generation not in self.complete and \
                rolled_out(d, self.replicasets.values(), self.replicas):
            self.complete[d.metadata.generation] = time.monotonic()

    async def wait(self, generation: int, timeout: float) -> float | None:
        """When generation was seen complete; None on timeout."""
        deadline = time.monotonic() + timeout
        while generation not in self.complete:
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.005)
        return self.complete[generation]


# ---------------------------------------------------------------- the fake kubelet's process

def kubelet_main(servers: list[str], namespace: str, ready_after: float,
                 conn: multiprocessing.connection.Connection) -> None:
    """A child process: FakeKubelet for namespace until the parent says stop (or is gone)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the parent stops it
    asyncio.run(play_kubelet(servers, namespace, ready_after, conn))


async def play_kubelet(servers: list[str], namespace: str, ready_after: float,
                       conn: multiprocessing.connection.Connection) -> None:
    async with ApiClient(servers) as client, FakeKubelet(client, namespace, ready_after):
        conn.send("ready")
        with contextlib.suppress(EOFError, OSError):
            await asyncio.to_thread(conn.recv)


@dataclass
class KubeletProcess:
    proc: multiprocessing.process.BaseProcess | None = None
    conn: multiprocessing.connection.Connection | None = None

    async def start(self, servers: list[str], namespace: str, ready_after: float) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, theirs = ctx.Pipe()
        self.proc = ctx.Process(target=kubelet_main, name="bench-fake-kubelet", daemon=True,
                                args=(servers, namespace, ready_after, theirs))
        self.proc.start()
        theirs.close()
        if not await asyncio.to_thread(self.conn.poll, KUBELET_START_TIMEOUT):
            raise TimeoutError("the fake kubelet's process did not start")
        self.conn.recv()

    @property
    def pid(self) -> int:
        return (self.proc.pid or 0) if self.proc is not None else 0

    def stop(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(OSError):
                self.conn.send("stop")
            self.conn.close()
            self.conn = None
        if self.proc is not None:
            self.proc.join(timeout=5)
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join()
            self.proc = None


# ---------------------------------------------------------------- one measured phase

@dataclass
class Queue:
    """A work queue of the controller-manager leader over a phase."""

    reconciles: float = 0.0
    seconds: float = 0.0       # worker time holding keys (includes awaiting the API)
    retries: float = 0.0       # keys re-added after a failed reconcile

    @classmethod
    def parse(cls, text: str, name: str) -> Queue:
        label = f'name="{name}"'
        return cls(metric(text, "workqueue_work_duration_seconds_count", label),
                   metric(text, "workqueue_work_duration_seconds_sum", label),
                   metric(text, "workqueue_retries_total", label))

    def __sub__(self, other: Queue) -> Queue:
        return Queue(self.reconciles - other.reconciles, self.seconds - other.seconds,
                     self.retries - other.retries)


@dataclass
class Snapshot:
    requests: list[Counter[tuple[str, str]]]   # per apiserver
    queues: dict[str, Queue]
    cm_pid: int


@dataclass
class PhaseStats:
    seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)       # cores busy by group
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    pod_creates: list[float] = field(default_factory=list)     # per apiserver
    queues: dict[str, Queue] = field(default_factory=dict)
    cm_leader: str = ""
    sched_leader: str = ""
    moves: list[tuple[float, str, str]] = field(default_factory=list)  # leadership changes
    profile: Profile | None = None
    profile_error: str = ""

    def cpu_ms_per(self, group: str, count: int) -> float:
        return 1000 * self.cpu.get(group, 0.0) * self.seconds / max(count, 1)


# ---------------------------------------------------------------- results

@dataclass
class RsResult:
    replicas: int
    start: float                     # the ReplicaSet's Create sent
    seen: dict[str, float]
    bound: dict[str, float]
    created: dict[str, float]
    stats: PhaseStats
    timed_out: bool = False

    def rate(self, times: dict[str, float]) -> float:
        return len(times) / max(self.last(times) - self.start, 1e-9)

    def last(self, times: dict[str, float]) -> float:
        return max(times.values(), default=math.nan)

    @property
    def complete(self) -> bool:
        return len(self.seen) == len(self.bound) == self.replicas

    def lag_ms(self) -> list[float]:
        """creationTimestamp -> observed by the watch, per pod."""
        return [1000 * (self.seen[n] - c) for n, c in self.created.items()]

    def since_start_ms(self, times: Iterable[float]) -> list[float]:
        return [1000 * (w - self.start) for w in times]


@dataclass
class DeployResult:
    replicas: int
    available_after: float | None        # create -> first fully available
    rollout: float | None                # image change -> rollout complete
    steps: list[tuple[float, int, int]]  # (seconds since the change, new, old sizes)
    most_live: int
    fewest_ready: int
    stats: PhaseStats


@dataclass
class Report:
    started: datetime.datetime
    command: str
    args: argparse.Namespace
    background: float = 0.0
    nodes_seconds: float = 0.0
    rs: RsResult | None = None
    deploy: DeployResult | None = None
    failures: list[str] = field(default_factory=list)
    duration: float = 0.0


# ---------------------------------------------------------------- the run

class Bench:
    def __init__(self, cluster: LocalCluster, args: argparse.Namespace, workdir: Path) -> None:
        self.cluster = cluster
        self.args = args
        self.workdir = workdir
        self.clients = [ApiClient([s]) for s in cluster.servers]
        self.client = self.clients[0]
        self.watch_client = ApiClient(cluster.servers[:1])
        self.leases = Leases()
        self.kubelet = KubeletProcess()
        self.cpu = ClusterCpu(cluster, lambda: self.leases.pid(CM_LEASE))
        self.tasks: list[asyncio.Task] = []
        self.profilers: list[Profiler] = []
        self.failures: list[str] = []

    async def close(self) -> None:
        for p in self.profilers:
            p.kill()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.to_thread(self.kubelet.stop)
        for c in (*self.clients, self.watch_client):
            await c.close()

    def follow(self, kind: str, namespace: str, handle: Callable[[WatchEvent], None],
               failures: list[str]) -> None:
        self.tasks.append(asyncio.create_task(follow(self.watch_client, kind, namespace,
                                                     handle, failures)))

    async def setup(self) -> float:
        """Namespaces, nodes, both leaders, the fake kubelet; the seconds the nodes took."""
        a = self.args
        await create_namespaces(self.client, RS_NS, DEPLOY_NS)
        self.follow("Lease", "kube-system", self.leases.on_lease, self.leases.failures)
        seconds = await create_nodes(self.clients, a.nodes, 8, cpu=NODE_CPU,
                                     memory=NODE_MEMORY, pods=str(NODE_PODS))
        await self.cidrs_assigned(a.nodes)
        log(f"{a.nodes} nodes in {seconds:.1f}s")
        cm, sched = await self.leader(CM_LEASE), await self.leader(SCHED_LEASE)
        log(f"leaders: {cm.name} (pid {cm.pid}), {sched.name} (pid {sched.pid})")
        await self.kubelet.start(self.cluster.servers, DEPLOY_NS, a.ready_after)
        self.cpu.extra["fake kubelet"] = [self.kubelet.pid]
        self.tasks.append(asyncio.create_task(self.cpu.run()))
        return seconds

    async def cidrs_assigned(self, count: int, timeout: float = 30.0) -> None:
        """Wait until node IPAM has given every node its podCIDR (its writes stay out of
        the measured phases)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            nodes, _ = await self.client.list("Node")
            if sum(bool(n.spec.pod_cidr) for n in nodes) >= count:
                return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"nodes without a podCIDR after {timeout:.0f}s")

    async def leader(self, lease: str, timeout: float = 60.0) -> Proc:
        """The live process holding lease."""
        role = lease.removeprefix("kube-")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.leases.pid(lease)
            proc = next((p for p in self.cluster.role(role) if pid and p.pid == pid), None)
            if proc is not None and proc.alive:
                return proc
            await asyncio.sleep(0.1)
        raise TimeoutError(f"no live {role} holds {lease} after {timeout:.0f}s")

    # ------------------------------------------------------------ measuring

    def snapshot(self, cm: Proc) -> Snapshot:
        apiservers = [request_counts(scrape(metrics_url(self.cluster, p)))
                      for p in self.cluster.role("apiserver")]
        text = ""
        with contextlib.suppress(OSError):
            text = scrape(metrics_url(self.cluster, cm))
        return Snapshot(apiservers, {q: Queue.parse(text, q) for q in QUEUES}, cm.pid)

    def start_profile(self, cm: Proc, phase: str) -> Profiler | None:
        if self.args.no_profile:
            return None
        profiler = Profiler(f"controller-manager leader ({cm.name}), {phase}", cm.pid,
                            self.workdir / f"profile-{cm.name}-{phase.split()[0]}.txt")
        profiler.start()
        self.profilers.append(profiler)
        if profiler.proc is not None:
            self.cpu.extra["py-spy"] = [profiler.proc.pid]
        return profiler

    @contextlib.asynccontextmanager
    async def measuring(self, phase: str) -> AsyncIterator[PhaseStats]:
        """CPU, API requests, work queues, leadership and a profile over the block."""
        stats = PhaseStats()
        cm, sched = await self.leader(CM_LEASE), await self.leader(SCHED_LEASE)
        stats.cm_leader, stats.sched_leader = cm.name, sched.name
        profiler = self.start_profile(cm, phase)
        if profiler is not None and profiler.proc is not None:
            await asyncio.sleep(0.5)   # let py-spy attach
        before = await asyncio.to_thread(self.snapshot, cm)
        start, used = time.monotonic(), self.cpu.totals()
        yield stats
        end, used_end = time.monotonic(), self.cpu.totals()
        stats.seconds, stats.cpu = end - start, busy(used, used_end, end - start)
        stats.moves = self.leases.between(start, end)
        self.account(stats, before, await asyncio.to_thread(self.snapshot, cm))
        if profiler is not None:
            stats.profile = await asyncio.to_thread(profiler.stop)
            stats.profile_error = profiler.error
        self.cpu.extra.pop("py-spy", None)

    @staticmethod
    def account(stats: PhaseStats, before: Snapshot, after: Snapshot) -> None:
        for old, new in zip(before.requests, after.requests, strict=True):
            new.subtract(old)
            stats.requests.update(new)
            stats.pod_creates.append(new[("create", "Pod")])
        if before.cm_pid == after.cm_pid:
            stats.queues = {q: after.queues[q] - before.queues[q] for q in QUEUES}

    # ------------------------------------------------------------ the phases

    async def replicaset_phase(self) -> RsResult:
        n, pods = self.args.replicas, PodTimes()
        self.follow("Pod", RS_NS, pods.on_pod, pods.failures)
        async with asyncio.timeout(30):
            await pods.established.wait()
        log(f"ReplicaSet of {n} pods")
        async with self.measuring("ReplicaSet") as stats:
            start = time.monotonic()
            await self.client.create(replica_set(n))
            all_seen = await until_count(pods.seen, n, self.args.timeout)
            all_bound = all_seen and await until_count(pods.bound, n, self.args.timeout)
        self.failures += pods.failures
        res = RsResult(n, start, pods.seen, pods.bound, pods.created, stats,
                       timed_out=not all_bound)
        log(f"  {len(res.seen)} pods exist after {res.last(res.seen) - start:.2f}s "
            f"({res.rate(res.seen):.0f}/s), {len(res.bound)} bound after "
            f"{res.last(res.bound) - start:.2f}s ({res.rate(res.bound):.0f}/s)")
        return res

    async def deployment_phase(self) -> DeployResult:
        n, watch = self.args.deployment_replicas, RolloutWatch(self.args.deployment_replicas)
        self.follow("Deployment", DEPLOY_NS, watch.on_deployment, watch.failures)
        self.follow("ReplicaSet", DEPLOY_NS, watch.on_replicaset, watch.failures)
        async with asyncio.timeout(30):
            while len(watch.established) < 2:
                await asyncio.sleep(0.01)
        log(f"Deployment of {n} pods")
        begin = time.monotonic()
        created = await self.client.create(deployment(n))
        ready = await watch.wait(created.metadata.generation, self.args.timeout)
        if ready is None:
            raise TimeoutError(f"the deployment was not available after {self.args.timeout}s")
        log(f"  available after {ready - begin:.2f}s; changing the image")
        await asyncio.sleep(SETTLE)
        observer = PodObserver(self.watch_client, DEPLOY_NS)
        async with observer, self.measuring("rollout") as stats:
            start = time.monotonic()
            updated = await change_image(self.client, IMAGES[1])
            done = await watch.wait(updated.metadata.generation, self.args.timeout)
        self.failures += watch.failures
        rollout = done - start if done is not None else None
        log(f"  rollout: {f'{rollout:.2f}s' if rollout is not None else 'timed out'}")
        steps = [(w - start, new, old) for w, new, old in watch.sizes
                 if start <= w <= (done or math.inf)]
        return DeployResult(n, ready - begin, rollout, steps, observer.most_live,
                            observer.fewest_ready, stats)

    async def run(self, report: Report) -> None:
        report.nodes_seconds = await self.setup()
        report.rs = await self.replicaset_phase()
        await asyncio.sleep(SETTLE)
        report.deploy = await self.deployment_phase()
        report.failures = self.failures + self.leases.failures


# ---------------------------------------------------------------- report

def render(rep: Report) -> str:
    parts = [render_header(rep), render_targets(rep)]
    if rep.rs is not None:
        parts += [render_replicaset(rep.rs), render_timeline(rep.rs)]
    if rep.deploy is not None:
        parts.append(render_deployment(rep.deploy))
    parts += [render_cpu(rep), render_profiles(rep)]
    if rep.failures:
        parts.append(f"{len(rep.failures)} watch failures; first: `{rep.failures[0]}`.\n")
    return "\n".join(parts)


def render_header(rep: Report) -> str:
    a = rep.args
    return f"""## Controller-manager: ReplicaSet burst and Deployment rollout

* Date: {rep.started:%Y-%m-%d %H:%M} UTC; whole run {rep.duration:.0f} s (cluster start
  and stop included; registering the nodes took {rep.nodes_seconds:.1f} s).
* Machine: {machine()}; {versions()}. Before the cluster started, other processes
  kept {rep.background:.2f} of its cores busy.
* Command: `{rep.command}` (from the repo root; `make bench` runs it with the defaults).
* Cluster: 3 etcd members, 3 apiservers, 3 schedulers and 3 controller-managers as local
  processes (`LocalCluster`), fresh in a temporary directory; the schedulers and the
  controller-managers each elect a leader (default flags: 2 s leases, 4 workers per
  controller). {a.nodes} Ready nodes (Node objects only: cpu {NODE_CPU}, memory
  {NODE_MEMORY}, pods {NODE_PODS}). Everything, the benchmark client included, shares the
  machine's CPUs.
* Pods: one container, requests = limits = {POD_REQUESTS['cpu']} / {POD_REQUESTS['memory']}.
* Phase 1: one ReplicaSet created at replicas={a.replicas}; a watch on its namespace's pods
  (through apiserver-0) timestamps each pod's first appearance and first appearance with
  `spec.nodeName`.
* Phase 2: a Deployment of {a.deployment_replicas} replicas (RollingUpdate, maxSurge and
  maxUnavailable defaulted to 25%), fully available, then its image changed; watches on
  its Deployment and ReplicaSets see when the rollout is complete. No kubelets: a child
  process plays kubelet for that namespace (`FakeKubelet` from
  `tests/integration/test_deployment.py`, Ready {a.ready_after:g} s after the bind: a
  status update per pod; a pod being deleted is removed with grace 0).
"""


def render_targets(rep: Report) -> str:
    lines = ["### Targets", "", "| target | measured | met |", "|---|---|---|"]
    if rep.rs is not None:
        r = rep.rs
        measured = f"{r.rate(r.seen):.0f} pods/s ({len(r.seen)}/{r.replicas} pods exist)"
        lines += [
            f"| ReplicaSet of {r.replicas}: create → all pods exist ≥ {TARGET_RATE:.0f} pods/s | "
            f"{measured} | {yes_no(r.complete and r.rate(r.seen) >= TARGET_RATE)} |",
            f"| (reference) kube-controller-manager's default client limit ({K8S_QPS} QPS, "
            f"burst {K8S_BURST}): about {K8S_QPS} pods/s | {measured} | "
            f"{yes_no(r.complete and r.rate(r.seen) > K8S_QPS)} |"]
    if rep.deploy is not None:
        d = rep.deploy
        surge, unavailable = -(-d.replicas // 4), d.replicas // 4
        within = d.most_live <= d.replicas + surge and d.fewest_ready >= d.replicas - unavailable
        lines.append(
            f"| rollout of {d.replicas} within maxSurge {surge} / maxUnavailable {unavailable} "
            f"(at most {d.replicas + surge} live pods, at least {d.replicas - unavailable} "
            f"Ready) | at most {d.most_live} live, at least {d.fewest_ready} Ready; complete "
            f"after {_secs(d.rollout)} | {yes_no(within and d.rollout is not None)} |")
    return "\n".join(lines) + "\n"


def _secs(value: float | None) -> str:
    return "timed out" if value is None else f"{value:.2f} s"


def _pcts(values: Sequence[float]) -> str:
    return " / ".join(f"{percentile(values, q):.0f}" for q in (50, 99, 100)) + " ms"


def render_replicaset(r: RsResult) -> str:
    created = sorted(r.created.values())
    span = created[-1] - created[0] if len(created) > 1 else math.nan
    rows = [
        ("ReplicaSet Create sent → all pods observed (watch)",
         f"**{r.last(r.seen) - r.start:.2f} s: {r.rate(r.seen):.0f} pods/s**"),
        ("ReplicaSet Create sent → all pods observed bound",
         f"{r.last(r.bound) - r.start:.2f} s: {r.rate(r.bound):.0f} pods/s"),
        ("ReplicaSet Create sent → first pod's creationTimestamp (the controller's reaction)",
         f"{1000 * (created[0] - r.start):.0f} ms" if created else "n/a"),
        ("controller's own create rate: first → last pod creationTimestamp",
         f"{(len(created) - 1) / span:.0f} pods/s over {span:.2f} s" if span > 0 else "n/a"),
        ("per pod, creationTimestamp → observed by the watch: p50 / p99 / max",
         _pcts(r.lag_ms())),
        ("per pod, ReplicaSet Create sent → pod observed: p50 / p99 / max",
         _pcts(r.since_start_ms(r.seen.values()))),
        ("per pod, ReplicaSet Create sent → pod observed bound: p50 / p99 / max",
         _pcts(r.since_start_ms(r.bound.values()))),
        *phase_rows(r.stats, ["replicaset"], r.replicas)]
    lines = ["### 1. ReplicaSet created at full size", "", "| measure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    if r.timed_out:
        lines += ["", f"**Timed out**: {len(r.seen)} pods exist, {len(r.bound)} bound."]
    return "\n".join(lines) + "\n"


def queue_row(name: str, q: Queue) -> tuple[str, str]:
    mean = 1000 * q.seconds / max(q.reconciles, 1)
    return (f"`{name}` work queue of the leader: reconciles, worker time (mean), retries "
            "after errors", f"{q.reconciles:.0f}, {q.seconds:.2f} s ({mean:.1f} ms), "
            f"{q.retries:.0f}")


def phase_rows(s: PhaseStats, queues: Sequence[str], pods: int) -> list[tuple[str, str]]:
    rows = [queue_row(name, s.queues[name]) for name in queues if name in s.queues]
    creates = ", ".join(f"{c:.0f}" for c in s.pod_creates)
    cm = s.cpu_ms_per(s.cm_leader, pods)
    total = 1000 * ours(s) * s.seconds / max(pods, 1)
    rows += [("pod creates per apiserver (0, 1, 2)", creates),
             ("CPU per pod, all our processes together (bench, fake kubelet, controller-"
              "managers, schedulers, apiservers, etcd, py-spy)", f"{total:.1f} ms: {cpus()} "
              f"cores would allow at most {1000 * cpus() / max(total, 1e-9):.0f} pods/s"),
             ("API requests during the phase (all apiservers)", fmt_requests(s.requests)),
             (f"controller-manager leader ({s.cm_leader}) CPU per pod", f"{cm:.2f} ms: one core "
              f"would allow at most {1000 / max(cm, 1e-9):.0f} pods/s"),
             ("leadership changes during the phase", fmt_moves(s.moves))]
    return rows


def fmt_requests(requests: Counter[tuple[str, str]], top: int = 8) -> str:
    ordered = sorted(((n, k) for k, n in requests.items() if n > 0), reverse=True)[:top]
    return ", ".join(f"{verb} {resource or '-'} {n:.0f}" for n, (verb, resource) in ordered)


def fmt_moves(moves: list[tuple[float, str, str]]) -> str:
    if not moves:
        return "**0**"
    return f"**{len(moves)}**: " + ", ".join(f"{lease} to {holder or '(none)'}"
                                            for _, lease, holder in moves)


def timeline_rows(r: RsResult) -> list[tuple[float, int, int]]:
    """(seconds since the ReplicaSet's Create, pods existing, pods bound)."""
    seen, bound = sorted(r.seen.values()), sorted(r.bound.values())
    end = max(r.last(r.seen), r.last(r.bound))
    if math.isnan(end):
        return []
    step = (end - r.start) / TIMELINE_ROWS
    times = [r.start + step * k for k in range(1, TIMELINE_ROWS + 1)]
    return [(w - r.start, bisect.bisect_right(seen, w), bisect.bisect_right(bound, w))
            for w in times]


def render_timeline(r: RsResult) -> str:
    lines = ["#### Timeline", "", "| t (s) | pods exist | pods bound |", "|---|---|---|"]
    lines += [f"| {w:.2f} | {s} | {b} |" for w, s, b in timeline_rows(r)]
    return "\n".join(lines) + "\n"


def render_deployment(d: DeployResult) -> str:
    rows = [("Deployment created → fully available (not measured: setup)",
             _secs(d.available_after)),
            ("image changed → rollout complete (updated = available = replicas, old "
             "ReplicaSet at 0)", f"**{_secs(d.rollout)}**"),
            ("ReplicaSet size changes during the rollout", str(max(len(d.steps) - 1, 0))),
            ("most live pods / fewest Ready pods during the rollout",
             f"{d.most_live} / {d.fewest_ready}"),
            *phase_rows(d.stats, QUEUES[::-1], 2 * d.replicas)]
    lines = [f"### 2. Deployment rollout of {d.replicas} replicas", "",
             "| measure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    lines += ["", "The ReplicaSets' sizes (spec.replicas) as the watch saw them change:", "",
              "| t (s) | new ReplicaSet | old ReplicaSet |", "|---|---|---|"]
    lines += [f"| {w:.2f} | {new} | {old} |" for w, new, old in d.steps]
    lines += ["", "CPU per pod counts both the created and the deleted pods "
              f"({2 * d.replicas})."]
    return "\n".join(lines) + "\n"


def cpu_groups(s: PhaseStats) -> list[tuple[str, float]]:
    """(label, cores busy) of each process group in a phase, leaders first."""
    c = s.cpu

    def others(role: str, leader: str) -> float:
        return sum(v for g, v in c.items() if g.startswith(f"{role}-") and g != leader)
    return [
        ("bench client (watches, requests)", c.get("bench", 0.0)),
        ("fake kubelet (child process)", c.get("fake kubelet", 0.0)),
        (f"controller-manager leader ({s.cm_leader})", c.get(s.cm_leader, 0.0)),
        ("… its event-loop thread", c.get("leader loop", 0.0)),
        ("… that thread waiting for a CPU", c.get("leader loop waiting", 0.0)),
        ("other controller-managers (standbys)", others("controller-manager", s.cm_leader)),
        (f"scheduler leader ({s.sched_leader})", c.get(s.sched_leader, 0.0)),
        ("other schedulers (standbys)", others("scheduler", s.sched_leader)),
        *((f"apiserver-{i}", c.get(f"apiserver-{i}", 0.0)) for i in range(3)),
        ("etcd (3 members)", c.get("etcd", 0.0)),
        ("py-spy", c.get("py-spy", 0.0)),
        (f"machine (all {cpus()} CPUs, any process)", c.get("machine", 0.0))]


NOT_OURS = ("… its event-loop thread", "… that thread waiting for a CPU")


def ours(s: PhaseStats) -> float:
    return sum(v for g, v in cpu_groups(s)[:-1] if g not in NOT_OURS)


def render_cpu(rep: Report) -> str:
    phases = [(name, res.stats) for name, res in (("ReplicaSet", rep.rs),
                                                  ("rollout", rep.deploy)) if res is not None]
    if not phases:
        return ""
    head = " | ".join(f"{name} ({s.seconds:.1f} s)" for name, s in phases)
    lines = ["### CPU", "",
             "Cores busy per process during each phase (CPU seconds / wall seconds, from "
             "/proc, sampled every 0.5 s). The event-loop thread is the leader's main thread "
             "(all its Python); \"waiting\" is the share of the time it was runnable but had "
             "no CPU (`/proc/PID/task/PID/schedstat`).", "",
             f"| process | {head} |", "|---|" + "---|" * len(phases)]
    table = [cpu_groups(s) for _, s in phases]
    for i, (label, _) in enumerate(table[0]):
        label = label if len(phases) == 1 or "leader (" not in label else label.split(" (")[0]
        lines.append(f"| {label} | " + " | ".join(f"{t[i][1]:.2f}" for t in table) + " |")
    lines += ["", *(f"{name}: {saturation(ours(s), s.cpu.get('machine', 0.0))}; leaders "
                    f"{s.cm_leader} and {s.sched_leader}; the fake kubelet used "
                    f"{share(s, 'fake kubelet')} of our processes' CPU."
                    for name, s in phases)]
    return "\n".join(lines) + "\n"


def share(s: PhaseStats, group: str) -> str:
    return f"{100 * s.cpu.get(group, 0.0) / max(ours(s), 1e-9):.0f}%"


def render_profiles(rep: Report) -> str:
    stats = [res.stats for res in (rep.rs, rep.deploy) if res is not None]
    lines = ["### Where the controller-manager leader's time goes (py-spy)", "",
             f"`py-spy record --rate {PROFILE_RATE} --nonblocking --gil --function` on the "
             "leader during each phase. Only threads holding the GIL are sampled; Python "
             "frames only (time in C, such as protobuf or gRPC's core, is charged to the "
             "Python function calling it). Self = samples with the function on top of the "
             "stack; total = with it anywhere on the stack (the project's functions only)."]
    for s in stats:
        if s.profile is not None:
            lines += ["", *profile_lines(s.profile, top=10)]
        else:
            lines += ["", f"No profile ({s.profile_error or 'py-spy not run'})."]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- main

def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.controllers",
                                description=__doc__.split("\n")[0])
    p.add_argument("--replicas", type=int, default=1000, help="the ReplicaSet's replicas")
    p.add_argument("--deployment-replicas", type=int, default=100,
                   help="the Deployment's replicas")
    p.add_argument("--nodes", type=int, default=20, help=f"Ready nodes ({NODE_PODS} pods each)")
    p.add_argument("--ready-after", type=float, default=0.0,
                   help="seconds the fake kubelet waits after a bind before marking a pod Ready")
    p.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for a phase")
    p.add_argument("--no-profile", action="store_true", help="do not run py-spy")
    p.add_argument("--doc", type=Path, default=DOC, help="markdown file to write the report to")
    p.add_argument("--no-doc", action="store_true", help="only print the report")
    p.add_argument("--keep-workdir", action="store_true",
                   help="keep the cluster's workdir (logs, profiles) after the run")
    args = p.parse_args(argv)
    if min(args.replicas, args.deployment_replicas, args.nodes) < 1:
        p.error("--replicas, --deployment-replicas and --nodes must be at least 1")
    needed = args.replicas + args.deployment_replicas + -(-args.deployment_replicas // 4)
    if args.nodes * NODE_PODS < needed:
        p.error(f"{args.nodes} nodes hold {args.nodes * NODE_PODS} pods; {needed} are needed")
    if args.timeout <= 0 or args.ready_after < 0:
        p.error("--timeout must be positive and --ready-after at least 0")
    return args


async def run(cluster: LocalCluster, report: Report) -> None:
    bench = Bench(cluster, report.args, cluster.workdir)
    try:
        await bench.run(report)
    finally:
        await bench.close()


def main(argv: Sequence[str] | None = None) -> int:
    return run_benchmark("controllers", argv, parse_args, Report, lambda _args: {"schedulers": 3, "controller_managers": 3}, run, render)


if __name__ == "__main__":
    sys.exit(main())
