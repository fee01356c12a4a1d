"""Bad input is answered with INVALID_ARGUMENT naming the field; nothing is written."""
from __future__ import annotations

import pytest

from minik8s import errors
from minik8s.api.v1 import types_pb2 as t
from minik8s.client import ApiClient

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: c
        image: nginx:1.25
{extra}
"""

CASES = [
    ("unknown field",
     DEPLOYMENT.format(extra="        colour: blue"),
     'deployment/web: spec.template.spec.containers[0].colour: unknown field "colour"'),
    ("wrong type",
     DEPLOYMENT.format(extra="").replace("replicas: 2", "replicas: two"),
     "deployment/web: spec.replicas: must be an integer"),
    ("missing name",
     DEPLOYMENT.format(extra="").replace("  name: web\n", "  labels: {a: b}\n"),
     "document 1: metadata.name: name or generateName is required"),
    ("invalid name",
     DEPLOYMENT.format(extra="").replace("name: web", "name: Web_Server"),
     "metadata.name"),
    ("label value too long",
     DEPLOYMENT.format(extra="").replace("  name: web\n",
                                         f"  name: web\n  labels: {{a: {'x' * 64}}}\n"),
     "deployment/web: metadata.labels.a"),
    ("negative replicas",
     DEPLOYMENT.format(extra="").replace("replicas: 2", "replicas: -1"),
     "deployment/web: spec.replicas: must be greater than or equal to 0"),
    ("bad enum",
     DEPLOYMENT.format(extra="        imagePullPolicy: Sometimes"),
     "deployment/web: spec.template.spec.containers[0].imagePullPolicy: must be one of "
     "Always, IfNotPresent, Never"),
    ("unknown kind",
     "apiVersion: v1\nkind: Gadget\nmetadata: {name: g}\n",
     "unknown kind 'Gadget'"),
    ("wrong apiVersion",
     DEPLOYMENT.format(extra="").replace("apps/v1", "v1"),
     "deployment/web: apiVersion: must be apps/v1"),
    ("not YAML",
     "\x00\x01\x02: [unclosed\n\tkey: {",
     "document 1: not valid YAML"),
]


@pytest.mark.parametrize(("manifest", "message"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
async def test_bad_manifest(client: ApiClient, namespace: str, manifest: str,
                            message: str) -> None:
    with pytest.raises(errors.Invalid) as info:
        await client.apply(manifest, namespace=namespace)
    assert message in info.value.message
    items, _ = await client.list("Deployment", namespace)
    assert items == []
    assert (await client.get("Namespace", namespace)).metadata.name == namespace


async def test_bad_second_document_writes_nothing(client: ApiClient, namespace: str) -> None:
    good = DEPLOYMENT.format(extra="")
    bad = DEPLOYMENT.format(extra="        ports: 80").replace("name: web", "name: api")
    with pytest.raises(errors.Invalid, match=r"deployment/api: spec.template.spec."
                                             r"containers\[0\].ports: must be a list"):
        await client.apply(good + "---\n" + bad, namespace=namespace)
    assert (await client.list("Deployment", namespace))[0] == []


async def test_object_over_size_limit(client: ApiClient, namespace: str) -> None:
    pod = t.Pod(metadata=t.ObjectMeta(name="big", namespace=namespace,
                                      annotations={"blob": "x" * 200_000}),
                spec=t.PodSpec(containers=[t.Container(name="c", image="busybox")]))
    for i in range(10):
        pod.spec.containers[0].env.add(name=f"E{i}", value="y" * 200_000)
    with pytest.raises(errors.Invalid, match="over the limit"):
        await client.create(pod)
    with pytest.raises(errors.NotFound):
        await client.get("Pod", "big", namespace)


async def test_typed_create_is_validated(client: ApiClient, namespace: str) -> None:
    bad = t.Deployment(metadata=t.ObjectMeta(name="d", namespace=namespace),
                       spec=t.DeploymentSpec(replicas=-3))
    with pytest.raises(errors.Invalid, match="spec.replicas: must be greater than or equal to 0"):
        await client.create(bad)
    with pytest.raises(errors.Invalid, match="unknown kind 'Gadget'"):
        await client.get("Gadget", "x", namespace)
