"""A pod's spec as Docker create parameters (kubelet/containers.py): names, labels,
command/args, env, resource limits, mounts, the sandbox and service variables."""
from __future__ import annotations

from kubelet import labels
from kubelet.containers import (
    Owner,
    app_spec,
    container_labels,
    docker_name,
    env_of,
    grace_of,
    limits_of,
    mounts_of,
    sandbox_spec,
    service_env,
)
from minik8s.api.v1 import types_pb2 as t

OWNER = Owner(cluster="dev", node="node-1")


def pod(*containers: t.Container, grace: int | None = None, hostname: str = "") -> t.Pod:
    spec = t.PodSpec(containers=list(containers) or [t.Container(name="app")],
                     hostname=hostname)
    if grace is not None:
        spec.termination_grace_period_seconds = grace
    return t.Pod(metadata=t.ObjectMeta(name="web", namespace="prod", uid="uid-1"), spec=spec)


def app(container: t.Container) -> dict:
    config, _ = app_spec(OWNER, pod(container), container, sandbox_id="sbx", restart_count=0,
                         init=False, service_env={}, volume_dirs={})
    return config


def resources(limits: dict[str, str] | None = None,
              requests: dict[str, str] | None = None) -> t.ResourceRequirements:
    return t.ResourceRequirements(limits=limits or {}, requests=requests or {})


def service(name: str, ip: str, *ports: t.ServicePort) -> t.Service:
    return t.Service(metadata=t.ObjectMeta(name=name, namespace="prod"),
                     spec=t.ServiceSpec(cluster_ip=ip, ports=list(ports)))


def test_docker_name() -> None:
    assert docker_name(pod(), "app", 2) == "k8s_app_web_prod_uid-1_2"


def test_labels_say_whose_container_it_is() -> None:
    assert container_labels(OWNER, pod(grace=5), "app", 3) == {
        labels.CLUSTER: "dev", labels.NODE: "node-1", labels.POD_UID: "uid-1",
        labels.POD_NAMESPACE: "prod", labels.POD_NAME: "web", labels.CONTAINER_NAME: "app",
        labels.RESTART_COUNT: "3", labels.GRACE: "5",
    }
    assert container_labels(OWNER, pod(), "init", 0, init=True)[labels.INIT] == "true"


def test_grace_period() -> None:
    assert grace_of(pod()) == 30
    assert grace_of(pod(grace=5)) == 5
    deleting = pod(grace=5)
    deleting.metadata.deletion_grace_period_seconds = 0  # a forced delete
    assert grace_of(deleting) == 0


def test_command_replaces_entrypoint_and_args_replace_cmd() -> None:
    both = app(t.Container(name="app", command=["sh", "-c"], args=["echo hi"]))
    assert (both["entrypoint"], both["command"]) == (["sh", "-c"], ["echo hi"])

    command_only = app(t.Container(name="app", command=["sleep", "10"]))
    assert command_only["entrypoint"] == ["sleep", "10"]
    assert command_only["command"] is None  # the image's CMD is not appended

    args_only = app(t.Container(name="app", args=["--port", "80"]))
    assert args_only["command"] == ["--port", "80"] and "entrypoint" not in args_only

    neither = app(t.Container(name="app"))
    assert "entrypoint" not in neither and "command" not in neither


def test_app_container_joins_the_sandbox() -> None:
    container = t.Container(name="app", resources=resources(limits={"memory": "64Mi"}))
    _, host = app_spec(OWNER, pod(container), container, sandbox_id="sbx", restart_count=0,
                       init=False, service_env={}, volume_dirs={})
    assert (host["network_mode"], host["ipc_mode"]) == ("container:sbx", "container:sbx")
    assert host["mem_limit"] == 67108864


def test_container_env_wins_over_service_env() -> None:
    container = t.Container(name="app", env=[t.EnvVar(name="DB_SERVICE_HOST", value="mine"),
                                             t.EnvVar(name="MODE", value="prod")])
    assert env_of(container, {"DB_SERVICE_HOST": "10.96.0.5", "DB_SERVICE_PORT": "5432"}) == {
        "DB_SERVICE_HOST": "mine", "DB_SERVICE_PORT": "5432", "MODE": "prod"}


