"""Scheduler throughput on a fresh local cluster, shaped like Kubernetes' scheduler_perf
SchedulingBasic/5000Nodes_10000Pods.

`python -m bench.scheduler` starts 3 etcd members, 3 apiservers and 3 schedulers
(leader-elected: one schedules, two stand by with warm caches), then:

1. registers N Ready nodes (default 5000; Node objects only, nothing behind
   them, as scheduler_perf does);
2. creates 1000 initial pods and waits until all are bound (not measured);
3. creates M measured pods (default 10000) as fast as the client can, spread
   over the apiservers, and watches them get bound.

Throughput is M / (last measured pod observed bound - first measured create
sent): end to end, through the apiservers and etcd. While the measured pods
go through, the scheduler leader (and the apiserver its binds go to) are
profiled with py-spy, the CPU of every process is recorded, and the
scheduler lease is watched (a leader that cannot renew it steps down). The
report goes into docs/BENCHMARKS.md between the `bench:scheduler` markers.
The cluster runs in a temporary workdir and is always stopped at the end,
also on error or Ctrl-C. All traffic is to 127.0.0.1.
"""
from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import datetime
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.api import (
    cpu_seconds,
    cpus,
    drive,
    machine,
    machine_cpu_seconds,
    metric,
    percentile,
    saturation,
    scrape,
    versions,
    yes_no,
)
from bench.common import DOC, interrupt, local_cluster, log, timed, write_section
from minik8s import errors
from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient, WatchEvent
from minik8s.localcluster import LocalCluster, Proc
from scheduler.framework import Framework
from tests.integration.helpers import ready_node

TARGET_RATE = 810.0          # pods/s: the target here, Kubernetes' 50000-pod threshold
K8S_THRESHOLD = 680.0        # pods/s: Kubernetes' CI threshold for 5000Nodes_10000Pods
LEASE_NAME, LEASE_NAMESPACE = "kube-scheduler", "kube-system"
# scheduler_perf's templates: node-default.yaml and pod-default.yaml
NODE_CPU, NODE_MEMORY, NODE_PODS = "4", "32Gi", "110"
POD_REQUESTS = {"cpu": "100m", "memory": "500Mi"}
INIT_NS, MEASURE_NS = "sched-init", "sched-measure"
LEADER_TIMEOUT = 60.0        # seconds to wait for a scheduler to lead
WATCH_RESTARTS = 5           # a broken watch is resumed this many times at most
BACKGROUND_SECONDS = 3.0     # how long the machine's load is measured before the run
CPU_SAMPLE = 0.5             # seconds between CPU samples (a dying process loses at most this)
PROFILE_RATE = 100           # py-spy samples per second
TIMELINE_ROWS = 12
TIMELINE_MIN_STEP = 1.0      # seconds
REPO = str(Path(__file__).resolve().parents[1]) + "/"
# Total (inclusive) time is shown for the project's own functions only: the frames
# below them (click, asyncio's loop, the component runner) are on every stack.
PROJECT_PACKAGES = ("minik8s/informer", "minik8s/client", "minik8s/events", "minik8s/kinds",
                    "minik8s/leaderelection", "minik8s/serving", "scheduler/", "apiserver/",
                    "controller_manager/")


# ---------------------------------------------------------------- objects

def perf_pod(name: str, namespace: str) -> t.Pod:
    """scheduler_perf's pod-default: a pause container, port 80, requests = limits."""
    resources = t.ResourceRequirements(requests=POD_REQUESTS, limits=POD_REQUESTS)
    container = t.Container(name="pause", image="registry.k8s.io/pause:3.10",
                            ports=[t.ContainerPort(container_port=80)], resources=resources)
    return t.Pod(metadata=t.ObjectMeta(name=name, namespace=namespace),
                 spec=t.PodSpec(containers=[container]))


async def create_namespaces(client: ApiClient, *names: str) -> None:
    for name in names:
        await client.create(t.Namespace(metadata=t.ObjectMeta(name=name)))


async def create_nodes(clients: Sequence[ApiClient], n: int, concurrency: int,
                       cpu: str = NODE_CPU, memory: str = NODE_MEMORY,
                       pods: str = NODE_PODS) -> float:
    """Register n Ready nodes (create + status update each); the wall time it took."""
    async def op(w: int, i: int) -> None:
        await ready_node(clients[w % len(clients)], f"node-{i:05d}", cpu, memory, pods)
    seconds, failures = await drive(n, concurrency, op)
    if failures:
        raise RuntimeError(f"{len(failures)} nodes failed; first: {failures[0]}")
    return seconds


# ---------------------------------------------------------------- leader election

def add_lease_flags(p: argparse.ArgumentParser) -> None:
    """The schedulers' leader-election flags (their defaults, docs/leader-election.md)."""
    p.add_argument("--lease-duration", type=float, default=2.0)
    p.add_argument("--renew-deadline", type=float, default=1.5)
    p.add_argument("--retry-period", type=float, default=0.25)


def lease_flags(args: argparse.Namespace) -> list[str]:
    return ["--leader-elect-lease-duration", f"{args.lease_duration:g}",
            "--leader-elect-renew-deadline", f"{args.renew_deadline:g}",
            "--leader-elect-retry-period", f"{args.retry_period:g}"]


