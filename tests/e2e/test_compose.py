"""The compose cluster (deploy/docker-compose.yml) end to end.

These tests build the image, start the cluster's containers and break some
of them (MINIK8S_SKIP_E2E=1 skips them). They run on the compose project of
the e2e package, `minik8s-e2e` (conftest.py). Traffic goes only to 127.0.0.1
(published ports) and, through minictl's logs/exec, to the project's own
containers. The cluster runs with TLS, client certificates and RBAC, as
compose-up makes it.
"""
from __future__ import annotations

import asyncio
import os
import stat
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from minik8s import errors
from minik8s.client import ApiClient
from minik8s.config import Credentials
from tests.compose import (
    MINICTL,
    MINIK8S,
    Compose,
    compose_down,
    eventually,
    run,
    state_dir,
)
from tests.e2e.conftest import PROJECT
from tests.e2e.monitoring import AlertWatch, Monitoring, global_config, hold_for

if os.environ.get("MINIK8S_SKIP_E2E") == "1":
    pytest.skip("MINIK8S_SKIP_E2E=1", allow_module_level=True)

pytestmark = pytest.mark.timeout(900)


def pods(c: Compose, selector: str = "app=hello") -> list[dict[str, Any]]:
    return c.get("pods", "-l", selector)["items"]


def live(pod: dict[str, Any]) -> bool:
    return not pod["metadata"].get("deletionTimestamp")


def ready(pod: dict[str, Any]) -> bool:
    return live(pod) and any(cond["type"] == "Ready" and cond["status"] == "True"
                             for cond in pod.get("status", {}).get("conditions", []))


def node_ready(c: Compose, name: str) -> bool:
    node = c.get("node", name)
    return any(cond["type"] == "Ready" and cond["status"] == "True"
               for cond in node.get("status", {}).get("conditions", []))


def fetch(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=3) as resp:
        return resp.read().decode().strip()


def answers(port: int, count: int) -> list[str]:
    out = []
    for _ in range(count):
        try:
            out.append(fetch(port))
        except (urllib.error.URLError, OSError) as exc:
            out.append(f"error: {exc}")
    return out


def test_bring_up_and_demo_answers_on_nodeport(compose: Compose) -> None:
    nodes = compose.get("nodes")["items"]
    assert sorted(n["metadata"]["name"] for n in nodes) == ["node-0", "node-1"]
    assert all(node_ready(compose, n["metadata"]["name"]) for n in nodes)
    hello = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in pods(compose) if ready(p)}
    assert len(hello) == 3, hello
    assert compose.get("svc", "hello")["spec"]["ports"][0]["nodePort"] == 30080
    for node in ("node-0", "node-1"):
        got = answers(compose.nodeport(node), 24)
        assert set(got) <= set(hello), f"through {node}: {got}"
        # random balancing over three pods: in 24 tries every pod answers, the other node's too
        elsewhere = {name for name, on in hello.items() if on != node}
        assert elsewhere <= set(got), f"through {node}, pods elsewhere {elsewhere} never answered"


def test_cluster_info_shows_apiservers_etcd_and_leaders(compose: Compose) -> None:
    out = compose.minictl("cluster-info").stdout
    lines = out.splitlines()
    apiservers = [line for line in lines if line.startswith("apiserver ")]
    assert len(apiservers) == 3 and all(line.endswith(": healthy") for line in apiservers), out
    members = [line for line in lines
               if line.startswith("etcd ") and not line.startswith("etcd leader")]
    assert len(members) == 3 and all(": healthy" in line for line in members), out
    assert sum(", leader," in line for line in members) == 1, out
    leaders = {line.split(" leader: ")[0]: line.split(" leader: ")[1] for line in lines
               if " leader: " in line and not line.startswith("etcd")}
    assert leaders.keys() >= {"scheduler", "controller-manager"}, out
    assert all(holder and holder != "<none>" for holder in leaders.values()), out


