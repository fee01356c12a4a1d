"""The cluster DNS on a fresh local cluster: queries per second, latency, propagation.

`python -m bench.dns` starts 1 etcd member and 1 apiserver (`LocalCluster`) and one DNS
replica (`python -m minik8s.cli.daemons dns --bind-address 127.0.0.1`, started here as a
subprocess; no --cluster-ip, so it does not register in kube-dns), then, for each size of
--sizes (default 100, then 10 000 Services):

1. **Services.** Creates ClusterIP Services without a selector (spread over a few
   namespaces) through `ApiClient`, at most --concurrency Create calls at a time, until
   there are that many, and waits until the replica answers the last one created.
2. **Load.** --clients client processes (multiprocessing, spawn), each with one
   non-blocking UDP socket on loopback driven by select(), send A queries for names drawn
   at random from those Services (a --nxdomain share of names that do not exist, in the
   same namespaces), for --duration seconds, all starting at the same moment. Every
   answer is checked (the Service's ClusterIP, or NXDOMAIN) and timed in the client, from
   its send() to its recv(). Two runs: closed loop (--window queries in flight per
   client, each answer sends the next: the replica's most queries/s), then paced (--rate
   queries/s offered in total on a fixed schedule, at most --paced-window in flight per
   client: the latency at the target load).
3. **Propagation.** --propagation Services (default 50) created one after another, one
   every --pace seconds, into a namespace of their own; from each Create call returning,
   a poller asks the replica for its name every --poll-interval seconds (5 ms) until the
   answer carries its ClusterIP.

The CPU of the replica (its event-loop thread apart, and how long that waited for a
CPU), of the load generator and of the rest is recorded per phase: they share the
machine's cores. Unless --no-profile (or without py-spy), an extra closed-loop run at the
largest size, not measured, is profiled with `py-spy record --gil` on the replica.

The report goes into docs/BENCHMARKS.md between the `bench:dns` markers. Everything is
bounded by --timeout (a clear failure, exit status 1, nothing written); the DNS process,
the client processes and the cluster are always stopped, also on error or Ctrl-C. All
traffic is to 127.0.0.1.
"""
from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import datetime
import math
import multiprocessing
import multiprocessing.connection
import os
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dnslib
from dnslib import QTYPE, RCODE, RR, DNSRecord

from bench.api import (
    cpus,
    machine,
    metric,
    percentile,
    saturation,
    scrape,
    versions,
    yes_no,
)
from bench.common import DOC, log
from bench.scheduler import (
    PROFILE_RATE,
    ClusterCpu,
    Profile,
    Profiler,
    busy,
    create_namespaces,
    profile_lines,
    run_benchmark,
    short_frame,
)
from minik8s import errors
from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from minik8s.dns.server import DURATION, REQUESTS, Resolver, _rdata
from minik8s.dns.zone import Zone
from minik8s.localcluster import DAEMON, LocalCluster, free_port

TARGET_QPS = 10_000.0        # queries/s one replica answers
TARGET_P99_MS = 5.0          # ms, at TARGET_QPS
TARGET_PROPAGATION = 1.0     # s, p99 Create returned → the name resolves at the replica
DOMAIN = "cluster.local"
NAMESPACES = tuple(f"dns-bench-{i}" for i in range(4))
PROPAGATION_NS = "dns-propagation"
QUERY_TIMEOUT = 1.0          # s: a query not answered by then is lost
PACED_SLACK = 0.002          # s a paced client may lag its schedule before it skips slots
START_DELAY = 1.5            # s from handing out a load plan to its synchronized start
READY_TIMEOUT = 60.0         # s for the replica to answer /readyz
POLL_REPLY_TIMEOUT = 0.5     # s a poller waits for one answer before asking again
PROFILE_SECONDS = 5.0
STAGE_QUERIES = 2000         # queries the in-process stage timing runs through
STAGE_REPEATS = 3            # its best of
DURATION_METRIC = "dns_request_duration_seconds"


class DnsBenchError(Exception):
    """A stage did not complete within --timeout, or went wrong."""


# ---------------------------------------------------------------- objects and names

def service(name: str, namespace: str) -> t.Service:
    return t.Service(metadata=t.ObjectMeta(name=name, namespace=namespace),
                     spec=t.ServiceSpec(type="ClusterIP", ports=[t.ServicePort(
                         name="http", port=80, target_port=t.IntOrString(int_val=8080))]))


def fqdn(name: str, namespace: str) -> str:
    return f"{name}.{namespace}.svc.{DOMAIN}"


def load_service(i: int) -> t.Service:
    return service(f"svc-{i:05d}", NAMESPACES[i % len(NAMESPACES)])


def absent_names(count: int) -> list[str]:
    """Names in the Services' namespaces that no Service has: NXDOMAIN."""
    return [fqdn(f"absent-{i:05d}", NAMESPACES[i % len(NAMESPACES)]) for i in range(count)]


# ---------------------------------------------------------------- the load generator

@dataclass
class LoadPlan:
    server: tuple[str, int]
    names: list[tuple[str, str]]   # (name, its ClusterIP)
    absent: list[str]
    nxdomain: float                # share of queries for absent names
    start_at: float                # time.monotonic() (one clock for all processes)
    duration: float
    window: int                    # queries in flight at most
    rate: float = 0.0              # queries/s on a fixed schedule; 0: closed loop
    seed: int = 0


@dataclass
class LoadResult:
    sent: int = 0
    answered: int = 0              # all answers, also those after the end
    in_window: int = 0             # answers that arrived before the end
    lost: int = 0                  # not answered within QUERY_TIMEOUT
    wrong: int = 0                 # an answer that is not the Service's address (or NXDOMAIN)
    send_blocked: int = 0          # send() found the socket's buffer full
    skipped: int = 0               # paced: slots of the schedule not sent (it fell behind)
    late_start: float = 0.0        # s after start_at the first query went out
    cpu: float = 0.0               # this process's CPU seconds over the run
    latencies: bytes = b""         # array('d') of seconds, one per answered query


