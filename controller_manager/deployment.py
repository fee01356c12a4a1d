"""The Deployment controller: rolls a pod template out through ReplicaSets.

As kube-controller-manager's, simplified. Each template gets its own
ReplicaSet, ``<deployment>-<pod-template-hash>``. RollingUpdate scales the
new one up and the old ones down within maxSurge / maxUnavailable; Recreate
scales the old ones to zero and waits for their pods to go before the new one
starts. Each reconcile takes one step (scale up, or scale down, or clean up)
and then waits for the caches to show its effect.

Caches lag, so the bounds are computed from what is certain:

* Pods that may exist: per ReplicaSet the most of spec.replicas,
  status.replicas and its live pods in the cache (a ReplicaSet just scaled
  down keeps its pods until its controller deletes them); and the new
  ReplicaSet is not scaled up while any ReplicaSet's status is older than its
  spec.
* Pods surely available: per ReplicaSet the fewest of spec.replicas and its
  available pods in the cache (the ReplicaSet controller deletes unready pods
  first, so scaling down to n keeps min(available, n) of them).
* After writing a ReplicaSet, the deployment is not reconciled again until
  the ReplicaSet informer has seen that write.
"""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from controller_manager import pods as podutil
from controller_manager.base import Controller
from controller_manager.ownership import claim, controlled_by
from minik8s import errors, kinds, selectors
from minik8s.api.v1 import types_pb2 as t
from minik8s.informer import NAMESPACE_INDEX, OWNER_UID_INDEX, index_by_owner_uid
from minik8s.rollout import CHANGE_CAUSE, HASH_LABEL, REVISION, revision_of, without_hash

if TYPE_CHECKING:
    from google.protobuf.internal.containers import RepeatedCompositeFieldContainer

    Conditions = RepeatedCompositeFieldContainer[t.WorkloadCondition]

log = logging.getLogger("minik8s.controller.deployment")

DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # as Kubernetes' SafeEncodeString
HASH_LENGTH = 10

# Progressing condition reasons, as Kubernetes'
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"


# ---------------------------------------------------------------- rollout math (pure)


