"""The pure parts of minictl's workload and node commands, and of minik8s.rollout."""
from __future__ import annotations

import pytest

from minik8s import kinds, rollout
from minik8s.api.v1 import types_pb2 as t
from minik8s.cli.common import CliError
from minik8s.cli.nodes import plan_drain
from minik8s.cli.workloads import (
    container_name,
    deployment_object,
    exposed_ports,
    history_lines,
    image_pairs,
    parse_count,
    parse_duration,
    parse_targets,
    service_for,
    set_images,
)

DEPLOY = kinds.by_name("Deployment")


# ---------------------------------------------------------------- arguments

@pytest.mark.parametrize(("text", "seconds"), [
    ("300", 300), ("30s", 30), ("5m", 300), ("1m30s", 90), ("500ms", 0.5), ("1h", 3600),
    ("0", 0), ("1.5s", 1.5),
])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "m", "-1s", "1 m"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(CliError, match="invalid duration"):
        parse_duration(text)


def test_parse_count() -> None:
    assert parse_count("3") == 3
    assert parse_count("0") == 0
    with pytest.raises(CliError, match="greater than or equal to 0"):
        parse_count("-1")
    with pytest.raises(CliError, match="is required"):
        parse_count(None)
    with pytest.raises(CliError, match='invalid argument "two" for "--replicas"'):
        parse_count("two")


def test_parse_targets_both_forms() -> None:
    assert parse_targets(["deployment", "a", "b"]) == [(DEPLOY, "a"), (DEPLOY, "b")]
    rs = kinds.by_name("ReplicaSet")
    assert parse_targets(["deploy/a", "rs/b"]) == [(DEPLOY, "a"), (rs, "b")]
    with pytest.raises(CliError, match="no name was specified"):
        parse_targets(["deployment"])
    with pytest.raises(CliError, match="no need to specify a resource type"):
        parse_targets(["deployment", "deploy/a"])
    with pytest.raises(CliError, match='resource type "widget"'):
        parse_targets(["widget/a"])
    with pytest.raises(CliError, match="single resource and name"):
        parse_targets(["deploy/"])


def test_image_pairs() -> None:
    assert image_pairs(["deployment/web", "web=nginx:1.26", "side=busybox"]) == (
        ["deployment/web"], {"web": "nginx:1.26", "side": "busybox"})
    with pytest.raises(CliError, match="at least one image update"):
        image_pairs(["deployment/web"])
    with pytest.raises(CliError, match="resources first"):
        image_pairs(["web=nginx", "deployment/web"])
    with pytest.raises(CliError, match="CONTAINER=IMAGE"):
        image_pairs(["deployment/web", "=nginx"])


# ---------------------------------------------------------------- objects

@pytest.mark.parametrize(("image", "name"), [
    ("nginx", "nginx"), ("nginx:1.25", "nginx"), ("docker.io/library/nginx:1.25", "nginx"),
    ("localhost:5000/team/app:v1", "app"), ("busybox@sha256:abc", "busybox"),
    ("minik8s/echo:latest", "echo"), ("my_app.v2", "my-app-v2"),
])
def test_container_name(image: str, name: str) -> None:
    assert container_name(image) == name


def test_deployment_object_as_kubectl_create_deployment() -> None:
    d = deployment_object("web", "ns", ["nginx:1.25", "nginx:1.26"], 3, port=80)
    assert d.metadata.labels == {"app": "web"}
    assert d.spec.selector.match_labels == {"app": "web"}
    assert d.spec.template.metadata.labels == {"app": "web"}
    assert d.spec.replicas == 3
    assert [c.name for c in d.spec.template.spec.containers] == ["nginx", "nginx-2"]
    assert [p.container_port for p in d.spec.template.spec.containers[0].ports] == [80]
    assert not d.spec.template.spec.containers[1].ports
    sleeper = deployment_object("s", "ns", ["busybox"], 1, command=["sleep", "9"])
    assert list(sleeper.spec.template.spec.containers[0].command) == ["sleep", "9"]
    with pytest.raises(CliError, match="multiple --image"):
        deployment_object("s", "ns", ["a", "b"], 1, command=["sleep"])


