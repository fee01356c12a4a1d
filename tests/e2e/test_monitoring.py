"""Prometheus, Alertmanager and the dashboard of the compose cluster (docs/monitoring.md).

On the e2e package's cluster (conftest.py), through the ports published on
127.0.0.1. NodeNotReady is checked in test_compose.py, where a node is stopped.
"""
from __future__ import annotations

import os
import time
from typing import Any

import pytest

from tests.browser import artifacts, browser, severe_logs, text_of
from tests.compose import Compose, eventually, run
from tests.e2e.monitoring import AlertWatch, Monitoring, get_json, global_config, hold_for, rules

if os.environ.get("MINIK8S_SKIP_E2E") == "1":
    pytest.skip("MINIK8S_SKIP_E2E=1", allow_module_level=True)

pytestmark = pytest.mark.timeout(600)

NODES = ("node-0", "node-1")
TARGETS = ({("etcd", f"etcd-{i}") for i in range(3)}
           | {("apiserver", f"apiserver-{i}") for i in range(3)}
           | {("scheduler", f"scheduler-{i}") for i in range(3)}
           | {("controller-manager", f"controller-manager-{i}") for i in range(3)}
           | {(component, node) for component in ("kubelet", "proxy", "dns") for node in NODES}
           | {("prometheus", "prometheus"), ("alertmanager", "alertmanager"),
              ("dashboard", "dashboard")})


def test_prometheus_scrapes_every_component(compose: Compose) -> None:
    monitoring = Monitoring(compose)
    seen: dict[tuple[str, str], str] = {}

    def all_up() -> bool:
        seen.clear()
        for target in monitoring.targets():
            labels = target["labels"]
            seen[(labels["component"], labels["instance"])] = (
                target["health"] + (f" ({target['lastError']})" if target["lastError"] else ""))
        return set(seen) == TARGETS and all(health == "up" for health in seen.values())
    eventually(all_up, 60, "every target up in Prometheus", interval=2)
    print(f"{len(seen)} targets up")
    assert set(seen) == TARGETS, seen
    assert set(monitoring.rule_health()) == set(rules())
    assert set(monitoring.rule_health().values()) == {"ok"}, monitoring.rule_health()


def test_apiserver_stopped_fires_apiserver_down_then_resolves(compose: Compose) -> None:
    """ApiserverDown shows in Alertmanager within its `for` plus one scrape (and its
    timeout) and one evaluation interval of the stop, and goes once the apiserver is back."""
    victim = "apiserver-2"
    container = compose.container(victim)
    intervals = global_config()
    fire_within = (hold_for("ApiserverDown") + intervals["scrape_interval"]
                   + intervals["scrape_timeout"] + intervals["evaluation_interval"])
    with AlertWatch(Monitoring(compose), "ApiserverDown", instance=victim) as alert:
        run("docker", "stop", "-t", "10", container, timeout=60)
        stopped_at = time.monotonic()
        try:
            eventually(lambda: alert.fired_at, fire_within + 60,
                       f"ApiserverDown for {victim} in Alertmanager ({alert})", interval=0.5)
        finally:
            started = run("docker", "start", container, check=False)
        assert started.returncode == 0, f"docker start {victim}: {started.stderr}"
        started_at = time.monotonic()
        eventually(lambda: alert.resolved_at, 90, f"ApiserverDown resolves ({alert})",
                   interval=0.5)
    assert alert.fired_at is not None and alert.resolved_at is not None
    fired, resolved = alert.fired_at - stopped_at, alert.resolved_at - started_at
    print(f"ApiserverDown ({victim}): fired {fired:.1f}s after the stop (bound "
          f"{fire_within:.0f}s), resolved {resolved:.1f}s after the start")
    assert 0 < fired <= fire_within, f"ApiserverDown fired {fired:.1f}s after the stop"

    def apiservers_healthy() -> bool:
        lines = compose.minictl("cluster-info").stdout.splitlines()
        return sum(line.startswith("apiserver ") and line.endswith(": healthy")
                   for line in lines) == 3
    eventually(apiservers_healthy, 60, "the three apiservers healthy again", interval=2)


def test_dashboard_charts_come_from_prometheus(compose: Compose) -> None:
    url = f"{Monitoring(compose).dashboard}/api/charts"

    def charts() -> dict[str, Any] | None:
        answer = get_json(url, timeout=10)
        return answer if any(series["points"] for series in answer["series"]) else None
    answer = eventually(charts, 60, f"{url} has points", interval=2)
    assert answer["prometheus"] == "http://prometheus:9090"
    assert answer["errors"] == {}, answer["errors"]
    ids = {chart["id"] for chart in answer["charts"]}
    assert {series["chart"] for series in answer["series"]} <= ids
    now = time.time()
    points = [p for series in answer["series"] for p in series["points"]]
    assert all(now - 3600 < ts <= now + 60 for ts, _ in points), "points outside the last hour"
    print(f"/api/charts: {len(answer['series'])} series, {len(points)} points "
          f"in {len(ids)} charts")


def test_dashboard_in_a_browser_shows_the_cluster_and_live_charts(compose: Compose) -> None:
    """The compose dashboard in headless chromium: nodes, the demo's pods, charts drawn
    from Prometheus; the screenshot is the one docs/dashboard.md shows."""
    url = Monitoring(compose).dashboard
    hello = {p["metadata"]["name"] for p in compose.get("pods", "-l", "app=hello")["items"]
             if not p["metadata"].get("deletionTimestamp")}
    driver = browser()
    try:
        driver.get(url)
        eventually(lambda: text_of(driver, "live") == "live", 30, "the page goes live")
        eventually(lambda: all(w in text_of(driver, "nodes") for w in ("node-0", "node-1",
                                                                       "2 of 2 ready")),
                   30, "both nodes Ready on the page")
        eventually(lambda: all(name in text_of(driver, "workloads") for name in hello), 30,
                   f"the hello pods {sorted(hello)} on the page")
        # the charts panel redraws from Prometheus every 15 s: every chart gets a line
        eventually(lambda: driver.execute_script(
            "return [...document.querySelectorAll('#charts figure')]"
            ".filter((f) => f.querySelector('polyline')).length") == 4,
            60, "four charts with data", interval=2)
        assert severe_logs(driver) == []
        driver.save_screenshot(str(artifacts() / "dashboard-compose.png"))
    finally:
        driver.quit()
