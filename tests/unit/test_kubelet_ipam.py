"""Pod addresses from a node's podCIDR (kubelet/ipam.py)."""
from __future__ import annotations

import pytest

from kubelet.ipam import Exhausted, allocate


def test_skips_the_network_and_the_gateway() -> None:
    assert allocate("10.244.1.0/24", []) == "10.244.1.2"


def test_lowest_free_address() -> None:
    assert allocate("10.244.1.0/24", ["10.244.1.2", "10.244.1.4"]) == "10.244.1.3"


def test_never_hands_out_the_broadcast_address() -> None:
    # a /30 has .0 (network), .1 (gateway), .2 and .3 (broadcast)
    assert allocate("10.244.1.0/30", []) == "10.244.1.2"
    with pytest.raises(Exhausted, match="10.244.1.0/30"):
        allocate("10.244.1.0/30", ["10.244.1.2"])
