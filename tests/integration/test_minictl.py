"""minictl as a user runs it: a real subprocess against the shared local cluster."""
from __future__ import annotations

import asyncio
import ipaddress
import json
import time
from pathlib import Path

import yaml

from minik8s import errors
from minik8s.client import ApiClient
from tests.integration.helpers import MINICTL, eventually, minictl, pod

SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/16")

WEB = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        imagePullPolicy: {pull}
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {{app: web}}
  ports:
  - port: 80
    targetPort: 80
"""


def write_web(tmp_path: Path, replicas: int = 2, pull: str = "IfNotPresent") -> Path:
    path = tmp_path / "web.yaml"
    path.write_text(WEB.format(replicas=replicas, pull=pull))
    return path


async def test_apply_reports_created_unchanged_configured(
        cli_env: dict[str, str], namespace: str, tmp_path: Path) -> None:
    path = write_web(tmp_path)
    first = await minictl(cli_env, "apply", "-f", str(path), "-n", namespace)
    assert first.code == 0, first.err
    assert first.out.splitlines() == ["deployment.apps/web created", "service/web created"]

    again = await minictl(cli_env, "apply", "-n", namespace, "-f", str(path))
    assert again.out.splitlines() == ["deployment.apps/web unchanged", "service/web unchanged"]

    write_web(tmp_path, replicas=3)
    changed = await minictl(cli_env, "-n", namespace, "apply", "-f", "-",
                            stdin=path.read_text())
    assert changed.out.splitlines() == ["deployment.apps/web configured",
                                        "service/web unchanged"]


async def test_get_tables_and_formats(cli_env: dict[str, str], namespace: str,
                                      tmp_path: Path) -> None:
    applied = await minictl(cli_env, "apply", "-f", str(write_web(tmp_path)), "-n", namespace)
    assert applied.code == 0, applied.err

    table = await minictl(cli_env, "get", "deploy,svc", "-n", namespace)
    assert table.code == 0, table.err
    deploys, services = table.out.strip().split("\n\n")
    assert deploys.split()[:5] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert deploys.splitlines()[1].split()[:2] == ["deployment.apps/web", "0/2"]
    header, row = services.splitlines()
    assert header.split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    name, svc_type, cluster_ip, external, ports, _ = row.split()
    assert (name, svc_type, external, ports) == ("service/web", "ClusterIP", "<none>", "80/TCP")
    assert ipaddress.ip_address(cluster_ip) in SERVICE_CIDR

    as_yaml = await minictl(cli_env, "get", "svc", "web", "-o", "yaml", "-n", namespace)
    svc = yaml.safe_load(as_yaml.out)
    assert (svc["kind"], svc["metadata"]["name"]) == ("Service", "web")
    assert svc["spec"]["clusterIP"] == cluster_ip

    names = await minictl(cli_env, "get", "deploy,svc", "-o", "name", "-n", namespace)
    assert names.out.splitlines() == ["deployment.apps/web", "service/web"]

    everywhere = await minictl(cli_env, "get", "svc", "-A")
    assert everywhere.out.split()[0] == "NAMESPACE"
    assert any(line.split()[:2] == [namespace, "web"] for line in everywhere.out.splitlines())


async def test_get_in_an_empty_namespace(cli_env: dict[str, str], namespace: str) -> None:
    as_json = await minictl(cli_env, "get", "po", "-o", "json", "-n", namespace)
    assert as_json.code == 0, as_json.err
    data = json.loads(as_json.out)
    assert (data["kind"], data["items"]) == ("List", [])

    table = await minictl(cli_env, "get", "pods", "-n", namespace)
    assert (table.code, table.out) == (0, "")
    assert table.err.strip() == f"No resources found in {namespace} namespace."


async def test_bad_manifest_names_file_and_field(cli_env: dict[str, str], namespace: str,
                                                 tmp_path: Path) -> None:
    path = write_web(tmp_path, pull="Sometimes")
    result = await minictl(cli_env, "apply", "-f", str(path), "-n", namespace)
    assert result.code == 1
    assert result.out == ""
    assert str(path) in result.err
    assert ("spec.template.spec.containers[0].imagePullPolicy: must be one of Always, "
            "IfNotPresent, Never") in result.err
    assert "Traceback" not in result.err


async def test_get_missing_is_not_found(cli_env: dict[str, str], namespace: str) -> None:
    result = await minictl(cli_env, "get", "pods", "nope", "-n", namespace)
    assert result.code == 1
    assert result.err.strip() == 'Error from server (NotFound): pods "nope" not found'


async def test_create_refuses_existing(cli_env: dict[str, str], namespace: str,
                                       tmp_path: Path) -> None:
    path = write_web(tmp_path)
    first = await minictl(cli_env, "create", "-f", str(path), "-n", namespace)
    assert first.out.splitlines() == ["deployment.apps/web created", "service/web created"]
    second = await minictl(cli_env, "create", "-f", str(path), "-n", namespace)
    assert second.code == 1
    assert "Error from server (AlreadyExists)" in second.err


async def test_delete_by_file_and_by_name(cli_env: dict[str, str], client: ApiClient,
                                          namespace: str, tmp_path: Path) -> None:
    path = write_web(tmp_path)
    await minictl(cli_env, "apply", "-f", str(path), "-n", namespace)
    deleted = await minictl(cli_env, "delete", "-f", str(path), "-n", namespace)
    assert deleted.code == 0, deleted.err
    assert deleted.out.splitlines() == ['deployment.apps "web" deleted', 'service "web" deleted']
    for kind in ("Deployment", "Service"):
        assert not (await client.list(kind, namespace))[0]

    await client.create(pod("p1", namespace))
    by_name = await minictl(cli_env, "delete", "po", "p1", "nope", "-n", namespace)
    assert by_name.code == 1
    assert by_name.out.splitlines() == ['pod "p1" deleted']
    assert by_name.err.strip() == 'Error from server (NotFound): pods "nope" not found'

    async def gone() -> bool:
        try:
            await client.get("Pod", "p1", namespace)
        except errors.NotFound:
            return True
        return False
    await eventually(gone)


async def test_watch_sees_a_new_pod(cli_env: dict[str, str], client: ApiClient,
                                    namespace: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        *MINICTL, "get", "pods", "-w", "--watch-timeout", "3", "-n", namespace, env=cli_env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    # the list is done (and the watch starts from it) once it reports the empty namespace
    notice = await asyncio.wait_for(proc.stderr.readline(), timeout=20)
    assert notice.decode().startswith("No resources found")
    await client.create(pod("watched", namespace))
    out, err = await asyncio.wait_for(proc.communicate(), timeout=20)
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err
    lines = out.decode().splitlines()
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert any(line.split()[0] == "watched" for line in lines[1:])


async def test_unreachable_servers_fail_cleanly(cli_env: dict[str, str]) -> None:
    start = time.monotonic()
    result = await minictl(cli_env, "--server", "127.0.0.1:1", "get", "pods")
    assert time.monotonic() - start < 30
    assert result.code == 1
    assert "Traceback" not in result.err
    assert "127.0.0.1:1" in result.err and "unavailable" in result.err


async def test_missing_config_fails_cleanly(cli_env: dict[str, str], tmp_path: Path) -> None:
    env = {**cli_env, "MINIK8S_SERVERS": "", "MINIK8S_CONFIG": str(tmp_path / "none")}
    result = await minictl(env, "get", "pods")
    assert result.code == 1
    assert result.err.startswith("error: no apiserver given")
