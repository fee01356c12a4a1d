"""The kubelet's stats: CPU rate and working set from `docker stats`, container counts."""
from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import REGISTRY

from kubelet import labels
from kubelet.podmetrics import StartTimes
from kubelet.stats import (
    ContainerUsage,
    container_states,
    cpu_nano_cores,
    running_pods,
    summary,
    working_set_bytes,
)
from minik8s.api.v1 import types_pb2 as t


def sample(total: int, pre_total: int, system: int, pre_system: int, cpus: int = 2) -> dict:
    return {"cpu_stats": {"cpu_usage": {"total_usage": total}, "system_cpu_usage": system,
                          "online_cpus": cpus},
            "precpu_stats": {"cpu_usage": {"total_usage": pre_total},
                             "system_cpu_usage": pre_system}}


def test_cpu_is_the_rate_between_the_two_readings() -> None:
    # 2 cpus for one second is 2e9 ns of system time; the container used a quarter second
    assert cpu_nano_cores(sample(1_250_000_000, 1_000_000_000, 12_000_000_000,
                                 10_000_000_000)) == 250_000_000
    # a busy loop on one of two cpus
    assert cpu_nano_cores(sample(2_000_000_000, 1_000_000_000, 4_000_000_000,
                                 2_000_000_000)) == 1_000_000_000


def test_cpu_without_a_previous_reading_is_unknown() -> None:
    first = sample(5, 0, 100, 0)
    first["precpu_stats"] = {"cpu_usage": {"total_usage": 0}}
    assert cpu_nano_cores(first) is None
    assert cpu_nano_cores({}) is None


def test_working_set_leaves_out_inactive_file_pages() -> None:
    v1 = {"memory_stats": {"usage": 10_000, "stats": {"total_inactive_file": 3_000,
                                                       "inactive_file": 2_000,
                                                       "cache": 5_000}}}
    v2 = {"memory_stats": {"usage": 10_000, "stats": {"inactive_file": 4_000}}}
    old = {"memory_stats": {"usage": 10_000, "stats": {"cache": 6_000}}}
    assert working_set_bytes(v1) == 7_000
    assert working_set_bytes(v2) == 6_000
    assert working_set_bytes(old) == 4_000
    assert working_set_bytes({"memory_stats": {"usage": 1, "stats": {"inactive_file": 9}}}) == 0
    assert working_set_bytes({}) == 0


def listed(uid: str, name: str, state: str) -> dict:
    return {"State": state, "Labels": {labels.POD_UID: uid, labels.CONTAINER_NAME: name}}


def test_counts_of_pods_and_containers() -> None:
    found = [listed("a", labels.SANDBOX, "running"), listed("a", "c", "running"),
             listed("a", "c", "exited"), listed("b", labels.SANDBOX, "exited"),
             listed("b", "c", "created"), listed("c", labels.SANDBOX, "running"),
             listed("c", "x", "dead"), listed("c", "y", "paused")]
    assert running_pods(found) == 2
    assert container_states(found) == {"created": 1, "running": 1, "exited": 2, "unknown": 1}
    assert container_states([]) == {"created": 0, "running": 0, "exited": 0, "unknown": 0}


def usage(uid: str, container: str, cores: int, memory: int) -> ContainerUsage:
    return ContainerUsage({labels.POD_UID: uid, labels.POD_NAMESPACE: "ns",
                           labels.POD_NAME: f"pod-{uid}", labels.CONTAINER_NAME: container},
                          cores, memory)


def test_summary_groups_containers_by_pod_and_sums_the_node() -> None:
    answer = summary("node-0", [usage("a", "c", 10, 100), usage("b", "c", 5, 50),
                                usage("a", "side", 1, 10)], Timestamp(seconds=7))
    assert (answer.node, answer.time.seconds) == ("node-0", 7)
    assert (answer.usage_nano_cores, answer.working_set_bytes) == (16, 160)
    pods = {p.uid: p for p in answer.pods}
    assert pods["a"].name == "pod-a" and pods["a"].namespace == "ns"
    assert [(c.name, c.usage_nano_cores) for c in pods["a"].containers] == [("c", 10),
                                                                            ("side", 1)]
    assert [c.working_set_bytes for c in pods["b"].containers] == [50]


def _pod(uid: str, phase: str = "") -> t.Pod:
    return t.Pod(metadata=t.ObjectMeta(uid=uid), status=t.PodStatus(phase=phase))


def _status(*running: bool) -> t.PodStatus:
    status = t.PodStatus()
    for i, up in enumerate(running):
        c = status.container_statuses.add(name=f"c{i}")
        if up:
            c.state.running.SetInParent()
        else:
            c.state.waiting.reason = "ContainerCreating"
    return status


def _observed() -> float:
    return REGISTRY.get_sample_value("kubelet_pod_start_duration_seconds_sum") or 0.0


def test_pod_start_is_timed_once_from_first_sight_to_all_containers_running() -> None:
    now = [100.0]
    starts = StartTimes(clock=lambda: now[0])
    starts.seen(_pod("u"))
    starts.seen(_pod("adopted", phase="Running"))   # already running: not timed
    before = _observed()
    now[0] = 103.0
    starts.observe("u", _status(True, False))
    assert _observed() == before
    starts.observe("u", _status(True, True))
    assert _observed() == before + 3.0
    starts.observe("u", _status(True, True))
    starts.observe("adopted", _status(True))
    assert _observed() == before + 3.0
