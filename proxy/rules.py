"""The iptables rules of the iptables mode, as kube-proxy writes them.

Pure: ``render(ports, chains, cluster_cidr)`` returns the text that
``iptables-restore --noflush`` loads. Every chain is the proxy's own (named
with its cluster's prefix, so clusters sharing a host never touch each
other's rules); declaring a chain in the text flushes it, so each sync
rewrites every chain whole, atomically.

nat table::

    PREROUTING, OUTPUT -> P-SERVICES
      -d <clusterIP> -p tcp --dport <port>   -> P-SVC-<hash>  (when it has endpoints)
      -m addrtype --dst-type LOCAL            -> P-NODEPORTS
    P-NODEPORTS: -p tcp --dport <nodePort>   -> P-MARK-MASQ, P-SVC-<hash>
    P-SVC-<hash>: ! -s <clusterCIDR> -> P-MARK-MASQ; then one rule per endpoint,
      -m statistic --mode random --probability 1/(n-i) -> P-SEP-<hash>
      (with ClientIP affinity, first -m recent --rcheck per endpoint)
    P-SEP-<hash>: -s <its own IP> -> P-MARK-MASQ (hairpin); DNAT --to-destination ip:port
    POSTROUTING -> P-POSTROUTING: MASQUERADE what P-MARK-MASQ marked

filter table::

    OUTPUT, FORWARD -> P-SERVICES: REJECT for a clusterIP port without endpoints
    INPUT, OUTPUT -> P-EXTERNAL: REJECT for a nodePort without endpoints
    FORWARD -> P-FORWARD: ACCEPT marked and established service traffic
"""
from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from proxy.model import ServicePort

MASQ_MARK = "0x4000/0x4000"


@dataclass(frozen=True)
class Chains:
    """The names of one cluster's chains (iptables allows 28 characters)."""

    prefix: str   # e.g. "MK3F2A1C"

    @classmethod
    def for_cluster(cls, cluster: str) -> Chains:
        return cls("MK" + hashlib.sha256(cluster.encode()).hexdigest()[:6].upper())

    @property
    def services(self) -> str:
        return f"{self.prefix}-SERVICES"

    @property
    def nodeports(self) -> str:
        return f"{self.prefix}-NODEPORTS"

    @property
    def external(self) -> str:
        return f"{self.prefix}-EXTERNAL"

    @property
    def forward(self) -> str:
        return f"{self.prefix}-FORWARD"

    @property
    def postrouting(self) -> str:
        return f"{self.prefix}-POSTROUTING"

    @property
    def mark_masq(self) -> str:
        return f"{self.prefix}-MARK-MASQ"

    def svc(self, port: ServicePort) -> str:
        return f"{self.prefix}-SVC-{_hash(port.key + port.protocol)}"

    def sep(self, port: ServicePort, endpoint: str) -> str:
        return f"{self.prefix}-SEP-{_hash(port.key + port.protocol + endpoint)}"

    def hooks(self) -> list[tuple[str, str, str]]:
        """(table, built-in chain, our chain): the jumps into our chains."""
        return [
            ("nat", "PREROUTING", self.services), ("nat", "OUTPUT", self.services),
            ("nat", "POSTROUTING", self.postrouting),
            ("filter", "INPUT", self.external), ("filter", "OUTPUT", self.external),
            ("filter", "OUTPUT", self.services), ("filter", "FORWARD", self.services),
            ("filter", "FORWARD", self.forward),
        ]


def _hash(text: str) -> str:
    """14 characters of base32 sha256 (kube-proxy uses 16; our prefix is longer)."""
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:14]


def _comment(text: str) -> str:
    return f'-m comment --comment "{text}"'


