"""The faults: each injects itself, measures its failover, heals, and says when it healed.

Failover, per fault:
* a leader killed or paused: fault -> a new holder's Lease is acquired;
* an apiserver or the etcd raft leader killed: fault -> a write through a
  client whose first endpoint is the dead apiserver (or any) is accepted again;
* etcd quorum lost: quorum restored (members restarted) -> a write is accepted;
* a master cut off the network: fault -> every leader it held taken over and
  a write accepted through the other apiservers;
* a kubelet killed: fault -> the restarted kubelet is ready;
* a node lost: fault -> its pods evicted and running elsewhere;
* app containers killed: fault -> every one of them restarted and Ready.

A fault that is over at once (SIGKILL of a supervised process, docker kill)
heals when it happens; one that is held (SIGSTOP, a process left dead, a
partition) heals when it is undone (SIGCONT, restart, reconnection), and
recovery is measured from then. Each works on either kind of Target.
"""
from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import Callable, Mapping

from kubelet import labels
from minik8s import errors
from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from minik8s.localcluster import ClusterError
from tests.chaos import invariants as inv
from tests.chaos.base import LEADER_ROLES, PodContainer, Target, master
from tests.chaos.harness import Check, Fault, Iteration, sleep_until
from tests.chaos.observer import live
from tests.integration.helpers import eventually

UNREACHABLE = "node.kubernetes.io/unreachable"
_probes = 0


async def holder(api: ApiClient, role: str) -> str:
    try:
        return (await api.get("Lease", f"kube-{role}", "kube-system")).spec.holder_identity
    except errors.ApiError:
        return ""


async def until_new_leader(api: ApiClient, role: str, old: str, since: float,
                           timeout: float = 20.0) -> float:
    async def successor() -> str:
        now = await holder(api, role)
        return now if now not in ("", old) else ""
    await eventually(successor, timeout=timeout, interval=0.05)
    return time.monotonic() - since


async def leader(target: Target, api: ApiClient, role: str) -> tuple[str, str]:
    """(identity, process name) of the leader of a role (lease kube-<role>), once the
    holder is a running process (not one that just exited, its lease not yet taken)."""
    async def current() -> tuple[str, str] | None:
        identity = await holder(api, role)
        name = identity and await asyncio.to_thread(target.holder, identity)
        return (identity, name) if name else None
    return await eventually(current, timeout=30, interval=0.05)


def _probe_client(servers: list[str]) -> ApiClient:
    return ApiClient(servers, timeout=2.0, retry_deadline=2.0)


async def write_probe(api: ApiClient, namespace: str) -> None:
    """One small write (a Lease in the scenario's namespace)."""
    global _probes
    _probes += 1
    await api.create(t.Lease(metadata=t.ObjectMeta(name=f"probe-{_probes}",
                                                   namespace=namespace)))


async def until_writable(api: ApiClient, namespace: str, since: float,
                         timeout: float = 60.0) -> float:
    async def accepted() -> bool:
        try:
            await write_probe(api, namespace)
            return True
        except errors.ApiError:
            return False
    await eventually(accepted, timeout=timeout, interval=0.05)
    return time.monotonic() - since


async def until_writable_through(server: str, namespace: str, since: float) -> float:
    """until_writable through one apiserver address alone."""
    probe = _probe_client([server])
    try:
        return await until_writable(probe, namespace, since)
    finally:
        await probe.close()


def _apiservers(target: Target) -> dict[str, str]:
    """apiserver name -> the address clients reach it at."""
    return dict(zip(target.members("apiserver"), target.servers, strict=True))


async def _fenced_writes(target: Target) -> inv.Fenced:
    return await asyncio.to_thread(inv.fenced_writes, target)


def no_deposed_writes(target: Target, since: inv.Fenced, deposed: Mapping[str, str],
                      refused: dict[str, int]) -> Check:
    """A check: no write of a deposed leader (role -> identity) accepted after `since`
    (the fencing counters once its successor held the lease); refused gets how many
    of its writes etcd refused."""
    async def check() -> list[str]:
        delta = inv.fenced_delta(since, await _fenced_writes(target))
        out = []
        for role, identity in deposed.items():
            refused[role] = inv.by_holder(delta, identity, "rejected")
            accepted = inv.by_holder(delta, identity, "accepted")
            if accepted:
                out.append(f"{accepted} writes of the deposed {role} leader {identity} "
                           f"were accepted after its successor took over")
        return out
    return check


