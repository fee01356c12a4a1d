"""The DaemonSet controller's pure logic: eligibility, the per-node plan, rolling updates, status."""
from __future__ import annotations

import datetime
from typing import Any

import pytest
from google.protobuf import json_format

from controller_manager.daemonset import (
    DAEMON_TOLERATIONS,
    REVISION_LABEL,
    daemon_pod,
    daemon_status,
    max_unavailable,
    plan,
    pods_by_node,
    rolling_deletions,
    should_run,
    target_node,
    template_hash,
    template_pod,
)
from minik8s.api.v1 import types_pb2 as t

NOW = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
NEW, OLD = "new-hash", "old-hash"


def node(name: str, labels: dict[str, str] | None = None,
         taints: list[dict] | None = None) -> t.Node:
    return json_format.ParseDict({"metadata": {"name": name, "labels": labels or {}},
                                  "spec": {"taints": taints or []}}, t.Node())


def daemon_set(**template_spec: Any) -> t.DaemonSet:
    return json_format.ParseDict({
        "metadata": {"name": "agent", "namespace": "ns", "uid": "ds-uid", "generation": 3},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
                 "template": {"metadata": {"labels": {"app": "agent"}},
                              "spec": {"containers": [{"name": "c", "image": "img"}],
                                       **template_spec}}},
    }, t.DaemonSet())


def pod(name: str, node_name: str, *, revision: str = NEW, ready: bool = True,
        terminating: bool = False, phase: str = "Running", created: int = 0) -> t.Pod:
    p = t.Pod(metadata=t.ObjectMeta(name=name, uid=f"uid-{name}",
                                    labels={REVISION_LABEL: revision}),
              spec=t.PodSpec(node_name=node_name), status=t.PodStatus(phase=phase))
    p.metadata.creation_timestamp.FromSeconds(created)
    if terminating:
        p.metadata.deletion_timestamp.FromSeconds(created + 1)
    if ready:
        p.status.conditions.add(type="Ready", status="True").last_transition_time.FromSeconds(0)
    return p


# ---------------------------------------------------------------- eligibility

def test_every_node_is_eligible_without_constraints() -> None:
    assert should_run(template_pod(daemon_set()), node("n1"))


