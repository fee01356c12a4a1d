"""The scheduling framework: node sampling, round-robin, scoring, selection, messages."""
from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest
from google.protobuf import json_format

from minik8s.api.v1 import types_pb2
from scheduler.cache import NodeInfo, SchedulerCache
from scheduler.framework import (
    SKIP,
    SUCCESS,
    Code,
    Framework,
    FrameworkError,
    Status,
    failure_message,
)
from scheduler.plugins import default_framework

CPU = Status(Code.UNSCHEDULABLE, ("Insufficient cpu",))
CPU_AND_MEMORY = Status(Code.UNSCHEDULABLE, ("Insufficient cpu", "Insufficient memory"))
GPU_TAINT = Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
                   ("node(s) had untolerated taint {dedicated: gpu}",))


def node_infos(n: int) -> list[NodeInfo]:
    cache = SchedulerCache()
    for i in range(n):
        node = types_pb2.Node()
        node.metadata.name = f"n{i:04d}"
        cache.add_node(node)
    return cache.node_infos()


class Reject:
    """A filter that rejects the named nodes."""

    name = "Reject"

    def __init__(self, rejected: set[str], status: Status = CPU) -> None:
        self.rejected, self.status, self.calls = rejected, status, 0

    def pre_filter(self, pod: types_pb2.Pod) -> Any:
        return None

    def filter(self, pod: types_pb2.Pod, info: NodeInfo, state: Any) -> Status:
        self.calls += 1
        return self.status if info.name in self.rejected else SUCCESS


class Fixed:
    """A score plugin with fixed scores per node (0 for others)."""

    name = "Fixed"

    def __init__(self, scores: dict[str, int], weight: int = 1) -> None:
        self.scores, self.weight = scores, weight

    def pre_score(self, pod: types_pb2.Pod, infos: Sequence[NodeInfo]) -> Any:
        return None

    def score(self, pod: types_pb2.Pod, info: NodeInfo, state: Any) -> int:
        return self.scores.get(info.name, 0)


# ---------------------------------------------------------------- failure messages

def test_failure_message_counts_and_sorts_reasons_as_kubernetes() -> None:
    diagnosis = {"n1": CPU, "n2": CPU_AND_MEMORY, "n3": CPU, "n4": GPU_TAINT, "n5": GPU_TAINT}
    assert failure_message(5, diagnosis) == (
        "0/5 nodes are available: 1 Insufficient memory, "
        "2 node(s) had untolerated taint {dedicated: gpu}, 3 Insufficient cpu.")


def test_failure_message_without_nodes() -> None:
    assert failure_message(0, {}) == "no nodes available to schedule pods"


# ---------------------------------------------------------------- sampling and round-robin

@pytest.mark.parametrize(("percentage", "total", "wanted"), [
    (0, 50, 50),
    (0, 100, 100),
    (0, 1000, 420),  # 50% - 1000/125 %
    (0, 5000, 500),
    (0, 10_000, 500),  # the 5% floor
    (30, 1000, 300),
    (1, 1000, 100),  # never fewer than 100
    (100, 5000, 5000),
])
def test_number_of_feasible_nodes_to_find(percentage: int, total: int, wanted: int) -> None:
    framework = Framework([], [], percentage_of_nodes_to_score=percentage)
    assert framework.num_feasible_nodes_to_find(total) == wanted


def test_search_stops_after_enough_feasible_nodes_and_resumes_there() -> None:
    infos = node_infos(1000)
    framework = Framework([Reject({"n0001"})], [])
    feasible, diagnosis = framework.find_nodes(types_pb2.Pod(), infos)
    assert len(feasible) == 420
    assert diagnosis == {"n0001": CPU}
    assert feasible[0].name == "n0000"
    assert feasible[-1].name == "n0420"  # 421 nodes evaluated
    feasible, _ = framework.find_nodes(types_pb2.Pod(), infos)
    assert feasible[0].name == "n0421"


def test_search_wraps_around_the_node_list() -> None:
    infos = node_infos(200)
    framework = Framework([], [], percentage_of_nodes_to_score=60)
    framework.find_nodes(types_pb2.Pod(), infos)  # 120 nodes: the next search starts at n0120
    feasible, _ = framework.find_nodes(types_pb2.Pod(), infos)
    assert [i.name for i in feasible[79:82]] == ["n0199", "n0000", "n0001"]


