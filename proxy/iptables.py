"""The iptables mode: the rules of proxy/rules.py loaded into the node's kernel.

Each sync reads the current rules once (iptables-save), adds any missing
jump from a built-in chain into ours (at the top, as kube-proxy does), and
loads every chain of ours whole with ``iptables-restore --noflush``: one
atomic change, which also repairs rules changed by hand. Chains of ours no
longer wanted are deleted in the same restore. Nothing outside our prefix is
touched.
"""
from __future__ import annotations

import asyncio
import logging
import subprocess
from collections.abc import Sequence
from pathlib import Path

from proxy.model import ServicePort
from proxy.rules import Chains, render

log = logging.getLogger("minik8s.proxy.iptables")

ROUTE_LOCALNET = Path("/proc/sys/net/ipv4/conf/all/route_localnet")


class IptablesError(Exception):
    pass


def _run(args: Sequence[str], stdin: str | None = None) -> str:
    try:
        done = subprocess.run(list(args), input=stdin, capture_output=True, text=True,
                              timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise IptablesError(f"{args[0]}: {exc}") from None
    if done.returncode != 0:
        raise IptablesError(f"{' '.join(args[:3])}: {done.stderr.strip()}")
    return done.stdout


def available() -> bool:
    """Whether this process may program iptables (the binary is there, and NET_ADMIN)."""
    try:
        _run(["iptables", "-t", "nat", "-S", "OUTPUT"])
        return True
    except IptablesError:
        return False


class IptablesProxier:
    """Keeps one cluster's chains equal to the services."""

    def __init__(self, cluster: str, cluster_cidr: str) -> None:
        self.chains = Chains.for_cluster(cluster)
        self.cluster_cidr = cluster_cidr
        self.rules = 0

    def setup(self) -> None:
        """Let NodePorts answer on 127.0.0.1, as kube-proxy does (DNAT of loopback traffic)."""
        if ROUTE_LOCALNET.read_text().strip() != "1":
            ROUTE_LOCALNET.write_text("1\n")

    async def sync(self, ports: Sequence[ServicePort]) -> None:
        await asyncio.to_thread(self._sync, ports)

    async def close(self) -> None:
        """Nothing: the rules stay when the proxy stops, so traffic keeps flowing."""

    def _sync(self, ports: Sequence[ServicePort]) -> None:
        saved = {table: _run(["iptables-save", "-t", table]) for table in ("nat", "filter")}
        self._ensure_hooks(saved)
        existing = [(table, chain) for table, text in saved.items()
                    for chain in _our_chains(text, self.chains.prefix)]
        text = render(ports, self.chains, self.cluster_cidr, existing)
        _run(["iptables-restore", "--noflush"], stdin=text)
        self.rules = sum(line.startswith("-A ") for line in text.splitlines())

    def _ensure_hooks(self, saved: dict[str, str]) -> None:
        for table, builtin, chain in self.chains.hooks():
            if _hook_rule(builtin, chain) in saved[table]:
                continue
            if f":{chain} " not in saved[table]:  # a jump needs its target to exist
                _run(["iptables", "-t", table, "-N", chain])
                saved[table] += f":{chain} - [0:0]\n"
            _run(["iptables", "-t", table, "-I", builtin, "1", *_hook_args(chain)])

    def cleanup(self) -> None:
        """Remove every jump into our chains, then the chains themselves."""
        for table in ("nat", "filter"):
            text = _run(["iptables-save", "-t", table])
            for _table, builtin, chain in (h for h in self.chains.hooks() if h[0] == table):
                while _hook_rule(builtin, chain) in text:
                    _run(["iptables", "-t", table, "-D", builtin, *_hook_args(chain)])
                    text = _run(["iptables-save", "-t", table])
            chains = _our_chains(text, self.chains.prefix)
            if chains:
                body = [f":{c} - [0:0]" for c in chains] + [f"-X {c}" for c in chains]
                _run(["iptables-restore", "--noflush"],
                     stdin="\n".join([f"*{table}", *body, "COMMIT", ""]))


def _hook_args(chain: str) -> list[str]:
    return ["-m", "comment", "--comment", f"minik8s {chain}", "-j", chain]


def _hook_rule(builtin: str, chain: str) -> str:
    """The hook as iptables-save prints it."""
    return f'-A {builtin} -m comment --comment "minik8s {chain}" -j {chain}'


def _our_chains(saved: str, prefix: str) -> list[str]:
    return [line[1:].split()[0] for line in saved.splitlines()
            if line.startswith(f":{prefix}-")]