def test_pods_on_two_nodes_reach_each_other_by_ip_and_by_service_name(compose: Compose) -> None:
    by_node: dict[str, dict[str, Any]] = {}
    for pod in pods(compose):
        if ready(pod):
            by_node.setdefault(pod["spec"]["nodeName"], pod)
    assert len(by_node) == 2, f"hello pods are not on both nodes: {list(by_node)}"
    first, second = by_node.values()
    name, other_ip = first["metadata"]["name"], second["status"]["podIP"]

    def get(url: str) -> str:
        return compose.minictl("exec", name, "--", "wget", "-qO-", url).stdout.strip()
    assert get(f"http://{other_ip}:8080/") == second["metadata"]["name"]  # pod IP, across nodes
    # the Service by its name: cluster DNS on the nodes, then the proxy's ClusterIP rules
    names = {p["metadata"]["name"] for p in pods(compose) if ready(p)}
    seen = eventually(lambda: get("http://hello/"), 60, "hello by name from a pod")
    assert seen in names


def test_security_is_on(compose: Compose) -> None:
    pki_dir = state_dir(PROJECT) / "pki"
    keys = [p for p in pki_dir.rglob("*") if p.is_file()]
    assert keys and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in keys)
    ca_pem = (pki_dir / "ca.crt").read_bytes()

    # the apiservers want a client certificate of the cluster CA: none, no handshake
    async def list_pods(creds: Credentials) -> None:
        async with ApiClient(compose.servers, credentials=creds, retry_deadline=2) as api:
            await api.list("Pod", "default")
    with pytest.raises(errors.Unavailable):
        asyncio.run(list_pods(Credentials(ca=ca_pem, token="not-a-certificate")))

    # users added with `minik8s create-user` (a certificate) and `create-token` (on the
    # token ports) are authenticated, then forbidden by RBAC until a role is bound
    cert_user = Path(run(MINIK8S, "create-user", "e2e-cert", "--compose", PROJECT).stdout.strip())
    token_user = Path(run(MINIK8S, "create-token", "e2e-token", "--compose",
                          PROJECT).stdout.strip())
    for user, conf in (("e2e-cert", cert_user), ("e2e-token", token_user)):
        assert stat.S_IMODE(conf.stat().st_mode) == 0o600
        env = dict(compose.env, MINIK8S_CONFIG=str(conf))

        def forbidden(env: dict[str, str] = env, user: str = user) -> bool:
            proc = run(MINICTL, "get", "pods", env=env, check=False, timeout=60)
            return proc.returncode != 0 and f'User "{user}" cannot list' in proc.stderr
        eventually(forbidden, 30, f"{user} authenticated and forbidden")  # tokens: re-read
    compose.minictl("apply", "-f", "-", stdin=EDIT_IN_DEFAULT.format(user="e2e-token"))
    token_env = dict(compose.env, MINIK8S_CONFIG=str(token_user))
    eventually(lambda: run(MINICTL, "get", "pods", env=token_env, check=False,
                           timeout=60).returncode == 0, 30, "e2e-token may list after a binding")

    # etcd: TLS only, and only for clients with a certificate; health stays on plain :2381
    etcd = compose.container("etcd-0")
    curl = ["docker", "exec", etcd, "curl", "-fsS", "--max-time", "5"]
    tls = ["--cacert", "/etc/minik8s/pki/ca.crt"]
    assert run(*curl, *tls, "https://etcd-0:2379/health", check=False).returncode != 0
    assert run(*curl, "http://127.0.0.1:2379/health", check=False).returncode != 0
    assert '"health":"true"' in run(*curl, *tls, "--cert", "/etc/minik8s/pki/etcd.crt",
                                    "--key", "/etc/minik8s/pki/etcd.key",
                                    "https://etcd-0:2379/health").stdout
    assert '"health":"true"' in run(*curl, "http://127.0.0.1:2381/health").stdout
    # the kubelet API (minictl exec and logs) is tested over TLS by the pod tests above


EDIT_IN_DEFAULT = """apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: {user}-edit, namespace: default}}
subjects: [{{kind: User, name: {user}}}]
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit}}
"""


def lease_holder(c: Compose, name: str) -> str:
    return c.get("lease", name, "-n", "kube-system")["spec"].get("holderIdentity", "")


POD = """apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{test: compose}}}}
spec:
  containers:
  - name: web
    image: minik8s/echo:latest
    imagePullPolicy: Never
"""


