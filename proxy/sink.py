"""The sink: the service CIDR routed to an empty bridge of the proxy's own.

A packet for a ClusterIP that no rule translates must stay on the node: the
route sends it into a bridge with nothing attached, where it is dropped.
(The machine's default route would otherwise carry it off the machine.) In
userspace mode the bridge also holds the ClusterIPs as local addresses, so
the proxy's listeners can bind them.
"""
from __future__ import annotations

import hashlib
import subprocess


class SinkError(Exception):
    pass


def _ip(*args: str, check: bool = True) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10,
                          check=False)
    if check and done.returncode != 0:
        raise SinkError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


class Sink:
    def __init__(self, cluster: str, service_cidr: str) -> None:
        # interface names have at most 15 characters
        self.device = "mksink" + hashlib.sha256(cluster.encode()).hexdigest()[:8]
        self.service_cidr = service_cidr

    def ensure(self) -> None:
        if not _ip("-o", "link", "show", "dev", self.device, check=False):
            _ip("link", "add", self.device, "type", "bridge")
        _ip("link", "set", self.device, "up")
        _ip("route", "replace", self.service_cidr, "dev", self.device)

    def addresses(self) -> set[str]:
        out = _ip("-o", "-4", "addr", "show", "dev", self.device)
        return {line.split()[3].split("/")[0] for line in out.splitlines()}

    def set_addresses(self, wanted: set[str]) -> None:
        """Make the bridge hold exactly these /32 addresses (userspace mode)."""
        have = self.addresses()
        for ip in sorted(wanted - have):
            _ip("addr", "add", f"{ip}/32", "dev", self.device)
        for ip in sorted(have - wanted):
            _ip("addr", "del", f"{ip}/32", "dev", self.device)

    def remove(self) -> None:
        _ip("link", "del", self.device, check=False)  # its route goes with it
