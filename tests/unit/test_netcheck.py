"""Refusing cluster CIDRs that cover the machine's own resolver, gateway or uplink
(minik8s/netcheck.py), against a fixed set of protected addresses."""
from __future__ import annotations

import pytest

from minik8s import netcheck

PROTECTED = {
    "192.168.1.1": "the default gateway",
    "192.168.1.23": "the address of eth0",
    "10.0.0.53": "the resolver",
    "fd00::53": "the resolver",
    "not-an-address": "junk from resolv.conf",
}


@pytest.fixture(autouse=True)
def protected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netcheck, "protected_addresses", lambda: dict(PROTECTED))


@pytest.mark.parametrize(("cidr", "address", "role"), [
    ("192.168.0.0/16", "192.168.1.1", "the default gateway"),
    ("192.168.1.16/28", "192.168.1.23", "the address of eth0"),
    ("10.0.0.0/8", "10.0.0.53", "the resolver"),
])
def test_cidr_covering_a_protected_address_is_refused(cidr: str, address: str,
                                                      role: str) -> None:
    with pytest.raises(ValueError) as err:
        netcheck.check_cidr(cidr, "service CIDR")
    message = str(err.value)
    assert message.startswith(f"service CIDR {cidr} covers")
    assert address in message and role in message


def test_safe_cidr_passes() -> None:
    netcheck.check_cidr("10.244.0.0/16", "cluster CIDR")
    netcheck.check_cidr("192.168.2.0/24", "cluster CIDR")


def test_invalid_cidr_is_named() -> None:
    with pytest.raises(ValueError, match=r"cluster CIDR '10\.244\.0\.0/33'"):
        netcheck.check_cidr("10.244.0.0/33", "cluster CIDR")


def test_ipv6_cidr_is_checked_against_ipv6_addresses_only() -> None:
    with pytest.raises(ValueError, match="fd00::53"):
        netcheck.check_cidr("fd00::/64", "service CIDR")
    netcheck.check_cidr("fd01::/64", "service CIDR")