def test_scheduler_leader_killed_another_leads_and_schedules(compose: Compose) -> None:
    holder = eventually(lambda: lease_holder(compose, "kube-scheduler"), 30, "a scheduler leads")
    service = holder.split("_")[0]          # host_pid_random; the host is the service name
    assert service.startswith("scheduler-"), holder
    victim = compose.container(service)
    run("docker", "kill", victim)
    try:
        new = eventually(lambda: (h := lease_holder(compose, "kube-scheduler"))
                         and not h.startswith(service + "_") and h, 30,
                         f"another scheduler takes the lease from {holder}")
        assert new.split("_")[0] in {"scheduler-0", "scheduler-1", "scheduler-2"} - {service}
        compose.minictl("apply", "-f", "-", stdin=POD.format(name="after-failover"))
        pod = eventually(lambda: (p := compose.get("pod", "after-failover"))["spec"].get("nodeName")
                         and p, 30, "the new leader schedules a pod")
        assert pod["spec"]["nodeName"] in {"node-0", "node-1"}
        eventually(lambda: ready(compose.get("pod", "after-failover")), 60, "the pod runs")
    finally:
        compose.minictl("delete", "pod", "after-failover", check=False)
        run("docker", "start", victim, check=False)   # `docker kill` is a manual stop: no restart


def test_node_stopped_goes_not_ready_and_pods_move(compose: Compose) -> None:
    """Also: NodeNotReady fires in Alertmanager within its `for` plus one scrape and one
    evaluation interval of the API showing the node NotReady, and resolves once it is back."""
    before = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in pods(compose) if ready(p)}
    assert before, "no hello pods to move"
    on_node1 = [n for n in before.values() if n == "node-1"]
    victim, survivor = ("node-1", "node-0") if on_node1 else ("node-0", "node-1")
    container = compose.container(victim)
    intervals = global_config()
    step = intervals["scrape_interval"] + intervals["evaluation_interval"]
    fire_within = hold_for("NodeNotReady") + step
    with AlertWatch(Monitoring(compose), "NodeNotReady", node=victim) as alert:
        run("docker", "stop", "-t", "30", container, timeout=90)
        try:
            eventually(lambda: not node_ready(compose, victim), 60, f"{victim} goes NotReady",
                       interval=0.5)
            not_ready_at = time.monotonic()

            def moved() -> bool:
                now = [p for p in pods(compose) if ready(p)]
                return len(now) == 3 and all(p["spec"]["nodeName"] == survivor for p in now)
            eventually(moved, 120, f"the hello pods run again, all on {survivor}", interval=2)
            current = {p["metadata"]["name"] for p in pods(compose) if ready(p)}
            got = eventually(lambda: (a := answers(compose.nodeport(survivor), 6))
                             and set(a) <= current and a, 30,
                             f"the NodePort of {survivor} answers from the moved pods")
            assert set(got) <= current
            eventually(lambda: alert.fired_at, not_ready_at + fire_within + 60 - time.monotonic(),
                       f"NodeNotReady for {victim} in Alertmanager ({alert})", interval=0.5)
        finally:
            run("docker", "start", container, check=False)
        eventually(lambda: node_ready(compose, victim), 120, f"{victim} comes back Ready",
                   interval=0.5)
        ready_at = time.monotonic()
        eventually(lambda: alert.resolved_at, step + 60, f"NodeNotReady resolves ({alert})",
                   interval=0.5)
    assert alert.fired_at is not None and alert.resolved_at is not None
    fired, resolved = alert.fired_at - not_ready_at, alert.resolved_at - ready_at
    print(f"NodeNotReady ({victim}): fired {fired:.1f}s after NotReady (bound {fire_within:.0f}s), "
          f"resolved {resolved:.1f}s after Ready (bound {step:.0f}s)")
    assert 0 < fired <= fire_within, f"NodeNotReady fired {fired:.1f}s after NotReady"
    assert 0 < resolved <= step, f"NodeNotReady resolved {resolved:.1f}s after Ready"


def test_compose_down_leaves_nothing(compose: Compose) -> None:
    assert compose.labelled("container"), "the project should be running before compose-down"
    proc = compose_down(compose.project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert compose.labelled("container") == set()
    assert compose.labelled("network") == set()
    assert compose.labelled("volume") == set()
    assert not state_dir(compose.project).exists()
