"""The scheduler's resource accounting and its cache of nodes and (assumed) pods."""
from __future__ import annotations

from google.protobuf import json_format

from minik8s.api.v1 import types_pb2
from scheduler.cache import NodeInfo, SchedulerCache
from scheduler.resources import (
    ZERO,
    Resources,
    allocatable,
    pod_requests,
    pod_requests_for_scoring,
)

MI = 1024 * 1024


def make_node(name: str = "n1", **allocatable: str) -> types_pb2.Node:
    return json_format.ParseDict({
        "metadata": {"name": name},
        "status": {"allocatable": allocatable or {"cpu": "4", "memory": "8Gi", "pods": "110"},
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }, types_pb2.Node())


def make_pod(name: str = "p", node: str = "", cpu: str = "100m", memory: str = "64Mi",
             ports: list[dict] | None = None) -> types_pb2.Pod:
    return json_format.ParseDict({
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
        "spec": {"nodeName": node, "containers": [
            {"name": "c", "image": "img", "ports": ports or [],
             "resources": {"requests": {"cpu": cpu, "memory": memory}}}]},
    }, types_pb2.Pod())


def info(cache: SchedulerCache, name: str) -> NodeInfo:
    return next(i for i in cache.node_infos() if i.name == name)


# ---------------------------------------------------------------- resources

def test_resources_arithmetic_and_fit() -> None:
    a, b = Resources(100, 10, 1), Resources(50, 5, 1)
    assert a + b == Resources(150, 15, 2)
    assert a - b == Resources(50, 5, 0)
    assert b.fits_within(a)
    assert not a.fits_within(b)
    assert not Resources(1, 0, 0).fits_within(ZERO)


def test_pod_requests_sum_containers_and_take_the_largest_init_container() -> None:
    pod = json_format.ParseDict({"spec": {
        "containers": [{"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "1Gi"}}},
                       {"name": "b", "resources": {"requests": {"cpu": "0.2"}}}],
        "initContainers": [
            {"name": "i1", "resources": {"requests": {"cpu": "1", "memory": "10Mi"}}},
            {"name": "i2", "resources": {"requests": {"memory": "2Gi"}}}],
    }}, types_pb2.Pod())
    assert pod_requests(pod) == Resources(1000, 2048 * MI, 1)


def test_scoring_requests_default_only_missing_container_requests() -> None:
    pod = json_format.ParseDict({"spec": {"containers": [
        {"name": "a"},
        {"name": "b", "resources": {"requests": {"cpu": "0", "memory": "1Mi"}}}]}},
        types_pb2.Pod())
    assert pod_requests(pod) == Resources(0, MI, 1)
    assert pod_requests_for_scoring(pod) == Resources(100, 200 * MI + MI, 1)


def test_allocatable_reads_the_node_and_treats_missing_as_zero() -> None:
    assert allocatable(make_node(cpu="1.5", memory="1Gi", pods="10")) == Resources(
        1500, 1024 * MI, 10)
    assert allocatable(make_node(memory="1Ki")) == Resources(0, 1024, 0)


# ---------------------------------------------------------------- bound pods

def test_bound_pods_are_counted_on_their_node() -> None:
    cache = SchedulerCache()
    cache.add_node(make_node())
    cache.add_pod(make_pod("a", node="n1", ports=[{"containerPort": 80, "hostPort": 8080}]))
    cache.add_pod(make_pod("b", node="n1"))
    n1 = info(cache, "n1")
    assert n1.requested == Resources(200, 128 * MI, 2)
    assert n1.requested_for_scoring == Resources(200, 128 * MI, 2)
    assert ("0.0.0.0", "TCP", 8080) in n1.used_ports
    assert set(n1.pods) == {"uid-a", "uid-b"}
    cache.remove_pod(make_pod("a", node="n1"))
    assert n1.requested == Resources(100, 64 * MI, 1)
    assert not n1.used_ports


def test_pods_without_a_node_are_ignored() -> None:
    cache = SchedulerCache()
    cache.add_node(make_node())
    cache.add_pod(make_pod("a"))
    assert info(cache, "n1").requested == ZERO


def test_finished_pods_release_their_resources() -> None:
    cache = SchedulerCache()
    cache.add_node(make_node())
    pod = make_pod("a", node="n1")
    cache.add_pod(pod)
    pod.status.phase = "Succeeded"
    cache.update_pod(pod)
    assert info(cache, "n1").requested == ZERO


def test_a_pod_update_that_does_not_change_usage_keeps_the_totals() -> None:
    cache = SchedulerCache()
    cache.add_node(make_node())
    cache.add_pod(make_pod("a", node="n1"))
    updated = make_pod("a", node="n1")
    updated.status.phase = "Running"
    cache.update_pod(updated)
    n1 = info(cache, "n1")
    assert n1.requested == Resources(100, 64 * MI, 1)
    assert n1.pods["uid-a"] is updated


def test_a_shared_host_port_stays_used_until_the_last_pod_goes() -> None:
    cache = SchedulerCache()
    cache.add_node(make_node())
    ports = [{"containerPort": 80, "hostPort": 8080}]
    cache.add_pod(make_pod("a", node="n1", ports=ports))
    cache.add_pod(make_pod("b", node="n1", ports=ports))
    cache.remove_pod(make_pod("a", node="n1"))
    assert info(cache, "n1").port_in_use(("0.0.0.0", "TCP", 8080))
    cache.remove_pod(make_pod("b", node="n1"))
    assert not info(cache, "n1").port_in_use(("0.0.0.0", "TCP", 8080))


# ---------------------------------------------------------------- nodes

def test_node_infos_are_in_name_order_and_only_known_nodes() -> None:
    cache = SchedulerCache()
    for name in ("b", "c", "a"):
        cache.add_node(make_node(name))
    cache.add_pod(make_pod("x", node="ghost"))
    assert [i.name for i in cache.node_infos()] == ["a", "b", "c"]
    assert cache.node_count() == 3


def test_node_update_keeps_the_pods_and_reparses_the_node() -> None:
    cache = SchedulerCache()
    cache.add_node(make_node())
    cache.add_pod(make_pod("a", node="n1"))
    listed = cache.node_infos()
    cache.update_node(make_node(cpu="8", memory="8Gi", pods="110"))
    n1 = info(cache, "n1")
    assert n1.allocatable.milli_cpu == 8000
    assert n1.requested.pods == 1
    assert cache.node_infos() is listed  # same nodes: the list is not rebuilt


def test_pods_on_a_node_not_yet_known_count_once_it_arrives() -> None:
    cache = SchedulerCache()
    cache.add_pod(make_pod("a", node="n1"))
    assert cache.node_infos() == []
    cache.add_node(make_node())
    assert info(cache, "n1").requested == Resources(100, 64 * MI, 1)


def test_a_removed_node_with_pods_keeps_its_usage_for_a_return() -> None:
    cache = SchedulerCache()
    cache.add_node(make_node())
    cache.add_pod(make_pod("a", node="n1"))
    cache.remove_node(make_node())
    assert cache.node_count() == 0
    cache.add_node(make_node())
    assert info(cache, "n1").requested.pods == 1


def test_a_removed_node_is_forgotten_once_its_pods_are_gone() -> None:
    cache = SchedulerCache()
    cache.add_node(make_node())
    cache.add_pod(make_pod("a", node="n1"))
    cache.remove_node(make_node())
    cache.remove_pod(make_pod("a", node="n1"))
    cache.add_node(make_node())
    assert info(cache, "n1").requested == ZERO


# ---------------------------------------------------------------- assumed pods

def test_an_assumed_pod_counts_until_confirmed_by_the_informer() -> None:
    cache = SchedulerCache()
    cache.add_node(make_node())
    pod = make_pod("a")  # still unbound: the scheduler only chose n1
    cache.assume(pod, "n1")
    assert cache.is_assumed("uid-a")
    assert info(cache, "n1").requested.pods == 1
    cache.finish_binding(pod, now=0.0)
    cache.add_pod(make_pod("a", node="n1"))
    assert not cache.is_assumed("uid-a")
    assert info(cache, "n1").requested.pods == 1
    assert cache.cleanup_expired(now=1000.0) == []


def test_a_pod_confirmed_on_another_node_moves_there() -> None:
    cache = SchedulerCache()
    cache.add_node(make_node("n1"))
    cache.add_node(make_node("n2"))
    cache.assume(make_pod("a"), "n1")
    cache.add_pod(make_pod("a", node="n2"))
    assert info(cache, "n1").requested == ZERO
    assert info(cache, "n2").requested.pods == 1


def test_forget_undoes_an_assumption() -> None:
    cache = SchedulerCache()
    cache.add_node(make_node())
    pod = make_pod("a")
    cache.assume(pod, "n1")
    cache.forget(pod)
    assert not cache.is_assumed("uid-a")
    assert info(cache, "n1").requested == ZERO


def test_forget_after_the_informer_confirmed_the_pod_keeps_it() -> None:
    cache = SchedulerCache()
    cache.add_node(make_node())
    cache.assume(make_pod("a"), "n1")
    cache.add_pod(make_pod("a", node="n1"))
    cache.forget(make_pod("a"))
    assert info(cache, "n1").requested.pods == 1


def test_an_unconfirmed_assumption_expires_ttl_after_its_bind_finished() -> None:
    cache = SchedulerCache(ttl=30.0)
    cache.add_node(make_node())
    pod = make_pod("a")
    cache.assume(pod, "n1")
    assert cache.cleanup_expired(now=10_000.0) == []  # the bind is still in progress
    cache.finish_binding(pod, now=100.0)
    assert cache.cleanup_expired(now=130.0) == []
    assert cache.cleanup_expired(now=130.5) == [pod]
    assert not cache.is_assumed("uid-a")
    assert info(cache, "n1").requested == ZERO


def test_an_assumed_pod_on_an_unknown_node_is_tracked() -> None:
    cache = SchedulerCache()
    pod = make_pod("a")
    cache.assume(pod, "n1")
    cache.add_node(make_node())
    assert info(cache, "n1").requested.pods == 1
    cache.forget(pod)
    assert info(cache, "n1").requested == ZERO


def test_removing_an_assumed_pod_drops_the_assumption() -> None:
    cache = SchedulerCache()
    cache.add_node(make_node())
    cache.assume(make_pod("a"), "n1")
    cache.remove_pod(make_pod("a"))
    assert not cache.is_assumed("uid-a")
    assert info(cache, "n1").requested == ZERO
