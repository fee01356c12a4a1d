"""The scheduler's filter and score plugins, one node or a few at a time."""
from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import json_format

from minik8s.api.v1 import types_pb2
from scheduler.cache import NodeInfo, SchedulerCache
from scheduler.framework import SKIP, SUCCESS, Code, Status
from scheduler.plugins.node_affinity import NodeAffinity
from scheduler.plugins.node_ports import NodePorts
from scheduler.plugins.node_resources import BalancedAllocation, Fit, LeastAllocated
from scheduler.plugins.node_unschedulable import NodeUnschedulable
from scheduler.plugins.selector_spread import SelectorSpread
from scheduler.plugins.taint_toleration import TaintToleration, tolerates

AFFINITY_MISMATCH = "node(s) didn't match Pod's node affinity/selector"


def make_node(name: str = "n1", *, cpu: str = "4", memory: str = "8Gi", pods: str = "110",
              labels: dict[str, str] | None = None, taints: list[dict] | None = None,
              ready: bool = True, unschedulable: bool = False) -> types_pb2.Node:
    return json_format.ParseDict({
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"taints": taints or [], "unschedulable": unschedulable},
        "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods},
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }, types_pb2.Node())


def make_pod(name: str = "p", *, cpu: str | None = None, memory: str | None = None,
             node: str = "", owner: str = "", **spec: Any) -> types_pb2.Pod:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    container = {"name": "c", "image": "img", "resources": {"requests": requests}}
    container.update(spec.pop("container", {}))
    metadata: dict[str, Any] = {"name": name, "namespace": "default", "uid": f"uid-{name}"}
    if owner:
        metadata["ownerReferences"] = [{"kind": "ReplicaSet", "name": owner,
                                        "uid": f"uid-{owner}", "controller": True}]
    return json_format.ParseDict(
        {"metadata": metadata, "spec": {"containers": [container], "nodeName": node, **spec}},
        types_pb2.Pod())


def infos(*nodes: types_pb2.Node, pods: tuple[types_pb2.Pod, ...] = ()) -> list[NodeInfo]:
    cache = SchedulerCache()
    for node in nodes:
        cache.add_node(node)
    for pod in pods:
        cache.add_pod(pod)
    return cache.node_infos()


def run_filter(plugin: Any, pod: types_pb2.Pod, info: NodeInfo) -> Status:
    state = plugin.pre_filter(pod)
    return SUCCESS if state is SKIP else plugin.filter(pod, info, state)


def run_score(plugin: Any, pod: types_pb2.Pod, node_infos: list[NodeInfo]) -> dict[str, int]:
    state = plugin.pre_score(pod, node_infos)
    assert state is not SKIP
    return {info.name: plugin.score(pod, info, state) for info in node_infos}


def reasons(status: Status) -> tuple[str, ...]:
    return status.reasons


# ---------------------------------------------------------------- NodeUnschedulable

def test_node_unschedulable_accepts_a_ready_schedulable_node() -> None:
    [info] = infos(make_node())
    assert run_filter(NodeUnschedulable(), make_pod(), info) is SUCCESS


def test_node_unschedulable_rejects_a_node_that_is_not_ready() -> None:
    [info] = infos(make_node(ready=False))
    status = run_filter(NodeUnschedulable(), make_pod(), info)
    assert status == Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ("node(s) were not ready",))


def test_node_without_conditions_is_not_ready() -> None:
    node = make_node()
    del node.status.conditions[:]
    [info] = infos(node)
    assert reasons(run_filter(NodeUnschedulable(), make_pod(), info)) == ("node(s) were not ready",)


@pytest.mark.parametrize(("tolerations", "fits"), [
    ([], False),
    ([{"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
       "effect": "NoSchedule"}], True),
    ([{"operator": "Exists"}], True),
    ([{"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
       "effect": "NoExecute"}], False),
])
def test_node_unschedulable_rejects_cordoned_nodes_unless_tolerated(
        tolerations: list[dict], fits: bool) -> None:
    [info] = infos(make_node(unschedulable=True))
    status = run_filter(NodeUnschedulable(), make_pod(tolerations=tolerations), info)
    assert reasons(status) == (() if fits else ("node(s) were unschedulable",))


