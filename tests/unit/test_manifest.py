import contextlib
import json
import textwrap

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minik8s import manifest
from minik8s.api.v1 import types_pb2
from minik8s.manifest import ManifestError

MANIFEST = textwrap.dedent("""\
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: web
      namespace: shop
      generation: 3
      labels:
        app: web
      annotations:
        kubernetes.io/change-cause: first rollout
      creationTimestamp: "2024-05-01T10:00:00Z"
    spec:
      replicas: 3
      selector:
        matchLabels:
          app: web
      template:
        metadata:
          labels:
            app: web
        spec:
          containers:
          - name: web
            image: nginx:1.25
            args: ["-g", "daemon off;"]
            ports:
            - name: http
              containerPort: 80
            env:
            - name: MODE
              value: production
            resources:
              limits:
                cpu: "1"
                memory: 1.5Gi
              requests:
                cpu: 100m
                memory: 128Mi
            livenessProbe:
              httpGet:
                path: /healthz
                port: http
              initialDelaySeconds: 5
              periodSeconds: 10
            readinessProbe:
              tcpSocket:
                port: 80
            imagePullPolicy: IfNotPresent
          terminationGracePeriodSeconds: 30
          affinity:
            nodeAffinity:
              requiredDuringSchedulingIgnoredDuringExecution:
                nodeSelectorTerms:
                - matchExpressions:
                  - key: kubernetes.io/os
                    operator: In
                    values: [linux]
              preferredDuringSchedulingIgnoredDuringExecution:
              - weight: 10
                preference:
                  matchExpressions:
                  - key: zone
                    operator: NotIn
                    values: [b]
          tolerations:
          - key: dedicated
            operator: Equal
            value: web
            effect: NoExecute
            tolerationSeconds: 60
          - operator: Exists
      strategy:
        type: RollingUpdate
        rollingUpdate:
          maxUnavailable: 0
          maxSurge: 25%
    ---
    apiVersion: v1
    kind: Service
    metadata:
      name: web
      namespace: shop
    spec:
      type: NodePort
      selector:
        app: web
      ports:
      - name: http
        protocol: TCP
        port: 80
        targetPort: http
        nodePort: 30080
      - name: metrics
        port: 9090
        targetPort: 9090
    ---
    apiVersion: v1
    kind: Pod
    metadata:
      name: debug
      namespace: shop
    spec:
      restartPolicy: Never
      nodeSelector:
        disk: ssd
      containers:
      - name: shell
        image: busybox
        command: [sleep, "3600"]
        volumeMounts:
        - name: scratch
          mountPath: /scratch
      volumes:
      - name: scratch
        emptyDir: {}
    status:
      phase: Running
      podIP: 10.244.1.5
      startTime: "2024-05-01T10:00:05Z"
    """)


def load_one(text):
    (obj,) = manifest.load(text)
    return obj


def error_of(text, **kwargs):
    with pytest.raises(ManifestError) as err:
        manifest.load(text, **kwargs)
    return str(err.value)


def deployment(**spec_changes):
    doc = yaml.safe_load(MANIFEST.split("---")[0])
    doc["spec"].update(spec_changes)
    return doc


def container_change(**changes):
    doc = deployment()
    doc["spec"]["template"]["spec"]["containers"][0].update(changes)
    return json.dumps(doc)


# ---------------------------------------------------------------- round trip

def test_round_trip():
    objs = manifest.load(MANIFEST)
    assert [type(o) for o in objs] == [types_pb2.Deployment, types_pb2.Service, types_pb2.Pod]
    assert [manifest.to_dict(o) for o in objs] == list(yaml.safe_load_all(MANIFEST))


def test_loaded_values():
    dep, svc, pod = manifest.load(MANIFEST)
    container = dep.spec.template.spec.containers[0]
    assert container.resources.requests["cpu"] == "100m"
    assert container.liveness_probe.http_get.port.str_val == "http"
    assert container.readiness_probe.tcp_socket.port.int_val == 80
    assert dep.metadata.generation == 3
    assert dep.metadata.creation_timestamp.seconds == 1714557600
    assert svc.spec.ports[0].target_port.str_val == "http"
    assert svc.spec.ports[1].target_port.int_val == 9090
    assert pod.spec.volumes[0].HasField("empty_dir")


def test_to_dict_shape():
    dep = manifest.load(MANIFEST)[0]
    data = manifest.to_dict(dep)
    assert list(data)[:4] == ["apiVersion", "kind", "metadata", "spec"]
    assert data["metadata"]["generation"] == 3
    assert data["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": "25%"}
    # apiVersion and kind come from the registry even when the message has none.
    bare = types_pb2.Namespace()
    bare.metadata.name = "prod"
    assert manifest.to_dict(bare) == {"apiVersion": "v1", "kind": "Namespace",
                                      "metadata": {"name": "prod"}}


def test_from_dict_is_the_inverse():
    for obj in manifest.load(MANIFEST):
        assert manifest.from_dict(manifest.to_dict(obj)) == obj


