"""The kubelet runs pods as real Docker containers: spec, restarts, probes, deletion."""
from __future__ import annotations

import asyncio
import datetime
import time
import urllib.request

from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from minik8s.localcluster import free_port
from tests.integration.helpers import eventually
from tests.integration.kubelet_helpers import (
    ECHO,
    app_container,
    containers_of,
    echo_pod,
    status_of,
    until_phase,
    until_ready,
)


async def test_a_deployment_runs_on_both_nodes(node_client: ApiClient,
                                               node_namespace: str) -> None:
    labels = {"app": "web"}
    await node_client.create(t.Deployment(
        metadata=t.ObjectMeta(name="web", namespace=node_namespace),
        spec=t.DeploymentSpec(replicas=3, selector=t.LabelSelector(match_labels=labels),
                              template=t.PodTemplateSpec(
                                  metadata=t.ObjectMeta(labels=labels),
                                  spec=echo_pod("x", node_namespace).spec))))

    async def all_ready() -> list[t.Pod] | None:
        pods, _ = await node_client.list("Pod", node_namespace)
        ready = [p for p in pods if any(c.type == "Ready" and c.status == "True"
                                        for c in p.status.conditions)]
        return ready if len(ready) == 3 else None
    pods = await eventually(all_ready, timeout=60)

    assert {p.spec.node_name for p in pods} == {"node-0", "node-1"}
    for pod in pods:
        kinds = sorted(c.labels["io.minik8s.container.name"] for c in containers_of(pod))
        assert kinds == ["POD", "c"]
        assert pod.status.pod_ip and pod.status.host_ip == "127.0.0.1"
        assert pod.status.container_statuses[0].container_id.startswith("docker://")
        # the echo server answers with the pod's name, from inside the pod
        out = app_container(pod).exec_run(["wget", "-qO-", "http://127.0.0.1:8080/"])
        assert out.output.decode().strip() == pod.metadata.name


async def test_containers_of_a_pod_share_localhost(node_client: ApiClient,
                                                   node_namespace: str) -> None:
    pod = echo_pod("pair", node_namespace)
    pod.spec.containers.add(name="side", image=ECHO, image_pull_policy="IfNotPresent",
                            command=["sleep", "3600"])
    await node_client.create(pod)
    pod = await until_ready(node_client, "pair", node_namespace)
    side = app_container(pod, "side")
    out = side.exec_run(["wget", "-qO-", "http://127.0.0.1:8080/"])
    assert out.exit_code == 0 and out.output.decode().strip() == "pair"
    assert side.exec_run(["hostname"]).output.decode().strip() == "pair"


async def test_env_command_args_and_limits_reach_docker(node_client: ApiClient,
                                                        node_namespace: str) -> None:
    svc = await node_client.create(t.Service(
        metadata=t.ObjectMeta(name="db-main", namespace=node_namespace),
        spec=t.ServiceSpec(ports=[t.ServicePort(name="sql", port=5432)])))
    pod = echo_pod("spec", node_namespace, "sh", "-c",
                   args=["sleep 3600", "x"], env=[t.EnvVar(name="GREETING", value="hi")],
                   resources=t.ResourceRequirements(limits={"cpu": "250m", "memory": "64Mi"},
                                                    requests={"cpu": "100m"}),
                   working_dir="/tmp")
    await node_client.create(pod)
    pod = await until_phase(node_client, "spec", node_namespace, "Running")
    attrs = app_container(pod).attrs
    assert attrs["Config"]["Entrypoint"] == ["sh", "-c"]
    assert attrs["Config"]["Cmd"] == ["sleep 3600", "x"]
    assert attrs["Config"]["WorkingDir"] == "/tmp"
    env = dict(e.split("=", 1) for e in attrs["Config"]["Env"])
    assert env["GREETING"] == "hi"
    assert env["DB_MAIN_SERVICE_HOST"] == svc.spec.cluster_ip
    assert env["DB_MAIN_SERVICE_PORT"] == "5432"
    assert env["DB_MAIN_SERVICE_PORT_SQL"] == "5432"
    assert attrs["HostConfig"]["NanoCpus"] == 250_000_000
    assert attrs["HostConfig"]["Memory"] == 64 * 1024 * 1024
    assert attrs["HostConfig"]["CpuShares"] == 102


