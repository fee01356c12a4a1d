"""A pod's status, computed from its containers as the engine reports them.

Pure: the kubelet gathers the pod's Docker instances, its own notes on
containers it could not start (ErrImagePull, CrashLoopBackOff, ...) and the
probe results, and this module turns them into the PodStatus a user reads.
The phase follows Kubernetes' getPhase: a waiting container keeps the pod
Pending; a stopped pod is Running while its policy will restart something,
Succeeded when everything exited 0, Failed otherwise.
"""
from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from google.protobuf.timestamp_pb2 import Timestamp

from kubelet.runtime import Instance
from minik8s.api.v1 import types_pb2 as t

TERMINAL = ("Succeeded", "Failed")
Probe = Callable[[str, str], bool]   # (container name, container id) -> result


@dataclass(frozen=True)
class Note:
    """Why the kubelet has not got a container running: a waiting reason and message."""

    reason: str
    message: str = ""


@dataclass
class Observed:
    """Everything the status is made of."""

    instances: Sequence[Instance]
    notes: dict[str, Note]
    ready: Probe
    started: Probe
    host_ip: str
    pod_ip: str
    now: datetime.datetime


def _ts(when: datetime.datetime | None) -> Timestamp | None:
    if when is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(when)
    return stamp


def runs_of(instances: Sequence[Instance], name: str) -> list[Instance]:
    """A container's runs, newest first."""
    return sorted((i for i in instances if i.name == name and not i.sandbox),
                  key=lambda i: (i.restart_count, i.created), reverse=True)


def terminated(instance: Instance) -> t.ContainerStateTerminated:
    reason = "OOMKilled" if instance.oom_killed else \
        "Completed" if instance.exit_code == 0 else "Error"
    return t.ContainerStateTerminated(
        exit_code=instance.exit_code, reason=reason, message=instance.error,
        started_at=_ts(instance.started_at), finished_at=_ts(instance.finished_at),
        container_id=f"docker://{instance.id}")


def container_status(spec: t.Container, seen: Observed) -> t.ContainerStatus:
    runs = runs_of(seen.instances, spec.name)
    status = t.ContainerStatus(name=spec.name, image=spec.image)
    current = runs[0] if runs else None
    note = seen.notes.get(spec.name)
    if current is not None:
        status.restart_count = current.restart_count
        status.image_id = current.image_id
        status.container_id = f"docker://{current.id}"
    if current is not None and current.running:
        status.state.running.started_at.CopyFrom(_ts(current.started_at) or Timestamp())
        if len(runs) > 1:
            status.last_state.terminated.CopyFrom(terminated(runs[1]))
        status.ready = seen.ready(spec.name, current.id)
        status.started = seen.started(spec.name, current.id)
    elif note is not None or current is None:
        note = note or Note("ContainerCreating")
        status.state.waiting.CopyFrom(t.ContainerStateWaiting(reason=note.reason,
                                                              message=note.message))
        if current is not None:
            status.last_state.terminated.CopyFrom(terminated(current))
        status.started = False
    else:
        status.state.terminated.CopyFrom(terminated(current))
        if len(runs) > 1:
            status.last_state.terminated.CopyFrom(terminated(runs[1]))
        status.started = False
    return status


def phase(pod: t.Pod, init_done: bool, init_failed: bool,
          statuses: Sequence[t.ContainerStatus]) -> str:
    """Kubernetes' getPhase, over the app containers' statuses."""
    if pod.status.phase in TERMINAL:
        return pod.status.phase
    if init_failed:
        return "Failed"
    if not init_done:
        return "Pending"
    running = waiting = stopped = succeeded = 0
    for status in statuses:
        if status.state.HasField("running"):
            running += 1
        elif status.state.HasField("terminated"):
            stopped += 1
            succeeded += status.state.terminated.exit_code == 0
        elif status.last_state.HasField("terminated"):
            stopped += 1
        else:
            waiting += 1
    policy = pod.spec.restart_policy or "Always"
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if policy == "Always":
        return "Running"
    if stopped == succeeded:
        return "Succeeded"
    return "Failed" if policy == "Never" else "Running"


def init_progress(pod: t.Pod, statuses: Sequence[t.ContainerStatus]) -> tuple[bool, bool]:
    """(all init containers completed, one failed for good under restartPolicy Never)."""
    done = all(s.state.HasField("terminated") and s.state.terminated.exit_code == 0
               for s in statuses) and len(statuses) == len(pod.spec.init_containers)
    failed = pod.spec.restart_policy == "Never" and any(
        s.state.HasField("terminated") and s.state.terminated.exit_code != 0 for s in statuses)
    return done, failed


def pod_status(pod: t.Pod, seen: Observed) -> t.PodStatus:
    """The pod's new status; unchanged conditions keep their transition times."""
    inits = [container_status(c, seen) for c in pod.spec.init_containers]
    apps = [container_status(c, seen) for c in pod.spec.containers]
    init_done, init_failed = init_progress(pod, inits)
    status = t.PodStatus(
        phase=phase(pod, init_done, init_failed, apps), host_ip=seen.host_ip,
        pod_ip=seen.pod_ip, init_container_statuses=inits, container_statuses=apps,
        qos_class=pod.status.qos_class, nominated_node_name=pod.status.nominated_node_name)
    if seen.pod_ip:
        status.pod_ips.add(ip=seen.pod_ip)
    status.start_time.CopyFrom(pod.status.start_time if pod.status.HasField("start_time")
                               else _ts(seen.now))
    status.conditions.extend(conditions(pod, status, init_done, seen.now))
    return status


def conditions(pod: t.Pod, status: t.PodStatus, init_done: bool,
               now: datetime.datetime) -> list[t.Condition]:
    unready = [s.name for s in status.container_statuses if not s.ready]
    incomplete = [s.name for s in status.init_container_statuses
                  if not (s.state.HasField("terminated") and s.state.terminated.exit_code == 0)]
    if status.phase in TERMINAL:
        ready = ("False", "PodCompleted", "")
    elif unready:
        ready = ("False", "ContainersNotReady",
                 f"containers with unready status: [{' '.join(unready)}]")
    else:
        ready = ("True", "", "")
    initialized = ("True", "", "") if init_done else (
        "False", "ContainersNotInitialized",
        f"containers with incomplete status: [{' '.join(incomplete)}]")
    wanted = {"Initialized": initialized, "ContainersReady": ready, "Ready": ready}
    old = {c.type: c for c in pod.status.conditions}
    result = [c for c in pod.status.conditions if c.type not in wanted]
    for kind, (value, reason, message) in wanted.items():
        previous = old.get(kind)
        cond = t.Condition(type=kind, status=value, reason=reason, message=message)
        if previous is not None and previous.status == value:
            cond.last_transition_time.CopyFrom(previous.last_transition_time)
        else:
            cond.last_transition_time.CopyFrom(_ts(now))
        result.append(cond)
    return result
