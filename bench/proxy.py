"""The proxy's data plane (iptables mode) on a fresh local cluster with real kubelets.

`python -m bench.proxy` starts 1 etcd member, 1 apiserver, 1 scheduler, 1
controller-manager, 2 kubelets (pods as Docker containers) and the proxy (`LocalCluster`,
iptables mode, its default sync periods), waits until both Nodes are Ready, then:

1. **Propagation.** A Deployment `web` of `minik8s/echo:latest` (--initial-replicas, default
   1; a readinessProbe every second) behind a ClusterIP Service. --scale-ups times (default
   20) it is scaled up by one pod. A watch on the pods timestamps the new pod's Ready
   condition; from that moment --pollers threads (default 4) send GET / to the ClusterIP
   (a new connection each, at most one per --poll-interval per thread) until one answer
   names the new pod (each echo pod answers with its name; other answers do not count).
   Per round: Ready seen → Endpoints seen (a watch on Endpoints), → the end of the proxy's
   sync that programmed it (its /metrics, scraped every 20 ms), → the first answer from it.
2. **Added latency.** --requests (default 500) sequential GETs through the ClusterIP,
   interleaved with as many straight to the pod IPs (round robin over the same pods), each
   on a new connection (HTTP/1.0, Connection: close): p50/p99 and their ratio.
3. **Sync at scale.** --services Services without a selector (default 1000) and an
   Endpoints object for each, written here, of --endpoints addresses (default 10) taken
   from the top of the cluster CIDR, outside every node's podCIDR: nobody uses them and no
   traffic is sent to them. The proxy's /metrics (`proxy_rules_total`, the
   `proxy_sync_proxy_rules_duration_seconds` histogram, scraped every 20 ms) give the
   duration of the sync that first covered them all (proxy_rules_total at the count that
   `proxy.rules.render` gives for the same model). Then one address of one Endpoints is
   changed, to time a steady-state sync (and the proxy's CPU over it); the parts of a sync
   are timed in-process on the same model (iptables-save of the host's tables, read only;
   `render()`, pure; the check for stale chains; iptables-restore of the same input in a
   throwaway network namespace), and the ClusterIP latency is measured again with those
   rules ahead of the web service's. Last, every object is deleted and the proxy's rules
   go back down.

The report goes into docs/BENCHMARKS.md between the `bench:proxy` markers. Everything is
bounded by --timeout (a clear failure, exit status 1, nothing written); the cluster is
always stopped, also on error or Ctrl-C: its stop runs `minik8s proxy --cleanup`, and the
report says whether any rule with the cluster's chain prefix (or its sink device) was left.
Traffic goes only to the cluster's ClusterIP and pod IPs, each checked to route locally
(tests/integration/net_helpers.assert_stays_local), and to 127.0.0.1.
"""
from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import datetime
import ipaddress
import math
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.api import (
    cpu_seconds,
    machine,
    metric,
    percentile,
    render_cpu_table,
    saturation,
    scrape,
    versions,
    yes_no,
)
from bench.common import DOC, log
from bench.pod_startup import condition_true, engine_pids, engine_version
from bench.scheduler import ClusterCpu, busy, follow, metrics_url, run_benchmark
from minik8s import errors
from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient, WatchEvent
from minik8s.localcluster import LocalCluster
from proxy import iptables
from proxy.model import ServicePort, service_ports
from proxy.rules import Chains, render
from proxy.sink import Sink
from tests.integration.kubelet_helpers import ECHO, echo_deployment, web_service
from tests.integration.net_helpers import assert_stays_local, http_get

TARGET_P99 = 1.0            # seconds, Ready seen → first answer through the ClusterIP
K8S_SLO_P99 = 30.0          # seconds, Kubernetes' in-cluster network programming latency SLO
NODES = 2
WEB_NS = "proxy-web"        # sorts after SCALE_NS: the web service's rule comes last
SCALE_NS = "proxy-scale"
SERVICE = "web"
SERVICE_PORT, POD_PORT = 80, 8080
HIT_TIMEOUT = 10.0          # seconds from Ready seen to the first answer, per round
ROUND_TIMEOUT = 90.0        # seconds from the scale-up to the new pod Ready
METRICS_PERIOD = 0.02       # seconds between two scrapes of the proxy's /metrics
STALE_SAMPLE = 300          # chains the in-process stale check is timed on
# Loads an iptables-restore input twice in the (new, empty, private) network namespace it
# runs in, as the proxy's first sync and a later one do: prints the second load's seconds.
RESTORE_PROBE = """
import resource, subprocess, sys, time
text = open(sys.argv[1]).read()
load = lambda: subprocess.run(["iptables-restore", "--noflush"], input=text, text=True,
                              capture_output=True, check=True, timeout=120)
load()
cpu = lambda: sum(getattr(resource.getrusage(resource.RUSAGE_CHILDREN), f)
                  for f in ("ru_utime", "ru_stime"))
began, used = time.perf_counter(), cpu()
load()
print(time.perf_counter() - began, cpu() - used)
"""
REQUEST = b"GET / HTTP/1.0\r\nHost: bench\r\nConnection: close\r\n\r\n"


class ProxyBenchError(Exception):
    """The run did not reach a stage within --timeout (or the cluster misbehaved)."""


# ---------------------------------------------------------------- HTTP

def fetch(ip: str, port: int, timeout: float = 1.0) -> tuple[float, float, str | None]:
    """One GET / on a new connection: (seconds to connect, seconds in all, body or None).

    A raw socket, so that the client's own cost stays small and the same on both paths;
    the address must have been checked with assert_stays_local first."""
    start = time.perf_counter()
    connected = math.nan
    data = bytearray()
    try:
        with socket.create_connection((ip, port), timeout=timeout) as s:
            connected = time.perf_counter() - start
            s.sendall(REQUEST)
            while chunk := s.recv(4096):
                data += chunk
    except OSError:
        return connected, time.perf_counter() - start, None
    total = time.perf_counter() - start
    head, sep, body = bytes(data).partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split()
    if not sep or len(status) < 2 or status[1] != b"200":
        return connected, total, None
    return connected, total, body.decode(errors="replace").strip()


class Poller:
    """Threads sending GET / to one address back to back (each at most one per interval)
    while active; the first answer naming each pod, as (sent, answered) on monotonic."""

    def __init__(self, ip: str, port: int, threads: int, interval: float) -> None:
        self.ip, self.port, self.interval = ip, port, interval
        self.active, self.stopping = threading.Event(), threading.Event()
        self.lock = threading.Lock()
        self.first: dict[str, tuple[float, float]] = {}
        self.sent = self.failed = self.sent_at_resume = 0
        self.active_seconds = 0.0
        self._since = 0.0
        self.threads = [threading.Thread(target=self._loop, name=f"poller-{i}", daemon=True)
                        for i in range(threads)]

    def start(self) -> None:
        for th in self.threads:
            th.start()

    def resume(self) -> None:
        if not self.active.is_set():
            self._since = time.monotonic()
            self.sent_at_resume = self.sent
            self.active.set()

    def pause(self) -> None:
        if self.active.is_set():
            self.active.clear()
            self.active_seconds += time.monotonic() - self._since

    def stop(self) -> None:
        self.pause()
        self.stopping.set()
        for th in self.threads:
            if th.is_alive():
                th.join(timeout=3)

    def _loop(self) -> None:
        while not self.stopping.is_set():
            if not self.active.wait(0.1):
                continue
            sent = time.monotonic()
            _, _, answer = fetch(self.ip, self.port)
            answered = time.monotonic()
            with self.lock:
                self.sent += 1
                if answer is None:
                    self.failed += 1
                else:
                    self.first.setdefault(answer, (sent, answered))
            rest = self.interval - (answered - sent)
            if rest > 0:
                time.sleep(rest)