async def test_exit_codes_against_restart_policies(node_client: ApiClient,
                                                   node_namespace: str) -> None:
    cases = {  # name: (policy, exit code, final phase)
        "never-ok": ("Never", 0, "Succeeded"), "never-fail": ("Never", 3, "Failed"),
        "onfailure-ok": ("OnFailure", 0, "Succeeded"),
    }
    for name, (policy, code, _) in cases.items():
        await node_client.create(echo_pod(name, node_namespace, "sh", "-c", f"exit {code}",
                                          restart_policy=policy))
    for name, (_, code, phase) in cases.items():
        pod = await until_phase(node_client, name, node_namespace, phase)
        state = pod.status.container_statuses[0].state.terminated
        assert state.exit_code == code
        assert state.reason == ("Completed" if code == 0 else "Error")
        assert pod.status.container_statuses[0].restart_count == 0
        # a finished pod keeps nothing running, its sandbox included
        await eventually(lambda p=pod: not containers_of(p, include_stopped=False), timeout=10)

    await node_client.create(echo_pod("onfailure-fail", node_namespace, "sh", "-c", "exit 1",
                                      restart_policy="OnFailure"))

    async def restarted() -> bool:
        status = await status_of(node_client, "onfailure-fail", node_namespace)
        return bool(status.container_statuses) and status.container_statuses[0].restart_count >= 1
    await eventually(restarted, timeout=30)


async def test_crash_loop_back_off_grows(node_client: ApiClient, node_namespace: str) -> None:
    await node_client.create(echo_pod("crash", node_namespace, "sh", "-c", "exit 1"))
    seen_back_off = False

    async def three_restarts() -> bool:
        nonlocal seen_back_off
        status = (await status_of(node_client, "crash", node_namespace)).container_statuses
        if status and status[0].state.waiting.reason == "CrashLoopBackOff":
            seen_back_off = True
            assert "back-off" in status[0].state.waiting.message
        return bool(status) and status[0].restart_count >= 3
    await eventually(three_restarts, timeout=60, interval=0.1)
    assert seen_back_off

    pod = await node_client.get("Pod", "crash", node_namespace)
    runs = {int(c.labels["io.minik8s.container.restart-count"]): c.attrs["State"]
            for c in containers_of(pod) if c.labels["io.minik8s.container.name"] == "c"}
    # the kubelet keeps the last two runs: the wait before the newest restart is
    # (with a 1 s initial back-off) at least twice the first delay
    newest = max(runs)
    gap = _seconds(runs[newest]["StartedAt"]) - _seconds(runs[newest - 1]["FinishedAt"])
    assert gap >= 1.8, f"restart {newest} came {gap:.2f}s after the previous run ended"


def _seconds(stamp: str) -> float:
    head, _, frac = stamp.rstrip("Z").partition(".")
    base = datetime.datetime.fromisoformat(head).replace(tzinfo=datetime.UTC).timestamp()
    return base + float(f"0.{frac or 0}")


async def test_failing_liveness_probe_restarts_the_container(node_client: ApiClient,
                                                             node_namespace: str) -> None:
    probe = t.Probe(exec=t.ExecAction(command=["cat", "/tmp/healthy"]), period_seconds=1,
                    failure_threshold=2)
    await node_client.create(echo_pod(
        "sick", node_namespace, "sh", "-c", "touch /tmp/healthy; sleep 2; rm /tmp/healthy; "
        "sleep 3600", liveness_probe=probe))

    async def restarted() -> bool:
        status = (await status_of(node_client, "sick", node_namespace)).container_statuses
        return bool(status) and status[0].restart_count >= 1
    await eventually(restarted, timeout=40)
    events, _ = await node_client.list("Event", node_namespace)
    assert any(e.reason == "Killing" and "liveness" in e.message for e in events)


