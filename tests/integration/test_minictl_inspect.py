"""minictl describe, events, cluster-info, custom-columns and completion, as a user runs them.

Most tests use the shared cluster (etcd x3, apiservers x3, nothing else) and
write the events they look for by hand. Those that need pods scheduled,
controllers recording events or leaders elected use a cluster of this
module's own with one scheduler and one controller-manager (the test plays
kubelet); the one that kills an etcd member uses a cluster of its own.
"""
from __future__ import annotations

import asyncio
import datetime
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from minik8s.localcluster import LocalCluster
from minik8s.retry import retry_on_conflict
from tests.integration.conftest import _start
from tests.integration.helpers import (
    MINICTL,
    FakeKubelet,
    Result,
    eventually,
    leader_process,
    minictl,
    pod,
    ready_node,
)

SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - name: http
    port: 80
    targetPort: 8080
"""

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports: [{containerPort: 80}]
        resources:
          requests: {cpu: 100m, memory: 64Mi}
        readinessProbe:
          httpGet: {path: /ready, port: 80}
"""


def squeezed(text: str) -> list[str]:
    """The lines with runs of spaces made one: alignment aside, what a user reads."""
    return [" ".join(line.split()) for line in text.splitlines()]


def one_line_error(result: Result) -> str:
    assert result.code == 1, result
    assert "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    return lines[0]


def event_cells(row: str) -> list[str]:
    """TYPE, REASON and OBJECT of a row of `minictl events` (LAST SEEN may hold spaces)."""
    match = re.search(r"\s(Normal|Warning)\s+(\S+)\s+(\S+)\s", row)
    assert match, row
    return list(match.groups())


def event(namespace: str, obj: object, reason: str, message: str, seconds_ago: float,
          type_: str = "Normal", count: int = 1) -> t.Event:
    """An event about obj (a typed object), as a component records it."""
    kind = type(obj).__name__
    meta = obj.metadata  # type: ignore[attr-defined]
    ev = t.Event(metadata=t.ObjectMeta(name=f"{meta.name}.{uuid.uuid4().hex[:8]}",
                                       namespace=namespace),
                 involved_object=t.ObjectReference(kind=kind, name=meta.name,
                                                   namespace=meta.namespace, uid=meta.uid),
                 reason=reason, message=message, type=type_, count=count,
                 source=t.EventSource(component="test-recorder"))
    when = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=seconds_ago)
    ev.first_timestamp.FromDatetime(when - datetime.timedelta(seconds=60 * (count - 1)))
    ev.last_timestamp.FromDatetime(when)
    return ev


# ---------------------------------------------------------------- shared cluster

async def test_cluster_info_on_the_shared_cluster(cli_env: dict[str, str],
                                                  cluster: LocalCluster) -> None:
    async def healthy() -> list[str] | None:
        result = await minictl(cli_env, "cluster-info")
        assert result.code == 0, result.err
        lines = result.out.splitlines()
        etcd = [line for line in lines if line.startswith("etcd etcd-")]
        if len(etcd) == 3 and all(": healthy" in line for line in etcd):
            return lines
        return None
    lines = await eventually(healthy, timeout=15, interval=0.5)
    for server in cluster.servers:
        assert f"apiserver {server}: healthy" in lines
    etcd = [line for line in lines if line.startswith("etcd etcd-")]
    assert [line.split()[1] for line in etcd] == ["etcd-0", "etcd-1", "etcd-2"]
    for line, proc in zip(etcd, cluster.role("etcd"), strict=True):
        assert f"(https://{cluster.host}:{proc.ports['client']})" in line
    leaders = [line.split()[1] for line in etcd if ", leader" in line]
    assert len(leaders) == 1
    assert f"etcd leader: {leaders[0]}" in lines
    assert any(line.startswith("scheduler leader: ") for line in lines)
    assert any(line.startswith("controller-manager leader: ") for line in lines)


