"""Refuse cluster CIDRs that would cut the machine off from its own network.

The project routes its service and pod CIDRs to local bridges and sinks. A
CIDR that covered the machine's resolver, its default gateway or the address
of its uplink would send the machine's own traffic into the sink, so the
launchers check every CIDR against them first.
"""
from __future__ import annotations

import ipaddress
import json
import subprocess
from pathlib import Path


def protected_addresses() -> dict[str, str]:
    """Address -> what it is: nameservers, the default gateway and the uplink's addresses."""
    found: dict[str, str] = {}
    resolv = Path("/etc/resolv.conf")
    if resolv.exists():
        for line in resolv.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver":
                found[parts[1]] = "the resolver"
    for route in _ip_json("route", "show", "default"):
        if route.get("gateway"):
            found[route["gateway"]] = "the default gateway"
        for link in _ip_json("addr", "show", "dev", route.get("dev", "")):
            for info in link.get("addr_info", []):
                found[info["local"]] = f"the address of {route.get('dev')}"
    return found


def _ip_json(*args: str) -> list[dict]:
    try:
        out = subprocess.run(["ip", "-j", "-4", *args], capture_output=True, text=True,
                             timeout=5, check=True).stdout
        return json.loads(out or "[]")
    except (OSError, subprocess.SubprocessError, ValueError):
        return []


def check_cidr(cidr: str, what: str) -> None:
    """ValueError naming the clash if cidr is not a valid, safe CIDR for the cluster."""
    try:
        network = ipaddress.ip_network(cidr)
    except ValueError as exc:
        raise ValueError(f"{what} {cidr!r}: {exc}") from None
    for address, role in protected_addresses().items():
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            continue
        if ip.version == network.version and ip in network:
            raise ValueError(f"{what} {cidr} covers {address}, {role}: choose another range")
