"""minictl's workload and node commands, run as a user runs them (a subprocess).

Most work on objects only, on the shared cluster (no scheduler, controllers or
kubelets); rollout status, restart and drain run real pods on node_cluster.
"""
from __future__ import annotations

import asyncio
import datetime
import os
import uuid
from collections.abc import AsyncIterator

import pytest

from minik8s import rollout
from minik8s.api.v1 import types_pb2 as t
from minik8s.cli.nodes import set_unschedulable
from minik8s.client import ApiClient
from minik8s.localcluster import LocalCluster
from minik8s.retry import retry_on_conflict
from tests.integration.helpers import MINICTL, Result, eventually, minictl, ready_node
from tests.integration.kubelet_helpers import echo_deployment, echo_pod


def ok(result: Result) -> list[str]:
    """The lines a command printed, once it is known to have succeeded quietly."""
    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    return result.out.splitlines()


def error_line(result: Result) -> str:
    """The one line a failed command printed on stderr."""
    assert result.code == 1, (result.out, result.err)
    assert "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    return lines[0]


def deployment(name: str, namespace: str, image: str = "nginx:1.25",
               replicas: int = 2) -> t.Deployment:
    labels = {"app": name}
    return t.Deployment(
        metadata=t.ObjectMeta(name=name, namespace=namespace, labels=labels),
        spec=t.DeploymentSpec(
            replicas=replicas, selector=t.LabelSelector(match_labels=labels),
            template=t.PodTemplateSpec(
                metadata=t.ObjectMeta(labels=labels),
                spec=t.PodSpec(containers=[t.Container(name="web", image=image)]))))


# ---------------------------------------------------------------- create, expose

async def test_create_deployment_and_namespace(cli_env: dict[str, str], client: ApiClient,
                                               namespace: str) -> None:
    created = await minictl(cli_env, "create", "deployment", "web", "--image", "nginx:1.25",
                            "--replicas", "3", "--port", "80", "-n", namespace)
    assert ok(created) == ["deployment.apps/web created"]
    d = await client.get("Deployment", "web", namespace)
    assert d.spec.replicas == 3
    assert d.spec.selector.match_labels == {"app": "web"}
    assert d.spec.template.metadata.labels == {"app": "web"}
    (container,) = d.spec.template.spec.containers
    assert (container.name, container.image) == ("nginx", "nginx:1.25")
    assert [p.container_port for p in container.ports] == [80]

    sleeper = await minictl(cli_env, "-n", namespace, "create", "deployment", "sleeper",
                            "--image", "busybox:1.36", "--", "sleep", "3600")
    assert ok(sleeper) == ["deployment.apps/sleeper created"]
    d = await client.get("Deployment", "sleeper", namespace)
    assert d.spec.replicas == 1
    assert list(d.spec.template.spec.containers[0].command) == ["sleep", "3600"]

    again = await minictl(cli_env, "create", "deployment", "web", "--image", "nginx",
                          "-n", namespace)
    assert error_line(again) == \
        'Error from server (AlreadyExists): deployments "web" already exists'
    bad = await minictl(cli_env, "create", "deployment", "neg", "--image", "nginx",
                        "--replicas", "-2", "-n", namespace)
    assert "COUNT must be greater than or equal to 0" in error_line(bad)

    name = f"t-{uuid.uuid4().hex[:8]}"
    assert ok(await minictl(cli_env, "create", "namespace", name)) == [f"namespace/{name} created"]
    assert (await client.get("Namespace", name)).metadata.name == name

    # create -f keeps working
    manifest = "apiVersion: v1\nkind: Service\nmetadata: {name: plain}\n" \
               "spec: {selector: {app: x}, ports: [{port: 80}]}\n"
    from_file = await minictl(cli_env, "create", "-f", "-", "-n", namespace, stdin=manifest)
    assert ok(from_file) == ["service/plain created"]


