"""The cells of minictl's tables that need care: AGE and a service's PORT(S)."""
from __future__ import annotations

import datetime

import pytest

from minik8s import kinds
from minik8s.api.v1 import types_pb2 as t
from minik8s.cli import printers


@pytest.mark.parametrize(("seconds", "expected"), [
    (-5, "<invalid>"),
    (-0.5, "0s"),
    (0, "0s"),
    (5, "5s"),
    (119, "119s"),
    (180, "3m"),
    (200, "3m20s"),
    (25 * 60 + 59, "25m"),
    (2 * 3600, "120m"),  # as kubectl: minutes up to 3h
    (4 * 3600, "4h"),
    (5 * 3600 + 10 * 60, "5h10m"),
    (20 * 3600 + 59 * 60, "20h"),
    (4 * 86400, "4d"),
    (3 * 86400 + 4 * 3600, "3d4h"),
    (40 * 86400 + 5 * 3600, "40d"),
    (3 * 365 * 86400 + 100 * 86400, "3y100d"),
    (10 * 365 * 86400, "10y"),
])
def test_human_duration(seconds: float, expected: str) -> None:
    assert printers.human_duration(seconds) == expected


def test_age_of_an_object() -> None:
    now = datetime.datetime(2024, 1, 31, 12, 0, 0, tzinfo=datetime.UTC)
    pod = t.Pod(metadata=t.ObjectMeta(name="p"))
    assert printers.age(pod, now) == "<unknown>"
    pod.metadata.creation_timestamp.FromDatetime(now - datetime.timedelta(hours=4))
    assert printers.age(pod, now) == "4h"


def test_service_ports() -> None:
    ports = [t.ServicePort(port=80, node_port=30080, protocol="TCP"),
             t.ServicePort(port=443),
             t.ServicePort(port=53, protocol="UDP")]
    assert printers.service_ports(ports) == "80:30080/TCP,443/TCP,53/UDP"
    assert printers.service_ports([]) == "<none>"


def test_resource_names() -> None:
    assert printers.resource_name(kinds.by_name("Deployment"), "web") == "deployment.apps/web"
    assert printers.resource_name(kinds.by_name("Lease"), "l") == "lease.coordination.k8s.io/l"
    assert printers.resource_name(kinds.by_name("Endpoints"), "e") == "endpoints/e"


def test_pod_status_prefers_waiting_reason_and_terminating() -> None:
    pod = t.Pod(spec=t.PodSpec(containers=[t.Container(name="c")]),
                status=t.PodStatus(phase="Running", container_statuses=[t.ContainerStatus(
                    name="c", restart_count=4,
                    state=t.ContainerState(waiting=t.ContainerStateWaiting(
                        reason="CrashLoopBackOff")))]))
    assert printers.pod_status(pod) == "CrashLoopBackOff"
    pod.metadata.deletion_timestamp.GetCurrentTime()
    assert printers.pod_status(pod) == "Terminating"


def test_table_alignment_keeps_columns_for_later_rows() -> None:
    table = printers.Table(kinds.by_name("Namespace"))
    now = datetime.datetime.now(datetime.UTC)
    first = table.lines([t.Namespace(metadata=t.ObjectMeta(name="default"))], now)
    assert first == ["NAME      STATUS   AGE", "default   Active   <unknown>"]
    later = table.lines([t.Namespace(metadata=t.ObjectMeta(name="a"))], now)
    assert later == ["a         Active   <unknown>"]
