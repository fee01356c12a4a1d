"""The faults: each injects itself, measures its failover, heals, and says when it healed.

Failover, per fault:
* a leader killed or paused: fault -> a new holder's Lease is acquired;
* an apiserver or the etcd raft leader killed: fault -> a write through a
  client whose first endpoint is the dead apiserver (or any) is accepted again;
* etcd quorum lost: quorum restored (members restarted) -> a write is accepted;
* a kubelet killed: fault -> the restarted kubelet is ready;
* a node's kubelet stopped: fault -> its pods evicted and running elsewhere;
* app containers killed: fault -> every one of them restarted and Ready.

A fault that is over at once (SIGKILL of a supervised process, docker kill)
heals when it happens; one that is held (SIGSTOP, a process left dead) heals
when it is undone (SIGCONT, restart), and recovery is measured from then.
"""
from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import time
from collections.abc import Callable

import docker
import docker.errors

from kubelet import labels
from minik8s import errors
from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from tests.chaos import invariants as inv
from tests.chaos.harness import Fault, Iteration
from tests.chaos.observer import live
from tests.integration.helpers import eventually, leader_process

UNREACHABLE = "node.kubernetes.io/unreachable"
_probes = 0


async def sleep_until(at: float) -> None:
    """Hold a fault until a moment (a fixed hold, not a stand-in for a condition)."""
    await asyncio.sleep(max(0.0, at - time.monotonic()))


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


def _name_of(it: Iteration, server: str) -> str:
    port = int(server.rsplit(":", 1)[1])
    return next(p.name for p in it.cluster.role("apiserver") if p.ports["grpc"] == port)


# ---------------------------------------------------------------- leaders


def kill_leader(role: str) -> Fault:
    async def fault(it: Iteration) -> None:
        identity, name = await leader_process(it.cluster, it.api, role)
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
        old = {role: await leader_process(it.cluster, it.api, role) for role in roles}
        pids = {role: it.cluster.procs[name].pid for role, (_, name) in old.items()}
        at = time.monotonic()
        for _, name in old.values():
            it.cluster.signal(name, signal.SIGSTOP)
        try:
            took = {role: await until_new_leader(it.api, role, identity, at)
                    for role, (identity, _) in old.items()}
            # past the lease, and a second past the takeover for anything in flight to land
            await sleep_until(max(at + hold, time.monotonic() + 1.0))
            mid = inv.fenced_writes(it.cluster)
        finally:
            for _, name in old.values():
                it.cluster.signal(name, signal.SIGCONT)
        it.healed()
        for _, name in old.values():
            it.kills[name] += 1   # it is meant to exit once

        def replaced() -> bool:
            return all(it.cluster.procs[name].pid != pids[role]
                       for role, (_, name) in old.items())
        try:
            await eventually(replaced, timeout=20, interval=0.05)
            exited = time.monotonic() - it.healed_at
        except AssertionError:
            exited = None
            it.problems.append(f"a deposed leader did not exit within 20s of SIGCONT: "
                               f"{ {n: it.cluster.procs[n].pid for _, n in old.values()} }")
        stale: dict[str, int] = {}

        async def no_deposed_writes() -> list[str]:
            delta = inv.fenced_delta(mid, inv.fenced_writes(it.cluster))
            out = []
            for role, (identity, _name) in old.items():
                stale[role] = inv.by_holder(delta, identity, "rejected")
                accepted = inv.by_holder(delta, identity, "accepted")
                if accepted:
                    out.append(f"{accepted} writes of the deposed {role} leader {identity} "
                               f"were accepted after its successor took over")
            return out
        it.checks.append(no_deposed_writes)
        it.failover(f"SIGSTOP {'+'.join(roles)} leader {hold:.0f}s", max(took.values()),
                    per_role={r: round(s, 2) for r, s in took.items()},
                    exited_after_sigcont_s=None if exited is None else round(exited, 2),
                    stale_writes_refused=stale)
    return fault


# ---------------------------------------------------------------- apiserver and etcd