# ---------------------------------------------------------------- leaders


def kill_leader(role: str) -> Fault:
    async def fault(it: Iteration) -> None:
        identity, name = await leader(it.target, it.api, role)
        at = await it.kill(name)
        it.healed_at = at
        took = await until_new_leader(it.api, role, identity, at)
        it.failover(f"SIGKILL {role} leader", took, killed=name)
    return fault


def stop_leaders(*roles: str, hold: float = 4.0) -> Fault:
    """SIGSTOP the leaders of roles past their lease (2 s), then SIGCONT them.

    Their successors take over while they sleep; woken up, each must find out,
    exit (the supervisor starts it again) and have no write accepted after its
    successor's acquisition: the apiservers' fencing counters say so.
    """
    async def fault(it: Iteration) -> None:
        old = {role: await leader(it.target, it.api, role) for role in roles}
        pids = {name: await asyncio.to_thread(it.target.pid, name) for _, name in old.values()}
        at = time.monotonic()
        for name in pids:
            it.target.signal(name, signal.SIGSTOP)
        try:
            took = {role: await until_new_leader(it.api, role, identity, at)
                    for role, (identity, _) in old.items()}
            # past the lease, and a second past the takeover for anything in flight to land
            await sleep_until(max(at + hold, time.monotonic() + 1.0))
            mid = await _fenced_writes(it.target)
        finally:
            for name in pids:
                it.target.signal(name, signal.SIGCONT)
        it.healed()
        for name in pids:
            it.kills[name] += 1   # it is meant to exit once

        def replaced() -> bool:
            return all(it.target.pid(name) not in (0, pid) for name, pid in pids.items())
        try:
            await eventually(lambda: asyncio.to_thread(replaced), timeout=20, interval=0.05)
            exited = time.monotonic() - it.healed_at
        except AssertionError:
            exited = None
            it.problems.append(f"a deposed leader did not exit within 20s of SIGCONT: {pids}")
        stale: dict[str, int] = {}
        it.checks.append(no_deposed_writes(
            it.target, mid, {role: identity for role, (identity, _) in old.items()}, stale))
        it.failover(f"SIGSTOP {'+'.join(roles)} leader {hold:.0f}s", max(took.values()),
                    per_role={r: round(s, 2) for r, s in took.items()},
                    exited_after_sigcont_s=None if exited is None else round(exited, 2),
                    stale_writes_refused=stale)
    return fault


def partition_master(rng: random.Random, hold: float = 5.0) -> Fault:
    """Cut a master off the network for `hold` seconds (lease 2 s), then heal.

    The master (its etcd member, apiserver, scheduler and controller-manager)
    is one whose scheduler or controller-manager leads, so the partition
    deposes a leader; the processes are cut off from each other too. Failover:
    every leader it held taken over, and a write accepted through the other
    apiservers. After the heal its apiserver must take writes again where
    clients reach it (compose: its published port), and no write of a deposed
    leader may have been accepted after its successor took over.
    """
    async def fault(it: Iteration) -> None:
        leaders = {role: await leader(it.target, it.api, role) for role in LEADER_ROLES}
        index = rng.choice(sorted({int(name.rsplit("-", 1)[1]) for _, name in leaders.values()}))
        cut = master(index)
        deposed = {role: identity for role, (identity, name) in leaders.items() if name in cut}
        apiserver = f"apiserver-{index}"
        servers = _apiservers(it.target)
        etcd_leader_cut = await etcd_leader(it.api) == f"etcd-{index}"
        probe = _probe_client([s for name, s in servers.items() if name != apiserver])
        try:
            at = time.monotonic()   # failover counts from the first disconnection on
            await asyncio.to_thread(it.target.partition, cut)
            cutting = time.monotonic() - at
            try:
                *leaders_back, writable = await asyncio.gather(
                    *(until_new_leader(probe, role, identity, at)
                      for role, identity in deposed.items()),
                    until_writable(probe, it.sc.namespace, at))
                took = dict(zip(deposed, leaders_back, strict=True))
                # past the lease, and a second past the takeover for anything in flight to land
                await sleep_until(max(at + hold, time.monotonic() + 1.0))
                mid = await _fenced_writes(it.target)
            finally:
                await asyncio.to_thread(it.target.heal)
            it.healed()
        finally:
            await probe.close()
        back = await until_writable_through(servers[apiserver], it.sc.namespace, it.healed_at)
        stale: dict[str, int] = {}
        it.checks.append(no_deposed_writes(it.target, mid, deposed, stale))
        it.failover("partition a master", max([writable, *took.values()]), master=f"master-{index}",
                    per_role={r: round(s, 2) for r, s in took.items()},
                    writes_accepted_s=round(writable, 2), etcd_leader_cut=etcd_leader_cut,
                    its_apiserver_back_after_heal_s=round(back, 2), stale_writes_refused=stale,
                    cutting_took_s=round(cutting, 2))
    return fault


