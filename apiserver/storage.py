"""Objects in etcd: every write a transaction, resourceVersion = mod_revision.

Keys are /registry/<plural>/[<namespace>/]<name>; values are the serialised
protobuf without resourceVersion. Create is a txn on create_revision == 0,
Update and Delete are txns on mod_revision == rv; nothing is read, modified
and written outside a txn. A write may carry Guards (extra comparisons in the
same txn, such as "the namespace still exists" or "this ClusterIP is free"),
each with the error to answer if it does not hold.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from aetcd.rpc import rpc_pb2 as rpc
from google.protobuf.message import Message

from apiserver import etcd as etcdlib
from apiserver.etcd import Etcd, EtcdUnavailable
from minik8s import errors, kinds
from minik8s.kinds import Kind


@dataclass
class Guard:
    """A comparison that must hold in the write's txn, and the error if not."""

    compare: rpc.Compare
    error: errors.ApiError


@dataclass
class Extras:
    """What a write adds to its txn: guards, and more keys to put or delete."""

    guards: list[Guard] = field(default_factory=list)
    ops: list[rpc.RequestOp] = field(default_factory=list)

    def __add__(self, other: Extras) -> Extras:
        return Extras(self.guards + other.guards, self.ops + other.ops)


NO_EXTRAS = Extras()


def encode(obj: Message) -> bytes:
    copy = type(obj)()
    copy.CopyFrom(obj)
    copy.metadata.resource_version = ""
    return copy.SerializeToString(deterministic=True)


def decode(kind: Kind, value: bytes, revision: int) -> Message:
    obj = kind.new()
    obj.ParseFromString(value)
    obj.metadata.resource_version = str(revision)
    return obj


def _holds(compare: rpc.Compare, kv: rpc.KeyValue | None) -> bool:
    """Evaluate a guard's comparison against the key as read back after a failed txn."""
    if compare.target == rpc.Compare.CREATE:
        exists = kv is not None
        return exists if compare.result == rpc.Compare.GREATER else not exists
    if compare.target == rpc.Compare.MOD:
        return kv is not None and kv.mod_revision == compare.mod_revision
    if compare.target == rpc.Compare.VALUE:
        return kv is not None and kv.value == compare.value
    raise ValueError(f"unsupported guard target {compare.target}")


def _read_back(resp: rpc.TxnResponse) -> list[rpc.KeyValue | None]:
    """The keys a failed txn read in its failure branch, in order."""
    return [r.response_range.kvs[0] if r.response_range.kvs else None for r in resp.responses]


def _raise_failed_guard(guards: Sequence[Guard], read: Sequence[rpc.KeyValue | None]) -> None:
    for guard, kv in zip(guards, read, strict=True):
        if not _holds(guard.compare, kv):
            raise guard.error


def _not_found(kind: Kind, name: str) -> errors.NotFound:
    return errors.NotFound(f'{kind.plural} "{name}" not found')


DEFAULT_MAX_OBJECT_BYTES = 1_572_864  # etcd's default request limit, as Kubernetes


