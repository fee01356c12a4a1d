"""CRUD for every kind through the real apiservers, and the error codes."""
from __future__ import annotations

import asyncio
import uuid

import pytest

from minik8s import errors, kinds
from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient
from tests.integration.helpers import eventually

LABELS = {"app": "web"}
TEMPLATE = t.PodTemplateSpec(
    metadata=t.ObjectMeta(labels=LABELS),
    spec=t.PodSpec(containers=[t.Container(name="c", image="nginx:1.25")]),
)
SELECTOR = t.LabelSelector(match_labels=LABELS)
RULE = t.PolicyRule(verbs=["get"], resources=["pods"])
SUBJECT = t.Subject(kind="User", name="alice")


def sample(kind: str, name: str) -> object:
    """A minimal valid object of each kind."""
    meta = t.ObjectMeta(name=name, labels=LABELS)
    return {
        "Namespace": lambda: t.Namespace(metadata=meta),
        "Node": lambda: t.Node(metadata=meta),
        "Pod": lambda: t.Pod(metadata=meta, spec=TEMPLATE.spec),
        "Service": lambda: t.Service(metadata=meta, spec=t.ServiceSpec(
            selector=LABELS, ports=[t.ServicePort(port=80)])),
        "Endpoints": lambda: t.Endpoints(metadata=meta),
        "ReplicaSet": lambda: t.ReplicaSet(metadata=meta, spec=t.ReplicaSetSpec(
            replicas=2, selector=SELECTOR, template=TEMPLATE)),
        "Deployment": lambda: t.Deployment(metadata=meta, spec=t.DeploymentSpec(
            replicas=2, selector=SELECTOR, template=TEMPLATE)),
        "DaemonSet": lambda: t.DaemonSet(metadata=meta, spec=t.DaemonSetSpec(
            selector=SELECTOR, template=TEMPLATE)),
        "StatefulSet": lambda: t.StatefulSet(metadata=meta, spec=t.StatefulSetSpec(
            replicas=1, selector=SELECTOR, template=TEMPLATE, service_name="web")),
        "Lease": lambda: t.Lease(metadata=meta, spec=t.LeaseSpec(holder_identity="a",
                                                                 lease_duration_seconds=5)),
        "Event": lambda: t.Event(metadata=meta, involved_object=t.ObjectReference(
            kind="Pod", name="p", namespace="default"), reason="Tested", message="hello"),
        "Role": lambda: t.Role(metadata=meta, rules=[RULE]),
        "ClusterRole": lambda: t.ClusterRole(metadata=meta, rules=[RULE]),
        "RoleBinding": lambda: t.RoleBinding(metadata=meta, subjects=[SUBJECT], role_ref=t.RoleRef(
            kind="Role", name="r")),
        "ClusterRoleBinding": lambda: t.ClusterRoleBinding(
            metadata=meta, subjects=[SUBJECT], role_ref=t.RoleRef(kind="ClusterRole", name="r")),
    }[kind]()


def change(obj: object) -> None:
    """A spec-level change every kind allows in an update."""
    obj.metadata.labels["changed"] = "yes"
    kind = kinds.of(obj).name
    if kind in ("ReplicaSet", "Deployment", "StatefulSet"):
        obj.spec.replicas = 5
    elif kind == "DaemonSet":
        obj.spec.min_ready_seconds = 5
    elif kind == "Lease":
        obj.spec.holder_identity = "b"
    elif kind == "Service":
        obj.spec.ports[0].port = 8080
    elif kind == "Pod":
        obj.spec.containers[0].image = "nginx:1.26"


@pytest.mark.parametrize("kind", [k.name for k in kinds.KINDS])
async def test_crud(client: ApiClient, namespace: str, kind: str) -> None:
    name = f"x-{uuid.uuid4().hex[:6]}"
    obj = sample(kind, name)
    if kinds.by_name(kind).namespaced:
        obj.metadata.namespace = namespace
    ns = obj.metadata.namespace

    created = await client.create(obj)
    assert created.metadata.uid and created.metadata.resource_version
    assert created.metadata.generation == 1
    assert created.api_version == kinds.by_name(kind).api_version and created.kind == kind

    with pytest.raises(errors.AlreadyExists):
        await client.create(obj)

    got = await client.get(kind, name, ns)
    assert got == created

    items, rv = await client.list(kind, ns, label_selector="app=web")
    assert name in [o.metadata.name for o in items] and int(rv) >= int(got.metadata.resource_version)

    change(got)
    updated = await client.update(got)
    assert updated.metadata.labels["changed"] == "yes"
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)
    if kinds.by_name(kind).has_status and kind not in ("Namespace", "Node"):
        assert updated.metadata.generation == 2

    stale = created  # its resourceVersion is now old
    change(stale)
    with pytest.raises(errors.Conflict):
        await client.update(stale)

    await client.delete(kind, name, ns)
    with pytest.raises(errors.NotFound):
        await client.get(kind, name, ns)
    with pytest.raises(errors.NotFound):
        await client.delete(kind, name, ns)