# ---------------------------------------------------------------- apiserver and etcd


def kill_apiserver(hold: float = 2.0) -> Fault:
    """SIGKILL the apiserver the pod observer watches through; restart it after hold
    (unless its supervisor does)."""
    async def fault(it: Iteration) -> None:
        victim_addr = it.observer.api.endpoint
        victim = next(n for n, s in _apiservers(it.target).items() if s == victim_addr)
        resumes = it.observer.resumes
        probe = _probe_client([victim_addr, *(s for s in it.target.servers
                                              if s != victim_addr)])
        probe._current = 0   # its first call goes to the apiserver about to die
        try:
            at = await it.kill(victim)
            took = await until_writable(probe, it.sc.namespace, at)
            await eventually(lambda: it.observer.resumes > resumes, timeout=15, interval=0.05)
            resumed = time.monotonic() - at
        finally:
            await probe.close()
        await it.bring_back(victim, at, hold)
        it.failover("SIGKILL an apiserver", took, apiserver=victim,
                    watch_resumed_s=round(resumed, 2))
    return fault


async def etcd_leader(api: ApiClient) -> str:
    async def leader() -> str:
        try:
            return next((m.name for m in await api.etcd_status() if m.leader), "")
        except errors.ApiError:
            return ""
    return await eventually(leader, timeout=30, interval=0.1)


async def etcd_healthy(api: ApiClient, count: int) -> None:
    async def healthy() -> bool:
        try:
            members = await api.etcd_status()
        except errors.ApiError:
            return False
        return sum(m.healthy for m in members) == count and any(m.leader for m in members)
    await eventually(healthy, timeout=60, interval=0.2)


def kill_etcd_leader(hold: float = 1.0) -> Fault:
    """SIGKILL the etcd raft leader; restart it after hold (unless its supervisor does)."""
    async def fault(it: Iteration) -> None:
        members = len(it.target.members("etcd"))
        victim = await etcd_leader(it.api)
        probe = _probe_client(it.target.servers)
        try:
            at = await it.kill(victim)
            took = await until_writable(probe, it.sc.namespace, at)
        finally:
            await probe.close()
        await it.bring_back(victim, at, hold)
        await etcd_healthy(it.api, members)
        it.failover("SIGKILL the etcd raft leader", took, member=victim,
                    new_leader=await etcd_leader(it.api))
    return fault


def lose_etcd_quorum(hold: float = 3.0) -> Fault:
    """Kill two of the three etcd members (the leader among them) so that they stay
    down (process: SIGKILL; compose: docker kill), start both again after hold.

    Writes fail while quorum is lost: that is expected. What was acknowledged
    before must survive, and the workload's writes go through once it is back.
    """
    async def fault(it: Iteration) -> None:
        members = it.target.members("etcd")
        first = await etcd_leader(it.api)
        victims = [first, random.choice([m for m in members if m != first])]
        probe = _probe_client(it.target.servers)
        try:
            at = time.monotonic()
            for name in victims:
                await it.stop(name)
            refused = ""
            try:
                await write_probe(probe, it.sc.namespace)
            except errors.ApiError as err:
                refused = type(err).__name__
            await sleep_until(at + hold)
            for name in victims:
                await it.restart(name)
            it.healed()
            took = await until_writable(probe, it.sc.namespace, it.healed_at)
        finally:
            await probe.close()
        await etcd_healthy(it.api, len(members))
        it.failover(f"{it.target.stop_verb} 2 of 3 etcd members", took, members=victims,
                    write_without_quorum=refused or "accepted")
        if not refused:
            it.problems.append("a write was accepted while 2 of 3 etcd members were down")
    return fault