class Storage:
    def __init__(self, etcd: Etcd, max_object_bytes: int = DEFAULT_MAX_OBJECT_BYTES) -> None:
        self.etcd = etcd
        self.max_object_bytes = max_object_bytes

    def _encode(self, obj: Message) -> bytes:
        value = encode(obj)
        if len(value) > self.max_object_bytes:
            raise errors.Invalid(f"object is {len(value)} bytes, over the limit of "
                                 f"{self.max_object_bytes} bytes")
        return value

    async def _txn(self, compare: Sequence[rpc.Compare], success: Sequence[rpc.RequestOp],
                   failure: Sequence[rpc.RequestOp]) -> rpc.TxnResponse:
        try:
            return await self.etcd.txn(compare, success, failure)
        except EtcdUnavailable as exc:
            raise errors.Unavailable(str(exc)) from None

    async def _write(self, kind: Kind, key: bytes, own: rpc.Compare, op: rpc.RequestOp,
                     value: bytes | None, extras: Extras,
                     own_failed: Callable[[rpc.KeyValue | None], errors.ApiError]) -> int:
        """One guarded txn; returns its revision or raises the error of the failed guard.

        If our own comparison failed but the key holds exactly the bytes we
        wrote, an earlier attempt of this very txn committed before etcd's
        answer was lost (the etcd client retries): that is success.
        """
        guards = extras.guards
        compares = [own, *(g.compare for g in guards)]
        failure = [etcdlib.get(key), *(etcdlib.get(g.compare.key) for g in guards)]
        resp = await self._txn(compares, [op, *extras.ops], failure)
        if resp.succeeded:
            return resp.header.revision
        read = _read_back(resp)
        current = read[0]
        if not _holds(own, current):
            if value is not None and current is not None and current.value == value:
                return current.mod_revision
            raise own_failed(current)
        _raise_failed_guard(guards, read[1:])
        raise errors.Conflict("the write's preconditions changed; try again")

    async def check(self, extras: Extras) -> None:
        """Check a write's guards when it turned out to change nothing.

        A no-op still answers as the write would: a deposed leader's no-op
        update is refused like any other write of its.
        """
        if not extras.guards:
            return
        resp = await self._txn([g.compare for g in extras.guards], [],
                               [etcdlib.get(g.compare.key) for g in extras.guards])
        if not resp.succeeded:
            _raise_failed_guard(extras.guards, _read_back(resp))

    # ------------------------------------------------------------ reads

    async def get(self, kind: Kind, namespace: str, name: str) -> Message:
        try:
            kv = await self.etcd.get(kinds.key(kind, namespace, name).encode())
        except EtcdUnavailable as exc:
            raise errors.Unavailable(str(exc)) from None
        if kv is None:
            raise _not_found(kind, name)
        return decode(kind, kv.value, kv.mod_revision)

    async def list(self, kind: Kind, namespace: str = "") -> tuple[list[Message], int]:
        prefix = kinds.prefix(kind, namespace).encode()
        try:
            resp = await self.etcd.range(prefix, etcdlib.range_end(prefix))
        except EtcdUnavailable as exc:
            raise errors.Unavailable(str(exc)) from None
        return [decode(kind, kv.value, kv.mod_revision) for kv in resp.kvs], resp.header.revision

    # ------------------------------------------------------------ writes

    async def create(self, kind: Kind, obj: Message, extras: Extras = NO_EXTRAS) -> Message:
        meta = obj.metadata
        key = kinds.key(kind, meta.namespace, meta.name).encode()
        value = self._encode(obj)

        def exists(_: rpc.KeyValue | None) -> errors.ApiError:
            return errors.AlreadyExists(f'{kind.plural} "{meta.name}" already exists')

        rev = await self._write(kind, key, etcdlib.created(key, False),
                                etcdlib.put(key, value), value, extras, exists)
        return decode(kind, value, rev)

    def _changed(self, kind: Kind, name: str) -> Callable[[rpc.KeyValue | None], errors.ApiError]:
        def error(current: rpc.KeyValue | None) -> errors.ApiError:
            if current is None:
                return _not_found(kind, name)
            return errors.Conflict(
                f'Operation cannot be fulfilled on {kind.plural} "{name}": the object has been '
                f"modified (resourceVersion is now {current.mod_revision}); read it again")
        return error

    async def update(self, kind: Kind, obj: Message, revision: int,
                     extras: Extras = NO_EXTRAS) -> Message:
        meta = obj.metadata
        key = kinds.key(kind, meta.namespace, meta.name).encode()
        value = self._encode(obj)
        rev = await self._write(kind, key, etcdlib.mod_revision_is(key, revision),
                                etcdlib.put(key, value), value, extras,
                                self._changed(kind, meta.name))
        return decode(kind, value, rev)

    async def delete(self, kind: Kind, obj: Message, revision: int,
                     extras: Extras = NO_EXTRAS) -> Message:
        """Remove the object if it is still at revision; returns it as it was."""
        meta = obj.metadata
        key = kinds.key(kind, meta.namespace, meta.name).encode()
        await self._write(kind, key, etcdlib.mod_revision_is(key, revision),
                          etcdlib.delete(key), None, extras, self._changed(kind, meta.name))
        return obj

    async def guaranteed_update(
        self, kind: Kind, namespace: str, name: str,
        mutate: Callable[[Message], Awaitable[Message | None]], extras: Extras = NO_EXTRAS,
        attempts: int = 16,
    ) -> Message:
        """Read, mutate, write back by CAS; on a conflict read again and retry.

        mutate gets a copy and returns the new object, or None to leave it as is.
        """
        for _ in range(attempts):
            current = await self.get(kind, namespace, name)
            draft = type(current)()
            draft.CopyFrom(current)
            updated = await mutate(draft)
            if updated is None:
                await self.check(extras)
                return current
            try:
                return await self.update(kind, updated, int(current.metadata.resource_version),
                                         extras)
            except errors.Conflict:
                continue
        raise errors.Conflict(f'{kind.plural} "{name}": too many concurrent updates; try again')