async def test_readiness_flips_the_ready_condition_both_ways(node_client: ApiClient,
                                                             node_namespace: str) -> None:
    probe = t.Probe(exec=t.ExecAction(command=["cat", "/tmp/ready"]), period_seconds=1,
                    failure_threshold=1)
    await node_client.create(echo_pod("flip", node_namespace, "sleep", "3600",
                                      readiness_probe=probe))
    pod = await until_phase(node_client, "flip", node_namespace, "Running")
    assert not (await until_ready(node_client, "flip", node_namespace, False)) \
        .status.container_statuses[0].ready
    app_container(pod).exec_run(["touch", "/tmp/ready"])
    await until_ready(node_client, "flip", node_namespace, True)
    app_container(pod).exec_run(["rm", "/tmp/ready"])
    await until_ready(node_client, "flip", node_namespace, False)


async def test_deletion_sends_sigterm_then_sigkill_after_the_grace_period(
        node_client: ApiClient, node_namespace: str) -> None:
    await node_client.create(echo_pod(
        "stubborn", node_namespace, "sh", "-c",
        "trap 'echo got TERM' TERM; while true; do sleep 0.2; done"))
    pod = await until_phase(node_client, "stubborn", node_namespace, "Running")
    container = app_container(pod)
    started = time.monotonic()
    await node_client.delete("Pod", "stubborn", node_namespace)

    async def termed() -> bool:
        return b"got TERM" in await asyncio.to_thread(container.logs)
    await eventually(termed, timeout=10)

    async def gone() -> bool:
        pods, _ = await node_client.list("Pod", node_namespace)
        return all(p.metadata.name != "stubborn" for p in pods)
    await eventually(gone, timeout=20)
    took = time.monotonic() - started
    assert 2.0 <= took < 10, f"deleted after {took:.1f}s with a 2s grace period"
    await eventually(lambda: not containers_of(pod), timeout=10)


async def test_a_pod_that_stops_on_sigterm_goes_at_once(node_client: ApiClient,
                                                        node_namespace: str) -> None:
    pod = echo_pod("polite", node_namespace)
    pod.spec.termination_grace_period_seconds = 30
    await node_client.create(pod)
    pod = await until_phase(node_client, "polite", node_namespace, "Running")
    started = time.monotonic()
    await node_client.delete("Pod", "polite", node_namespace)

    async def gone() -> bool:
        return "polite" not in {p.metadata.name
                                for p in (await node_client.list("Pod", node_namespace))[0]}
    await eventually(gone, timeout=20)
    assert time.monotonic() - started < 10
    await eventually(lambda: not containers_of(pod), timeout=10)


async def test_emptydir_is_shared_and_init_containers_run_first(node_client: ApiClient,
                                                                node_namespace: str) -> None:
    pod = echo_pod("init", node_namespace, "sh", "-c", "cat /data/greeting; sleep 3600",
                   volume_mounts=[t.VolumeMount(name="data", mount_path="/data")])
    pod.spec.volumes.add(name="data", empty_dir=t.EmptyDirVolumeSource())
    pod.spec.init_containers.add(
        name="prepare", image=ECHO, image_pull_policy="IfNotPresent",
        command=["sh", "-c", "sleep 1; echo hello-from-init > /data/greeting"],
        volume_mounts=[t.VolumeMount(name="data", mount_path="/data")])
    await node_client.create(pod)

    async def initializing() -> bool:
        status = await status_of(node_client, "init", node_namespace)
        cond = {c.type: c for c in status.conditions}.get("Initialized")
        return status.phase == "Pending" and cond is not None and cond.status == "False"
    await eventually(initializing, timeout=20, interval=0.1)

    pod = await until_phase(node_client, "init", node_namespace, "Running")
    init_status = pod.status.init_container_statuses[0]
    assert init_status.state.terminated.exit_code == 0
    assert init_status.state.terminated.reason == "Completed"
    assert (await asyncio.to_thread(app_container(pod).logs)).startswith(b"hello-from-init")


async def test_host_port_reaches_the_pod(node_client: ApiClient, node_namespace: str) -> None:
    port = free_port()
    pod = echo_pod("exposed", node_namespace,
                   ports=[t.ContainerPort(container_port=8080, host_port=port)])
    await node_client.create(pod)
    await until_phase(node_client, "exposed", node_namespace, "Running")

    def answer() -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                return resp.read().decode().strip()
        except OSError:
            return ""
    assert await eventually(lambda: asyncio.to_thread(answer), timeout=20) == "exposed"