async def test_expose_deployment(cli_env: dict[str, str], client: ApiClient,
                                 namespace: str) -> None:
    ok(await minictl(cli_env, "create", "deployment", "web", "--image", "nginx:1.25",
                     "--port", "8080", "-n", namespace))
    exposed = await minictl(cli_env, "expose", "deployment", "web", "--port", "80",
                            "--target-port", "8080", "--type", "NodePort", "--name", "web-public",
                            "-n", namespace)
    assert ok(exposed) == ["service/web-public exposed"]
    svc = await client.get("Service", "web-public", namespace)
    assert svc.spec.type == "NodePort"
    assert svc.spec.selector == {"app": "web"}
    (port,) = svc.spec.ports
    assert (port.port, port.target_port.int_val, port.protocol) == (80, 8080, "TCP")
    assert port.node_port > 0
    assert svc.spec.cluster_ip

    # no --port: the container's port; the service takes the deployment's name
    introspected = await minictl(cli_env, "expose", "deploy/web", "-n", namespace)
    assert ok(introspected) == ["service/web exposed"]
    svc = await client.get("Service", "web", namespace)
    assert svc.spec.type == "ClusterIP"
    assert [(p.port, p.target_port.int_val) for p in svc.spec.ports] == [(8080, 8080)]

    missing = await minictl(cli_env, "expose", "deployment", "nope", "--port", "80",
                            "-n", namespace)
    assert error_line(missing) == 'Error from server (NotFound): deployments "nope" not found'


# ---------------------------------------------------------------- scale, set image

async def test_scale(cli_env: dict[str, str], client: ApiClient, namespace: str) -> None:
    await client.create(deployment("web", namespace))
    scaled = await minictl(cli_env, "scale", "deployment", "web", "--replicas", "5",
                           "-n", namespace)
    assert ok(scaled) == ["deployment.apps/web scaled"]
    assert (await client.get("Deployment", "web", namespace)).spec.replicas == 5

    rs = t.ReplicaSet(metadata=t.ObjectMeta(name="cache", namespace=namespace),
                      spec=t.ReplicaSetSpec(replicas=2,
                                            selector=t.LabelSelector(match_labels={"a": "c"}),
                                            template=deployment("c", namespace).spec.template))
    rs.spec.template.metadata.labels["a"] = "c"
    await client.create(rs)
    both = await minictl(cli_env, "scale", "deploy/web", "rs/cache", "--replicas=0",
                         "-n", namespace)
    assert ok(both) == ["deployment.apps/web scaled", "replicaset.apps/cache scaled"]
    assert (await client.get("Deployment", "web", namespace)).spec.replicas == 0
    assert (await client.get("ReplicaSet", "cache", namespace)).spec.replicas == 0

    precondition = await minictl(cli_env, "scale", "deployment", "web", "--current-replicas",
                                 "3", "--replicas", "1", "-n", namespace)
    assert error_line(precondition) == "error: expected replicas to be 3, was 0"

    for bad in ("-1", "three"):
        result = await minictl(cli_env, "scale", "deployment", "web", "--replicas", bad,
                               "-n", namespace)
        assert error_line(result).startswith("error: ")
    missing = await minictl(cli_env, "scale", "deployment", "nope", "--replicas", "1",
                            "-n", namespace)
    assert error_line(missing) == 'Error from server (NotFound): deployments "nope" not found'
    pods = await minictl(cli_env, "scale", "pod", "p", "--replicas", "1", "-n", namespace)
    assert "scale is not supported for pods" in error_line(pods)


async def test_set_image(cli_env: dict[str, str], client: ApiClient, namespace: str) -> None:
    await client.create(deployment("web", namespace))
    updated = await minictl(cli_env, "set", "image", "deployment/web", "web=nginx:1.26",
                            "-n", namespace)
    assert ok(updated) == ["deployment.apps/web image updated"]
    d = await client.get("Deployment", "web", namespace)
    assert d.spec.template.spec.containers[0].image == "nginx:1.26"
    assert d.metadata.generation == 2

    same = await minictl(cli_env, "set", "image", "deployment", "web", "web=nginx:1.26",
                         "-n", namespace)
    assert ok(same) == []   # as kubectl: nothing changed, nothing printed
    unknown = await minictl(cli_env, "set", "image", "deployment/web", "nope=nginx",
                            "-n", namespace)
    assert error_line(unknown) == 'error: unable to find container named "nope"'
    missing = await minictl(cli_env, "set", "image", "deployment/gone", "web=nginx",
                            "-n", namespace)
    assert error_line(missing) == 'Error from server (NotFound): deployments "gone" not found'


# ---------------------------------------------------------------- rollout (objects only)

