"""Pod helpers the workload controllers share."""
from __future__ import annotations

import datetime
import secrets

from google.protobuf.message import Message

from minik8s import kinds
from minik8s.api.v1 import types_pb2 as t


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def controller_of(obj: Message) -> t.OwnerReference | None:
    """The ownerReference with controller=true, if any."""
    return next((r for r in obj.metadata.owner_references if r.controller), None)


def controller_ref(owner: Message) -> t.OwnerReference:
    kind = kinds.of(owner)
    return t.OwnerReference(api_version=kind.api_version, kind=kind.name,
                            name=owner.metadata.name, uid=owner.metadata.uid,
                            controller=True, block_owner_deletion=True)


def is_terminating(obj: Message) -> bool:
    return obj.metadata.HasField("deletion_timestamp")


def is_active(pod: t.Pod) -> bool:
    """Counts toward replicas: not finished and not being deleted."""
    return (pod.status.phase not in ("Succeeded", "Failed")
            and not pod.metadata.HasField("deletion_timestamp"))


def ready_since(pod: t.Pod) -> datetime.datetime | None:
    """When the pod last became Ready, if it is Ready."""
    for c in pod.status.conditions:
        if c.type == "Ready" and c.status == "True":
            return c.last_transition_time.ToDatetime(datetime.UTC)
    return None


def is_ready(pod: t.Pod) -> bool:
    return ready_since(pod) is not None


def is_available(pod: t.Pod, min_ready_seconds: int, at: datetime.datetime) -> bool:
    since = ready_since(pod)
    return since is not None and (at - since).total_seconds() >= min_ready_seconds


def from_template(template: t.PodTemplateSpec, owner: Message) -> t.Pod:
    """A new pod for owner, from its template, named <owner>-<random>.

    The name is chosen here rather than by the server (generateName), so a
    create retried after a lost answer finds its own pod instead of making a
    second one.
    """
    pod = t.Pod(spec=template.spec)
    pod.metadata.CopyFrom(template.metadata)
    pod.metadata.namespace = owner.metadata.namespace
    pod.metadata.name = f"{owner.metadata.name}-{_suffix()}"
    pod.metadata.owner_references.append(controller_ref(owner))
    return pod


def _suffix() -> str:
    """Five characters as Kubernetes' generateName uses (no vowels, no look-alikes)."""
    return "".join(secrets.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))


def deletion_rank(pod: t.Pod) -> tuple:
    """Sort key: the pods to delete first on scale-down come first.

    As Kubernetes: unscheduled before scheduled, pending before running,
    not ready before ready, newer before older.
    """
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}
    return (bool(pod.spec.node_name), phase_rank.get(pod.status.phase, 0), is_ready(pod),
            -pod.metadata.creation_timestamp.ToNanoseconds())
