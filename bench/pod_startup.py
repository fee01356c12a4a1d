"""Pod startup latency on a fresh local cluster with real kubelets and Docker containers.

`python -m bench.pod_startup` starts 1 etcd member, 1 apiserver, 1 scheduler, 1
controller-manager and 2 kubelets (`LocalCluster`: each kubelet runs its pods as real
Docker containers, labelled as the cluster's), waits until both Nodes are Ready (and have
their podCIDR), then:

1. opens a watch on the pods of a fresh namespace and, once it is established, creates
   --pods individual pods (default 50; not a Deployment, so that each pod's own create
   call starts its clock) of `minik8s/echo:latest` (imagePullPolicy IfNotPresent, a
   readinessProbe httpGet :8080/ every second) in one burst of concurrent Create calls
   (asyncio.gather, at most --concurrency at a time);
2. times, per pod, from the start of its Create call to the arrival (time.monotonic())
   of the first watch event showing it Running (phase) and Ready (condition), and the
   wall time until all are Running;
3. deletes all of them at once and times each Delete call's start → its DELETED event.

p50/p99/max of each go into docs/BENCHMARKS.md between the `bench:pod_startup` markers,
with a split of create → Running into scheduling, the kubelet's work up to Docker's
StartedAt, and the status report. Everything is bounded by --timeout (a clear failure,
exit status 1, nothing written); the cluster is always stopped at the end, also on error
or Ctrl-C, and its stop removes the containers it labelled. All traffic is to 127.0.0.1.
"""
from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import datetime
import math
import os
import sys
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import docker

from bench.api import machine, percentile, render_cpu_table, versions, yes_no
from bench.common import DOC, log
from bench.controllers import monotonic_of
from bench.scheduler import ClusterCpu, busy, follow, run_benchmark
from kubelet import labels
from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient, WatchEvent
from minik8s.localcluster import LocalCluster
from minik8s.podnet import CLUSTER_LABEL
from tests.integration.kubelet_helpers import ECHO, echo_pod

TARGET_P99 = 1.5      # seconds, create → Running, the target here
K8S_SLO_P99 = 5.0     # seconds, Kubernetes' pod startup SLO (p99)
NAMESPACE = "pod-startup"
NODES = 2
TIMELINE_ROWS = 10


class StartupTimeout(Exception):
    """The run did not reach a stage within --timeout."""


# ---------------------------------------------------------------- objects

def startup_pod(name: str) -> t.Pod:
    """The echo image's web server, Ready once it answers GET :8080/."""
    probe = t.Probe(http_get=t.HTTPGetAction(path="/", port=t.IntOrString(int_val=8080)),
                    period_seconds=1)
    return echo_pod(name, NAMESPACE, readiness_probe=probe)


def condition_true(conditions: Sequence[t.Condition], kind: str) -> bool:
    return any(c.type == kind and c.status == "True" for c in conditions)


# ---------------------------------------------------------------- what the watch sees

@dataclass
class PodWatch:
    """Per pod (time.monotonic() at the event's arrival): first seen bound, Running, Ready,
    and its DELETED event; the app container's StartedAt (Docker's wall clock, on the same
    clock) and the node it runs on."""

    bound: dict[str, float] = field(default_factory=dict)
    running: dict[str, float] = field(default_factory=dict)
    ready: dict[str, float] = field(default_factory=dict)
    gone: dict[str, float] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)
    node: dict[str, str] = field(default_factory=dict)
    established: asyncio.Event = field(default_factory=asyncio.Event)
    failures: list[str] = field(default_factory=list)

    def on_pod(self, ev: WatchEvent) -> None:
        if ev.type == "BOOKMARK":
            self.established.set()
            return
        now, pod = time.monotonic(), ev.object
        name = pod.metadata.name
        if ev.type == "DELETED":
            self.gone.setdefault(name, now)
            return
        if pod.spec.node_name and name not in self.bound:
            self.bound[name] = now
            self.node[name] = pod.spec.node_name
        if pod.status.phase == "Running" and name not in self.running:
            self.running[name] = now
        if condition_true(pod.status.conditions, "Ready") and name not in self.ready:
            self.ready[name] = now
        for cs in pod.status.container_statuses:
            if name not in self.started and cs.state.running.HasField("started_at"):
                self.started[name] = monotonic_of(cs.state.running.started_at)

    async def until(self, times: dict[str, float], count: int, deadline: float) -> bool:
        while len(times) < count:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.005)
        return True