async def test_rollout_pause_resume_restart(cli_env: dict[str, str], client: ApiClient,
                                            namespace: str) -> None:
    await client.create(deployment("web", namespace))

    async def run(*args: str) -> Result:
        return await minictl(cli_env, "rollout", *args, "-n", namespace)

    assert ok(await run("pause", "deployment/web")) == ["deployment.apps/web paused"]
    assert (await client.get("Deployment", "web", namespace)).spec.paused
    assert error_line(await run("pause", "deployment/web")) == \
        'error: deployments.apps "web" is already paused'
    assert "can't restart paused deployment" in error_line(await run("restart", "deploy/web"))

    assert ok(await run("resume", "deployment", "web")) == ["deployment.apps/web resumed"]
    assert not (await client.get("Deployment", "web", namespace)).spec.paused
    assert error_line(await run("resume", "deployment/web")) == \
        'error: deployments.apps "web" is not paused'

    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    assert ok(await run("restart", "deployment/web")) == ["deployment.apps/web restarted"]
    d = await client.get("Deployment", "web", namespace)
    stamp = d.spec.template.metadata.annotations[rollout.RESTARTED_AT]
    assert datetime.datetime.fromisoformat(stamp) >= before
    assert error_line(await run("restart", "deployment/nope")) == \
        'Error from server (NotFound): deployments "nope" not found'
    assert "not supported for pods" in error_line(await run("pause", "pod/x"))


async def test_rollout_history_and_undo(cli_env: dict[str, str], client: ApiClient,
                                        namespace: str) -> None:
    """History and rollback read the ReplicaSets the test makes as the controller would."""
    d = await client.create(deployment("web", namespace, image="app:3"))
    for revision in (1, 2, 3):
        template = t.PodTemplateSpec()
        template.CopyFrom(d.spec.template)
        template.spec.containers[0].image = f"app:{revision}"
        template.metadata.labels[rollout.HASH_LABEL] = f"hash{revision}"
        annotations = {rollout.REVISION: str(revision)}
        if revision == 1:
            annotations[rollout.CHANGE_CAUSE] = "first release"
        await client.create(t.ReplicaSet(
            metadata=t.ObjectMeta(
                name=f"web-hash{revision}", namespace=namespace, annotations=annotations,
                owner_references=[t.OwnerReference(
                    api_version="apps/v1", kind="Deployment", name="web", uid=d.metadata.uid,
                    controller=True)]),
            spec=t.ReplicaSetSpec(replicas=0, selector=t.LabelSelector(
                match_labels=dict(template.metadata.labels)), template=template)))

    async def run(*args: str) -> Result:
        return await minictl(cli_env, "rollout", *args, "-n", namespace)

    assert ok(await run("history", "deployment/web")) == [
        "deployment.apps/web", "REVISION  CHANGE-CAUSE", "1         first release",
        "2         <none>", "3         <none>"]
    detail = ok(await run("history", "deployment/web", "--revision", "2"))
    assert detail[0] == "deployment.apps/web with revision #2"
    assert "    Image:\tapp:2" in detail
    assert rollout.HASH_LABEL not in "\n".join(detail)
    assert error_line(await run("history", "deployment/web", "--revision", "7")) == \
        "error: unable to find the specified revision 7"

    async def image() -> str:
        d = await client.get("Deployment", "web", namespace)
        assert rollout.HASH_LABEL not in d.spec.template.metadata.labels
        return d.spec.template.spec.containers[0].image

    assert ok(await run("undo", "deployment/web")) == ["deployment.apps/web rolled back"]
    assert await image() == "app:2"
    assert ok(await run("undo", "deployment", "web", "--to-revision", "2")) == [
        "deployment.apps/web skipped rollback (current template already matches revision 2)"]
    assert ok(await run("undo", "deployment/web", "--to-revision", "1")) == [
        "deployment.apps/web rolled back"]
    assert await image() == "app:1"
    assert error_line(await run("undo", "deployment/web", "--to-revision", "9")) == \
        "error: unable to find specified revision 9 in history"

    ok(await run("pause", "deployment/web"))
    assert "cannot rollback a paused deployment" in error_line(await run("undo", "deploy/web"))

    await client.create(deployment("fresh", namespace))
    assert ok(await run("history", "deployment/fresh")) == [
        "deployment.apps/fresh", "No rollout history found."]
    assert error_line(await run("undo", "deployment/fresh")) == \
        'error: no rollout history found for deployment "fresh"'


