"""One chaos scenario: a namespace, the workload, the pod observer, faults, invariants.

    async with Scenario(...) as sc:
        await sc.setup({"steady": 2})
        for i in range(iterations):
            await sc.iteration(i, faults.kill_leader("scheduler"))

The cluster is a Target (base.py): processes on this machine, or a compose
project; the scenario's results say which.

An iteration starts a workload round, waits for its first acknowledged write,
injects the fault (which measures its own failover and heals itself), ends
the round, then waits for convergence (the recovery time is measured from
the moment the fault healed) and checks processes, fencing and the observer.
Anything wrong is recorded in the scenario's results and fails the test.
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from minik8s.client import ApiClient
from tests.chaos import invariants as inv
from tests.chaos.base import Chaos, ChaosConfig, Target
from tests.chaos.observer import Observer
from tests.chaos.results import Results, Sample, ScenarioResult
from tests.chaos.workload import Workload
from tests.integration.helpers import eventually

Check = Callable[[], Awaitable[list[str]]]
SLOW_RECOVERY = 15.0   # a recovery slower than this records what it waited for


async def sleep_until(at: float) -> None:
    """Hold a fault until a moment (a fixed hold, not a stand-in for a condition)."""
    await asyncio.sleep(max(0.0, at - time.monotonic()))


@dataclass
class Iteration:
    sc: Scenario
    index: int
    kills: Counter[str] = field(default_factory=Counter)  # restarts the fault itself causes
    faults: int = 0
    failovers: list[tuple[str, float | None, dict[str, Any]]] = field(default_factory=list)
    healed_at: float = 0.0
    checks: list[Check] = field(default_factory=list)    # run once converged
    problems: list[str] = field(default_factory=list)

    @property
    def target(self) -> Target:
        return self.sc.target

    @property
    def api(self) -> ApiClient:
        return self.sc.api

    @property
    def wl(self) -> Workload:
        return self.sc.wl

    @property
    def observer(self) -> Observer:
        return self.sc.observer

    async def kill(self, name: str) -> float:
        """SIGKILL one of the cluster's processes; the moment it was sent."""
        at = time.monotonic()
        await asyncio.to_thread(self.target.kill, name)
        self.kills[name] += 1   # started again: by the supervisor, or by the fault
        return at

    async def stop(self, name: str) -> float:
        """Take a process down for good (until restart); the moment it was."""
        at = time.monotonic()
        await asyncio.to_thread(self.target.stop, name)
        self.kills[name] += 1   # started again by the fault
        return at

    async def restart(self, name: str) -> None:
        await asyncio.to_thread(self.target.restart, name)

    async def bring_back(self, name: str, killed_at: float, hold: float) -> None:
        """After kill: a process nobody restarts is started again `hold` after the kill,
        and that heals the fault; one its supervisor restarts healed with the kill."""
        if self.target.supervised(name):
            self.healed_at = killed_at
        else:
            await sleep_until(killed_at + hold)
            await self.restart(name)
            self.healed()
        await asyncio.to_thread(self.target.wait_ready, 60, [name])

    def failover(self, fault: str, seconds: float | None, **detail: Any) -> None:
        self.faults += 1
        self.failovers.append((fault, seconds, detail))

    def healed(self) -> None:
        self.healed_at = time.monotonic()


Fault = Callable[[Iteration], Awaitable[None]]