def render(ports: Sequence[ServicePort], chains: Chains, cluster_cidr: str,
           existing: Sequence[tuple[str, str]] = ()) -> str:
    """The iptables-restore input for every chain of ours.

    existing: the (table, chain)s of ours the kernel has now; those no longer
    wanted are deleted in the same restore.
    """
    nat = _Table("nat")
    filt = _Table("filter")
    for name in (chains.services, chains.nodeports, chains.postrouting, chains.mark_masq):
        nat.chain(name)
    for name in (chains.services, chains.external, chains.forward):
        filt.chain(name)
    nat.add(chains.mark_masq, f"-j MARK --or-mark {MASQ_MARK.split('/')[0]}")
    nat.add(chains.postrouting, f"-m mark ! --mark {MASQ_MARK} -j RETURN")
    nat.add(chains.postrouting, f"-j MARK --xor-mark {MASQ_MARK.split('/')[0]}")
    nat.add(chains.postrouting, f"{_comment('minik8s service traffic requiring SNAT')} "
                                "-j MASQUERADE")
    filt.add(chains.forward, f"-m mark --mark {MASQ_MARK} -j ACCEPT")
    filt.add(chains.forward, f"-d {cluster_cidr} -m conntrack --ctstate RELATED,ESTABLISHED "
                             "-j ACCEPT")
    for port in ports:
        _service(port, chains, cluster_cidr, nat, filt)
    nat.add(chains.services, f"{_comment('service nodeports')} -m addrtype --dst-type LOCAL "
                             f"-j {chains.nodeports}")
    for table, name in existing:
        (nat if table == "nat" else filt).delete(name)
    return nat.text() + filt.text()


def _service(port: ServicePort, chains: Chains, cluster_cidr: str, nat: _Table,
             filt: _Table) -> None:
    proto = port.protocol.lower()
    match = f"-d {port.cluster_ip}/32 -p {proto} -m {proto} --dport {port.port}"
    node_match = f"-p {proto} -m {proto} --dport {port.node_port}"
    if not port.endpoints:
        why = _comment(f"{port.key} has no endpoints")
        filt.add(chains.services, f"{why} {match} -j REJECT --reject-with icmp-port-unreachable")
        if port.node_port:
            filt.add(chains.external, f"{why} -m addrtype --dst-type LOCAL {node_match} "
                                      "-j REJECT --reject-with icmp-port-unreachable")
        return
    svc = chains.svc(port)
    nat.chain(svc)
    nat.add(chains.services, f"{_comment(port.key + ' cluster IP')} {match} -j {svc}")
    if port.node_port:
        nat.add(chains.nodeports, f"{_comment(port.key)} {node_match} -j {chains.mark_masq}")
        nat.add(chains.nodeports, f"{_comment(port.key)} {node_match} -j {svc}")
    nat.add(svc, f"{_comment(port.key + ' cluster IP')} {match} ! -s {cluster_cidr} "
                 f"-j {chains.mark_masq}")
    seps = [chains.sep(port, ep) for ep in port.endpoints]
    if port.affinity_seconds:
        for sep in seps:
            nat.add(svc, f"-m recent --name {sep} --mask 255.255.255.255 --rsource --rcheck "
                         f"--seconds {port.affinity_seconds} --reap -j {sep}")
    for i, (sep, endpoint) in enumerate(zip(seps, port.endpoints, strict=True)):
        left = len(seps) - i
        pick = "" if left == 1 else \
            f"-m statistic --mode random --probability {1 / left:.10f} "
        nat.add(svc, f"{_comment(f'{port.key} -> {endpoint}')} {pick}-j {sep}")
        nat.chain(sep)
        ip = endpoint.rsplit(":", 1)[0]
        nat.add(sep, f"-s {ip}/32 -j {chains.mark_masq}")
        affinity = (f"-m recent --name {sep} --mask 255.255.255.255 --rsource --set "
                    if port.affinity_seconds else "")
        nat.add(sep, f"-p {proto} {affinity}-m {proto} -j DNAT --to-destination {endpoint}")


class _Table:
    """One table's part of an iptables-restore input."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._chains: list[str] = []
        self._rules: list[str] = []
        self._deleted: list[str] = []

    def chain(self, name: str) -> None:
        if name not in self._chains:
            self._chains.append(name)

    def add(self, chain: str, rule: str) -> None:
        self._rules.append(f"-A {chain} {rule}")

    def delete(self, chain: str) -> None:
        """Declare (which flushes) then delete a chain, unless it is wanted."""
        if chain not in self._chains:
            self._deleted.append(chain)

    def text(self) -> str:
        lines = [f"*{self.name}"]
        lines += [f":{c} - [0:0]" for c in [*self._chains, *self._deleted]]
        lines += self._rules
        lines += [f"-X {c}" for c in self._deleted]
        lines.append("COMMIT")
        return "\n".join(lines) + "\n"