def check_lease_flags(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not 0 < args.retry_period < args.renew_deadline < args.lease_duration:
        p.error("need 0 < --retry-period < --renew-deadline < --lease-duration")


def identity_pid(identity: str) -> int:
    """The pid in a leader identity (host_pid_random); 0 if there is none."""
    parts = identity.rsplit("_", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else 0


def proc_of(cluster: LocalCluster, identity: str) -> Proc | None:
    pid = identity_pid(identity)
    return next((p for p in cluster.role("scheduler") if pid and p.pid == pid), None)


async def current_lease(client: ApiClient) -> t.Lease | None:
    try:
        return await client.get("Lease", LEASE_NAME, LEASE_NAMESPACE)
    except errors.NotFound:
        return None


async def find_leader(client: ApiClient, cluster: LocalCluster,
                      timeout: float = LEADER_TIMEOUT) -> tuple[Proc, t.Lease]:
    """The scheduler process that holds the lease (a live one), and the lease."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lease = await current_lease(client)
        proc = proc_of(cluster, lease.spec.holder_identity) if lease else None
        if proc is not None and proc.alive:
            return proc, lease
        await asyncio.sleep(0.1)
    raise TimeoutError(f"no live scheduler holds the lease after {timeout:.0f}s")


def metrics_url(cluster: LocalCluster, proc: Proc) -> str:
    return f"http://{cluster.host}:{proc.ports['http']}/metrics"


# ---------------------------------------------------------------- watching

async def follow(client: ApiClient, kind: str, namespace: str,
                 handle: Callable[[WatchEvent], None], failures: list[str]) -> None:
    """Feed every event of a watch to handle() until cancelled; a broken watch is resumed
    where it stopped, WATCH_RESTARTS times at most."""
    rv = ""
    for _ in range(WATCH_RESTARTS):
        try:
            async for ev in client.watch(kind, namespace=namespace, resource_version=rv):
                rv = ev.resource_version or rv
                handle(ev)
        except errors.ApiError as exc:
            failures.append(f"{kind} watch: {type(exc).__name__}: {exc}")
        await asyncio.sleep(0.1)


@dataclass
class BindWatch:
    """When each pod was first observed bound, when the scheduler lease was written and when
    its holder changed (time.monotonic() at delivery): one watch on pods, one on leases."""

    cluster: LocalCluster
    bound: dict[str, float] = field(default_factory=dict)   # "namespace/name" -> time
    per_namespace: Counter[str] = field(default_factory=Counter)
    lease_writes: list[float] = field(default_factory=list)
    holders: list[tuple[float, str]] = field(default_factory=list)   # (time, process name)
    established: asyncio.Event = field(default_factory=asyncio.Event)
    failures: list[str] = field(default_factory=list)
    _holder: str = ""

    def on_pod(self, ev: WatchEvent) -> None:
        if ev.type == "BOOKMARK":
            self.established.set()
            return
        pod = ev.object
        if not pod.spec.node_name:
            return
        key = f"{pod.metadata.namespace}/{pod.metadata.name}"
        if key not in self.bound:
            self.bound[key] = time.monotonic()
            self.per_namespace[pod.metadata.namespace] += 1

    def on_lease(self, ev: WatchEvent) -> None:
        if ev.type == "BOOKMARK" or ev.object.metadata.name != LEASE_NAME:
            return
        now, holder = time.monotonic(), ev.object.spec.holder_identity
        self.lease_writes.append(now)
        if holder != self._holder:
            self._holder = holder
            proc = proc_of(self.cluster, holder)
            self.holders.append((now, proc.name if proc else holder or "(none)"))

    def leader_pid(self) -> int:
        """The pid of the lease's holder, as last seen."""
        return identity_pid(self._holder)

    def start(self, client: ApiClient) -> list[asyncio.Task]:
        return [asyncio.create_task(follow(client, "Pod", "", self.on_pod, self.failures)),
                asyncio.create_task(follow(client, "Lease", LEASE_NAMESPACE, self.on_lease,
                                           self.failures))]

    async def wait(self, namespace: str, count: int, timeout: float) -> bool:
        """Wait until count pods of namespace are bound; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.per_namespace[namespace] < count:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True


# ---------------------------------------------------------------- CPU

def thread_cpu_seconds(pid: int, tid: int) -> float:
    """User + system CPU time of one thread, from /proc (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def runqueue_seconds(pid: int, tid: int) -> float:
    """Time a thread spent runnable but waiting for a CPU, from /proc/.../schedstat."""
    try:
        with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (FileNotFoundError, IndexError, ValueError):
        return 0.0


def _group(name: str) -> str:
    return "etcd" if name.startswith("etcd-") else name


def _main_thread(pid: int) -> tuple[float, float]:
    return thread_cpu_seconds(pid, pid), runqueue_seconds(pid, pid)


@dataclass
class ClusterCpu:
    """CPU seconds used by the cluster's processes, by name (etcd members together), over
    restarts: a supervised scheduler that exits comes back with a new pid, and both count.
    Sampled every CPU_SAMPLE seconds while run() runs, so a process that dies loses at most
    that much. Also the leader's main thread, the one running its event loop (all its
    Python), whichever process leads: its CPU ("leader loop") and the time it was runnable
    but waited for a CPU ("leader loop waiting")."""

    cluster: LocalCluster
    leader_pid: Callable[[], int]
    extra: dict[str, list[int]] = field(default_factory=dict)   # group -> pids (py-spy)
    _seen: dict[int, tuple[str, float]] = field(default_factory=dict)
    # each leader's main thread: pid -> (cpu, wait) when first seen leading, and latest
    _loops: dict[int, tuple[tuple[float, float], tuple[float, float]]] = field(
        default_factory=dict)

    def _see(self, group: str, pid: int) -> None:
        if pid and (cpu := cpu_seconds(pid)) > 0:
            self._seen[pid] = (group, cpu)

    def _see_leader(self) -> None:
        pid = self.leader_pid()
        if pid and pid not in self._loops and (now := _main_thread(pid))[0] > 0:
            self._loops[pid] = (now, now)
        for pid, (first, _) in self._loops.items():
            if (now := _main_thread(pid))[0] > 0:   # once gone, its last values stand
                self._loops[pid] = (first, now)

    def refresh(self) -> None:
        for proc in list(self.cluster.procs.values()):
            self._see(_group(proc.name), proc.pid)
        for group, pids in self.extra.items():
            for pid in pids:
                self._see(group, pid)
        self._see_leader()

    def totals(self) -> dict[str, float]:
        self.refresh()
        used: dict[str, float] = defaultdict(float)
        for group, cpu in self._seen.values():
            used[group] += cpu
        for first, now in self._loops.values():
            used["leader loop"] += now[0] - first[0]
            used["leader loop waiting"] += now[1] - first[1]
        used["bench"] = time.process_time()
        used["machine"] = machine_cpu_seconds()
        return dict(used)

    async def run(self) -> None:
        while True:
            self.refresh()
            await asyncio.sleep(CPU_SAMPLE)


def busy(start: dict[str, float], end: dict[str, float], wall: float) -> dict[str, float]:
    """Cores busy per group between two ClusterCpu.totals()."""
    return {g: (v - start.get(g, 0.0)) / max(wall, 1e-9) for g, v in end.items()}


# ---------------------------------------------------------------- profiling

def short_frame(frame: str) -> str:
    """'fn (/abs/.../site-packages/pkg/mod.py:12)' -> 'fn (pkg/mod.py:12)'."""
    name, _, where = frame.partition(" (")
    stdlib = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/"
    for marker in ("site-packages/", REPO, stdlib):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{name} ({where}" if where else name


def _file_of(frame: str) -> str:
    where = frame.partition(" (")[2].rstrip(")")
    return where.rsplit(":", 1)[0] or "?"


@dataclass
class Profile:
    """py-spy samples of one process (only threads holding the GIL: running Python):
    by function itself (self) and, for the project's functions, with callees (total)."""

    label: str
    seconds: float   # the wall time covered
    samples: int = 0
    own: Counter[str] = field(default_factory=Counter)
    total: Counter[str] = field(default_factory=Counter)
    by_file: Counter[str] = field(default_factory=Counter)

    @classmethod
    def parse(cls, label: str, seconds: float, text: str) -> Profile:
        """From py-spy's raw (collapsed stacks) output: 'frame;frame;... count' lines."""
        prof = cls(label, seconds)
        for line in text.splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            frames = [short_frame(f) for f in stack.split(";")]
            n = int(count)
            prof.samples += n
            prof.own[frames[-1]] += n
            prof.by_file[_file_of(frames[-1])] += n
            for frame in set(frames):
                if _file_of(frame).startswith(PROJECT_PACKAGES):
                    prof.total[frame] += n
        return prof

    @property
    def busy(self) -> float:
        """Share of the wall time some thread held the GIL (ran Python, or C called from it)."""
        return self.samples / max(self.seconds * PROFILE_RATE, 1)

    def share(self, n: int) -> float:
        return 100 * n / max(self.samples, 1)


@dataclass
class Profiler:
    """`py-spy record` attached to one process from start() until stop() (SIGINT)."""

    label: str
    pid: int
    out: Path
    proc: subprocess.Popen | None = None
    started: float = 0.0
    error: str = ""

    def start(self) -> None:
        exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(exe).exists():
            self.error = "py-spy is not installed (pip install py-spy)"
            return
        argv = [exe, "record", "-p", str(self.pid), "--rate", str(PROFILE_RATE),
                "--duration", "3600", "--format", "raw", "--function", "--nonblocking", "--gil",
                "-o", str(self.out)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        self.started = time.monotonic()

    def stop(self, ended: float | None = None) -> Profile | None:
        """Stop sampling (py-spy writes its file on SIGINT) and read the samples; `ended`:
        when the process exited, if it did."""
        if self.proc is None:
            return None
        seconds = (ended or time.monotonic()) - self.started
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        self.proc = None
        if not self.out.exists():
            self.error = (err or b"").decode(errors="replace").strip()[-300:] or "no output"
            return None
        return Profile.parse(self.label, seconds, self.out.read_text())

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------- metrics

_LABELS = re.compile(r'(\w+)="([^"]*)"')
E2E = "scheduler_pod_scheduling_duration_seconds"
ATTEMPT = "scheduler_scheduling_attempt_duration_seconds"
RESULTS = ("scheduled", "unschedulable", "error")


def request_counts(text: str) -> Counter[tuple[str, str]]:
    """apiserver_request_total by (verb, resource), summed over codes."""
    counts: Counter[tuple[str, str]] = Counter()
    for line in text.splitlines():
        if line.startswith("apiserver_request_total{"):
            series, _, value = line.rpartition(" ")
            labels = dict(_LABELS.findall(series))
            counts[labels.get("verb", ""), labels.get("resource", "")] += float(value)
    return counts


def buckets(text: str, name: str) -> Counter[float]:
    """A histogram's cumulative counts by upper bound."""
    out: Counter[float] = Counter()
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            series, _, value = line.rpartition(" ")
            le = dict(_LABELS.findall(series))["le"]
            out[math.inf if le == "+Inf" else float(le)] = float(value)
    return out


def bucket_quantile(q: float, cumulative: Counter[float]) -> float:
    """Prometheus' histogram_quantile: linear within the bucket holding the q-th observation."""
    ordered = sorted(cumulative.items())
    if not ordered or ordered[-1][1] <= 0:
        return math.nan
    rank = q * ordered[-1][1]
    lower, below = 0.0, 0.0
    for le, count in ordered:
        if count >= rank:
            if math.isinf(le):
                return lower  # beyond the last finite bucket: its bound is all we know
            return lower + (le - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = le, count
    return lower


@dataclass
class SchedulerMetrics:
    """The scheduler metrics the report uses; subtract two scrapes for an interval."""

    e2e: Counter[float] = field(default_factory=Counter)
    attempts: Counter[str] = field(default_factory=Counter)
    attempt_seconds: float = 0.0
    attempt_count: float = 0.0

    @classmethod
    def parse(cls, text: str) -> SchedulerMetrics:
        return cls(buckets(text, E2E),
                   Counter({r: metric(text, "scheduler_schedule_attempts_total", f'result="{r}"')
                            for r in RESULTS}),
                   metric(text, f"{ATTEMPT}_sum"), metric(text, f"{ATTEMPT}_count"))

    def __add__(self, other: SchedulerMetrics) -> SchedulerMetrics:
        return SchedulerMetrics(self.e2e + other.e2e, self.attempts + other.attempts,
                                self.attempt_seconds + other.attempt_seconds,
                                self.attempt_count + other.attempt_count)

    def __sub__(self, other: SchedulerMetrics) -> SchedulerMetrics:
        e2e, attempts = Counter(self.e2e), Counter(self.attempts)
        e2e.subtract(other.e2e)
        attempts.subtract(other.attempts)
        return SchedulerMetrics(e2e, attempts, self.attempt_seconds - other.attempt_seconds,
                                self.attempt_count - other.attempt_count)

    def quantile(self, q: float) -> float:
        return bucket_quantile(q, self.e2e)

    @property
    def mean_attempt_ms(self) -> float:
        return 1000 * self.attempt_seconds / self.attempt_count if self.attempt_count else math.nan


Scrape = dict[str, tuple[int, str]]   # process name -> (pid, /metrics text)


def scrape_schedulers(cluster: LocalCluster) -> Scrape:
    out = {}
    for proc in cluster.role("scheduler"):
        with contextlib.suppress(OSError):
            out[proc.name] = (proc.pid, scrape(metrics_url(cluster, proc)))
    return out


def scheduler_delta(before: Scrape, after: Scrape) -> tuple[SchedulerMetrics, int]:
    """Summed over the schedulers, what happened between two scrapes; and how many of them
    restarted meanwhile (what their exited incarnations counted is lost)."""
    total, restarted = SchedulerMetrics(), 0
    for name, (pid, text) in after.items():
        metrics = SchedulerMetrics.parse(text)
        old_pid, old_text = before.get(name, (0, ""))
        if old_pid == pid:
            metrics = metrics - SchedulerMetrics.parse(old_text)
        else:
            restarted += 1
        total = total + metrics
    return total, restarted


# ---------------------------------------------------------------- the measured phase

@dataclass
class Measured:
    pods: int
    sent: list[float]               # monotonic time each Create was sent
    done: list[float]               # ... and answered (nan if it failed)
    bound: list[float]              # ... and the pod observed bound (nan if never)
    failures: list[str] = field(default_factory=list)
    cpu_create: dict[str, float] = field(default_factory=dict)
    cpu_drain: dict[str, float] = field(default_factory=dict)
    create_phase: float = 0.0       # seconds
    drain_phase: float = 0.0
    sched: SchedulerMetrics | None = None
    restarts: int = 0               # scheduler processes that restarted during the phase
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    profiles: list[Profile] = field(default_factory=list)
    profile_errors: list[str] = field(default_factory=list)
    leader: str = ""
    lease_writes: list[float] = field(default_factory=list)        # during the phase
    holders: list[tuple[float, str]] = field(default_factory=list)  # changes during it
    timed_out: bool = False

    @property
    def start(self) -> float:
        return min(self.sent)

    @property
    def bound_count(self) -> int:
        return sum(not math.isnan(b) for b in self.bound)

    @property
    def last_bound(self) -> float:
        return max((b for b in self.bound if not math.isnan(b)), default=math.nan)

    @property
    def last_done(self) -> float:
        return max((d for d in self.done if not math.isnan(d)), default=math.nan)

    @property
    def rate(self) -> float:
        """The headline: pods bound per second, first create sent -> last pod observed bound."""
        return self.bound_count / max(self.last_bound - self.start, 1e-9)

    @property
    def create_rate(self) -> float:
        created = sum(not math.isnan(d) for d in self.done)
        return created / max(self.last_done - self.start, 1e-9)

    def latencies_ms(self) -> list[float]:
        return [(b - s) * 1000 for s, b in zip(self.sent, self.bound, strict=True)
                if not math.isnan(b)]

    def bound_by(self, when: float) -> int:
        return bisect.bisect_right(sorted(b for b in self.bound if not math.isnan(b)), when)

    def cpu_ms_per_pod(self, group: str) -> float:
        """CPU milliseconds a group used per bound pod over the whole measured phase."""
        seconds = (self.cpu_create.get(group, 0.0) * self.create_phase
                   + self.cpu_drain.get(group, 0.0) * self.drain_phase)
        return 1000 * seconds / max(self.bound_count, 1)

    @property
    def ours_ms_per_pod(self) -> float:
        """CPU milliseconds per bound pod of all our processes together."""
        return sum(self.cpu_ms_per_pod(g) for g in self.cpu_create if g not in NOT_OURS)

    @property
    def longest_lease_gap(self) -> float:
        """The longest time between two writes of the scheduler lease (renewals come every
        retry period while the leader's event loop is responsive)."""
        times = [self.start, *self.lease_writes, self.last_bound]
        return max(b - a for a, b in zip(times, times[1:], strict=False))


class Bench:
    def __init__(self, cluster: LocalCluster, args: argparse.Namespace, workdir: Path) -> None:
        self.cluster = cluster
        self.args = args
        self.workdir = workdir
        self.clients = [ApiClient([s]) for s in cluster.servers]
        self.watch_client = ApiClient(cluster.servers[:1])
        self.watch = BindWatch(cluster)
        self.tasks: list[asyncio.Task] = []
        self.profilers: list[Profiler] = []
        self.nodes_seconds = 0.0
        self.init_seconds = 0.0

    async def close(self) -> None:
        for p in self.profilers:
            p.kill()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for c in (*self.clients, self.watch_client):
            await c.close()

    async def setup(self) -> None:
        """Nodes, then the initial pods, all bound: the state the measured phase starts from."""
        a = self.args
        await create_namespaces(self.clients[0], INIT_NS, MEASURE_NS)
        self.tasks += self.watch.start(self.watch_client)
        async with asyncio.timeout(30):
            await self.watch.established.wait()
        leader, _ = await find_leader(self.clients[0], self.cluster)
        log(f"leader: {leader.name} (pid {leader.pid}); registering {a.nodes} nodes")
        self.nodes_seconds = await create_nodes(self.clients, a.nodes, a.concurrency)
        log(f"  {a.nodes} nodes in {self.nodes_seconds:.1f}s; {a.init_pods} initial pods")
        start = time.monotonic()
        pods = [perf_pod(f"init-{i}", INIT_NS) for i in range(a.init_pods)]
        await drive(len(pods), a.concurrency,
                    lambda w, i: self.clients[w % len(self.clients)].create(pods[i]))
        if not await self.watch.wait(INIT_NS, a.init_pods, a.timeout):
            raise TimeoutError(f"initial pods: only {self.watch.per_namespace[INIT_NS]} of "
                               f"{a.init_pods} bound after {a.timeout:.0f}s")
        self.init_seconds = time.monotonic() - start
        log(f"  initial pods bound in {self.init_seconds:.1f}s")

    # ------------------------------------------------------------ measuring

    def bind_apiserver(self) -> Proc:
        """The apiserver that served the most binds so far: the leader's."""
        procs = self.cluster.role("apiserver")
        binds = [metric(scrape(metrics_url(self.cluster, p)), "apiserver_request_total",
                        'verb="bind"') for p in procs]
        return procs[binds.index(max(binds))]

    def start_profilers(self, leader: Proc, apiserver: Proc) -> None:
        if self.args.no_profile:
            return
        for label, proc in ((f"scheduler leader ({leader.name})", leader),
                            (f"{apiserver.name} (serves the leader's binds)", apiserver)):
            profiler = Profiler(label, proc.pid, self.workdir / f"profile-{proc.name}.txt")
            profiler.start()
            self.profilers.append(profiler)

    def scrape_apiservers(self) -> Counter[tuple[str, str]]:
        total: Counter[tuple[str, str]] = Counter()
        for p in self.cluster.role("apiserver"):
            total.update(request_counts(scrape(metrics_url(self.cluster, p))))
        return total

    async def measure(self) -> Measured:
        a = self.args
        leader, _ = await find_leader(self.clients[0], self.cluster)
        pods = [perf_pod(f"pod-{i}", MEASURE_NS) for i in range(a.pods)]
        m = Measured(a.pods, *([math.nan] * a.pods for _ in range(3)), leader=leader.name)
        self.start_profilers(leader, self.bind_apiserver())
        await asyncio.sleep(0.5)   # let py-spy attach
        before, requests_before = scrape_schedulers(self.cluster), self.scrape_apiservers()
        cpu = ClusterCpu(self.cluster, self.watch.leader_pid, {
            "py-spy": [p.proc.pid for p in self.profilers if p.proc is not None]})
        self.tasks.append(asyncio.create_task(cpu.run()))
        log(f"measured phase: {a.pods} pods at concurrency {a.concurrency}")
        await self.run_phase(m, pods, cpu)
        m.sched, m.restarts = scheduler_delta(before, scrape_schedulers(self.cluster))
        m.requests = self.scrape_apiservers()
        m.requests.subtract(requests_before)
        self.collect(m)
        return m

    async def run_phase(self, m: Measured, pods: list[t.Pod], cpu: ClusterCpu) -> None:
        """Create the pods as fast as possible; then wait until every one is bound."""
        clients = self.clients

        async def op(w: int, i: int) -> None:
            m.sent[i] = time.monotonic()
            await clients[w % len(clients)].create(pods[i])
            m.done[i] = time.monotonic()

        start, used = time.monotonic(), cpu.totals()
        _, m.failures = await drive(len(pods), self.args.concurrency, op)
        middle, used_middle = time.monotonic(), cpu.totals()
        log(f"  created at {m.create_rate:.0f}/s; {self.watch.per_namespace[MEASURE_NS]} bound")
        created = len(pods) - len(m.failures)
        m.timed_out = not await self.watch.wait(MEASURE_NS, created, self.args.timeout)
        end = time.monotonic()
        m.cpu_create, m.create_phase = busy(used, used_middle, middle - start), middle - start
        m.cpu_drain, m.drain_phase = busy(used_middle, cpu.totals(), end - middle), end - middle

    def collect(self, m: Measured) -> None:
        """What the watches saw during the phase, and the profiles."""
        for i in range(m.pods):
            m.bound[i] = self.watch.bound.get(f"{MEASURE_NS}/pod-{i}", math.nan)
        end = m.last_bound if m.bound_count else time.monotonic()
        m.lease_writes = [w for w in self.watch.lease_writes if m.start <= w <= end]
        m.holders = [(w, n) for w, n in self.watch.holders if m.start <= w <= end]
        lost = m.holders[0][0] if m.holders else None   # the first leader's end
        for p in self.profilers:
            prof = p.stop(lost if p.label.startswith("scheduler leader") else None)
            if prof is not None:
                m.profiles.append(prof)
            elif p.error:
                m.profile_errors.append(f"{p.label}: {p.error}")
        log(f"  {m.bound_count}/{m.pods} bound: {m.rate:.0f} pods/s end to end; "
            f"{len(m.holders)} leadership changes")


# ---------------------------------------------------------------- report

@dataclass
class Report:
    started: datetime.datetime
    command: str
    args: argparse.Namespace
    background: float = 0.0     # cores busy on the machine before the cluster started
    nodes_seconds: float = 0.0
    init_seconds: float = 0.0
    measured: Measured | None = None
    duration: float = 0.0


def render(rep: Report) -> str:
    m, a = rep.measured, rep.args
    parts = [render_header(rep)]
    if m is not None:
        parts += [render_targets(m), render_results(m, a), render_timeline(m, a),
                  render_cpu(m, rep.background), render_profiles(m)]
    return "\n".join(parts)


def feasible_nodes(args: argparse.Namespace) -> int:
    """How many feasible nodes an attempt looks for, as the scheduler's framework decides."""
    framework = Framework([], [], percentage_of_nodes_to_score=args.percentage_of_nodes_to_score)
    return framework.num_feasible_nodes_to_find(args.nodes)


def scheduler_args(args: argparse.Namespace) -> list[str]:
    return [*lease_flags(args), "--percentage-of-nodes-to-score",
            str(args.percentage_of_nodes_to_score)]


def render_header(rep: Report) -> str:
    a = rep.args
    return f"""## Scheduler: throughput and latency (scheduler_perf's SchedulingBasic shape)

* Date: {rep.started:%Y-%m-%d %H:%M} UTC; whole run {rep.duration:.0f} s (cluster start
  and stop included; registering the nodes took {rep.nodes_seconds:.0f} s, the initial
  pods {rep.init_seconds:.0f} s).
* Machine: {machine()}; {versions()}. Before the cluster started, other processes
  kept {rep.background:.2f} of its cores busy.
* Command: `{rep.command}` (from the repo root; `make bench` runs it with the defaults).
* Cluster: 3 etcd members, 3 apiservers and 3 schedulers as local processes
  (`LocalCluster`; a scheduler that exits is started again), fresh in a temporary
  directory. The schedulers (`{' '.join(scheduler_args(a))}`) elect a leader; the two
  others keep warm caches. The benchmark client runs on the same machine: everything
  shares its CPUs.
* Workload, as Kubernetes' `SchedulingBasic/5000Nodes_10000Pods` (5000 nodes, 1000
  initial pods, 10000 measured pods): {a.nodes} Ready nodes (Node objects only, as
  scheduler_perf's: cpu {NODE_CPU}, memory {NODE_MEMORY}, pods {NODE_PODS}),
  {a.init_pods} initial pods scheduled first (not measured), then {a.pods} measured
  pods (scheduler_perf's pod-default: a pause container, port 80, requests = limits =
  100m / 500Mi), created by {a.concurrency} concurrent Create calls spread round-robin
  over the 3 apiservers. Each scheduling attempt filters nodes until
  {feasible_nodes(a)} feasible ones are found, then scores those (the default plugins).
  One watch on all pods (through apiserver-0) timestamps each pod's first appearance
  with `spec.nodeName` set; one on the leases sees the scheduler lease's writes.
"""


def render_targets(m: Measured) -> str:
    complete = m.bound_count == m.pods
    measured = f"{m.rate:.0f} pods/s ({m.bound_count}/{m.pods} bound)"
    return "\n".join([
        "### Targets", "", "| target | measured | met |", "|---|---|---|",
        f"| ≥ {TARGET_RATE:.0f} pods/s end to end | {measured} | "
        f"{yes_no(complete and m.rate >= TARGET_RATE)} |",
        f"| (reference) Kubernetes' CI threshold for this workload, {K8S_THRESHOLD:.0f} "
        f"pods/s | {measured} | {yes_no(complete and m.rate >= K8S_THRESHOLD)} |", ""])


def _ms(values: Sequence[float], q: float) -> str:
    return f"{percentile(values, q):.0f}"


def throughput_rows(m: Measured) -> list[tuple[str, str]]:
    creating = m.bound_by(m.last_done)
    create_s, drain_s = m.last_done - m.start, m.last_bound - m.last_done
    lat = m.latencies_ms()
    return [
        ("scheduling throughput: first create sent → last pod observed bound",
         f"**{m.rate:.0f} pods/s** ({m.bound_count} pods in {m.last_bound - m.start:.1f} s)"),
        ("create throughput alone: first create sent → last create answered",
         f"{m.create_rate:.0f} pods/s ({create_s:.1f} s, {len(m.failures)} failed)"),
        ("pods bound while creating / after the last create",
         f"{creating} in {create_s:.1f} s ({creating / max(create_s, 1e-9):.0f}/s) / "
         f"{m.bound_count - creating} in {drain_s:.1f} s "
         f"({(m.bound_count - creating) / max(drain_s, 1e-9):.0f}/s)"),
        ("latency, create sent → bound observed by the watch: p50 / p99 / max",
         f"{_ms(lat, 50)} / {_ms(lat, 99)} / {_ms(lat, 100)} ms"),
    ]


def scheduler_rows(m: Measured) -> list[tuple[str, str]]:
    s = m.sched
    if s is None:
        return []
    attempt = (f"{s.mean_attempt_ms:.2f} ms: at most {1000 / s.mean_attempt_ms:.0f} pods/s "
               "for a loop that did nothing else" if s.attempt_count else "n/a")
    lost = (f" (partial: {m.restarts} scheduler process(es) restarted during the phase, and "
            "what they counted before exiting is lost)" if m.restarts else "")
    return [
        (f"`{E2E}` (queue entry → bind stored; standbys queue pods too, so after a "
         "takeover this includes the wait while the successor stood by; the schedulers' "
         "histograms summed, interpolated in their buckets): p50 / p99",
         f"{1000 * s.quantile(0.5):.0f} / {1000 * s.quantile(0.99):.0f} ms{lost}"),
        ("scheduling attempt (filter, score, assume), mean", attempt),
        ("attempts by result", ", ".join(f"{r} {s.attempts[r]:.0f}" for r in RESULTS) + lost),
    ]


def render_results(m: Measured, args: argparse.Namespace) -> str:
    rows = throughput_rows(m) + scheduler_rows(m)
    rows += [("CPU per bound pod, all our processes together (bench, schedulers, apiservers, "
              "etcd, py-spy)", f"{m.ours_ms_per_pod:.1f} ms: {cpus()} cores could bind at most "
              f"{1000 * cpus() / m.ours_ms_per_pod:.0f} pods/s at that cost"),
             ("CPU per bound pod, the leader's event-loop thread",
              f"{m.cpu_ms_per_pod('leader loop'):.2f} ms: one whole core would allow at most "
              f"{1000 / m.cpu_ms_per_pod('leader loop'):.0f} pods/s"),
             ("API requests during the measured phase (all apiservers)", fmt_requests(m)),
             ("scheduler lease writes during the phase: count, longest gap",
              f"{len(m.lease_writes)}, {m.longest_lease_gap:.2f} s (the leader renews every "
              f"{args.retry_period:g} s while its event loop is responsive, and steps down "
              f"after {args.renew_deadline:g} s without a renewal)"),
             ("leader at the start / leadership changes during the phase",
              f"{m.leader} / **{len(m.holders)}**")]
    lines = ["### Results", "", "| measure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    if m.timed_out:
        lines += ["", f"**Timed out** after {args.timeout:.0f} s waiting for binds: "
                  f"{m.bound_count}/{m.pods} bound."]
    if m.failures:
        lines += ["", f"First create failure: `{m.failures[0]}`."]
    return "\n".join(lines) + "\n"


def fmt_requests(m: Measured) -> str:
    top = sorted(((n, k) for k, n in m.requests.items() if n > 0), reverse=True)
    return ", ".join(f"{verb} {resource or '-'} {n:.0f}" for n, (verb, resource) in top[:8])


def timeline_rows(m: Measured) -> list[tuple[float, int, int]]:
    """(seconds since the first create, pods created, pods bound), about TIMELINE_ROWS rows."""
    done = sorted(d for d in m.done if not math.isnan(d))
    bound = sorted(b for b in m.bound if not math.isnan(b))
    end = max(m.last_bound, m.last_done)
    step = max((end - m.start) / TIMELINE_ROWS, TIMELINE_MIN_STEP)
    times = [m.start + step * k for k in range(1, math.ceil((end - m.start) / step))] + [end]
    return [(w - m.start, bisect.bisect_right(done, w), bisect.bisect_right(bound, w))
            for w in times]


def render_timeline(m: Measured, args: argparse.Namespace) -> str:
    lines = ["### Creator or scheduler: which is the bottleneck", "",
             "Created = Create calls answered; bound = pods observed bound by the watch; "
             "backlog = created − bound.", "",
             "| t (s) | created | bound | backlog |", "|---|---|---|---|"]
    lines += [f"| {w:.1f} | {c} | {b} | {c - b} |" for w, c, b in timeline_rows(m)]
    lines += ["", bottleneck(m)]
    if m.holders:
        lines += ["", leadership(m, args)]
    return "\n".join(lines) + "\n"


def bottleneck(m: Measured) -> str:
    """The verdict in words, from the backlog when creation ended and the CPU of each side."""
    created = m.pods - len(m.failures)
    backlog = created - m.bound_by(m.last_done)
    if backlog <= 0.05 * created:
        verdict = ("**The creator is the bottleneck**: the scheduler kept up; the backlog when "
                   f"the last create was answered was {backlog} pods.")
    else:
        create_s, drain_s = m.last_done - m.start, m.last_bound - m.last_done
        verdict = (f"**The scheduler is the bottleneck**: pods were created at "
                   f"{m.create_rate:.0f}/s but bound at {(created - backlog) / create_s:.0f}/s "
                   f"meanwhile; {backlog} pods were still unbound when the last create was "
                   f"answered, and took {drain_s:.1f} s more "
                   f"({backlog / max(drain_s, 1e-9):.0f}/s with the creator gone).")
    return f"{verdict} {leader_cpu(m)}"


def leader_cpu(m: Measured) -> str:
    """How busy the leader's loop was, and whether it was waiting for a CPU."""
    notes = []
    for phase, used in (("While creating", m.cpu_create), ("after", m.cpu_drain)):
        ours = sum(v for g, v in used.items() if g not in NOT_OURS)
        notes.append(f"{phase}, the leader's event-loop thread ran "
                     f"{used['leader loop']:.2f} of a core and waited for a CPU "
                     f"{used['leader loop waiting']:.2f} of the time; "
                     f"{saturation(ours, used['machine'])}")
    return ("; ".join(notes) + ". A loop thread that runs near 1.0 is CPU-bound itself; one "
            "that waits for a CPU much of the time is starved by the other processes.")


def leadership(m: Measured, args: argparse.Namespace) -> str:
    changes = ", ".join(f"at {w - m.start:.1f} s to {name}" for w, name in m.holders)
    return (f"**Leadership moved {len(m.holders)} time(s) during the phase** ({changes}): "
            f"the leader did not renew its lease within {args.renew_deadline:g} s (the "
            f"longest gap between lease writes was {m.longest_lease_gap:.1f} s), stepped down "
            "and exited; a standby took over once the lease had not changed for "
            f"{args.lease_duration:g} s, and the supervisor started the old one again. Nothing "
            "is bound in between.")


NOT_OURS = ("machine", "leader loop", "leader loop waiting")   # not summed with the rest
CPU_GROUPS = ("bench", "scheduler-0", "scheduler-1", "scheduler-2", "leader loop",
              "leader loop waiting", "apiserver-0", "apiserver-1", "apiserver-2", "etcd",
              "py-spy", "machine")


def render_cpu(m: Measured, background: float) -> str:
    head = " | ".join(CPU_GROUPS)
    lines = ["### CPU", "",
             "Cores busy per process (CPU seconds / wall seconds, from /proc, sampled every "
             f"{CPU_SAMPLE:g} s so that a scheduler that restarts counts with both its pids); "
             f"`{m.leader}` led at the start; `leader loop` is the main thread alone (which "
             "runs all its Python) of whichever scheduler led, `leader loop waiting` the share "
             "of the time that thread was runnable but waiting for a CPU "
             "(`/proc/PID/task/PID/schedstat`); `etcd` the "
             "3 members together, `bench` this benchmark's client process, `machine` all "
             f"{cpus()} CPUs, our processes or not (other processes kept {background:.2f} "
             "cores busy before the cluster started).", "",
             f"| phase | seconds | {head} |", "|---|---|" + "---|" * len(CPU_GROUPS)]
    for name, used, secs in (("creating", m.cpu_create, m.create_phase),
                             ("after the last create", m.cpu_drain, m.drain_phase)):
        cells = " | ".join(f"{used.get(g, 0.0):.2f}" for g in CPU_GROUPS)
        lines.append(f"| {name} | {secs:.1f} | {cells} |")
    cells = " | ".join("" if g in ("machine", "leader loop waiting")
                       else f"{m.cpu_ms_per_pod(g):.2f}" for g in CPU_GROUPS)
    lines.append(f"| CPU ms per bound pod, whole phase | | {cells} |")
    return "\n".join(lines) + "\n"


def render_profiles(m: Measured) -> str:
    lines = ["### Where the time goes (py-spy)", "",
             f"`py-spy record --rate {PROFILE_RATE} --nonblocking --gil --function` on the "
             "process, from just before the first measured create to the last bind (or "
             "until the process exited). Only threads holding the GIL are sampled, so waits "
             "do not count, but a thread that holds the GIL while the OS has it waiting for "
             "a CPU does. Python frames only: time in C (protobuf's upb, gRPC's core) is "
             "charged to the Python function that called it. Self = samples with the "
             "function on top of the stack; total = samples with it anywhere on the stack "
             "(the project's functions only)."]
    for prof in m.profiles:
        lines += ["", *profile_lines(prof)]
    lines += [f"\nNo profile of {e}." for e in m.profile_errors]
    return "\n".join(lines) + "\n"


def profile_lines(prof: Profile, top: int = 12) -> list[str]:
    files = ", ".join(f"{f} {prof.share(n):.0f}%" for f, n in prof.by_file.most_common(8))
    lines = [f"#### {prof.label}", "",
             f"{prof.samples} samples over {prof.seconds:.1f} s: a thread held the GIL "
             f"{100 * prof.busy:.0f}% of the time. Self time by file: {files}.", "",
             "| self % | function | | total % | project function |", "|---|---|---|---|---|"]
    own, total = prof.own.most_common(top), prof.total.most_common(top)
    for i in range(max(len(own), len(total))):
        left = f"{prof.share(own[i][1]):.1f} | `{own[i][0]}`" if i < len(own) else " | "
        right = f"{prof.share(total[i][1]):.1f} | `{total[i][0]}`" if i < len(total) else " | "
        lines.append(f"| {left} | | {right} |")
    return lines


# ---------------------------------------------------------------- main

def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.scheduler",
                                description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=5000, help="Ready nodes")
    p.add_argument("--init-pods", type=int, default=1000, help="pods scheduled before measuring")
    p.add_argument("--pods", type=int, default=10000, help="measured pods")
    p.add_argument("--concurrency", type=int, default=32, help="concurrent Create calls")
    p.add_argument("--percentage-of-nodes-to-score", type=int, default=0,
                   help="passed to the schedulers (0: adaptive, their default)")
    add_lease_flags(p)
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds to wait for a phase's pods to be bound")
    p.add_argument("--no-profile", action="store_true", help="do not run py-spy")
    p.add_argument("--doc", type=Path, default=DOC, help="markdown file to write the report to")
    p.add_argument("--no-doc", action="store_true", help="only print the report")
    p.add_argument("--keep-workdir", action="store_true",
                   help="keep the cluster's workdir (logs, profiles) after the run")
    args = p.parse_args(argv)
    for name in ("nodes", "pods", "concurrency"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    if args.init_pods < 0 or args.timeout <= 0:
        p.error("--init-pods must be at least 0 and --timeout positive")
    check_lease_flags(p, args)
    return args


def background_load(seconds: float = BACKGROUND_SECONDS) -> float:
    """Cores the machine keeps busy before we start anything (other users' processes)."""
    before = machine_cpu_seconds()
    time.sleep(seconds)
    return (machine_cpu_seconds() - before) / seconds


async def run(cluster: LocalCluster, report: Report, workdir: Path) -> None:
    bench = Bench(cluster, report.args, workdir)
    try:
        await bench.setup()
        report.nodes_seconds, report.init_seconds = bench.nodes_seconds, bench.init_seconds
        report.measured = await bench.measure()
    finally:
        await bench.close()


def run_benchmark(name: str, argv: Sequence[str] | None,
                  parse_args: Callable[[list[str]], argparse.Namespace],
                  new_report: Callable[..., Any], cluster_args: Callable[[Any], dict],
                  run: Callable[[LocalCluster, Any], Awaitable[None]],
                  render: Callable[[Any], str]) -> int:
    """The main of a cluster benchmark: measure on a fresh cluster, print, write the doc."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, interrupt)
    report = new_report(datetime.datetime.now(datetime.UTC),
                        shlex.join(["python", "-m", f"bench.{name}", *argv]), args)
    try:
        with timed(report):
            report.background = background_load()
            log(f"background load: {report.background:.2f} cores")
            with local_cluster(args.keep_workdir, **cluster_args(args)) as cluster:
                log(f"cluster up: apiservers {cluster.servers}")
                asyncio.run(run(cluster, report))
    except KeyboardInterrupt:
        log("interrupted; nothing written")
        return 130
    text = render(report)
    print(text)
    if not args.no_doc:
        write_section(args.doc, name, text)
        log(f"wrote {args.doc}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_benchmark(
        "scheduler", argv, parse_args, Report,
        lambda args: {"schedulers": 3, "scheduler_args": scheduler_args(args)},
        lambda cluster, report: run(cluster, report, cluster.workdir), render)


if __name__ == "__main__":
    sys.exit(main())
