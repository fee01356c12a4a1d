"""The dashboard's HTTP server: the page, its live stream, the chart data, health.

Only GET (and HEAD) routes exist: nothing here changes anything. Every answer
carries a Content-Security-Policy that lets the page run only its own script
and talk only to this server, a second wall behind the escaping in render.

The live stream is Server-Sent Events: on connect every section, then each
section again whenever its rendering changes, as ``event: section`` with
``{"id": ..., "html": ...}``; a comment line keeps an idle connection open
(and finds out when the browser has gone).
"""
from __future__ import annotations

import json
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from minik8s.dashboard import assets, prometheus, render
from minik8s.dashboard.live import LiveSections
from minik8s.dashboard.metrics import STREAM_CLIENTS
from minik8s.dashboard.prometheus import Prometheus

KEEPALIVE = 15.0  # seconds between comments on an idle stream
RETRY_MS = 3000   # how soon a browser reconnects a broken stream
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; "
                                "connect-src 'self'; img-src 'self'; base-uri 'none'; "
                                "form-action 'none'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
STATIC = {
    "dashboard.css": ("text/css", assets.STYLE),
    "dashboard.js": ("text/javascript", assets.SCRIPT),
}


class Dashboard:
    """The request handlers, over the live sections and (optionally) Prometheus."""

    def __init__(self, sections: LiveSections, charts: Prometheus | None,
                 ready: Callable[[], bool]) -> None:
        self.sections = sections
        self.charts = charts
        self.ready = ready

    async def page(self, request: web.Request) -> web.Response:
        body = render.page(self.sections.current(), self.charts.url if self.charts else "")
        return web.Response(text=body, content_type="text/html",
                            headers={"Cache-Control": "no-store"})

    async def static(self, request: web.Request) -> web.Response:
        found = STATIC.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        content_type, text = found
        return web.Response(text=text, content_type=content_type,
                            headers={"Cache-Control": "no-cache"})

    async def stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-store"})
        await response.prepare(request)
        subscriber = self.sections.subscribe()
        STREAM_CLIENTS.inc()
        try:
            await response.write(f"retry: {RETRY_MS}\n\n".encode())
            while (updates := await subscriber.next(KEEPALIVE)) is not None:
                await response.write(sse(updates) if updates else b": keepalive\n\n")
        except ConnectionResetError:
            pass  # the page was closed
        finally:
            self.sections.unsubscribe(subscriber)
            STREAM_CLIENTS.dec()
        return response

    async def chart_data(self, request: web.Request) -> web.Response:
        data = await self.charts.charts() if self.charts else prometheus.not_configured()
        return web.json_response(data, headers={"Cache-Control": "no-store"})

    async def no_icon(self, request: web.Request) -> web.Response:
        """Browsers ask for one; answering keeps their consoles free of a 404."""
        return web.Response(status=204)

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(self, request: web.Request) -> web.Response:
        if self.ready():
            return web.Response(text="ok\n")
        return web.Response(status=503, text="caches not synced\n")

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def sse(updates: dict[str, str]) -> bytes:
    """Server-Sent Events, one per section (JSON keeps each data on one line)."""
    return "".join(f"event: section\ndata: {json.dumps({'id': id_, 'html': html})}\n\n"
                   for id_, html in updates.items()).encode()


async def _secure(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)


def make_app(dashboard: Dashboard) -> web.Application:
    app = web.Application()
    app.add_routes([
        web.get("/", dashboard.page),
        web.get("/static/{name}", dashboard.static),
        web.get("/api/stream", dashboard.stream),
        web.get("/api/charts", dashboard.chart_data),
        web.get("/favicon.ico", dashboard.no_icon),
        web.get("/healthz", dashboard.healthz),
        web.get("/readyz", dashboard.readyz),
        web.get("/metrics", dashboard.metrics),
    ])
    app.on_response_prepare.append(_secure)

    async def end_streams(app: web.Application) -> None:
        dashboard.sections.close()
    app.on_shutdown.append(end_streams)
    return app
