"""Deployment rollouts as a client sees them: revisions, history, rollback, status
(and the status of StatefulSet rollouts).

A Deployment's history is its ReplicaSets: each carries the revision of the
template it runs in an annotation the Deployment controller writes. What is
here is shared by `minictl rollout` and the controller (the annotation names,
how a ReplicaSet's revision and template are read) and runs only as a client:
rolling back is an ordinary update of the Deployment's template, which the
controller then rolls out.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from minik8s import errors
from minik8s.api.v1 import types_pb2 as t
from minik8s.retry import retry_on_conflict

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from minik8s.client import ApiClient

REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"
CHANGE_CAUSE = "kubernetes.io/change-cause"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"


class NoRevision(errors.NotFound):
    """The revision asked for is not in the Deployment's history."""


class Paused(errors.Invalid):
    """A paused Deployment cannot be rolled back."""


class RolloutFailed(Exception):
    """The rollout cannot finish: its progress deadline passed."""


class NoRolloutStatus(Exception):
    """The object's rollout has no status to follow (a StatefulSet updated OnDelete)."""


# ---------------------------------------------------------------- revisions (pure)


def revision_of(obj: Message) -> int:
    """The revision annotation of a ReplicaSet or Deployment; 0 if missing or bad."""
    try:
        return int(obj.metadata.annotations.get(REVISION, "0"))
    except ValueError:
        return 0


def without_hash(template: t.PodTemplateSpec) -> t.PodTemplateSpec:
    """A copy of a ReplicaSet's template without the pod-template-hash label."""
    copy = t.PodTemplateSpec()
    copy.CopyFrom(template)
    copy.metadata.labels.pop(HASH_LABEL, None)
    return copy


def controlled_by(obj: Message, uid: str) -> bool:
    """Whether obj's controller ownerReference points at uid."""
    return any(r.controller and r.uid == uid for r in obj.metadata.owner_references)


@dataclass(frozen=True)
class Revision:
    number: int
    change_cause: str
    replica_set: t.ReplicaSet


def history(replicasets: list[t.ReplicaSet]) -> list[Revision]:
    """A Deployment's revisions, oldest first, from its ReplicaSets."""
    revisions = [Revision(revision_of(rs), rs.metadata.annotations.get(CHANGE_CAUSE, ""), rs)
                 for rs in replicasets]
    return sorted(revisions, key=lambda r: (r.number, r.replica_set.metadata.name))


def revision_to_restore(replicasets: list[t.ReplicaSet], to_revision: int,
                        name: str = "") -> t.ReplicaSet:
    """The ReplicaSet of to_revision; 0 is the revision before the latest (kubectl's)."""
    by_revision = {revision_of(rs): rs for rs in replicasets}
    if to_revision == 0:
        revisions = sorted(by_revision)
        if len(revisions) < 2:
            what = f' for deployment "{name}"' if name else ""
            raise NoRevision(f"no rollout history found{what}")
        to_revision = revisions[-2]
    if to_revision not in by_revision:
        raise NoRevision(f"unable to find specified revision {to_revision} in history")
    return by_revision[to_revision]


def status(d: t.Deployment) -> tuple[str, bool]:
    """kubectl rollout status' line for a Deployment, and whether the rollout is done.

    RolloutFailed when the controller reports the progress deadline exceeded.
    """
    name = d.metadata.name
    st = d.status
    if d.metadata.generation > st.observed_generation:
        return "Waiting for deployment spec update to be observed...", False
    progressing = next((c for c in st.conditions if c.type == "Progressing"), None)
    if progressing is not None and progressing.reason == PROGRESS_DEADLINE_EXCEEDED:
        raise RolloutFailed(f'deployment "{name}" exceeded its progress deadline')
    replicas = d.spec.replicas if d.spec.HasField("replicas") else 1
    waiting = f'Waiting for deployment "{name}" rollout to finish: '
    if st.updated_replicas < replicas:
        return (f"{waiting}{st.updated_replicas} out of {replicas} new replicas have been "
                "updated..."), False
    if st.replicas > st.updated_replicas:
        return (f"{waiting}{st.replicas - st.updated_replicas} old replicas are pending "
                "termination..."), False
    if st.available_replicas < st.updated_replicas:
        return (f"{waiting}{st.available_replicas} of {st.updated_replicas} updated replicas "
                "are available..."), False
    return f'deployment "{name}" successfully rolled out', True