def kill_apiserver(hold: float = 2.0) -> Fault:
    """SIGKILL the apiserver the pod observer watches through; restart it after hold."""
    async def fault(it: Iteration) -> None:
        victim_addr = it.observer.api.endpoint
        victim = _name_of(it, victim_addr)
        resumes = it.observer.resumes
        probe = _probe_client([victim_addr, *(s for s in it.cluster.servers
                                              if s != victim_addr)])
        probe._current = 0   # its first call goes to the apiserver about to die
        try:
            at = await it.kill(victim)
            took = await until_writable(probe, it.sc.namespace, at)
            await eventually(lambda: it.observer.resumes > resumes, timeout=15, interval=0.05)
            resumed = time.monotonic() - at
        finally:
            await probe.close()
        await sleep_until(at + hold)
        await asyncio.to_thread(it.cluster.restart, victim)
        it.healed()
        await asyncio.to_thread(it.cluster.wait_ready, 30, [victim])
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
    async def fault(it: Iteration) -> None:
        members = len(it.cluster.role("etcd"))
        leader = await etcd_leader(it.api)
        probe = _probe_client(it.cluster.servers)
        try:
            at = await it.kill(leader)
            took = await until_writable(probe, it.sc.namespace, at)
        finally:
            await probe.close()
        await sleep_until(at + hold)
        await asyncio.to_thread(it.cluster.restart, leader)
        it.healed()
        await etcd_healthy(it.api, members)
        it.failover("SIGKILL the etcd raft leader", took, member=leader,
                    new_leader=await etcd_leader(it.api))
    return fault


def lose_etcd_quorum(hold: float = 3.0) -> Fault:
    """SIGKILL two of the three etcd members (the leader among them), restart both after hold.

    Writes fail while quorum is lost: that is expected. What was acknowledged
    before must survive, and the workload's writes go through once it is back.
    """
    async def fault(it: Iteration) -> None:
        members = [p.name for p in it.cluster.role("etcd")]
        leader = await etcd_leader(it.api)
        victims = [leader, random.choice([m for m in members if m != leader])]
        probe = _probe_client(it.cluster.servers)
        try:
            at = time.monotonic()
            for name in victims:
                await it.kill(name)
            refused = ""
            try:
                await write_probe(probe, it.sc.namespace)
            except errors.ApiError as err:
                refused = type(err).__name__
            await sleep_until(at + hold)
            for name in victims:
                await asyncio.to_thread(it.cluster.restart, name)
            it.healed()
            took = await until_writable(probe, it.sc.namespace, it.healed_at)
        finally:
            await probe.close()
        await etcd_healthy(it.api, len(members))
        it.failover("SIGKILL 2 of 3 etcd members", took, members=victims,
                    write_without_quorum=refused or "accepted")
        if not refused:
            it.problems.append("a write was accepted while 2 of 3 etcd members were down")
    return fault


# ---------------------------------------------------------------- nodes and containers


def _engine() -> docker.DockerClient:
    return docker.from_env()


def running_containers(uid: str) -> set[str]:
    return {c.id for c in _engine().containers.list(
        ignore_removed=True, filters={"label": f"{labels.POD_UID}={uid}", "status": "running"})}


async def pods_on(api: ApiClient, namespace: str, node: str) -> list[t.Pod]:
    pods, _ = await api.list("Pod", namespace)
    return [p for p in pods if p.spec.node_name == node and live(p)]


async def busiest_node(it: Iteration) -> str:
    """The node running most of the scenario's pods."""
    pods, _ = await it.api.list("Pod", it.sc.namespace)
    nodes = [p.name for p in it.cluster.role("kubelet")]
    return max(nodes, key=lambda n: sum(1 for p in pods if p.spec.node_name == n and live(p)))


def _restarts(pod: t.Pod) -> dict[str, int]:
    return {s.name: s.restart_count for s in pod.status.container_statuses}


def kill_kubelet(check_after_convergence: bool = True) -> Fault:
    """SIGKILL a kubelet: the supervisor starts it again; its pods' containers keep running."""
    async def fault(it: Iteration) -> None:
        node = await busiest_node(it)
        ns = it.sc.namespace
        before = {p.metadata.uid: (p.metadata.name, await asyncio.to_thread(
            running_containers, p.metadata.uid), _restarts(p))
            for p in await pods_on(it.api, ns, node) if inv.is_ready(p)}
        old = it.cluster.procs[node].pid
        at = await it.kill(node)
        it.healed_at = at
        await eventually(lambda: it.cluster.procs[node].alive
                         and it.cluster.procs[node].pid != old, timeout=20, interval=0.05)
        await asyncio.to_thread(it.cluster.wait_ready, 30, [node])
        took = time.monotonic() - at

        async def kept_running() -> list[str]:
            now = {p.metadata.uid: p for p in await pods_on(it.api, ns, node)}
            out, compared = [], 0
            for uid, (name, ids, restarts) in before.items():
                pod = now.get(uid)
                if pod is None:
                    continue  # the workload rolled or deleted it meanwhile
                compared += 1
                running = await asyncio.to_thread(running_containers, uid)
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


