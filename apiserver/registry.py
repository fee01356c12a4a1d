"""The verbs of the API over storage: defaulting, validation, admission.

This is the apiserver's request logic with no gRPC in it: each method takes
and returns typed objects and raises minik8s.errors.ApiError subclasses.
"""
from __future__ import annotations

import datetime
import secrets
import string
import uuid
from collections.abc import Callable

from google.protobuf.message import Message

from apiserver import defaults, fencing
from apiserver import etcd as etcdlib
from apiserver.allocators import AllocationRace, ServiceAllocator
from apiserver.storage import NO_EXTRAS, Extras, Guard, Storage
from apiserver.watchcache import WatchCache
from minik8s import errors, kinds, manifest, selectors, validation
from minik8s.api.v1 import apiserver_pb2 as api
from minik8s.api.v1 import types_pb2 as t
from minik8s.kinds import Kind
from minik8s.retry import retry_on_conflict

_ALLOCATION_ATTEMPTS = 8
_PROPAGATION = ("", "Background", "Foreground", "Orphan")
# The garbage collector orphans or deletes the dependents, then removes these.
_PROPAGATION_FINALIZERS = {"Orphan": "orphan", "Foreground": "foregroundDeletion"}


def _kind(name: str) -> Kind:
    try:
        return kinds.by_name(name)
    except kinds.UnknownKind as exc:
        raise errors.Invalid(f"kind: {exc}") from None


def _namespace_of(kind: Kind, namespace: str) -> str:
    return (namespace or "default") if kind.namespaced else ""


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _copy(obj: Message) -> Message:
    out = type(obj)()
    out.CopyFrom(obj)
    return out


def _body_fields(kind: Kind) -> list[str]:
    """The fields an Update may change besides metadata (status excluded)."""
    skip = {"api_version", "kind", "metadata", "status"}
    return [f.name for f in kind.message.DESCRIPTOR.fields if f.name not in skip]


def matcher(kind: Kind, namespace: str, label_selector: str,
            field_selector: str) -> Callable[[Message], bool]:
    """The filter of a list or watch request; INVALID_ARGUMENT if a selector is bad."""
    try:
        labels = selectors.LabelSelector.parse(label_selector)
        fields = selectors.FieldSelector.parse(field_selector)
        fields.validate_for(kind.message)
    except ValueError as exc:
        raise errors.Invalid(str(exc)) from None

    def matches(obj: Message) -> bool:
        return ((not namespace or obj.metadata.namespace == namespace)
                and labels.matches(obj.metadata.labels) and fields.matches(obj))
    return matches


