"""The StatefulSet controller: pods with a stable identity, as Kubernetes'.

Each pod of a StatefulSet ``web`` has an ordinal and a name of its own,
``web-0`` .. ``web-<replicas-1>``; it is always made again under that name
(hostname ``web-<n>``, subdomain the set's serviceName). For each of the
set's volumeClaimTemplates it gets a volume of that template's name whose
claim is ``<template>-web-<n>``: no PersistentVolumeClaim objects exist, the
claim name is what identifies the storage (the kubelet keeps it in a Docker
volume of that name on the node, see docs/kubelet.md), so a pod made again
finds its data.

One pass (Kubernetes' updateStatefulSet, in the order it does things):

1. Replicas, by ordinal: a missing one is created, a finished (Failed or
   Succeeded) one deleted to be made again. With OrderedReady the pass stops
   at the first pod created or deleted, and at the first pod that is not
   healthy (Running and Ready for minReadySeconds, not terminating): each
   pod is created only once all of its predecessors are healthy. With
   Parallel every missing pod is created at once.
2. Pods whose ordinal is >= replicas (condemned), from the highest: with
   OrderedReady only once every replica is healthy, one at a time, each once
   the one above it is gone; with Parallel all at once.
3. RollingUpdate: from the highest ordinal down to ``partition``, the first
   pod not at the update revision is deleted (and step 1 makes it again at
   that revision); the pass stops there, and at any pod not healthy, so one
   pod is updated at a time, each once the one above it is Ready again.
   OnDelete: nothing; only pods made again get the new template.

Revisions are not ControllerRevision objects but ``<set>-<hash of the pod
template>``, the pods' ``controller-revision-hash`` label.
status.currentRevision moves to the update revision once every pod is at it
and Ready. A pod made again below the partition gets the current revision's
template, which is read back from a pod still at that revision (and checked
against its hash); if no such pod is left, it gets the update revision.

Expectations, as the ReplicaSet's, keep a slow watch from making the
controller act twice; names are stable, so a second create could only fail
anyway.
"""
from __future__ import annotations

import asyncio
import datetime
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from controller_manager import pods as podutil
from controller_manager.base import write_status
from controller_manager.deployment import template_hash
from controller_manager.ownership import claim, controlled_by
from controller_manager.podowner import PodOwnerController
from minik8s import errors, selectors
from minik8s.api.v1 import types_pb2 as t
from minik8s.informer import NAMESPACE_INDEX

log = logging.getLogger("minik8s.controller.statefulset")

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
REVISION_LABEL = "controller-revision-hash"
IDENTITY_LABELS = (POD_NAME_LABEL, POD_INDEX_LABEL, REVISION_LABEL)
FINISHED_PHASES = ("Succeeded", "Failed")

_MEMBER = re.compile(r"(.*)-(0|[1-9][0-9]*)")


# ---------------------------------------------------------------- identity (pure)

def pod_name(set_name: str, ordinal: int) -> str:
    return f"{set_name}-{ordinal}"


def ordinal_of(set_name: str, name: str) -> int | None:
    """The ordinal of a pod of set_name by its name ("web-2" -> 2); None if not one.

    Only the canonical form counts: "web-02" is no pod of web's.
    """
    match = _MEMBER.fullmatch(name)
    if match is None or match.group(1) != set_name:
        return None
    return int(match.group(2))


def claim_name(template: str, set_name: str, ordinal: int) -> str:
    """The claim a pod's volume of a claim template names: <template>-<set>-<ordinal>."""
    return f"{template}-{pod_name(set_name, ordinal)}"


# ---------------------------------------------------------------- revisions (pure)

def revision_template(template: t.PodTemplateSpec) -> t.PodTemplateSpec:
    """What of a template reaches its pods, and so what its revision is a hash of."""
    meta = template.metadata
    return t.PodTemplateSpec(
        metadata=t.ObjectMeta(labels=meta.labels, annotations=meta.annotations,
                              finalizers=meta.finalizers),
        spec=template.spec)


def revision_name(set_name: str, template: t.PodTemplateSpec) -> str:
    """<set>-<hash of the template>, as Kubernetes names a ControllerRevision."""
    return f"{set_name}-{template_hash(revision_template(template))}"


def update_revision(sts: t.StatefulSet) -> str:
    return revision_name(sts.metadata.name, sts.spec.template)


def revision_of(pod: t.Pod) -> str:
    return pod.metadata.labels.get(REVISION_LABEL, "")


