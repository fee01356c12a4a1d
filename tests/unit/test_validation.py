import copy

import pytest
from google.protobuf import json_format

from minik8s.api.v1 import types_pb2
from minik8s.validation import (
    FieldError,
    is_dns1123_label,
    is_dns1123_subdomain,
    validate,
    validate_labels,
    validate_update,
)

POD_SPEC = {
    "containers": [{
        "name": "web",
        "image": "nginx:1.25",
        "ports": [{"name": "http", "containerPort": 80}],
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                      "limits": {"cpu": "1", "memory": "1.5Gi"}},
        "readinessProbe": {"httpGet": {"path": "/", "port": {"strVal": "http"}}},
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }],
    "volumes": [{"name": "data", "emptyDir": {}}],
}
TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": POD_SPEC}
SELECTOR = {"matchLabels": {"app": "web"}}

VALID = {
    "Pod": (types_pb2.Pod, {"metadata": {"name": "web-1", "namespace": "default"},
                            "spec": POD_SPEC}),
    "Deployment": (types_pb2.Deployment, {
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": SELECTOR, "template": TEMPLATE}}),
    "ReplicaSet": (types_pb2.ReplicaSet, {
        "metadata": {"name": "web-abc"},
        "spec": {"replicas": 2, "selector": SELECTOR, "template": TEMPLATE}}),
    "DaemonSet": (types_pb2.DaemonSet, {
        "metadata": {"name": "agent"}, "spec": {"selector": SELECTOR, "template": TEMPLATE}}),
    "StatefulSet": (types_pb2.StatefulSet, {
        "metadata": {"name": "db"},
        "spec": {"serviceName": "db", "selector": SELECTOR, "template": TEMPLATE}}),
    "Service": (types_pb2.Service, {
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"},
                 "ports": [{"port": 80, "targetPort": {"intVal": 8080}}]}}),
    "Namespace": (types_pb2.Namespace, {"metadata": {"name": "prod"}}),
    "Node": (types_pb2.Node, {
        "metadata": {"name": "node-1"},
        "spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]},
        "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                   "conditions": [{"type": "Ready", "status": "True"}]}}),
    "Endpoints": (types_pb2.Endpoints, {
        "metadata": {"name": "web"},
        "subsets": [{"addresses": [{"ip": "10.0.0.5"}], "ports": [{"port": 8080}]}]}),
    "Lease": (types_pb2.Lease, {"metadata": {"name": "scheduler"},
                                "spec": {"leaseDurationSeconds": 15}}),
    "Event": (types_pb2.Event, {"metadata": {"name": "web-1.abc"},
                                "involvedObject": {"kind": "Pod", "name": "web-1"},
                                "type": "Warning"}),
}


def make(kind, **overrides):
    cls, body = VALID[kind]
    body = copy.deepcopy(body)
    for path, value in overrides.items():
        _set(body, path.split("__"), value)
    return json_format.ParseDict(body, cls())


def _set(body, keys, value):
    """Set (or with None, delete) body[k1][k2]...; numeric keys index lists."""
    for key in keys[:-1]:
        body = body[int(key)] if isinstance(body, list) else body.setdefault(key, {})
    last = int(keys[-1]) if isinstance(body, list) else keys[-1]
    if value is None:
        del body[last]
    else:
        body[last] = value


def error_of(obj):
    with pytest.raises(FieldError) as err:
        validate(obj)
    return str(err.value)


@pytest.mark.parametrize("kind", sorted(VALID))
def test_valid_objects_pass(kind):
    validate(make(kind))


def test_field_error_parts():
    err = FieldError("spec.replicas", "must be greater than or equal to 0")
    assert isinstance(err, ValueError)
    assert (err.path, err.message) == ("spec.replicas", "must be greater than or equal to 0")
    assert str(err) == "spec.replicas: must be greater than or equal to 0"


# ---------------------------------------------------------------- metadata

def test_missing_name():
    pod = make("Pod")
    pod.metadata.name = ""
    assert error_of(pod) == "metadata.name: name or generateName is required"
    pod.metadata.generate_name = "web-"
    validate(pod)
    pod.metadata.generate_name = "Web-"
    assert error_of(pod) == ("metadata.generateName: invalid value 'Web-': "
                             "must be the start of a valid name")


def test_invalid_name():
    pod = make("Pod")
    pod.metadata.name = "Web_1"
    assert error_of(pod) == (
        "metadata.name: invalid value 'Web_1': a DNS-1123 subdomain must consist of lower case "
        "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
        "character")
    pod.metadata.name = "a" * 254
    assert error_of(pod) == "metadata.name: must be no more than 253 characters"
    pod.metadata.name = "web\n"
    assert error_of(pod).startswith("metadata.name: invalid value 'web\\n'")


@pytest.mark.parametrize("kind", ["Service", "Namespace"])
def test_service_and_namespace_names_are_labels(kind):
    obj = make(kind)
    obj.metadata.name = "web.v1"
    assert error_of(obj) == (
        "metadata.name: invalid value 'web.v1': a DNS-1123 label must consist of lower case "
        "alphanumeric characters or '-', and must start and end with an alphanumeric character")


def test_dotted_names_allowed_elsewhere():
    pod = make("Pod")
    pod.metadata.name = "web.v1"
    validate(pod)


def test_invalid_namespace():
    pod = make("Pod")
    pod.metadata.namespace = "my.ns"
    assert error_of(pod).startswith("metadata.namespace: invalid value 'my.ns'")


def test_label_value_too_long():
    pod = make("Pod")
    pod.metadata.labels["app"] = "x" * 64
    assert error_of(pod) == "metadata.labels.app: must be no more than 63 characters"


@pytest.mark.parametrize(("key", "message"), [
    ("bad key", "invalid key 'bad key': name part must consist of alphanumeric characters, "
                "'-', '_' or '.', and must start and end with an alphanumeric character"),
    ("Example.com/app", "invalid key 'Example.com/app': prefix must be a DNS-1123 subdomain"),
    ("example.com/", "invalid key 'example.com/': name part must be non-empty"),
    ("a" * 64, f"invalid key '{'a' * 64}': name part must be no more than 63 characters"),
])
def test_invalid_label_keys(key, message):
    pod = make("Pod")
    pod.metadata.labels[key] = "x"
    assert error_of(pod) == f"metadata.labels: {message}"


def test_label_helpers():
    validate_labels({"app.kubernetes.io/name": "web", "tier": "", "v": "1.2_3-a"}, "labels")
    with pytest.raises(FieldError, match="^labels.app: invalid value '-web': must be empty"):
        validate_labels({"app": "-web"}, "labels")
    assert is_dns1123_label("web-1") and not is_dns1123_label("web.1")
    assert is_dns1123_subdomain("web.example.com") and not is_dns1123_subdomain("Web")
    assert not is_dns1123_label("a" * 64) and is_dns1123_label("a" * 63)


def test_annotations_size():
    pod = make("Pod")
    pod.metadata.annotations["big"] = "x" * (256 * 1024)
    assert error_of(pod) == "metadata.annotations: too long: must have at most 262144 bytes"


# ---------------------------------------------------------------- enums

POD_CONTAINER = "spec.containers[0]"


@pytest.mark.parametrize(("kind", "field", "value", "expected"), [
    ("Pod", "spec__restartPolicy", "Sometimes",
     "spec.restartPolicy: must be one of Always, OnFailure, Never"),
    ("Pod", "spec__containers__0__imagePullPolicy", "Maybe",
     f"{POD_CONTAINER}.imagePullPolicy: must be one of Always, IfNotPresent, Never"),
    ("Pod", "spec__containers__0__ports__0__protocol", "ICMP",
     f"{POD_CONTAINER}.ports[0].protocol: must be one of TCP, UDP, SCTP"),
    ("Pod", "spec__dnsPolicy", "Google",
     "spec.dnsPolicy: must be one of ClusterFirst, ClusterFirstWithHostNet, Default, None"),
    ("Pod", "spec__tolerations", [{"key": "a", "operator": "Like"}],
     "spec.tolerations[0].operator: must be one of Exists, Equal"),
    ("Pod", "spec__tolerations", [{"key": "a", "operator": "Exists", "effect": "Evict"}],
     "spec.tolerations[0].effect: must be one of NoSchedule, PreferNoSchedule, NoExecute"),
    ("Pod", "spec__affinity", {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "Near", "values": ["a"]}]}]}}},
     "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
     ".nodeSelectorTerms[0].matchExpressions[0].operator: must be one of In, NotIn, Exists, "
     "DoesNotExist, Gt, Lt"),
    ("Pod", "status__conditions", [{"type": "Ready", "status": "Yes"}],
     "status.conditions[0].status: must be one of True, False, Unknown"),
    ("Service", "spec__type", "Magic", "spec.type: must be one of ClusterIP, NodePort"),
    ("Service", "spec__type", "LoadBalancer",
     "spec.type: LoadBalancer is not supported: must be one of ClusterIP, NodePort"),
    ("Service", "spec__sessionAffinity", "Cookie",
     "spec.sessionAffinity: must be one of None, ClientIP"),
    ("Deployment", "spec__strategy__type", "BlueGreen",
     "spec.strategy.type: must be one of RollingUpdate, Recreate"),
    ("Deployment", "spec__template__spec__containers__0__imagePullPolicy", "Sometimes",
     "spec.template.spec.containers[0].imagePullPolicy: must be one of Always, IfNotPresent, "
     "Never"),
    ("DaemonSet", "spec__updateStrategy__type", "Recreate",
     "spec.updateStrategy.type: must be one of RollingUpdate, OnDelete"),
    ("StatefulSet", "spec__updateStrategy__type", "Recreate",
     "spec.updateStrategy.type: must be one of RollingUpdate, OnDelete"),
    ("StatefulSet", "spec__podManagementPolicy", "Random",
     "spec.podManagementPolicy: must be one of OrderedReady, Parallel"),
    ("Deployment", "spec__selector__matchExpressions",
     [{"key": "app", "operator": "Gt", "values": ["1"]}],
     "spec.selector.matchExpressions[0].operator: must be one of In, NotIn, Exists, "
     "DoesNotExist"),
    ("Node", "spec__taints__0__effect", "Evict",
     "spec.taints[0].effect: must be one of NoSchedule, PreferNoSchedule, NoExecute"),
    ("Node", "status__conditions__0__status", "Maybe",
     "status.conditions[0].status: must be one of True, False, Unknown"),
])
def test_enums(kind, field, value, expected):
    assert error_of(make(kind, **{field: value})) == expected


