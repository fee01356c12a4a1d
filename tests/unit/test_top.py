"""`minictl top`: kubectl's units, rounding, percentages and rows."""
from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from minik8s.api.v1 import kubelet_pb2 as k
from minik8s.api.v1 import types_pb2 as t
from minik8s.cli.top import (
    NODE_HEADERS,
    cpu_text,
    memory_text,
    node_rows,
    percent_text,
    pod_rows,
    table,
)

MIB = 1024 * 1024


def test_cpu_is_millicores_rounded_up() -> None:
    assert cpu_text(0) == "0m"
    assert cpu_text(1) == "1m"
    assert cpu_text(12_000_000) == "12m"
    assert cpu_text(12_000_001) == "13m"
    assert cpu_text(2_500_000_000) == "2500m"


def test_memory_is_whole_mebibytes_rounded_down() -> None:
    assert memory_text(0) == "0Mi"
    assert memory_text(MIB - 1) == "0Mi"
    assert memory_text(5 * MIB + 512 * 1024) == "5Mi"


def test_percent_of_allocatable() -> None:
    assert percent_text(250, 1000) == "25%"
    assert percent_text(999, 1000) == "99%"
    assert percent_text(1500, 1000) == "150%"
    assert percent_text(1, 0) == "<unknown>"


def node(name: str, cpu: str = "2", memory: str = "4Gi") -> t.Node:
    return t.Node(metadata=t.ObjectMeta(name=name),
                  status=t.NodeStatus(allocatable={"cpu": cpu, "memory": memory}))


def sampled(nano_cores: int, memory: int) -> k.StatsResponse:
    return k.StatsResponse(time=Timestamp(seconds=1), usage_nano_cores=nano_cores,
                           working_set_bytes=memory)


def test_node_rows_with_and_without_metrics() -> None:
    stats = {"a": sampled(500_000_000, 1024 * MIB), "b": None, "c": k.StatsResponse()}
    rows = node_rows([node("c"), node("b"), node("a")], stats)
    assert rows == [["a", "500m", "25%", "1024Mi", "25%"],
                    ["b", "<unknown>", "<unknown>", "<unknown>", "<unknown>"],
                    ["c", "<unknown>", "<unknown>", "<unknown>", "<unknown>"]]


def test_node_rows_sorted_by_cpu() -> None:
    stats = {"a": sampled(1_000_000, 9 * MIB), "b": sampled(9_000_000, MIB)}
    assert [r[0] for r in node_rows([node("a"), node("b")], stats, "cpu")] == ["b", "a"]
    assert [r[0] for r in node_rows([node("a"), node("b")], stats, "memory")] == ["a", "b"]


def pod(name: str, uid: str, namespace: str = "ns") -> t.Pod:
    return t.Pod(metadata=t.ObjectMeta(name=name, namespace=namespace, uid=uid))


def pod_stats(uid: str, *containers: tuple[int, int]) -> k.PodStats:
    return k.PodStats(uid=uid, containers=[
        k.ContainerStats(name=f"c{i}", usage_nano_cores=cpu, working_set_bytes=mem)
        for i, (cpu, mem) in enumerate(containers)])


def test_pod_rows_sum_containers_and_skip_pods_without_metrics() -> None:
    stats = {"u1": pod_stats("u1", (3_000_000, 2 * MIB), (4_500_000, 3 * MIB)),
             "u3": pod_stats("u3", (900_000_000, MIB))}
    pods = [pod("web", "u1"), pod("new", "u2"), pod("busy", "u3", "other")]
    assert pod_rows(pods, stats, all_namespaces=False) == [
        ["web", "8m", "5Mi"], ["busy", "900m", "1Mi"]]
    assert pod_rows(pods, stats, all_namespaces=True, sort_by="cpu") == [
        ["other", "busy", "900m", "1Mi"], ["ns", "web", "8m", "5Mi"]]
    assert [r[0] for r in pod_rows(pods, stats, False, sort_by="memory")] == ["web", "busy"]


def test_table_aligns_columns_as_get_does() -> None:
    lines = table(NODE_HEADERS, [["node-0", "12m", "0%", "5Mi", "0%"]])
    assert lines[0].split() == list(NODE_HEADERS)
    assert lines[1].index("12m") == lines[0].index("CPU(cores)")
    assert lines[1].index("5Mi") == lines[0].index("MEMORY(bytes)")