# ---------------------------------------------------------------- NodeResourcesFit

def test_fit_accepts_a_pod_that_exactly_fills_the_node() -> None:
    [info] = infos(make_node(cpu="1", memory="1Gi"),
                   pods=(make_pod("a", cpu="500m", memory="512Mi", node="n1"),))
    assert run_filter(Fit(), make_pod(cpu="500m", memory="512Mi"), info) is SUCCESS


@pytest.mark.parametrize(("cpu", "memory", "expected"), [
    ("501m", "1Mi", ("Insufficient cpu",)),
    ("1m", "513Mi", ("Insufficient memory",)),
    ("2", "2Gi", ("Insufficient cpu", "Insufficient memory")),
])
def test_fit_names_each_insufficient_resource(cpu: str, memory: str,
                                              expected: tuple[str, ...]) -> None:
    [info] = infos(make_node(cpu="1", memory="1Gi"),
                   pods=(make_pod("a", cpu="500m", memory="512Mi", node="n1"),))
    status = run_filter(Fit(), make_pod(cpu=cpu, memory=memory), info)
    assert status == Status(Code.UNSCHEDULABLE, expected)


def test_fit_counts_pods_against_the_pod_limit() -> None:
    [info] = infos(make_node(pods="1"), pods=(make_pod("a", node="n1"),))
    assert reasons(run_filter(Fit(), make_pod(cpu="10"), info)) == (
        "Too many pods", "Insufficient cpu")


def test_fit_does_not_check_resources_the_pod_does_not_request() -> None:
    [info] = infos(make_node(cpu="1"), pods=(make_pod("a", cpu="1", node="n1"),))
    assert run_filter(Fit(), make_pod(memory="1Mi"), info) is SUCCESS


def test_fit_takes_the_largest_init_container_into_account() -> None:
    [info] = infos(make_node(cpu="1"))
    pod = make_pod(cpu="100m", initContainers=[
        {"name": "init", "image": "img", "resources": {"requests": {"cpu": "2"}}}])
    assert reasons(run_filter(Fit(), pod, info)) == ("Insufficient cpu",)


def test_fit_rejects_everything_on_a_node_that_reports_no_pod_capacity() -> None:
    node = make_node()
    del node.status.allocatable["pods"]
    [info] = infos(node)
    assert reasons(run_filter(Fit(), make_pod(), info)) == ("Too many pods",)


# ---------------------------------------------------------------- NodeAffinity

def required(*terms: dict) -> dict:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": list(terms)}}}


def expr(key: str, operator: str, *values: str) -> dict:
    return {"key": key, "operator": operator, "values": list(values)}


def test_node_affinity_skips_pods_without_selector_or_affinity() -> None:
    assert NodeAffinity().pre_filter(make_pod()) is SKIP


@pytest.mark.parametrize(("selector", "fits"), [
    ({"disk": "ssd"}, True),
    ({"disk": "ssd", "zone": "a"}, True),
    ({"disk": "hdd"}, False),
    ({"disk": "ssd", "gpu": "yes"}, False),
    ({"gpu": ""}, False),
])
def test_node_selector_needs_every_label(selector: dict[str, str], fits: bool) -> None:
    [info] = infos(make_node(labels={"disk": "ssd", "zone": "a"}))
    status = run_filter(NodeAffinity(), make_pod(nodeSelector=selector), info)
    assert reasons(status) == (() if fits else (AFFINITY_MISMATCH,))
    if not fits:
        assert status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE


