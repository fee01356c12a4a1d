"""deploy/prometheus/ checked with the promtool and amtool of the image the cluster runs.

No cluster: the image (deploy/build.sh, cached) runs the tools on the mounted
directory. Also checks, without Docker, that every compose service is scraped
and every alert has a summary, a runbook and a unit test in alerts_test.yml.
"""
from __future__ import annotations

import os

import pytest
import yaml

from tests.compose import COMPOSE_FILE, ROOT, run
from tests.e2e.monitoring import PROMETHEUS_DIR, rules

if os.environ.get("MINIK8S_SKIP_E2E") == "1":
    pytest.skip("MINIK8S_SKIP_E2E=1", allow_module_level=True)

pytestmark = pytest.mark.timeout(900)

MOUNT = "/etc/prometheus/minik8s"
# node-entrypoint.sh: the kubelet's, the proxy's and the DNS replica's metrics ports
NODE_PORTS = {"kubelet": 10248, "proxy": 10249, "dns": 10054}


@pytest.fixture(scope="module")
def image() -> str:
    return run(ROOT / "deploy" / "build.sh", timeout=900).stdout.splitlines()[-1]


def in_image(image: str, *argv: str) -> str:
    proc = run("docker", "run", "--rm", "-v", f"{PROMETHEUS_DIR}:{MOUNT}:ro", "-w", MOUNT,
               image, *argv, check=False, timeout=120)
    assert proc.returncode == 0, f"{' '.join(argv)}:\n{proc.stdout}{proc.stderr}"
    return proc.stdout + proc.stderr


@pytest.mark.parametrize("argv", [("promtool", "check", "config", "prometheus.yml"),
                                  ("promtool", "check", "rules", "alerts.yml"),
                                  ("promtool", "test", "rules", "alerts_test.yml"),
                                  ("amtool", "check-config", "alertmanager.yml")],
                         ids=lambda argv: " ".join(argv[1:3]))
def test_tools_accept_the_configuration(image: str, argv: tuple[str, ...]) -> None:
    print(in_image(image, *argv))


def test_every_compose_service_is_scraped_with_component_and_instance() -> None:
    jobs = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())["scrape_configs"]
    targets = {job["job_name"]: {t for group in job["static_configs"] for t in group["targets"]}
               for job in jobs}
    services = set(yaml.safe_load(COMPOSE_FILE.read_text())["services"])
    assert {t.rsplit(":", 1)[0] for group in targets.values() for t in group} == services
    nodes = {s for s in services if s.startswith("node-")}
    for job, port in NODE_PORTS.items():
        assert targets[job] == {f"{node}:{port}" for node in nodes}, job
    for job in jobs:
        labelled = {relabel["target_label"] for relabel in job.get("relabel_configs", [])}
        assert labelled >= {"component", "instance"}, job["job_name"]


def test_every_alert_has_a_runbook_and_a_unit_test() -> None:
    tests = yaml.safe_load((PROMETHEUS_DIR / "alerts_test.yml").read_text())["tests"]
    fired = {case["alertname"] for test in tests for case in test["alert_rule_test"]
             if case.get("exp_alerts")}
    for name, rule in rules().items():
        assert rule.get("for"), f"{name}: no `for`"
        assert {"summary", "runbook"} <= set(rule.get("annotations", {})), name
        assert name in fired, f"{name}: alerts_test.yml never expects it to fire"
