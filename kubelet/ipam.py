"""Pod addresses from the node's podCIDR, as the host-local IPAM plugin hands them out.

The network address, the first host address (the bridge's gateway) and the
broadcast address are never given to a pod.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Collection


class Exhausted(Exception):
    pass


def allocate(cidr: str, used: Collection[str]) -> str:
    """The lowest free pod address in cidr."""
    network = ipaddress.ip_network(cidr)
    taken = set(used)
    for host in list(network.hosts())[1:]:
        if str(host) not in taken:
            return str(host)
    raise Exhausted(f"no free pod address left in {cidr}")
