"""Prometheus and Alertmanager of a compose cluster, through their ports on 127.0.0.1.

The timing bounds come from deploy/prometheus/ itself: an alert shows in
Alertmanager at most its rule's `for` plus one scrape and one evaluation
interval after its condition holds in what Prometheus scrapes.
"""
from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse
import urllib.request
from typing import Any

import yaml

from tests.compose import ROOT, Compose

PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
POLL = 0.5  # seconds between two looks at Alertmanager's alerts


def seconds(duration: str) -> float:
    """A Prometheus duration of one unit ("5s", "1m", "2h") in seconds."""
    match = re.fullmatch(r"(\d+)(ms|s|m|h)", duration)
    assert match, f"unsupported duration {duration!r}"
    return int(match[1]) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[match[2]]


def global_config() -> dict[str, float]:
    """scrape_interval, scrape_timeout and evaluation_interval of prometheus.yml, in seconds."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())["global"]
    return {key: seconds(config[key])
            for key in ("scrape_interval", "scrape_timeout", "evaluation_interval")}


def rules() -> dict[str, dict[str, Any]]:
    """The alerting rules of alerts.yml by alert name."""
    groups = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}


def hold_for(alert: str) -> float:
    """The rule's `for`, in seconds."""
    return seconds(rules()[alert].get("for", "0s"))


def get_json(url: str, timeout: float = 5) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.load(resp)


class Monitoring:
    """The published Prometheus, Alertmanager and dashboard of one compose project."""

    def __init__(self, compose: Compose) -> None:
        self.prometheus = f"http://127.0.0.1:{compose.settings['MINIK8S_PROMETHEUS_PORT']}"
        self.alertmanager = f"http://127.0.0.1:{compose.settings['MINIK8S_ALERTMANAGER_PORT']}"
        self.dashboard = f"http://127.0.0.1:{compose.settings['MINIK8S_DASHBOARD_PORT']}"

    def targets(self) -> list[dict[str, Any]]:
        return get_json(f"{self.prometheus}/api/v1/targets?state=active")["data"]["activeTargets"]

    def rule_health(self) -> dict[str, str]:
        groups = get_json(f"{self.prometheus}/api/v1/rules?type=alert")["data"]["groups"]
        return {rule["name"]: rule["health"] for group in groups for rule in group["rules"]}

    def alerts(self, alertname: str, **labels: str) -> list[dict[str, Any]]:
        """Alertmanager's active alerts of that name whose labels include `labels`."""
        matchers = [f'alertname="{alertname}"'] + [f'{k}="{v}"' for k, v in labels.items()]
        query = urllib.parse.urlencode([("filter", m) for m in matchers] + [("active", "true")])
        found = get_json(f"{self.alertmanager}/api/v2/alerts?{query}")
        return [a for a in found if a["status"]["state"] == "active"]


class AlertWatch:
    """Looks at Alertmanager every POLL seconds in a thread, from `with` on, and notes
    when (time.monotonic()) the alert was first seen active, then first seen gone again."""

    def __init__(self, monitoring: Monitoring, alertname: str, **labels: str) -> None:
        self.monitoring, self.alertname, self.labels = monitoring, alertname, labels
        self.fired_at: float | None = None
        self.resolved_at: float | None = None
        self.last_error: Exception | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True,
                                        name=f"watch-{alertname}")

    def __enter__(self) -> AlertWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                active = bool(self.monitoring.alerts(self.alertname, **self.labels))
            except (OSError, ValueError, KeyError) as exc:
                self.last_error = exc
            else:
                now = time.monotonic()   # after the answer: never earlier than the truth
                if active and self.fired_at is None:
                    self.fired_at = now
                elif not active and self.fired_at is not None and self.resolved_at is None:
                    self.resolved_at = now
            self._stop.wait(POLL)

    def __repr__(self) -> str:
        return (f"AlertWatch({self.alertname} {self.labels}: fired_at={self.fired_at}, "
                f"resolved_at={self.resolved_at}, last_error={self.last_error!r})")
