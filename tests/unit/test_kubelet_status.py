"""PodStatus from the engine's instances, the kubelet's notes and probe results
(kubelet/status.py): container states, the pod phase and its conditions."""
from __future__ import annotations

import datetime

import pytest

from kubelet.runtime import Instance
from kubelet.status import Note, Observed, pod_status
from minik8s.api.v1 import types_pb2 as t

NOW = datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=datetime.UTC)
LATER = NOW + datetime.timedelta(minutes=5)


def run(name: str, *, running: bool = False, exit_code: int = 0, restarts: int = 0,
        oom: bool = False) -> Instance:
    """One run of a container; its id is "<name>-<restart count>"."""
    return Instance(
        id=f"{name}-{restarts}", name=name, pod_uid="uid-1", pod_key="default/web",
        restart_count=restarts, running=running, exit_code=exit_code, oom_killed=oom,
        error="", created=f"2024-05-01T11:{restarts:02d}:00Z",
        started_at=NOW - datetime.timedelta(minutes=1),
        finished_at=None if running else NOW - datetime.timedelta(seconds=10),
        image="nginx", image_id="sha256:abc")


def pod(*names: str, inits: tuple[str, ...] = (), policy: str = "") -> t.Pod:
    return t.Pod(
        metadata=t.ObjectMeta(name="web", namespace="default", uid="uid-1"),
        spec=t.PodSpec(containers=[t.Container(name=n, image="nginx") for n in names],
                       init_containers=[t.Container(name=n, image="busybox") for n in inits],
                       restart_policy=policy))


def observe(*instances: Instance, notes: dict[str, Note] | None = None, ready: bool = True,
            now: datetime.datetime = NOW, pod_ip: str = "10.244.1.5") -> Observed:
    return Observed(instances=list(instances), notes=notes or {},
                    ready=lambda name, cid: ready, started=lambda name, cid: True,
                    host_ip="192.168.1.10", pod_ip=pod_ip, now=now)


def conds(status: t.PodStatus) -> dict[str, t.Condition]:
    return {c.type: c for c in status.conditions}


def test_running_container_is_ready_from_its_probe() -> None:
    asked: list[tuple[str, str]] = []

    def ready(name: str, cid: str) -> bool:
        asked.append((name, cid))
        return True

    seen = observe(run("app", running=True))
    seen.ready = ready
    status = pod_status(pod("app"), seen)

    (app,) = status.container_statuses
    assert app.state.HasField("running")
    assert app.state.running.started_at.ToDatetime(tzinfo=datetime.UTC) == \
        NOW - datetime.timedelta(minutes=1)
    assert app.ready and app.started
    assert app.container_id == "docker://app-0" and app.image_id == "sha256:abc"
    assert asked == [("app", "app-0")]
    assert status.phase == "Running"
    assert {k: c.status for k, c in conds(status).items()} == \
        {"Initialized": "True", "ContainersReady": "True", "Ready": "True"}


def test_failing_readiness_probe_makes_the_pod_unready() -> None:
    status = pod_status(pod("app"), observe(run("app", running=True), ready=False))

    assert not status.container_statuses[0].ready
    assert status.phase == "Running"
    ready = conds(status)["Ready"]
    assert (ready.status, ready.reason) == ("False", "ContainersNotReady")
    assert ready.message == "containers with unready status: [app]"
    assert conds(status)["ContainersReady"].status == "False"


def test_image_pull_error_note_shows_as_waiting_and_pending() -> None:
    note = Note("ErrImagePull", 'Failed to pull image "nginx": not found')
    status = pod_status(pod("app"), observe(notes={"app": note}))

    (app,) = status.container_statuses
    assert (app.state.waiting.reason, app.state.waiting.message) == (note.reason, note.message)
    assert not app.last_state.HasField("terminated")
    assert status.phase == "Pending"


def test_container_not_yet_created_is_container_creating() -> None:
    status = pod_status(pod("app"), observe())

    assert status.container_statuses[0].state.waiting.reason == "ContainerCreating"
    assert status.phase == "Pending"


def test_crash_loop_shows_waiting_with_the_last_termination() -> None:
    note = Note("CrashLoopBackOff", "back-off 20s restarting failed container=app")
    status = pod_status(pod("app"), observe(run("app", exit_code=1, restarts=3),
                                            run("app", exit_code=1, restarts=2),
                                            notes={"app": note}))

    (app,) = status.container_statuses
    assert app.state.waiting.reason == "CrashLoopBackOff"
    assert app.state.waiting.message == note.message
    last = app.last_state.terminated
    assert (last.exit_code, last.reason, last.container_id) == (1, "Error", "docker://app-3")
    assert app.restart_count == 3
    assert not app.ready and not app.started
    assert status.phase == "Running"  # restartPolicy Always: it will be restarted


