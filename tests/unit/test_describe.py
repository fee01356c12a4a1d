"""minictl describe's text, and the pure helpers of events and cluster-info."""
from __future__ import annotations

import datetime

from minik8s.api.v1 import apiserver_pb2 as api
from minik8s.api.v1 import types_pb2 as t
from minik8s.cli import describe, inspect, printers
from minik8s.cli.describe import Description, Related

NOW = datetime.datetime(2024, 5, 14, 10, 0, 0, tzinfo=datetime.UTC)


def ago(seconds: float) -> datetime.datetime:
    return NOW - datetime.timedelta(seconds=seconds)


def test_blocks_align_like_tabwriter() -> None:
    d = Description()
    d.field("Name", "web")
    d.field("Labels", ["app=web", "tier=front"])
    d.field("Annotations", [])
    d.heading("Containers")
    d.field("Image", "nginx", 2)
    d.field("Restart Count", "0", 2)
    d.heading("Conditions")
    d.table(("Type", "Status"), [("Ready", "True"), ("PodScheduled", "True")], underline=False)
    d.field("QoS Class", "BestEffort")
    assert d.render() == (
        "Name:         web\n"
        "Labels:       app=web\n"
        "              tier=front\n"
        "Annotations:  <none>\n"
        "Containers:\n"
        "    Image:          nginx\n"
        "    Restart Count:  0\n"
        "Conditions:\n"
        "  Type          Status\n"
        "  Ready         True\n"
        "  PodScheduled  True\n"
        "QoS Class:  BestEffort\n"
    )


def _pod() -> t.Pod:
    pod = t.Pod(
        metadata=t.ObjectMeta(name="web-1", namespace="shop", uid="u1", labels={"app": "web"},
                              owner_references=[t.OwnerReference(kind="ReplicaSet",
                                                                 name="web-5d", controller=True)]),
        spec=t.PodSpec(node_name="node-1", containers=[t.Container(
            name="web", image="nginx:1.25", command=["nginx", "-g", "daemon off;"],
            ports=[t.ContainerPort(container_port=80, protocol="TCP")],
            resources=t.ResourceRequirements(limits={"cpu": "500m", "memory": "128Mi"},
                                             requests={"cpu": "500m", "memory": "128Mi"}),
            liveness_probe=t.Probe(http_get=t.HTTPGetAction(path="/healthz",
                                                            port=t.IntOrString(int_val=80)),
                                   period_seconds=5),
            readiness_probe=t.Probe(tcp_socket=t.TCPSocketAction(
                port=t.IntOrString(str_val="http"))))]),
        status=t.PodStatus(phase="Running", pod_ip="10.244.1.5", host_ip="10.0.0.1",
                           conditions=[t.Condition(type="Ready", status="True")]))
    pod.metadata.creation_timestamp.FromDatetime(ago(600))
    cs = pod.status.container_statuses.add(name="web", ready=True, restart_count=2,
                                           container_id="docker://abc")
    cs.state.running.started_at.FromDatetime(ago(60))
    cs.last_state.terminated.exit_code = 137
    cs.last_state.terminated.reason = "Error"
    return pod


def test_pod() -> None:
    ev = t.Event(type="Warning", reason="BackOff", message="Back-off restarting", count=5,
                 source=t.EventSource(component="kubelet", host="node-1"))
    ev.first_timestamp.FromDatetime(ago(300))
    ev.last_timestamp.FromDatetime(ago(30))
    text = describe.describe(_pod(), Related(events=[ev]), NOW)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    for expected in ["Name: web-1", "Namespace: shop", "Labels: app=web",
                     "CreationTimestamp: Tue, 14 May 2024 09:50:00 +0000",
                     "Controlled By: ReplicaSet/web-5d", "Node: node-1/10.0.0.1",
                     "Status: Running", "IP: 10.244.1.5", "Container ID: docker://abc",
                     "Image: nginx:1.25", "Port: 80/TCP", "State: Running",
                     "Started: Tue, 14 May 2024 09:59:00 +0000", "Last State: Terminated",
                     "Reason: Error", "Exit Code: 137", "Ready: True", "Restart Count: 2",
                     "Liveness: http-get http://:80/healthz delay=0s timeout=1s period=5s "
                     "#success=1 #failure=3",
                     "Readiness: tcp-socket :http delay=0s timeout=1s period=10s "
                     "#success=1 #failure=3",
                     "QoS Class: Guaranteed", "Ready True",
                     "Type Reason Age From Message",
                     "Warning BackOff 30s (x5 over 5m) kubelet Back-off restarting"]:
        assert expected in lines, expected
    assert lines.index("Command:") < lines.index("nginx") < lines.index("daemon off;")


def test_deployment_replicas_and_replica_sets() -> None:
    d = t.Deployment(metadata=t.ObjectMeta(name="web", namespace="shop"),
                     spec=t.DeploymentSpec(replicas=3, selector=t.LabelSelector(
                         match_labels={"app": "web"})),
                     status=t.DeploymentStatus(replicas=4, updated_replicas=3,
                                               available_replicas=2, unavailable_replicas=2))
    old = t.ReplicaSet(metadata=t.ObjectMeta(
        name="web-old", annotations={"deployment.kubernetes.io/revision": "1"}),
        spec=t.ReplicaSetSpec(replicas=1), status=t.ReplicaSetStatus(replicas=1))
    new = t.ReplicaSet(metadata=t.ObjectMeta(
        name="web-new", annotations={"deployment.kubernetes.io/revision": "2"}),
        spec=t.ReplicaSetSpec(replicas=3), status=t.ReplicaSetStatus(replicas=3))
    text = describe.describe(d, Related(replica_sets=[new, old]), NOW)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    assert "Replicas: 3 desired | 3 updated | 4 total | 2 available | 2 unavailable" in lines
    assert "RollingUpdateStrategy: 25% max unavailable, 25% max surge" in lines
    assert "OldReplicaSets: web-old (1/1 replicas created)" in lines
    assert "NewReplicaSet: web-new (3/3 replicas created)" in lines
    assert lines[-1] == "Events: <none>"