def statefulset_status(sts: t.StatefulSet) -> tuple[str, bool]:
    """kubectl rollout status' line for a StatefulSet, and whether the rollout is done.

    NoRolloutStatus for OnDelete. kubectl reports a partitioned rollout whenever
    rollingUpdate is set, which the apiserver here always sets (partition 0):
    this reports one only for a partition above 0.
    """
    spec, st = sts.spec, sts.status
    if spec.update_strategy.type not in ("", "RollingUpdate"):
        raise NoRolloutStatus("rollout status is only available for RollingUpdate strategy "
                              "type")
    if st.observed_generation == 0 or sts.metadata.generation > st.observed_generation:
        return "Waiting for statefulset spec update to be observed...", False
    replicas = spec.replicas if spec.HasField("replicas") else 1
    if st.ready_replicas < replicas:
        return f"Waiting for {replicas - st.ready_replicas} pods to be ready...", False
    partition = spec.update_strategy.rolling_update.partition
    if partition > 0:
        if st.updated_replicas < replicas - partition:
            return ("Waiting for partitioned roll out to finish: "
                    f"{st.updated_replicas} out of {replicas - partition} new pods have been "
                    "updated..."), False
        return (f"partitioned roll out complete: {st.updated_replicas} new pods have been "
                "updated..."), True
    if st.update_revision != st.current_revision:
        return ("waiting for statefulset rolling update to complete "
                f"{st.updated_replicas} pods at revision {st.update_revision}..."), False
    return ("statefulset rolling update complete "
            f"{st.current_replicas} pods at revision {st.current_revision}..."), True


def daemonset_status(ds: t.DaemonSet) -> tuple[str, bool]:
    """kubectl rollout status' line for a DaemonSet, and whether the rollout is done."""
    st, name = ds.status, ds.metadata.name
    if ds.metadata.generation > st.observed_generation:
        return "Waiting for daemon set spec update to be observed...", False
    waiting = f'Waiting for daemon set "{name}" rollout to finish: '
    if st.updated_number_scheduled < st.desired_number_scheduled:
        return (f"{waiting}{st.updated_number_scheduled} out of {st.desired_number_scheduled} "
                "new pods have been updated..."), False
    if st.number_available < st.desired_number_scheduled:
        return (f"{waiting}{st.number_available} of {st.desired_number_scheduled} updated pods "
                "are available..."), False
    return f'daemon set "{name}" successfully rolled out', True


def status_of(obj: Message) -> tuple[str, bool]:
    """rollout status' line for a Deployment, a StatefulSet or a DaemonSet."""
    if isinstance(obj, t.StatefulSet):
        return statefulset_status(obj)
    if isinstance(obj, t.DaemonSet):
        return daemonset_status(obj)
    return status(obj)


# ---------------------------------------------------------------- against the API


async def owned_replica_sets(client: ApiClient, d: t.Deployment) -> list[t.ReplicaSet]:
    """The ReplicaSets d controls."""
    replicasets, _ = await client.list("ReplicaSet", d.metadata.namespace)
    return [rs for rs in replicasets if controlled_by(rs, d.metadata.uid)]


@dataclass(frozen=True)
class Rollback:
    deployment: t.Deployment  # as updated (unchanged if skipped)
    revision: int             # the revision whose template it now has
    changed: bool             # False: it already had that template


async def roll_back(client: ApiClient, namespace: str, name: str,
                    to_revision: int = 0) -> Rollback:
    """Put an earlier revision's pod template back (``kubectl rollout undo``).

    to_revision 0 is the revision before the latest. The controller then
    rolls that template out again, reusing its ReplicaSet under a new
    revision number. NoRevision if there is no such revision, Paused if the
    Deployment is paused.
    """
    async def attempt() -> Rollback:
        d = await client.get("Deployment", name, namespace)
        if d.spec.paused:
            raise Paused("you cannot rollback a paused deployment; resume it first with "
                         f"'minictl rollout resume deployment/{name}' and try again")
        rs = revision_to_restore(await owned_replica_sets(client, d), to_revision, name)
        template = without_hash(rs.spec.template)
        if template == d.spec.template:
            return Rollback(d, revision_of(rs), changed=False)
        d.spec.template.CopyFrom(template)
        return Rollback(await client.update(d), revision_of(rs), changed=True)
    return await retry_on_conflict(attempt)


async def rollback(client: ApiClient, namespace: str, name: str,
                   to_revision: int = 0) -> t.Deployment:
    """roll_back, returning the Deployment as updated (unchanged if it had that template)."""
    return (await roll_back(client, namespace, name, to_revision)).deployment