def test_restarted_container_reports_the_previous_run_as_last_state() -> None:
    status = pod_status(pod("app"), observe(run("app", exit_code=2, restarts=0),
                                            run("app", running=True, restarts=1)))

    (app,) = status.container_statuses
    assert app.state.HasField("running") and app.container_id == "docker://app-1"
    assert app.restart_count == 1
    assert app.last_state.terminated.exit_code == 2


@pytest.mark.parametrize(("policy", "exit_codes", "phase"), [
    ("Never", [0], "Succeeded"),
    ("Never", [3], "Failed"),
    ("Never", [0, 1], "Failed"),
    ("Always", [0, 0], "Running"),
    ("", [1], "Running"),               # the default policy is Always
    ("OnFailure", [0, 0], "Succeeded"),
    ("OnFailure", [0, 1], "Running"),   # the failed one will be restarted
])
def test_phase_of_exited_containers(policy: str, exit_codes: list[int], phase: str) -> None:
    names = [f"c{i}" for i in range(len(exit_codes))]
    runs = [run(n, exit_code=code) for n, code in zip(names, exit_codes, strict=True)]
    status = pod_status(pod(*names, policy=policy), observe(*runs))

    assert status.phase == phase
    assert [s.state.terminated.reason for s in status.container_statuses] == \
        ["Completed" if code == 0 else "Error" for code in exit_codes]


def test_running_and_exited_mix_is_running() -> None:
    status = pod_status(pod("a", "b", policy="Never"),
                        observe(run("a", running=True), run("b", exit_code=1)))
    assert status.phase == "Running"


def test_oom_killed_container() -> None:
    status = pod_status(pod("app", policy="Never"),
                        observe(run("app", exit_code=137, oom=True)))

    terminated = status.container_statuses[0].state.terminated
    assert (terminated.reason, terminated.exit_code) == ("OOMKilled", 137)
    assert status.phase == "Failed"


def test_incomplete_init_container_keeps_the_pod_pending() -> None:
    status = pod_status(pod("app", inits=("init",)), observe(run("init", running=True)))

    assert status.phase == "Pending"
    assert status.init_container_statuses[0].state.HasField("running")
    initialized = conds(status)["Initialized"]
    assert (initialized.status, initialized.reason) == ("False", "ContainersNotInitialized")
    assert initialized.message == "containers with incomplete status: [init]"
    assert conds(status)["Ready"].status == "False"


def test_completed_init_containers_initialize_the_pod() -> None:
    status = pod_status(pod("app", inits=("init",)),
                        observe(run("init", exit_code=0), run("app", running=True)))

    assert status.phase == "Running"
    assert conds(status)["Initialized"].status == "True"


@pytest.mark.parametrize(("policy", "phase"), [("Never", "Failed"), ("Always", "Pending")])
def test_failed_init_container(policy: str, phase: str) -> None:
    status = pod_status(pod("app", inits=("init",), policy=policy),
                        observe(run("init", exit_code=1)))
    assert status.phase == phase


def test_conditions_keep_their_transition_time_until_they_flip() -> None:
    web = pod("app")
    web.status.conditions.add(type="PodScheduled", status="True")
    web.status.CopyFrom(pod_status(web, observe(run("app", running=True))))
    assert conds(web.status)["Ready"].last_transition_time.ToDatetime(
        tzinfo=datetime.UTC) == NOW

    again = pod_status(web, observe(run("app", running=True), ready=False, now=LATER))

    times = {k: c.last_transition_time.ToDatetime(tzinfo=datetime.UTC)
             for k, c in conds(again).items() if k != "PodScheduled"}
    assert times == {"Initialized": NOW, "ContainersReady": LATER, "Ready": LATER}
    assert conds(again)["PodScheduled"].status == "True"  # conditions it does not own stay


def test_start_time_is_set_once() -> None:
    web = pod("app")
    first = pod_status(web, observe())
    assert first.start_time.ToDatetime(tzinfo=datetime.UTC) == NOW

    web.status.CopyFrom(first)
    assert pod_status(web, observe(now=LATER)).start_time == first.start_time


def test_terminal_phase_is_sticky() -> None:
    web = pod("app", policy="Never")
    web.status.phase = "Succeeded"
    status = pod_status(web, observe(run("app", running=True)))

    assert status.phase == "Succeeded"
    ready = conds(status)["Ready"]
    assert (ready.status, ready.reason) == ("False", "PodCompleted")


def test_addresses() -> None:
    status = pod_status(pod("app"), observe(pod_ip="10.244.1.5"))
    assert (status.pod_ip, status.host_ip) == ("10.244.1.5", "192.168.1.10")
    assert [p.ip for p in status.pod_ips] == ["10.244.1.5"]

    no_ip = pod_status(pod("app"), observe(pod_ip=""))
    assert no_ip.pod_ip == "" and len(no_ip.pod_ips) == 0
