"""The cluster's DNS names (minik8s/dns/zone.py) and the wire answers (server.py)."""
from __future__ import annotations

import asyncio

from dnslib import QTYPE, RCODE, DNSRecord

from minik8s.api.v1 import types_pb2 as t
from minik8s.dns.server import Resolver
from minik8s.dns.zone import Zone


def service(name: str, ip: str, *ports: tuple[str, int], ns: str = "shop") -> t.Service:
    return t.Service(metadata=t.ObjectMeta(name=name, namespace=ns),
                     spec=t.ServiceSpec(cluster_ip=ip, ports=[
                         t.ServicePort(name=n, port=p) for n, p in ports]))


def endpoints(name: str, *addresses: tuple[str, str], ns: str = "shop") -> t.Endpoints:
    return t.Endpoints(metadata=t.ObjectMeta(name=name, namespace=ns), subsets=[
        t.EndpointSubset(addresses=[t.EndpointAddress(ip=ip, hostname=host)
                                    for ip, host in addresses],
                         ports=[t.EndpointPort(name="http", port=8080)])])


def pod(name: str, ip: str, hostname: str = "", subdomain: str = "") -> t.Pod:
    return t.Pod(metadata=t.ObjectMeta(name=name, namespace="shop"),
                 spec=t.PodSpec(hostname=hostname, subdomain=subdomain),
                 status=t.PodStatus(pod_ip=ip, phase="Running"))


def zone(services=(), eps=(), pods=()) -> Zone:
    z = Zone()
    z.rebuild(services, eps, pods)
    return z


def values(z: Zone, name: str, rtype: str = "A") -> list[str]:
    return sorted(r.value for r in z.answer(name, rtype).records)


def test_a_service_resolves_to_its_cluster_ip() -> None:
    z = zone([service("web", "10.96.0.20", ("http", 80))])
    assert values(z, "web.shop.svc.cluster.local") == ["10.96.0.20"]
    assert values(z, "WEB.shop.svc.cluster.local.") == ["10.96.0.20"]  # case, trailing dot
    assert values(z, "20.0.96.10.in-addr.arpa", "PTR") == ["web.shop.svc.cluster.local"]
    assert values(z, "_http._tcp.web.shop.svc.cluster.local", "SRV") == \
        ["0 100 80 web.shop.svc.cluster.local"]


def test_a_headless_service_resolves_to_its_ready_endpoints() -> None:
    z = zone([service("db", "None", ("http", 80))],
             [endpoints("db", ("10.244.1.5", "db-0"), ("10.244.2.7", ""))])
    assert values(z, "db.shop.svc.cluster.local") == ["10.244.1.5", "10.244.2.7"]
    assert values(z, "db-0.db.shop.svc.cluster.local") == ["10.244.1.5"]
    assert values(z, "10-244-2-7.db.shop.svc.cluster.local") == ["10.244.2.7"]
    assert len(values(z, "_http._tcp.db.shop.svc.cluster.local", "SRV")) == 2


def test_a_headless_service_without_endpoints_exists_but_is_empty() -> None:
    answer = zone([service("db", "None")]).answer("db.shop.svc.cluster.local", "A")
    assert (answer.rcode, answer.records) == ("NOERROR", [])


def test_pods_with_hostname_and_subdomain() -> None:
    z = zone(pods=[pod("web-1", "10.244.0.9", "web-1", "web"), pod("x", "10.244.0.3")])
    assert values(z, "web-1.web.shop.svc.cluster.local") == ["10.244.0.9"]
    assert values(z, "10-244-0-3.shop.pod.cluster.local") == ["10.244.0.3"]
    assert values(z, "9.0.244.10.in-addr.arpa", "PTR") == ["web-1.web.shop.svc.cluster.local"]


def test_missing_names_other_types_and_foreign_names() -> None:
    z = zone([service("web", "10.96.0.20")])
    assert z.answer("nope.shop.svc.cluster.local", "A").rcode == "NXDOMAIN"
    # the name exists: no AAAA record is an empty answer, not NXDOMAIN
    assert z.answer("web.shop.svc.cluster.local", "AAAA").rcode == "NOERROR"
    assert z.answer("shop.svc.cluster.local", "A").rcode == "NOERROR"  # a namespace
    assert z.answer("example.com", "A").rcode == "REFUSED"


def test_the_wire_answer_and_a_malformed_query() -> None:
    resolver = Resolver(zone([service("web", "10.96.0.20")]))
    query = DNSRecord.question("web.shop.svc.cluster.local", "A")
    reply = DNSRecord.parse(asyncio.run(resolver.handle(query.pack())))
    assert reply.header.id == query.header.id and reply.header.aa == 1
    assert [(str(r.rdata), QTYPE[r.rtype]) for r in reply.rr] == [("10.96.0.20", "A")]
    bad = asyncio.run(resolver.handle(b"\xab\xcd\xff\xff\x00\x01junk"))
    assert DNSRecord.parse(bad).header.rcode == RCODE.FORMERR
    assert asyncio.run(resolver.handle(b"\x01")) is None  # not even an id
