"""ClusterIP and NodePort allocation that stays unique across apiservers.

Every allocated address or port is a key in etcd
(/registry/ranges/serviceips/<ip>, /registry/ranges/servicenodeports/<port>)
created in the same txn as the Service that uses it, guarded by "this key
does not exist yet". Two apiservers that pick the same value concurrently
cannot both commit; the loser picks again. Deleting the Service deletes its
keys in the same txn.
"""
from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable, Iterable

from apiserver import etcd as etcdlib
from apiserver.storage import Extras, Guard
from minik8s import errors
from minik8s.api.v1 import types_pb2 as t

IP_PREFIX = "/registry/ranges/serviceips/"
PORT_PREFIX = "/registry/ranges/servicenodeports/"
NODE_PORT_RANGE = range(30000, 32768)


class AllocationRace(errors.Conflict):
    """A value we picked was taken meanwhile; pick again."""


class ServiceAllocator:
    def __init__(self, cidr: ipaddress.IPv4Network,
                 in_use: Callable[[], Iterable[t.Service]]) -> None:
        self.cidr = cidr
        self._in_use = in_use
        # .0 (network), .1 (the API's own Service in Kubernetes), .10 (DNS) and
        # the broadcast address are only given out when asked for by name.
        self._reserved = {cidr.network_address, cidr.network_address + 1,
                          cidr.network_address + 10, cidr.broadcast_address}

    # ------------------------------------------------------------ picking

    def _used(self) -> tuple[set[str], set[int]]:
        ips: set[str] = set()
        ports: set[int] = set()
        for svc in self._in_use():
            ips.add(svc.spec.cluster_ip)
            ports.update(p.node_port for p in svc.spec.ports if p.node_port)
        return ips, ports

    def _pick_ip(self, used: set[str]) -> str:
        size = self.cidr.num_addresses
        for _ in range(64):
            ip = self.cidr.network_address + random.randrange(size)
            if ip not in self._reserved and str(ip) not in used:
                return str(ip)
        raise errors.Unavailable(f"no free ClusterIP in {self.cidr}")

    @staticmethod
    def _pick_port(used: set[int]) -> int:
        free = [p for p in NODE_PORT_RANGE if p not in used]
        if not free:
            raise errors.Unavailable("no free NodePort")
        return random.choice(free)

    # ------------------------------------------------------------ txn parts

    @staticmethod
    def _claim(svc: t.Service, key: str, field: str, value: str, asked: bool) -> Extras:
        """Create the allocation key in the Service's txn, if nobody has it yet.

        A value the user asked for that is taken is their error; one we
        picked that was taken meanwhile means: pick again.
        """
        err: errors.ApiError = (
            errors.Invalid(f"{field}: Invalid value: {value}: provided value is already "
                           "allocated") if asked
            else AllocationRace(f"{field} {value} taken concurrently"))
        return Extras([Guard(etcdlib.created(key.encode(), False), err)],
                      [etcdlib.put(key.encode(), _owner(svc))])

    def _check_ip(self, ip: str) -> None:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            raise errors.Invalid(f'spec.clusterIP: Invalid value: "{ip}": must be a valid IP '
                                 'address or "None"') from None
        if addr not in self.cidr or addr in (self.cidr.network_address,
                                             self.cidr.broadcast_address):
            raise errors.Invalid(f'spec.clusterIP: Invalid value: "{ip}": not in the service '
                                 f"range {self.cidr}")

    def allocate(self, svc: t.Service, old: t.Service | None = None) -> Extras:
        """Fill in clusterIP and nodePorts of svc; return what its txn must claim and release."""
        used_ips, used_ports = self._used()
        extras = Extras()
        if old is not None and not svc.spec.cluster_ip:
            svc.spec.cluster_ip = old.spec.cluster_ip
        if svc.spec.cluster_ip != "None" and (old is None or not old.spec.cluster_ip):
            asked = bool(svc.spec.cluster_ip)
            if asked:
                self._check_ip(svc.spec.cluster_ip)
            else:
                svc.spec.cluster_ip = self._pick_ip(used_ips)
            extras += self._claim(svc, IP_PREFIX + svc.spec.cluster_ip, "spec.clusterIP",
                                  f'"{svc.spec.cluster_ip}"', asked)
        del svc.spec.cluster_ips[:]
        if svc.spec.cluster_ip != "None":
            svc.spec.cluster_ips.append(svc.spec.cluster_ip)

        before = {(p.port, p.protocol): p.node_port for p in (old.spec.ports if old else [])}
        held = set(before.values()) - {0}
        for port in svc.spec.ports:
            if svc.spec.type != "NodePort":
                port.node_port = 0
                continue
            if not port.node_port:
                port.node_port = before.get((port.port, port.protocol), 0)
            if port.node_port in held:
                continue
            asked = bool(port.node_port)
            if not asked:
                port.node_port = self._pick_port(used_ports)
            used_ports.add(port.node_port)
            extras += self._claim(svc, f"{PORT_PREFIX}{port.node_port}", "spec.ports.nodePort",
                                  str(port.node_port), asked)
        now = {p.node_port for p in svc.spec.ports if p.node_port}
        extras += Extras(ops=[etcdlib.delete(f"{PORT_PREFIX}{p}".encode())
                              for p in sorted(held - now)])
        return extras

    @staticmethod
    def release(svc: t.Service) -> Extras:
        """What deleting svc must delete in the same txn."""
        keys = [f"{PORT_PREFIX}{p.node_port}" for p in svc.spec.ports if p.node_port]
        if svc.spec.cluster_ip and svc.spec.cluster_ip != "None":
            keys.append(IP_PREFIX + svc.spec.cluster_ip)
        return Extras(ops=[etcdlib.delete(k.encode()) for k in keys])


def _owner(svc: t.Service) -> bytes:
    return f"{svc.metadata.namespace}/{svc.metadata.name}".encode()