def test_empty_enum_means_default():
    validate(make("Pod", spec__restartPolicy="", spec__dnsPolicy=""))


# ---------------------------------------------------------------- pods

@pytest.mark.parametrize(("field", "value", "expected"), [
    ("spec__containers", [], "spec.containers: must have at least one container"),
    ("spec__containers__0__image", None, f"{POD_CONTAINER}.image: required value"),
    ("spec__containers__0__name", None, f"{POD_CONTAINER}.name: required value"),
    ("spec__containers__0__name", "Web", f"{POD_CONTAINER}.name: invalid value 'Web': a "
     "DNS-1123 label must consist of lower case alphanumeric characters or '-', and must "
     "start and end with an alphanumeric character"),
    ("spec__initContainers", [{"name": "web", "image": "busybox"}],
     "spec.initContainers[0].name: duplicate name 'web'"),
    ("spec__containers__0__ports__0__containerPort", 0,
     f"{POD_CONTAINER}.ports[0].containerPort: must be between 1 and 65535, inclusive"),
    ("spec__containers__0__ports__0__containerPort", 70000,
     f"{POD_CONTAINER}.ports[0].containerPort: must be between 1 and 65535, inclusive"),
    ("spec__containers__0__ports__0__hostPort", -1,
     f"{POD_CONTAINER}.ports[0].hostPort: must be between 0 and 65535, inclusive"),
    ("spec__containers__0__resources__limits__cpu", "12x",
     f"{POD_CONTAINER}.resources.limits.cpu: invalid quantity '12x'"),
    ("spec__containers__0__resources__limits__gpu", "1",
     f"{POD_CONTAINER}.resources.limits.gpu: must be one of cpu, memory, pods, "
     "ephemeral-storage"),
    ("spec__containers__0__resources__requests__memory", "-1Mi",
     f"{POD_CONTAINER}.resources.requests.memory: must be greater than or equal to 0"),
    ("spec__containers__0__resources__requests__cpu", "2",
     f"{POD_CONTAINER}.resources.requests.cpu: must be less than or equal to cpu limit"),
    ("spec__containers__0__volumeMounts__0__name", "logs",
     f"{POD_CONTAINER}.volumeMounts[0].name: volume 'logs' not found"),
    ("spec__containers__0__readinessProbe__periodSeconds", -1,
     f"{POD_CONTAINER}.readinessProbe.periodSeconds: must be greater than or equal to 0"),
    ("spec__containers__0__readinessProbe__httpGet__port", {"intVal": 0},
     f"{POD_CONTAINER}.readinessProbe.httpGet.port: must be between 1 and 65535, inclusive"),
    ("spec__containers__0__readinessProbe__httpGet__port", {"strVal": "HTTP"},
     f"{POD_CONTAINER}.readinessProbe.httpGet.port: invalid value 'HTTP': must be a port name "
     "of at most 15 lower case alphanumeric characters or '-', with at least one letter, not "
     "starting or ending with '-' and with no '--'"),
    ("spec__containers__0__livenessProbe", {"periodSeconds": 5},
     f"{POD_CONTAINER}.livenessProbe: must specify a handler type (exec, httpGet or "
     "tcpSocket)"),
    ("spec__terminationGracePeriodSeconds", -5,
     "spec.terminationGracePeriodSeconds: must be greater than or equal to 0"),
    ("spec__volumes__0", {"name": "data"},
     "spec.volumes[0]: must specify a volume type (emptyDir, hostPath or "
     "persistentVolumeClaim)"),
    ("spec__tolerations", [{"operator": "Equal", "value": "x"}],
     "spec.tolerations[0].operator: must be Exists when key is empty"),
])
def test_pod_spec_errors(field, value, expected):
    assert error_of(make("Pod", **{field: value})) == expected