def test_expose_with_port_and_named_target() -> None:
    d = deployment_object("web", "ns", ["nginx"], 1, port=8080)
    svc = service_for(d, "web-svc", exposed_ports(d, 80, "http", None), "NodePort")
    assert (svc.metadata.name, svc.metadata.namespace) == ("web-svc", "ns")
    assert svc.metadata.labels == {"app": "web"}
    assert svc.spec.selector == {"app": "web"}
    assert svc.spec.type == "NodePort"
    (port,) = svc.spec.ports
    assert (port.port, port.protocol, port.target_port.str_val) == (80, "TCP", "http")
    defaulted, = exposed_ports(d, 80, None, "UDP")
    assert (defaulted.target_port.int_val, defaulted.protocol) == (80, "UDP")


def test_expose_introspects_container_ports() -> None:
    d = deployment_object("web", "ns", ["nginx"], 1, port=8080)
    (port,) = exposed_ports(d, None, None, None)
    assert (port.name, port.port, port.target_port.int_val) == ("", 8080, 8080)
    d.spec.template.spec.containers[0].ports.add(container_port=9090, protocol="UDP")
    ports = exposed_ports(d, None, None, None)
    assert [(p.name, p.port, p.protocol) for p in ports] == [("port-1", 8080, "TCP"),
                                                             ("port-2", 9090, "UDP")]
    with pytest.raises(CliError, match="couldn't find port"):
        exposed_ports(deployment_object("web", "ns", ["nginx"], 1), None, None, None)


def test_expose_needs_a_plain_selector() -> None:
    d = deployment_object("web", "ns", ["nginx"], 1, port=80)
    d.spec.selector.match_expressions.add(key="tier", operator="Exists")
    with pytest.raises(CliError, match="matchExpressions"):
        service_for(d, "web", exposed_ports(d, 80, None, None), None)
    pod = t.Pod(metadata=t.ObjectMeta(name="p", namespace="ns"))
    with pytest.raises(CliError, match="no selector"):
        service_for(pod, "p", [t.ServicePort(port=80)], None)


def test_set_images() -> None:
    spec = t.PodSpec(containers=[t.Container(name="a", image="x:1"),
                                 t.Container(name="b", image="y:1")],
                     init_containers=[t.Container(name="init", image="z:1")])
    set_images(spec, {"a": "x:2"})
    assert [c.image for c in spec.containers] == ["x:2", "y:1"]
    set_images(spec, {"*": "all:3"})
    assert {c.image for c in (*spec.containers, *spec.init_containers)} == {"all:3"}
    with pytest.raises(CliError, match='unable to find container named "nope"'):
        set_images(spec, {"nope": "x"})


# ---------------------------------------------------------------- rollout

def replica_set(revision: int, image: str, cause: str = "", uid: str = "d1") -> t.ReplicaSet:
    annotations = {rollout.REVISION: str(revision)}
    if cause:
        annotations[rollout.CHANGE_CAUSE] = cause
    template = t.PodTemplateSpec(
        metadata=t.ObjectMeta(labels={"app": "web", rollout.HASH_LABEL: f"h{revision}"}),
        spec=t.PodSpec(containers=[t.Container(name="c", image=image)]))
    return t.ReplicaSet(
        metadata=t.ObjectMeta(name=f"web-{revision}", annotations=annotations,
                              owner_references=[t.OwnerReference(kind="Deployment", uid=uid,
                                                                 controller=True)]),
        spec=t.ReplicaSetSpec(template=template))


def test_history_table() -> None:
    revisions = rollout.history([replica_set(10, "a:10"), replica_set(2, "a:2", "set image")])
    assert [r.number for r in revisions] == [2, 10]
    assert history_lines(revisions) == ["REVISION  CHANGE-CAUSE",
                                        "2         set image",
                                        "10        <none>"]
    assert history_lines([]) == ["No rollout history found."]


def test_without_hash_and_controlled_by() -> None:
    rs = replica_set(1, "a:1")
    assert dict(rollout.without_hash(rs.spec.template).metadata.labels) == {"app": "web"}
    assert rs.spec.template.metadata.labels[rollout.HASH_LABEL] == "h1"   # a copy
    assert rollout.controlled_by(rs, "d1") and not rollout.controlled_by(rs, "d2")


