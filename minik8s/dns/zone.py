"""The cluster's DNS names, answered from the informers' caches (as CoreDNS's kubernetes plugin).

Pure: ``Zone.answer(name, qtype)`` looks a name up in the Services,
Endpoints and Pods it is given, following Kubernetes' DNS specification:

* ``<svc>.<ns>.svc.<domain>``: A, the ClusterIP; for a headless Service,
  the ready endpoints' addresses;
* ``<hostname>.<subdomain>.<ns>.svc.<domain>``: A, that pod (StatefulSet
  pods, any pod with hostname and subdomain, endpoints with a hostname);
* ``_<port>._<proto>.<svc>.<ns>.svc.<domain>``: SRV for named ports;
* ``<a>.<b>.<c>.<d>.in-addr.arpa``: PTR for ClusterIPs and pod addresses.

A name in the domain that does not exist is NXDOMAIN; one that exists with
no record of the asked type is an empty NOERROR answer (so a resolver that
also asks for AAAA still gets the A record); anything outside the domain is
not ours.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from minik8s.api.v1 import types_pb2 as t

TTL = 5


@dataclass(frozen=True)
class Record:
    name: str        # fully qualified, lower case, no trailing dot
    rtype: str       # A, SRV, PTR
    value: str       # an address, "priority weight port target", or a name
    ttl: int = TTL


Added = tuple[str, "Record | None"]   # a name and a record of it; None: the name exists


@dataclass
class Answer:
    rcode: str                    # NOERROR, NXDOMAIN, REFUSED
    records: list[Record] = field(default_factory=list)


def _dashed(ip: str) -> str:
    return ip.replace(".", "-")


def reverse_name(ip: str) -> str:
    return ".".join(reversed(ip.split("."))) + ".in-addr.arpa"


class Zone:
    """Every name of the cluster, indexed for lookups; rebuilt when the caches change."""

    def __init__(self, domain: str = "cluster.local") -> None:
        self.domain = domain.strip(".").lower()
        self._records: dict[str, list[Record]] = defaultdict(list)
        self._parents: set[str] = set()
        # What each object (a Service with its Endpoints, or a Pod) gave in the last
        # rebuild, by its content (serialized): the same content gives the same records,
        # so a rebuild only works out those of objects that changed.
        self._given: dict[tuple[bytes, bytes | None], list[Added]] = {}

    def rebuild(self, services: Iterable[t.Service], endpoints: Iterable[t.Endpoints],
                pods: Iterable[t.Pod]) -> None:
        records: dict[str, list[Record]] = defaultdict(list)
        given: dict[tuple[bytes, bytes | None], list[Added]] = {}
        by_service = {(e.metadata.namespace, e.metadata.name): e for e in endpoints}
        for svc in services:
            self._merge(records, given, svc,
                        by_service.get((svc.metadata.namespace, svc.metadata.name)))
        for pod in pods:
            self._merge(records, given, pod, None)
        self._records = records
        self._given = given
        self._parents = self._all_parents(records)

    def _merge(self, records: dict[str, list[Record]],
               given: dict[tuple[bytes, bytes | None], list[Added]],
               obj: t.Service | t.Pod, eps: t.Endpoints | None) -> None:
        """Add to records what a Service (with its Endpoints) or a Pod gives, each record
        once per name, in order."""
        pod = isinstance(obj, t.Pod)
        key = ((b"P" if pod else b"S") + obj.SerializeToString(deterministic=True),
               None if eps is None else eps.SerializeToString(deterministic=True))
        added = self._given.get(key)
        if added is None:
            added = []
            if pod:
                self._pod(added, obj)   # type: ignore[arg-type]  # a Pod
            else:
                self._service(added, obj, eps)   # type: ignore[arg-type]  # a Service
        given[key] = added
        for name, record in added:
            found = records[name]
            if record is not None and record not in found:
                found.append(record)

    @staticmethod
    def _all_parents(names: Iterable[str]) -> set[str]:
        """svc.cluster.local, ns.svc.cluster.local, ... above the names (each suffix after
        a dot): names without records. A name's are walked up only to the first one
        already found, whose own are then found too."""
        parents: set[str] = set()
        for name in names:
            while True:
                _, dot, name = name.partition(".")
                if not dot or name in parents:
                    break
                parents.add(name)
        return parents

    def _add(self, added: list[Added], name: str, rtype: str, value: str) -> None:
        record = Record(name.lower(), rtype, value)
        added.append((record.name, record))

    def _service(self, added: list[Added], svc: t.Service, eps: t.Endpoints | None) -> None:
        name = f"{svc.metadata.name}.{svc.metadata.namespace}.svc.{self.domain}"
        headless = svc.spec.cluster_ip in ("", "None")
        targets: list[tuple[str, str]] = []   # (A name, address) of what SRV points at
        if headless:
            for subset in (eps.subsets if eps else []):
                for addr in subset.addresses:
                    self._add(added, name, "A", addr.ip)
                    host = f"{addr.hostname or _dashed(addr.ip)}.{name}"
                    self._add(added, host, "A", addr.ip)
                    targets.append((host, addr.ip))
        else:
            self._add(added, name, "A", svc.spec.cluster_ip)
            self._add(added, reverse_name(svc.spec.cluster_ip), "PTR", name)
            targets.append((name, svc.spec.cluster_ip))
        added.append((name, None))   # a headless service with no endpoints still exists
        for port in svc.spec.ports:
            if not port.name:
                continue
            srv = f"_{port.name}._{(port.protocol or 'TCP').lower()}.{name}"
            for host, _ip in targets:
                self._add(added, srv, "SRV", f"0 100 {port.port} {host}")

    def _pod(self, added: list[Added], pod: t.Pod) -> None:
        ip = pod.status.pod_ip
        if not ip or pod.status.phase in ("Succeeded", "Failed"):
            return
        ns = pod.metadata.namespace
        self._add(added, f"{_dashed(ip)}.{ns}.pod.{self.domain}", "A", ip)
        if pod.spec.hostname and pod.spec.subdomain:
            host = f"{pod.spec.hostname}.{pod.spec.subdomain}.{ns}.svc.{self.domain}"
            self._add(added, host, "A", ip)
            self._add(added, reverse_name(ip), "PTR", host)
        else:
            self._add(added, reverse_name(ip), "PTR", f"{_dashed(ip)}.{ns}.pod.{self.domain}")

    def ours(self, name: str) -> bool:
        name = name.rstrip(".").lower()
        return name == self.domain or name.endswith("." + self.domain) \
            or name.endswith(".in-addr.arpa")

    def answer(self, name: str, rtype: str) -> Answer:
        name = name.rstrip(".").lower()
        if not self.ours(name):
            return Answer("REFUSED")
        found = self._records.get(name)
        if found is None:
            exists = name == self.domain or name in self._parents
            return Answer("NOERROR" if exists else "NXDOMAIN")
        return Answer("NOERROR", [r for r in found if rtype in (r.rtype, "ANY")])