@pytest.mark.parametrize(("expression", "fits"), [
    (expr("zone", "In", "a", "b"), True),
    (expr("zone", "In", "b"), False),
    (expr("missing", "In", "a"), False),
    (expr("zone", "NotIn", "b"), True),
    (expr("zone", "NotIn", "a"), False),
    (expr("missing", "NotIn", "a"), True),
    (expr("zone", "Exists"), True),
    (expr("missing", "Exists"), False),
    (expr("missing", "DoesNotExist"), True),
    (expr("zone", "DoesNotExist"), False),
    (expr("cores", "Gt", "7"), True),
    (expr("cores", "Gt", "8"), False),
    (expr("cores", "Lt", "9"), True),
    (expr("cores", "Lt", "8"), False),
    (expr("zone", "Gt", "1"), False),  # not an integer label
    (expr("missing", "Lt", "1"), False),
])
def test_required_node_affinity_operators(expression: dict, fits: bool) -> None:
    [info] = infos(make_node(labels={"zone": "a", "cores": "8"}))
    pod = make_pod(affinity=required({"matchExpressions": [expression]}))
    assert (run_filter(NodeAffinity(), pod, info) is SUCCESS) == fits


def test_required_node_affinity_ors_terms_and_ands_expressions() -> None:
    node_infos = infos(make_node("n1", labels={"zone": "a", "disk": "ssd"}),
                       make_node("n2", labels={"zone": "a", "disk": "hdd"}),
                       make_node("n3", labels={"zone": "b", "disk": "hdd"}))
    pod = make_pod(affinity=required(
        {"matchExpressions": [expr("zone", "In", "a"), expr("disk", "In", "ssd")]},
        {"matchExpressions": [expr("zone", "In", "b")]}))
    fits = {i.name: run_filter(NodeAffinity(), pod, i) is SUCCESS for i in node_infos}
    assert fits == {"n1": True, "n2": False, "n3": True}


def test_required_node_affinity_match_fields_on_the_node_name() -> None:
    node_infos = infos(make_node("n1"), make_node("n2"))
    pod = make_pod(affinity=required(
        {"matchFields": [expr("metadata.name", "In", "n2")]}))
    fits = {i.name: run_filter(NodeAffinity(), pod, i) is SUCCESS for i in node_infos}
    assert fits == {"n1": False, "n2": True}


def test_an_empty_node_selector_term_matches_no_node() -> None:
    [info] = infos(make_node(labels={"zone": "a"}))
    pod = make_pod(affinity=required({}))
    assert reasons(run_filter(NodeAffinity(), pod, info)) == (AFFINITY_MISMATCH,)


def test_node_selector_and_required_affinity_must_both_match() -> None:
    [info] = infos(make_node(labels={"zone": "a"}))
    pod = make_pod(nodeSelector={"zone": "a"},
                   affinity=required({"matchExpressions": [expr("zone", "In", "b")]}))
    assert reasons(run_filter(NodeAffinity(), pod, info)) == (AFFINITY_MISMATCH,)


# ---------------------------------------------------------------- TaintToleration

GPU = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


@pytest.mark.parametrize(("toleration", "taint", "expected"), [
    ({"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"},
     ("k", "v", "NoSchedule"), True),
    ({"key": "k", "operator": "Equal", "value": "w", "effect": "NoSchedule"},
     ("k", "v", "NoSchedule"), False),
    ({"key": "k", "value": "v"}, ("k", "v", "NoExecute"), True),  # "" operator is Equal
    ({"key": "k", "operator": "Exists"}, ("k", "anything", "NoExecute"), True),
    ({"key": "other", "operator": "Exists"}, ("k", "v", "NoSchedule"), False),
    ({"operator": "Exists"}, ("k", "v", "NoSchedule"), True),
    ({"operator": "Exists", "effect": "NoExecute"}, ("k", "v", "NoSchedule"), False),
    ({"key": "k", "operator": "Exists", "effect": "NoSchedule"},
     ("k", "v", "PreferNoSchedule"), False),
])
def test_toleration_matching(toleration: dict, taint: tuple[str, str, str],
                             expected: bool) -> None:
    tol = json_format.ParseDict(toleration, types_pb2.Toleration())
    assert tolerates([(tol.key, tol.operator, tol.value, tol.effect)], taint) is expected