def new_pod(sts: t.StatefulSet, template: t.PodTemplateSpec, revision: str,
            ordinal: int) -> t.Pod:
    """The pod of sts with this ordinal, from template (of that revision)."""
    name = pod_name(sts.metadata.name, ordinal)
    pod = t.Pod(metadata=revision_template(template).metadata, spec=template.spec)
    pod.metadata.name = name
    pod.metadata.namespace = sts.metadata.namespace
    pod.metadata.labels.update({POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal),
                                REVISION_LABEL: revision})
    pod.metadata.owner_references.append(podutil.controller_ref(sts))
    pod.spec.hostname = name
    pod.spec.subdomain = sts.spec.service_name
    claims = [t.Volume(name=c.metadata.name,
                       persistent_volume_claim=t.PersistentVolumeClaimVolumeSource(
                           claim_name=claim_name(c.metadata.name, sts.metadata.name, ordinal)))
              for c in sts.spec.volume_claim_templates]
    # a claim replaces a template volume of the same name, as Kubernetes' updateStorage
    others = [v for v in pod.spec.volumes if v.name not in {c.name for c in claims}]
    del pod.spec.volumes[:]
    pod.spec.volumes.extend([*claims, *others])
    return pod


def template_of(sts: t.StatefulSet, pod: t.Pod) -> t.PodTemplateSpec:
    """The template pod was made from, read back: new_pod undone."""
    template = t.PodTemplateSpec(metadata=t.ObjectMeta(
        labels={k: v for k, v in pod.metadata.labels.items() if k not in IDENTITY_LABELS},
        annotations=pod.metadata.annotations, finalizers=pod.metadata.finalizers),
        spec=pod.spec)
    spec = template.spec
    for name in ("node_name", "hostname", "subdomain"):
        spec.ClearField(name)
    claims = {c.metadata.name for c in sts.spec.volume_claim_templates}
    kept = [v for v in spec.volumes if v.name not in claims]
    del spec.volumes[:]
    spec.volumes.extend(kept)
    return template


def recover_template(sts: t.StatefulSet, pods: Iterable[t.Pod],
                     revision: str) -> t.PodTemplateSpec | None:
    """The template of an earlier revision, from a pod at it whose template hashes right."""
    for pod in pods:
        if revision_of(pod) != revision:
            continue
        template = template_of(sts, pod)
        if revision_name(sts.metadata.name, template) == revision:
            return template
    return None


# ---------------------------------------------------------------- pod state (pure)

def finished(pod: t.Pod) -> bool:
    return pod.status.phase in FINISHED_PHASES


def running_and_ready(pod: t.Pod) -> bool:
    return pod.status.phase == "Running" and podutil.is_ready(pod)


def healthy(pod: t.Pod, min_ready_seconds: int, now: datetime.datetime) -> bool:
    """Running, Ready for minReadySeconds, and not terminating."""
    return (pod.status.phase == "Running" and not podutil.is_terminating(pod)
            and podutil.is_available(pod, min_ready_seconds, now))


# ---------------------------------------------------------------- one pass (pure)

@dataclass
class Members:
    """A set's pods by ordinal: those it keeps, and those above replicas."""

    replicas: dict[int, t.Pod]
    condemned: list[t.Pod]  # highest ordinal first


def members(set_name: str, replicas: int, pods: Iterable[t.Pod]) -> Members:
    kept, condemned = {}, []
    for pod in pods:
        ordinal = ordinal_of(set_name, pod.metadata.name)
        if ordinal is None:
            continue
        if ordinal < replicas:
            kept[ordinal] = pod
        else:
            condemned.append((ordinal, pod))
    return Members(kept, [pod for _, pod in sorted(condemned, key=lambda p: -p[0])])


@dataclass(frozen=True)
class Policy:
    """What a pass of one StatefulSet follows."""

    replicas: int
    ordered: bool = True          # OrderedReady (False: Parallel)
    rolling: bool = True          # RollingUpdate (False: OnDelete)
    partition: int = 0
    update_revision: str = ""
    min_ready_seconds: int = 0

    @classmethod
    def of(cls, sts: t.StatefulSet) -> Policy:
        spec = sts.spec
        return cls(replicas=spec.replicas, ordered=spec.pod_management_policy != "Parallel",
                   rolling=spec.update_strategy.type != "OnDelete",
                   partition=spec.update_strategy.rolling_update.partition,
                   update_revision=update_revision(sts),
                   min_ready_seconds=spec.min_ready_seconds)