def deployment(replicas: int, generation: int = 2, observed: int = 2, updated: int = 0,
               total: int = 0, available: int = 0, reason: str = "") -> t.Deployment:
    d = t.Deployment(metadata=t.ObjectMeta(name="web", generation=generation),
                     spec=t.DeploymentSpec(replicas=replicas),
                     status=t.DeploymentStatus(observed_generation=observed,
                                               updated_replicas=updated, replicas=total,
                                               available_replicas=available))
    if reason:
        d.status.conditions.add(type="Progressing", status="False", reason=reason)
    return d


def test_rollout_status_lines_as_kubectl() -> None:
    waiting = 'Waiting for deployment "web" rollout to finish: '
    assert rollout.status(deployment(3, generation=3, observed=2)) == (
        "Waiting for deployment spec update to be observed...", False)
    assert rollout.status(deployment(3, updated=1, total=4)) == (
        f"{waiting}1 out of 3 new replicas have been updated...", False)
    assert rollout.status(deployment(3, updated=3, total=4, available=3)) == (
        f"{waiting}1 old replicas are pending termination...", False)
    assert rollout.status(deployment(3, updated=3, total=3, available=1)) == (
        f"{waiting}1 of 3 updated replicas are available...", False)
    assert rollout.status(deployment(3, updated=3, total=3, available=3)) == (
        'deployment "web" successfully rolled out', True)
    with pytest.raises(rollout.RolloutFailed, match="exceeded its progress deadline"):
        rollout.status(deployment(3, reason=rollout.PROGRESS_DEADLINE_EXCEEDED))


def test_revision_to_restore_names_the_deployment() -> None:
    with pytest.raises(rollout.NoRevision, match='no rollout history found for deployment "web"'):
        rollout.revision_to_restore([replica_set(1, "a:1")], 0, "web")


# ---------------------------------------------------------------- drain

def pod(name: str, controller: str = "ReplicaSet", phase: str = "Running",
        empty_dir: bool = False, mirror: bool = False) -> t.Pod:
    meta = t.ObjectMeta(name=name, namespace="ns")
    if controller:
        meta.owner_references.add(kind=controller, name="owner", uid="u", controller=True)
    if mirror:
        meta.annotations["kubernetes.io/config.mirror"] = "x"
    spec = t.PodSpec(volumes=[t.Volume(name="v", empty_dir=t.EmptyDirVolumeSource())]
                     if empty_dir else [])
    return t.Pod(metadata=meta, spec=spec, status=t.PodStatus(phase=phase))


def names(pods: list[t.Pod]) -> list[str]:
    return [p.metadata.name for p in pods]


def test_drain_plan_refuses_daemonset_pods_unless_ignored() -> None:
    pods = [pod("web"), pod("agent", controller="DaemonSet"), pod("static", mirror=True)]
    blocked = plan_drain(pods)
    assert blocked.errors == ["cannot delete DaemonSet-managed Pods (use --ignore-daemonsets "
                              "to ignore): ns/agent"]
    allowed = plan_drain(pods, ignore_daemonsets=True)
    assert not allowed.errors
    assert names(allowed.delete) == ["web"]
    assert allowed.warnings == ["ignoring DaemonSet-managed Pods: ns/agent"]


def test_drain_plan_bare_and_local_storage_pods() -> None:
    pods = [pod("bare", controller=""), pod("cache", empty_dir=True),
            pod("done", controller="", phase="Succeeded")]
    blocked = plan_drain(pods)
    assert len(blocked.errors) == 2
    assert "no controller (use --force to override): ns/bare" in blocked.errors[0]
    assert "--delete-emptydir-data to override): ns/cache" in blocked.errors[1]
    allowed = plan_drain(pods, force=True, delete_emptydir_data=True)
    assert not allowed.errors
    assert names(allowed.delete) == ["bare", "cache", "done"]
    assert len(allowed.warnings) == 2


# ---------------------------------------------------------------- help

@pytest.mark.parametrize("words", [
    "create", "create deployment", "create namespace", "expose", "scale", "rollout",
    "rollout status", "rollout history", "rollout undo", "rollout restart", "rollout pause",
    "rollout resume", "set", "set image", "delete", "cordon", "uncordon", "drain",
])
def test_every_command_has_help_with_an_example(words: str) -> None:
    from click.testing import CliRunner

    from minik8s.cli.minictl import main

    result = CliRunner().invoke(main, [*words.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert "Examples:" in result.output
    assert f"minictl {words.split()[0]}" in result.output.split("Examples:")[1]