# ---------------------------------------------------------------- results

@dataclass
class EngineTimes:
    """Per pod, Docker's Created and StartedAt of its sandbox and of its app container
    (inspected once all pods are Ready), on time.monotonic()."""

    sandbox_created: dict[str, float] = field(default_factory=dict)
    sandbox_started: dict[str, float] = field(default_factory=dict)
    app_created: dict[str, float] = field(default_factory=dict)
    node: dict[str, str] = field(default_factory=dict)

    @classmethod
    def inspect(cls, cluster: str) -> EngineTimes:
        times = cls()
        engine = docker.APIClient(timeout=60)
        try:
            for summary in engine.containers(all=True,
                                             filters={"label": f"{CLUSTER_LABEL}={cluster}"}):
                data = engine.inspect_container(summary["Id"])
                lbls = data["Config"].get("Labels") or {}
                pod, created = lbls.get(labels.POD_NAME, ""), wall(data["Created"])
                if lbls.get(labels.CONTAINER_NAME) == labels.SANDBOX:
                    times.sandbox_created[pod] = created
                    times.sandbox_started[pod] = wall(data["State"]["StartedAt"])
                    times.node[pod] = lbls.get(labels.NODE, "")
                else:
                    times.app_created[pod] = created
        finally:
            engine.close()
        return times

    def most_at_once(self, node: str) -> int:
        """The most sandboxes of node between Created and StartedAt at the same moment."""
        edges = sorted((t, step) for pod, on in self.node.items() if on == node
                       for t, step in ((self.sandbox_created[pod], 1),
                                       (self.sandbox_started[pod], -1)))
        most = current = 0
        for _, step in edges:
            current += step
            most = max(most, current)
        return most


def wall(stamp: str) -> float:
    """One of Docker's RFC 3339 times (this machine's wall clock) on time.monotonic()."""
    return (datetime.datetime.fromisoformat(stamp).timestamp()
            - (time.time() - time.monotonic()))


@dataclass
class Measured:
    pods: int
    created_at: dict[str, float] = field(default_factory=dict)    # Create call started
    create_done: dict[str, float] = field(default_factory=dict)   # Create call answered
    deleted_at: dict[str, float] = field(default_factory=dict)    # Delete call started
    watch: PodWatch = field(default_factory=PodWatch)
    engine: EngineTimes | None = None
    cpu_startup: dict[str, float] = field(default_factory=dict)   # cores busy per group
    cpu_delete: dict[str, float] = field(default_factory=dict)
    startup_seconds: float = 0.0
    delete_seconds: float = 0.0

    def since(self, start: dict[str, float], end: dict[str, float]) -> list[float]:
        """Seconds from start[pod] to end[pod], for the pods in both."""
        return [end[n] - start[n] for n in start if n in end]

    @property
    def to_running(self) -> list[float]:
        return self.since(self.created_at, self.watch.running)

    @property
    def to_ready(self) -> list[float]:
        return self.since(self.created_at, self.watch.ready)

    @property
    def to_gone(self) -> list[float]:
        return self.since(self.deleted_at, self.watch.gone)

    @property
    def first_create(self) -> float:
        return min(self.created_at.values(), default=math.nan)

    def all_within(self, times: dict[str, float]) -> float:
        """First Create call started → the last pod's time in times (NaN unless all)."""
        if len(times) < self.pods:
            return math.nan
        return max(times.values()) - self.first_create

    def p99_running(self) -> float:
        return percentile(self.to_running, 99) if len(self.watch.running) == self.pods \
            else math.nan