class Registry:
    def __init__(self, storage: Storage, cache: WatchCache, allocator: ServiceAllocator) -> None:
        self.storage = storage
        self.cache = cache
        self.allocator = allocator

    # ------------------------------------------------------------ reads

    async def get(self, kind_name: str, namespace: str, name: str) -> Message:
        kind = _kind(kind_name)
        return await self.storage.get(kind, _namespace_of(kind, namespace), name)

    async def list(self, req: api.ListRequest) -> tuple[list[Message], int]:
        kind = _kind(req.kind)
        matches = matcher(kind, req.namespace, req.label_selector, req.field_selector)
        items, revision = await self.storage.list(kind, req.namespace if kind.namespaced else "")
        return [o for o in items if matches(o)], revision

    # ------------------------------------------------------------ checks

    @staticmethod
    def _check(obj: Message) -> None:
        try:
            validation.validate(obj)
        except validation.FieldError as exc:
            raise errors.Invalid(str(exc)) from None

    async def _namespace_guard(self, namespace: str, fresh: bool) -> Extras:
        """The txn guard "the namespace exists and is not terminating"."""
        kind = kinds.by_name("Namespace")
        key = kinds.key(kind, "", namespace)
        ns = None if fresh else self.cache["Namespace"].objects.get(key)
        if ns is None:
            try:
                ns = await self.storage.get(kind, "", namespace)
            except errors.NotFound:
                raise errors.NotFound(f'namespaces "{namespace}" not found') from None
        if ns.status.phase == "Terminating":
            raise errors.PreconditionFailed(
                f'namespace "{namespace}" is being terminated; nothing new can be created in it')
        stale = _StaleNamespace(f'namespaces "{namespace}" changed')
        return Extras([Guard(etcdlib.mod_revision_is(key.encode(),
                                                     int(ns.metadata.resource_version)), stale)])

    # ------------------------------------------------------------ create

    async def create(self, obj: Message, fence: Extras = NO_EXTRAS) -> Message:
        """Create obj. fence: the guard of a leader's write (see fencing.py)."""
        kind = kinds.of(obj)
        obj = _copy(obj)
        self._prepare_create(kind, obj)
        fresh_namespace = False
        for _ in range(_ALLOCATION_ATTEMPTS):
            draft = _copy(obj)
            extras = fence + self._admit(kind, draft, None)
            if kind.namespaced:
                extras += await self._namespace_guard(draft.metadata.namespace, fresh_namespace)
            self._check(draft)
            try:
                return await self.storage.create(kind, draft, extras)
            except _StaleNamespace:
                fresh_namespace = True
            except AllocationRace:
                continue
        raise errors.Conflict("could not allocate; try again")

    def _prepare_create(self, kind: Kind, obj: Message) -> None:
        obj.api_version, obj.kind = kind.api_version, kind.name
        meta = obj.metadata
        meta.namespace = _namespace_of(kind, meta.namespace)
        if not meta.name and meta.generate_name:
            suffix = "".join(secrets.choice(string.ascii_lowercase + string.digits)
                             for _ in range(5))
            meta.name = meta.generate_name + suffix
        meta.uid = _uid(meta.uid)
        meta.resource_version = ""
        meta.generation = 1
        meta.creation_timestamp.FromDatetime(_now())
        meta.ClearField("deletion_timestamp")
        meta.ClearField("deletion_grace_period_seconds")
        defaults.apply_defaults(kind.name, obj)

    # ------------------------------------------------------------ update

    async def update(self, obj: Message, status: bool = False,
                     fence: Extras = NO_EXTRAS) -> Message:
        kind = kinds.of(obj)
        meta = obj.metadata
        if not meta.resource_version:
            raise errors.Invalid("metadata.resourceVersion: Required value: must be set for "
                                 "an update")
        namespace = _namespace_of(kind, meta.namespace)
        old = await self.storage.get(kind, namespace, meta.name)
        if old.metadata.resource_version != meta.resource_version:
            raise errors.Conflict(
                f'Operation cannot be fulfilled on {kind.plural} "{meta.name}": the object has '
                f"been modified (resourceVersion is now {old.metadata.resource_version}); "
                "read it again")
        for _ in range(_ALLOCATION_ATTEMPTS):
            new, extras = self._merge(kind, old, obj, status)
            if new == old:
                await self.storage.check(fence)
                return old
            if new.HasField("metadata") and new.metadata.HasField("deletion_timestamp") \
                    and not new.metadata.finalizers and kind.name != "Pod":
                return await self.storage.delete(kind, old, int(old.metadata.resource_version),
                                                 fence + self._release(kind, old))
            try:
                return await self.storage.update(kind, new, int(old.metadata.resource_version),
                                                 fence + extras)
            except AllocationRace:
                continue
        raise errors.Conflict("could not allocate; try again")

    def _merge(self, kind: Kind, old: Message, obj: Message,
               status: bool) -> tuple[Message, Extras]:
        """The object to store: old with what this verb may change taken from obj."""
        new = _copy(old)
        if status:
            new.status.CopyFrom(obj.status)
            self._check(new)
            return new, NO_EXTRAS
        for name in _body_fields(kind):
            new.ClearField(name)
            _copy_field(obj, new, name)
        meta, src = new.metadata, obj.metadata
        for field in ("labels", "annotations", "finalizers", "owner_references"):
            meta.ClearField(field)
            _copy_field(src, meta, field)
        defaults.apply_defaults(kind.name, new)
        if kind.name == "Pod" and not new.spec.node_name:
            new.spec.node_name = old.spec.node_name
        extras = self._admit(kind, new, old)
        if _has(kind, "spec") and new.spec != old.spec:
            meta.generation = old.metadata.generation + 1
        self._check(new)
        try:
            validation.validate_update(old, new)
        except validation.FieldError as exc:
            raise errors.Invalid(str(exc)) from None
        return new, extras

    def _admit(self, kind: Kind, new: Message, old: Message | None) -> Extras:
        """What writing new adds to its txn: allocations, a lease's fence token."""
        if kind.name == "Service":
            return self.allocator.allocate(new, old)
        if kind.name == "Lease":
            return fencing.on_lease_write(new)
        return NO_EXTRAS

    def _release(self, kind: Kind, obj: Message) -> Extras:
        """What deleting obj adds to its txn."""
        if kind.name == "Service":
            return self.allocator.release(obj)
        if kind.name == "Lease":
            return fencing.on_lease_delete(obj)
        return NO_EXTRAS

    # ------------------------------------------------------------ delete

    async def delete(self, req: api.DeleteRequest, fence: Extras = NO_EXTRAS) -> Message:
        kind = _kind(req.kind)
        if req.propagation_policy not in _PROPAGATION:
            raise errors.Invalid("propagationPolicy: must be one of Background, Foreground, "
                                 "Orphan")
        if req.resource_version:
            return await self._delete_once(kind, req, fence)
        # Without a precondition the caller wants it gone whatever it holds
        # now: a concurrent change (a controller's status write) is read again.
        return await retry_on_conflict(lambda: self._delete_once(kind, req, fence))

    async def _delete_once(self, kind: Kind, req: api.DeleteRequest, fence: Extras) -> Message:
        namespace = _namespace_of(kind, req.namespace)
        obj = await self.storage.get(kind, namespace, req.name)
        if req.resource_version and req.resource_version != obj.metadata.resource_version:
            raise errors.Conflict(f'{kind.plural} "{req.name}": resourceVersion precondition '
                                  f"failed (is {obj.metadata.resource_version})")
        grace = req.grace_period_seconds if req.HasField("grace_period_seconds") else None
        if kind.name == "Namespace":
            return await self._delete_namespace(obj, fence)
        # not for pods: once finalized, only their kubelet (if any) removes them
        finalizer = "" if kind.name == "Pod" else \
            _PROPAGATION_FINALIZERS.get(req.propagation_policy, "")
        if finalizer or obj.metadata.finalizers or self._graceful(kind, obj, grace):
            return await self._mark_deleted(kind, obj, grace, fence, finalizer)
        return await self.storage.delete(kind, obj, int(obj.metadata.resource_version),
                                         fence + self._release(kind, obj))

    @staticmethod
    def _graceful(kind: Kind, obj: Message, grace: int | None) -> bool:
        """Pods on a node are stopped by their kubelet, which then removes them."""
        return kind.name == "Pod" and bool(obj.spec.node_name) and grace != 0

    async def _mark_deleted(self, kind: Kind, obj: Message, grace: int | None,
                            fence: Extras, finalizer: str = "") -> Message:
        async def mark(draft: Message) -> Message | None:
            meta = draft.metadata
            if kind.name != "Pod":
                if meta.HasField("deletion_timestamp"):
                    return None
                meta.deletion_timestamp.FromDatetime(_now())
                meta.deletion_grace_period_seconds = 0
                if finalizer and finalizer not in meta.finalizers:
                    meta.finalizers.append(finalizer)
                return draft
            seconds = grace if grace is not None else draft.spec.termination_grace_period_seconds
            if meta.HasField("deletion_grace_period_seconds") and \
                    meta.deletion_grace_period_seconds <= seconds:
                return None
            meta.deletion_timestamp.FromDatetime(_now() + datetime.timedelta(seconds=seconds))
            meta.deletion_grace_period_seconds = seconds
            return draft
        return await self.storage.guaranteed_update(kind, obj.metadata.namespace,
                                                    obj.metadata.name, mark, fence)

    async def _delete_namespace(self, ns: t.Namespace, fence: Extras) -> Message:
        """Mark it Terminating; remove it now if it holds nothing.

        A namespace that still holds objects stays Terminating until the
        namespace controller has removed them.
        """
        kind = kinds.by_name("Namespace")

        async def terminate(draft: Message) -> Message | None:
            if draft.status.phase == "Terminating":
                return None
            draft.status.phase = "Terminating"
            draft.metadata.deletion_timestamp.FromDatetime(_now())
            return draft
        ns = await self.storage.guaranteed_update(kind, "", ns.metadata.name, terminate, fence)
        if ns.metadata.finalizers or ns.spec.finalizers:
            return ns
        for k in kinds.KINDS:
            if k.namespaced and await self._count(k, ns.metadata.name):
                return ns
        return await self.storage.delete(kind, ns, int(ns.metadata.resource_version), fence)

    async def _count(self, kind: Kind, namespace: str) -> int:
        prefix = kinds.prefix(kind, namespace).encode()
        try:
            resp = await self.storage.etcd.range(prefix, etcdlib.range_end(prefix),
                                                 count_only=True)
        except etcdlib.EtcdUnavailable as exc:
            raise errors.Unavailable(str(exc)) from None
        return resp.count

    # ------------------------------------------------------------ bind

    async def bind(self, req: api.BindRequest, fence: Extras = NO_EXTRAS) -> Message:
        if not req.node_name:
            raise errors.Invalid("nodeName: Required value")
        kind = kinds.by_name("Pod")

        async def assign(pod: Message) -> Message:
            if req.uid and pod.metadata.uid != req.uid:
                raise errors.PreconditionFailed(
                    f'pod "{req.name}": uid is {pod.metadata.uid}, not {req.uid}')
            if pod.spec.node_name:
                raise errors.PreconditionFailed(
                    f'pod "{req.name}" is already bound to node "{pod.spec.node_name}"')
            if pod.metadata.HasField("deletion_timestamp"):
                raise errors.PreconditionFailed(f'pod "{req.name}" is being deleted')
            pod.spec.node_name = req.node_name
            _set_condition(pod.status.conditions, "PodScheduled", "True")
            return pod
        return await self.storage.guaranteed_update(kind, _namespace_of(kind, req.namespace),
                                                    req.name, assign, fence)

    # ------------------------------------------------------------ apply

    @staticmethod
    def load_manifest(req: api.ApplyRequest) -> list[Message]:
        """The objects of an Apply request's manifest; every document is checked first."""
        try:
            return manifest.load(req.manifest, default_namespace=req.namespace or "default")
        except manifest.ManifestError as exc:
            raise errors.Invalid(str(exc)) from None

    async def apply(self, objects: list[Message], create_only: bool) -> list[api.ApplyResult]:
        """Create or update each object (of load_manifest)."""
        return [await self._apply_one(obj, create_only) for obj in objects]

    async def _apply_one(self, obj: Message, create_only: bool) -> api.ApplyResult:
        kind = kinds.of(obj)
        meta = obj.metadata
        result = api.ApplyResult(kind=kind.name, namespace=_namespace_of(kind, meta.namespace),
                                 name=meta.name)
        for _ in range(_ALLOCATION_ATTEMPTS):
            try:
                existing = await self.storage.get(kind, result.namespace, meta.name)
            except errors.NotFound:
                try:
                    stored = await self.create(obj)
                except errors.AlreadyExists:
                    if create_only:
                        raise
                    continue
                result.action = "created"
                break
            if create_only:
                raise errors.AlreadyExists(f'{kind.plural} "{meta.name}" already exists')
            desired = _copy(obj)
            desired.metadata.resource_version = existing.metadata.resource_version
            merged = dict(existing.metadata.annotations)
            merged.update(desired.metadata.annotations)
            desired.metadata.ClearField("annotations")
            desired.metadata.annotations.update(merged)
            for field in ("finalizers", "owner_references"):
                if not getattr(desired.metadata, field):
                    _copy_field(existing.metadata, desired.metadata, field)
            try:
                stored = await self.update(desired)
            except errors.Conflict:
                continue
            same = stored.metadata.resource_version == existing.metadata.resource_version
            result.action = "unchanged" if same else "configured"
            break
        else:
            raise errors.Conflict(f'{kind.plural} "{meta.name}": changed concurrently; try again')
        result.object.CopyFrom(kinds.wrap(stored))
        return result