def test_taint_toleration_rejects_an_untolerated_no_schedule_taint() -> None:
    [info] = infos(make_node(taints=[GPU]))
    status = run_filter(TaintToleration(), make_pod(), info)
    assert status == Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
                            ("node(s) had untolerated taint {dedicated: gpu}",))


def test_taint_toleration_rejects_an_untolerated_no_execute_taint() -> None:
    [info] = infos(make_node(taints=[{"key": "k", "effect": "NoExecute"}]))
    assert reasons(run_filter(TaintToleration(), make_pod(), info)) == (
        "node(s) had untolerated taint {k: }",)


def test_taint_toleration_ignores_prefer_no_schedule_and_tolerated_taints() -> None:
    [info] = infos(make_node(taints=[GPU, {"key": "spot", "effect": "PreferNoSchedule"}]))
    pod = make_pod(tolerations=[{"key": "dedicated", "operator": "Equal", "value": "gpu"}])
    assert run_filter(TaintToleration(), pod, info) is SUCCESS


def test_taint_toleration_reports_the_first_untolerated_taint() -> None:
    [info] = infos(make_node(taints=[GPU, {"key": "b", "value": "2", "effect": "NoSchedule"}]))
    pod = make_pod(tolerations=[{"key": "dedicated", "operator": "Exists"}])
    assert reasons(run_filter(TaintToleration(), pod, info)) == (
        "node(s) had untolerated taint {b: 2}",)


# ---------------------------------------------------------------- NodePorts

PORTS_TAKEN = "node(s) didn't have free ports for the requested pod ports"


def port_pod(name: str, port: int, protocol: str = "TCP", host_ip: str = "",
             node: str = "") -> types_pb2.Pod:
    return make_pod(name, node=node, container={"ports": [
        {"containerPort": 80, "hostPort": port, "protocol": protocol, "hostIP": host_ip}]})


def test_node_ports_skips_pods_without_host_ports() -> None:
    assert NodePorts().pre_filter(make_pod(container={"ports": [{"containerPort": 80}]})) is SKIP


@pytest.mark.parametrize(("used", "wanted", "conflict"), [
    (("", 8080, "TCP"), ("", 8080, "TCP"), True),
    (("", 8080, "TCP"), ("", 8081, "TCP"), False),
    (("", 8080, "TCP"), ("", 8080, "UDP"), False),
    (("10.0.0.1", 8080, "TCP"), ("", 8080, "TCP"), True),
    (("", 8080, "TCP"), ("10.0.0.1", 8080, "TCP"), True),
    (("10.0.0.1", 8080, "TCP"), ("10.0.0.1", 8080, "TCP"), True),
    (("10.0.0.1", 8080, "TCP"), ("10.0.0.2", 8080, "TCP"), False),
    (("0.0.0.0", 8080, "TCP"), ("10.0.0.2", 8080, "TCP"), True),
])
def test_node_ports_conflicts(used: tuple[str, int, str], wanted: tuple[str, int, str],
                              conflict: bool) -> None:
    ip, port, protocol = used
    [info] = infos(make_node(), pods=(port_pod("a", port, protocol, ip, node="n1"),))
    ip, port, protocol = wanted
    status = run_filter(NodePorts(), port_pod("b", port, protocol, ip), info)
    assert reasons(status) == ((PORTS_TAKEN,) if conflict else ())


def test_node_ports_host_network_pods_claim_their_container_ports() -> None:
    used = make_pod("a", node="n1", hostNetwork=True, container={"ports": [{"containerPort": 53}]})
    [info] = infos(make_node(), pods=(used,))
    assert reasons(run_filter(NodePorts(), port_pod("b", 53), info)) == (PORTS_TAKEN,)


# ---------------------------------------------------------------- scores