def load_client_main(conn: multiprocessing.connection.Connection) -> None:
    """A load generator process: run each plan received, send back its result; None ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the parent stops us
    conn.send("ready")
    while (plan := conn.recv()) is not None:
        conn.send(run_load(plan))
    conn.close()


def run_load(plan: LoadPlan) -> LoadResult:
    """Send queries from one non-blocking UDP socket until plan.duration has passed, then
    wait for the stragglers (QUERY_TIMEOUT at most)."""
    rng = random.Random(plan.seed)
    present = [(DNSRecord.question(name, "A").pack()[2:], socket.inet_aton(ip))
               for name, ip in plan.names]
    absent = [(DNSRecord.question(name, "A").pack()[2:], b"") for name in plan.absent]
    res, lat = LoadResult(), array.array("d")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.connect(plan.server)
    sock.setblocking(False)
    pending: dict[int, tuple[float, bytes]] = {}
    pack, monotonic, recv, send = struct.Struct("!H").pack, time.monotonic, sock.recv, sock.send
    ident, paced = 0, plan.rate > 0
    interval = 1.0 / plan.rate if paced else 0.0
    end = plan.start_at + plan.duration
    while (now := monotonic()) < plan.start_at:
        time.sleep(min(plan.start_at - now, 0.05))
    cpu0, next_send, expired_at = time.process_time(), plan.start_at, plan.start_at
    res.late_start = monotonic() - plan.start_at
    try:
        while True:
            now = monotonic()
            if now < end:
                if paced and now - next_send > PACED_SLACK:   # behind: skip, do not burst
                    missed = int((now - next_send) / interval)
                    res.skipped += missed
                    next_send += missed * interval
                while len(pending) < plan.window and (not paced or next_send <= now):
                    ident = (ident + 1) & 0xFFFF
                    if ident in pending:
                        continue
                    body, expect = (rng.choice(absent) if absent and rng.random() < plan.nxdomain
                                    else rng.choice(present))
                    try:
                        send(pack(ident) + body)
                    except BlockingIOError:
                        res.send_blocked += 1
                        break
                    pending[ident] = (now, expect)
                    res.sent += 1
                    next_send += interval
            elif not pending:
                break
            if now - expired_at > 0.1:
                expired_at = now
                for key in [k for k, (sent, _) in pending.items() if now - sent > QUERY_TIMEOUT]:
                    del pending[key]
                    res.lost += 1
                if now > end + QUERY_TIMEOUT:
                    break
            wait = 0.05 if not paced or len(pending) >= plan.window else next_send - now
            if not select.select([sock], [], [], max(min(wait, 0.05), 0))[0]:
                continue
            while True:
                try:
                    data = recv(4096)
                except BlockingIOError:
                    break
                got = monotonic()
                entry = pending.pop((data[0] << 8) | data[1], None)
                if entry is None:
                    continue   # answered after it was counted lost
                sent, expect = entry
                lat.append(got - sent)
                res.answered += 1
                res.in_window += got <= end
                rcode, count = data[3] & 0x0F, (data[6] << 8) | data[7]
                if (rcode != 3) if not expect else (rcode or count != 1 or data[-4:] != expect):
                    res.wrong += 1
    finally:
        sock.close()
    res.lost += len(pending)
    res.cpu = time.process_time() - cpu0
    res.latencies = lat.tobytes()
    return res


@dataclass
class LoadClients:
    """The load generator processes, started once and given one plan per run."""

    procs: list[multiprocessing.process.BaseProcess] = field(default_factory=list)
    conns: list[multiprocessing.connection.Connection] = field(default_factory=list)

    def spawn(self, n: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        for i in range(n):
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(target=load_client_main, args=(theirs,), daemon=True,
                               name=f"bench-dns-load-{i}")
            proc.start()
            theirs.close()
            self.procs.append(proc)
            self.conns.append(ours)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid]

    async def ready(self, timeout: float) -> None:
        """Each process started and imported what it needs (not counted in a phase's CPU)."""
        def hello(conn: multiprocessing.connection.Connection) -> None:
            if not conn.poll(timeout) or conn.recv() != "ready":
                raise DnsBenchError(f"a load client did not start within {timeout:.0f} s")
        await asyncio.gather(*(asyncio.to_thread(hello, c) for c in self.conns))

    async def run(self, plans: Sequence[LoadPlan], timeout: float) -> list[LoadResult]:
        for conn, plan in zip(self.conns, plans, strict=True):
            conn.send(plan)

        def recv(conn: multiprocessing.connection.Connection) -> LoadResult:
            if not conn.poll(timeout):
                raise DnsBenchError(f"a load client sent no result within {timeout:.0f} s")
            return conn.recv()
        return list(await asyncio.gather(*(asyncio.to_thread(recv, c) for c in self.conns)))

    def stop(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send(None)
        for proc in self.procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for conn in self.conns:
            conn.close()
        self.procs.clear()
        self.conns.clear()


# ---------------------------------------------------------------- the replica

@dataclass
class Replica:
    """The DNS process, started and stopped here (not one of the cluster's)."""

    workdir: Path
    servers: list[str]
    port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "logs" / "dns.log"

    @property
    def pid(self) -> int:
        """The running process's pid; 0 once it exited (its pid may be someone else's)."""
        return self.proc.pid if self.proc and self.proc.poll() is None else 0

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/metrics"

    def start(self) -> None:
        argv = [*DAEMON, "dns", "--server", ",".join(self.servers), "--bind-address",
                "127.0.0.1", "--port", str(self.port), "--http-port", str(self.http_port)]
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                         env=dict(os.environ, PYTHONUNBUFFERED="1"),
                                         start_new_session=True, cwd=self.workdir)

    async def ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is None or self.proc.poll() is not None:
                raise DnsBenchError(f"the DNS replica exited; see {self.log_path}")
            with contextlib.suppress(OSError):
                await asyncio.to_thread(scrape, f"http://127.0.0.1:{self.http_port}/readyz")
                return
            if time.monotonic() > deadline:
                raise DnsBenchError(f"the DNS replica not ready after {timeout:.0f} s; see "
                                    f"{self.log_path}")
            await asyncio.sleep(0.1)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Querier:
    """One UDP socket to the replica, for the benchmark's own queries (any number at once)."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.waiting: dict[int, asyncio.Future[bytes]] = {}
        self.ident = 0

    async def open(self, port: int) -> None:
        querier = self

        class Protocol(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, _addr: object) -> None:
                fut = querier.waiting.pop((data[0] << 8) | data[1], None)
                if fut is not None and not fut.done():
                    fut.set_result(data)

        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            Protocol, remote_addr=("127.0.0.1", port))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def resolves(self, name: str, ip: str, timeout: float = POLL_REPLY_TIMEOUT) -> bool:
        """Whether the replica answers name with exactly ip (False on any other answer)."""
        assert self.transport is not None
        self.ident = (self.ident + 1) & 0xFFFF
        while self.ident in self.waiting:
            self.ident = (self.ident + 1) & 0xFFFF
        ident = self.ident
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.waiting[ident] = fut
        self.transport.sendto(struct.pack("!H", ident) +
                              DNSRecord.question(name, "A").pack()[2:])
        try:
            data = await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            self.waiting.pop(ident, None)
            return False
        reply = DNSRecord.parse(data)
        return [str(r.rdata) for r in reply.rr] == [ip]

    async def until_resolves(self, name: str, ip: str, interval: float, deadline: float,
                             since: float) -> tuple[float, int]:
        """Ask every `interval` seconds (from `since`) until the answer is ip: when the
        answer came (time.monotonic()) and how many queries it took."""
        for polls in range(1, 1 << 30):
            if await self.resolves(name, ip):
                return time.monotonic(), polls
            now = time.monotonic()
            if now > deadline:
                raise DnsBenchError(f"{name} did not resolve to {ip} within --timeout")
            await asyncio.sleep(max(since + polls * interval - now, 0))
        raise AssertionError("unreachable")


# ---------------------------------------------------------------- in-process costs

@dataclass
class Stages:
    """CPU (this thread's) of the replica's steps, in-process on the same zone: Zone.rebuild
    once, and per query each step of Resolver.handle (as server.py does them)."""

    services: int
    rebuild_ms: float = 0.0        # a fresh Zone's first rebuild (the replica's start)
    next_rebuild_ms: float = 0.0   # rebuilt again with one Service more (each event's)
    per_query_us: dict[str, float] = field(default_factory=dict)


def best_cpu(fn: Callable[[], object]) -> float:
    """The least thread CPU seconds of STAGE_REPEATS calls of fn."""
    best = math.inf
    for _ in range(STAGE_REPEATS):
        began = time.thread_time()
        fn()
        best = min(best, time.thread_time() - began)
    return best


def stage_costs(names: Sequence[tuple[str, str]], nxdomain: float) -> Stages:
    services = []
    for i, (_name, ip) in enumerate(names):
        svc = load_service(i)
        svc.spec.cluster_ip = ip
        services.append(svc)
    stages = Stages(len(services),
                    1000 * best_cpu(lambda: Zone(DOMAIN).rebuild(services, [], [])))
    zone = Zone(DOMAIN)
    zone.rebuild(services, [], [])
    more = iter([[*services, service(f"one-more-{k}", PROPAGATION_NS)]
                 for k in range(STAGE_REPEATS)])
    stages.next_rebuild_ms = 1000 * best_cpu(lambda: zone.rebuild(next(more), [], []))
    zone.rebuild(services, [], [])
    rng, absent = random.Random(0), absent_names(len(names))
    queries = [DNSRecord.question(rng.choice(absent) if rng.random() < nxdomain
                                  else rng.choice(names)[0], "A").pack()
               for _ in range(STAGE_QUERIES)]
    requests = [DNSRecord.parse(q) for q in queries]
    asked = [(str(r.q.qname), QTYPE.get(r.q.qtype, str(r.q.qtype))) for r in requests]
    answers = [zone.answer(name, qtype) for name, qtype in asked]

    def replies() -> list[DNSRecord]:
        out = []
        for request, answer in zip(requests, answers, strict=True):
            reply = request.reply()
            reply.header.rcode = getattr(RCODE, answer.rcode)
            reply.header.aa = int(answer.rcode != "REFUSED")
            for record in answer.records:
                reply.add_answer(RR(record.name + ".", getattr(QTYPE, record.rtype),
                                    rdata=_rdata(record), ttl=record.ttl))
            out.append(reply)
        return out

    def metrics() -> None:
        for (_name, qtype), answer in zip(asked, answers, strict=True):
            REQUESTS.labels(qtype, answer.rcode).inc()
            DURATION.observe(1e-4)

    resolver, built = Resolver(zone), replies()

    def handle_all() -> None:
        for q in queries:
            with contextlib.suppress(StopIteration):
                resolver.handle(q).send(None)   # no await for the zone's own names

    steps: list[tuple[str, Callable[[], object]]] = [
        ("parse the query (`DNSRecord.parse`)", lambda: [DNSRecord.parse(q) for q in queries]),
        ("its name and type (`str(qname)`, `QTYPE`)",
         lambda: [(str(r.q.qname), QTYPE.get(r.q.qtype, str(r.q.qtype))) for r in requests]),
        ("look up (`Zone.answer`)", lambda: [zone.answer(n, qt) for n, qt in asked]),
        ("build the reply (`reply()`, an `RR` per record)", replies),
        ("pack it (`DNSRecord.pack`)", lambda: [r.pack() for r in built]),
        ("metrics (a counter and a histogram)", metrics),
        ("**all of `Resolver.handle`**", handle_all)]
    for label, fn in steps:
        stages.per_query_us[label] = 1e6 * best_cpu(fn) / len(queries)
    return stages


# ---------------------------------------------------------------- results

@dataclass
class Usage:
    seconds: float = 0.0
    cores: dict[str, float] = field(default_factory=dict)   # ClusterCpu groups, busy


@dataclass
class Load:
    """One load run: closed loop or paced."""

    services: int
    paced: bool
    clients: int
    window: int
    rate: float
    duration: float
    results: list[LoadResult]
    usage: Usage
    server_seconds: float = 0.0   # the replica's own histogram: sum and count over the run
    server_count: float = 0.0

    def total(self, name: str) -> int:
        return sum(getattr(r, name) for r in self.results)

    @property
    def qps(self) -> float:
        return self.total("in_window") / self.duration

    @property
    def latencies_ms(self) -> list[float]:
        out = array.array("d")
        for r in self.results:
            out.frombytes(r.latencies)
        return [1000 * x for x in out] + [math.inf] * self.total("lost")

    def ms(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    @property
    def p99_ms(self) -> float:
        return self.ms(99) if self.total("answered") else math.inf

    @property
    def cpu_per_answer_us(self) -> float:
        """The replica's CPU over the run per answer that arrived within it."""
        cpu = self.usage.cores.get("dns", 0.0) * self.usage.seconds
        return 1e6 * cpu / self.total("in_window") if self.total("in_window") else math.nan

    @property
    def server_us(self) -> float:
        return 1e6 * self.server_seconds / self.server_count if self.server_count else math.nan


@dataclass
class Created:
    services: int          # Services of the size, all created
    new: int               # created in this step
    seconds: float
    live: bool             # the replica ran while they were created
    ready: float = 0.0     # not live: the replica started → /readyz answered
    to_resolved: float = 0.0   # live: the last Create returned, else the replica started →
    #                            the replica answered the last one created
    usage: Usage = field(default_factory=Usage)


@dataclass
class Propagation:
    services: int          # Services already there (the load's)
    created: int
    pace: float
    create_calls: list[float] = field(default_factory=list)   # seconds per Create call
    resolved: list[float] = field(default_factory=list)       # Create returned → resolves
    polls: list[int] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)


@dataclass
class Size:
    services: int
    created: Created | None = None
    loads: list[Load] = field(default_factory=list)
    propagation: Propagation | None = None
    stages: Stages | None = None

    def load(self, paced: bool) -> Load | None:
        return next((x for x in self.loads if x.paced == paced), None)


@dataclass
class Report:
    started: datetime.datetime
    command: str
    args: argparse.Namespace
    background: float = 0.0
    sizes: list[Size] = field(default_factory=list)
    profile: Profile | None = None
    profile_error: str = ""
    profile_load: Load | None = None
    duration: float = 0.0


# ---------------------------------------------------------------- the run

class Bench:
    def __init__(self, cluster: LocalCluster, report: Report) -> None:
        self.cluster, self.report, self.args = cluster, report, report.args
        self.client = ApiClient(cluster.servers)
        self.replica = Replica(cluster.workdir, cluster.servers)
        self.clients = LoadClients()
        self.querier = Querier()
        self.cpu: ClusterCpu | None = None
        self.cpu_task: asyncio.Task | None = None
        self.tasks: list[asyncio.Task] = []
        self.deadline = math.inf
        self.names: list[tuple[str, str]] = []   # (name, ClusterIP) of the load's Services

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.querier.close()
        self.clients.stop()
        self.replica.stop()
        await self.client.close()

    def left(self) -> float:
        return self.deadline - time.monotonic()

    async def bounded(self, work: Awaitable[Any], what: str) -> Any:
        try:
            return await asyncio.wait_for(work, max(self.left(), 0.01))
        except TimeoutError:
            raise DnsBenchError(f"{what} within --timeout {self.args.timeout:g} s (rerun "
                                f"with --keep-workdir and read logs/dns.log)") from None

    def usage_since(self, mark: tuple[dict[str, float], float]) -> Usage:
        assert self.cpu is not None
        now, seconds = self.cpu.totals(), time.monotonic() - mark[1]
        return Usage(seconds, busy(mark[0], now, seconds))

    def mark(self) -> tuple[dict[str, float], float]:
        assert self.cpu is not None
        return self.cpu.totals(), time.monotonic()

    async def run(self) -> None:
        self.deadline = time.monotonic() + self.args.timeout
        self.clients.spawn(self.args.clients)
        await self.clients.ready(max(min(READY_TIMEOUT, self.left()), 0.01))
        await self.querier.open(self.replica.port)
        self.new_cpu()
        await create_namespaces(self.client, *NAMESPACES, PROPAGATION_NS)
        if self.args.live_creates:
            await self.start_replica()
        for size in self.args.sizes:
            step = Size(size)
            self.report.sizes.append(step)
            step.created = await self.create_services(size)
            for paced in (False, True) if self.args.rate > 0 else (False,):
                step.loads.append(await self.load(size, paced))
            step.stages = await asyncio.to_thread(stage_costs, self.names[:size],
                                                  self.args.nxdomain)
            if self.args.propagation:
                step.propagation = await self.propagation(size)
        if not self.args.no_profile:
            await self.profile()

    def new_cpu(self) -> None:
        """A fresh CPU account, after the replica stopped: the pid it had may be reused by
        any process, which the old account would then count as the replica."""
        if self.cpu_task is not None:
            self.cpu_task.cancel()
        self.cpu = ClusterCpu(self.cluster, lambda: self.replica.pid, extra={
            "dns": [], "load generator": self.clients.pids})
        self.cpu_task = asyncio.create_task(self.cpu.run())
        self.tasks.append(self.cpu_task)

    async def start_replica(self) -> float:
        """Start the DNS process; the seconds until it answered /readyz."""
        assert self.cpu is not None
        began = time.monotonic()
        self.replica.start()
        self.cpu.extra["dns"].append(self.replica.pid)
        log(f"DNS replica pid {self.replica.pid} on 127.0.0.1:{self.replica.port} (UDP)")
        await self.replica.ready(max(min(READY_TIMEOUT, self.left()), 0.01))
        return time.monotonic() - began

    # ------------------------------------------------------------ services

    async def create_services(self, size: int) -> Created:
        """Services up to `size` in all; unless --live-creates, with the replica stopped
        meanwhile and started again after."""
        live = self.args.live_creates
        if not live:
            self.replica.stop()
            self.new_cpu()
        first, mark = len(self.names), self.mark()
        made: dict[int, tuple[str, str, float]] = {}

        limit = asyncio.Semaphore(self.args.concurrency)
        began = time.monotonic()

        async def one(i: int) -> None:
            async with limit:
                try:
                    svc = await self.client.create(load_service(i))
                except errors.ApiError as exc:
                    raise DnsBenchError(f"creating Service {i}: {exc}") from exc
            made[i] = (fqdn(svc.metadata.name, svc.metadata.namespace), svc.spec.cluster_ip,
                       time.monotonic())
            if len(made) % 1000 == 0:
                log(f"  {len(made)} created, {time.monotonic() - began:.0f} s")

        seconds = 0.0
        if size > first:
            log(f"creating Services {first} .. {size - 1}, {self.args.concurrency} at a time")
            await self.bounded(asyncio.gather(*(one(i) for i in range(first, size))),
                               f"only {len(made)}/{size - first} Services created")
            seconds = time.monotonic() - began
            self.names += [made[i][:2] for i in range(first, size)]
            log(f"{size - first} Services created in {seconds:.1f} s")
        created = Created(len(self.names), len(self.names) - first, seconds, live)
        if made:
            name, ip, since = max(made.values(), key=lambda m: m[2])
        else:
            (name, ip), since = self.names[-1], time.monotonic()
        if not live:
            since = time.monotonic()
            created.ready = await self.start_replica()
        answered, _ = await self.bounded(self.querier.until_resolves(
            name, ip, self.args.poll_interval, self.deadline, since),
            f"the replica did not answer {name}")
        created.to_resolved = answered - since
        created.usage = self.usage_since(mark)
        log(f"the replica answered the last Service {created.to_resolved:.2f} s after "
            + ("its Create returned" if live else "it was started"))
        return created

    # ------------------------------------------------------------ load

    async def load(self, size: int, paced: bool, window: int = 0,
                   duration: float = 0.0) -> Load:
        a = self.args
        n = a.clients
        window = window or (a.paced_window if paced else a.window)
        duration = duration or a.duration
        if self.left() < duration + START_DELAY + QUERY_TIMEOUT + 5:
            raise DnsBenchError(f"no time left for a {duration:g} s load run within --timeout")
        start = time.monotonic() + START_DELAY
        plans = [LoadPlan(("127.0.0.1", self.replica.port), self.names, absent_names(size),
                          a.nxdomain, start, duration, window, a.rate / n if paced else 0.0,
                          seed=hash((size, paced, i)) & 0xFFFFFFFF) for i in range(n)]
        what = (f"paced {a.rate:.0f} queries/s" if paced
                else f"closed loop, {window} in flight per client")
        log(f"{size} Services: {n} clients, {what}, {duration:g} s")
        results = asyncio.create_task(
            self.clients.run(plans, duration + QUERY_TIMEOUT + START_DELAY + 30))
        try:
            before = await asyncio.to_thread(scrape, self.replica.metrics_url)
            await asyncio.sleep(max(start - time.monotonic(), 0))
            mark = self.mark()
            await asyncio.sleep(max(start + duration - time.monotonic(), 0))
            usage = self.usage_since(mark)   # the load's seconds, not the stragglers'
            done = await results
        finally:
            results.cancel()
        after = await asyncio.to_thread(scrape, self.replica.metrics_url)
        run = Load(size, paced, n, window, a.rate if paced else 0.0, duration, done, usage,
                   metric(after, f"{DURATION_METRIC}_sum") - metric(before, f"{DURATION_METRIC}_sum"),
                   metric(after, f"{DURATION_METRIC}_count")
                   - metric(before, f"{DURATION_METRIC}_count"))
        log(f"  {run.qps:.0f} answers/s, p50 {run.ms(50):.2f} ms, p99 {run.p99_ms:.2f} ms, "
            f"lost {run.total('lost')}, wrong {run.total('wrong')}; replica "
            f"{usage.cores.get('dns', 0):.2f} cores, load generator "
            f"{usage.cores.get('load generator', 0):.2f}")
        if run.total("wrong"):
            raise DnsBenchError(f"{run.total('wrong')} wrong answers under load (a present "
                                "name without its ClusterIP, or an absent one not NXDOMAIN)")
        return run

    # ------------------------------------------------------------ propagation

    async def propagation(self, size: int) -> Propagation:
        a = self.args
        prop = Propagation(size, a.propagation, a.pace)
        polls: list[asyncio.Task] = []
        mark, began = self.mark(), time.monotonic()
        log(f"{size} Services: creating {a.propagation} more, one every {a.pace:g} s, "
            "each polled until it resolves")

        async def poll(name: str, ip: str, done: float) -> None:
            answered, count = await self.querier.until_resolves(
                name, ip, a.poll_interval, self.deadline, done)
            prop.resolved.append(answered - done)
            prop.polls.append(count)

        try:
            for k in range(a.propagation):
                await asyncio.sleep(max(began + k * a.pace - time.monotonic(), 0))
                sent = time.monotonic()
                svc = await self.bounded(self.client.create(
                    service(f"new-{size}-{k:02d}", PROPAGATION_NS)), "a Create did not return")
                done = time.monotonic()
                prop.create_calls.append(done - sent)
                polls.append(asyncio.create_task(poll(
                    fqdn(svc.metadata.name, PROPAGATION_NS), svc.spec.cluster_ip, done)))
            await self.bounded(asyncio.gather(*polls), "the new Services did not all resolve")
        finally:
            for task in polls:
                task.cancel()
        prop.usage = self.usage_since(mark)
        log(f"  Create returned → resolves: p50 {percentile(prop.resolved, 50):.3f} s, "
            f"p99 {percentile(prop.resolved, 99):.3f} s, max {max(prop.resolved):.3f} s")
        return prop

    # ------------------------------------------------------------ profile

    async def profile(self) -> None:
        """An extra closed-loop run at the largest size, not measured, under py-spy."""
        out = self.cluster.workdir / "dns.pyspy.txt"
        prof = Profiler("DNS replica under closed-loop load", self.replica.pid, out)
        prof.start()
        if prof.proc is None:
            self.report.profile_error = prof.error
            return
        try:
            await asyncio.sleep(0.5)   # py-spy attaches
            self.report.profile_load = await self.load(len(self.names), False,
                                                       duration=PROFILE_SECONDS)
            self.report.profile = await asyncio.to_thread(prof.stop)
        finally:
            prof.kill()
        if self.report.profile is None:
            self.report.profile_error = prof.error
        elif out.exists():
            add_totals(self.report.profile, out.read_text(), ("minik8s/dns/", "dnslib/"))


def add_totals(prof: Profile, raw: str, prefixes: Sequence[str]) -> None:
    """Inclusive counts for the frames in files under prefixes (Profile.parse keeps them for
    the scheduler's and apiserver's packages only)."""
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        for frame in {short_frame(f) for f in stack.split(";")}:
            where = frame.partition(" (")[2]
            if where.startswith(tuple(prefixes)):
                prof.total[frame] += int(count)


# ---------------------------------------------------------------- report

def render(rep: Report) -> str:
    parts = [render_header(rep), render_targets(rep), render_load(rep), render_services(rep),
             render_propagation(rep), render_cpu(rep), render_stages(rep)]
    if rep.profile is not None or rep.profile_error:
        parts.append(render_profile(rep))
    return "\n".join(parts)


def render_header(rep: Report) -> str:
    a = rep.args
    sizes = " and ".join(f"{s:,}".replace(",", " ") for s in a.sizes)
    return f"""## Cluster DNS: queries per second, latency, and a new Service's propagation

* Date: {rep.started:%Y-%m-%d %H:%M} UTC; whole run {rep.duration:.0f} s (cluster start
  and stop, and {sizes} Services' creation, included).
* Machine: {machine()}; {versions()}; dnslib {dnslib.version}. Before the cluster
  started, other processes kept {rep.background:.2f} of its cores busy.
* Command: `{rep.command}` (from the repo root; `make bench` runs it with the defaults).
* Cluster: 1 etcd member and 1 apiserver as local processes (`LocalCluster`), fresh in a
  temporary directory, and one DNS replica (`python -m minik8s.cli.daemons dns
  --bind-address 127.0.0.1`, started by the benchmark; not registered in kube-dns). No
  scheduler, controllers or kubelets: no Pods and no Endpoints, so the zone holds the
  Services' A and PTR records. The replica, the load generator, the apiserver and etcd
  share the machine's {cpus()} CPUs; the replica answers on one thread (its event loop).
* Services: ClusterIP Services without a selector (one named port), spread over
  {len(NAMESPACES)} namespaces, created through `ApiClient` at most {a.concurrency} at a
  time; each size is reached by adding Services to the previous one. {"The replica runs "
  "while they are created (`--live-creates`)" if a.live_creates else "The replica is "
  "stopped while they are created and started again after (see below why)"}; then the
  benchmark polls it until it answers the last Service created.
* Load: {a.clients} client processes (multiprocessing), each with one non-blocking UDP
  socket on loopback driven by `select()`, send A queries for names drawn at random from
  the size's Services, {100 * a.nxdomain:.0f}% of them for absent names in the same
  namespaces (NXDOMAIN), for {a.duration:g} s, all starting together. Every answer is
  checked (the Service's ClusterIP, or NXDOMAIN) and timed in the client from its
  `send()` to its `recv()`, so the latency includes the client's own loop and the socket
  buffers on both sides. **Closed loop**: {a.window} queries in flight per client, each
  answer sends the next (the most the replica answers; by Little's law the latency is
  then about the {a.clients * a.window} queries in flight divided by the rate).
  **Paced**: {a.rate:.0f} queries/s in total on a fixed schedule, at most
  {a.paced_window} in flight per client (the latency at the target load); a client that
  falls more than {1000 * PACED_SLACK:g} ms behind its schedule (the window full, or
  no CPU) skips the slots it missed rather than sending them in a burst. A query not
  answered within {QUERY_TIMEOUT:g} s counts as lost (and as an infinite latency in the
  percentiles). Queries/s counts the answers that
  arrived within the {a.duration:g} s.
* Propagation: {a.propagation} more Services created one after another, one every
  {a.pace:g} s, into a namespace of their own, with the size's Services in place; from
  each Create call returning, the benchmark asks the replica for its name every
  {1000 * a.poll_interval:g} ms until the answer carries its ClusterIP.
"""


def _ms(run: Load | None) -> str:
    if run is None:
        return "not measured"
    return f"{run.ms(50):.2f} / {run.ms(99):.2f} / {run.ms(100):.2f} ms"


def _n(x: float) -> str:
    return f"{x:,.0f}".replace(",", " ")


def got_cpu(run: Load) -> str:
    """How much CPU the replica got during a run, and how long its loop waited for one."""
    c = run.usage.cores
    return (f"the replica got {c.get('dns', 0):.2f} cores, its loop waited for a CPU "
            f"{100 * c.get('leader loop waiting', 0):.0f}% of the time")


def render_targets(rep: Report) -> str:
    lines = ["### Targets", "", "| target | measured | met |", "|---|---|---|"]
    for s in rep.sizes:
        closed, paced = s.load(False), s.load(True)
        if closed is not None:
            lines.append(f"| ≥ {_n(TARGET_QPS)} queries/s per replica, {_n(s.services)} "
                         f"Services | {_n(closed.qps)} answers/s (closed loop; "
                         f"{got_cpu(closed)}) | {yes_no(closed.qps >= TARGET_QPS)} |")
        if paced is not None:
            ok = (paced.p99_ms <= TARGET_P99_MS and paced.qps >= 0.98 * paced.rate
                  and paced.rate >= TARGET_QPS)
            lines.append(f"| p99 ≤ {TARGET_P99_MS:g} ms at {_n(TARGET_QPS)} queries/s, "
                         f"{_n(s.services)} Services | p99 {paced.p99_ms:.2f} ms at "
                         f"{_n(paced.qps)} answers/s (paced at {_n(paced.rate)}/s; "
                         f"{got_cpu(paced)}) | {yes_no(ok)} |")
    for s in rep.sizes:
        p = s.propagation
        if p is not None:
            p99 = percentile(p.resolved, 99)
            lines.append(f"| new Service resolvable p99 ≤ {TARGET_PROPAGATION:g} s, "
                         f"{_n(s.services)} Services | p99 {p99:.3f} s ({len(p.resolved)}/"
                         f"{p.created} resolved) | "
                         f"{yes_no(p99 <= TARGET_PROPAGATION and len(p.resolved) == p.created)} |")
    return "\n".join(lines) + "\n"


def load_row(run: Load) -> str:
    sent, answered = run.total("sent"), run.total("answered")
    mode = (f"paced at {_n(run.rate)}/s: {_n(sent / run.duration)}/s sent, "
            f"{_n(run.total('skipped'))} slots skipped" if run.paced
            else f"closed loop, {run.clients} × {run.window} in flight")
    extra = ""
    cpu_us = run.cpu_per_answer_us
    return (f"| {_n(run.services)} | {mode} | **{_n(run.qps)}** | {_ms(run)} | "
            f"{_n(sent)} / {_n(answered)} / {run.total('lost')}{extra} | "
            f"{run.server_us:.0f} µs | {cpu_us:.0f} µs ({_n(1e6 / cpu_us)}/s) | "
            f"{run.usage.cores.get('dns', 0):.2f} / "
            f"{run.usage.cores.get('load generator', 0):.2f} |")


def render_load(rep: Report) -> str:
    lines = ["### Queries per second and latency", "",
             "| Services | load | answers/s | latency p50 / p99 / max | sent / answered / "
             "lost | replica's own time per query | replica CPU per answer (answers/s on a "
             "whole core) | cores: replica / load generator |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [load_row(run) for s in rep.sizes for run in s.loads]
    lines += ["", "The replica's own time per query is the mean of its "
              f"`{DURATION_METRIC}` histogram (wall time to parse, look up, build and pack "
              "the answer, so it grows when the replica loses its CPU meanwhile; not the "
              "event loop's receive, task and send around it). Its CPU per answer "
              "is all the process's CPU over the run divided by the answers, and the "
              "answers/s it would give with a whole core to itself follow from it (the "
              "machine is shared, see CPU below). All answers were correct (the run stops "
              "on a wrong one)."]
    return "\n".join(lines) + "\n"


def render_services(rep: Report) -> str:
    created = [s.created for s in rep.sizes if s.created is not None]
    if not created:
        return ""
    live = any(c.live for c in created)
    lines = ["### Services and the replica's start", "",
             "| Services | created now | Create calls: seconds (per second) | replica "
             "started → ready / → answers the last | cores: apiserver-0 / etcd / replica |",
             "|---|---|---|---|---|"]
    for c in created:
        start = (f"ran meanwhile; last Create returned → answered {c.to_resolved:.2f} s"
                 if c.live else f"{c.ready:.2f} s / {c.to_resolved:.2f} s")
        u = c.usage.cores
        lines.append(f"| {_n(c.services)} | {_n(c.new)} | {c.seconds:.1f} s "
                     f"({c.new / max(c.seconds, 1e-9):.0f}) | {start} | "
                     f"{u.get('apiserver-0', 0):.2f} / {u.get('etcd', 0):.2f} / "
                     f"{u.get('dns', 0):.2f} |")
    lines += ["", "The replica rebuilds its whole zone (every Service's records) for each "
              "change its informers deliver: the watch events of a burst of Creates arrive "
              "one event-loop turn apart, so each one gets a rebuild of its own, and n "
              "Services created while it runs cost it O(n²). "
              + ("Here it ran while they were created (`--live-creates`)." if live else
                 "So by default the benchmark stops it while a size's Services are created "
                 "and starts it again after: it lists them all in one go and rebuilds once "
                 "(`--live-creates` keeps it running).")]
    return "\n".join(lines) + "\n"


def render_propagation(rep: Report) -> str:
    props = [s.propagation for s in rep.sizes if s.propagation is not None]
    if not props:
        return ""
    lines = ["### A new Service's propagation", "",
             "| Services in place | created | Create call p50 / p99 | Create returned → "
             "resolves: p50 / p99 / max | queries per name p50 / max | cores: replica |",
             "|---|---|---|---|---|---|"]
    for p in props:
        r = p.resolved
        lines.append(
            f"| {_n(p.services)} | {p.created}, one every {p.pace:g} s | "
            f"{1000 * percentile(p.create_calls, 50):.0f} / "
            f"{1000 * percentile(p.create_calls, 99):.0f} ms | "
            f"**{percentile(r, 50):.3f} / {percentile(r, 99):.3f} / {max(r):.3f} s** | "
            f"{percentile(p.polls, 50):.0f} / {max(p.polls)} | "
            f"{p.usage.cores.get('dns', 0):.2f} |")
    lines += ["", "Each new Service costs the replica a rebuild of its whole zone (see "
              "above), so the time until a new name resolves grows with the Services in "
              "place; once rebuilds take longer than the pace between Creates, the events "
              "queue up and each name waits for those before it."]
    return "\n".join(lines) + "\n"


CPU_GROUPS = ("dns", "load generator", "bench", "apiserver-0", "etcd")
NOT_OURS = ("leader loop", "leader loop waiting")


def cpu_phases(rep: Report) -> list[tuple[str, Usage]]:
    out = []
    for s in rep.sizes:
        n = _n(s.services)
        if s.created is not None and s.created.new:
            out.append((f"create → {n} Services", s.created.usage))
        out += [(f"{n}: {'paced' if run.paced else 'closed loop'}", run.usage)
                for run in s.loads]
        if s.propagation is not None:
            out.append((f"{n}: propagation", s.propagation.usage))
    return out


def render_cpu(rep: Report) -> str:
    head = ("replica", "its loop thread", "… waiting for a CPU", "load generator", "bench",
            "apiserver-0", "etcd")
    lines = ["### CPU", "",
             "Cores busy (CPU seconds / wall seconds, from /proc) per phase: `replica` is "
             "the DNS process, `its loop thread` its main thread (the event loop: every "
             "query, and the zone's rebuilds), `… waiting for a CPU` the time that thread "
             "was runnable but not running; `load generator` the client processes, "
             "`bench` this process (Creates, propagation polls), `other` the rest of the "
             "machine.", "",
             f"| phase | seconds | {' | '.join(head)} | other | machine |",
             "|---|---|" + "---|" * (len(head) + 2)]
    notes = []
    for name, u in cpu_phases(rep):
        c = u.cores
        ours = sum(c.get(g, 0.0) for g in CPU_GROUPS)
        other = max(c.get("machine", 0.0) - ours, 0.0)
        cells = [c.get("dns", 0), c.get("leader loop", 0), c.get("leader loop waiting", 0),
                 *(c.get(g, 0.0) for g in CPU_GROUPS[1:])]
        lines.append(f"| {name} | {u.seconds:.1f} | "
                     f"{' | '.join(f'{x:.2f}' for x in cells)} | {other:.2f} | "
                     f"{c.get('machine', 0.0):.2f} |")
        notes.append(f"{name}: {saturation(ours, c.get('machine', 0.0))}")
    lines += ["", "; ".join(notes) + f" (other processes kept {rep.background:.2f} cores "
              f"busy before the cluster started; {cpus()} CPUs)."]
    return "\n".join(lines) + "\n"


def render_stages(rep: Report) -> str:
    sized = [s for s in rep.sizes if s.stages is not None]
    if not sized:
        return ""
    heads = " | ".join(f"{_n(s.services)} Services" for s in sized)
    lines = ["### Where the replica's time goes", "",
             "The replica's steps timed in the benchmark's process (thread CPU time, the "
             f"best of {STAGE_REPEATS} runs, so other processes' load hardly matters) on a "
             "zone of the same Services, over "
             f"{_n(STAGE_QUERIES)} queries of the same mix; then the replica's own CPU "
             "per answer under the closed-loop load: the rest of it is the event loop, the task it "
             "starts per datagram and the socket calls (and, on a shared machine, being "
             "switched in and out).", "",
             f"| per query, µs | {heads} |", "|---|" + "---|" * len(sized)]
    for label in sized[0].stages.per_query_us:   # type: ignore[union-attr]
        cells = " | ".join(f"{s.stages.per_query_us[label]:.1f}"  # type: ignore[union-attr]
                           for s in sized)
        lines.append(f"| {label} | {cells} |")
    under = [s.load(False) for s in sized]
    lines.append("| the replica's CPU per answer under load (all of it) | "
                 + " | ".join(f"{x.cpu_per_answer_us:.0f}" if x else "" for x in under) + " |")
    lines += ["", "`Zone.rebuild`, CPU ms, from a fresh zone (the replica's start) / again with "
              "one Service more (what the replica does for every Service, Endpoints or Pod "
              "event; no query is answered meanwhile): "
              + ", ".join(f"{s.stages.rebuild_ms:.1f} / "   # type: ignore[union-attr]
                          f"{s.stages.next_rebuild_ms:.1f} ms at "  # type: ignore[union-attr]
                          f"{_n(s.services)} Services" for s in sized) + "."]
    return "\n".join(lines) + "\n"


def render_profile(rep: Report) -> str:
    lines = ["### The replica under py-spy", ""]
    if rep.profile is None:
        return "\n".join(lines + [f"No profile: {rep.profile_error}."]) + "\n"
    run = rep.profile_load
    lines += [f"An extra closed-loop run of {PROFILE_SECONDS:g} s at the largest size, not "
              "in the tables above, with `py-spy record --rate "
              f"{PROFILE_RATE} --nonblocking --gil --function` on the replica"
              + (f" ({_n(run.qps)} answers/s under the profiler)" if run else "")
              + ". Only the thread holding the GIL is sampled; time in C (dnslib is pure "
              "Python; the socket calls) is charged to the Python function that called it. "
              "Self = samples with the function on top of the stack; total = with it "
              "anywhere on the stack (the replica's and dnslib's functions).", "",
              *profile_lines(rep.profile)]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- main

def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.dns", description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="100,10000",
                   help="Service counts to measure at, ascending, comma-separated")
    p.add_argument("--clients", type=int, default=2, help="load generator processes")
    p.add_argument("--window", type=int, default=32,
                   help="queries in flight per client, closed loop")
    p.add_argument("--rate", type=float, default=TARGET_QPS,
                   help="queries/s offered in total, paced (0: skip the paced runs)")
    p.add_argument("--paced-window", type=int, default=64,
                   help="queries in flight per client at most, paced")
    p.add_argument("--duration", type=float, default=5.0, help="seconds of each load run")
    p.add_argument("--nxdomain", type=float, default=0.1,
                   help="share of queries for names that do not exist")
    p.add_argument("--propagation", type=int, default=50,
                   help="Services created one by one and polled (0: skip)")
    p.add_argument("--pace", type=float, default=0.1, help="seconds between those Creates")
    p.add_argument("--poll-interval", type=float, default=0.005,
                   help="seconds between two queries for a new Service")
    p.add_argument("--concurrency", type=int, default=32, help="concurrent Create calls")
    p.add_argument("--live-creates", action="store_true",
                   help="keep the replica running while each size's Services are created "
                   "(by default it is stopped meanwhile and started again after)")
    p.add_argument("--timeout", type=float, default=900.0,
                   help="seconds from the cluster being up to the end of the last phase")
    p.add_argument("--no-profile", action="store_true", help="do not run py-spy")
    p.add_argument("--doc", type=Path, default=DOC, help="markdown file to write the report to")
    p.add_argument("--no-doc", action="store_true", help="only print the report")
    p.add_argument("--keep-workdir", action="store_true",
                   help="keep the cluster's workdir (logs, the raw profile) after the run")
    args = p.parse_args(argv)
    try:
        args.sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    except ValueError:
        p.error("--sizes: comma-separated integers")
    if not args.sizes or args.sizes != sorted(args.sizes) or args.sizes[0] < 1:
        p.error("--sizes must be ascending and at least 1")
    if (args.clients < 1 or args.window < 1 or args.paced_window < 1 or args.duration <= 0
            or args.rate < 0 or not 0 <= args.nxdomain < 1 or args.propagation < 0
            or args.pace < 0 or args.poll_interval <= 0 or args.concurrency < 1
            or args.timeout <= 0):
        p.error("counts must be at least 1, --nxdomain in [0, 1), durations positive")
    return args


async def run(cluster: LocalCluster, report: Report) -> None:
    bench = Bench(cluster, report)
    try:
        await bench.run()
    finally:
        await bench.close()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run_benchmark("dns", argv, parse_args, Report, lambda _args: {"masters": 1},
                             run, render)
    except DnsBenchError as exc:
        log(f"FAILED: {exc}; nothing written")
        return 1


if __name__ == "__main__":
    sys.exit(main())