# ---------------------------------------------------------------- nodes and containers


async def pod_containers(it: Iteration, node: str, *, all: bool = False) -> list[PodContainer]:
    return await asyncio.to_thread(it.target.pod_containers, node, it.sc.namespace, all=all)


async def running_containers(it: Iteration, node: str, uid: str) -> set[str]:
    return {c.id for c in await pod_containers(it, node)
            if c.labels.get(labels.POD_UID) == uid and c.running}


async def pods_on(api: ApiClient, namespace: str, node: str) -> list[t.Pod]:
    pods, _ = await api.list("Pod", namespace)
    return [p for p in pods if p.spec.node_name == node and live(p)]


async def busiest_node(it: Iteration) -> str:
    """The node running most of the scenario's pods."""
    pods, _ = await it.api.list("Pod", it.sc.namespace)
    nodes = it.target.members("kubelet")
    return max(nodes, key=lambda n: sum(1 for p in pods if p.spec.node_name == n and live(p)))


def _restarts(pod: t.Pod) -> dict[str, int]:
    return {s.name: s.restart_count for s in pod.status.container_statuses}


def kill_kubelet(check_after_convergence: bool = True) -> Fault:
    """SIGKILL a kubelet: the supervisor starts it again; its pods' containers keep running."""
    async def fault(it: Iteration) -> None:
        node = await busiest_node(it)
        ns = it.sc.namespace
        before = {p.metadata.uid: (p.metadata.name, await running_containers(
            it, node, p.metadata.uid), _restarts(p))
            for p in await pods_on(it.api, ns, node) if inv.is_ready(p)}
        old = it.target.pid(node)
        at = await it.kill(node)
        it.healed_at = at
        await eventually(lambda: asyncio.to_thread(lambda: it.target.pid(node) not in (0, old)),
                         timeout=20, interval=0.05)
        await asyncio.to_thread(it.target.wait_ready, 30, [node])
        took = time.monotonic() - at

        async def kept_running() -> list[str]:
            now = {p.metadata.uid: p for p in await pods_on(it.api, ns, node)}
            out, compared = [], 0
            for uid, (name, ids, restarts) in before.items():
                pod = now.get(uid)
                if pod is None:
                    continue  # the workload rolled or deleted it meanwhile
                compared += 1
                running = await running_containers(it, node, uid)
                if running != ids:
                    out.append(f"pod {name} on {node}: containers {sorted(ids)} became "
                               f"{sorted(running)} across the kubelet's restart")
                if _restarts(pod) != restarts or pod.status.phase != "Running":
                    out.append(f"pod {name} on {node}: {pod.status.phase}, restarts "
                               f"{restarts} became {_restarts(pod)}")
            if not compared:
                out.append(f"no pod of {node} to compare across its kubelet's restart")
            return out
        if check_after_convergence:
            it.checks.append(kept_running)
        else:
            it.problems.extend(await kept_running())
        it.failover("SIGKILL a kubelet", took, node=node, pods=len(before))
    return fault