def test_small_clusters_are_searched_in_full() -> None:
    infos = node_infos(50)
    framework = Framework([Reject(set())], [])
    feasible, _ = framework.find_nodes(types_pb2.Pod(), infos)
    assert len(feasible) == 50


def test_a_skipped_filter_is_not_called() -> None:
    class Skipper(Reject):
        def pre_filter(self, pod: types_pb2.Pod) -> Any:
            return SKIP

    skipper = Skipper({"n0000"})
    feasible, diagnosis = Framework([skipper], []).find_nodes(types_pb2.Pod(), node_infos(3))
    assert (len(feasible), diagnosis, skipper.calls) == (3, {}, 0)


def test_the_first_failing_filter_decides() -> None:
    first, second = Reject({"n0000"}, GPU_TAINT), Reject({"n0000", "n0001"})
    _, diagnosis = Framework([first, second], []).find_nodes(types_pb2.Pod(), node_infos(3))
    assert diagnosis == {"n0000": GPU_TAINT, "n0001": CPU}


def test_a_filter_error_aborts_the_attempt() -> None:
    broken = Reject({"n0001"}, Status(Code.ERROR, ("boom",)))
    with pytest.raises(FrameworkError, match="boom"):
        Framework([broken], []).find_nodes(types_pb2.Pod(), node_infos(3))


# ---------------------------------------------------------------- scoring and selection

def test_scores_are_weighted_and_summed() -> None:
    framework = Framework([], [Fixed({"n0000": 10, "n0001": 50}, weight=2),
                               Fixed({"n0000": 90}, weight=1)])
    assert framework.score(types_pb2.Pod(), node_infos(2)) == [("n0000", 110), ("n0001", 100)]


def test_a_score_out_of_range_is_an_error() -> None:
    framework = Framework([], [Fixed({"n0000": 101})])
    with pytest.raises(FrameworkError, match="Fixed"):
        framework.score(types_pb2.Pod(), node_infos(2))


def test_schedule_picks_the_best_node() -> None:
    framework = Framework([Reject({"n0002"})], [Fixed({"n0001": 60, "n0002": 100})])
    result = framework.schedule(types_pb2.Pod(), node_infos(3))
    assert (result.node_name, result.evaluated, result.feasible) == ("n0001", 3, 2)
    assert result.diagnosis == {"n0002": CPU}


def test_ties_are_broken_at_random() -> None:
    framework = Framework([], [Fixed({"n0000": 5, "n0001": 5})], rng=random.Random(7))
    infos = node_infos(3)
    assert {framework.schedule(types_pb2.Pod(), infos).node_name for _ in range(50)} == {
        "n0000", "n0001"}


def test_schedule_reports_an_unschedulable_pod() -> None:
    infos = node_infos(3)
    result = Framework([Reject({"n0000", "n0001", "n0002"})], []).schedule(types_pb2.Pod(), infos)
    assert (result.node_name, result.evaluated, result.feasible) == (None, 3, 0)
    assert failure_message(len(infos), result.diagnosis) == (
        "0/3 nodes are available: 3 Insufficient cpu.")


# ---------------------------------------------------------------- the default plugins

def test_default_framework_spreads_and_explains() -> None:
    cache = SchedulerCache()
    for name, taints in (("a", []), ("b", []), ("gpu", [{"key": "dedicated", "value": "gpu",
                                                          "effect": "NoSchedule"}])):
        cache.add_node(json_format.ParseDict({
            "metadata": {"name": name}, "spec": {"taints": taints},
            "status": {"allocatable": {"cpu": "1", "memory": "1Gi", "pods": "10"},
                       "conditions": [{"type": "Ready", "status": "True"}]}}, types_pb2.Node()))
    framework = default_framework(rng=random.Random(1))

    def schedule(i: int) -> str | None:
        pod = json_format.ParseDict({"metadata": {"name": f"p{i}", "uid": f"u{i}"}, "spec": {
            "containers": [{"name": "c", "resources": {"requests": {"cpu": "400m"}}}]}},
            types_pb2.Pod())
        result = framework.schedule(pod, cache.node_infos())
        if result.node_name:
            cache.assume(pod, result.node_name)
        else:
            assert failure_message(cache.node_count(), result.diagnosis) == (
                "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, "
                "2 Insufficient cpu.")
        return result.node_name

    chosen = [schedule(i) for i in range(5)]
    assert sorted(chosen[:2]) == ["a", "b"]  # the second pod goes to the emptier node
    assert sorted(chosen[2:4]) == ["a", "b"]
    assert chosen[4] is None
