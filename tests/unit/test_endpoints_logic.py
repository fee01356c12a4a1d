"""The Endpoints controller's pure logic: which pods are listed where, and on which ports."""
from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from controller_manager.endpoints import (
    HEADLESS_LABEL,
    build_subsets,
    endpoints_for,
    resolve_port,
    selects,
)
from minik8s.api.v1 import types_pb2 as t


def service(ports: list[dict] | None = None, **spec: Any) -> t.Service:
    ports = [{"port": 80, "targetPort": 8080}] if ports is None else ports
    for port in ports:  # targetPort: 8080 or "name", as in manifests
        target = port.get("targetPort")
        if target is not None:
            port["targetPort"] = {"strVal" if isinstance(target, str) else "intVal": target}
    return json_format.ParseDict({
        "metadata": {"name": "web", "namespace": "ns", "labels": {"tier": "front"}},
        "spec": {"selector": {"app": "web"}, "ports": ports, **spec}}, t.Service())


def pod(name: str, ip: str = "", *, ready: bool = True, labels: dict[str, str] | None = None,
        ports: list[dict] | None = None, terminating: bool = False, phase: str = "Running",
        **spec: Any) -> t.Pod:
    p = json_format.ParseDict({
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}",
                     "labels": {"app": "web"} if labels is None else labels},
        "spec": {"containers": [{"name": "c", "image": "img", "ports": ports or []}], **spec},
        "status": {"phase": phase, "podIP": ip,
                   "conditions": [{"type": "Ready", "status": str(ready)}]},
    }, t.Pod())
    if terminating:
        p.metadata.deletion_timestamp.FromSeconds(1)
    return p


def as_dicts(subsets: list[t.EndpointSubset]) -> list[dict]:
    return [json_format.MessageToDict(s) for s in subsets]


def ips(addresses: Any) -> list[str]:
    return [a.ip for a in addresses]


def test_selector() -> None:
    svc = service()
    assert selects(svc, pod("a", labels={"app": "web", "extra": "x"}))
    assert not selects(svc, pod("b", labels={"app": "db"}))
    other_ns = pod("c")
    other_ns.metadata.namespace = "elsewhere"
    assert not selects(svc, other_ns)
    assert not selects(service(selector={}), pod("d"))


def test_ready_and_not_ready_addresses() -> None:
    pods = [pod("b", "10.0.0.2"), pod("a", "10.0.0.1"), pod("c", "10.0.0.3", ready=False)]
    [subset] = build_subsets(service(), pods)
    assert ips(subset.addresses) == ["10.0.0.1", "10.0.0.2"]
    assert ips(subset.not_ready_addresses) == ["10.0.0.3"]
    assert json_format.MessageToDict(subset.ports[0]) == {"port": 8080, "protocol": "TCP"}
    assert json_format.MessageToDict(subset.addresses[0].target_ref) == {
        "kind": "Pod", "namespace": "ns", "name": "a", "uid": "uid-a"}


def test_publish_not_ready_addresses_lists_everything_as_ready() -> None:
    svc = service(publishNotReadyAddresses=True)
    pods = [pod("a", "10.0.0.1", ready=False), pod("b", "10.0.0.2", terminating=True)]
    [subset] = build_subsets(svc, pods)
    assert ips(subset.addresses) == ["10.0.0.1", "10.0.0.2"] and not subset.not_ready_addresses


def test_pods_without_ip_terminating_or_finished_are_left_out() -> None:
    pods = [pod("no-ip"), pod("leaving", "10.0.0.1", terminating=True),
            pod("done", "10.0.0.2", phase="Succeeded"), pod("failed", "10.0.0.3", phase="Failed")]
    assert build_subsets(service(), pods) == []


def test_address_details() -> None:
    p = pod("a", "10.0.0.1", nodeName="n1", hostname="a", subdomain="web")
    [subset] = build_subsets(service(), [p])
    assert json_format.MessageToDict(subset.addresses[0]) == {
        "ip": "10.0.0.1", "hostname": "a", "nodeName": "n1",
        "targetRef": {"kind": "Pod", "namespace": "ns", "name": "a", "uid": "uid-a"}}


def test_named_target_port_resolves_per_pod() -> None:
    svc = service([{"name": "http", "port": 80, "targetPort": "web"},
                   {"name": "metrics", "port": 9100, "targetPort": 9100}])
    pods = [pod("a", "10.0.0.1", ports=[{"name": "web", "containerPort": 8080}]),
            pod("b", "10.0.0.2", ports=[{"name": "web", "containerPort": 9090}]),
            pod("c", "10.0.0.3", ports=[{"name": "web", "containerPort": 8080}]),
            pod("d", "10.0.0.4")]  # no port named web: only on metrics
    subsets = build_subsets(svc, pods)
    by_ports = {tuple((p.name, p.port) for p in s.ports): ips(s.addresses) for s in subsets}
    assert by_ports == {
        (("http", 8080), ("metrics", 9100)): ["10.0.0.1", "10.0.0.3"],
        (("http", 9090), ("metrics", 9100)): ["10.0.0.2"],
        (("metrics", 9100),): ["10.0.0.4"]}


def test_named_port_must_match_the_protocol() -> None:
    udp = t.ServicePort(port=53, protocol="UDP", target_port=t.IntOrString(str_val="dns"))
    assert resolve_port(pod("a", ports=[{"name": "dns", "containerPort": 53}]), udp) is None
    assert resolve_port(pod("b", ports=[{"name": "dns", "containerPort": 5353,
                                         "protocol": "UDP"}]), udp) == 5353


def test_unset_target_port_is_the_service_port() -> None:
    assert resolve_port(pod("a"), t.ServicePort(port=80)) == 80


def test_a_pod_serving_no_port_is_left_out() -> None:
    svc = service([{"port": 80, "targetPort": "web"}])
    assert build_subsets(svc, [pod("a", "10.0.0.1")]) == []


def test_headless_service_without_ports() -> None:
    svc = service([], clusterIP="None")
    [subset] = build_subsets(svc, [pod("a", "10.0.0.1")])
    assert ips(subset.addresses) == ["10.0.0.1"] and not subset.ports
    assert build_subsets(service([]), [pod("a", "10.0.0.1")]) == []
    assert endpoints_for(svc, []).metadata.labels[HEADLESS_LABEL] == ""


def test_endpoints_object_is_stable() -> None:
    pods = [pod(n, f"10.0.0.{i}", ready=i % 2 == 0) for i, n in enumerate("abcdef", 1)]
    first = endpoints_for(service(), pods)
    assert first == endpoints_for(service(), list(reversed(pods)))
    assert first.metadata.name == "web" and first.metadata.namespace == "ns"
    assert dict(first.metadata.labels) == {"tier": "front"}
    assert not first.metadata.owner_references
