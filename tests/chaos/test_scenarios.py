"""Chaos scenarios, with the workload and the pod observer running.

Each scenario repeats its fault (once by default, 5 times with --chaos-full)
and checks the invariants after every iteration: see harness.py for the
iteration, invariants.py for what is checked, faults.py for how each fault is
made and its failover measured. Every scenario runs on a process-mode
cluster; those marked `compose` on a compose cluster too (conftest.py). The
scenarios of one kind share its cluster and run one after the other; each
leaves the cluster whole for the next.
"""
from __future__ import annotations

import random

import pytest

from minik8s.client import ApiClient
from minik8s.retry import retry_on_conflict
from tests.chaos import faults
from tests.chaos import invariants as inv
from tests.chaos.base import Chaos, ChaosConfig
from tests.chaos.harness import Iteration, Scenario
from tests.chaos.observer import Observer, live
from tests.chaos.results import Results
from tests.chaos.workload import REV, Workload
from tests.integration.helpers import eventually


def scenario(chaos: Chaos, cfg: ChaosConfig, results: Results, api: ApiClient, ns: str,
             name: str, title: str) -> Scenario:
    return Scenario(chaos, cfg, results, api, ns, name, title)


async def test_the_checks_catch_what_they_guard(chaos: Chaos, api: ApiClient,
                                                chaos_ns: str) -> None:
    """0. No fault: each check fails once, on purpose (a check that cannot fail proves nothing)."""
    wl = Workload(chaos.target.servers, chaos_ns)
    try:
        # one observer told the truth about the replicas, one told that "web" never had
        # more than 0: with 2 pods live, that one must count more than 0 + maxSurge
        async with Observer(chaos.target.servers, chaos_ns, wl.max_replicas,
                            stall_after=10) as obs, \
                Observer(chaos.target.servers, chaos_ns, {"web": 0}) as misled:
            assert await wl.create_deployment("web", 2)
            await inv.wait_converged(api, wl, chaos.target, 60)
            assert obs.violations == []
            await eventually(lambda: any(
                "deployment web: 2 live pods, more than its most replicas ever (0)" in v
                for v in misled.violations), timeout=10)

            # a change the workload was never told about: convergence must not be declared
            async def scale_behind_its_back() -> None:
                dep = await api.get("Deployment", "web", chaos_ns)
                dep.spec.replicas = 3
                await api.update(dep)
            await retry_on_conflict(scale_behind_its_back)
            assert any("Deployment web is replicas=3" in u for u in await inv.unmet(api, wl))

        # a watch that hears nothing (bookmarks come every second) is called stalled
        async with Observer(chaos.target.servers, chaos_ns, {}, stall_after=0.2) as quiet:
            await eventually(lambda: any("watch stalled" in v for v in quiet.violations),
                             timeout=10)
    finally:
        await wl.close()


@pytest.mark.compose
async def test_scheduler_leader_killed(chaos: Chaos, chaos_config: ChaosConfig,
                                       results: Results, api: ApiClient, chaos_ns: str) -> None:
    """1. SIGKILL the scheduler leader while the workload's pods wait to be bound."""
    async with scenario(chaos, chaos_config, results, api, chaos_ns, "1-scheduler-leader-kill",
                        "SIGKILL the scheduler leader") as sc:
        await sc.setup({"steady": 2})
        for i in range(chaos_config.iterations):
            await sc.iteration(i, faults.kill_leader("scheduler"))


@pytest.mark.compose
async def test_controller_manager_leader_killed(chaos: Chaos, chaos_config: ChaosConfig,
                                                results: Results, api: ApiClient,
                                                chaos_ns: str) -> None:
    """2. SIGKILL the controller-manager leader in the middle of a scale-up and a rollout."""
    async with scenario(chaos, chaos_config, results, api, chaos_ns, "2-controller-manager-kill",
                        "SIGKILL the controller-manager leader during a scale-up and a "
                        "rolling update") as sc:
        await sc.setup({"steady": 2, "burst": 1})
        kill = faults.kill_leader("controller-manager")

        async def during_rollout(it: Iteration) -> None:
            # scale burst up and change its template in one write, and kill the
            # leader as soon as the first pod of the new template exists
            assert await it.wl.roll("burst", replicas=3), it.wl.unexpected
            rev = it.wl.objects[("Deployment", "burst")].acked.rev

            def rolling() -> bool:
                return any(p.metadata.annotations.get(REV) == rev
                           for p in it.observer.live_pods("burst"))
            await eventually(rolling, timeout=30, interval=0.02)
            await kill(it)
        for i in range(chaos_config.iterations):
            await sc.iteration(i, during_rollout)
            if i + 1 < chaos_config.iterations:  # so the next iteration scales up again
                assert await sc.wl.scale("burst", 1), sc.wl.unexpected


async def test_leaders_paused_past_their_lease(chaos: Chaos, chaos_config: ChaosConfig,
                                               results: Results, api: ApiClient,
                                               chaos_ns: str) -> None:
    """3. SIGSTOP the scheduler and controller-manager leaders for 4 s (lease 2 s), SIGCONT.

    Each must exit and be replaced; nothing it does after its successor took
    over may land (no double binding, no duplicate pods: the observer).
    """
    async with scenario(chaos, chaos_config, results, api, chaos_ns, "3-leaders-paused",
                        "SIGSTOP the scheduler and controller-manager leaders 4 s "
                        "(lease 2 s), then SIGCONT") as sc:
        await sc.setup({"steady": 2})
        for i in range(chaos_config.iterations):
            await sc.iteration(i, faults.stop_leaders("scheduler", "controller-manager"))