async def test_rollout_status_follows_the_deployment(cli_env: dict[str, str],
                                                     client: ApiClient, namespace: str) -> None:
    """No controller runs here: the test writes the status the controller would."""
    await client.create(deployment("web", namespace))
    unobserved = "Waiting for deployment spec update to be observed..."
    timed_out = await minictl(cli_env, "rollout", "status", "deployment/web", "--timeout", "1s",
                              "-n", namespace)
    assert timed_out.out.splitlines() == [unobserved]
    assert error_line(timed_out) == "error: timed out waiting for the condition"
    once = await minictl(cli_env, "rollout", "status", "deployment/web", "--watch=false",
                         "-n", namespace)
    assert ok(once) == [unobserved]

    # a status written while it waits reaches it through its watch
    proc = await asyncio.create_subprocess_exec(
        *MINICTL, "rollout", "status", "deployment", "web", "--timeout", "60s", "-n", namespace,
        env=cli_env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    first = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert first.decode().strip() == unobserved

    async def report(updated: int, available: int, reason: str = "") -> None:
        async def attempt() -> None:
            d = await client.get("Deployment", "web", namespace)
            d.status.observed_generation = d.metadata.generation
            d.status.replicas = d.status.updated_replicas = updated
            d.status.available_replicas = available
            if reason:
                d.status.conditions.add(type="Progressing", status="False", reason=reason)
            await client.update_status(d)
        await retry_on_conflict(attempt)

    await report(2, 1)
    await report(2, 2)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err
    assert out.decode().splitlines()[-1] == 'deployment "web" successfully rolled out'
    assert ok(await minictl(cli_env, "rollout", "status", "deploy/web", "-n", namespace)) == [
        'deployment "web" successfully rolled out']

    await report(2, 2, reason=rollout.PROGRESS_DEADLINE_EXCEEDED)
    failed = await minictl(cli_env, "rollout", "status", "deploy/web", "-n", namespace)
    assert error_line(failed) == 'error: deployment "web" exceeded its progress deadline'
    missing = await minictl(cli_env, "rollout", "status", "deployment/nope", "-n", namespace)
    assert error_line(missing) == 'Error from server (NotFound): deployments "nope" not found'


# ---------------------------------------------------------------- delete -l, --all

async def test_delete_by_selector_and_all(cli_env: dict[str, str], client: ApiClient,
                                          namespace: str) -> None:
    for name, app in (("a", "x"), ("b", "x"), ("c", "y")):
        await client.create(t.Pod(
            metadata=t.ObjectMeta(name=name, namespace=namespace, labels={"app": app}),
            spec=t.PodSpec(containers=[t.Container(name="c", image="busybox:1.36")])))

    async def left() -> list[str]:
        return sorted(p.metadata.name for p in (await client.list("Pod", namespace))[0])

    deleted = await minictl(cli_env, "delete", "pods", "-l", "app=x", "--grace-period", "0",
                            "-n", namespace)
    assert sorted(ok(deleted)) == ['pod "a" deleted', 'pod "b" deleted']
    assert await left() == ["c"]
    none = await minictl(cli_env, "delete", "pods", "-l", "app=none", "-n", namespace)
    assert ok(none) == ["No resources found"]
    named = await minictl(cli_env, "delete", "pods", "c", "-l", "app=y", "-n", namespace)
    assert error_line(named) == \
        "error: name cannot be provided when a selector or --all is specified"

    await client.create(deployment("web", namespace))
    everything = await minictl(cli_env, "delete", "po,deploy", "--all", "--cascade=orphan",
                               "-n", namespace)
    assert ok(everything) == ['pod "c" deleted', 'deployment.apps "web" deleted']
    assert await left() == []


# ---------------------------------------------------------------- cordon, drain (objects only)

@pytest.fixture
async def node(client: ApiClient) -> AsyncIterator[str]:
    name = f"n-{uuid.uuid4().hex[:8]}"
    await ready_node(client, name)
    yield name
    await client.delete("Node", name)


async def test_cordon_and_uncordon(cli_env: dict[str, str], client: ApiClient,
                                   node: str) -> None:
    assert ok(await minictl(cli_env, "cordon", node)) == [f"node/{node} cordoned"]
    assert (await client.get("Node", node)).spec.unschedulable
    assert ok(await minictl(cli_env, "cordon", node)) == [f"node/{node} already cordoned"]
    table = ok(await minictl(cli_env, "get", "node", node))
    assert "Ready,SchedulingDisabled" in table[1]

    assert ok(await minictl(cli_env, "uncordon", node)) == [f"node/{node} uncordoned"]
    assert not (await client.get("Node", node)).spec.unschedulable
    assert ok(await minictl(cli_env, "uncordon", node)) == [f"node/{node} already uncordoned"]
    missing = await minictl(cli_env, "cordon", "no-such-node")
    assert error_line(missing) == 'Error from server (NotFound): nodes "no-such-node" not found'


async def test_drain_refuses_daemonset_pods_then_deletes_the_rest(
        cli_env: dict[str, str], client: ApiClient, namespace: str, node: str) -> None:
    def bound(name: str, owner: str = "") -> t.Pod:
        pod = t.Pod(metadata=t.ObjectMeta(name=name, namespace=namespace),
                    spec=t.PodSpec(node_name=node, containers=[
                        t.Container(name="c", image="busybox:1.36")]))
        if owner:
            pod.metadata.owner_references.add(api_version="apps/v1", kind=owner, name="o",
                                               uid=str(uuid.uuid4()), controller=True)
        return pod
    for pod in (bound("agent", "DaemonSet"), bound("web-1", "ReplicaSet"), bound("bare")):
        await client.create(pod)

    blocked = await minictl(cli_env, "drain", node)
    assert blocked.out.splitlines() == [f"node/{node} cordoned"]
    line = error_line(blocked)
    assert line.startswith(f'error: unable to drain node "{node}" due to error: ')
    assert ("cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): "
            f"{namespace}/agent") in line
    assert f"cannot delete Pods that declare no controller (use --force to override): " \
           f"{namespace}/bare" in line
    assert len((await client.list("Pod", namespace))[0]) == 3   # nothing deleted

    # no kubelet here to finish a graceful deletion: grace 0 removes the pods at once
    drained = await minictl(cli_env, "drain", node, "--ignore-daemonsets", "--force",
                            "--grace-period", "0", "--timeout", "30s")
    lines = ok(drained)
    assert lines[0] == f"node/{node} already cordoned"
    assert sorted(lines[1:-1]) == ["pod/bare deleted", "pod/web-1 deleted"]
    assert lines[-1] == f"node/{node} drained"
    assert f"Warning: ignoring DaemonSet-managed Pods: {namespace}/agent" in drained.err
    assert [p.metadata.name for p in (await client.list("Pod", namespace))[0]] == ["agent"]


# ---------------------------------------------------------------- with real pods (node_cluster)

def env_of(cluster: LocalCluster) -> dict[str, str]:
    return dict(os.environ, MINIK8S_SERVERS=",".join(cluster.servers))


async def live_pods(client: ApiClient, namespace: str, app: str) -> list[t.Pod]:
    pods, _ = await client.list("Pod", namespace, label_selector=f"app={app}")
    return [p for p in pods if not p.metadata.HasField("deletion_timestamp")]


def is_ready(pod: t.Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


async def test_rollout_status_and_restart_with_real_pods(
        node_cluster: LocalCluster, node_client: ApiClient, node_namespace: str) -> None:
    env, ns = env_of(node_cluster), node_namespace
    await node_client.create(echo_deployment("web", ns, 2))
    status = await minictl(env, "rollout", "status", "deployment/web", "--timeout", "120s",
                           "-n", ns)
    assert ok(status)[-1] == 'deployment "web" successfully rolled out'
    before = {p.metadata.uid for p in await live_pods(node_client, ns, "web")}
    assert len(before) == 2

    assert ok(await minictl(env, "rollout", "restart", "deployment/web", "-n", ns)) == [
        "deployment.apps/web restarted"]
    status = await minictl(env, "rollout", "status", "deployment", "web", "--timeout", "120s",
                           "-n", ns)
    lines = ok(status)
    assert lines[-1] == 'deployment "web" successfully rolled out'
    assert all(line.startswith('Waiting for deployment') for line in lines[:-1])
    assert any('Waiting for deployment "web" rollout to finish' in line for line in lines)

    async def replaced() -> list[t.Pod] | None:
        pods = await live_pods(node_client, ns, "web")
        fresh = [p for p in pods if p.metadata.uid not in before and is_ready(p)]
        return pods if len(pods) == 2 == len(fresh) else None
    for pod in await eventually(replaced, timeout=60, interval=0.2):
        assert rollout.RESTARTED_AT in pod.metadata.annotations

    # the controller copies the deployment's change-cause to its current ReplicaSet
    async def annotate() -> None:
        d = await node_client.get("Deployment", "web", ns)
        d.metadata.annotations[rollout.CHANGE_CAUSE] = "restarted by the test"
        await node_client.update(d)
    await retry_on_conflict(annotate)

    async def recorded() -> list[str] | None:
        history = ok(await minictl(env, "rollout", "history", "deployment/web", "-n", ns))
        return history if history[-1] == "2         restarted by the test" else None
    history = await eventually(recorded, timeout=30, interval=0.2)
    assert history == ["deployment.apps/web", "REVISION  CHANGE-CAUSE", "1         <none>",
                       "2         restarted by the test"]


async def test_drain_moves_pods_then_uncordon(
        node_cluster: LocalCluster, node_client: ApiClient, node_namespace: str) -> None:
    env, ns = env_of(node_cluster), node_namespace
    agent = echo_pod("agent", ns)
    labels = {"app": "agent"}
    await node_client.create(t.DaemonSet(
        metadata=t.ObjectMeta(name="agent", namespace=ns),
        spec=t.DaemonSetSpec(selector=t.LabelSelector(match_labels=labels),
                             template=t.PodTemplateSpec(metadata=t.ObjectMeta(labels=labels),
                                                        spec=agent.spec))))
    await node_client.create(echo_deployment("web", ns, 2))
    ok(await minictl(env, "rollout", "status", "deployment/web", "--timeout", "120s", "-n", ns))
    nodes = sorted(n.metadata.name for n in (await node_client.list("Node"))[0])
    assert len(nodes) == 2

    async def agents_everywhere() -> bool:
        pods = await live_pods(node_client, ns, "agent")
        return sorted(p.spec.node_name for p in pods if p.spec.node_name) == nodes
    await eventually(agents_everywhere, timeout=60, interval=0.2)
    web = await live_pods(node_client, ns, "web")
    target = web[0].spec.node_name
    other = next(n for n in nodes if n != target)
    on_target = sorted(p.metadata.name for p in web if p.spec.node_name == target)

    try:
        blocked = await minictl(env, "drain", target, "--force", "--delete-emptydir-data")
        line = error_line(blocked)
        assert "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore)" in line
        assert f"{ns}/agent-" in line
        assert {p.metadata.uid for p in await live_pods(node_client, ns, "web")} == \
            {p.metadata.uid for p in web}   # nothing deleted

        # --force and --delete-emptydir-data: pods other tests left behind must not stop it
        drained = await minictl(env, "drain", target, "--ignore-daemonsets", "--force",
                                "--delete-emptydir-data", "--timeout", "120s")
        lines = ok(drained)
        assert lines[0] == f"node/{target} already cordoned"
        assert lines[-1] == f"node/{target} drained"
        assert {f"pod/{name} deleted" for name in on_target} <= set(lines)
        assert f"Warning: ignoring DaemonSet-managed Pods: {ns}/agent-" in drained.err
        assert (await node_client.get("Node", target)).spec.unschedulable

        async def moved() -> bool:
            pods = await live_pods(node_client, ns, "web")
            return len(pods) == 2 and all(p.spec.node_name == other and is_ready(p)
                                          for p in pods)
        await eventually(moved, timeout=90, interval=0.2)
        agents = await live_pods(node_client, ns, "agent")
        assert target in {p.spec.node_name for p in agents}   # DaemonSet pods stay

        assert ok(await minictl(env, "uncordon", target)) == [f"node/{target} uncordoned"]
        assert not (await node_client.get("Node", target)).spec.unschedulable
    finally:
        await set_unschedulable(node_client, target, False)
