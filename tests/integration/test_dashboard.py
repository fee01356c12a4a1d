"""`minik8s dashboard` as a process against a real cluster, read in a real headless
browser: the page shows the nodes and a Deployment's pods, and follows a scale-up
without being reloaded.

The charts come from a stand-in for Prometheus on loopback (no Prometheus runs
in this cluster): it answers every range query with a small series and records
the queries, so the whole path, from the dashboard's queries to the SVG drawn
in the browser, is exercised.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from minik8s.client import ApiClient
from minik8s.localcluster import LocalCluster, free_port
from minik8s.retry import retry_on_conflict
from tests.browser import artifacts, browser, severe_logs, text_of
from tests.integration.helpers import eventually, scrape
from tests.integration.kubelet_helpers import echo_deployment, web_service

# ---------------------------------------------------------------- a stand-in Prometheus

@dataclass
class StandIn:
    url: str
    queries: list[str] = field(default_factory=list)


def _answer(query: str, start: float, end: float, step: float) -> dict:
    """One series (labelled verb=Get, for the charts by verb): a gentle wave."""
    count = int((end - start) // step) + 1
    values = [[start + i * step, str(2 + math.sin(i / 6))] for i in range(count)]
    return {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"verb": "Get"}, "values": values}]}}


@pytest.fixture(scope="module")
def prometheus() -> Iterator[StandIn]:
    standin = StandIn("")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
            url = urllib.parse.urlsplit(self.path)
            args = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
            if url.path != "/api/v1/query_range":
                self.send_error(404)
                return
            standin.queries.append(args["query"])
            body = json.dumps(_answer(args["query"], float(args["start"]), float(args["end"]),
                                      float(args["step"]))).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    standin.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield standin
    httpd.shutdown()
    httpd.server_close()


# ---------------------------------------------------------------- the dashboard process

def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError:
        return 0, ""


@dataclass
class Dashboard:
    url: str
    log: Path


@pytest.fixture(scope="module")
def dashboard(node_cluster: LocalCluster, prometheus: StandIn,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """`minik8s dashboard` on a free loopback port; it must stop cleanly on SIGTERM."""
    port = free_port()
    log = tmp_path_factory.mktemp("dashboard") / "dashboard.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "minik8s.cli.daemons", "dashboard",
             "--server", ",".join(node_cluster.servers), "--bind-address", "127.0.0.1",
             "--port", str(port), "--prometheus", prometheus.url],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        yield Dashboard(url, log)
    finally:
        proc.terminate()
        try:
            code = proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    text = log.read_text()
    assert code == 0, text
    assert "dashboard[" in text and "received SIGTERM" in text and "stopped" in text, text


async def until_ready(dashboard: Dashboard) -> None:
    await eventually(lambda: get(f"{dashboard.url}/readyz")[0] == 200, timeout=30,
                     interval=0.2)


# ---------------------------------------------------------------- tests

async def test_health_metrics_and_chart_data(dashboard: Dashboard, prometheus: StandIn) -> None:
    await until_ready(dashboard)
    assert get(f"{dashboard.url}/healthz") == (200, "ok\n")
    samples = scrape(f"{dashboard.url}/metrics")
    phases = {labels["phase"] for name, labels, _ in samples if name == "dashboard_cluster_pods"}
    assert phases == {"Pending", "Running", "Succeeded", "Failed", "Unknown"}
    assert any(name == "process_cpu_seconds_total" for name, _, _ in samples)

    status, body = get(f"{dashboard.url}/api/charts")
    data = json.loads(body)
    assert status == 200 and data["prometheus"] == prometheus.url and data["errors"] == {}
    assert {c["id"] for c in data["charts"]} == {"pods-running", "api-rate", "api-p99",
                                                 "scheduling-p99"}
    assert {s["chart"] for s in data["series"]} == {c["id"] for c in data["charts"]}
    assert all(len(s["points"]) > 50 for s in data["series"])
    assert any("apiserver_request_total" in q for q in prometheus.queries)


async def test_the_page_follows_a_scale_up_without_a_reload(
        dashboard: Dashboard, node_client: ApiClient, node_namespace: str) -> None:
    ns = node_namespace
    await node_client.create(echo_deployment("web", ns, 1))
    await node_client.create(web_service("web", ns))
    [first] = await eventually(lambda: _count(node_client, ns, 1), timeout=60, interval=0.2)
    await until_ready(dashboard)
    driver = browser()
    try:
        driver.get(dashboard.url)
        await eventually(lambda: text_of(driver, "live") == "live", timeout=30)
        await eventually(lambda: all(word in text_of(driver, "nodes") for word in (
            "node-0", "node-1", "Ready=True", "2 of 2 ready")), timeout=30)
        await eventually(lambda: f"Deployment {ns}/web" in text_of(driver, "workloads")
                         and first in text_of(driver, "workloads"), timeout=30)
        driver.execute_script("window.beforeScale = 'still here';")

        async def scale() -> None:
            d = await node_client.get("Deployment", "web", ns)
            d.spec.replicas = 3
            await node_client.update(d)
        await retry_on_conflict(scale)
        names = await eventually(lambda: _count(node_client, ns, 3), timeout=90, interval=0.2)

        def shows_all() -> bool:
            workloads = text_of(driver, "workloads")
            return all(n in workloads for n in names) and "ready 3 · available 3" in workloads
        await eventually(shows_all, timeout=90, interval=0.2)
        assert driver.execute_script("return window.beforeScale") == "still here"
        assert driver.execute_script(
            "return performance.getEntriesByType('navigation').length") == 1
        assert f"{ns} web ClusterIP" in text_of(driver, "services")
        await eventually(lambda: len(driver.find_elements(By.CSS_SELECTOR, "#charts svg")) == 4,
                         timeout=30)
        assert "kube-controller-manager" in text_of(driver, "leaders")
        # no script error, no request the page's Content-Security-Policy refused
        assert severe_logs(driver) == []
        driver.save_screenshot(str(artifacts() / "dashboard.png"))
    finally:
        driver.quit()


async def _count(client: ApiClient, namespace: str, n: int) -> list[str] | None:
    """The names of the namespace's n Ready pods, once there are exactly n."""
    pods, _ = await client.list("Pod", namespace)
    ready = sorted(p.metadata.name for p in pods if not p.metadata.HasField("deletion_timestamp")
                   and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions))
    return ready if len(ready) == n else None