def stop_node(grace_timeout: float = 60.0) -> Fault:
    """SIGSTOP a kubelet until its node is NotReady and its pods run elsewhere; SIGCONT it."""
    async def fault(it: Iteration) -> None:
        node = await busiest_node(it)
        ns = it.sc.namespace
        at = time.monotonic()
        it.cluster.signal(node, signal.SIGSTOP)
        try:
            async def not_ready() -> bool:
                n = await it.api.get("Node", node)
                return any(c.type == "Ready" and c.status != "True" for c in n.status.conditions)
            await eventually(not_ready, timeout=grace_timeout, interval=0.2)
            marked = time.monotonic() - at

            async def replaced() -> bool:
                if await pods_on(it.api, ns, node):
                    return False
                return not await inv.unmet(it.api, it.wl, traffic=False)
            await eventually(replaced, timeout=grace_timeout, interval=0.25)
            took = time.monotonic() - at
        finally:
            it.cluster.signal(node, signal.SIGCONT)
        it.healed()

        async def ready_again() -> bool:
            n = await it.api.get("Node", node)
            return any(c.type == "Ready" and c.status == "True" for c in n.status.conditions) \
                and not any(x.key == UNREACHABLE for x in n.spec.taints)
        await eventually(ready_again, timeout=60, interval=0.2)
        back = time.monotonic() - it.healed_at

        async def no_orphans() -> list[str]:
            def orphans() -> list[str]:
                pods = {p.metadata.uid for p in pods_now}
                mine = [f"{labels.CLUSTER}={it.cluster.name}", f"{labels.NODE}={node}",
                        f"{labels.POD_NAMESPACE}={ns}"]
                return [f"{c.name} (pod {c.labels.get(labels.POD_NAME)})"
                        for c in _engine().containers.list(all=True, ignore_removed=True,
                                                           filters={"label": mine})
                        if c.labels.get(labels.POD_UID) not in pods]
            pods_now: list[t.Pod] = []

            async def gone() -> bool:
                pods_now[:] = (await it.api.list("Pod", ns))[0]
                return not await asyncio.to_thread(orphans)
            try:
                await eventually(gone, timeout=30, interval=0.5)
            except AssertionError:
                return [f"orphaned containers of evicted pods left on {node}: "
                        f"{await asyncio.to_thread(orphans)}"]
            cleaned.append(round(time.monotonic() - it.healed_at, 2))
            return []
        cleaned: list[float] = []
        it.checks.append(no_orphans)
        it.failover("SIGSTOP a node's kubelet until evicted", took, node=node,
                    not_ready_after_s=round(marked, 2), ready_after_sigcont_s=round(back, 2),
                    orphans_gone_after_sigcont_s=cleaned)
    return fault


def kill_containers() -> Fault:
    """docker kill the app containers of the scenario's pods behind the kubelets' back."""
    async def fault(it: Iteration) -> None:
        ns = it.sc.namespace

        def victims() -> list:
            return [c for c in _engine().containers.list(ignore_removed=True, filters={"label": [
                f"{labels.CLUSTER}={it.cluster.name}", f"{labels.POD_NAMESPACE}={ns}"],
                "status": "running"}) if c.labels.get(labels.CONTAINER_NAME) != labels.SANDBOX]
        pods = {p.metadata.uid: p for p in (await it.api.list("Pod", ns))[0]
                if live(p) and inv.is_ready(p)}
        killed = {c.labels[labels.POD_UID]: c for c in await asyncio.to_thread(victims)
                  if c.labels[labels.POD_UID] in pods}
        before = {uid: _restarts(pods[uid]).get("c", 0) for uid in killed}
        at = time.monotonic()
        for c in killed.values():
            with contextlib.suppress(docker.errors.APIError):  # its pod went meanwhile
                await asyncio.to_thread(c.kill)
        it.healed_at = at
        counts: dict[str, int] = {}

        async def restarted() -> bool:
            now = {p.metadata.uid: p for p in (await it.api.list("Pod", ns))[0] if live(p)}
            for uid in killed:
                pod = now.get(uid)
                if pod is None:
                    continue  # deleted by the workload meanwhile
                status = next((s for s in pod.status.container_statuses if s.name == "c"), None)
                if status is None or not status.ready or status.restart_count <= before[uid] \
                        or status.container_id.endswith(killed[uid].id):
                    return False
                counts[uid] = status.restart_count
            return True
        await eventually(restarted, timeout=60, interval=0.2)
        took = time.monotonic() - at
        twice = {killed[u].labels.get(labels.POD_NAME): (before[u], n)
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