@dataclass
class Report:
    started: datetime.datetime
    command: str
    args: argparse.Namespace
    background: float = 0.0     # cores busy on the machine before the cluster started
    nodes_seconds: float = 0.0  # cluster up → both nodes Ready with a podCIDR
    docker: str = ""
    measured: Measured | None = None
    duration: float = 0.0


# ---------------------------------------------------------------- the run

class Bench:
    def __init__(self, cluster: LocalCluster, args: argparse.Namespace) -> None:
        self.cluster, self.args = cluster, args
        self.client = ApiClient(cluster.servers)
        self.watch_client = ApiClient(cluster.servers)
        self.cpu = ClusterCpu(cluster, lambda: 0, extra=engine_pids())
        self.tasks: list[asyncio.Task] = []
        self.deadline = math.inf

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for c in (self.client, self.watch_client):
            await c.close()

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def fail(self, what: str) -> StartupTimeout:
        return StartupTimeout(f"{what} within --timeout {self.args.timeout:g} s (rerun with "
                              "--keep-workdir and read the kubelets' logs in its logs/)")

    async def bounded(self, work: Awaitable[object], what: str) -> None:
        try:
            await asyncio.wait_for(work, max(self.left(), 0.01))
        except TimeoutError:
            raise self.fail(what) from None

    async def nodes_ready(self) -> None:
        """Both Nodes registered, Ready and with a podCIDR (else a pod waits for its network)."""
        while True:
            nodes, _ = await self.client.list("Node")
            ok = [n.metadata.name for n in nodes
                  if condition_true(n.status.conditions, "Ready") and n.spec.pod_cidr]
            if len(ok) >= NODES:
                return
            if self.left() <= 0:
                raise self.fail(f"only {len(ok)}/{NODES} nodes Ready with a podCIDR ({ok})")
            await asyncio.sleep(0.1)

    async def create_all(self, m: Measured) -> None:
        limit = asyncio.Semaphore(self.args.concurrency)

        async def one(name: str) -> None:
            async with limit:
                m.created_at[name] = time.monotonic()
                await self.client.create(startup_pod(name))
                m.create_done[name] = time.monotonic()
        await asyncio.gather(*(one(f"echo-{i:03d}") for i in range(m.pods)))

    async def delete_all(self, m: Measured) -> None:
        async def one(name: str) -> None:
            m.deleted_at[name] = time.monotonic()
            await self.client.delete("Pod", name, NAMESPACE)
        await asyncio.gather(*(one(name) for name in m.created_at))

    async def run(self, report: Report) -> None:
        self.deadline = time.monotonic() + self.args.timeout
        began = time.monotonic()
        self.tasks.append(asyncio.create_task(self.cpu.run()))
        await self.nodes_ready()
        report.nodes_seconds = time.monotonic() - began
        log(f"both nodes Ready after {report.nodes_seconds:.1f} s")
        m = Measured(self.args.pods)
        w = m.watch
        await self.client.create(t.Namespace(metadata=t.ObjectMeta(name=NAMESPACE)))
        self.tasks.append(asyncio.create_task(
            follow(self.watch_client, "Pod", NAMESPACE, w.on_pod, w.failures)))
        await self.bounded(w.established.wait(), "the pod watch was not established")

        cpu0, t0 = self.cpu.totals(), time.monotonic()
        log(f"creating {m.pods} pods, {self.args.concurrency} at a time")
        await self.bounded(self.create_all(m), "the Create calls did not all return")
        if not await w.until(w.running, m.pods, self.deadline):
            raise self.fail(f"only {len(w.running)}/{m.pods} pods Running "
                            f"({len(w.bound)} bound)")
        log(f"all {m.pods} Running after {m.all_within(w.running):.2f} s")
        if not await w.until(w.ready, m.pods, self.deadline):
            raise self.fail(f"only {len(w.ready)}/{m.pods} pods Ready")
        cpu1, t1 = self.cpu.totals(), time.monotonic()
        m.startup_seconds, m.cpu_startup = t1 - t0, busy(cpu0, cpu1, t1 - t0)
        try:
            m.engine = await asyncio.to_thread(EngineTimes.inspect, self.cluster.name)
        except docker.errors.DockerException as exc:
            log(f"inspecting the containers: {exc}")
        t1 = time.monotonic()

        log(f"all Ready after {m.all_within(w.ready):.2f} s; deleting them")
        await self.bounded(self.delete_all(m), "the Delete calls did not all return")
        if not await w.until(w.gone, m.pods, self.deadline):
            raise self.fail(f"only {len(w.gone)}/{m.pods} pods gone after their Delete")
        cpu2, t2 = self.cpu.totals(), time.monotonic()
        m.delete_seconds, m.cpu_delete = t2 - t1, busy(cpu1, cpu2, t2 - t1)
        report.measured = m