def test_from_dict_errors():
    with pytest.raises(ManifestError) as err:
        manifest.from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                            "spec": {"containers": "web"}})
    assert str(err.value) == "pod/p: spec.containers: must be a list"
    with pytest.raises(ManifestError) as err:
        manifest.from_dict(["not", "a", "dict"])
    assert str(err.value) == "object: must be an object (a YAML mapping), not a list"


def test_dump_yaml_and_json_load_back():
    objs = manifest.load(MANIFEST)
    text = manifest.dump_yaml(objs)
    assert text.startswith("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n")
    assert text.count("\n---\n") == 2
    assert manifest.load(text) == objs
    assert manifest.load(manifest.dump_json(objs)) == objs
    assert manifest.load(manifest.dump_json(objs[1])) == [objs[1]]
    assert json.loads(manifest.dump_json(objs[1]))["spec"]["ports"][1]["targetPort"] == 9090


def test_json_input():
    doc = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}}
    assert manifest.load(json.dumps(doc))[0].metadata.name == "prod"


def test_list_kind():
    text = json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "b"}},
    ]})
    assert [o.metadata.name for o in manifest.load(text)] == ["a", "b"]
    bad = json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}},
        {"apiVersion": "v1", "kind": "Namespace"},
    ]})
    assert error_of(bad) == "document 1 item 2: metadata.name: name or generateName is required"


def test_empty_documents_are_skipped():
    assert manifest.load("") == []
    assert manifest.load("---\n# only a comment\n---\n") == []
    text = "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n"
    assert len(manifest.load(text)) == 1


def test_default_namespace():
    text = ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"
            "spec: {containers: [{name: c, image: busybox}]}\n"
            "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: n}\n")
    pod, namespace = manifest.load(text, default_namespace="dev")
    assert pod.metadata.namespace == "dev"
    assert namespace.metadata.namespace == ""
    (pod, _) = manifest.load(text.replace("{name: p}", "{name: p, namespace: prod}"),
                             default_namespace="dev")
    assert pod.metadata.namespace == "prod"


def test_quantities_accept_numbers():
    dep = load_one(container_change(resources={"limits": {"cpu": 2, "memory": 1e9},
                                               "requests": {"cpu": 0.5}}))
    resources = dep.spec.template.spec.containers[0].resources
    assert dict(resources.limits) == {"cpu": "2", "memory": "1000000000.0"}
    assert resources.requests["cpu"] == "0.5"


def test_unquoted_timestamp_in_yaml():
    text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: n, creationTimestamp: " \
           "2024-05-01T10:00:00Z}\n"
    assert load_one(text).metadata.creation_timestamp.seconds == 1714557600


# ---------------------------------------------------------------- errors users see

def test_error_parts():
    with pytest.raises(ManifestError) as err:
        manifest.load(container_change(imagePullPolicy="Sometimes"))
    assert isinstance(err.value, ValueError)
    assert err.value.document == "deployment/web"
    assert err.value.path == "spec.template.spec.containers[0].imagePullPolicy"
    assert err.value.message == "must be one of Always, IfNotPresent, Never"


def test_bad_image_pull_policy():
    assert error_of(container_change(imagePullPolicy="Sometimes")) == (
        "deployment/web: spec.template.spec.containers[0].imagePullPolicy: must be one of "
        "Always, IfNotPresent, Never")


def test_unknown_field():
    assert error_of(json.dumps(deployment(foo=1))) == 'deployment/web: spec.foo: unknown field "foo"'


def test_only_json_names():
    assert error_of(container_change(image_pull_policy="Always")) == (
        "deployment/web: spec.template.spec.containers[0].image_pull_policy: "
        'unknown field "image_pull_policy"')


@pytest.mark.parametrize(("change", "expected"), [
    ({"replicas": "3"}, "spec.replicas: must be an integer"),
    ({"replicas": True}, "spec.replicas: must be an integer"),
    ({"replicas": 2.5}, "spec.replicas: must be an integer"),
    ({"replicas": 2**31}, "spec.replicas: must be between -2147483648 and 2147483647"),
    ({"paused": "yes"}, "spec.paused: must be a boolean"),
    ({"selector": "app=web"}, "spec.selector: must be an object"),
    ({"selector": {"matchLabels": {"app": 5}}}, "spec.selector.matchLabels.app: must be a string"),
    ({"selector": {"matchExpressions": {"key": "a"}}},
     "spec.selector.matchExpressions: must be a list"),
])
def test_wrong_types(change, expected):
    assert error_of(json.dumps(deployment(**change))) == f"deployment/web: {expected}"


@pytest.mark.parametrize(("change", "expected"), [
    ({"image": 5}, "image: must be a string"),
    ({"args": ["-v", 3]}, "args[1]: must be a string"),
    ({"env": [{"name": "PORT", "value": 8080}]}, "env[0].value: must be a string"),
    ({"ports": [{"containerPort": "80"}]}, "ports[0].containerPort: must be an integer"),
    ({"livenessProbe": {"tcpSocket": {"port": 1.5}}},
     "livenessProbe.tcpSocket.port: must be an integer or a string"),
    ({"resources": {"limits": {"cpu": [1]}}},
     "resources.limits.cpu: must be a quantity (a string or a number)"),
    ({"resources": {"limits": {"cpu": "12x"}}}, "resources.limits.cpu: invalid quantity '12x'"),
])
def test_wrong_types_in_containers(change, expected):
    assert error_of(container_change(**change)) == \
        f"deployment/web: spec.template.spec.containers[0].{expected}"