def test_service_ports_and_endpoints() -> None:
    svc = t.Service(metadata=t.ObjectMeta(name="web", namespace="shop"),
                    spec=t.ServiceSpec(type="NodePort", cluster_ip="10.96.0.10",
                                       selector={"app": "web"},
                                       ports=[t.ServicePort(name="http", port=80, node_port=30080,
                                                            target_port=t.IntOrString(
                                                                int_val=8080))]))
    ep = t.Endpoints(subsets=[t.EndpointSubset(
        addresses=[t.EndpointAddress(ip="10.244.0.5"), t.EndpointAddress(ip="10.244.0.6")],
        ports=[t.EndpointPort(name="http", port=8080)])])
    lines = [" ".join(line.split())
             for line in describe.describe(svc, Related(endpoints=ep), NOW).splitlines()]
    for expected in ["Type: NodePort", "IP: 10.96.0.10", "Port: http 80/TCP",
                     "TargetPort: 8080/TCP", "NodePort: http 30080/TCP",
                     "Endpoints: 10.244.0.5:8080,10.244.0.6:8080", "Session Affinity: None"]:
        assert expected in lines, expected


def test_node_with_pods() -> None:
    node = t.Node(metadata=t.ObjectMeta(name="node-1"),
                  spec=t.NodeSpec(pod_cidr="10.244.1.0/24", unschedulable=True, taints=[
                      t.Taint(key="dedicated", value="web", effect="NoSchedule")]),
                  status=t.NodeStatus(capacity={"cpu": "4", "memory": "8Gi"},
                                      allocatable={"cpu": "4", "memory": "8Gi"},
                                      addresses=[t.NodeAddress(type="InternalIP",
                                                               address="10.0.0.1")],
                                      node_info=t.NodeSystemInfo(kubelet_version="v0.1.0")))
    pod = _pod()
    text = describe.describe(node, Related(pods=[pod]), NOW)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    assert "Namespace" not in text.split("Non-terminated")[0]  # a node has none
    for expected in ["Taints: dedicated=web:NoSchedule", "Unschedulable: true",
                     "InternalIP: 10.0.0.1", "cpu: 4", "memory: 8Gi", "Kubelet Version: v0.1.0",
                     "PodCIDR: 10.244.1.0/24", "Non-terminated Pods: (1 in total)",
                     "shop web-1 500m (12%) 500m (12%) 128Mi (1%) 128Mi (1%) 10m",
                     "cpu 500m (12%) 500m (12%)"]:
        assert expected in lines, expected


def test_other_kinds_show_their_fields() -> None:
    ev = t.Event(metadata=t.ObjectMeta(name="e", namespace="default"), reason="Scheduled",
                 involved_object=t.ObjectReference(kind="Pod", name="web-1"))
    lines = describe.describe(ev, Related(), NOW).splitlines()
    assert "Reason:  Scheduled" in lines
    assert "InvolvedObject:" in lines and "  kind: Pod" in lines


def test_qos_class() -> None:
    spec = t.PodSpec(containers=[t.Container(name="a")])
    assert describe.qos_class(spec) == "BestEffort"
    spec.containers[0].resources.requests["cpu"] = "100m"
    assert describe.qos_class(spec) == "Burstable"
    spec.containers[0].resources.limits.update({"cpu": "0.1", "memory": "1Gi"})
    assert describe.qos_class(spec) == "Guaranteed"  # 0.1 is 100m; memory requests = limits


def test_pods_status_counts_phases() -> None:
    pods = [t.Pod(status=t.PodStatus(phase=p)) for p in ("Running", "Running", "", "Failed")]
    assert describe.pods_status(pods) == "2 Running / 1 Waiting / 0 Succeeded / 1 Failed"


def test_event_age_and_order() -> None:
    once = t.Event(metadata=t.ObjectMeta(name="a"), count=1)
    once.last_timestamp.FromDatetime(ago(45))
    often = t.Event(metadata=t.ObjectMeta(name="b"), count=3)
    often.first_timestamp.FromDatetime(ago(600))
    often.last_timestamp.FromDatetime(ago(90))
    created = t.Event(metadata=t.ObjectMeta(name="c"))
    created.metadata.creation_timestamp.FromDatetime(ago(5))
    assert printers.event_age(once, NOW) == "45s"
    assert printers.event_age(often, NOW) == "90s (x3 over 10m)"
    assert printers.event_age(created, NOW) == "5s"
    assert [e.metadata.name for e in sorted([created, once, often],
                                            key=printers.event_sort_key)] == ["b", "a", "c"]


def test_etcd_member_lines() -> None:
    healthy = api.EtcdMember(name="etcd-0", client_urls=["http://127.0.0.1:2379"], healthy=True,
                             leader=True, db_size=24_576, version="3.4.23")
    down = api.EtcdMember(name="etcd-1", client_urls=["http://127.0.0.1:2381"],
                          error="connection refused")
    assert inspect.etcd_member_line(healthy) == \
        "etcd-0 (http://127.0.0.1:2379): healthy, leader, db 24.6 kB, v3.4.23"
    assert inspect.etcd_member_line(down) == \
        "etcd-1 (http://127.0.0.1:2381): unhealthy (connection refused)"
    assert [inspect.byte_size(n) for n in (512, 2_000, 150_000, 3_100_000)] == \
        ["512 B", "2.0 kB", "150 kB", "3.1 MB"]