@dataclass
class Plan:
    """What one pass does."""

    create: list[int] = field(default_factory=list)       # ordinals
    recreate: list[t.Pod] = field(default_factory=list)   # finished pods, deleted to be made again
    delete: list[t.Pod] = field(default_factory=list)     # condemned or out of date

    def __bool__(self) -> bool:
        return bool(self.create or self.recreate or self.delete)


def plan(m: Members, policy: Policy, now: datetime.datetime) -> Plan:
    """The pass's creations and deletions (see the module doc)."""
    result = Plan()
    if _replicas(m, policy, now, result) and _condemned(m, policy, result) and policy.rolling:
        _roll(m, policy, now, result)
    return result


def _replicas(m: Members, policy: Policy, now: datetime.datetime, result: Plan) -> bool:
    """Step 1; whether the pass goes on."""
    for ordinal in range(policy.replicas):
        pod = m.replicas.get(ordinal)
        if pod is None:
            result.create.append(ordinal)
        elif finished(pod) and not podutil.is_terminating(pod):
            result.recreate.append(pod)
        elif not policy.ordered or healthy(pod, policy.min_ready_seconds, now):
            continue
        if policy.ordered:
            return False
    return True


def _condemned(m: Members, policy: Policy, result: Plan) -> bool:
    """Step 2; whether the pass goes on."""
    for pod in m.condemned:
        if not podutil.is_terminating(pod):
            result.delete.append(pod)
        if policy.ordered:
            return False
    return True


def _roll(m: Members, policy: Policy, now: datetime.datetime, result: Plan) -> None:
    """Step 3: one out-of-date pod at a time, from the highest ordinal to the partition."""
    for ordinal in range(policy.replicas - 1, policy.partition - 1, -1):
        pod = m.replicas.get(ordinal)
        if pod is None or pod in result.recreate:
            return  # being made: not healthy yet
        if revision_of(pod) != policy.update_revision and not podutil.is_terminating(pod):
            result.delete.append(pod)
            return
        if not healthy(pod, policy.min_ready_seconds, now):
            return


Revision = tuple[t.PodTemplateSpec, str]  # a template and its revision name


def current_template(sts: t.StatefulSet, pods: Iterable[t.Pod], current: str) -> Revision | None:
    """The current revision's template, if it is not the update revision's and a pod
    still has it."""
    if current == update_revision(sts):
        return None
    template = recover_template(sts, pods, current)
    return None if template is None else (template, current)


def below_partition(sts: t.StatefulSet, ordinal: int) -> bool:
    """Whether a RollingUpdate leaves this ordinal at the current revision."""
    strategy = sts.spec.update_strategy
    return strategy.type != "OnDelete" and ordinal < strategy.rolling_update.partition


def template_for(sts: t.StatefulSet, ordinal: int, current: Revision | None) -> Revision:
    """(template, revision) of a pod made now: below a RollingUpdate's partition the
    current revision's (when known), else the update revision's."""
    if current is not None and below_partition(sts, ordinal):
        return current
    return sts.spec.template, update_revision(sts)


def stateful_status(sts: t.StatefulSet, pods: Sequence[t.Pod], current_revision: str,
                    now: datetime.datetime) -> t.StatefulSetStatus:
    """The status counts, as Kubernetes' (every pod of the set counts in replicas)."""
    update = update_revision(sts)
    status = t.StatefulSetStatus(observed_generation=sts.metadata.generation,
                                 current_revision=current_revision, update_revision=update,
                                 conditions=sts.status.conditions)
    if sts.status.HasField("collision_count"):
        status.collision_count = sts.status.collision_count
    for pod in pods:
        status.replicas += 1
        if running_and_ready(pod):
            status.ready_replicas += 1
            status.available_replicas += podutil.is_available(pod, sts.spec.min_ready_seconds,
                                                              now)
        if not podutil.is_terminating(pod):
            status.current_replicas += revision_of(pod) == current_revision
            status.updated_replicas += revision_of(pod) == update
    if status.updated_replicas == status.replicas == status.ready_replicas:
        # the rollout is complete: the update revision is the current one
        status.current_revision = update
        status.current_replicas = status.updated_replicas
    return status


# ---------------------------------------------------------------- controller

