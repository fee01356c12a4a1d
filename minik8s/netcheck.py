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


CLUSTER_CIDRS = range(244, 252)   # 10.244.0.0/16 .. 10.251.0.0/16
SERVICE_CIDRS = range(96, 104)    # 10.96.0.0/16 .. 10.103.0.0/16


def free_cidr(what: str, second_octets: range) -> str:
    """The first 10.x.0.0/16 of the range that no route on this host touches.

    A cluster's pod network bridge and its proxy's sink route their CIDRs, so
    local clusters sharing a host each find a range of their own.
    """
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True,
                            check=False).stdout
    used = [ipaddress.ip_network(line.split()[0], strict=False) for line in routes.splitlines()
            if line and line.split()[0][0].isdigit()]
    for second in second_octets:
        candidate = ipaddress.ip_network(f"10.{second}.0.0/16")
        if not any(candidate.overlaps(route) for route in used):
            return str(candidate)
    raise ValueError(f"no free {what} in 10.{second_octets[0]}.0.0/16 .. "
                     f"10.{second_octets[-1]}.0.0/16")