def test_port_name_must_have_a_letter():
    pod = make("Pod", spec__containers__0__readinessProbe__httpGet__port={"strVal": "8080"})
    assert "invalid value '8080': must be a port name" in error_of(pod)


def test_first_problem_is_reported():
    pod = make("Pod", spec__restartPolicy="Sometimes",
               spec__containers__0__imagePullPolicy="Maybe")
    pod.metadata.name = "Bad"
    assert error_of(pod).startswith("metadata.name:")
    pod.metadata.name = "good"
    assert error_of(pod).startswith("spec.containers[0].imagePullPolicy:")


# ---------------------------------------------------------------- workloads

@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet", "StatefulSet"])
def test_negative_replicas(kind):
    assert error_of(make(kind, spec__replicas=-1)) == \
        "spec.replicas: must be greater than or equal to 0"


def test_zero_replicas_allowed():
    validate(make("Deployment", spec__replicas=0))


@pytest.mark.parametrize(("kind", "field", "value", "expected"), [
    ("Deployment", "spec__minReadySeconds", -1,
     "spec.minReadySeconds: must be greater than or equal to 0"),
    ("Deployment", "spec__selector", None, "spec.selector: required value"),
    ("DaemonSet", "spec__selector", {}, "spec.selector: required value"),
    ("ReplicaSet", "spec__selector__matchLabels__app", "api",
     "spec.template.metadata.labels: selector does not match template labels"),
    ("StatefulSet", "spec__selector", {"matchExpressions": [
        {"key": "app", "operator": "NotIn", "values": ["web"]}]},
     "spec.template.metadata.labels: selector does not match template labels"),
    ("Deployment", "spec__selector", {"matchExpressions": [{"key": "app", "operator": "In"}]},
     "spec.selector.matchExpressions[0].values: must be non-empty when operator is In"),
    ("Deployment", "spec__template__spec__containers", [],
     "spec.template.spec.containers: must have at least one container"),
    ("Deployment", "spec__template__spec__restartPolicy", "Never",
     "spec.template.spec.restartPolicy: must be Always"),
    ("Deployment", "spec__strategy", {"type": "RollingUpdate", "rollingUpdate": {
        "maxSurge": {"strVal": "x"}}},
     "spec.strategy.rollingUpdate.maxSurge: invalid value 'x': must be an integer or a "
     "percentage (e.g. '25%')"),
    ("Deployment", "spec__strategy", {"rollingUpdate": {
        "maxSurge": {"intVal": 0}, "maxUnavailable": {"strVal": "0%"}}},
     "spec.strategy.rollingUpdate.maxUnavailable: may not be 0 when maxSurge is 0"),
    ("Deployment", "spec__strategy", {"type": "Recreate", "rollingUpdate": {}},
     "spec.strategy.rollingUpdate: may not be specified when strategy type is Recreate"),
    ("StatefulSet", "spec__updateStrategy", {"rollingUpdate": {"partition": -1}},
     "spec.updateStrategy.rollingUpdate.partition: must be greater than or equal to 0"),
])
def test_workload_errors(kind, field, value, expected):
    assert error_of(make(kind, **{field: value})) == expected