class StatefulSetController(PodOwnerController):
    name = "statefulset"
    kind = "StatefulSet"

    def might_adopt(self, owner: t.StatefulSet, pod: t.Pod) -> bool:
        return ordinal_of(owner.metadata.name, pod.metadata.name) is not None and \
            selectors.LabelSelector.from_proto(owner.spec.selector).matches(pod.metadata.labels)

    # ------------------------------------------------------------ reconcile

    async def reconcile(self, key: str) -> None:
        sts = self.primary.get(key)
        if sts is None:
            self.creations.forget(key)
            self.deletions.forget(key)
            return
        name = sts.metadata.name
        candidates = [p for p in self.pods.by_index(NAMESPACE_INDEX, sts.metadata.namespace)
                      if ordinal_of(name, p.metadata.name) is not None]
        mine = await claim(self.ctx.api, sts, candidates, adoptable=podutil.is_active)
        current = sts.status.current_revision or update_revision(sts)
        now = podutil.now()
        if self.creations.satisfied(key) and self.deletions.satisfied(key) and \
                not podutil.is_terminating(sts):
            await self._sync(key, sts, mine, current, now)
        await self._update_status(key, sts, stateful_status(sts, mine, current, now))

    async def _sync(self, key: str, sts: t.StatefulSet, mine: list[t.Pod], current: str,
                    now: datetime.datetime) -> None:
        policy = Policy.of(sts)
        todo = plan(members(sts.metadata.name, policy.replicas, mine), policy, now)
        if not todo:
            return
        for pod in todo.recreate:
            self.ctx.record(sts, "Warning", "RecreatingFailedPod",
                            f"StatefulSet {key} is recreating failed Pod {pod.metadata.name}")
        pods = self._new_pods(key, sts, todo.create, mine, current)
        await asyncio.gather(self._create(key, sts, pods),
                             self._delete(key, sts, [*todo.recreate, *todo.delete]))

    def _new_pods(self, key: str, sts: t.StatefulSet, ordinals: list[int], mine: list[t.Pod],
                  current: str) -> list[t.Pod]:
        known = current_template(sts, mine, current) if ordinals else None
        if known is None and current != update_revision(sts) and \
                any(below_partition(sts, o) for o in ordinals):
            log.warning("%s: no pod left at revision %s to read its template from; new pods "
                        "below the partition get the update revision", key, current)
        return [new_pod(sts, *template_for(sts, o, known), o) for o in ordinals]

    async def _create(self, key: str, sts: t.StatefulSet, pods: list[t.Pod]) -> None:
        if not pods:
            return
        self.creations.expect_creations(key, len(pods))
        results = await asyncio.gather(*(self.ctx.api.create(p) for p in pods),
                                       return_exceptions=True)
        failures = []
        for pod, result in zip(pods, results, strict=True):
            name = pod.metadata.name
            if isinstance(result, BaseException):
                self.creations.creation_observed(key)  # never to be observed otherwise
                if not self._ours_on_the_way(sts, pod, result):
                    self.ctx.record(sts, "Warning", "FailedCreate",
                                    f"create Pod {name} in StatefulSet {sts.metadata.name} "
                                    f"failed error: {result}")
                    failures.append(result)
            else:
                self.ctx.record(sts, "Normal", "SuccessfulCreate",
                                f"create Pod {name} in StatefulSet {sts.metadata.name} "
                                "successful")
        if failures:
            raise failures[0]

    def _ours_on_the_way(self, sts: t.StatefulSet, pod: t.Pod, error: BaseException) -> bool:
        """A create that found the name taken by a pod of ours the cache has not shown yet."""
        if not isinstance(error, errors.AlreadyExists):
            return False
        cached = self.pods.get(f"{pod.metadata.namespace}/{pod.metadata.name}")
        return cached is None or controlled_by(cached, sts.metadata.uid)

    async def _delete(self, key: str, sts: t.StatefulSet, doomed: list[t.Pod]) -> None:
        if not doomed:
            return
        self.deletions.expect_deletions(key, [p.metadata.uid for p in doomed])
        results = await asyncio.gather(
            *(self.ctx.api.delete("Pod", p.metadata.name, p.metadata.namespace)
              for p in doomed), return_exceptions=True)
        failures = []
        for pod, result in zip(doomed, results, strict=True):
            if isinstance(result, BaseException):
                self.deletions.deletion_observed(key, pod.metadata.uid)
                if not isinstance(result, errors.NotFound):
                    failures.append(result)
            else:
                self.ctx.record(sts, "Normal", "SuccessfulDelete",
                                f"delete Pod {pod.metadata.name} in StatefulSet "
                                f"{sts.metadata.name} successful")
        if failures:
            raise failures[0]

    async def _update_status(self, key: str, sts: t.StatefulSet,
                             status: t.StatefulSetStatus) -> None:
        if status.ready_replicas > status.available_replicas:
            # look again once they have been ready for minReadySeconds
            self.queue.add_after(key, sts.spec.min_ready_seconds)
        await write_status(self.ctx.api, sts, status)
