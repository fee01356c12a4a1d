"""The dashboard's view model and HTML: what a user reads on the page, and that
nothing from the cluster becomes markup."""
from __future__ import annotations

import datetime
from html.parser import HTMLParser

from google.protobuf.timestamp_pb2 import Timestamp

from minik8s.api.v1 import types_pb2 as t
from minik8s.dashboard import model, render
from minik8s.dashboard.render import Html, el
from minik8s.dashboard.sections import SECTIONS

NOW = datetime.datetime(2024, 5, 14, 10, 0, 0, tzinfo=datetime.UTC)


def ts(seconds_ago: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(NOW - datetime.timedelta(seconds=seconds_ago))
    return stamp


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.parts.append(data.strip())


def text(html: str) -> str:
    """The words a reader sees, one space between text nodes."""
    parser = _Text()
    parser.feed(html)
    return " ".join(parser.parts)


def owner(kind: str, name: str, uid: str) -> t.OwnerReference:
    return t.OwnerReference(kind=kind, name=name, uid=uid, controller=True)


def node(name: str, ready: str = "True", cpu: str = "2", memory: str = "4Gi",
         **spec: object) -> t.Node:
    return t.Node(metadata=t.ObjectMeta(name=name), spec=t.NodeSpec(**spec),
                  status=t.NodeStatus(
                      allocatable={"cpu": cpu, "memory": memory, "pods": "110"},
                      conditions=[t.Condition(type="Ready", status=ready,
                                              reason="KubeletReady" if ready == "True"
                                              else "NodeStatusUnknown"),
                                  t.Condition(type="MemoryPressure", status="False")]))


def pod(name: str, node_name: str = "node-0", owner_ref: t.OwnerReference | None = None,
        phase: str = "Running", ready: bool = True, restarts: int = 0, cpu: str = "250m",
        memory: str = "64Mi", namespace: str = "shop") -> t.Pod:
    return t.Pod(
        metadata=t.ObjectMeta(name=name, namespace=namespace,
                              owner_references=[owner_ref] if owner_ref else []),
        spec=t.PodSpec(node_name=node_name, containers=[t.Container(
            name="c", image="echo",
            resources=t.ResourceRequirements(requests={"cpu": cpu, "memory": memory}))]),
        status=t.PodStatus(phase=phase, pod_ip="10.244.0.5" if node_name else "",
                           container_statuses=[t.ContainerStatus(
                               name="c", ready=ready, restart_count=restarts)]))


def deployment(replicas: int = 3, updated: int = 3, available: int = 3,
               **status: object) -> t.Deployment:
    return t.Deployment(
        metadata=t.ObjectMeta(name="web", namespace="shop", uid="d1", generation=2),
        spec=t.DeploymentSpec(replicas=replicas),
        status=t.DeploymentStatus(
            observed_generation=2, replicas=updated, updated_replicas=updated,
            ready_replicas=available, available_replicas=available,
            conditions=[t.WorkloadCondition(type="Progressing", status="True",
                                            reason="NewReplicaSetAvailable")], **status))


# ---------------------------------------------------------------- nodes

def test_nodes_show_conditions_taints_and_what_their_pods_request() -> None:
    nodes = [node("node-1", ready="Unknown", unschedulable=True,
                  taints=[t.Taint(key="node.kubernetes.io/unreachable", effect="NoExecute")]),
             node("node-0")]
    pods = [pod("a", "node-0"), pod("b", "node-0", cpu="1", memory="1Gi"),
            pod("done", "node-0", phase="Succeeded"), pod("pending", "")]
    views = model.node_views(nodes, pods)

    assert [v.name for v in views] == ["node-0", "node-1"]
    n0, n1 = views
    assert n0.ready and n0.status == "Ready"
    assert (n0.cpu.used, n0.cpu.total, n0.cpu.text) == (1250, 2000, "1250m / 2")
    assert n0.memory.text == "1.1Gi / 4Gi"     # the finished pod counts for nothing
    assert n0.pods.text == "2 / 110"
    assert n1.status == "NotReady,SchedulingDisabled" and not n1.ready
    assert n1.taints == ("node.kubernetes.io/unreachable:NoExecute",)

    page = text(render.nodes(views))
    assert "1 of 2 ready" in page
    for words in ("node-0", "Ready=True", "MemoryPressure=False", "1250m / 2", "2 / 110",
                  "node-1", "NotReady,SchedulingDisabled", "Ready=Unknown",
                  "node.kubernetes.io/unreachable:NoExecute"):
        assert words in page


def test_a_condition_is_healthy_by_its_type() -> None:
    views = model.node_views([node("n", ready="False")], [])
    assert {c.type: c.healthy for c in views[0].conditions} == {"Ready": False,
                                                                "MemoryPressure": True}
    html = render.nodes(views)
    assert 'class="badge bad" title="NodeStatusUnknown">Ready=False' in html
    assert 'class="badge ok">MemoryPressure=False' in html


def test_bytes_are_shown_in_binary_units() -> None:
    assert [model.bytes_text(n) for n in (0, 1000, 1536, 128 << 20, 3 << 29)] == \
        ["0", "1000", "1.5Ki", "128Mi", "1.5Gi"]


# ---------------------------------------------------------------- workloads

def test_a_deployment_shows_the_pods_of_its_replicasets_and_its_rollout() -> None:
    rs = t.ReplicaSet(metadata=t.ObjectMeta(name="web-5d", namespace="shop", uid="rs1",
                                            owner_references=[owner("Deployment", "web", "d1")]))
    pods = [pod("web-5d-b", "node-1", owner("ReplicaSet", "web-5d", "rs1"), restarts=2),
            pod("web-5d-a", "node-0", owner("ReplicaSet", "web-5d", "rs1")),
            pod("web-5d-c", "", owner("ReplicaSet", "web-5d", "rs1"), phase="Pending",
                ready=False),
            pod("stray", "node-0")]
    [view] = model.workload_views([deployment(updated=3, available=2)], [rs], [], [], pods)

    assert [p.name for p in view.pods] == ["web-5d-a", "web-5d-b", "web-5d-c"]
    assert (view.desired, view.updated, view.ready, view.available) == (3, 3, 2, 2)
    assert view.state == "progressing"
    assert view.message == ('Waiting for deployment "web" rollout to finish: '
                            "2 of 3 updated replicas are available...")
    page = text(render.workloads([view]))
    for words in ("Deployment shop/web", "progressing", "desired 3 · updated 3 · ready 2 · "
                  "available 2", "2 of 3 updated replicas are available",
                  "Progressing: True NewReplicaSetAvailable",
                  "web-5d-a Running 1/1 node-0 0 10.244.0.5",
                  "web-5d-b Running 1/1 node-1 2", "web-5d-c Pending 0/1 —"):
        assert words in page
    assert "stray" not in page


def test_rollout_states() -> None:
    assert model.rollout_state(deployment())[0] == "complete"
    paused = deployment(updated=1)
    paused.spec.paused = True
    assert model.rollout_state(paused)[0] == "paused"
    stuck = deployment(updated=1)
    stuck.status.conditions[0].CopyFrom(t.WorkloadCondition(
        type="Progressing", status="False", reason="ProgressDeadlineExceeded"))
    assert model.rollout_state(stuck) == ("failed",
                                          'deployment "web" exceeded its progress deadline')
    ds = t.DaemonSet(metadata=t.ObjectMeta(name="agent", namespace="kube-system", uid="ds1"),
                     status=t.DaemonSetStatus(desired_number_scheduled=2,
                                              updated_number_scheduled=2, number_available=1))
    assert model.rollout_state(ds) == (
        "progressing", 'Waiting for daemon set "agent" rollout to finish: 1 of 2 updated '
                       "pods are available...")
    ds.status.number_available = 2
    assert model.rollout_state(ds) == ("complete", 'daemon set "agent" successfully rolled out')


def test_statefulsets_and_daemonsets_own_their_pods_directly() -> None:
    sts = t.StatefulSet(
        metadata=t.ObjectMeta(name="db", namespace="shop", uid="s1", generation=1),
        spec=t.StatefulSetSpec(replicas=1),
        status=t.StatefulSetStatus(observed_generation=1, replicas=1, ready_replicas=1,
                                   current_replicas=1, updated_replicas=1,
                                   current_revision="r1", update_revision="r1"))
    ds = t.DaemonSet(metadata=t.ObjectMeta(name="agent", namespace="kube-system", uid="ds1"),
                     status=t.DaemonSetStatus(desired_number_scheduled=2, number_ready=1))
    pods = [pod("db-0", owner_ref=owner("StatefulSet", "db", "s1")),
            pod("agent-x", owner_ref=owner("DaemonSet", "agent", "ds1"),
                namespace="kube-system", phase="Running", ready=False)]
    views = model.workload_views([], [], [sts], [ds], pods)

    assert [(v.kind, v.name, [p.name for p in v.pods]) for v in views] == [
        ("DaemonSet", "agent", ["agent-x"]), ("StatefulSet", "db", ["db-0"])]
    assert views[0].pods[0].health == "warn" and views[1].pods[0].health == "ok"
    assert views[1].state == "complete"


def test_pod_health_follows_what_kubectl_shows() -> None:
    crashing = pod("c", restarts=4)
    crashing.status.container_statuses[0].state.waiting.reason = "CrashLoopBackOff"
    failed = pod("f", phase="Failed", ready=False)
    done = pod("d", phase="Succeeded", ready=False)
    assert [(v.status, v.health) for v in map(model.pod_view, (crashing, failed, done))] == [
        ("CrashLoopBackOff", "bad"), ("Failed", "bad"), ("Succeeded", "ok")]


# ---------------------------------------------------------------- services, leaders, events

def test_services_show_their_ready_and_unready_endpoints() -> None:
    svc = t.Service(metadata=t.ObjectMeta(name="web", namespace="shop"),
                    spec=t.ServiceSpec(type="NodePort", cluster_ip="10.96.0.20", ports=[
                        t.ServicePort(name="http", port=80, node_port=30080)]))
    lonely = t.Service(metadata=t.ObjectMeta(name="db", namespace="shop"),
                       spec=t.ServiceSpec(cluster_ip="10.96.0.21",
                                          ports=[t.ServicePort(port=5432)]))
    ep = t.Endpoints(metadata=t.ObjectMeta(name="web", namespace="shop"), subsets=[
        t.EndpointSubset(addresses=[t.EndpointAddress(ip="10.244.0.5")],
                         not_ready_addresses=[t.EndpointAddress(ip="10.244.1.7")],
                         ports=[t.EndpointPort(name="http", port=8080)])])
    views = model.service_views([svc, lonely], [ep])
    assert [(v.name, v.endpoints, v.not_ready) for v in views] == [
        ("db", (), ()), ("web", ("10.244.0.5:8080",), ("10.244.1.7:8080",))]
    page = text(render.services(views))
    assert "shop web NodePort 10.96.0.20 80:30080/TCP 10.244.0.5:8080 10.244.1.7:8080 " \
           "(not ready)" in page
    assert "shop db ClusterIP 10.96.0.21 5432/TCP none" in page


def test_leaders_are_the_holders_of_the_kube_system_leases() -> None:
    def lease(name: str, holder: str, renewed: float, namespace: str = "kube-system") -> t.Lease:
        return t.Lease(metadata=t.ObjectMeta(name=name, namespace=namespace),
                       spec=t.LeaseSpec(holder_identity=holder, lease_duration_seconds=2,
                                        renew_time=ts(renewed), lease_transitions=3))
    views = model.leader_views([lease("kube-scheduler", "host_1_a", 1),
                                lease("kube-controller-manager", "host_2_b", 30),
                                lease("kube-scheduler", "impostor", 0, namespace="other")],
                               NOW)
    assert [(v.component, v.holder, v.renewed, v.expired, v.transitions) for v in views] == [
        ("kube-scheduler", "host_1_a", "1s", False, 3),
        ("kube-controller-manager", "host_2_b", "30s", True, 3)]
    page = text(render.leaders(views))
    assert "kube-scheduler host_1_a 1s ago 3" in page
    assert "1 of 2 components led" in page
    assert model.leader_views([], NOW)[0].holder == ""
    assert "kube-scheduler none" in text(render.leaders(model.leader_views([], NOW)))


def test_events_newest_first_at_most_fifty() -> None:
    events = [t.Event(metadata=t.ObjectMeta(name=f"e{i}", namespace="shop"),
                      involved_object=t.ObjectReference(kind="Pod", name=f"web-{i}"),
                      reason="Started", message=f"started {i}", count=1, type="Normal",
                      last_timestamp=ts(100 - i)) for i in range(60)]
    events.append(t.Event(metadata=t.ObjectMeta(name="w", namespace="shop"),
                          involved_object=t.ObjectReference(kind="Pod", name="web-x"),
                          reason="BackOff", message="Back-off restarting failed container",
                          count=7, type="Warning", first_timestamp=ts(600),
                          last_timestamp=ts(5)))
    views = model.event_views(events, NOW)
    assert len(views) == 50
    assert [v.object for v in views[:3]] == ["pod/web-x", "pod/web-59", "pod/web-58"]
    html = render.events(views)
    assert "5s Warning BackOff shop pod/web-x Back-off restarting failed container 7" in text(html)
    assert html.count('class="warning"') == 1


# ---------------------------------------------------------------- escaping and the page

def test_nothing_from_the_cluster_becomes_markup() -> None:
    evil = "<script>alert(1)</script>"
    bad = pod(evil, owner_ref=owner("ReplicaSet", "rs", "rs1"))
    bad.status.container_statuses[0].state.waiting.reason = '"><img src=x onerror=alert(2)>'
    rs = t.ReplicaSet(metadata=t.ObjectMeta(name="rs", namespace="shop", uid="rs1",
                                            owner_references=[owner("Deployment", evil, "d1")]))
    dep = deployment()
    dep.metadata.name = evil
    n = node(evil, taints=[t.Taint(key="k", value=evil, effect="NoSchedule")])
    n.status.conditions[0].message = '" onmouseover="alert(3)'
    ev = t.Event(metadata=t.ObjectMeta(name="e", namespace="shop"), message=evil, reason=evil,
                 involved_object=t.ObjectReference(kind="Pod", name=evil))
    html = "".join([render.nodes(model.node_views([n], [bad])),
                    render.workloads(model.workload_views([dep], [rs], [], [], [bad])),
                    render.events(model.event_views([ev], NOW))])
    assert "<script>" not in html and "<img" not in html
    assert 'onmouseover="' not in html and "onerror=alert(2)>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert evil in text(html)  # and still reads as written


def test_el_escapes_children_and_attributes_but_not_html() -> None:
    assert el("p", "a<b", Html("<br>"), ["&", None], 3, title='x"y', class_="c",
              hidden=True, data_id=None) == \
        '<p title="x&quot;y" class="c" hidden>a&lt;b<br>&amp;3</p>'


def test_the_page_holds_every_section_and_its_script() -> None:
    objects = {"Node": [node("node-0")], "Pod": [], "Lease": [], "Event": [],
               "Deployment": [], "ReplicaSet": [], "StatefulSet": [], "DaemonSet": [],
               "Service": [], "Endpoints": []}
    sections = {s.id: s.render(objects.__getitem__, NOW) for s in SECTIONS}
    html = render.page(sections, "")
    for section_id in ("charts", "leaders", "nodes", "workloads", "services", "events"):
        assert f'<section id="{section_id}">' in html
    assert '<script src="/static/dashboard.js" defer></script>' in html
    assert "Prometheus not configured" in text(html)
    assert "No workloads." in text(html) and "node-0" in text(html)
    charted = render.page(sections, "http://prometheus:9090")
    assert 'data-source="/api/charts"' in charted and "from http://prometheus:9090" in charted


def test_an_address_with_a_udp_and_a_tcp_port_of_one_number_shows_once() -> None:
    svc = t.Service(metadata=t.ObjectMeta(name="kube-dns", namespace="kube-system"),
                    spec=t.ServiceSpec(ports=[t.ServicePort(name="dns", port=53, protocol="UDP"),
                                              t.ServicePort(name="dns-tcp", port=53)]))
    ep = t.Endpoints(metadata=t.ObjectMeta(name="kube-dns", namespace="kube-system"), subsets=[
        t.EndpointSubset(addresses=[t.EndpointAddress(ip="10.0.0.1")],
                         ports=[t.EndpointPort(name="dns", port=5353, protocol="UDP"),
                                t.EndpointPort(name="dns-tcp", port=5353)])])
    [view] = model.service_views([svc], [ep])
    assert view.endpoints == ("10.0.0.1:5353",) and view.ports == "53/UDP,53/TCP"