def scaled_value(value: t.IntOrString, total: int, round_up: bool) -> int:
    """An int, or a percentage of total rounded up or down."""
    if value.WhichOneof("value") != "str_val":
        return value.int_val
    percent = int(value.str_val.removesuffix("%"))
    return -(-percent * total // 100) if round_up else percent * total // 100


def fenceposts(spec: t.DeploymentSpec) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) as pod counts; (0, 0) for Recreate.

    maxSurge rounds up and maxUnavailable down; if both come to 0 (say 10%
    of 5 pods each) maxUnavailable is 1 so the rollout can move, as in
    Kubernetes.
    """
    if spec.strategy.type != "RollingUpdate":
        return 0, 0
    rolling = spec.strategy.rolling_update
    surge = scaled_value(rolling.max_surge, spec.replicas, round_up=True)
    unavailable = scaled_value(rolling.max_unavailable, spec.replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, min(unavailable, spec.replicas)


def new_rs_replicas(replicas: int, max_surge: int, new: int, pods: int) -> int:
    """The new ReplicaSet's next size: toward replicas, with at most replicas+maxSurge pods in all.

    new is its current size, pods how many pods all ReplicaSets may have.
    """
    if new >= replicas:
        return replicas
    room = replicas + max_surge - pods
    return new + max(0, min(room, replicas - new))


def old_rs_replicas(old: list[tuple[int, int]], new: tuple[int, int],
                    min_available: int) -> list[int]:
    """The old ReplicaSets' next sizes (Kubernetes' reconcileOldReplicaSets).

    old (oldest first) and new are (size, surely available) pairs. First the
    old ReplicaSets' unavailable pods go, as far as the new one's unavailable
    pods leave room; then available ones, oldest first, while more than
    min_available pods are available.
    """
    new_size, new_available = new
    room = sum(size for size, _ in old) + new_size - min_available - (new_size - new_available)
    if room <= 0:
        return [size for size, _ in old]
    sizes = drop_unavailable(old, room)
    available = sum(a for _, a in old) + new_available
    return take_oldest_first(sizes, available - min_available)


def drop_unavailable(old: list[tuple[int, int]], limit: int) -> list[int]:
    """Sizes without (up to limit in all) their unavailable pods."""
    sizes = []
    for size, available in old:
        drop = max(0, min(size - available, limit))
        limit -= drop
        sizes.append(size - drop)
    return sizes


def take_oldest_first(sizes: list[int], count: int) -> list[int]:
    """Sizes with count replicas taken off, from the first on."""
    result = []
    for size in sizes:
        take = max(0, min(size, count))
        count -= take
        result.append(size - take)
    return result


def proportional(sizes: list[int], target: int) -> list[int]:
    """target spread over sizes (newest first) in proportion; the newest gets the leftover."""
    if not sizes:
        return []
    total = sum(sizes)
    shares = [size * target // total if total else 0 for size in sizes]
    shares[0] += target - sum(shares)
    return shares


# ---------------------------------------------------------------- templates and revisions


def same_template(a: t.PodTemplateSpec, b: t.PodTemplateSpec) -> bool:
    return without_hash(a) == without_hash(b)


def template_hash(template: t.PodTemplateSpec, collision_count: int = 0) -> str:
    """A short name-safe hash of the template (its hash label ignored)."""
    digest = hashlib.sha256(without_hash(template).SerializeToString(deterministic=True))
    if collision_count:
        digest.update(collision_count.to_bytes(4, "big"))
    n = int.from_bytes(digest.digest()[:8], "big")
    chars = []
    for _ in range(HASH_LENGTH):
        n, i = divmod(n, len(HASH_ALPHABET))
        chars.append(HASH_ALPHABET[i])
    return "".join(chars)


def new_replica_set(d: t.Deployment, revision: int, replicas: int) -> t.ReplicaSet:
    """The ReplicaSet for d's current template, owned by d."""
    h = template_hash(d.spec.template, d.status.collision_count)
    template = t.PodTemplateSpec()
    template.CopyFrom(d.spec.template)
    template.metadata.labels[HASH_LABEL] = h
    selector = t.LabelSelector()
    selector.CopyFrom(d.spec.selector)
    selector.match_labels[HASH_LABEL] = h
    meta = t.ObjectMeta(name=f"{d.metadata.name}-{h}", namespace=d.metadata.namespace,
                        labels=dict(template.metadata.labels),
                        annotations={REVISION: str(revision), **scale_annotations(d),
                                     **change_cause(d)},
                        owner_references=[podutil.controller_ref(d)])
    return t.ReplicaSet(metadata=meta, spec=t.ReplicaSetSpec(
        replicas=replicas, min_ready_seconds=d.spec.min_ready_seconds, selector=selector,
        template=template))


def change_cause(d: t.Deployment) -> dict[str, str]:
    """The deployment's change-cause annotation, which its new ReplicaSet records for
    `rollout history`, as Kubernetes copies it."""
    cause = d.metadata.annotations.get(CHANGE_CAUSE)
    return {CHANGE_CAUSE: cause} if cause is not None else {}


def scale_annotations(d: t.Deployment) -> dict[str, str]:
    """What each scaled ReplicaSet records of the deployment's size, as Kubernetes."""
    surge, _ = fenceposts(d.spec)
    return {DESIRED_REPLICAS: str(d.spec.replicas), MAX_REPLICAS: str(d.spec.replicas + surge)}


# ---------------------------------------------------------------- conditions


def find_condition(conditions: Conditions, type_: str) -> t.WorkloadCondition | None:
    return next((c for c in conditions if c.type == type_), None)


def set_condition(conditions: Conditions, type_: str, status: str, reason: str, message: str,
                  now: datetime.datetime, *, touch: bool = False) -> None:
    """Set a condition in a repeated WorkloadCondition field.

    As Kubernetes: one with the same status and reason is left alone unless
    touch (progress was made: its lastUpdateTime moves); lastTransitionTime
    moves only when the status changes.
    """
    current = find_condition(conditions, type_)
    if current is not None and current.status == status and current.reason == reason \
            and not touch:
        return
    cond = t.WorkloadCondition(type=type_, status=status, reason=reason, message=message)
    cond.last_update_time.FromDatetime(now)
    if current is not None and current.status == status:
        cond.last_transition_time.CopyFrom(current.last_transition_time)
    else:
        cond.last_transition_time.FromDatetime(now)
    if current is None:
        conditions.append(cond)
    else:
        current.CopyFrom(cond)