def _uid(given: str) -> str:
    """The object's uid: the client's, if it chose one (so retries are safe), else new."""
    if not given:
        return str(uuid.uuid4())
    try:
        return str(uuid.UUID(given))
    except ValueError:
        raise errors.Invalid(f'metadata.uid: Invalid value: "{given}": must be a UUID') from None


class _StaleNamespace(errors.Conflict):
    """The namespace changed between our read and the txn; read it from etcd."""


def _has(kind: Kind, name: str) -> bool:
    return name in kind.message.DESCRIPTOR.fields_by_name


def _copy_field(src: Message, dst: Message, name: str) -> None:
    """Copy one field of src into the (cleared) same field of dst, keeping presence."""
    value = getattr(src, name)
    field = src.DESCRIPTOR.fields_by_name[name]
    if field.is_repeated:
        is_map = field.message_type is not None and field.message_type.GetOptions().map_entry
        if is_map:
            getattr(dst, name).update(value)
        else:
            getattr(dst, name).extend(value)
    elif field.has_presence:
        if src.HasField(name):
            if field.message_type is not None:
                getattr(dst, name).CopyFrom(value)
            else:
                setattr(dst, name, value)
    else:
        setattr(dst, name, value)


def _set_condition(conditions, type_: str, status: str) -> None:
    for c in conditions:
        if c.type == type_:
            if c.status != status:
                c.status = status
                c.last_transition_time.FromDatetime(_now())
            return
    c = conditions.add(type=type_, status=status)
    c.last_transition_time.FromDatetime(_now())
