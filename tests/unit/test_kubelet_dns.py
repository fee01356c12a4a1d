"""A pod's resolv.conf from its dnsPolicy and dnsConfig (kubelet/dns.py)."""
from __future__ import annotations

from kubelet.dns import resolv_conf
from minik8s.api.v1 import types_pb2 as t


def pod(policy: str = "", config: t.PodDNSConfig | None = None) -> t.Pod:
    p = t.Pod(metadata=t.ObjectMeta(name="p", namespace="shop"),
              spec=t.PodSpec(dns_policy=policy))
    if config is not None:
        p.spec.dns_config.CopyFrom(config)
    return p


def test_cluster_first_points_at_the_cluster_dns() -> None:
    assert resolv_conf(pod(), "10.96.0.10", "cluster.local") == (
        "nameserver 10.96.0.10\n"
        "search shop.svc.cluster.local svc.cluster.local cluster.local\n"
        "options ndots:5\n")


def test_default_and_no_cluster_dns_keep_the_engines_file() -> None:
    assert resolv_conf(pod("Default"), "10.96.0.10", "cluster.local") is None
    assert resolv_conf(pod(), "", "cluster.local") is None


def test_none_uses_dns_config_alone_and_config_adds_to_cluster_first() -> None:
    config = t.PodDNSConfig(nameservers=["10.0.0.53"], searches=["corp.example"],
                            options=[t.PodDNSConfigOption(name="ndots", value="2"),
                                     t.PodDNSConfigOption(name="edns0")])
    assert resolv_conf(pod("None", config), "10.96.0.10", "cluster.local") == (
        "nameserver 10.0.0.53\nsearch corp.example\noptions ndots:2 edns0\n")
    text = resolv_conf(pod("ClusterFirst", config), "10.96.0.10", "cluster.local")
    assert text.splitlines()[0:2] == ["nameserver 10.96.0.10", "nameserver 10.0.0.53"]
    assert text.splitlines()[2].endswith("cluster.local corp.example")