# ---------------------------------------------------------------- services

@pytest.mark.parametrize(("field", "value", "expected"), [
    ("spec__ports", [], "spec.ports: must have at least one port (unless clusterIP is None)"),
    ("spec__ports__0__port", 0, "spec.ports[0].port: must be between 1 and 65535, inclusive"),
    ("spec__ports", [{"port": 80}, {"name": "b", "port": 81}],
     "spec.ports[0].name: required value when there is more than one port"),
    ("spec__ports", [{"name": "a", "port": 80}, {"name": "a", "port": 81}],
     "spec.ports[1].name: duplicate name 'a'"),
    ("spec__ports__0__nodePort", 30080,
     "spec.ports[0].nodePort: may only be set when type is NodePort"),
    ("spec__ports__0__targetPort", {"intVal": 70000},
     "spec.ports[0].targetPort: must be between 1 and 65535, inclusive"),
    ("spec__clusterIP", "10.0.0.300",
     "spec.clusterIP: invalid value '10.0.0.300': must be a valid IP address"),
])
def test_service_errors(field, value, expected):
    assert error_of(make("Service", **{field: value})) == expected


def test_node_port_range():
    service = make("Service", spec__type="NodePort", spec__ports__0__nodePort=80)
    assert error_of(service) == \
        "spec.ports[0].nodePort: must be between 30000 and 32767, inclusive"
    validate(make("Service", spec__type="NodePort", spec__ports__0__nodePort=32767))