def test_least_allocated_prefers_the_emptier_node() -> None:
    node_infos = infos(make_node("empty"), make_node("busy"),
                       pods=(make_pod("a", cpu="2", memory="4Gi", node="busy"),))
    scores = run_score(LeastAllocated(), make_pod(cpu="1", memory="2Gi"), node_infos)
    # empty: cpu (4-1)/4 = 75, memory (8-2)/8 = 75; busy: 25 and 25.
    assert scores == {"busy": 25, "empty": 75}


def test_least_allocated_counts_missing_requests_as_the_scoring_defaults() -> None:
    [info] = infos(make_node(cpu="1", memory="1000Mi"))
    # 100m of 1000m cpu -> 90; 200Mi of 1000Mi memory -> 80.
    assert run_score(LeastAllocated(), make_pod(), [info]) == {"n1": 85}


def test_balanced_allocation_prefers_even_cpu_and_memory_use() -> None:
    node_infos = infos(make_node("even"), make_node("skewed"),
                       pods=(make_pod("a", cpu="1", memory="1Gi", node="even"),
                             make_pod("b", cpu="3", node="skewed")))
    scores = run_score(BalancedAllocation(), make_pod(cpu="1", memory="3Gi"), node_infos)
    # even: cpu 2/4, memory 4/8 -> 100; skewed: cpu 4/4, memory 3/8 -> 1 - 0.3125 = 68.
    assert scores == {"even": 100, "skewed": 68}


def test_balanced_allocation_skips_best_effort_pods() -> None:
    assert BalancedAllocation().pre_score(make_pod(), infos(make_node())) is SKIP


def test_node_affinity_score_sums_and_normalizes_preferred_weights() -> None:
    node_infos = infos(make_node("both", labels={"disk": "ssd", "zone": "a"}),
                       make_node("zone", labels={"zone": "a"}),
                       make_node("none"))
    pod = make_pod(affinity={"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 60, "preference": {"matchExpressions": [expr("disk", "In", "ssd")]}},
        {"weight": 20, "preference": {"matchExpressions": [expr("zone", "Exists")]}},
    ]}})
    assert run_score(NodeAffinity(), pod, node_infos) == {"both": 100, "none": 0, "zone": 25}


def test_node_affinity_score_skips_pods_without_preferences() -> None:
    assert NodeAffinity().pre_score(make_pod(), infos(make_node())) is SKIP


def test_taint_toleration_score_prefers_fewer_intolerable_soft_taints() -> None:
    soft = [{"key": k, "effect": "PreferNoSchedule"} for k in ("a", "b")]
    node_infos = infos(make_node("clean"), make_node("one", taints=soft[:1]),
                       make_node("two", taints=soft),
                       make_node("tolerated", taints=[{"key": "c", "effect": "PreferNoSchedule"}]))
    pod = make_pod(tolerations=[{"key": "c", "operator": "Exists", "effect": "PreferNoSchedule"}])
    assert run_score(TaintToleration(), pod, node_infos) == {
        "clean": 100, "one": 50, "tolerated": 100, "two": 0}


def test_selector_spread_prefers_nodes_with_fewer_pods_of_the_same_owner() -> None:
    terminating = make_pod("t", owner="rs", node="n1")
    terminating.metadata.deletion_timestamp.seconds = 1
    node_infos = infos(make_node("n0"), make_node("n1"), make_node("n2"), pods=(
        make_pod("a", owner="rs", node="n1"), terminating,
        make_pod("b", owner="rs", node="n2"), make_pod("c", owner="rs", node="n2"),
        make_pod("d", owner="other", node="n0")))
    assert run_score(SelectorSpread(), make_pod(owner="rs"), node_infos) == {
        "n0": 100, "n1": 50, "n2": 0}


def test_selector_spread_skips_pods_without_a_controller() -> None:
    assert SelectorSpread().pre_score(make_pod(), infos(make_node())) is SKIP