class Scenario:
    def __init__(self, chaos: Chaos, cfg: ChaosConfig, results: Results, api: ApiClient,
                 namespace: str, name: str, title: str) -> None:
        self.target = chaos.target
        self.restarts = chaos.restarts
        self.cfg = cfg
        self.results = results
        self.api = api
        self.namespace = namespace
        self.result = ScenarioResult(name, title, cluster=self.target.kind)
        self.wl = Workload(self.target.servers, namespace, clients=cfg.clients,
                           ops_per_client=cfg.ops_per_client,
                           deployments_per_client=cfg.deployments_per_client)
        self.observer = Observer(self.target.servers, namespace, self.wl.max_replicas,
                                 stall_after=cfg.stall_after)
        self._started = 0.0
        self._restarts_at_start: Counter[str] = Counter()
        self._observer_seen = 0   # observer violations already reported by an iteration

    async def __aenter__(self) -> Scenario:
        self._started = time.monotonic()
        self._restarts_at_start = self.restarts.snapshot()
        await self.observer.__aenter__()
        print(f"\n[{self.result.name} {self.target.kind}] namespace {self.namespace}, workload seed {self.wl.seed}")
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            await self.wl.close()
        finally:
            await self.observer.__aexit__()
            self.result.violations += self.observer.violations[self._observer_seen:]
            self.result.acknowledged_writes = len(self.wl.log)
            self.result.unacknowledged_writes = self.wl.unacknowledged
            self.result.retried_errors = dict(self.wl.retried)
            restarts = self.restarts.snapshot() - self._restarts_at_start
            self.result.restarts = dict(sorted(restarts.items()))
            self.result.watch = {"events": self.observer.events,
                                 "resumed": self.observer.resumes,
                                 "relisted": self.observer.relists,
                                 "longest_silence_s": round(self.observer.longest_silence, 2)}
            self.result.duration_s = round(time.monotonic() - self._started, 1)
            self.result.passed = exc_type is None and not self.result.violations
            self.results.record(self.result)
            print(f"[{self.result.name} {self.target.kind}] {self.result.iterations} iterations in "
                  f"{self.result.duration_s}s; samples: "
                  + "; ".join(f"{s.fault}: failover {s.failover_s}s recovery {s.recovery_s}s"
                              for s in self.result.samples))
        if exc_type is None:  # else the test fails with the error that ended it
            assert not self.result.violations, "\n".join(self.result.violations)

    async def setup(self, deployments: dict[str, int]) -> None:
        """Deployments of the scenario's own (written by "main" only), running before any fault."""
        for name, replicas in deployments.items():
            assert await self.wl.create_deployment(name, replicas), self.wl.unexpected
        await inv.wait_converged(self.api, self.wl, self.target, self.cfg.converge_timeout)

    async def iteration(self, index: int, fault: Fault, *, seconds: float | None = None,
                        ops_per_client: int | None = None,
                        pace: tuple[float, float] = (0.3, 1.0)) -> Iteration:
        it = Iteration(self, index)
        restarts = self.restarts.snapshot()
        fenced = await asyncio.to_thread(inv.fenced_writes, self.target)
        acked = len(self.wl.log)
        if ops_per_client is not None:
            self.wl.ops_per_client = ops_per_client
        self.wl.start(seconds or self.cfg.round_seconds, pace)
        # the fault lands while the workload's writes are in flight
        await eventually(lambda: len(self.wl.log) > acked or not self.wl.running, timeout=60,
                         interval=0.05)
        await fault(it)
        assert it.healed_at, "the fault did not say when it healed"
        await self.wl.stop()
        self.wl.ops_per_client = self.cfg.ops_per_client
        tail = time.monotonic() - it.healed_at   # the workload's last writes, answered

        problems = list(it.problems)
        recovery: float | None = None
        blocking: list[str] = []
        try:
            recovery = await inv.wait_converged(self.api, self.wl, self.target,
                                                self.cfg.converge_timeout,
                                                since=it.healed_at, blocking=blocking)
            if recovery > SLOW_RECOVERY and it.failovers:  # say what it waited for
                it.failovers[-1][2].update(workload_done_after_heal_s=round(tail, 2),
                                           last_unmet=blocking[:5])
        except AssertionError as err:
            problems.append(str(err))
        else:
            for check in it.checks:
                problems += await check()
        down = await inv.all_up(self.target)
        problems += down
        fatal = recovery is None or bool(down)   # the next iteration would prove nothing
        problems += inv.crash_loops(restarts, self.restarts.snapshot(), it.kills, it.faults)
        problems += self.wl.unexpected
        self.wl.unexpected.clear()
        if not self.observer.alive:
            problems.append("the pod observer stopped")
        problems += self.observer.violations[self._observer_seen:]
        self._observer_seen = len(self.observer.violations)
        delta = inv.fenced_delta(fenced, await asyncio.to_thread(inv.fenced_writes, self.target))
        self.result.fenced_rejected += inv.rejected(delta)

        for n, (name, failover, detail) in enumerate(it.failovers):
            last = n == len(it.failovers) - 1
            self.result.samples.append(Sample(
                index, name, None if failover is None else round(failover, 2),
                round(recovery, 2) if last and recovery is not None else None, detail))
        self.result.iterations = index + 1
        self.result.violations += [f"iteration {index}: {p}" for p in problems]
        if fatal:
            raise AssertionError(f"iteration {index}:\n" + "\n".join(problems))
        return it   # other violations fail the scenario at its end, after every iteration
