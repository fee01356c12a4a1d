"""The dashboard's server side without a cluster: live sections, the HTTP routes,
the event stream and the Prometheus charts."""
from __future__ import annotations

import asyncio
import datetime
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, generate_latest

from minik8s.api.v1 import types_pb2 as t
from minik8s.dashboard import prometheus, server
from minik8s.dashboard.live import LiveSections
from minik8s.dashboard.metrics import PodPhases
from minik8s.dashboard.prometheus import CHARTS, Prometheus
from minik8s.dashboard.render import Html
from minik8s.dashboard.sections import Section


class Counted:
    """Sections "a" (kind A) and "b" (kinds A and B) that say how often they were drawn."""

    def __init__(self) -> None:
        self.renders = {"a": 0, "b": 0}
        self.version = 0

    def section(self, id_: str, *kinds: str) -> Section:
        def draw(objects: object, now: datetime.datetime) -> Html:
            self.renders[id_] += 1
            return Html(f'<section id="{id_}">v{self.version}</section>')
        return Section(id_, kinds, draw)

    def live(self, **kwargs: float) -> LiveSections:
        return LiveSections([self.section("a", "A"), self.section("b", "A", "B")],
                            lambda kind: [], **kwargs)


async def test_a_burst_of_changes_costs_one_rendering() -> None:
    counted = Counted()
    live = counted.live(interval=0.05, refresh=60)
    subscriber = live.subscribe()
    assert await subscriber.next(1) == {"a": '<section id="a">v0</section>',
                                        "b": '<section id="b">v0</section>'}
    runner = asyncio.create_task(live.run())
    try:
        counted.version = 1
        for _ in range(100):
            live.changed("B")
        assert await subscriber.next(1) == {"b": '<section id="b">v1</section>'}
        assert counted.renders == {"a": 1, "b": 2}
        live.changed("A")  # both drawn again; b is unchanged, so not sent again
        assert await subscriber.next(1) == {"a": '<section id="a">v1</section>'}
        assert counted.renders == {"a": 2, "b": 3}
        assert await subscriber.next(0.2) == {}
    finally:
        runner.cancel()


async def test_every_section_is_redrawn_each_refresh() -> None:
    counted = Counted()
    live = counted.live(interval=0.01, refresh=0.05)
    subscriber = live.subscribe()
    await subscriber.next(1)
    runner = asyncio.create_task(live.run())
    try:
        counted.version = 2  # as an age moving on
        assert await subscriber.next(1) == {"a": '<section id="a">v2</section>',
                                            "b": '<section id="b">v2</section>'}
    finally:
        runner.cancel()


async def test_closing_ends_every_subscription() -> None:
    live = Counted().live()
    subscriber = live.subscribe()
    await subscriber.next(1)
    live.close()
    assert await subscriber.next(1) is None


@dataclass
class App:
    client: TestClient
    counted: Counted
    live: LiveSections


Http = Callable[..., Awaitable[App]]


@pytest.fixture
async def http() -> AsyncIterator[Http]:
    apps: list[App] = []

    async def start(charts: Prometheus | None = None, ready: bool = True) -> App:
        counted = Counted()
        live = counted.live(interval=0.01, refresh=60)
        client = TestClient(TestServer(server.make_app(
            server.Dashboard(live, charts, lambda: ready))))
        await client.start_server()
        apps.append(App(client, counted, live))
        return apps[-1]
    yield start
    for app in apps:
        await app.client.close()


async def test_routes_are_read_only_and_secured(http: Http) -> None:
    client = (await http(ready=False)).client
    page = await client.get("/")
    assert page.status == 200 and page.content_type == "text/html"
    body = await page.text()
    assert '<section id="a">v0</section>' in body and "Prometheus not configured" in body
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert (await client.post("/")).status == 405
    assert (await client.delete("/api/charts")).status == 405
    script = await client.get("/static/dashboard.js")
    assert script.content_type == "text/javascript" and "EventSource" in await script.text()
    assert (await client.get("/static/other.js")).status == 404
    assert await (await client.get("/healthz")).text() == "ok\n"
    assert (await client.get("/readyz")).status == 503
    metrics = await (await client.get("/metrics")).text()
    assert "dashboard_stream_clients" in metrics


