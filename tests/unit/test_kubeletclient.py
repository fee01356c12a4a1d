"""Where a client finds a node's kubelet: the node's address and published port."""
from __future__ import annotations

import pytest

from minik8s.api.v1 import types_pb2 as t
from minik8s.kubeletclient import KubeletError, kubelet_target, node_address


def node(*addresses: tuple[str, str], port: int = 10250) -> t.Node:
    return t.Node(
        metadata=t.ObjectMeta(name="node-0"),
        status=t.NodeStatus(
            addresses=[t.NodeAddress(type=kind, address=addr) for kind, addr in addresses],
            daemon_endpoints=t.NodeDaemonEndpoints(
                kubelet_endpoint=t.DaemonEndpoint(port=port)),
        ),
    )


@pytest.mark.parametrize(("addresses", "expected"), [
    ((("Hostname", "n0"), ("InternalIP", "10.0.0.5")), "10.0.0.5"),
    ((("InternalIP", "10.0.0.5"), ("InternalIP", "10.0.0.6")), "10.0.0.5"),
    ((("Hostname", "n0"),), "n0"),
    ((("InternalIP", ""), ("Hostname", "n0")), "n0"),
    ((("ExternalIP", "203.0.113.9"),), "127.0.0.1"),
    ((), "127.0.0.1"),
])
def test_address_preference(addresses: tuple[tuple[str, str], ...], expected: str) -> None:
    assert node_address(node(*addresses)) == expected


def test_target_uses_the_published_port() -> None:
    assert kubelet_target(node(("InternalIP", "10.0.0.5"), port=10250)) == "10.0.0.5:10250"
    assert kubelet_target(node(port=41234)) == "127.0.0.1:41234"


def test_ipv6_address_is_bracketed() -> None:
    assert kubelet_target(node(("InternalIP", "fd00::5"), port=10250)) == "[fd00::5]:10250"


def test_node_without_kubelet_endpoint() -> None:
    with pytest.raises(KubeletError, match='node "node-0" has no kubelet endpoint'):
        kubelet_target(node(("InternalIP", "10.0.0.5"), port=0))
    with pytest.raises(KubeletError, match="no kubelet endpoint"):
        kubelet_target(t.Node(metadata=t.ObjectMeta(name="node-0")))