def test_labels_must_be_strings():
    text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: n, labels: {app: 5}}\n"
    assert error_of(text) == "namespace/n: metadata.labels.app: must be a string"


def test_bad_timestamp():
    text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: n, creationTimestamp: monday}\n"
    assert error_of(text) == ("namespace/n: metadata.creationTimestamp: must be an RFC 3339 "
                              "timestamp, like 2024-01-31T12:00:00Z")


def test_missing_name():
    doc = deployment()
    del doc["metadata"]["name"]
    assert error_of(json.dumps(doc)) == \
        "document 1: metadata.name: name or generateName is required"


def test_invalid_name():
    doc = deployment()
    doc["metadata"]["name"] = "Web_1"
    assert error_of(json.dumps(doc)) == (
        "deployment/Web_1: metadata.name: invalid value 'Web_1': a DNS-1123 subdomain must "
        "consist of lower case alphanumeric characters, '-' or '.', and must start and end "
        "with an alphanumeric character")


def test_label_value_too_long():
    doc = deployment()
    doc["metadata"]["labels"]["app"] = "x" * 64
    assert error_of(json.dumps(doc)) == \
        "deployment/web: metadata.labels.app: must be no more than 63 characters"


def test_negative_replicas():
    assert error_of(json.dumps(deployment(replicas=-1))) == \
        "deployment/web: spec.replicas: must be greater than or equal to 0"


def test_unknown_kind():
    text = MANIFEST.replace("kind: Service", "kind: Foo")
    assert error_of(text) == "document 2: unknown kind 'Foo'"


def test_missing_kind():
    assert error_of("apiVersion: v1\nmetadata: {name: x}\n") == "document 1: kind: required value"


def test_wrong_api_version():
    text = MANIFEST.replace("apiVersion: apps/v1", "apiVersion: extensions/v1beta1")
    assert error_of(text) == "deployment/web: apiVersion: must be apps/v1"


def test_bytes_that_are_not_yaml():
    assert error_of(b"\x89PNG\r\n\x1a\n\x00\x00") == \
        "document 1: not valid YAML: invalid leading UTF-8 octet (position 0)"


def test_yaml_syntax_error_has_line_and_column():
    assert error_of("apiVersion: v1\nkind: Pod\nmetadata: {name: a\n") == (
        "document 1: not valid YAML: while parsing a flow mapping, did not find expected ',' "
        "or '}' (line 4, column 1)")


def test_multi_document_with_bad_second_document():
    text = MANIFEST.replace("targetPort: http", "targetPort: [http]")
    assert error_of(text) == \
        "service/web: spec.ports[0].targetPort: must be an integer or a string"
    text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n- just\n- a list\n"
    assert error_of(text) == "document 2: must be an object (a YAML mapping), not a list"
    text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\nkind: [\n"
    assert error_of(text).startswith("document 2: not valid YAML: ")


# ---------------------------------------------------------------- fuzzing

KEYS = ["apiVersion", "kind", "metadata", "name", "namespace", "labels", "spec", "status",
        "containers", "image", "ports", "port", "targetPort", "selector", "matchLabels",
        "replicas", "template", "resources", "limits", "cpu", "creationTimestamp", "items",
        "generation", "nodePort", "type", "protocol", "foo"]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8),
                    st.sampled_from(["v1", "apps/v1", "Pod", "Service", "Deployment", "List",
                                     "web", "1.5Gi", "12x", "2024-01-01T00:00:00Z"]))
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)),
    max_leaves=12,
)
DOCS = st.fixed_dictionaries(
    {"apiVersion": st.sampled_from(["v1", "apps/v1", "x"]),
     "kind": st.sampled_from(["Pod", "Service", "Deployment", "Node", "List", "Event"])},
    optional={k: VALUES for k in ("metadata", "spec", "status", "items")},
)


def _only_manifest_errors(text):
    """Any other exception escapes and fails the test."""
    with contextlib.suppress(ManifestError):
        manifest.load(text, default_namespace="default")


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200))
def test_load_random_bytes(data):
    _only_manifest_errors(data)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_load_random_text(text):
    _only_manifest_errors(text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(DOCS, VALUES))
def test_load_random_documents(doc):
    _only_manifest_errors(json.dumps(doc, allow_nan=True))
    _only_manifest_errors(yaml.safe_dump(doc))


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_load_mutated_manifest(data):
    doc = deployment()
    target = doc
    while isinstance(target, dict) and target:
        key = data.draw(st.sampled_from(sorted(target)))
        if not isinstance(target[key], dict) or data.draw(st.booleans()):
            target[key] = data.draw(VALUES)
            break
        target = target[key]
    _only_manifest_errors(yaml.safe_dump(doc))