async def test_charts_without_prometheus(http: Http) -> None:
    client = (await http()).client
    data = await (await client.get("/api/charts")).json()
    assert data == {"prometheus": "not configured", "charts": [], "series": [], "errors": {}}


async def read_event(resp: ClientResponse) -> str:
    """The next Server-Sent Event (comments skipped)."""
    while True:
        block = (await resp.content.readuntil(b"\n\n")).decode()
        if not block.startswith((":", "retry:")):
            return block


async def test_the_stream_sends_every_section_then_each_change(http: Http) -> None:
    app = await http()
    resp = await app.client.get("/api/stream")
    assert resp.content_type == "text/event-stream"
    first = [await read_event(resp) for _ in range(2)]
    assert all(e.startswith("event: section\n") for e in first)
    assert {json.loads(e.split("data: ", 1)[1])["id"] for e in first} == {"a", "b"}
    runner = asyncio.create_task(app.live.run())
    try:
        app.counted.version = 1
        app.live.changed("B")
        update = json.loads((await read_event(resp)).split("data: ", 1)[1])
        assert update == {"id": "b", "html": '<section id="b">v1</section>'}
        app.live.close()  # shutting down ends the stream
        assert await resp.content.read() == b""
    finally:
        runner.cancel()


async def fake_prometheus(answer: Callable[[str], dict]) -> TestServer:
    async def query_range(request: web.Request) -> web.Response:
        assert {"start", "end", "step"} <= request.query.keys()
        return web.json_response(answer(request.query["query"]))
    app = web.Application()
    app.router.add_get("/api/v1/query_range", query_range)
    fake = TestServer(app)
    await fake.start_server()
    return fake


def matrix(*results: dict) -> dict:
    return {"status": "success", "data": {"resultType": "matrix", "result": list(results)}}


async def test_charts_from_prometheus(http: Http) -> None:
    asked: list[str] = []

    def answer(query: str) -> dict:
        asked.append(query)
        if "scheduler" in query:
            return {"status": "error", "errorType": "bad_data", "error": "parse error"}
        return matrix({"metric": {"verb": "Get"}, "values": [[100, "1.5"], [115, "NaN"]]},
                      {"metric": {"verb": "Create"}, "values": [[100, "2"]]})
    fake = await fake_prometheus(answer)
    charts = Prometheus(str(fake.make_url("/")))
    try:
        client = (await http(charts=charts)).client
        data = await (await client.get("/api/charts")).json()
        again = await (await client.get("/api/charts")).json()
    finally:
        await charts.close()
        await fake.close()
    assert len(asked) == len(CHARTS) and data == again  # the second answer came from the cache
    assert [c["id"] for c in data["charts"]] == [c.id for c in CHARTS]
    assert data["errors"] == {"scheduling-p99": "Prometheus: parse error"}
    api_rate = [s for s in data["series"] if s["chart"] == "api-rate"]
    assert api_rate == [{"chart": "api-rate", "name": "Create", "points": [[100.0, 2.0]]},
                        {"chart": "api-rate", "name": "Get", "points": [[100.0, 1.5]]}]
    assert [s["name"] for s in data["series"] if s["chart"] == "pods-running"] == ["", ""]
    assert data["end"] - data["start"] == prometheus.WINDOW


async def test_an_unreachable_prometheus_is_an_error_per_chart() -> None:
    fake = await fake_prometheus(lambda query: matrix())
    url = str(fake.make_url("/"))
    await fake.close()  # nobody listens there any more
    charts = Prometheus(url)
    try:
        data = await charts.charts()
    finally:
        await charts.close()
    assert data["series"] == [] and set(data["errors"]) == {c.id for c in CHARTS}
    assert all(e.startswith("Prometheus: ") for e in data["errors"].values())


def test_pod_phases_are_counted_at_scrape_time() -> None:
    pods: list[t.Pod] = [t.Pod(status=t.PodStatus(phase="Running")),
                         t.Pod(status=t.PodStatus(phase="Running")), t.Pod()]
    registry = CollectorRegistry()
    registry.register(PodPhases(lambda: pods))
    assert registry.get_sample_value("dashboard_cluster_pods", {"phase": "Running"}) == 2
    assert registry.get_sample_value("dashboard_cluster_pods", {"phase": "Pending"}) == 1
    pods.pop()
    assert 'dashboard_cluster_pods{phase="Pending"} 0.0' in generate_latest(registry).decode()