def progressed(old: t.DeploymentStatus, new: t.DeploymentStatus) -> bool:
    """More updated, ready or available pods, or fewer old ones (Kubernetes' DeploymentProgressing)."""
    return (new.updated_replicas > old.updated_replicas
            or new.replicas - new.updated_replicas < old.replicas - old.updated_replicas
            or new.ready_replicas > old.ready_replicas
            or new.available_replicas > old.available_replicas)


def complete(d: t.Deployment, status: t.DeploymentStatus) -> bool:
    replicas = d.spec.replicas
    return (status.updated_replicas == replicas == status.replicas == status.available_replicas
            and status.observed_generation >= d.metadata.generation)


def timed_out(cond: t.WorkloadCondition | None, deadline: int,
              now: datetime.datetime) -> bool:
    if cond is None or cond.reason == NEW_RS_AVAILABLE:
        return False
    if cond.reason == TIMED_OUT:
        return True
    since = cond.last_update_time.ToDatetime(datetime.UTC)
    return (now - since).total_seconds() > deadline


# ---------------------------------------------------------------- the controller


@dataclass
class Owned:
    """One ReplicaSet of a deployment, with its pods as the cache has them."""

    rs: t.ReplicaSet
    live: int = 0        # pods not terminating
    ready: int = 0
    available: int = 0
    wait: float | None = None  # seconds until another ready pod is available

    @property
    def size(self) -> int:
        return self.rs.spec.replicas

    @property
    def revision(self) -> int:
        return revision_of(self.rs)

    @property
    def settled(self) -> bool:
        """Its status is of its current spec."""
        return self.rs.status.observed_generation >= self.rs.metadata.generation

    @property
    def may_have(self) -> int:
        """Pods it may have now: one scaled down keeps its pods until they are deleted."""
        return max(self.size, self.rs.status.replicas, self.live)

    @property
    def surely_available(self) -> int:
        """Available pods it keeps whatever its controller deletes next."""
        return min(self.size, self.available)


@dataclass
class Rollout:
    """What one reconcile knows and did: the deployment and its ReplicaSets."""

    d: t.Deployment
    new: Owned | None
    old: list[Owned]  # oldest revision first
    note: tuple[str, str] | None = None  # a Progressing reason and message this step caused

    @property
    def all(self) -> list[Owned]:
        return [*self.old, *([self.new] if self.new else [])]

    @property
    def newest_first(self) -> list[Owned]:
        return self.all[::-1]