@pytest.mark.compose
@pytest.mark.compose
async def test_master_partitioned(chaos: Chaos, chaos_config: ChaosConfig, results: Results,
                                  api: ApiClient, chaos_ns: str) -> None:
    """4. Cut a leader's master (etcd, apiserver, scheduler, controller-manager) off the
    network past the lease, heal: leaders replaced, no write of a deposed one lands."""
    if not chaos.target.can_partition:
        pytest.skip("no cgroup v2 and iptables cgroup match here (tests/chaos/partition.py)")
    async with scenario(chaos, chaos_config, results, api, chaos_ns, "4-master-partition",
                        "cut a leader's master off the network 5 s (lease 2 s), then heal") as sc:
        await sc.setup({"steady": 2})
        rng = random.Random(sc.wl.seed)   # which leader's master, when both lead
        for i in range(chaos_config.iterations):
            await sc.iteration(i, faults.partition_master(rng))


@pytest.mark.compose
async def test_apiserver_killed(chaos: Chaos, chaos_config: ChaosConfig, results: Results,
                                api: ApiClient, chaos_ns: str) -> None:
    """5. SIGKILL the apiserver the observer watches through; restart it 2 s later
    (compose: Docker restarts it)."""
    async with scenario(chaos, chaos_config, results, api, chaos_ns, "5-apiserver-kill",
                        "SIGKILL an apiserver under watches and writes, restart it") as sc:
        await sc.setup({"steady": 2})
        for i in range(chaos_config.iterations):
            await sc.iteration(i, faults.kill_apiserver())


@pytest.mark.compose
async def test_etcd_members_killed(chaos: Chaos, chaos_config: ChaosConfig, results: Results,
                                   api: ApiClient, chaos_ns: str) -> None:
    """6. SIGKILL the etcd raft leader, restart it; then two of three members, restart both
    (compose: Docker restarts the leader; the two are stopped with docker kill)."""
    async with scenario(chaos, chaos_config, results, api, chaos_ns, "6-etcd-kill",
                        "SIGKILL the etcd raft leader; then 2 of 3 members (quorum lost)") as sc:
        await sc.setup({"steady": 2})
        for i in range(chaos_config.iterations):
            await sc.iteration(i, faults.kill_etcd_leader())
            await sc.iteration(i, faults.lose_etcd_quorum())


async def test_kubelet_killed(chaos: Chaos, chaos_config: ChaosConfig, results: Results,
                              api: ApiClient, chaos_ns: str) -> None:
    """7. SIGKILL a kubelet: restarted, it adopts its running containers (same ids, no restart)."""
    async with scenario(chaos, chaos_config, results, api, chaos_ns, "7-kubelet-kill",
                        "SIGKILL a kubelet (the supervisor restarts it)") as sc:
        await sc.setup({"steady": 2})
        for i in range(chaos_config.iterations):
            await sc.iteration(i, faults.kill_kubelet())


@pytest.mark.compose
async def test_node_lost(chaos: Chaos, chaos_config: ChaosConfig, results: Results,
                         api: ApiClient, chaos_ns: str) -> None:
    """8. Lose a node (process: SIGSTOP its kubelet; compose: docker kill the whole node)
    until it is NotReady and its pods are evicted and replaced on the other node; bring it
    back: the node is Ready again and its orphaned containers go."""
    title = {"process": "SIGSTOP a node's kubelet past the node grace period and eviction "
                        "timeout, then SIGCONT",
             "compose": "docker kill a node past the node grace period and eviction "
                        "timeout, then docker start"}[chaos.target.kind]
    async with scenario(chaos, chaos_config, results, api, chaos_ns, "8-node-lost",
                        title) as sc:
        await sc.setup({"steady": 2})
        for i in range(chaos_config.iterations):
            await sc.iteration(i, faults.lose_node())


async def test_app_containers_killed(chaos: Chaos, chaos_config: ChaosConfig, results: Results,
                                     api: ApiClient, chaos_ns: str) -> None:
    """9. docker kill the scenario's app containers: restarted in place, nothing lost."""
    async with scenario(chaos, chaos_config, results, api, chaos_ns, "9-containers-killed",
                        "docker kill app containers behind the kubelets' back") as sc:
        await sc.setup({"steady": 2})
        for i in range(chaos_config.iterations):
            uids = {p.metadata.uid for p in sc.observer.live_pods("steady")}
            await sc.iteration(i, faults.kill_containers())
            # restarted in place: the very same pods, not replacements
            assert {p.metadata.uid for p in sc.observer.live_pods("steady")} == uids
            assert all(live(p) for p in sc.observer.live_pods("steady"))


async def test_monkey(chaos: Chaos, chaos_config: ChaosConfig, results: Results,
                      api: ApiClient, chaos_ns: str) -> None:
    """10. Random faults from all of the above (but the node stop) for a bounded time."""
    seed = random.randrange(1 << 30)
    async with scenario(chaos, chaos_config, results, api, chaos_ns, "10-monkey",
                        f"random faults for {chaos_config.monkey_seconds:.0f}s") as sc:
        sc.result.title += f" (seed {seed})"
        await sc.setup({"steady": 2})
        seconds = chaos_config.monkey_seconds
        await sc.iteration(0, faults.monkey(seconds, random.Random(seed)), seconds=seconds,
                           ops_per_client=max(chaos_config.ops_per_client, int(seconds / 4)),
                           pace=(2.0, 4.0))