# ---------------------------------------------------------------- watches

@dataclass
class PodWatch:
    """Per pod of the web Deployment: first seen, Ready first seen (monotonic at the
    event's arrival), its IP and node. on_ready is called at once for each newly Ready pod."""

    created: dict[str, float] = field(default_factory=dict)
    ready: dict[str, float] = field(default_factory=dict)
    ip: dict[str, str] = field(default_factory=dict)
    node: dict[str, str] = field(default_factory=dict)
    on_ready: Callable[[str], None] | None = None
    established: asyncio.Event = field(default_factory=asyncio.Event)
    failures: list[str] = field(default_factory=list)

    def on_pod(self, ev: WatchEvent) -> None:
        if ev.type == "BOOKMARK":
            self.established.set()
            return
        if ev.type == "DELETED":
            return
        now, pod = time.monotonic(), ev.object
        name = pod.metadata.name
        self.created.setdefault(name, now)
        if pod.status.pod_ip:
            self.ip[name] = pod.status.pod_ip
            self.node[name] = pod.spec.node_name
        if condition_true(pod.status.conditions, "Ready") and name not in self.ready \
                and pod.status.pod_ip:
            self.ready[name] = now
            if self.on_ready is not None:
                self.on_ready(name)


@dataclass
class EndpointsWatch:
    """When each address first showed in the web Service's Endpoints (monotonic)."""

    first: dict[str, float] = field(default_factory=dict)
    established: asyncio.Event = field(default_factory=asyncio.Event)
    failures: list[str] = field(default_factory=list)

    def on_endpoints(self, ev: WatchEvent) -> None:
        if ev.type == "BOOKMARK":
            self.established.set()
            return
        if ev.type == "DELETED" or ev.object.metadata.name != SERVICE:
            return
        now = time.monotonic()
        for subset in ev.object.subsets:
            for address in subset.addresses:
                self.first.setdefault(address.ip, now)


# ---------------------------------------------------------------- the proxy's metrics

@dataclass(frozen=True)
class Sample:
    at: float          # monotonic when the scrape returned
    syncs: float       # histogram count
    seconds: float     # histogram sum
    rules: float
    last_sync: float   # the last sync's end, on monotonic


@dataclass(frozen=True)
class Sync:
    """One or more syncs that ended between two scrapes."""

    end: float         # the last one's end (monotonic)
    count: int
    seconds: float     # their mean duration (exact when count is 1)
    rules: int         # proxy_rules_total after them

    @property
    def start(self) -> float:
        return self.end - self.seconds


def mono_of_wall(stamp: float) -> float:
    return stamp - (time.time() - time.monotonic())