def engine_pids() -> dict[str, list[int]]:
    """The container engine's daemons (dockerd, containerd), for their CPU."""
    found: dict[str, list[int]] = {"dockerd + containerd": []}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/comm") as f:
            if f.read().strip() in ("dockerd", "containerd"):
                found["dockerd + containerd"].append(int(pid))
    return found


def engine_version() -> str:
    with contextlib.suppress(docker.errors.DockerException):
        engine = docker.from_env()
        try:
            info = engine.info()
            return (f"Docker {engine.version().get('Version', '?')} "
                    f"({info.get('Driver', '?')} storage, {info.get('CgroupDriver', '?')} "
                    f"cgroups)")
        finally:
            engine.close()
    return "Docker ?"


# ---------------------------------------------------------------- report

def render(rep: Report) -> str:
    parts = [render_header(rep)]
    m = rep.measured
    if m is not None:
        parts += [render_targets(m), render_results(m), render_split(m), render_timeline(m),
                  render_cpu(m, rep.background)]
    return "\n".join(parts)


def render_header(rep: Report) -> str:
    a = rep.args
    return f"""## Pod startup: create → Running → Ready, and delete, with real containers

* Date: {rep.started:%Y-%m-%d %H:%M} UTC; whole run {rep.duration:.0f} s (cluster start
  and stop included; the nodes were Ready with a podCIDR {rep.nodes_seconds:.1f} s after
  the cluster's processes answered).
* Machine: {machine()}; {versions()}; {rep.docker}. Before the cluster started, other
  processes kept {rep.background:.2f} of its cores busy.
* Command: `{rep.command}` (from the repo root; `make bench` runs it with the defaults).
* Cluster: 1 etcd member, 1 apiserver, 1 scheduler, 1 controller-manager and {NODES}
  kubelets as local processes (`LocalCluster`), fresh in a temporary directory; the
  kubelets run pods as Docker containers (a `minik8s/pause:3.9` sandbox plus the app
  container) on one engine. Everything, the benchmark client and Docker included, shares
  the machine's CPUs.
* Workload: {a.pods} individual pods of `{ECHO}` (busybox httpd on :8080;
  imagePullPolicy IfNotPresent, the image is local; readinessProbe httpGet :8080/ with
  periodSeconds 1; terminationGracePeriodSeconds 2), created in one burst of concurrent
  Create calls, at most {a.concurrency} at a time, into a fresh namespace, once both nodes
  were Ready. A watch on that namespace's pods (opened before the first create) timestamps
  each pod's first event with phase Running and with the Ready condition True, on arrival
  (`time.monotonic()`), against the start of that pod's own Create call. Then all pods
  are deleted at once (concurrent Delete calls, default grace) and each one's DELETED
  event is timed against the start of its Delete call.
"""


