"""What the kubelet tests share: pods of the local echo image, and reading the engine."""
from __future__ import annotations

import docker

from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from tests.integration.helpers import eventually

ECHO = "minik8s/echo:latest"


def echo_pod(name: str, namespace: str, *command: str, restart_policy: str = "Always",
             **container: object) -> t.Pod:
    """A pod of one container "c" of the echo image (its web server, or `command`)."""
    spec = t.Container(name="c", image=ECHO, image_pull_policy="IfNotPresent", **container)
    spec.command.extend(command)
    return t.Pod(metadata=t.ObjectMeta(name=name, namespace=namespace),
                 spec=t.PodSpec(containers=[spec], restart_policy=restart_policy,
                                termination_grace_period_seconds=2))


async def status_of(client: ApiClient, name: str, namespace: str) -> t.PodStatus:
    return (await client.get("Pod", name, namespace)).status


async def until_phase(client: ApiClient, name: str, namespace: str, phase: str,
                      timeout: float = 30) -> t.Pod:
    async def reached() -> t.Pod | None:
        pod = await client.get("Pod", name, namespace)
        return pod if pod.status.phase == phase else None
    return await eventually(reached, timeout=timeout, interval=0.1)


async def until_ready(client: ApiClient, name: str, namespace: str, ready: bool = True,
                      timeout: float = 30) -> t.Pod:
    async def reached() -> t.Pod | None:
        pod = await client.get("Pod", name, namespace)
        cond = next((c for c in pod.status.conditions if c.type == "Ready"), None)
        return pod if cond is not None and (cond.status == "True") == ready else None
    return await eventually(reached, timeout=timeout, interval=0.1)


def containers_of(pod: t.Pod, include_stopped: bool = True) -> list:
    """The Docker containers of a pod, by the kubelet's labels."""
    engine = docker.from_env()
    return engine.containers.list(all=include_stopped, ignore_removed=True,
                                  filters={"label": f"io.minik8s.pod.uid={pod.metadata.uid}"})


def app_container(pod: t.Pod, name: str = "c"):
    """The running Docker container of one of the pod's containers."""
    running = [c for c in containers_of(pod, include_stopped=False)
               if c.labels["io.minik8s.container.name"] == name]
    assert len(running) == 1, f"{len(running)} running containers {name} in {pod.metadata.name}"
    return running[0]


# Keeps serving for 2 s after SIGTERM, as a well-behaved server does while
# the endpoints controller and the proxy take it out of rotation.
GRACEFUL_SERVER = "trap 'sleep 2; exit 0' TERM; httpd -f -p 8080 -h /www & wait $!"


def echo_deployment(name: str, namespace: str, replicas: int) -> t.Deployment:
    """Echo web servers, Ready when they answer, rolled one at a time with no loss."""
    labels = {"app": name}
    pod = echo_pod(name, namespace, "sh", "-c", GRACEFUL_SERVER,
                   ports=[t.ContainerPort(name="http", container_port=8080)],
                   readiness_probe=t.Probe(http_get=t.HTTPGetAction(
                       path="/", port=t.IntOrString(int_val=8080)), period_seconds=1))
    pod.spec.termination_grace_period_seconds = 5
    return t.Deployment(
        metadata=t.ObjectMeta(name=name, namespace=namespace),
        spec=t.DeploymentSpec(
            replicas=replicas, selector=t.LabelSelector(match_labels=labels),
            strategy=t.DeploymentStrategy(
                type="RollingUpdate", rolling_update=t.RollingUpdateDeployment(
                    max_surge=t.IntOrString(int_val=1),
                    max_unavailable=t.IntOrString(int_val=0))),
            template=t.PodTemplateSpec(metadata=t.ObjectMeta(labels=labels), spec=pod.spec)))


def web_service(name: str, namespace: str, node_port: bool = False) -> t.Service:
    return t.Service(
        metadata=t.ObjectMeta(name=name, namespace=namespace),
        spec=t.ServiceSpec(type="NodePort" if node_port else "ClusterIP",
                           selector={"app": name},
                           ports=[t.ServicePort(name="http", port=80,
                                                target_port=t.IntOrString(str_val="http"))]))