def test_limits() -> None:
    assert limits_of(resources(limits={"cpu": "250m", "memory": "64Mi"},
                               requests={"cpu": "100m"})) == {
        "nano_cpus": 250_000_000, "cpu_shares": 102,
        "mem_limit": 67108864, "memswap_limit": 67108864}


def test_cpu_shares_default_to_the_limit_and_never_go_below_two() -> None:
    assert limits_of(resources(limits={"cpu": "1"}))["cpu_shares"] == 1024
    assert limits_of(resources(requests={"cpu": "1m"})) == {"cpu_shares": 2}


def test_no_resources_no_limits() -> None:
    assert limits_of(t.ResourceRequirements()) == {}


def test_mounts() -> None:
    container = t.Container(name="app", volume_mounts=[
        t.VolumeMount(name="data", mount_path="/data"),
        t.VolumeMount(name="config", mount_path="/etc/app.conf", sub_path="app.conf",
                      read_only=True),
    ])
    dirs = {"data": "/var/lib/k/data", "config": "/var/lib/k/config"}
    assert mounts_of(container, pod(container), dirs) == [
        "/var/lib/k/data:/data:rw", "/var/lib/k/config/app.conf:/etc/app.conf:ro"]


def sandbox(web: t.Pod, ip: str = "10.244.1.5") -> tuple[dict, dict]:
    return sandbox_spec(OWNER, web, pause_image="pause:3.9", attempt=1, network="podnet",
                        ip=ip, host_ip="192.168.1.10")


def test_sandbox_hostname() -> None:
    assert sandbox(pod())[0]["hostname"] == "web"
    assert sandbox(pod(hostname="db-0"))[0]["hostname"] == "db-0"


def test_sandbox_publishes_host_ports_only() -> None:
    web = pod(t.Container(name="app", ports=[
        t.ContainerPort(container_port=80, host_port=8080),
        t.ContainerPort(container_port=53, host_port=5353, protocol="UDP", host_ip="127.0.0.1"),
        t.ContainerPort(container_port=9090),  # no hostPort: not published
    ]))
    config, host = sandbox(web)

    assert config["ports"] == [(80, "tcp"), (53, "udp")]
    assert host["port_bindings"] == {"80/tcp": ("192.168.1.10", 8080),
                                     "53/udp": ("127.0.0.1", 5353)}
    assert (host["network_mode"], host["ipc_mode"]) == ("podnet", "shareable")


def test_sandbox_labels() -> None:
    config, _ = sandbox(pod())
    assert config["labels"][labels.CONTAINER_NAME] == labels.SANDBOX
    assert config["labels"][labels.POD_IP] == "10.244.1.5"
    assert labels.POD_IP not in sandbox(pod(), ip="")[0]["labels"]


def test_service_env() -> None:
    env = service_env([service("my-db", "10.96.0.5",
                               t.ServicePort(name="pg-main", port=5432),
                               t.ServicePort(name="metrics", port=9187, protocol="UDP"))])
    assert env == {
        "MY_DB_SERVICE_HOST": "10.96.0.5",
        "MY_DB_SERVICE_PORT": "5432",
        "MY_DB_SERVICE_PORT_PG_MAIN": "5432",
        "MY_DB_SERVICE_PORT_METRICS": "9187",
        "MY_DB_PORT": "tcp://10.96.0.5:5432",
        "MY_DB_PORT_5432_TCP": "tcp://10.96.0.5:5432",
        "MY_DB_PORT_5432_TCP_PROTO": "tcp",
        "MY_DB_PORT_5432_TCP_PORT": "5432",
        "MY_DB_PORT_5432_TCP_ADDR": "10.96.0.5",
        "MY_DB_PORT_9187_UDP": "udp://10.96.0.5:9187",
        "MY_DB_PORT_9187_UDP_PROTO": "udp",
        "MY_DB_PORT_9187_UDP_PORT": "9187",
        "MY_DB_PORT_9187_UDP_ADDR": "10.96.0.5",
    }


def test_service_env_skips_headless_and_portless_services() -> None:
    assert service_env([
        service("headless", "None", t.ServicePort(port=80)),
        service("pending", "", t.ServicePort(port=80)),
        service("portless", "10.96.0.7"),
    ]) == {}