def _secs(values: Sequence[float]) -> str:
    return " / ".join(f"{percentile(values, q):.2f}" for q in (50, 99, 100)) + " s"


def render_targets(m: Measured) -> str:
    p99 = m.p99_running()
    measured = (f"p99 {p99:.2f} s ({len(m.watch.running)}/{m.pods} Running)")
    return "\n".join([
        "### Targets", "", "| target | measured | met |", "|---|---|---|",
        f"| create → Running p99 ≤ {TARGET_P99:g} s | {measured} | "
        f"{yes_no(p99 <= TARGET_P99)} |",
        f"| (reference) Kubernetes' pod startup SLO: p99 ≤ {K8S_SLO_P99:g} s (stateless "
        f"pods, image already present) | {measured} | {yes_no(p99 <= K8S_SLO_P99)} |", ""])


def render_results(m: Measured) -> str:
    w = m.watch
    create_calls = m.since(m.created_at, m.create_done)
    rows = [
        ("create → Running (phase Running first seen): p50 / p99 / max",
         f"**{_secs(m.to_running)}**"),
        ("create → Ready (Ready condition True first seen): p50 / p99 / max",
         _secs(m.to_ready)),
        ("first Create sent → all pods Running / all Ready",
         f"**{m.all_within(w.running):.2f} s** / {m.all_within(w.ready):.2f} s"),
        ("Create calls: first sent → last answered; each call p50 / p99 / max",
         f"{max(m.create_done.values()) - m.first_create:.2f} s; {_secs(create_calls)}"),
        ("delete → gone (DELETED seen): p50 / p99 / max", f"**{_secs(m.to_gone)}**"),
        ("first Delete sent → all gone",
         f"{max(w.gone.values()) - min(m.deleted_at.values()):.2f} s"),
        ("pods per node", ", ".join(f"{n} {list(w.node.values()).count(n)}"
                                    for n in sorted(set(w.node.values())))),
    ]
    lines = ["### Results", "", "| measure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    if w.failures:
        lines += ["", f"{len(w.failures)} watch failures; first: `{w.failures[0]}`."]
    return "\n".join(lines) + "\n"


def render_split(m: Measured) -> str:
    w, e = m.watch, m.engine
    kubelet: list[tuple[str, list[float]]] = [
        ("bound seen → app container's StartedAt (kubelet: sandbox, then app container, "
         "created and started in Docker)", m.since(w.bound, w.started))]
    if e is not None:
        kubelet = [
            ("bound seen → sandbox Created (waiting in the kubelet: its queue and workers, "
             "and its per-node lock around a sandbox's IP, create and start)",
             m.since(w.bound, e.sandbox_created)),
            ("sandbox (pause) Created → StartedAt (Docker: create, network, start)",
             m.since(e.sandbox_created, e.sandbox_started)),
            ("sandbox StartedAt → app container Created (the kubelet's next sync of the pod)",
             m.since(e.sandbox_started, e.app_created)),
            ("app container Created → StartedAt (Docker: create, start)",
             m.since(e.app_created, w.started))]
    rows = [("create sent → bound seen (apiserver, scheduler, bind)",
             m.since(m.created_at, w.bound)), *kubelet,
            ("app StartedAt → Running seen (the kubelet's status update)",
             m.since(w.started, w.running)),
            ("Running seen → Ready seen (the readiness probe, period 1 s, and its status "
             "update)", m.since(w.running, w.ready))]
    per_node = [(f"create → Running on {node}",
                 [w.running[n] - m.created_at[n] for n, on in w.node.items()
                  if on == node and n in w.running]) for node in sorted(set(w.node.values()))]
    lines = ["### Where the time goes", "",
             "Per pod, the steps between the watch's events (Docker's StartedAt is the wall "
             "clock of this machine, put on the same monotonic clock): p50 / p99 / max.", "",
             "| step | p50 / p99 / max |", "|---|---|"]
    lines += [f"| {k} | {_secs(v)} |" for k, v in rows + per_node]
    if e is not None:
        nodes = sorted(set(e.node.values()))
        lines += ["", "Most sandboxes between Docker's Created and StartedAt at the same "
                  "moment, per node: " + ", ".join(f"{n} {e.most_at_once(n)}" for n in nodes)
                  + " (1: the node created and started its sandboxes one at a time)."]
    return "\n".join(lines) + "\n"


def timeline_rows(m: Measured) -> list[tuple[float, int, int, int]]:
    """(seconds since the first create, pods bound, StartedAt passed, Running)."""
    w = m.watch
    series = [sorted(w.bound.values()), sorted(w.started.values()), sorted(w.running.values())]
    end = max(w.running.values(), default=math.nan)
    if math.isnan(end):
        return []
    step = (end - m.first_create) / TIMELINE_ROWS
    times = [m.first_create + step * k for k in range(1, TIMELINE_ROWS + 1)]
    return [(x - m.first_create, *(bisect.bisect_right(s, x) for s in series))  # type: ignore
            for x in times]


def render_timeline(m: Measured) -> str:
    lines = ["#### Timeline", "",
             "Pods bound (watch), with their app container started (Docker's StartedAt) "
             "and seen Running, since the first Create was sent:", "",
             "| t (s) | bound | container started | Running |", "|---|---|---|---|"]
    lines += [f"| {x:.2f} | {b} | {s} | {r} |" for x, b, s, r in timeline_rows(m)]
    return "\n".join(lines) + "\n"


CPU_GROUPS = ("bench", "apiserver-0", "etcd", "scheduler-0", "controller-manager-0",
              "node-0", "node-1", "dockerd + containerd")


def render_cpu(m: Measured, background: float) -> str:
    return render_cpu_table(
        "Cores busy per process (CPU seconds / wall seconds, from /proc, sampled every "
        "0.5 s); `node-N` are the kubelets, `other` the rest of the machine (the "
        "containerd shims, the containers themselves, and whatever else runs).",
        CPU_GROUPS, [("create → all Ready", m.startup_seconds, m.cpu_startup),
                     ("delete → all gone", m.delete_seconds, m.cpu_delete)], background)


# ---------------------------------------------------------------- main

def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.pod_startup",
                                description=__doc__.split("\n")[0])
    p.add_argument("--pods", type=int, default=50, help="pods created in the burst")
    p.add_argument("--concurrency", type=int, default=10, help="concurrent Create calls")
    p.add_argument("--timeout", type=float, default=180.0,
                   help="seconds from the cluster being up to every pod deleted")
    p.add_argument("--doc", type=Path, default=DOC, help="markdown file to write the report to")
    p.add_argument("--no-doc", action="store_true", help="only print the report")
    p.add_argument("--keep-workdir", action="store_true",
                   help="keep the cluster's workdir (the kubelets' logs) after the run")
    args = p.parse_args(argv)
    if args.pods < 1 or args.concurrency < 1 or args.timeout <= 0:
        p.error("--pods and --concurrency must be at least 1, --timeout positive")
    return args


async def run(cluster: LocalCluster, report: Report) -> None:
    report.docker = engine_version()
    bench = Bench(cluster, report.args)
    try:
        await bench.run(report)
    finally:
        await bench.close()


def main(argv: Sequence[str] | None = None) -> int:
    cluster_args = {"masters": 1, "schedulers": 1, "controller_managers": 1, "nodes": NODES}
    try:
        return run_benchmark("pod_startup", argv, parse_args, Report,
                             lambda _args: cluster_args, run, render)
    except StartupTimeout as exc:
        log(f"FAILED: {exc}; nothing written")
        return 1


if __name__ == "__main__":
    sys.exit(main())
