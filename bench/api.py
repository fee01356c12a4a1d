"""API benchmarks on a fresh local cluster (3 etcd members, 3 apiservers).

`python -m bench.api` (or `make bench`) measures, in one run:

1. create throughput through the apiservers vs raw etcd puts of the same bytes;
2. watch delivery latency to 1 and to W (default 1000) client watchers;
3. the etcd watches each apiserver holds while those watchers are open.

It prints a markdown report and puts it into docs/BENCHMARKS.md between the
`bench:api` markers. The cluster runs in a temporary workdir and is always
stopped at the end, also on error or Ctrl-C. All traffic is to 127.0.0.1.

Watchers run in separate client processes (multiprocessing, spawn): one
Python process decoding W*E watch events would measure the client's own
decoding queue rather than the apiservers' delivery.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import itertools
import multiprocessing
import multiprocessing.connection
import os
import platform
import shlex
import signal
import ssl
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from array import array
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from aetcd.rpc import rpc_pb2 as rpc
from aetcd.rpc import rpc_pb2_grpc as rpc_grpc

from apiserver import defaults
from apiserver.etcd import EtcdTls
from apiserver.storage import encode
from bench.common import DOC, interrupt, local_cluster, log, write_section
from minik8s import errors, kinds
from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from minik8s.localcluster import LocalCluster

SENT_ANNOTATION = "bench.minik8s.io/sent"
WARMUP = "warmup"
RAW_PREFIX = "/bench/raw"
ESTABLISH_TIMEOUT = 90.0   # seconds for all watchers of a scenario to open
DELIVERY_GRACE = 15.0      # seconds after the last event for stragglers
PHASE_TIMEOUT = 120.0      # bound on one create phase

TARGET_RATIO = 0.5
TARGET_P99_MS = 100.0


# ---------------------------------------------------------------- objects

def make_pod(name: str, namespace: str, sent: float | None = None) -> t.Pod:
    """A small realistic pod: one container with a port and resources, two labels."""
    meta = t.ObjectMeta(name=name, namespace=namespace, labels={"app": "bench", "tier": "web"})
    if sent is not None:
        meta.annotations[SENT_ANNOTATION] = repr(sent)
    container = t.Container(
        name="web", image="nginx:1.25", ports=[t.ContainerPort(name="http", container_port=80)],
        resources=t.ResourceRequirements(requests={"cpu": "100m", "memory": "64Mi"}))
    return t.Pod(metadata=meta, spec=t.PodSpec(containers=[container]))


def stored_bytes(pod: t.Pod) -> bytes:
    """The value the apiserver would store for pod (what its create path adds, then encode)."""
    obj = t.Pod()
    obj.CopyFrom(pod)
    kind = kinds.of(obj)
    obj.api_version, obj.kind = kind.api_version, kind.name
    obj.metadata.uid = str(uuid.uuid4())
    obj.metadata.generation = 1
    obj.metadata.creation_timestamp.GetCurrentTime()
    defaults.apply_defaults(kind.name, obj)
    return encode(obj)


# ---------------------------------------------------------------- CPU accounting

def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    """CPU time all CPUs spent busy (not idle or waiting for I/O) since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(
            int, f.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass
class CpuMeter:
    """CPU used over an interval by the cluster's process groups, this process ("bench")
    and the whole machine ("machine": also counts processes that are not ours)."""

    groups: dict[str, list[int]]
    _start: dict[str, float] = field(default_factory=dict)
    _wall: float = 0.0
    elapsed: float = 0.0  # seconds from start() to the last busy()

    def _now(self) -> dict[str, float]:
        used = {g: sum(cpu_seconds(p) for p in pids) for g, pids in self.groups.items()}
        used["bench"] = time.process_time()
        used["machine"] = machine_cpu_seconds()
        return used

    def start(self) -> None:
        self._start, self._wall = self._now(), time.monotonic()

    def busy(self) -> dict[str, float]:
        """Cores busy per group since start() (CPU seconds / wall seconds)."""
        wall = self.elapsed = max(time.monotonic() - self._wall, 1e-9)
        return {g: (v - self._start[g]) / wall for g, v in self._now().items()}


# ---------------------------------------------------------------- metrics

def scrape(url: str, tls: EtcdTls | None = None) -> str:
    """A metrics page; over https with tls (etcd's client port of a secure cluster)."""
    context = None
    if tls is not None:
        context = ssl.create_default_context(cafile=str(tls.ca))
        context.load_cert_chain(str(tls.cert), str(tls.key))
    with urllib.request.urlopen(url, timeout=5, context=context) as resp:
        return resp.read().decode()


def metric(text: str, name: str, label: str = "") -> float:
    """Sum of the samples of a metric (whose labels contain `label`) in Prometheus text."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, _, value = line.rpartition(" ")
        base = series.split("{", 1)[0]
        if base == name and label in series:
            total += float(value)
    return total


@dataclass
class WatchCounts:
    """etcd watches as seen by the apiservers and by the etcd members."""

    apiserver_etcd_watches: list[float]
    apiserver_client_watches: list[float]
    etcd_watchers: list[float]


def scrape_watch_counts(cluster: LocalCluster) -> WatchCounts:
    host = cluster.host
    api = [scrape(f"http://{host}:{p.ports['http']}/metrics") for p in cluster.role("apiserver")]
    tls, scheme = cluster.etcd_tls, "https" if cluster.etcd_tls else "http"
    etcd = [scrape(f"{scheme}://{host}:{p.ports['client']}/metrics", tls)
            for p in cluster.role("etcd")]
    return WatchCounts(
        [metric(text, "apiserver_etcd_watches") for text in api],
        [metric(text, "apiserver_registered_watchers", 'kind="Pod"') for text in api],
        [metric(text, "etcd_debugging_mvcc_watcher_total") for text in etcd])


# ---------------------------------------------------------------- create throughput

@dataclass
class Phase:
    name: str
    count: int
    seconds: float
    failures: list[str]
    cpu: dict[str, float]

    @property
    def rate(self) -> float:
        return (self.count - len(self.failures)) / self.seconds

    @property
    def cpu_ms_per_op(self) -> float:
        """CPU of bench client, apiservers and etcd together, per object written."""
        ours = sum(v for g, v in self.cpu.items() if g != "machine")
        return ours * self.seconds / self.count * 1000


async def drive(n: int, concurrency: int, op: Callable[[int, int], Awaitable[Any]]
                ) -> tuple[float, list[str]]:
    """Run op(worker, index) for index in range(n) on `concurrency` workers; wall time."""
    counter = itertools.count()
    failures: list[str] = []

    async def worker(w: int) -> None:
        while (i := next(counter)) < n:
            try:
                await op(w, i)
            except Exception as exc:  # counted and reported, not fatal
                failures.append(f"{type(exc).__name__}: {exc}")

    start = time.perf_counter()
    async with asyncio.timeout(PHASE_TIMEOUT):
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return time.perf_counter() - start, failures


@dataclass
class Round:
    raw: Phase
    api: Phase

    @property
    def ratio(self) -> float:
        return self.api.rate / self.raw.rate


@dataclass
class CreateResult:
    rounds: list[Round]
    api_value_bytes: int
    raw_value_bytes: int

    @property
    def ratio(self) -> float:
        """The headline: median of the per-round ratios."""
        return statistics.median(r.ratio for r in self.rounds)


# ---------------------------------------------------------------- watch latency (client side)

@dataclass(frozen=True)
class WatchPlan:
    """What one watch client process does."""

    servers: list[str]
    namespace: str
    watchers: int
    channels: int     # ApiClients (channels) per apiserver in this process
    events: int


@dataclass
class Tally:
    """What the watchers of one client process saw."""

    established: int = 0
    warm: int = 0
    done: int = 0
    duplicates: int = 0
    last_arrival: float = 0.0
    latencies_ms: array = field(default_factory=lambda: array("d"))
    failures: list[str] = field(default_factory=list)


async def watch_one(client: ApiClient, plan: WatchPlan, tally: Tally) -> None:
    """One client watch: count the initial BOOKMARK, the warm-up pod, then measured pods."""
    established = False
    seen: set[str] = set()
    try:
        async for ev in client.watch("Pod", namespace=plan.namespace, allow_bookmarks=True):
            arrived = time.time()
            if ev.type == "BOOKMARK":
                tally.established += not established
                established = True
                continue
            meta = ev.object.metadata
            if ev.type != "ADDED":
                continue
            if meta.name == WARMUP:
                tally.warm += 1
            elif meta.name in seen:
                tally.duplicates += 1
            else:
                seen.add(meta.name)
                tally.last_arrival = max(tally.last_arrival, arrived)
                tally.latencies_ms.append((arrived - float(meta.annotations[SENT_ANNOTATION]))
                                          * 1000)
                tally.done += len(seen) == plan.events
    except errors.ApiError as exc:
        tally.failures.append(f"{type(exc).__name__}: {exc}")
    else:
        tally.failures.append("the apiserver ended the watch")


async def until(done: Callable[[], bool], timeout: float) -> bool:
    """Poll done() until true or timeout; whether it became true."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def recv(conn: multiprocessing.connection.Connection, timeout: float) -> Any:
    if not conn.poll(timeout):
        raise TimeoutError(f"no message within {timeout:.0f}s")
    return conn.recv()


async def run_watch_client(plan: WatchPlan, conn: multiprocessing.connection.Connection) -> None:
    """Open the watchers, report each stage to the parent, then send the tally."""
    clients = [ApiClient([s]) for _ in range(plan.channels) for s in plan.servers]
    tally = Tally()
    tasks = [asyncio.create_task(watch_one(clients[i % len(clients)], plan, tally))
             for i in range(plan.watchers)]
    try:
        await until(lambda: tally.established + len(tally.failures) >= plan.watchers,
                    ESTABLISH_TIMEOUT)
        conn.send(("established", tally.established))
        await until(lambda: tally.warm + len(tally.failures) >= plan.watchers, ESTABLISH_TIMEOUT)
        conn.send(("warm", tally.warm))
        cpu, loop_cpu, wall = time.process_time(), time.thread_time(), time.monotonic()
        grace = await asyncio.to_thread(recv, conn, 600.0)
        await until(lambda: tally.done + len(tally.failures) >= plan.watchers, grace)
        wall = time.monotonic() - wall
        # the process (event loop + gRPC's poller thread), and the event-loop thread alone
        busy = ((time.process_time() - cpu) / wall, (time.thread_time() - loop_cpu) / wall)
        conn.send(("result", tally, busy))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for c in clients:
            await c.close()


def watch_client_main(plan: WatchPlan, conn: multiprocessing.connection.Connection) -> None:
    """Entry point of a watch client process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    try:
        asyncio.run(run_watch_client(plan, conn))
    except BaseException as exc:
        with contextlib.suppress(OSError):
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        conn.close()


# ---------------------------------------------------------------- watch latency (parent side)

@dataclass
class WatchResult:
    watchers: int
    procs: int
    events: int
    rate: float
    first_send: float
    create_ms: list[float]
    server_busy: dict[str, float]
    wall: float                # seconds over which server_busy was measured
    latencies_ms: list[float] = field(default_factory=list)
    duplicates: int = 0
    last_arrival: float = 0.0
    failures: list[str] = field(default_factory=list)
    client_busy: list[float] = field(default_factory=list)
    client_loop_busy: list[float] = field(default_factory=list)

    @property
    def expected(self) -> int:
        return self.watchers * self.events

    @property
    def offered(self) -> float:
        """Deliveries per second asked of the apiservers (watchers x event rate)."""
        return self.watchers * self.rate

    @property
    def achieved(self) -> float:
        """Deliveries per second from the first send to the last arrival."""
        return len(self.latencies_ms) / max(self.last_arrival - self.first_send, 1e-9)

    def cpu_us_per_delivery(self, cores: float) -> float:
        """CPU microseconds per delivered event, for a group that kept `cores` busy."""
        return cores * self.wall / max(len(self.latencies_ms), 1) * 1e6

    def add(self, tally: Tally, busy: tuple[float, float]) -> None:
        self.latencies_ms.extend(tally.latencies_ms)
        self.duplicates += tally.duplicates
        self.last_arrival = max(self.last_arrival, tally.last_arrival)
        self.failures.extend(tally.failures)
        self.client_busy.append(busy[0])
        self.client_loop_busy.append(busy[1])

    def pct(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


@dataclass
class Children:
    """The watch client processes this run started, so they can always be stopped."""

    procs: list[multiprocessing.process.BaseProcess] = field(default_factory=list)
    conns: list[multiprocessing.connection.Connection] = field(default_factory=list)

    def spawn(self, plans: list[WatchPlan]) -> None:
        ctx = multiprocessing.get_context("spawn")
        for plan in plans:
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(target=watch_client_main, args=(plan, theirs), daemon=True,
                               name=f"bench-watch-{len(self.procs)}")
            proc.start()
            theirs.close()
            self.procs.append(proc)
            self.conns.append(ours)

    async def expect(self, stage: str, timeout: float) -> list[Any]:
        """The payloads of every child's next message, which must be `stage`."""
        async def one(conn: multiprocessing.connection.Connection) -> Any:
            msg = await asyncio.to_thread(recv, conn, timeout)
            if msg[0] != stage:
                raise RuntimeError(f"watch client: expected {stage!r}, got {msg!r}")
            return msg[1:]
        return await asyncio.gather(*(one(c) for c in self.conns))

    def send(self, msg: Any) -> None:
        for conn in self.conns:
            conn.send(msg)

    def stop(self) -> None:
        """Let each child finish (it exits after sending its result), else terminate it."""
        for proc in self.procs:
            proc.join(timeout=2)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for conn in self.conns:
            conn.close()
        self.procs.clear()
        self.conns.clear()


# ---------------------------------------------------------------- the run

@dataclass
class Report:
    started: datetime.datetime
    command: str
    args: argparse.Namespace
    creates: CreateResult | None = None
    watches: list[WatchResult] = field(default_factory=list)
    counts_idle: WatchCounts | None = None
    counts_loaded: WatchCounts | None = None
    duration: float = 0.0


class Bench:
    def __init__(self, cluster: LocalCluster, args: argparse.Namespace, report: Report) -> None:
        self.cluster = cluster
        self.args = args
        self.report = report
        self.api = [ApiClient([s]) for s in cluster.servers]
        self.etcd = [RawEtcd(e, cluster.etcd_tls) for e in cluster.etcd_endpoints]
        self.children = Children()
        self.meter = CpuMeter({
            "apiservers": [p.pid for p in cluster.role("apiserver")],
            "etcd": [p.pid for p in cluster.role("etcd")]})

    async def close(self) -> None:
        self.children.stop()
        for c in self.api:
            await c.close()
        for e in self.etcd:
            await e.close()

    async def namespace(self, name: str) -> str:
        await self.api[0].create(t.Namespace(metadata=t.ObjectMeta(name=name)))
        return name

    async def run(self) -> None:
        self.report.counts_idle = scrape_watch_counts(self.cluster)
        self.report.creates = await self.create_throughput()
        scenarios = [(1, 1), *((self.args.watchers, p) for p in self.args.watch_procs)]
        for i, (watchers, procs) in enumerate(scenarios, 1):
            self.report.watches.append(await self.watch_latency(i, watchers, procs))

    # ------------------------------------------------------------ 1. creates

    async def api_phase(self, round_no: int) -> Phase:
        ns = await self.namespace(f"bench-create-{round_no}")
        pods = [make_pod(f"pod-{i}", ns) for i in range(self.args.creates)]
        clients = self.api

        async def op(w: int, i: int) -> None:
            await clients[w % len(clients)].create(pods[i])
        return await self.phase(f"apiserver #{round_no}", op)

    async def raw_phase(self, round_no: int) -> Phase:
        # the same namespace as the api phase's pods, so that the values are the same size
        ns = f"bench-create-{round_no}"
        pods = [make_pod(f"pod-{i}", ns) for i in range(self.args.creates)]
        keys = [f"{RAW_PREFIX}/{round_no}/{p.metadata.name}".encode() for p in pods]
        values = [stored_bytes(p) for p in pods]
        members = self.etcd

        async def op(w: int, i: int) -> None:
            await members[w % len(members)].put(keys[i], values[i])
        return await self.phase(f"raw etcd #{round_no}", op)

    async def phase(self, name: str, op: Callable[[int, int], Awaitable[None]]) -> Phase:
        log(f"create phase {name}: {self.args.creates} objects at concurrency "
            f"{self.args.concurrency}")
        self.meter.start()
        seconds, failures = await drive(self.args.creates, self.args.concurrency, op)
        phase = Phase(name, self.args.creates, seconds, failures, self.meter.busy())
        log(f"  {phase.rate:.0f}/s ({len(failures)} failures)")
        return phase

    async def warm_up(self) -> None:
        """Connect every channel and run both write paths for a while before measuring."""
        ns = await self.namespace("bench-warmup")
        n, c = max(50, self.args.creates // 20), self.args.concurrency
        pods = [make_pod(f"w-{i}", ns) for i in range(n)]
        await drive(n, c, lambda w, i: self.api[w % len(self.api)].create(pods[i]))
        await drive(n, c, lambda w, i: self.etcd[w % len(self.etcd)].put(
            f"{RAW_PREFIX}/warmup/{i}".encode(), stored_bytes(pods[i])))

    async def create_throughput(self) -> CreateResult:
        await self.warm_up()
        rounds = []
        for r in range(1, self.args.rounds + 1):
            raw = await self.raw_phase(r)
            rounds.append(Round(raw, await self.api_phase(r)))
        stored = await self.etcd[0].get(kinds.key(kinds.by_name("Pod"), "bench-create-1",
                                                  "pod-0").encode())
        raw = await self.etcd[0].get(f"{RAW_PREFIX}/1/pod-0".encode())
        return CreateResult(rounds, len(stored), len(raw))

    # ------------------------------------------------------------ 2. watch latency

    def plans(self, ns: str, watchers: int, procs: int) -> list[WatchPlan]:
        share = [watchers // procs + (i < watchers % procs) for i in range(procs)]
        return [WatchPlan(self.cluster.servers, ns, n, self.args.channels, self.args.events)
                for n in share if n]

    async def watch_latency(self, scenario: int, watchers: int, procs: int) -> WatchResult:
        ns = await self.namespace(f"bench-watch-{scenario}")
        log(f"watch scenario: {watchers} watchers in {procs} client process(es)")
        self.children.spawn(self.plans(ns, watchers, procs))
        try:
            return await self.measure_watch(ns, watchers, procs, scrape=scenario == 2)
        finally:
            self.children.stop()

    async def measure_watch(self, ns: str, watchers: int, procs: int,
                            scrape: bool) -> WatchResult:
        opened = sum(n for (n,) in await self.children.expect("established", ESTABLISH_TIMEOUT))
        log(f"  {opened}/{watchers} watches established")
        await self.api[0].create(make_pod(WARMUP, ns))
        warm = sum(n for (n,) in await self.children.expect("warm", ESTABLISH_TIMEOUT))
        log(f"  {warm}/{watchers} watchers saw the warm-up pod")
        if scrape:
            self.report.counts_loaded = scrape_watch_counts(self.cluster)
        self.meter.start()
        first_send = time.time()
        create_ms = await self.send_events(ns)
        self.children.send(DELIVERY_GRACE)
        results = await self.children.expect("result", DELIVERY_GRACE + 60)
        busy = self.meter.busy()
        result = WatchResult(watchers, procs, self.args.events, self.args.rate, first_send,
                             create_ms, busy, self.meter.elapsed)
        for tally, busy in results:
            result.add(tally, busy)
        log(f"  received {len(result.latencies_ms)}/{result.expected}, "
            f"p50 {result.pct(50):.1f} ms, p99 {result.pct(99):.1f} ms")
        return result

    async def send_events(self, ns: str) -> list[float]:
        """Create the measured pods at the paced rate; returns each create's latency (ms)."""
        create_ms: list[float] = []

        async def one(k: int) -> None:
            sent = time.time()
            await self.api[k % len(self.api)].create(make_pod(f"ev-{k}", ns, sent))
            create_ms.append((time.time() - sent) * 1000)

        start = time.monotonic()
        tasks = []
        for k in range(self.args.events):
            await asyncio.sleep(max(0.0, start + k / self.args.rate - time.monotonic()))
            tasks.append(asyncio.create_task(one(k)))
        await asyncio.gather(*tasks)
        return create_ms


class RawEtcd:
    """One etcd member's KV API, reached as the apiservers reach it (TLS with their
    client certificate, unless the cluster is --insecure)."""

    def __init__(self, endpoint: str, tls: EtcdTls | None) -> None:
        self._channel = grpc.aio.secure_channel(endpoint, tls.credentials()) if tls \
            else grpc.aio.insecure_channel(endpoint)
        self._kv = rpc_grpc.KVStub(self._channel)

    async def put(self, key: bytes, value: bytes) -> None:
        await self._kv.Put(rpc.PutRequest(key=key, value=value))

    async def get(self, key: bytes) -> bytes:
        found = await self._kv.Range(rpc.RangeRequest(key=key))
        return found.kvs[0].value if found.kvs else b""

    async def close(self) -> None:
        await self._channel.close()


# ---------------------------------------------------------------- report

def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        model = next((line.split(":", 1)[1].strip() for line in f
                      if line.startswith("model name")), model)
    mem = ""
    with contextlib.suppress(OSError, StopIteration), open("/proc/meminfo") as f:
        kib = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
        mem = f", {kib / 2**20:.0f} GiB RAM"
    return f"{len(os.sched_getaffinity(0))} CPUs (nproc), {model}{mem}"


def versions() -> str:
    etcd = "etcd ?"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["etcd", "--version"], capture_output=True, text=True, timeout=10)
        etcd = "etcd " + out.stdout.splitlines()[0].replace("etcd Version:", "").strip()
    return f"Python {platform.python_version()}, {etcd}, {platform.system()} {platform.release()}"


def yes_no(ok: bool) -> str:
    return "**yes**" if ok else "**no**"


def fmt_busy(busy: dict[str, float]) -> str:
    return " / ".join(f"{busy.get(g, 0):.2f}" for g in ("bench", "apiservers", "etcd"))


def render(rep: Report) -> str:
    parts = [render_header(rep), render_targets(rep)]
    if rep.creates:
        parts.append(render_creates(rep))
    if rep.watches:
        parts.append(render_watches(rep))
    parts.append(render_watch_counts(rep))
    return "\n".join(parts)


def render_header(rep: Report) -> str:
    return f"""## API: create throughput, watch latency, etcd watches

* Date: {rep.started:%Y-%m-%d %H:%M} UTC; whole run {rep.duration:.0f} s
  (cluster start and stop included).
* Machine: {machine()}; {versions()}.
* Command: `{rep.command}` (from the repo root; `make bench` runs it with
  the defaults).
* Cluster: 3 etcd members and 3 apiservers as local processes (`LocalCluster`),
  fresh in a temporary directory, {_security(rep.args)}; the benchmark client
  runs on the same machine, so clients, apiservers and etcd share its CPUs.
"""


def _security(args: argparse.Namespace) -> str:
    if args.insecure:
        return "started with `--insecure` (no TLS, authentication or authorization)"
    return ("secure (TLS everywhere, client certificates, RBAC; the benchmark is the "
            "administrator)")


def _target_rows(rep: Report) -> list[tuple[str, str, bool]]:
    rows = []
    if rep.creates:
        ratio = rep.creates.ratio
        rows.append((f"apiserver create throughput ≥ {TARGET_RATIO}× raw etcd puts",
                     f"{ratio:.2f}× (median of {len(rep.creates.rounds)} rounds)",
                     ratio >= TARGET_RATIO))
    big = headline_watch(rep)
    if big:
        complete = len(big.latencies_ms) == big.expected
        rows.append((f"p99 delivery to {big.watchers} watchers ≤ {TARGET_P99_MS:.0f} ms",
                     f"p99 {big.pct(99):.0f} ms, {len(big.latencies_ms)}/{big.expected} "
                     "delivered", complete and big.pct(99) <= TARGET_P99_MS))
    counts = rep.counts_loaded
    if counts:
        n = len(kinds.KINDS)
        watches = ", ".join(f"{v:.0f}" for v in counts.apiserver_etcd_watches)
        rows.append((f"etcd watches per apiserver = number of kinds ({n})",
                     f"{watches} (with {big.watchers if big else 0} client watchers open)",
                     all(v == n for v in counts.apiserver_etcd_watches)))
    return rows


def render_targets(rep: Report) -> str:
    lines = ["### Targets", "", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {yes_no(ok)} |" for name, value, ok in _target_rows(rep)]
    return "\n".join(lines) + "\n"


def cpus() -> int:
    return len(os.sched_getaffinity(0))


def saturation(ours: float, machine: float) -> str:
    """Busy cores (ours, the whole machine's) against the CPU count, in words."""
    verdict = "saturated" if machine >= 0.85 * cpus() else "not saturated"
    return (f"{ours:.2f} cores busy in our processes, {machine:.2f} of {cpus()} on the "
            f"machine: CPU {verdict}")


def render_cpu_table(intro: str, groups: Sequence[str],
                     phases: Iterable[tuple[str, float, dict[str, float]]],
                     background: float) -> str:
    """The "### CPU" section: cores busy per group in each (phase, seconds, usage)."""
    lines = ["### CPU", "", intro, "",
             f"| phase | seconds | {' | '.join(groups)} | other | machine |",
             "|---|---|" + "---|" * (len(groups) + 2)]
    notes = []
    for phase, secs, used in phases:
        ours = sum(used.get(g, 0.0) for g in groups)
        other = max(used.get("machine", 0.0) - ours, 0.0)
        cells = " | ".join(f"{used.get(g, 0.0):.2f}" for g in groups)
        lines.append(f"| {phase} | {secs:.1f} | {cells} | {other:.2f} | "
                     f"{used.get('machine', 0.0):.2f} |")
        notes.append(f"{phase}: {saturation(ours, used.get('machine', 0.0))}")
    lines += ["", "; ".join(notes) + f" (other processes kept {background:.2f} cores busy "
              f"before the cluster started; {cpus()} CPUs)."]
    return "\n".join(lines) + "\n"


def render_creates(rep: Report) -> str:
    res = rep.creates
    assert res is not None
    a = rep.args
    lines = [
        "### 1. Create throughput", "",
        f"{a.creates} Pods (one container with a port and resource requests, two labels) per "
        f"phase, {a.concurrency} concurrent requests spread round-robin over the 3 apiservers "
        "(one pinned `ApiClient` each), against raw etcd puts of the same serialized bytes "
        "(one gRPC channel per etcd member, spread the same way, keys under "
        f"`{RAW_PREFIX}/`). Stored value: {res.api_value_bytes} bytes via the apiserver, "
        f"{res.raw_value_bytes} bytes raw. Both paths are warmed up first; then the phases "
        "alternate raw, api, raw, api.", "",
        "| round | raw etcd puts/s | apiserver creates/s | ratio | failures raw / api "
        "| cores busy, raw: bench / apiservers / etcd | cores busy, api | CPU ms per object, "
        "raw / api |",
        "|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(res.rounds, 1):
        lines.append(f"| {i} | {r.raw.rate:.0f} | {r.api.rate:.0f} | {r.ratio:.2f} | "
                     f"{len(r.raw.failures)} / {len(r.api.failures)} | {fmt_busy(r.raw.cpu)} | "
                     f"{fmt_busy(r.api.cpu)} | {r.raw.cpu_ms_per_op:.2f} / "
                     f"{r.api.cpu_ms_per_op:.2f} |")
    lines += ["", f"Headline ratio: **{res.ratio:.2f}×**, the median of the per-round ratios "
              "(with two rounds, their mean).", "", *create_notes(res)]
    failures = [f for r in res.rounds for f in (*r.raw.failures, *r.api.failures)]
    if failures:
        lines.append(f"First failure: `{failures[0]}`.")
    return "\n".join(lines) + "\n"


def create_notes(res: CreateResult) -> list[str]:
    last = res.rounds[-1]
    extra = last.api.cpu_ms_per_op - last.raw.cpu_ms_per_op
    return [
        f"Where the time goes (last round): raw phase {phase_saturation(last.raw)}; api phase "
        f"{phase_saturation(last.api)}. Client, apiservers and etcd share this machine's CPUs, so "
        "when it is saturated the throughput is set by the CPU each write costs all processes "
        f"together: {last.raw.cpu_ms_per_op:.2f} ms per raw put, "
        f"{last.api.cpu_ms_per_op:.2f} ms per create through an apiserver ({extra:+.2f} ms; "
        "that includes all three apiservers' watch caches decoding every new pod)."]


def headline_watch(rep: Report) -> WatchResult | None:
    """The first scenario with the most watchers (the first --watch-procs value)."""
    return max(rep.watches, key=lambda w: w.watchers, default=None)


def phase_saturation(phase: Phase) -> str:
    ours = sum(v for g, v in phase.cpu.items() if g != "machine")
    return saturation(ours, phase.cpu["machine"])


def render_watches(rep: Report) -> str:
    a = rep.args
    lines = [
        "### 2. Watch delivery latency", "",
        f"W client watches on Pods in one namespace, spread round-robin over the 3 apiservers "
        f"({a.channels} channels per apiserver per client process), each opened without a "
        "resourceVersion and counted as established at its initial BOOKMARK; then one warm-up "
        f"pod that every watcher must see; then {a.events} pods created at {a.rate:g}/s, each "
        "carrying its wall-clock send time (taken just before the Create call) in an "
        "annotation. Latency = arrival at the watcher − send time, so it includes the Create "
        "round trip through apiserver and etcd. The watchers run in client processes of their "
        "own (multiprocessing), apart from the driver that creates the events; the big "
        "scenario runs once per `--watch-procs` value (" + ", ".join(map(str, a.watch_procs))
        + " processes), to show how the client side's share of the CPU moves the result; the "
        "target uses the first.", "",
        "| watchers | client procs | delivered / expected | dup | p50 ms | p99 ms | max ms "
        "| create p50 ms | deliveries/s offered / achieved | cores busy: each client proc "
        "| apiservers / etcd |",
        "|---|---|---|---|---|---|---|---|---|---|---|"]
    for w in rep.watches:
        clients = ", ".join(f"{b:.2f}" for b in w.client_busy)
        lines.append(
            f"| {w.watchers} | {w.procs} | {len(w.latencies_ms)} / {w.expected} | "
            f"{w.duplicates} | {w.pct(50):.1f} | {w.pct(99):.1f} | {w.pct(100):.1f} | "
            f"{percentile(w.create_ms, 50):.1f} | {w.offered:.0f} / {w.achieved:.0f} | "
            f"{clients} | {w.server_busy['apiservers']:.2f} / {w.server_busy['etcd']:.2f} |")
    most = max(w.watchers for w in rep.watches)
    lines += [note for w in rep.watches if w.watchers == most for note in ("", *watch_notes(w))]
    for w in rep.watches:
        if w.failures:
            lines.append(f"{len(w.failures)} of the {w.watchers}-watcher scenario's watches "
                         f"failed; first: `{w.failures[0]}`.")
    return "\n".join(lines) + "\n"


def watch_notes(w: WatchResult) -> list[str]:
    clients = sum(w.client_busy)
    ours = clients + w.server_busy["apiservers"] + w.server_busy["etcd"] + w.server_busy["bench"]
    notes = [
        f"With {w.watchers} watchers in {w.procs} client process(es): the busiest used "
        f"{max(w.client_busy):.2f} cores, its event-loop thread {max(w.client_loop_busy):.2f} "
        "(that thread runs all the Python: near 1.0 would make the client the bottleneck); "
        f"client processes together {clients:.2f}, apiservers "
        f"{w.server_busy['apiservers']:.2f}, etcd {w.server_busy['etcd']:.2f}: "
        f"{saturation(ours, w.server_busy['machine'])}. Per delivered event that is "
        f"{w.cpu_us_per_delivery(w.server_busy['apiservers']):.0f} µs of apiserver CPU and "
        f"{w.cpu_us_per_delivery(clients):.0f} µs of client CPU, so {w.offered:.0f} "
        "deliveries/s need about "
        f"{w.cpu_us_per_delivery(w.server_busy['apiservers']) * w.offered / 1e6:.1f} cores "
        "of apiserver CPU alone."]
    if w.achieved < 0.9 * w.offered:
        notes.append(
            f"The cluster delivered {w.achieved:.0f} events/s against {w.offered:.0f} offered: "
            "it did not keep up, events queued, and the latency is mostly that backlog; it "
            "grows with the length of the run (`--events`), so it is not a steady-state delay.")
    return [" ".join(notes)]


def _row(label: str, values: Sequence[float]) -> str:
    return f"| {label} | " + " | ".join(f"{v:.0f}" for v in values) + " |"


def render_watch_counts(rep: Report) -> str:
    n = len(kinds.KINDS)
    big = max((w.watchers for w in rep.watches), default=0)
    states = [(f"{label} ({clients} client watchers)", counts)
              for label, counts, clients in (("idle", rep.counts_idle, 0),
                                             ("loaded", rep.counts_loaded, big))
              if counts is not None]
    lines = ["### 3. etcd watches", "",
             f"Number of kinds: {n} (`len(minik8s.kinds.KINDS)`). Scraped from each "
             "apiserver's and each etcd member's `/metrics` before any client watch was open "
             f"(idle) and while the {big} watchers of section 2 were open (loaded).", "",
             "| metric | apiserver-0 | apiserver-1 | apiserver-2 |", "|---|---|---|---|"]
    for state, counts in states:
        lines.append(_row(f"`apiserver_etcd_watches`, {state}", counts.apiserver_etcd_watches))
        lines.append(_row(f'`apiserver_registered_watchers{{kind="Pod"}}`, {state}',
                          counts.apiserver_client_watches))
    lines += ["", "| metric | etcd-0 | etcd-1 | etcd-2 |", "|---|---|---|---|"]
    lines += [_row(f"`etcd_debugging_mvcc_watcher_total`, {state}", counts.etcd_watchers)
              for state, counts in states]
    lines += ["", *watch_count_notes(states, n)]
    return "\n".join(lines) + "\n"


def watch_count_notes(states: list[tuple[str, WatchCounts]], kinds_count: int) -> list[str]:
    if not states:
        return []
    totals = ", ".join(f"{sum(c.etcd_watchers):.0f} {state}" for state, c in states)
    last = states[-1][1]
    members = sum(v > 0 for v in last.etcd_watchers)
    return [f"etcd watchers over all members: {totals} "
            f"(= {len(last.apiserver_etcd_watches)} apiservers × {kinds_count} kinds when "
            f"nothing else watches etcd). They sit on {members} of {len(last.etcd_watchers)} "
            "members: an apiserver's etcd client uses one member at a time (the first in "
            "`--etcd-servers`, or the next after one failed), for all its requests and "
            "watches."]


# ---------------------------------------------------------------- main

def _counts(text: str) -> list[int]:
    """A comma-separated list of positive integers ("1,2")."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("each value must be at least 1")
    return values


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__.split("\n")[0])
    p.add_argument("--creates", type=int, default=2000, help="objects per create phase")
    p.add_argument("--concurrency", type=int, default=32, help="concurrent create requests")
    p.add_argument("--rounds", type=int, default=2, help="raw/api phase pairs")
    p.add_argument("--watchers", type=int, default=1000, help="watchers of the big scenario")
    p.add_argument("--watch-procs", type=_counts, default=[1, 2],
                   help="client processes the big scenario's watchers are spread over; "
                        "a comma-separated list runs the scenario once per value (default 1,2)")
    p.add_argument("--channels", type=int, default=2,
                   help="gRPC channels per apiserver in each watch client process")
    p.add_argument("--events", type=int, default=100, help="events per watch scenario")
    p.add_argument("--rate", type=float, default=20.0, help="events per second")
    p.add_argument("--doc", type=Path, default=DOC, help="markdown file to write the report to")
    p.add_argument("--no-doc", action="store_true", help="only print the report")
    p.add_argument("--insecure", action="store_true",
                   help="a cluster without TLS, authentication and authorization, to "
                        "measure what they cost")
    p.add_argument("--keep-workdir", action="store_true",
                   help="keep the cluster's workdir (logs) after the run")
    args = p.parse_args(argv)
    for name in ("creates", "concurrency", "rounds", "watchers", "channels", "events"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.rate <= 0:
        p.error("--rate must be positive")
    return args


async def run(cluster: LocalCluster, report: Report) -> None:
    bench = Bench(cluster, report.args, report)
    try:
        await bench.run()
    finally:
        await bench.close()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, interrupt)
    report = Report(datetime.datetime.now(datetime.UTC),
                    shlex.join(["python", "-m", "bench.api", *argv]), args)
    began = time.monotonic()
    try:
        with local_cluster(args.keep_workdir, insecure=args.insecure) as cluster:
            log(f"cluster up in {time.monotonic() - began:.1f}s: apiservers {cluster.servers}")
            asyncio.run(run(cluster, report))
    except KeyboardInterrupt:
        log("interrupted; nothing written")
        return 130
    report.duration = time.monotonic() - began
    text = render(report)
    print(text)
    if not args.no_doc:
        write_section(args.doc, "api", text)
        log(f"wrote {args.doc}")
    return 0


if __name__ == "__main__":
    # Run main() from the importable module, so that what the spawned watch clients pickle
    # (bench.api.Tally, ...) names a module both sides can import (not __mp_main__).
    from bench import api

    sys.exit(api.main())
