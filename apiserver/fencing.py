"""Fencing: writes of a deposed leader are refused inside etcd itself.

Every Lease write also writes the lease's fence key,
/registry/fences/<namespace>/<name>, to "<holder>\\n<leaseTransitions>", in the
same txn. A write that carries a Fence token is guarded in its own txn by
"the fence key still holds this token". A successor's acquisition changes
the key atomically with the lease, so from that revision on every write of
the old leader fails its comparison in etcd, whatever the old leader
believes about time or however long it was paused.
"""
from __future__ import annotations

from prometheus_client import Counter

from apiserver import etcd as etcdlib
from apiserver.storage import NO_EXTRAS, Extras, Guard
from minik8s import errors
from minik8s.api.v1 import apiserver_pb2 as api
from minik8s.api.v1 import types_pb2 as t

PREFIX = "/registry/fences/"

FENCED_WRITES = Counter(
    "apiserver_fenced_writes_total",
    "writes that carried a lease token, by lease, holder, verb and whether etcd accepted them",
    ["lease", "holder", "verb", "result"])


def key(namespace: str, name: str) -> bytes:
    return f"{PREFIX}{namespace}/{name}".encode()


def token(holder: str, transitions: int) -> bytes:
    return f"{holder}\n{transitions}".encode()


def on_lease_write(lease: t.Lease) -> Extras:
    """What a Lease create or update adds to its txn: the new fence token."""
    meta, spec = lease.metadata, lease.spec
    return Extras(ops=[etcdlib.put(key(meta.namespace, meta.name),
                                   token(spec.holder_identity, spec.lease_transitions))])


def on_lease_delete(lease: t.Lease) -> Extras:
    return Extras(ops=[etcdlib.delete(key(lease.metadata.namespace, lease.metadata.name))])


def guard(fence: api.Fence | None) -> Extras:
    """The txn guard for a write carrying fence (none for an unfenced write)."""
    if fence is None or not fence.lease_name:
        return NO_EXTRAS
    lease = f"{fence.lease_namespace}/{fence.lease_name}"
    error = errors.Fenced(
        f"{errors.FENCED_PREFIX} {fence.holder} no longer holds lease {lease} (its token "
        f"{fence.transitions} is stale); a new leader has taken over")
    compare = etcdlib.value_is(key(fence.lease_namespace, fence.lease_name),
                               token(fence.holder, fence.transitions))
    return Extras([Guard(compare, error)])


def record(fence: api.Fence | None, verb: str, accepted: bool) -> None:
    if fence is not None and fence.lease_name:
        FENCED_WRITES.labels(f"{fence.lease_namespace}/{fence.lease_name}", fence.holder, verb,
                             "accepted" if accepted else "rejected").inc()