class DeploymentController(Controller):
    name = "deployment"
    kind = "Deployment"

    def register(self) -> None:
        self.replicasets = self.ctx.informer("ReplicaSet")
        self.pods = self.ctx.informer("Pod")
        for informer in (self.replicasets, self.pods):
            with contextlib.suppress(ValueError):  # another controller added it
                informer.add_index(OWNER_UID_INDEX, index_by_owner_uid)
        self.replicasets.add_handler(self._rs_event, self._rs_event, self._rs_event)
        self.pods.add_handler(self._pod_event, self._pod_event, self._pod_event)
        # deployment key -> resourceVersion of the last write to one of its ReplicaSets
        self._written: dict[str, int] = {}

    # ------------------------------------------------------------ events

    def _rs_event(self, *replicasets: t.ReplicaSet) -> None:
        for rs in replicasets:
            ref = podutil.controller_of(rs)
            if ref is None:
                self._enqueue_selecting(rs)
            elif ref.kind == self.kind:
                self.queue.add(f"{rs.metadata.namespace}/{ref.name}")

    def _enqueue_selecting(self, rs: t.ReplicaSet) -> None:
        """An orphan: every deployment that might adopt it should look."""
        for d in self.primary.by_index(NAMESPACE_INDEX, rs.metadata.namespace):
            if selectors.LabelSelector.from_proto(d.spec.selector).matches(rs.metadata.labels):
                self.enqueue(d)

    def _pod_event(self, *pods: t.Pod) -> None:
        """A pod's readiness or end moves its ReplicaSet's deployment on."""
        for pod in pods:
            ref = podutil.controller_of(pod)
            if ref is None or ref.kind != "ReplicaSet":
                continue
            rs = self.replicasets.get(f"{pod.metadata.namespace}/{ref.name}")
            owner = podutil.controller_of(rs) if rs is not None else None
            if owner is not None and owner.kind == self.kind:
                self.queue.add(f"{pod.metadata.namespace}/{owner.name}")

    # ------------------------------------------------------------ reconcile

    async def reconcile(self, key: str) -> None:
        d = self.primary.get(key)
        if d is None:
            self._written.pop(key, None)
            return
        if not self._seen_own_writes(key):
            return  # the informer's event for that write queues the key again
        try:
            r = await self._observe(d)
            if not d.metadata.HasField("deletion_timestamp"):
                await self._step(r)
            await self._sync_status(r)
        except errors.Conflict as exc:
            # Our cache is behind: the informer event of the newer version queues us again.
            log.debug("reconcile %s: %s", key, exc)

    def _seen_own_writes(self, key: str) -> bool:
        written = self._written.get(key)
        if written is not None and int(self.replicasets.last_resource_version or 0) < written:
            return False
        self._written.pop(key, None)
        return True

    def _wrote(self, d: t.Deployment, rs: t.ReplicaSet) -> None:
        key = kinds.object_key(d)
        self._written[key] = max(self._written.get(key, 0), int(rs.metadata.resource_version))

    async def _observe(self, d: t.Deployment) -> Rollout:
        now = podutil.now()
        owned = [self._owned(rs, d.spec.min_ready_seconds, now) for rs in await self._claim(d)]
        owned.sort(key=lambda o: o.rs.metadata.creation_timestamp.ToNanoseconds())
        new = next((o for o in owned if same_template(o.rs.spec.template, d.spec.template)), None)
        old = sorted((o for o in owned if o is not new),
                     key=lambda o: (o.revision, o.rs.metadata.creation_timestamp.ToNanoseconds()))
        return Rollout(d, new, old)

    def _owned(self, rs: t.ReplicaSet, min_ready: int, now: datetime.datetime) -> Owned:
        uid = rs.metadata.uid
        live = [p for p in self.pods.by_index(OWNER_UID_INDEX, uid)
                if podutil.is_active(p) and controlled_by(p, uid)]
        ages = [(now - since).total_seconds() for p in live
                if (since := podutil.ready_since(p)) is not None]
        waits = [min_ready - age for age in ages if age < min_ready]
        return Owned(rs, live=len(live), ready=len(ages), available=len(ages) - len(waits),
                     wait=min(waits, default=None))

    async def _claim(self, d: t.Deployment) -> list[t.ReplicaSet]:
        """d's ReplicaSets, adopting matching orphans and releasing what no longer matches."""
        return await claim(self.ctx.api, d,
                           self.replicasets.by_index(NAMESPACE_INDEX, d.metadata.namespace),
                           on_write=lambda rs: self._wrote(d, rs))

    # ------------------------------------------------------------ one step

    async def _step(self, r: Rollout) -> None:
        if await self._sync_new_rs(r):
            return
        if r.d.spec.paused:
            acted = await self._scale_paused(r)
        elif r.d.spec.strategy.type == "Recreate":
            acted = await self._recreate(r)
        else:
            acted = await self._roll(r)
        if not acted:
            await self._clean_history(r)

    async def _sync_new_rs(self, r: Rollout) -> bool:
        """The new ReplicaSet has the newest revision, d's minReadySeconds and change-cause.

        A rollback makes an old ReplicaSet the new one: it gets a new revision,
        and the progress deadline starts counting.
        """
        if r.new is None:
            return False
        rs = r.new.rs.__deepcopy__()
        revision = max((o.revision for o in r.old), default=0) + 1
        if r.new.revision < revision:
            rs.metadata.annotations[REVISION] = str(revision)
            r.note = (RS_UPDATED, f'ReplicaSet "{rs.metadata.name}" is progressing.')
        rs.spec.min_ready_seconds = r.d.spec.min_ready_seconds
        rs.metadata.annotations.update(change_cause(r.d))
        if rs == r.new.rs:
            return False
        r.new.rs = await self.ctx.api.update(rs)
        self._wrote(r.d, r.new.rs)
        return True

    async def _roll(self, r: Rollout) -> bool:
        """One RollingUpdate step: scale the new ReplicaSet up, else the old ones down."""
        d = r.d
        surge, unavailable = fenceposts(d.spec)
        settled = all(o.settled for o in r.all)
        pods = sum(o.may_have for o in r.all)
        if r.new is None:
            await self._create_new(r, new_rs_replicas(d.spec.replicas, surge, 0, pods)
                                   if settled else 0)
            return True
        target = new_rs_replicas(d.spec.replicas, surge, r.new.size, pods)
        # up only once every ReplicaSet's status is of its current spec (see may_have)
        if target < r.new.size or (target > r.new.size and settled):
            await self._scale(r, r.new, target)
            return True
        sizes = old_rs_replicas([(o.size, o.surely_available) for o in r.old],
                                (r.new.size, r.new.surely_available),
                                d.spec.replicas - unavailable)
        changed = [(o, size) for o, size in zip(r.old, sizes, strict=True) if size != o.size]
        for o, size in changed:
            await self._scale(r, o, size)
        return bool(changed)

    async def _recreate(self, r: Rollout) -> bool:
        """One Recreate step: old ReplicaSets to 0; once their pods are gone, the new one up.

        A pod being deleted counts as gone: it is stopping, and without a
        kubelet (as in tests) it would stay until deleted with grace 0.
        """
        running = [o for o in r.old if o.size > 0]
        for o in running:
            await self._scale(r, o, 0)
        if running or any(o.may_have > 0 or not o.settled for o in r.old):
            return bool(running)  # the old pods' deletion queues the deployment again
        if r.new is None:
            await self._create_new(r, r.d.spec.replicas)
            return True
        if r.new.size != r.d.spec.replicas:
            await self._scale(r, r.new, r.d.spec.replicas)
            return True
        return False

    async def _scale_paused(self, r: Rollout) -> bool:
        """Paused: no rollout, but a new spec.replicas still applies (Kubernetes' sync).

        With one active ReplicaSet (or none: then the newest) it gets
        spec.replicas; when paused mid-rollout, a changed spec.replicas is
        spread over the active ones in proportion.
        """
        d = r.d
        active = [o for o in r.newest_first if o.size > 0]
        if len(active) <= 1:
            target = active[0] if active else (r.new or next(iter(r.newest_first), None))
            if target is None or target.size == d.spec.replicas:
                return False
            await self._scale(r, target, d.spec.replicas)
            return True
        if all(o.rs.metadata.annotations.get(DESIRED_REPLICAS) == str(d.spec.replicas)
               for o in active):
            return False
        surge, _ = fenceposts(d.spec)
        sizes = proportional([o.size for o in active], d.spec.replicas + surge)
        for o, size in zip(active, sizes, strict=True):
            await self._scale(r, o, size)
        return True

    async def _create_new(self, r: Rollout, replicas: int) -> None:
        revision = max((o.revision for o in r.old), default=0) + 1
        rs = new_replica_set(r.d, revision, replicas)
        try:
            created = await self.ctx.api.create(rs)
        except errors.AlreadyExists:
            await self._collided(r, rs.metadata.name)
            return
        self._wrote(r.d, created)
        r.new = Owned(created)
        name = created.metadata.name
        r.note = (NEW_RS_CREATED, f'Created new replica set "{name}"')
        if replicas > 0:
            self.ctx.record(r.d, "Normal", "ScalingReplicaSet",
                            f"Scaled up replica set {name} to {replicas}")

    async def _collided(self, r: Rollout, name: str) -> None:
        """The new ReplicaSet's name is taken: ours not yet cached, or a hash collision.

        On a collision the deployment's collisionCount goes up, which changes
        the hash (as Kubernetes).
        """
        existing = await self.ctx.api.get("ReplicaSet", name, r.d.metadata.namespace)
        if controlled_by(existing, r.d.metadata.uid) and \
                same_template(existing.spec.template, r.d.spec.template):
            self._wrote(r.d, existing)
            return
        d = r.d.__deepcopy__()
        d.status.collision_count = d.status.collision_count + 1
        r.d = await self.ctx.api.update_status(d)

    async def _scale(self, r: Rollout, o: Owned, size: int) -> None:
        rs = o.rs.__deepcopy__()
        rs.spec.replicas = size
        rs.metadata.annotations.update(scale_annotations(r.d))
        if rs == o.rs:
            return
        before = o.size
        o.rs = await self.ctx.api.update(rs)
        self._wrote(r.d, o.rs)
        if size != before:
            self.ctx.record(r.d, "Normal", "ScalingReplicaSet",
                            f"Scaled {'up' if size > before else 'down'} replica set "
                            f"{rs.metadata.name} to {size}")

    async def _clean_history(self, r: Rollout) -> None:
        """Delete the oldest old ReplicaSets beyond revisionHistoryLimit, if they have no pods."""
        alive = [o for o in r.old if not o.rs.metadata.HasField("deletion_timestamp")]
        for o in alive[:max(0, len(alive) - r.d.spec.revision_history_limit)]:
            if o.size or o.may_have or not o.settled:
                continue
            with contextlib.suppress(errors.NotFound):
                await self.ctx.api.delete("ReplicaSet", o.rs.metadata.name,
                                          o.rs.metadata.namespace,
                                          resource_version=o.rs.metadata.resource_version)

    # ------------------------------------------------------------ status

    async def _sync_status(self, r: Rollout) -> None:
        d = r.d
        if r.new is not None and d.metadata.annotations.get(REVISION) != str(r.new.revision):
            changed = d.__deepcopy__()
            changed.metadata.annotations[REVISION] = str(r.new.revision)
            d = await self.ctx.api.update(changed)
        now = podutil.now()
        status = self._status(r, d, now)
        if status != d.status:
            changed = d.__deepcopy__()
            changed.status.CopyFrom(status)
            await self.ctx.api.update_status(changed)
        self._requeue(r, status, now)

    def _status(self, r: Rollout, d: t.Deployment, now: datetime.datetime) -> t.DeploymentStatus:
        available = sum(o.available for o in r.all)
        status = t.DeploymentStatus(
            observed_generation=d.metadata.generation,
            replicas=sum(o.live for o in r.all),
            updated_replicas=r.new.live if r.new else 0,
            ready_replicas=sum(o.ready for o in r.all),
            available_replicas=available,
            unavailable_replicas=max(0, sum(o.size for o in r.all) - available),
            conditions=d.status.conditions)
        if d.status.HasField("collision_count"):
            status.collision_count = d.status.collision_count
        _, max_unavailable = fenceposts(d.spec)
        if available >= d.spec.replicas - max_unavailable:
            set_condition(status.conditions, "Available", "True", "MinimumReplicasAvailable",
                          "Deployment has minimum availability.", now)
        else:
            set_condition(status.conditions, "Available", "False", "MinimumReplicasUnavailable",
                          "Deployment does not have minimum availability.", now)
        self._progress(r, d, status, now)
        return status

    def _progress(self, r: Rollout, d: t.Deployment, status: t.DeploymentStatus,
                  now: datetime.datetime) -> None:
        """The Progressing condition (Kubernetes' syncRolloutStatus and checkPausedConditions)."""
        conditions = status.conditions
        cond = find_condition(conditions, "Progressing")
        if d.spec.paused:
            set_condition(conditions, "Progressing", "Unknown", PAUSED, "Deployment is paused",
                          now)
            return
        if cond is not None and cond.reason == PAUSED:
            set_condition(conditions, "Progressing", "Unknown", RESUMED,
                          "Deployment is resumed", now)
        subject = (f'ReplicaSet "{r.new.rs.metadata.name}"' if r.new
                   else f'Deployment "{d.metadata.name}"')
        if r.note is not None:
            set_condition(conditions, "Progressing", "True", *r.note, now, touch=True)
        elif cond is None and r.new is not None:
            set_condition(conditions, "Progressing", "True", FOUND_NEW_RS,
                          f'Found new replica set "{r.new.rs.metadata.name}"', now)
        elif cond is not None and cond.reason == NEW_RS_AVAILABLE and \
                status.replicas == status.updated_replicas:
            return  # complete: nothing to watch until the next rollout
        elif complete(d, status):
            set_condition(conditions, "Progressing", "True", NEW_RS_AVAILABLE,
                          f"{subject} has successfully progressed.", now)
        elif progressed(d.status, status):
            set_condition(conditions, "Progressing", "True", RS_UPDATED,
                          f"{subject} is progressing.", now, touch=True)
        elif timed_out(cond, d.spec.progress_deadline_seconds, now):
            set_condition(conditions, "Progressing", "False", TIMED_OUT,
                          f"{subject} has timed out progressing.", now)

    def _requeue(self, r: Rollout, status: t.DeploymentStatus, now: datetime.datetime) -> None:
        """Look again when a ready pod becomes available, or when the progress deadline passes."""
        waits = [o.wait for o in r.all if o.wait is not None]
        cond = find_condition(status.conditions, "Progressing")
        if cond is not None and cond.status != "False" and \
                cond.reason not in (NEW_RS_AVAILABLE, PAUSED):
            since = cond.last_update_time.ToDatetime(datetime.UTC)
            waits.append(r.d.spec.progress_deadline_seconds - (now - since).total_seconds())
        if waits:
            self.queue.add_after(kinds.object_key(r.d), max(min(waits), 0) + 0.05)
