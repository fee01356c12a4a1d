"""proxy/model.py: which service ports the data plane serves, and with which endpoints."""
from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from minik8s.api.v1 import types_pb2 as t
from proxy.model import DEFAULT_AFFINITY_SECONDS, ServicePort, service_ports


def service(name: str = "web", ports: list[dict] | None = None, ns: str = "ns",
            cluster_ip: str = "10.96.0.10", **spec: Any) -> t.Service:
    ports = [{"name": "http", "port": 80}] if ports is None else ports
    return json_format.ParseDict({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"clusterIP": cluster_ip, "ports": ports, **spec}}, t.Service())


def subset(ips: list[str], ports: list[dict] | None = None,
           not_ready: list[str] = ()) -> dict:
    return {"addresses": [{"ip": ip} for ip in ips],
            "notReadyAddresses": [{"ip": ip} for ip in not_ready],
            "ports": [{"name": "http", "port": 8080}] if ports is None else ports}


def endpoints(name: str = "web", *subsets: dict, ns: str = "ns") -> t.Endpoints:
    return json_format.ParseDict({"metadata": {"name": name, "namespace": ns},
                                  "subsets": list(subsets)}, t.Endpoints())


def one(svc: t.Service, eps: t.Endpoints | None = None) -> ServicePort:
    [port] = service_ports([svc], [eps] if eps else [])
    return port


def test_one_port_per_service_port() -> None:
    svc = service(ports=[{"name": "http", "port": 80}, {"name": "dns", "port": 53,
                                                        "protocol": "UDP"}])
    ports = service_ports([svc], [])
    assert [(p.key, p.protocol, p.port, p.cluster_ip) for p in ports] == [
        ("ns/web:dns", "UDP", 53, "10.96.0.10"),
        ("ns/web:http", "TCP", 80, "10.96.0.10"),
    ]
    assert all(p.endpoints == () and p.node_port == 0 and p.affinity_seconds == 0
               for p in ports)


def test_headless_and_ipless_services_are_skipped() -> None:
    assert service_ports([service(cluster_ip="None"), service(cluster_ip="")], []) == []


def test_key_has_no_colon_for_an_unnamed_port() -> None:
    port = one(service(ports=[{"port": 80}]))
    assert (port.key, port.port_name) == ("ns/web", "")


def test_result_sorted_by_key() -> None:
    svcs = [service("b"), service("a", ns="z"), service("a", ports=[{"name": "y", "port": 2},
                                                                   {"name": "x", "port": 1}])]
    assert [p.key for p in service_ports(svcs, [])] == ["ns/a:x", "ns/a:y", "ns/b:http",
                                                       "z/a:http"]


def test_only_ready_addresses_from_all_subsets_sorted() -> None:
    eps = endpoints("web", subset(["10.244.1.5", "10.244.0.9"], not_ready=["10.244.0.1"]),
                    subset(["10.244.0.2"]))
    assert one(service(), eps).endpoints == ("10.244.0.2:8080", "10.244.0.9:8080",
                                             "10.244.1.5:8080")


def test_endpoints_matched_by_port_name() -> None:
    svc = service(ports=[{"name": "http", "port": 80}, {"name": "metrics", "port": 9090}])
    eps = endpoints("web", subset(["10.0.0.1"], [{"name": "http", "port": 8080},
                                                 {"name": "metrics", "port": 9100}]),
                    subset(["10.0.0.2"], [{"name": "metrics", "port": 9100}]))
    by_key = {p.key: p.endpoints for p in service_ports([svc], [eps])}
    assert by_key == {"ns/web:http": ("10.0.0.1:8080",),
                      "ns/web:metrics": ("10.0.0.1:9100", "10.0.0.2:9100")}


def test_endpoints_matched_by_protocol_tcp_by_default() -> None:
    svc = service(ports=[{"name": "dns", "port": 53, "protocol": "UDP"},
                         {"name": "dns-tcp", "port": 53}])
    eps = endpoints("web", subset(["10.0.0.1"], [
        {"name": "dns", "port": 5353, "protocol": "UDP"},
        {"name": "dns", "port": 1, "protocol": "TCP"},       # same name, other protocol
        {"name": "dns-tcp", "port": 5354},                   # no protocol: TCP
        {"name": "dns-tcp", "port": 2, "protocol": "UDP"}]))
    by_key = {p.key: p.endpoints for p in service_ports([svc], [eps])}
    assert by_key == {"ns/web:dns": ("10.0.0.1:5353",), "ns/web:dns-tcp": ("10.0.0.1:5354",)}


def test_endpoints_of_another_service_or_namespace_ignored() -> None:
    eps = [endpoints("other", subset(["10.0.0.1"])), endpoints("web", subset(["10.0.0.2"]),
                                                               ns="elsewhere")]
    [port] = service_ports([service()], eps)
    assert port.endpoints == ()


def test_node_port_only_for_type_node_port() -> None:
    ports = [{"name": "http", "port": 80, "nodePort": 30080}]
    assert one(service(ports=ports, type="NodePort")).node_port == 30080
    assert one(service(ports=ports, type="ClusterIP")).node_port == 0
    assert one(service(ports=ports)).node_port == 0


def test_client_ip_affinity() -> None:
    assert one(service(sessionAffinity="ClientIP")).affinity_seconds == \
        DEFAULT_AFFINITY_SECONDS == 10800
    configured = service(sessionAffinity="ClientIP",
                         sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}})
    assert one(configured).affinity_seconds == 60
    assert one(service(sessionAffinity="None")).affinity_seconds == 0
    ignored = service(sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}})
    assert one(ignored).affinity_seconds == 0