def test_headless_service_without_ports():
    validate(make("Service", spec__ports=[], spec__clusterIP="None"))


def test_service_target_port_by_name():
    validate(make("Service", spec__ports__0__targetPort={"strVal": "http"}))


# ---------------------------------------------------------------- other kinds

def test_node_quantities():
    node = make("Node", status__allocatable={"memory": "lots"})
    assert error_of(node) == "status.allocatable.memory: invalid quantity 'lots'"


def test_lease_duration():
    assert error_of(make("Lease", spec__leaseDurationSeconds=0)) == \
        "spec.leaseDurationSeconds: must be greater than 0"
    validate(make("Lease", spec__leaseDurationSeconds=None))


def test_event_needs_involved_object_name():
    assert error_of(make("Event", involvedObject={"kind": "Pod"})) == \
        "involvedObject.name: required value"


def test_endpoints_ip():
    endpoints = make("Endpoints", subsets__0__addresses=[{"ip": "pod-1"}])
    assert error_of(endpoints) == \
        "subsets[0].addresses[0].ip: invalid value 'pod-1': must be a valid IP address"


# ---------------------------------------------------------------- updates

def update_error(old, new):
    with pytest.raises(FieldError) as err:
        validate_update(old, new)
    return str(err.value)


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet", "DaemonSet", "StatefulSet"])
def test_selector_is_immutable(kind):
    old = make(kind)
    new = make(kind, spec__selector__matchLabels__tier="web")
    assert update_error(old, new) == "spec.selector: field is immutable"
    validate_update(old, make(kind, spec__template__metadata__labels__extra="1"))


def test_cluster_ip_is_immutable_once_set():
    validate_update(make("Service"), make("Service", spec__clusterIP="10.96.0.10"))
    old = make("Service", spec__clusterIP="10.96.0.10")
    assert update_error(old, make("Service", spec__clusterIP="10.96.0.11")) == \
        "spec.clusterIP: field is immutable"


def test_pod_images_may_change():
    old = make("Pod")
    validate_update(old, make("Pod", spec__containers__0__image="nginx:1.26"))


def test_pod_spec_is_otherwise_immutable():
    old = make("Pod")
    assert update_error(old, make("Pod", spec__restartPolicy="Never")) == (
        "spec.restartPolicy: field is immutable: a pod may only change containers[*].image "
        "and initContainers[*].image")
    new = make("Pod", spec__containers__0__ports__0__containerPort=81)
    assert update_error(old, new).startswith(
        "spec.containers[0].ports[0].containerPort: field is immutable")
    new = make("Pod", spec__terminationGracePeriodSeconds=0)
    assert update_error(old, new).startswith("spec.terminationGracePeriodSeconds: field is")


def test_node_name_only_through_bind():
    old = make("Pod")
    assert update_error(old, make("Pod", spec__nodeName="node-1")) == \
        "spec.nodeName: field is immutable; use Bind"


def test_metadata_and_status_may_change():
    old = make("Pod")
    new = make("Pod", metadata__labels={"a": "b"}, status__phase="Running")
    validate_update(old, new)