async def test_custom_columns(cli_env: dict[str, str], client: ApiClient,
                              namespace: str) -> None:
    placed = pod("a", namespace, app="web")
    placed.spec.node_name = "node-a"
    created = await client.create(placed)
    await client.create(pod("bb", namespace))

    spec = ("custom-columns=NAME:.metadata.name,NODE:.spec.nodeName,"
            "IMAGE:.spec.containers[0].image,APP:.metadata.labels.app")
    result = await minictl(cli_env, "get", "pods", "-n", namespace, "-o", spec)
    assert result.code == 0, result.err
    assert [line.split() for line in result.out.splitlines()] == [
        ["NAME", "NODE", "IMAGE", "APP"],
        ["a", "node-a", "busybox:1.36", "web"],
        ["bb", "<none>", "busybox:1.36", "<none>"],
    ]
    one = await minictl(cli_env, "get", "pod", "a", "-n", namespace,
                        "-o", "custom-columns=UID:{.metadata.uid},KIND:kind")
    assert one.out.split() == ["UID", "KIND", created.metadata.uid, "Pod"]

    bad = await minictl(cli_env, "get", "pods", "-n", namespace, "-o", "custom-columns=NAME")
    assert bad.code != 0 and bad.out == ""
    assert "expected <header>:<json-path-expr>" in bad.err
    assert "Traceback" not in bad.err


async def test_events_listing(cli_env: dict[str, str], client: ApiClient,
                              namespace: str) -> None:
    a = await client.create(pod("a", namespace))
    b = await client.create(pod("b", namespace))
    # created out of order: the listing sorts by when they last happened
    await client.create(event(namespace, b, "Pulled", "pulled the image", 10))
    await client.create(event(namespace, a, "Scheduled", "assigned to node-1", 100))
    await client.create(event(namespace, a, "BackOff", "back-off restarting", 30, "Warning",
                              count=4))

    result = await minictl(cli_env, "events", "-n", namespace)
    assert result.code == 0, result.err
    header, *rows = result.out.splitlines()
    assert header.split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert [event_cells(row)[1:] for row in rows] == [
        ["Scheduled", "pod/a"], ["BackOff", "pod/a"], ["Pulled", "pod/b"]]
    assert re.match(r"3\ds \(x4 over 3m\d+s\)\s+Warning\s+BackOff\s+pod/a\s+back-off restarting$",
                    rows[1]), rows[1]

    warnings = await minictl(cli_env, "events", "-n", namespace, "--types", "Warning")
    assert [event_cells(row)[1] for row in warnings.out.splitlines()[1:]] == ["BackOff"]
    about_b = await minictl(cli_env, "events", "-n", namespace, "--for", "po/b")
    assert [event_cells(row)[1] for row in about_b.out.splitlines()[1:]] == ["Pulled"]

    everywhere = await minictl(cli_env, "events", "-A")
    assert everywhere.out.split()[0] == "NAMESPACE"
    assert sum(line.startswith(namespace) for line in everywhere.out.splitlines()) == 3

    table = await minictl(cli_env, "get", "events", "-n", namespace)
    assert table.code == 0 and table.out.split()[:2] == ["LAST", "SEEN"]
    assert len(table.out.splitlines()) == 4

    bad = one_line_error(await minictl(cli_env, "events", "--for", "a"))
    assert bad == "error: --for: expected KIND/NAME, got 'a'"


async def test_events_in_an_empty_namespace(cli_env: dict[str, str], namespace: str) -> None:
    result = await minictl(cli_env, "events", "-n", namespace)
    assert (result.code, result.out) == (0, "")
    assert result.err.strip() == f"No events found in {namespace} namespace."


