"""What must hold once a fault has healed, as a user would check it.

* Convergence (within ChaosConfig.converge_timeout): every Deployment the
  workload was told it wrote exists with the last acknowledged replicas and
  template and runs exactly that many Ready pods of that template; every one
  it deleted is gone with its ReplicaSets and pods; every Service it created
  exists, and answers on its ClusterIP from a pod of its Deployment; every one
  it deleted is gone. (An object whose last write was never answered may show
  either its acknowledged or its attempted state.)
* Every process is up and ready, none restarted more often than the faults
  explain (no crash loop).
* Deposed leaders: the apiservers' apiserver_fenced_writes_total tells how
  many writes carrying a stale lease token etcd refused; the pod observer
  checks that none of them got through (no duplicates, no double binding).
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families

from minik8s import errors
from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from minik8s.localcluster import ClusterError
from tests.chaos.base import LEADER_ROLES, Target
from tests.chaos.workload import ABSENT, REV, State, Workload

# apiserver -> (lease, holder, verb, result) -> count
Fenced = dict[str, Counter[tuple[str, str, str, str]]]


def is_ready(pod: t.Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


def _describe(pod: t.Pod) -> str:
    phase = "terminating" if pod.metadata.HasField("deletion_timestamp") else pod.status.phase
    ready = ", ready" if is_ready(pod) else ""
    return f"{pod.metadata.name}(rev {pod.metadata.annotations.get(REV)}, {phase}{ready})"


async def _state(api: ApiClient, kind: str, name: str, namespace: str) -> tuple[State, object]:
    try:
        obj = await api.get(kind, name, namespace)
    except errors.NotFound:
        return ABSENT, None
    if kind == "Deployment":
        return State(True, obj.spec.replicas,
                     obj.spec.template.metadata.annotations.get(REV, "")), obj
    return State(True), obj


async def unmet(api: ApiClient, wl: Workload, target: Target | None = None) -> list[str]:
    """What is not (yet) as the workload's acknowledged writes say; [] once converged.

    With a target, each Service must also answer on its ClusterIP (asked where the
    target's proxy serves it) once the API says all is done.
    """
    ns = wl.namespace
    out: list[str] = []
    pods, _ = await api.list("Pod", ns)
    sets, _ = await api.list("ReplicaSet", ns)
    expected_pods: dict[str, tuple[int, str]] = {}
    for dep in wl.deployments():
        state, _ = await _state(api, "Deployment", dep.name, ns)
        if state not in dep.allowed:
            out.append(f"Deployment {dep.name} is {state}, expected "
                       f"{' or '.join(map(str, dep.allowed))}")
            continue
        mine = [p for p in pods if p.metadata.labels.get("app") == dep.name]
        if not state.exists:
            rss = [rs.metadata.name for rs in sets if rs.metadata.labels.get("app") == dep.name]
            if mine or rss:
                out.append(f"deleted Deployment {dep.name} still has pods "
                           f"{sorted(p.metadata.name for p in mine)} and ReplicaSets {rss}")
            continue
        expected_pods[dep.name] = (state.replicas, state.rev)
        good = [p for p in mine if not p.metadata.HasField("deletion_timestamp")
                and p.metadata.annotations.get(REV) == state.rev and is_ready(p)]
        if len(good) != state.replicas or len(mine) != state.replicas:
            out.append(f"Deployment {dep.name}: {len(good)} Ready pods of rev {state.rev} of "
                       f"{state.replicas}, {len(mine)} pods in all: "
                       + ", ".join(_describe(p) for p in mine))
    answering: list[tuple[str, str, set[str]]] = []
    for svc in wl.services():
        state, obj = await _state(api, "Service", svc.name, ns)
        if state not in svc.allowed:
            out.append(f"Service {svc.name} is {state}, expected "
                       f"{' or '.join(map(str, svc.allowed))}")
        elif state.exists and expected_pods.get(svc.name, (0, ""))[0] > 0:
            names = {p.metadata.name for p in pods if p.metadata.labels.get("app") == svc.name}
            answering.append((svc.name, obj.spec.cluster_ip, names))
    if out or target is None:
        return out
    for name, ip, names in answering:
        for _ in range(2):
            answer = await target.http_get(ip, 80)
            if answer not in names:
                out.append(f"Service {name} ({ip}:80) answered {answer!r}, not one of {names}")
                break
    return out


async def wait_converged(api: ApiClient, wl: Workload, target: Target, timeout: float,
                         since: float | None = None,
                         blocking: list[str] | None = None) -> float:
    """Wait until unmet() is empty; seconds from `since` (default: now) until it was.

    `blocking` (if given) receives what was still unmet at the last look before
    convergence, to tell what a slow recovery waited for.
    """
    start = time.monotonic() if since is None else since
    deadline = time.monotonic() + timeout
    last: list[str] = []
    while True:
        try:
            now = await unmet(api, wl, target)
        except errors.ApiError as err:
            now = [f"API: {type(err).__name__}: {err.message}"]
        if not now:
            if blocking is not None:
                blocking[:] = last
            return time.monotonic() - start
        last = now
        if time.monotonic() > deadline:
            raise AssertionError(f"not converged within {timeout:.0f}s:\n  " + "\n  ".join(last))
        await asyncio.sleep(0.25)


# ---------------------------------------------------------------- processes


async def all_up(target: Target, timeout: float = 30.0) -> list[str]:
    """Every process running and ready; the problems found (none: [])."""
    try:
        await asyncio.to_thread(target.wait_ready, timeout)
    except ClusterError as err:
        return [f"process not up: {err}"]
    return []


def crash_loops(before: Mapping[str, int], after: Mapping[str, int],
                allowed: Mapping[str, int], faults: int) -> list[str]:
    """Processes restarted more often than the faults explain.

    Each deliberate kill explains one restart of that process; each fault
    injected may cost every leader-elected process one exit (a leader that
    cannot renew steps down by exiting) and nothing else.
    """
    out = []
    for name in set(after) | set(allowed):
        restarts = after.get(name, 0) - before.get(name, 0)
        budget = allowed.get(name, 0) + (faults if name.rsplit("-", 1)[0] in LEADER_ROLES
                                          else 0)
        if restarts > budget:
            out.append(f"{name} restarted {restarts} times (at most {budget} explained by the "
                       f"faults): crash-looping?")
    return out


# ---------------------------------------------------------------- fencing


def fenced_writes(target: Target) -> Fenced:
    """The fencing counters of each apiserver that answers."""
    out: Fenced = {}
    for name, text in target.apiserver_metrics().items():
        counts: Counter[tuple[str, str, str, str]] = Counter()
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == "apiserver_fenced_writes_total":
                    counts[(s.labels["lease"], s.labels["holder"], s.labels["verb"],
                            s.labels["result"])] += int(s.value)
        out[name] = counts
    return out


def fenced_delta(before: Fenced, after: Fenced) -> Counter[tuple[str, str, str, str]]:
    """What the counters grew by (an apiserver restarted in between counts from zero)."""
    total: Counter[tuple[str, str, str, str]] = Counter()
    for name, now in after.items():
        then = before.get(name, Counter())
        restarted = sum(now.values()) < sum(then.values())
        for key, value in now.items():
            total[key] += value if restarted else max(0, value - then.get(key, 0))
    return total


def by_holder(counts: Mapping[tuple[str, str, str, str], int], holder: str,
              result: str) -> int:
    return sum(v for (_l, h, _v, r), v in counts.items() if h == holder and r == result)


def rejected(counts: Mapping[tuple[str, str, str, str], int]) -> int:
    return sum(v for (_l, _h, _v, r), v in counts.items() if r == "rejected")