def lose_node(grace_timeout: float = 60.0) -> Fault:
    """Take a node out (Target.lose_node) until it is NotReady and its pods run elsewhere;
    bring it back: it must be Ready again and the containers of its evicted pods gone."""
    async def fault(it: Iteration) -> None:
        node = await busiest_node(it)
        ns = it.sc.namespace
        at = time.monotonic()
        await asyncio.to_thread(it.target.lose_node, node)
        try:
            async def not_ready() -> bool:
                n = await it.api.get("Node", node)
                return any(c.type == "Ready" and c.status != "True" for c in n.status.conditions)
            await eventually(not_ready, timeout=grace_timeout, interval=0.2)
            marked = time.monotonic() - at

            async def replaced() -> bool:
                if await pods_on(it.api, ns, node):
                    return False
                return not await inv.unmet(it.api, it.wl)
            await eventually(replaced, timeout=grace_timeout, interval=0.25)
            took = time.monotonic() - at
        finally:
            await asyncio.to_thread(it.target.restore_node, node)
        it.healed()
        if it.target.node_loss_restarts:
            it.kills[node] += 1

        async def ready_again() -> bool:
            n = await it.api.get("Node", node)
            return any(c.type == "Ready" and c.status == "True" for c in n.status.conditions) \
                and not any(x.key == UNREACHABLE for x in n.spec.taints)
        await eventually(ready_again, timeout=90, interval=0.2)
        back = time.monotonic() - it.healed_at

        async def no_orphans() -> list[str]:
            left: list[str] = []

            async def gone() -> bool:
                pods = {p.metadata.uid for p in (await it.api.list("Pod", ns))[0]}
                try:
                    containers = await pod_containers(it, node, all=True)
                except ClusterError as err:   # its engine not answering yet
                    left[:] = [str(err)]
                    return False
                left[:] = [f"{c.name} (pod {c.labels.get(labels.POD_NAME)})"
                           for c in containers if c.labels.get(labels.POD_UID) not in pods]
                return not left
            try:
                await eventually(gone, timeout=30, interval=0.5)
            except AssertionError:
                return [f"orphaned containers of evicted pods left on {node}: {left}"]
            cleaned.append(round(time.monotonic() - it.healed_at, 2))
            return []
        cleaned: list[float] = []
        it.checks.append(no_orphans)
        it.failover(f"{it.target.node_loss} until evicted", took, node=node,
                    not_ready_after_s=round(marked, 2), ready_after_restore_s=round(back, 2),
                    orphans_gone_after_restore_s=cleaned)
    return fault


def kill_containers() -> Fault:
    """docker kill the app containers of the scenario's pods behind the kubelets' back."""
    async def fault(it: Iteration) -> None:
        ns = it.sc.namespace
        pods = {p.metadata.uid: p for p in (await it.api.list("Pod", ns))[0]
                if live(p) and inv.is_ready(p)}
        killed: dict[str, tuple[str, PodContainer]] = {}   # pod uid -> (node, its app container)
        for node in it.target.members("kubelet"):
            for c in await pod_containers(it, node):
                uid = c.labels.get(labels.POD_UID, "")
                if uid in pods and c.labels.get(labels.CONTAINER_NAME) != labels.SANDBOX:
                    killed[uid] = (node, c)
        before = {uid: _restarts(pods[uid]).get("c", 0) for uid in killed}
        at = time.monotonic()
        for node, c in killed.values():
            await asyncio.to_thread(it.target.kill_container, node, c.id)
        it.healed_at = at
        counts: dict[str, int] = {}

        async def restarted() -> bool:
            now = {p.metadata.uid: p for p in (await it.api.list("Pod", ns))[0] if live(p)}
            for uid, (_node, container) in killed.items():
                pod = now.get(uid)
                if pod is None:
                    continue  # deleted by the workload meanwhile
                status = next((s for s in pod.status.container_statuses if s.name == "c"), None)
                if status is None or not status.ready or status.restart_count <= before[uid] \
                        or status.container_id.endswith(container.id):
                    return False
                counts[uid] = status.restart_count
            return True
        await eventually(restarted, timeout=60, interval=0.2)
        took = time.monotonic() - at
        twice = {killed[u][1].labels.get(labels.POD_NAME): (before[u], n)
                 for u, n in counts.items() if n != before[u] + 1}
        if twice:
            it.problems.append(f"restart counts after one kill each (before, after): {twice}")
        it.failover("docker kill app containers", took, containers=len(killed))
    return fault


# ---------------------------------------------------------------- the monkey


def monkey(seconds: float, rng: random.Random) -> Fault:
    """Random faults from all of the above but the node stop, one after another."""
    choices: list[tuple[str, Callable[[], Fault]]] = [
        ("scheduler", lambda: kill_leader("scheduler")),
        ("controller-manager", lambda: kill_leader("controller-manager")),
        ("stop", lambda: stop_leaders(rng.choice(("scheduler", "controller-manager")))),
        ("apiserver", kill_apiserver),
        ("etcd-leader", kill_etcd_leader),
        ("etcd-quorum", lose_etcd_quorum),
        ("kubelet", lambda: kill_kubelet(check_after_convergence=False)),
        ("containers", kill_containers),
    ]

    async def fault(it: Iteration) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            _, make = rng.choice(choices)
            await make()(it)
            await asyncio.sleep(rng.uniform(0.5, 2.0))   # the monkey's pace
    return fault

