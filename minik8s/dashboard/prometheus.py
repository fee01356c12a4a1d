"""The charts: a few range queries to Prometheus over the last minutes.

/api/charts serves Prometheus' answers reshaped for the page's script: the
charts (id, title, unit), then every series as points [unix time, value]
tagged with its chart's id. Answers are kept a few seconds, so any number of
open pages costs Prometheus one round of queries per interval. A chart whose
query fails carries the error instead of data; the others are unaffected.
"""
from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

WINDOW = 15 * 60  # seconds shown
STEP = 15         # seconds between points
NOT_CONFIGURED = "not configured"


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    unit: str
    query: str
    legend: str = ""  # the label that names each series ("": one series)


CHARTS = (
    # Pods running is a fact of the API's state, which no daemon counts: the
    # dashboard exports what its own Pod cache holds (metrics.py).
    Chart("pods-running", "Pods running", "",
          'max(dashboard_cluster_pods{phase="Running"})'),
    Chart("api-rate", "API requests by verb", "/s",
          "sum by (verb) (rate(apiserver_request_total[1m]))", "verb"),
    Chart("api-p99", "API latency p99 by verb", "s",
          "histogram_quantile(0.99, sum by (verb, le) "
          "(rate(apiserver_request_duration_seconds_bucket[1m])))", "verb"),
    Chart("scheduling-p99", "Scheduling latency p99", "s",
          "histogram_quantile(0.99, sum by (le) "
          "(rate(scheduler_pod_scheduling_duration_seconds_bucket[5m])))"),
)


class PrometheusError(Exception):
    """Prometheus answered, but with an error."""


def not_configured() -> dict[str, Any]:
    """/api/charts when the dashboard was started without --prometheus."""
    return {"prometheus": NOT_CONFIGURED, "charts": [], "series": [], "errors": {}}


def series_of(chart: Chart, answer: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The series of one chart from Prometheus' query_range answer (a matrix).

    Points that are not numbers (NaN: a quantile of no requests) are left out.
    """
    if answer.get("status") != "success":
        raise PrometheusError(answer.get("error") or "query failed")
    series = []
    for item in answer["data"]["result"]:
        points = [[float(ts), float(value)] for ts, value in item["values"]
                  if math.isfinite(float(value))]
        name = item["metric"].get(chart.legend, "") if chart.legend else ""
        series.append({"chart": chart.id, "name": name, "points": points})
    return sorted(series, key=lambda s: s["name"])


class Prometheus:
    """Asks one Prometheus for the charts; answers are cached for ``ttl`` seconds."""

    def __init__(self, url: str, *, timeout: float = 5.0, ttl: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._ttl = ttl
        self._session: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()
        self._cached: tuple[float, dict[str, Any]] | None = None

    async def charts(self) -> dict[str, Any]:
        async with self._lock:  # concurrent pages share one round of queries
            now = time.time()
            if self._cached is None or now - self._cached[0] > self._ttl:
                self._cached = now, await self._fetch(now - WINDOW, now)
            return self._cached[1]

    async def _fetch(self, start: float, end: float) -> dict[str, Any]:
        answers = await asyncio.gather(*(self._answer(c, start, end) for c in CHARTS))
        payload: dict[str, Any] = {
            "prometheus": self.url, "start": start, "end": end, "step": STEP,
            "charts": [{"id": c.id, "title": c.title, "unit": c.unit} for c in CHARTS],
            "series": [], "errors": {}}
        for chart, answer in zip(CHARTS, answers, strict=True):
            if isinstance(answer, str):
                payload["errors"][chart.id] = answer
            else:
                payload["series"] += answer
        return payload

    async def _answer(self, chart: Chart, start: float,
                      end: float) -> list[dict[str, Any]] | str:
        """The chart's series, or why there are none."""
        try:
            return await self._query(chart, start, end)
        except TimeoutError:
            return "Prometheus did not answer in time"
        except (aiohttp.ClientError, PrometheusError, ValueError, KeyError) as exc:
            return f"Prometheus: {exc}"

    async def _query(self, chart: Chart, start: float, end: float) -> list[dict[str, Any]]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        params = {"query": chart.query, "start": f"{start:.3f}", "end": f"{end:.3f}",
                  "step": str(STEP)}
        async with self._session.get(f"{self.url}/api/v1/query_range", params=params) as resp:
            return series_of(chart, await resp.json(content_type=None))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