class ProxyMetrics:
    """The proxy's /metrics, scraped every METRICS_PERIOD while run() runs."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: list[Sample] = []
        self.times: list[float] = []   # the samples' .at, for bisect
        self.errors = 0

    def read(self) -> Sample | None:
        try:
            text = scrape(self.url)
        except OSError:
            self.errors += 1
            return None
        name = "proxy_sync_proxy_rules_duration_seconds"
        return Sample(time.monotonic(), metric(text, f"{name}_count"), metric(text, f"{name}_sum"),
                      metric(text, "proxy_rules_total"),
                      mono_of_wall(metric(text, "proxy_sync_proxy_rules_last_timestamp_seconds")))

    async def run(self) -> None:
        while True:
            sample = await asyncio.to_thread(self.read)
            if sample is not None:
                self.samples.append(sample)
                self.times.append(sample.at)
            await asyncio.sleep(METRICS_PERIOD)

    def syncs(self, since: float = -math.inf) -> list[Sync]:
        """The syncs seen ending after since (a scrape's time), from histogram deltas."""
        out = []
        first = max(bisect.bisect_right(self.times, since) - 1, 0)
        for prev, cur in zip(self.samples[first:], self.samples[first + 1:], strict=False):
            n = round(cur.syncs - prev.syncs)
            if n > 0 and cur.at > since:
                out.append(Sync(cur.last_sync, n, (cur.seconds - prev.seconds) / n,
                                int(cur.rules)))
        return out

    @property
    def latest(self) -> Sample | None:
        return self.samples[-1] if self.samples else None


def proxy_children_cpu(cluster: LocalCluster) -> float:
    """CPU seconds of the proxy's finished children (iptables-save, iptables-restore)."""
    proc = cluster.procs.get("proxy")
    if proc is None or not proc.pid:
        return 0.0
    try:
        with open(f"/proc/{proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- results

@dataclass
class Round:
    pod: str
    node: str
    in_rotation: int             # Ready pods behind the service, the new one included
    scaled: float                # the Deployment's update sent
    ready: float                 # Ready first seen
    endpoints: float = math.nan  # its IP first seen in the Endpoints
    sync: Sync | None = None     # the proxy's sync that programmed it (from /metrics)
    hit_sent: float = math.nan   # the first request that reached it: sent
    hit: float = math.nan        # ... and answered
    requests: int = 0            # requests sent from Ready seen to that answer

    def since_ready(self, when: float) -> float:
        return when - self.ready

    @property
    def synced(self) -> float:
        return self.sync.end if self.sync is not None else math.nan

    @property
    def propagation(self) -> float:
        """Ready seen → first answer naming the pod (inf if none within HIT_TIMEOUT)."""
        return math.inf if math.isnan(self.hit) else self.hit - self.ready


@dataclass
class Latency:
    pods: int
    rules: int                   # proxy_rules_total while measured
    via_ip: list[float] = field(default_factory=list)       # seconds, whole request
    direct: list[float] = field(default_factory=list)
    via_ip_connect: list[float] = field(default_factory=list)
    direct_connect: list[float] = field(default_factory=list)
    failed_ip: int = 0
    failed_direct: int = 0
    answered_by: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Part:
    """Wall seconds and CPU seconds (this thread's and its finished children's)."""

    wall: float = math.nan
    cpu: float = math.nan

    def times(self, n: float) -> Part:
        return Part(self.wall * n, self.cpu * n)


@dataclass
class Scale:
    services: int
    endpoints: int
    addresses: str = ""          # the range the addresses were taken from
    expected_rules: int = 0
    restore_bytes: int = 0
    create_seconds: float = 0.0  # first create sent → last answered
    converge_seconds: float = 0.0  # first create sent → the covering sync's end
    after_last_create: float = 0.0  # last create answered → the covering sync's end
    covering: Sync | None = None
    syncs_during: list[Sync] = field(default_factory=list)
    # the parts of one sync, timed in-process on the same model
    model: Part = field(default_factory=lambda: Part())    # proxy.model.service_ports
    render: Part = field(default_factory=lambda: Part())   # proxy.rules.render
    save: Part = field(default_factory=lambda: Part())     # iptables-save -t nat, -t filter
    stale: Part = field(default_factory=lambda: Part())    # the stale-chain check, all chains
    stale_per_chain: Part = field(default_factory=lambda: Part())
    restore: Part = field(default_factory=lambda: Part())  # iptables-restore, private netns
    saved_chains: int = 0        # the proxy's chains iptables-save lists
    restore_note: str = ""
    change: Sync | None = None   # the steady-state sync after one address changed
    change_seconds: float = 0.0  # that update sent → the sync's end
    change_waited: float = 0.0   # the update sent → that sync's start
    change_in_kernel: bool = False
    change_cpu: float = math.nan  # the proxy's CPU (with its iptables children) meanwhile
    latency: Latency | None = None
    delete_seconds: float = 0.0  # the deletes, first sent → last answered
    down_seconds: float = 0.0    # first delete sent → rules back to the small set
    down: Sync | None = None
    down_rules: int = 0


@dataclass
class Report:
    started: datetime.datetime
    command: str
    args: argparse.Namespace
    background: float = 0.0
    nodes_seconds: float = 0.0
    docker: str = ""
    iptables: str = ""
    prefix: str = ""
    cluster_name: str = ""
    cluster_ip: str = ""
    rounds: list[Round] = field(default_factory=list)
    poll_requests: int = 0
    poll_failed: int = 0
    poll_seconds: float = 0.0
    latency: Latency | None = None
    scale: Scale | None = None
    cpu: dict[str, tuple[float, dict[str, float]]] = field(default_factory=dict)
    leftover: list[str] = field(default_factory=list)   # lines after the cluster's stop
    sink_left: bool = False
    duration: float = 0.0


# ---------------------------------------------------------------- the run

def scale_service(i: int) -> t.Service:
    return t.Service(metadata=t.ObjectMeta(name=f"svc-{i:04d}", namespace=SCALE_NS),
                     spec=t.ServiceSpec(type="ClusterIP", ports=[t.ServicePort(
                         name="http", port=SERVICE_PORT,
                         target_port=t.IntOrString(int_val=POD_PORT))]))


def scale_endpoints(i: int, ips: Sequence[str]) -> t.Endpoints:
    return t.Endpoints(
        metadata=t.ObjectMeta(name=f"svc-{i:04d}", namespace=SCALE_NS),
        subsets=[t.EndpointSubset(addresses=[t.EndpointAddress(ip=ip) for ip in ips],
                                  ports=[t.EndpointPort(name="http", port=POD_PORT,
                                                        protocol="TCP")])])


def unused_addresses(cluster_cidr: str, node_cidrs: Sequence[str], count: int) -> list[str]:
    """count addresses of the cluster CIDR from its top /24s, none in a node's podCIDR
    (hosts .1 to .250 of each /24)."""
    taken = [ipaddress.ip_network(c) for c in node_cidrs]
    subnets = list(ipaddress.ip_network(cluster_cidr).subnets(new_prefix=24))
    out: list[str] = []
    for subnet in reversed(subnets):
        if any(subnet.overlaps(n) for n in taken):
            continue
        out += [str(subnet.network_address + h) for h in range(1, 251)]
        if len(out) >= count:
            return out[:count]
    raise ProxyBenchError(f"{cluster_cidr} has no room for {count} unused addresses")


def restore_in_private_netns(text: str) -> tuple[Part, str]:
    """Seconds of `iptables-restore --noflush` of text replacing the same rules, in a
    throwaway network namespace (`unshare --net`): the host's tables are not touched."""
    with tempfile.NamedTemporaryFile("w", suffix=".rules") as f:
        f.write(text)
        f.flush()
        try:
            done = subprocess.run(["unshare", "--net", sys.executable, "-c", RESTORE_PROBE,
                                   f.name], capture_output=True, text=True, timeout=300,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Part(), f"not measured ({exc})"
    if done.returncode != 0:
        return Part(), f"not measured ({done.stderr.strip().splitlines()[-1:]})"
    wall, cpu = map(float, done.stdout.split()[-2:])
    return Part(wall, cpu), ""


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def timed_call(fn: Callable[[], object], times: int = 3) -> Part:
    """The median run of fn: wall seconds, and CPU seconds of this thread and of the
    children it waited for."""
    runs = []
    for _ in range(times):
        wall, cpu, kids = time.perf_counter(), time.thread_time(), children_cpu()
        fn()
        runs.append(Part(time.perf_counter() - wall,
                         time.thread_time() - cpu + children_cpu() - kids))
    return sorted(runs, key=lambda p: p.wall)[len(runs) // 2]


class Bench:
    def __init__(self, cluster: LocalCluster, report: Report) -> None:
        self.cluster, self.report, self.args = cluster, report, report.args
        self.client = ApiClient(cluster.servers)
        self.watch_client = ApiClient(cluster.servers)
        self.cpu = ClusterCpu(cluster, lambda: 0, extra=engine_pids())
        self.metrics = ProxyMetrics(metrics_url(cluster, cluster.procs["proxy"]))
        self.chains = Chains.for_cluster(cluster.name)
        self.pods = PodWatch()
        self.endpoints = EndpointsWatch()
        self.tasks: list[asyncio.Task] = []
        self.deadline = math.inf
        self.poller: Poller | None = None
        self._cpu_mark: tuple[dict[str, float], float] = ({}, 0.0)
        self._listed: tuple[list[t.Service], list[t.Endpoints]] = ([], [])

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.poller is not None:
            await asyncio.to_thread(self.poller.stop)
        for c in (self.client, self.watch_client):
            await c.close()

    # ------------------------------------------------------------ bounds

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def fail(self, what: str) -> ProxyBenchError:
        return ProxyBenchError(f"{what} within --timeout {self.args.timeout:g} s (rerun with "
                               "--keep-workdir and read the proxy's and kubelets' logs)")

    async def bounded(self, work: Awaitable[object], what: str) -> None:
        try:
            await asyncio.wait_for(work, max(self.left(), 0.01))
        except TimeoutError:
            raise self.fail(what) from None

    async def until(self, done: Callable[[], bool], what: str, limit: float = math.inf,
                    every: float = 0.005) -> bool:
        """Wait for done(); False after limit seconds; a failure past the deadline."""
        end = time.monotonic() + limit
        while not done():
            if time.monotonic() > self.deadline:
                raise self.fail(what)
            if time.monotonic() > end:
                return False
            await asyncio.sleep(every)
        return True

    def cpu_start(self) -> None:
        self._cpu_mark = (self.cpu_totals(), time.monotonic())

    def cpu_end(self, phase: str) -> None:
        before, began = self._cpu_mark
        wall = time.monotonic() - began
        self.report.cpu[phase] = (wall, busy(before, self.cpu_totals(), wall))

    def proxy_cpu(self) -> float:
        """CPU seconds of the proxy and of its finished iptables children."""
        proc = self.cluster.procs["proxy"]
        return cpu_seconds(proc.pid) + proxy_children_cpu(self.cluster)

    def cpu_totals(self) -> dict[str, float]:
        totals = self.cpu.totals()
        totals["proxy's iptables"] = proxy_children_cpu(self.cluster)
        return totals

    # ------------------------------------------------------------ setup

    async def nodes_ready(self) -> list[str]:
        """Both Nodes Ready with a podCIDR; their podCIDRs."""
        while True:
            nodes, _ = await self.client.list("Node")
            ok = [n for n in nodes if condition_true(n.status.conditions, "Ready")
                  and n.spec.pod_cidr]
            if len(ok) >= NODES:
                return [n.spec.pod_cidr for n in ok]
            if self.left() <= 0:
                raise self.fail(f"only {len(ok)}/{NODES} nodes Ready with a podCIDR")
            await asyncio.sleep(0.1)

    async def scale_to(self, replicas: int) -> None:
        for _ in range(20):
            dep = await self.client.get("Deployment", SERVICE, WEB_NS)
            dep.spec.replicas = replicas
            try:
                await self.client.update(dep)
                return
            except errors.Conflict:
                await asyncio.sleep(0.05)
        raise ProxyBenchError(f"could not scale the Deployment to {replicas} (conflicts)")

    async def web_up(self) -> str:
        """The web Deployment and Service; every initial pod answering through the ClusterIP."""
        a = self.args
        await self.client.create(t.Namespace(metadata=t.ObjectMeta(name=WEB_NS)))
        self.tasks.append(asyncio.create_task(
            follow(self.watch_client, "Pod", WEB_NS, self.pods.on_pod, self.pods.failures)))
        self.tasks.append(asyncio.create_task(follow(
            self.watch_client, "Endpoints", WEB_NS, self.endpoints.on_endpoints,
            self.endpoints.failures)))
        await self.bounded(self.pods.established.wait(), "the pod watch was not established")
        await self.bounded(self.endpoints.established.wait(),
                           "the Endpoints watch was not established")
        await self.client.create(echo_deployment(SERVICE, WEB_NS, a.initial_replicas))
        svc = await self.client.create(web_service(SERVICE, WEB_NS))
        ip = svc.spec.cluster_ip
        assert_stays_local(ip)
        await self.until(lambda: len(self.pods.ready) >= a.initial_replicas,
                         f"the {a.initial_replicas} initial pods were not Ready", every=0.05)
        for name in self.pods.ready:
            assert_stays_local(self.pods.ip[name])
        seen: set[str] = set()
        while not set(self.pods.ready) <= seen:
            if self.left() <= 0:
                raise self.fail(f"the ClusterIP {ip} did not reach every initial pod "
                                f"(answers: {sorted(seen)})")
            answer = await http_get(ip, SERVICE_PORT)
            if answer is not None:
                seen.add(answer)
            else:
                await asyncio.sleep(0.05)
        expected = (await self.expected_rules())[0]
        await self.until(lambda: (self.metrics.latest or Sample(0, 0, 0, 0, 0)).rules
                         == expected, f"the proxy's /metrics did not show {expected} rules",
                         every=0.02)
        log(f"web: ClusterIP {ip}, {len(seen)} pods answering")
        return ip

    # ------------------------------------------------------------ 1. propagation

    async def propagation(self, ip: str) -> None:
        a, rep = self.args, self.report
        poller = self.poller = Poller(ip, SERVICE_PORT, a.pollers, a.poll_interval)
        poller.start()
        known: set[str] = set()   # the pods there before this round's scale-up

        def on_ready(name: str) -> None:  # on the event's arrival: start sending at once
            if name not in known:
                poller.resume()
        self.pods.on_ready = on_ready
        self.cpu_start()
        for k in range(a.scale_ups):
            known.clear()
            known.update(self.pods.created)
            rep.rounds.append(await self.one_round(a.initial_replicas + k + 1, known, poller))
            r = rep.rounds[-1]
            log(f"round {k + 1}/{a.scale_ups}: {r.in_rotation} pods; Ready → endpoints "
                f"{r.since_ready(r.endpoints) * 1e3:.0f} ms, → synced "
                f"{r.since_ready(r.synced) * 1e3:.0f} ms, → first answer "
                f"{r.propagation * 1e3:.0f} ms ({r.requests} requests)")
        self.cpu_end("propagation")
        self.pods.on_ready = None
        rep.poll_requests, rep.poll_failed = poller.sent, poller.failed
        rep.poll_seconds = poller.active_seconds
        await asyncio.to_thread(poller.stop)

    async def one_round(self, replicas: int, known: set[str], poller: Poller) -> Round:
        """Scale up to replicas; time the new pod from Ready seen to its first answer."""
        scaled = time.monotonic()
        await self.scale_to(replicas)

        def new() -> list[str]:
            return [n for n in self.pods.ready if n not in known]
        if not await self.until(lambda: bool(new()), "a new pod was not Ready", ROUND_TIMEOUT):
            raise ProxyBenchError(f"no new pod Ready within {ROUND_TIMEOUT:g} s of the "
                                  f"scale-up to {replicas}")
        name = new()[0]
        pod_ip = self.pods.ip[name]
        assert_stays_local(pod_ip)
        await self.until(lambda: name in poller.first, "the pod was not reached",
                         HIT_TIMEOUT, every=0.002)
        poller.pause()
        r = Round(name, self.pods.node.get(name, "?"), replicas, scaled, self.pods.ready[name],
                  self.endpoints.first.get(pod_ip, math.nan),
                  requests=poller.sent - poller.sent_at_resume)
        if name in poller.first:
            r.hit_sent, r.hit = poller.first[name]
        # the proxy's sync that programmed the pod, from /metrics: the first to leave the
        # rules the state has now (its Endpoints hold the pod: the pod answered)
        expected = (await self.expected_rules())[0]

        def found() -> Sync | None:
            return next((x for x in self.metrics.syncs(since=scaled) if x.rules == expected),
                        None)
        await self.until(lambda: found() is not None, "the proxy's /metrics did not show "
                         "the sync", 3.0, every=0.01)
        r.sync = found()
        return r

    # ------------------------------------------------------------ 2. latency

    def ready_pod_ips(self) -> list[str]:
        return sorted(self.pods.ip[n] for n in self.pods.ready)

    async def latency(self, ip: str, requests: int) -> Latency:
        pods = self.ready_pod_ips()
        for pod_ip in pods:
            assert_stays_local(pod_ip)
        assert_stays_local(ip)
        latest = self.metrics.latest
        lat = Latency(len(pods), int(latest.rules) if latest else 0)

        def measure() -> None:
            for i in range(requests + 20):   # the first 20 of each warm up
                for target, out, conn in ((ip, lat.via_ip, lat.via_ip_connect),
                                          (pods[i % len(pods)], lat.direct,
                                           lat.direct_connect)):
                    port = SERVICE_PORT if target == ip else POD_PORT
                    connect, total, answer = fetch(target, port, timeout=2.0)
                    if answer is None:
                        if target == ip:
                            lat.failed_ip += 1
                        else:
                            lat.failed_direct += 1
                        continue
                    if target == ip:
                        lat.answered_by.add(answer)
                    if i >= 20:
                        out.append(total)
                        conn.append(connect)
        await self.bounded(asyncio.to_thread(measure), "the latency requests did not finish")
        return lat

    # ------------------------------------------------------------ 3. sync at scale

    async def wait_rules(self, expected: int, what: str, after: float) -> Sync:
        """The first sync ending after `after` that left proxy_rules_total at expected."""
        def found() -> Sync | None:
            return next((s for s in self.metrics.syncs(since=after) if s.rules == expected
                         and s.end > after), None)
        await self.until(lambda: found() is not None, what, every=0.05)
        sync = found()
        assert sync is not None
        return sync

    async def expected_rules(self) -> tuple[int, int, list[ServicePort]]:
        services, _ = await self.client.list("Service")
        endpoints, _ = await self.client.list("Endpoints")
        ports = service_ports(services, endpoints)
        text = render(ports, self.chains, self.cluster.cluster_cidr)
        return sum(line.startswith("-A ") for line in text.splitlines()), len(text), ports

    async def create_scale(self, s: Scale, ips: list[str]) -> tuple[float, float]:
        limit = asyncio.Semaphore(self.args.concurrency)
        n = self.args.endpoints

        async def one(i: int) -> None:
            async with limit:
                await self.client.create(scale_service(i))
                await self.client.create(scale_endpoints(i, ips[i * n:(i + 1) * n]))
        began = time.monotonic()
        await self.bounded(asyncio.gather(*(one(i) for i in range(s.services))),
                           "the Services and Endpoints were not all created")
        return began, time.monotonic()

    async def delete_scale(self, s: Scale) -> None:
        limit = asyncio.Semaphore(self.args.concurrency)

        async def one(i: int) -> None:
            async with limit:
                for kind in ("Service", "Endpoints"):
                    with contextlib.suppress(errors.NotFound):
                        await self.client.delete(kind, f"svc-{i:04d}", SCALE_NS)
        await self.bounded(asyncio.gather(*(one(i) for i in range(s.services))),
                           "the Services and Endpoints were not all deleted")

    def in_process(self, s: Scale, ports: list[ServicePort]) -> None:
        """The parts of one sync, timed here on the same model (in a worker thread)."""
        cidr = self.cluster.cluster_cidr
        s.model = timed_call(lambda: service_ports(*self._listed))
        wanted = render(ports, self.chains, cidr)
        s.render = timed_call(lambda: render(ports, self.chains, cidr))
        saved: dict[str, str] = {}

        def save_all() -> None:
            for table in ("nat", "filter"):
                saved[table] = iptables._run(["iptables-save", "-t", table])
        s.save = timed_call(save_all)
        chains = [(table, chain) for table, text in saved.items()
                  for chain in iptables._our_chains(text, self.chains.prefix)]
        s.saved_chains = len(chains)
        # the check IptablesProxier._sync makes for each chain it finds; timed on a sample
        sample = chains[:: max(len(chains) // STALE_SAMPLE, 1)][:STALE_SAMPLE]

        def check() -> None:
            for table, chain in sample:
                _ = f":{chain} " not in iptables._section(wanted, table)
        s.stale_per_chain = timed_call(check, 1).times(1 / max(len(sample), 1))
        s.stale = s.stale_per_chain.times(len(chains))
        s.restore, s.restore_note = restore_in_private_netns(wanted)

    async def sync_at_scale(self, ip: str, node_cidrs: list[str]) -> Scale:
        a = self.args
        s = Scale(a.services, a.endpoints)
        ips = unused_addresses(self.cluster.cluster_cidr, node_cidrs,
                               a.services * a.endpoints + 1)
        spare = ips.pop()
        s.addresses = f"{ips[-1]} .. {ips[0]}"
        await self.client.create(t.Namespace(metadata=t.ObjectMeta(name=SCALE_NS)))
        log(f"creating {a.services} Services and {a.services} Endpoints of {a.endpoints} "
            f"addresses ({s.addresses})")
        self.cpu_start()
        first, last = await self.create_scale(s, ips)
        s.create_seconds = last - first
        s.expected_rules, s.restore_bytes, ports = await self.expected_rules()
        log(f"created in {s.create_seconds:.1f} s; waiting for the proxy's "
            f"{s.expected_rules} rules")
        s.covering = await self.wait_rules(
            s.expected_rules, f"proxy_rules_total did not reach {s.expected_rules}", first)
        self.cpu_end("sync at scale: first create → covering sync done")
        s.converge_seconds = s.covering.end - first
        s.after_last_create = s.covering.end - last
        s.syncs_during = [x for x in self.metrics.syncs(since=first)
                          if first < x.end <= s.covering.end]
        log(f"covering sync: {s.covering.seconds:.2f} s ({s.covering.count} sync(s) in that "
            f"scrape); all programmed {s.after_last_create:.1f} s after the last create")

        # one address of one Endpoints changes at once (the proxy idle, its periodic sync
        # 30 s away): a steady-state sync of the whole state
        ep = await self.client.get("Endpoints", "svc-0000", SCALE_NS)
        old = ep.subsets[0].addresses[0].ip
        ep.subsets[0].addresses[0].ip = spare
        cpu0 = self.proxy_cpu()
        sent = time.monotonic()
        await self.client.update(ep)
        after = sent
        while True:  # the first sync after the update that put the new address in the kernel
            s.change = await self.wait_rules(s.expected_rules,
                                             "the changed address was not synced", after=after)
            s.change_cpu = self.proxy_cpu() - cpu0
            nat = await asyncio.to_thread(iptables._run, ["iptables-save", "-t", "nat"])
            s.change_in_kernel = f"{spare}:{POD_PORT}" in nat and f"{old}:{POD_PORT}" not in nat
            if s.change_in_kernel:
                break
            after = s.change.end + 1e-3
        s.change_seconds = s.change.end - sent
        s.change_waited = s.change.start - sent
        log(f"one address changed: programmed {s.change_seconds:.1f} s after the update "
            f"(the sync {s.change.seconds:.1f} s, {s.change_cpu:.1f} CPU s)")

        # the proxy idle again: the parts of a sync, in-process; the latency with the rules
        self._listed = ((await self.client.list("Service"))[0],
                        (await self.client.list("Endpoints"))[0])
        await self.bounded(asyncio.to_thread(self.in_process, s, ports),
                           "the in-process timings did not finish")
        log(f"in-process (wall / CPU s): render {s.render.wall:.2f} / {s.render.cpu:.2f}, "
            f"iptables-save {s.save.wall:.2f} / {s.save.cpu:.2f}, stale check ≈ "
            f"{s.stale.wall:.1f} / {s.stale.cpu:.1f} ({s.saved_chains} chains), restore "
            f"{s.restore.wall:.1f} / {s.restore.cpu:.1f}")
        s.latency = await self.latency(ip, a.scale_requests)

        began = time.monotonic()
        await self.delete_scale(s)
        s.delete_seconds = time.monotonic() - began
        s.down_rules = (await self.expected_rules())[0]
        s.down = await self.wait_rules(s.down_rules, "the rules did not go back down",
                                       after=began)
        s.down_seconds = s.down.end - began
        log(f"deleted; rules back to {s.down_rules} {s.down_seconds:.1f} s after the first "
            "delete")
        return s

    # ------------------------------------------------------------ all

    async def run(self) -> None:
        a, rep = self.args, self.report
        self.deadline = time.monotonic() + a.timeout
        began = time.monotonic()
        self.tasks.append(asyncio.create_task(self.cpu.run()))
        self.tasks.append(asyncio.create_task(self.metrics.run()))
        node_cidrs = await self.nodes_ready()
        rep.nodes_seconds = time.monotonic() - began
        log(f"both nodes Ready after {rep.nodes_seconds:.1f} s")
        ip = await self.web_up()
        rep.cluster_ip = ip
        await self.propagation(ip)
        self.cpu_start()
        rep.latency = await self.latency(ip, a.requests)
        self.cpu_end("latency")
        lat = rep.latency
        log(f"latency: ClusterIP p50 {percentile(lat.via_ip, 50) * 1e3:.2f} ms, pod IP "
            f"{percentile(lat.direct, 50) * 1e3:.2f} ms")
        if a.services:
            rep.scale = await self.sync_at_scale(ip, node_cidrs)


def iptables_version() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        return subprocess.run(["iptables", "--version"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    return "iptables ?"


def leftovers(rep: Report, cluster_name: str) -> None:
    """What the cluster's stop left of the proxy's rules and sink (it should be nothing)."""
    out = subprocess.run(["iptables-save"], capture_output=True, text=True, timeout=60,
                         check=False).stdout
    rep.leftover = [line for line in out.splitlines() if rep.prefix in line]
    device = Sink(cluster_name, "").device
    rep.sink_left = bool(subprocess.run(["ip", "-o", "link", "show", "dev", device],
                                        capture_output=True, text=True, timeout=10,
                                        check=False).stdout)


# ---------------------------------------------------------------- report

def _ms(values: Sequence[float], qs: Sequence[float] = (50, 99, 100)) -> str:
    return " / ".join(f"{percentile(values, q) * 1e3:.1f}" for q in qs) + " ms"


def render_report(rep: Report) -> str:
    parts = [render_header(rep)]
    if rep.rounds:
        parts += [render_targets(rep), render_propagation(rep)]
    if rep.latency is not None:
        parts.append(render_latency(rep))
    if rep.scale is not None:
        parts.append(render_scale(rep.scale))
    parts += [render_cleanup(rep), render_cpu(rep)]
    return "\n".join(parts)


def render_header(rep: Report) -> str:
    a = rep.args
    return f"""## Proxy: endpoint propagation, sync at scale, added latency (iptables mode)

* Date: {rep.started:%Y-%m-%d %H:%M} UTC; whole run {rep.duration:.0f} s (cluster start
  and stop included; the nodes were Ready with a podCIDR {rep.nodes_seconds:.1f} s after
  the cluster's processes answered).
* Machine: {machine()}; {versions()}; {rep.docker}; {rep.iptables}. Before the cluster
  started, other processes kept {rep.background:.2f} of its cores busy.
* Command: `{rep.command}` (from the repo root; `make bench` runs it with the defaults).
* Cluster: 1 etcd member, 1 apiserver, 1 scheduler, 1 controller-manager, {NODES} kubelets
  (pods as Docker containers on one engine) and the proxy in iptables mode with its
  defaults (a full sync on every change, at least every 30 s; chain prefix `{rep.prefix}`),
  as local processes (`LocalCluster`), fresh in a temporary directory. Everything, the
  benchmark's client threads and Docker included, shares the machine's CPUs.
* Propagation: a Deployment of `{ECHO}` (busybox httpd on :8080, answering with the pod's
  name through a CGI script; readinessProbe httpGet :8080/ every second) behind a
  ClusterIP Service, {a.initial_replicas} pod(s) at first, then scaled up by one pod
  {a.scale_ups} times. The clock of each round starts when a watch on the pods delivers
  the new pod's Ready condition; at that moment {a.pollers} threads start sending GET / to
  the ClusterIP, each on a new connection and at most one per {a.poll_interval * 1e3:g} ms
  per thread, until an answer names the new pod (answers from the other pods do not
  count). iptables picks one of the ready pods at random per connection, so the last step
  includes the wait for a request to draw the new pod.
* Added latency: {a.requests} sequential GETs through the ClusterIP interleaved with
  {a.requests} straight to the pod IPs (round robin over the same pods), each a new
  connection (HTTP/1.0, `Connection: close`) from a raw socket in one thread, after 20
  of each to warm up; timed from connect() to the server closing.
* Sync at scale: {a.services} Services without a selector and {a.services} Endpoints
  written by the benchmark, {a.endpoints} addresses each, from the top of the cluster
  CIDR outside every node's podCIDR (nobody uses them; no traffic is sent to them),
  created {a.concurrency} at a time; the proxy's `/metrics` scraped every
  {METRICS_PERIOD * 1e3:g} ms.
"""


def render_targets(rep: Report) -> str:
    props = [r.propagation for r in rep.rounds]
    p99 = percentile(props, 99)
    measured = f"p99 {p99:.2f} s over {len(props)} pods"
    return "\n".join([
        "### Targets", "", "| target | measured | met |", "|---|---|---|",
        f"| propagation (Ready seen → first answer from the pod through the ClusterIP) "
        f"p99 ≤ {TARGET_P99:g} s | {measured} | {yes_no(p99 <= TARGET_P99)} |",
        f"| (reference) Kubernetes' in-cluster network programming latency SLO: p99 ≤ "
        f"{K8S_SLO_P99:g} s | {measured} | {yes_no(p99 <= K8S_SLO_P99)} |", "",
        *propagation_load(rep)])


def propagation_load(rep: Report) -> list[str]:
    """A line on how busy the machine was while the rounds ran."""
    if "propagation" not in rep.cpu:
        return []
    _, used = rep.cpu["propagation"]
    ours = sum(used.get(g, 0.0) for g in CPU_GROUPS)
    return [f"While the rounds ran: {saturation(ours, used.get('machine', 0.0))}; the rest "
            "is other processes, the containers and their shims (see CPU below).", ""]


def render_propagation(rep: Report) -> str:
    rs = rep.rounds
    props = [r.propagation for r in rs]
    rate = rep.poll_requests / max(rep.poll_seconds, 1e-9)
    syncs = [r.sync for r in rs if r.sync is not None]
    merged = sum(x.count > 1 for x in syncs)
    rows = [
        ("Ready seen → first answer naming the pod: p50 / p99 / max", f"**{_ms(props)}**"),
        ("Ready seen → its IP in the Endpoints (the Endpoints controller; seen on a watch)",
         _ms([r.since_ready(r.endpoints) for r in rs])),
        ("Endpoints seen → the proxy's sync with it starts (its informer, the sync loop)",
         _ms([x.start - r.endpoints for r in rs if (x := r.sync) is not None])),
        ("that sync: start → end (iptables-save ×2, render, iptables-restore)",
         _ms([x.seconds for x in syncs])),
        ("Ready seen → that sync done (the pod's rules in the kernel)",
         _ms([r.since_ready(r.synced) for r in rs])),
        ("sync done → first answer from the pod (the random draw among the ready pods "
         "for each new connection, and the request)", _ms([r.hit - r.synced for r in rs])),
        ("that first answer: request sent → answered", _ms([r.hit - r.hit_sent for r in rs])),
        ("scale-up sent → the new pod Ready seen (pod startup; not part of the measure)",
         " / ".join(f"{percentile([r.ready - r.scaled for r in rs], q):.2f}"
                    for q in (50, 99, 100)) + " s"),
        ("requests per round until the first answer: p50 / max",
         f"{percentile([r.requests for r in rs], 50):.0f} / "
         f"{max(r.requests for r in rs)}"),
        ("request rate while polling; failed requests",
         f"{rate:.0f}/s; {rep.poll_failed} of {rep.poll_requests}"),
    ]
    lines = ["### Propagation", "",
             f"p50 / p99 / max over the {len(rs)} rounds (nearest rank: with 20 rounds, p99 "
             "is the slowest). The proxy's syncs come from its `/metrics` (the histogram's "
             "count and sum, and the last sync's timestamp, scraped every "
             f"{METRICS_PERIOD * 1e3:g} ms): for each pod, the first sync after its "
             "scale-up that left the rule count the state with it gives. The proxy "
             "stamps a sync's end once iptables-restore has returned and its event loop "
             "runs again, which can be after the new DNAT rules already answer, and this "
             "benchmark's watches and the proxy's get their events independently: on a busy "
             "machine either can be first, so a step can come out negative"
             + (f" ({len(rs) - len(syncs)} rounds without one)" if len(syncs) < len(rs)
                else "")
             + (f"; {merged} of them shared a scrape with another sync (their mean "
                "duration)" if merged else "") + ".", "",
             "| measure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    lines += ["", "| round | pods | node | → Endpoints | → sync done (sync) | → first answer "
              "| requests |", "|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rs, 1):
        took = f" ({r.sync.seconds * 1e3:.0f} ms)" if r.sync is not None else ""
        lines.append(f"| {i} | {r.in_rotation} | {r.node} | "
                     f"{r.since_ready(r.endpoints) * 1e3:.0f} ms | "
                     f"{r.since_ready(r.synced) * 1e3:.0f} ms{took} | "
                     f"{r.propagation * 1e3:.0f} ms | {r.requests} |")
    return "\n".join(lines) + "\n"


def latency_rows(lat: Latency) -> list[tuple[str, str]]:
    ratio = [percentile(lat.via_ip, q) / percentile(lat.direct, q) for q in (50, 99)]
    added = [(percentile(lat.via_ip, q) - percentile(lat.direct, q)) * 1e3 for q in (50, 99)]
    return [
        ("through the ClusterIP: p50 / p99 / max", f"**{_ms(lat.via_ip)}**"),
        ("straight to the pod IPs: p50 / p99 / max", f"**{_ms(lat.direct)}**"),
        ("ratio ClusterIP / pod IP at p50 / p99",
         f"**{ratio[0]:.2f} / {ratio[1]:.2f}** ({added[0]:+.2f} / {added[1]:+.2f} ms)"),
        ("connect() alone, ClusterIP vs pod IP: p50 / p99",
         f"{_ms(lat.via_ip_connect, (50, 99))} vs {_ms(lat.direct_connect, (50, 99))}"),
        ("requests timed (each way); failed ClusterIP / pod IP; pods answering via the "
         "ClusterIP", f"{len(lat.via_ip)}; {lat.failed_ip} / {lat.failed_direct}; "
                     f"{len(lat.answered_by)} of {lat.pods}"),
    ]


def render_latency(rep: Report) -> str:
    lat = rep.latency
    assert lat is not None
    lines = ["### Added latency", "",
             f"{lat.pods} pods behind the ClusterIP, the proxy's tables at {lat.rules} rules "
             "(nothing but this cluster's web service); each echo answer forks the busybox "
             "CGI script, which is most of a request's time on both paths.", "",
             "| measure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in latency_rows(lat)]
    return "\n".join(lines) + "\n"


def render_scale(s: Scale) -> str:
    cov = s.covering
    assert cov is not None
    exact = "" if cov.count == 1 else f" (mean of {cov.count} syncs in one scrape)"
    rows = [
        ("rules programmed (proxy_rules_total; = the `-A` lines `proxy.rules.render` gives "
         "for the same model) / size of the iptables-restore input",
         f"{s.expected_rules} / {s.restore_bytes / 2**20:.1f} MiB"),
        ("**the sync that first covered all of them** (histogram sum/count delta; its "
         "iptables-save still listed the chains of the sync before it)",
         f"**{cov.seconds:.1f} s**{exact}"),
        ("creates: first sent → last answered (each Service, then its Endpoints)",
         f"{s.create_seconds:.1f} s"),
        ("first create → that sync done; last create answered → that sync done",
         f"{s.converge_seconds:.1f} s; {s.after_last_create:.1f} s"),
        ("syncs meanwhile: count; longest",
         f"{sum(x.count for x in s.syncs_during)}; "
         f"{max((x.seconds for x in s.syncs_during), default=math.nan):.1f} s"),
    ]
    if s.change is not None:
        rows += [
            ("**steady state: one address of one Endpoints changed → programmed** (a "
             "full sync of everything)", f"**{s.change_seconds:.1f} s** (the sync "
             f"{s.change.seconds:.1f} s, started {s.change_waited:.2f} s after the update; "
             f"the new address in the kernel after it: "
             f"{'yes' if s.change_in_kernel else 'no'})")]
    if s.latency is not None:
        lat = s.latency
        ratio = percentile(lat.via_ip, 50) / percentile(lat.direct, 50)
        rows += [(f"ClusterIP latency with these {lat.rules} rules loaded (the web service's "
                  "rule last of the services chain), vs straight to the pod IPs: p50 / p99 / "
                  "max", f"{_ms(lat.via_ip)} vs {_ms(lat.direct)} (ratio at p50 "
                  f"{ratio:.2f}; {len(lat.via_ip)} requests each)")]
    if s.down is not None:
        rows += [(f"all deleted: first delete → proxy_rules_total back to {s.down_rules} "
                  f"(that last sync {s.down.seconds:.1f} s)",
                  f"{s.down_seconds:.1f} s (the deletes {s.delete_seconds:.1f} s)")]
    lines = ["### Sync at scale", "",
             f"{s.services} Services × {s.endpoints} endpoints (addresses {s.addresses}).",
             "", "| measure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    growth = sorted({x.rules: x for x in s.syncs_during}.values(), key=lambda x: x.rules)
    if growth:
        step = max(len(growth) // 8, 1)
        picked = growth[::step] + ([growth[-1]] if growth[-1] not in growth[::step] else [])
        lines += ["", "Sync duration as the rules grew (the syncs seen while the objects were "
                  "created):", "", "| rules after the sync | sync (s) |", "|---|---|"]
        lines += [f"| {x.rules} | {x.seconds:.2f} |" for x in picked]
    lines += ["", render_split(s).rstrip("\n")]
    return "\n".join(lines) + "\n"


def render_split(s: Scale) -> str:
    """Where a steady-state sync's time goes: its parts, timed in-process on the same model."""
    sync = s.change
    wall = sync.seconds if sync is not None else math.nan
    cpu = s.change_cpu
    parts = [
        ("`iptables-save -t nat` and `-t filter` (the read that starts every sync; the "
         "host's tables, read only)", s.save),
        ("`proxy.rules.render()` (pure)", s.render),
        (f"the stale-chain check: `f\":{{chain}} \" not in _section(wanted, table)` for each "
         f"of the {s.saved_chains} chains of ours iptables-save lists (timed on "
         f"{min(STALE_SAMPLE, s.saved_chains)} of them: {s.stale_per_chain.cpu * 1e3:.1f} ms "
         "of CPU each)", s.stale),
        ("`iptables-restore --noflush` of the whole input, replacing the same rules (in a "
         "throwaway network namespace, `unshare --net`)", s.restore),
    ]
    known = sum(part.cpu for _, part in parts if not math.isnan(part.cpu))
    lines = ["#### Where a steady-state sync goes", "",
             "The parts of `IptablesProxier._sync`, timed in this process on the same model "
             "while the proxy was idle, against the steady-state sync above: wall seconds "
             "(stretched by whatever else wants the CPUs) and CPU seconds (this thread's and "
             "its iptables children's; for the sync, the proxy's and its iptables children's "
             "from /proc over the sync). Shares are of the sync's CPU.", "",
             "| part | wall s | CPU s | share |", "|---|---|---|---|",
             f"| **the sync** (histogram; /proc) | **{wall:.1f}** | **{cpu:.1f}** | 100% |"]
    lines += [f"| {name} | {part.wall:.2f} | {part.cpu:.2f} | {part.cpu / cpu:.0%} |"
              for name, part in parts]
    lines += [f"| the rest (the sync's CPU − the parts' CPU: the hooks check, counting, the "
              f"proxy's event loop) | | {cpu - known:+.2f} | {(cpu - known) / cpu:.0%} |",
              f"| (before the timed sync) `service_ports()`, the model from the informers' "
              f"caches | {s.model.wall:.2f} | {s.model.cpu:.2f} | |"]
    if s.restore_note:
        lines += ["", f"iptables-restore: {s.restore_note}."]
    name, part = max(parts, key=lambda p: -math.inf if math.isnan(p[1].cpu) else p[1].cpu)
    lines += ["", f"The largest part: {name.split(':')[0]} ({part.cpu / cpu:.0%} of the "
              "sync's CPU)."]
    if name.startswith("the stale-chain check"):
        lines[-1] += (" `_section()` slices the rendered nat table out of the whole input (a "
                      f"copy of about {s.restore_bytes / 2**20:.1f} MiB) once per chain of "
                      "ours in the kernel and then searches it, so its cost grows with chains "
                      "× input size: quadratically in services × endpoints. The proxy's code "
                      "was left as it is; this run only measures it.")
    return "\n".join(lines) + "\n"


def render_cleanup(rep: Report) -> str:
    left = len(rep.leftover)
    ok = left == 0 and not rep.sink_left
    return "\n".join([
        "### Cleanup", "",
        f"After the cluster's stop (which runs `minik8s proxy --cleanup`): "
        f"`iptables-save | grep {rep.prefix}` printed {left} lines; the sink device "
        f"{'was still there' if rep.sink_left else 'was gone'}: "
        f"{'clean' if ok else '**not clean**'}."
        + (f" First: `{rep.leftover[0]}`." if left else ""), ""])


CPU_GROUPS = ("bench", "apiserver-0", "etcd", "controller-manager-0", "node-0", "node-1",
              "proxy", "proxy's iptables", "dockerd + containerd")


def render_cpu(rep: Report) -> str:
    return render_cpu_table(
        "Cores busy per process (CPU seconds / wall seconds, from /proc); `bench` is "
        "this process with its client threads, `proxy's iptables` the proxy's finished "
        "iptables-save and iptables-restore children, `other` the rest of the machine "
        "(the containers, their shims and whatever else runs).",
        CPU_GROUPS, [(phase, secs, used) for phase, (secs, used) in rep.cpu.items()],
        rep.background)


# ---------------------------------------------------------------- main

def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.proxy",
                                description=__doc__.split("\n")[0])
    p.add_argument("--initial-replicas", type=int, default=1, help="web pods at first")
    p.add_argument("--scale-ups", type=int, default=20, help="rounds of one more pod")
    p.add_argument("--pollers", type=int, default=4, help="threads polling the ClusterIP")
    p.add_argument("--poll-interval", type=float, default=0.01,
                   help="seconds between two requests of one poller (at least)")
    p.add_argument("--requests", type=int, default=500,
                   help="sequential requests each way for the added latency")
    p.add_argument("--services", type=int, default=1000,
                   help="Services for the sync at scale (0: skip it)")
    p.add_argument("--endpoints", type=int, default=10, help="addresses per Endpoints")
    p.add_argument("--scale-requests", type=int, default=200,
                   help="requests each way for the latency with the big tables")
    p.add_argument("--concurrency", type=int, default=16, help="concurrent Create calls")
    p.add_argument("--timeout", type=float, default=900.0,
                   help="seconds from the cluster being up to the end of the last phase")
    p.add_argument("--doc", type=Path, default=DOC, help="markdown file to write the report to")
    p.add_argument("--no-doc", action="store_true", help="only print the report")
    p.add_argument("--keep-workdir", action="store_true",
                   help="keep the cluster's workdir (the logs) after the run")
    args = p.parse_args(argv)
    if (args.initial_replicas < 1 or args.scale_ups < 1 or args.pollers < 1
            or args.requests < 1 or args.services < 0 or args.endpoints < 1
            or args.concurrency < 1 or args.timeout <= 0 or args.poll_interval < 0):
        p.error("counts must be at least 1 (--services at least 0), --timeout positive")
    return args


async def run(cluster: LocalCluster, report: Report) -> None:
    report.docker = engine_version()
    report.iptables = iptables_version()
    report.prefix = Chains.for_cluster(cluster.name).prefix
    report.cluster_name = cluster.name
    if not iptables.available():
        raise ProxyBenchError("this process may not program iptables (needs root / "
                              "NET_ADMIN): the proxy would run in userspace mode")
    bench = Bench(cluster, report)
    try:
        await bench.run()
    finally:
        await bench.close()


def finish(report: Report) -> str:
    """After the cluster's stop: check what it left, then render."""
    if report.cluster_name:
        leftovers(report, report.cluster_name)
        log(f"after the stop: {len(report.leftover)} iptables lines with {report.prefix}, "
            f"sink {'left' if report.sink_left else 'gone'}")
    return render_report(report)


def main(argv: Sequence[str] | None = None) -> int:
    cluster_args = {"masters": 1, "schedulers": 1, "controller_managers": 1, "nodes": NODES,
                    "proxy": True}
    try:
        return run_benchmark("proxy", argv, parse_args, Report, lambda _args: cluster_args,
                             run, finish)
    except ProxyBenchError as exc:
        log(f"FAILED: {exc}; nothing written")
        return 1


if __name__ == "__main__":
    sys.exit(main())