async def test_events_watch(cli_env: dict[str, str], client: ApiClient, namespace: str) -> None:
    a = await client.create(pod("a", namespace))
    await client.create(event(namespace, a, "Scheduled", "assigned", 5))
    proc = await asyncio.create_subprocess_exec(
        *MINICTL, "events", "-n", namespace, "-w", "--watch-timeout", "20", env=cli_env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    try:
        seen = [(await asyncio.wait_for(proc.stdout.readline(), 15)).decode() for _ in range(2)]
        assert "Scheduled" in seen[1]
        await client.create(event(namespace, a, "Started", "started container c", 0))
        line = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode()
        assert event_cells(line) == ["Normal", "Started", "pod/a"]
    finally:
        proc.terminate()
        await proc.wait()


async def test_describe_service(cli_env: dict[str, str], client: ApiClient,
                                namespace: str) -> None:
    applied = await minictl(cli_env, "apply", "-n", namespace, "-f", "-", stdin=SERVICE)
    assert applied.code == 0, applied.err
    svc = await client.get("Service", "web", namespace)
    await client.create(t.Endpoints(
        metadata=t.ObjectMeta(name="web", namespace=namespace),
        subsets=[t.EndpointSubset(addresses=[t.EndpointAddress(ip="10.244.0.5")],
                                  ports=[t.EndpointPort(name="http", port=8080)])]))
    endpoints = await client.get("Endpoints", "web", namespace)
    await client.create(event(namespace, svc, "Synced", "service synced", 20))
    await client.create(event(namespace, endpoints, "Other", "about the endpoints", 20))
    stale = event(namespace, svc, "Stale", "about an earlier service web", 20)
    stale.involved_object.uid = "an-earlier-uid"
    await client.create(stale)

    result = await minictl(cli_env, "describe", "svc", "web", "-n", namespace)
    assert result.code == 0, result.err
    lines = squeezed(result.out)
    node_port = svc.spec.ports[0].node_port
    for expected in ["Name: web", f"Namespace: {namespace}", "Selector: app=web",
                     "Type: NodePort", f"IP: {svc.spec.cluster_ip}", "Port: http 80/TCP",
                     "TargetPort: 8080/TCP", f"NodePort: http {node_port}/TCP",
                     "Endpoints: 10.244.0.5:8080", "Session Affinity: None",
                     "Events:", "Type Reason Age From Message"]:
        assert expected in lines, (expected, result.out)
    events = lines[lines.index("Type Reason Age From Message") + 2:]
    assert len(events) == 1
    assert re.fullmatch(r"Normal Synced 2\ds test-recorder service synced", events[0]), events

    # the same through KIND/NAME, and the generic description of other kinds
    again = await minictl(cli_env, "describe", "service/web", "-n", namespace)
    assert again.out.split("Events:")[0] == result.out.split("Events:")[0]
    ep = await minictl(cli_env, "describe", "ep", "web", "-n", namespace)
    assert "Addresses: 10.244.0.5" in squeezed(ep.out)


async def test_describe_errors(cli_env: dict[str, str], namespace: str) -> None:
    unknown = await minictl(cli_env, "describe", "foo", "bar")
    assert one_line_error(unknown) == 'error: the server doesn\'t have a resource type "foo"'
    missing = await minictl(cli_env, "describe", "po", "nope", "-n", namespace)
    assert one_line_error(missing) == 'Error from server (NotFound): pods "nope" not found'
    missing_node = await minictl(cli_env, "describe", "no", "nope")
    assert one_line_error(missing_node) == 'Error from server (NotFound): nodes "nope" not found'
    nothing = await minictl(cli_env, "describe", "deploy", "-n", namespace)
    assert (nothing.code, nothing.out) == (0, "")
    assert nothing.err.strip() == f"No resources found in {namespace} namespace."


async def test_cluster_info_without_an_apiserver(cli_env: dict[str, str]) -> None:
    result = await minictl(cli_env, "-s", "127.0.0.1:1", "cluster-info")
    assert result.code == 1
    assert result.out.startswith("apiserver 127.0.0.1:1: unhealthy (UNAVAILABLE")
    assert result.err.strip() == "error: no apiserver answers at 127.0.0.1:1"


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
async def test_completion(shell: str) -> None:
    result = await minictl(dict(os.environ), "completion", shell)
    assert result.code == 0, result.err
    assert "_minictl_completion" in result.out
    assert "_MINICTL_COMPLETE" in result.out
    bad = await minictl(dict(os.environ), "completion", "tcsh")
    assert bad.code == 2 and "'tcsh' is not one of" in bad.err


@pytest.mark.parametrize("command", ["describe", "events", "cluster-info", "completion", "get"])
async def test_help_has_examples(command: str) -> None:
    result = await minictl(dict(os.environ), command, "--help")
    assert result.code == 0
    assert "Examples:" in result.out and f"minictl {command}" in result.out


# ---------------------------------------------------------------- a cluster with controllers

@pytest.fixture(scope="module")
def ctl_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = _start(Path(tmp_path_factory.mktemp("inspect")), masters=1, schedulers=1,
               controller_managers=1)
    yield c
    c.stop()


@pytest.fixture
def ctl_env(ctl_cluster: LocalCluster) -> dict[str, str]:
    return dict(os.environ, MINIK8S_SERVERS=",".join(ctl_cluster.servers))


@pytest.fixture
async def api(ctl_cluster: LocalCluster) -> AsyncIterator[ApiClient]:
    async with ApiClient(ctl_cluster.servers) as client:
        yield client


@pytest.fixture
async def ns(api: ApiClient) -> AsyncIterator[str]:
    """A fresh namespace, a Ready node named after it, and a kubelet playing its pods."""
    name = f"i-{uuid.uuid4().hex[:8]}"
    await api.create(t.Namespace(metadata=t.ObjectMeta(name=name)))
    await ready_node(api, name)
    async with FakeKubelet(api, name):
        yield name
    await api.delete("Node", name)


async def test_describe_deployment_replicaset_and_pod(ctl_env: dict[str, str], api: ApiClient,
                                                      ns: str) -> None:
    applied = await minictl(ctl_env, "apply", "-n", ns, "-f", "-", stdin=DEPLOYMENT)
    assert applied.code == 0, applied.err

    async def available() -> bool:
        return (await api.get("Deployment", "web", ns)).status.available_replicas == 3
    await eventually(available)
    [rs] = (await api.list("ReplicaSet", ns))[0]
    rs_name = rs.metadata.name

    async def described(kind: str, name: str, wanted: str) -> list[str]:
        """The description once it shows `wanted` (events are recorded asynchronously)."""
        async def check() -> list[str] | None:
            result = await minictl(ctl_env, "describe", kind, name, "-n", ns)
            assert result.code == 0, result.err
            return squeezed(result.out) if wanted in result.out else None
        return await eventually(check, timeout=20, interval=0.5)

    lines = await described("deploy", "web", "ScalingReplicaSet")
    for expected in ["Name: web", f"Namespace: {ns}", "Selector: app=web",
                     "Replicas: 3 desired | 3 updated | 3 total | 3 available | 0 unavailable",
                     "StrategyType: RollingUpdate",
                     "RollingUpdateStrategy: 25% max unavailable, 25% max surge",
                     "OldReplicaSets: <none>", f"NewReplicaSet: {rs_name} (3/3 replicas created)",
                     "Available True MinimumReplicasAvailable",
                     "Readiness: http-get http://:80/ready delay=0s timeout=1s period=10s "
                     "#success=1 #failure=3"]:
        assert expected in lines, (expected, lines)
    assert any(re.fullmatch(rf"Normal ScalingReplicaSet \S+ controller-manager "
                            rf"Scaled up replica set {rs_name} to 3", line) for line in lines)

    lines = await described("rs", rs_name, "SuccessfulCreate")
    for expected in ["Controlled By: Deployment/web", "Replicas: 3 current / 3 desired",
                     "Pods Status: 3 Running / 0 Waiting / 0 Succeeded / 0 Failed"]:
        assert expected in lines, (expected, lines)

    web = sorted((await api.list("Pod", ns))[0], key=lambda p: p.metadata.name)[0]
    name = web.metadata.name

    async def restarted() -> None:  # what a kubelet reports of a container that was killed
        p = await api.get("Pod", name, ns)
        cs = p.status.container_statuses.add(name="web", ready=True, restart_count=2,
                                             container_id="docker://0123abcd")
        cs.state.running.started_at.GetCurrentTime()
        cs.last_state.terminated.exit_code = 137
        cs.last_state.terminated.reason = "OOMKilled"
        await api.update_status(p)
    await retry_on_conflict(restarted)

    lines = await described("po", name, "Scheduled")
    for expected in [f"Node: {ns}", "Status: Running", f"IP: {web.status.pod_ip}",
                     f"Controlled By: ReplicaSet/{rs_name}", "Image: nginx:1.25",
                     "Port: 80/TCP", "Container ID: docker://0123abcd", "State: Running",
                     "Last State: Terminated", "Reason: OOMKilled", "Exit Code: 137",
                     "Ready: True", "Restart Count: 2", "cpu: 100m", "memory: 64Mi",
                     "Ready True", "QoS Class: Burstable"]:
        assert expected in lines, (expected, lines)
    assert "Normal Scheduled" in " ".join(lines)
    assert any(re.fullmatch(rf"Normal Scheduled \S+ default-scheduler "
                            rf"Successfully assigned {ns}/{name} to {ns}", line)
               for line in lines), lines


async def test_describe_node(ctl_env: dict[str, str], api: ApiClient, ns: str) -> None:
    node_name = f"{ns}-tainted"
    node = await ready_node(api, node_name, cpu="2", memory="4Gi", unschedulable=True,
                            taints=[t.Taint(key="dedicated", value="web", effect="NoSchedule")])
    bound = pod("bound", ns)
    bound.spec.node_name = node_name
    bound.spec.containers[0].resources.requests.update({"cpu": "500m", "memory": "1Gi"})
    await api.create(bound)
    # events about cluster-scoped objects live in "default", as the recorder keeps them
    await api.create(event("default", node, "NodeNotReady", f"Node {node_name} status is "
                           "now: NodeNotReady", 15))
    try:
        result = await minictl(ctl_env, "describe", "no", node_name)
        assert result.code == 0, result.err
        lines = squeezed(result.out)
        for expected in [f"Name: {node_name}", "Taints: dedicated=web:NoSchedule",
                         "Unschedulable: true", "Capacity:", "Allocatable:",
                         "cpu: 2", "memory: 4Gi", "pods: 110", "System Info:",
                         "Non-terminated Pods: (1 in total)", "Resource Requests Limits",
                         "cpu 500m (25%) 0 (0%)", "memory 1Gi (25%) 0 (0%)"]:
            assert expected in lines, (expected, result.out)
        assert any(line.startswith("Ready True ") for line in lines), result.out
        assert any(re.fullmatch(rf"Normal NodeNotReady 1\ds test-recorder "
                                rf"Node {node_name} status is now: NodeNotReady", line)
                   for line in lines), result.out
        assert any(line.startswith(f"{ns} bound 500m (25%) 0 (0%) 1Gi (25%) 0 (0%)")
                   for line in lines), result.out
        assert any(line.startswith("PodCIDR:") for line in lines)
    finally:
        await api.delete("Pod", "bound", ns, grace_period_seconds=0)
        await api.delete("Node", node_name)


async def test_cluster_info_names_the_leaders(ctl_env: dict[str, str], api: ApiClient,
                                              ctl_cluster: LocalCluster) -> None:
    scheduler, _ = await leader_process(ctl_cluster, api, "scheduler")
    manager, _ = await leader_process(ctl_cluster, api, "controller-manager")
    result = await minictl(ctl_env, "cluster-info")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == f"apiserver {ctl_cluster.servers[0]}: healthy"
    assert re.fullmatch(r"etcd etcd-0 \(https://\S+\): healthy, leader, db \S+ \S+, v[\d.]+",
                        lines[1]), lines[1]
    assert lines[2] == "etcd leader: etcd-0"
    assert re.fullmatch(rf"scheduler leader: {scheduler} \(lease renewed \d+s ago\)", lines[3])
    assert re.fullmatch(rf"controller-manager leader: {manager} \(lease renewed \d+s ago\)",
                        lines[4])


# ---------------------------------------------------------------- a cluster to break

async def test_cluster_info_with_a_dead_etcd_member(own_cluster: LocalCluster) -> None:
    env = dict(os.environ, MINIK8S_SERVERS=",".join(own_cluster.servers))
    own_cluster.kill("etcd-1")

    async def settled() -> list[str] | None:
        """The lines once a new leader (if etcd-1 led) is elected."""
        result = await minictl(env, "cluster-info")
        assert result.code == 0, result.err
        assert "Traceback" not in result.err
        lines = result.out.splitlines()
        etcd = {line.split()[1]: line for line in lines if line.startswith("etcd etcd-")}
        ok = all(": healthy" in etcd.get(n, "") for n in ("etcd-0", "etcd-2"))
        return lines if ok and sum(", leader" in v for v in etcd.values()) == 1 else None
    lines = await eventually(settled, timeout=30, interval=0.5)
    dead = next(line for line in lines if line.startswith("etcd etcd-1 "))
    assert ": unhealthy (" in dead and "refused" in dead.lower(), dead
    assert sum(line.startswith("apiserver ") and line.endswith(": healthy")
               for line in lines) == 3
    assert any(line in ("etcd leader: etcd-0", "etcd leader: etcd-2") for line in lines)
    assert "scheduler leader: <none> (no lease kube-system/kube-scheduler)" in lines