async def test_update_status_changes_only_status(client: ApiClient, namespace: str) -> None:
    dep = sample("Deployment", "web")
    dep.metadata.namespace = namespace
    dep = await client.create(dep)
    dep.status.replicas = 2
    dep.spec.replicas = 9  # ignored by UpdateStatus
    stored = await client.update_status(dep)
    assert stored.status.replicas == 2 and stored.spec.replicas == 2
    assert stored.metadata.generation == 1

    stored.status.replicas = 7  # ignored by Update
    stored.spec.replicas = 3
    stored = await client.update(stored)
    assert stored.status.replicas == 2 and stored.spec.replicas == 3
    assert stored.metadata.generation == 2


async def delete_while_writing(client: ApiClient, namespace: str, name: str) -> None:
    """Delete a Deployment while four writers keep updating its status."""
    dep = sample("Deployment", name)
    dep.metadata.namespace = namespace
    await client.create(dep)
    writes = 0

    async def keep_writing() -> None:
        nonlocal writes
        while True:
            try:
                current = await client.get("Deployment", name, namespace)
                current.status.observed_generation += 1
                await client.update_status(current)
                writes += 1
            except errors.Conflict:
                pass
            except errors.NotFound:
                return

    writers = [asyncio.create_task(keep_writing()) for _ in range(4)]
    try:
        await eventually(lambda: writes >= 5, interval=0.005)
        await client.delete("Deployment", name, namespace)
    finally:
        await asyncio.wait_for(asyncio.gather(*writers), 10)


async def test_delete_wins_over_concurrent_status_writes(client: ApiClient,
                                                         namespace: str) -> None:
    """Without a resourceVersion precondition a delete succeeds even while
    controllers keep writing the object's status."""
    for round_ in range(10):
        await delete_while_writing(client, namespace, f"busy-{round_}")
        with pytest.raises(errors.NotFound):
            await client.get("Deployment", f"busy-{round_}", namespace)


async def test_delete_with_a_stale_precondition_conflicts(client: ApiClient,
                                                          namespace: str) -> None:
    dep = sample("Deployment", "kept")
    dep.metadata.namespace = namespace
    created = await client.create(dep)
    created.status.observed_generation = 1
    await client.update_status(created)
    with pytest.raises(errors.Conflict, match="precondition"):
        await client.delete("Deployment", "kept", namespace,
                            resource_version=created.metadata.resource_version)
    assert (await client.get("Deployment", "kept", namespace)).metadata.name == "kept"


async def test_namespace_must_exist(client: ApiClient) -> None:
    pod = sample("Pod", "p")
    pod.metadata.namespace = "does-not-exist"
    with pytest.raises(errors.NotFound, match='namespaces "does-not-exist" not found'):
        await client.create(pod)


async def test_defaults(client: ApiClient, namespace: str) -> None:
    pod = sample("Pod", "p")
    pod.metadata.namespace = namespace
    pod = await client.create(pod)
    assert pod.spec.restart_policy == "Always"
    assert pod.spec.scheduler_name == "default-scheduler"
    assert pod.spec.termination_grace_period_seconds == 30
    assert pod.spec.containers[0].image_pull_policy == "IfNotPresent"
    assert pod.status.phase == "Pending"

    dep = sample("Deployment", "d")
    dep.metadata.namespace = namespace
    dep.spec.ClearField("replicas")
    dep = await client.create(dep)
    assert dep.spec.replicas == 1
    assert dep.spec.strategy.rolling_update.max_surge.str_val == "25%"


async def test_bind_is_compare_and_swap(client: ApiClient, namespace: str) -> None:
    pod = sample("Pod", "p")
    pod.metadata.namespace = namespace
    await client.create(pod)
    bound = await client.bind(namespace, "p", "node-a")
    assert bound.spec.node_name == "node-a"
    assert any(c.type == "PodScheduled" and c.status == "True" for c in bound.status.conditions)
    with pytest.raises(errors.PreconditionFailed, match="already bound"):
        await client.bind(namespace, "p", "node-b")
    assert (await client.get("Pod", "p", namespace)).spec.node_name == "node-a"


async def test_graceful_pod_deletion_and_finalizers(client: ApiClient, namespace: str) -> None:
    pod = sample("Pod", "p")
    pod.metadata.namespace = namespace
    await client.create(pod)
    await client.bind(namespace, "p", "node-a")
    marked = await client.delete("Pod", "p", namespace, grace_period_seconds=20)
    assert marked.metadata.HasField("deletion_timestamp")
    assert marked.metadata.deletion_grace_period_seconds == 20
    assert (await client.get("Pod", "p", namespace)).metadata.HasField("deletion_timestamp")
    await client.delete("Pod", "p", namespace, grace_period_seconds=0)  # what the kubelet does
    with pytest.raises(errors.NotFound):
        await client.get("Pod", "p", namespace)

    cm = sample("Deployment", "held")
    cm.metadata.namespace = namespace
    cm.metadata.finalizers.append("example.com/hold")
    await client.create(cm)
    held = await client.delete("Deployment", "held", namespace)
    assert held.metadata.HasField("deletion_timestamp")
    held = await client.get("Deployment", "held", namespace)
    del held.metadata.finalizers[:]
    await client.update(held)
    with pytest.raises(errors.NotFound):
        await client.get("Deployment", "held", namespace)
