"""Network partitions on one machine: cgroup v2 and iptables, loopback only.

Every process of a process-mode cluster runs in a cgroup of its own
(LocalCluster.cgroup_parent: <cgroup2 root>/<cluster name>).
To cut a group of them off, a chain of the cluster's own in the OUTPUT chain
(every loopback packet passes it once) marks each connection that one of
their sockets touches, or that touches one of their listening ports, and
drops every packet of a marked connection: both directions die, inbound
connections included. Healing removes the chain; connections that survived
carry on. Only traffic to 127.0.0.0/8 on `lo` is ever looked at.

The mark is new for every partition (and random, so partitions of two
clusters on one host do not match each other's connections): a connection
marked by an earlier partition is not dropped by a later one unless it
touches the newly cut processes.
"""
from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

MASK = 0xFFFF0000


def cgroup2_root() -> Path | None:
    """Where the cgroup v2 hierarchy is mounted (None: not mounted, or not ours to change)."""
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _dev, where, fstype, *_ = line.split()
        if fstype == "cgroup2" and Path(where, "cgroup.procs").exists():
            return Path(where) if os.access(where, os.W_OK) else None
    return None


def chain(cluster: str) -> str:
    """The cluster's own iptables chain (at most 28 characters)."""
    return f"CUT-{cluster}"[:28]


def _iptables(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["iptables", "-w", "5", *args], capture_output=True, text=True,
                          check=check, timeout=30)


def _jump(cluster: str) -> list[str]:
    return ["OUTPUT", "-o", "lo", "-d", "127.0.0.0/8", "-m", "comment", "--comment",
            f"minik8s chaos partition of cluster {cluster}", "-j", chain(cluster)]


def supported() -> bool:
    """Whether this iptables can match cgroup v2 paths and conntrack marks."""
    if shutil.which("iptables") is None:
        return False
    out = _iptables("-m", "cgroup", "-h", check=False).stdout
    return "--path" in out and "connmark" in _iptables("-m", "connmark", "-h",
                                                      check=False).stdout


def cut(cluster: str, root: Path, cgroups: Iterable[Path], ports: Iterable[int],
        spared: Iterable[int] = ()) -> None:
    """Drop every loopback connection of the processes in cgroups, or to or from ports.

    `ports` are the processes' listening ports: a connection to them is cut
    from its first packet, before the process's own socket answers (the
    cgroup match sees only full sockets, not the half-open one of a SYN-ACK).
    Connections to or from `spared` ports (of theirs) are left alone.
    """
    heal(cluster)
    name = chain(cluster)
    mark = f"{random.randrange(1, 1 << 16) << 16:#x}/{MASK:#x}"
    _iptables("-N", name)
    _multiport(name, spared, "RETURN")
    for cgroup in cgroups:
        _iptables("-A", name, "-m", "cgroup", "--path", str(cgroup.relative_to(root)),
                  "-j", "CONNMARK", "--set-mark", mark)
    _multiport(name, ports, "CONNMARK", "--set-mark", mark)
    _iptables("-A", name, "-m", "connmark", "--mark", mark, "-j", "DROP")
    _iptables("-I", *_jump(cluster))


def _multiport(name: str, ports: Iterable[int], *target: str) -> None:
    """Rules sending TCP to or from ports to target (multiport takes 15 ports at most)."""
    listed = sorted(set(ports))
    for i in range(0, len(listed), 15):
        _iptables("-A", name, "-p", "tcp", "-m", "multiport", "--ports",
                  ",".join(map(str, listed[i:i + 15])), "-j", *target)


def heal(cluster: str) -> None:
    """Remove the cluster's chain and every jump to it (nothing else); idempotent."""
    while _iptables("-D", *_jump(cluster), check=False).returncode == 0:
        pass
    if _iptables("-F", chain(cluster), check=False).returncode == 0:
        _iptables("-X", chain(cluster))