def test_node_selector_and_required_affinity() -> None:
    selected = template_pod(daemon_set(nodeSelector={"role": "edge"}))
    assert should_run(selected, node("a", {"role": "edge"}))
    assert not should_run(selected, node("b", {"role": "core"}))
    affine = template_pod(daemon_set(affinity={"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}]}}}))
    assert should_run(affine, node("a", {"disk": "ssd"}))
    assert not should_run(affine, node("b"))


@pytest.mark.parametrize("effect", ["NoSchedule", "NoExecute"])
def test_untolerated_taints_exclude_a_node(effect: str) -> None:
    tainted = node("n1", taints=[{"key": "dedicated", "value": "gpu", "effect": effect}])
    assert not should_run(template_pod(daemon_set()), tainted)
    tolerant = daemon_set(tolerations=[{"key": "dedicated", "operator": "Exists"}])
    assert should_run(template_pod(tolerant), tainted)


def test_prefer_no_schedule_taints_do_not_exclude() -> None:
    soft = node("n1", taints=[{"key": "x", "effect": "PreferNoSchedule"}])
    assert should_run(template_pod(daemon_set()), soft)


@pytest.mark.parametrize("key,effect", [("node.kubernetes.io/not-ready", "NoExecute"),
                                        ("node.kubernetes.io/unreachable", "NoExecute"),
                                        ("node.kubernetes.io/unschedulable", "NoSchedule")])
def test_daemon_pods_tolerate_node_conditions(key: str, effect: str) -> None:
    assert should_run(template_pod(daemon_set()), node("n1", taints=[{"key": key,
                                                                       "effect": effect}]))


def test_template_node_name_pins_the_daemon_set() -> None:
    pinned = template_pod(daemon_set(nodeName="n1"))
    assert should_run(pinned, node("n1")) and not should_run(pinned, node("n2"))


# ---------------------------------------------------------------- pods

def test_daemon_pod_is_pinned_by_affinity_and_labelled() -> None:
    ds = daemon_set(affinity={"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "disk", "operator": "Exists"}]}]}}})
    p = daemon_pod(ds, "n7", "abc")
    terms = p.spec.affinity.node_affinity \
        .required_during_scheduling_ignored_during_execution.node_selector_terms
    assert len(terms) == 1 and not terms[0].match_expressions
    assert json_format.MessageToDict(terms[0].match_fields[0]) == {
        "key": "metadata.name", "operator": "In", "values": ["n7"]}
    assert p.metadata.labels == {"app": "agent", REVISION_LABEL: "abc"}
    assert p.metadata.owner_references[0].uid == "ds-uid"
    assert all(tol in p.spec.tolerations for tol in DAEMON_TOLERATIONS)
    assert not p.spec.node_name and target_node(p) == "n7"


def test_daemon_tolerations_are_not_duplicated() -> None:
    ds = daemon_set(tolerations=[json_format.MessageToDict(DAEMON_TOLERATIONS[0])])
    assert len(daemon_pod(ds, "n1", "x").spec.tolerations) == len(DAEMON_TOLERATIONS)


def test_target_node_prefers_the_binding() -> None:
    p = daemon_pod(daemon_set(), "n1", "x")
    p.spec.node_name = "n1"
    assert target_node(p) == "n1"
    assert target_node(t.Pod()) == ""
    assert pods_by_node([t.Pod(), p]) == {"n1": [p]}


def test_template_hash_follows_the_template_only() -> None:
    a, b = daemon_set(), daemon_set()
    b.metadata.generation = 9
    assert template_hash(a.spec.template) == template_hash(b.spec.template)
    b.spec.template.spec.containers[0].image = "img:2"
    assert template_hash(a.spec.template) != template_hash(b.spec.template)


# ---------------------------------------------------------------- plan

def test_plan_creates_where_missing_and_deletes_where_not_eligible() -> None:
    on_b, on_c = pod("on-b", "b"), pod("on-c", "c")
    todo = plan({"a": True, "b": True, "c": False}, {"b": [on_b], "c": [on_c]})
    assert todo.create == ["a"] and todo.delete == [on_c] and todo.orphaned == []


def test_a_terminating_pod_blocks_its_replacement() -> None:
    leaving = pod("leaving", "a", terminating=True)
    todo = plan({"a": True, "b": False}, {"a": [leaving], "b": [pod("x", "b", terminating=True)]})
    assert todo.create == [] and todo.delete == []


def test_plan_keeps_the_oldest_bound_pod_and_drops_finished_ones() -> None:
    oldest, newer = pod("oldest", "a", created=1), pod("newer", "a", created=5)
    unbound = pod("unbound", "", created=0)
    unbound.spec.CopyFrom(daemon_pod(daemon_set(), "a", NEW).spec)
    failed = pod("failed", "a", phase="Failed")
    todo = plan({"a": True}, pods_by_node([newer, unbound, failed, oldest]))
    assert [p.metadata.name for p in todo.delete] == ["failed", "newer", "unbound"]


def test_pods_on_vanished_nodes_are_orphaned() -> None:
    gone = [pod("g1", "gone"), pod("g2", "gone", terminating=True)]
    todo = plan({"a": True}, {"a": [pod("p", "a")], "gone": gone})
    assert todo.orphaned == gone and todo.create == [] and todo.delete == []


# ---------------------------------------------------------------- rolling update

@pytest.mark.parametrize("value,desired,expected", [
    (None, 10, 1), (3, 10, 3), (0, 10, 1), ("25%", 10, 3), ("10%", 3, 1), ("0%", 5, 1)])
def test_max_unavailable(value: int | str | None, desired: int, expected: int) -> None:
    strategy = t.DaemonSetUpdateStrategy(type="RollingUpdate")
    if isinstance(value, int):
        strategy.rolling_update.max_unavailable.int_val = value
    elif isinstance(value, str):
        strategy.rolling_update.max_unavailable.str_val = value
    assert max_unavailable(strategy, desired) == expected


def roll(by_node: dict[str, list[t.Pod]], limit: int = 1) -> list[str]:
    doomed = rolling_deletions(by_node, sorted(by_node), NEW, limit, 0, NOW)
    return [p.metadata.name for p in doomed]


def test_rolls_max_unavailable_at_a_time() -> None:
    old = {n: [pod(f"old-{n}", n, revision=OLD)] for n in "abcd"}
    assert roll(old) == ["old-a"]
    assert roll(old, limit=2) == ["old-a", "old-b"]


def test_waits_while_a_node_is_unavailable() -> None:
    by_node = {"a": [pod("new-a", "a", ready=False)], "b": [pod("old-b", "b", revision=OLD)]}
    assert roll(by_node) == []
    by_node["a"] = [pod("leaving", "a", revision=OLD, terminating=True)]
    assert roll(by_node) == []   # the node being replaced counts as unavailable
    by_node["a"] = [pod("new-a", "a")]
    assert roll(by_node) == ["old-b"]


def test_unavailable_old_pods_are_replaced_at_once() -> None:
    by_node = {"a": [pod("sick-a", "a", revision=OLD, ready=False)],
               "b": [pod("sick-b", "b", revision=OLD, ready=False)],
               "c": [pod("old-c", "c", revision=OLD)]}
    assert roll(by_node) == ["sick-a", "sick-b"]   # and not old-c: two are down already


def test_min_ready_seconds_delays_availability() -> None:
    fresh = pod("new-a", "a")
    fresh.status.conditions[0].last_transition_time.FromDatetime(NOW)
    by_node = {"a": [fresh], "b": [pod("old-b", "b", revision=OLD)]}
    assert rolling_deletions(by_node, ["a", "b"], NEW, 1, 10, NOW) == []


# ---------------------------------------------------------------- status

def test_status_counts() -> None:
    ds = daemon_set()
    by_node = {"a": [pod("a1", "a")],
               "b": [pod("b1", "b", revision=OLD, ready=False)],
               "c": [pod("c1", "c", terminating=True)],
               "x": [pod("x1", "x")]}
    status = daemon_status(ds, {"a": True, "b": True, "c": True, "x": False}, by_node, NEW, NOW)
    assert json_format.MessageToDict(status) == {
        "desiredNumberScheduled": 3, "currentNumberScheduled": 2, "numberMisscheduled": 1,
        "numberReady": 1, "numberAvailable": 1, "updatedNumberScheduled": 1,
        "numberUnavailable": 2, "observedGeneration": "3"}
