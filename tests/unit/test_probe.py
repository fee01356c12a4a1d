"""Running one probe once (kubelet/probe.py) against real sockets on 127.0.0.1."""
from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from kubelet.probe import ExecFn, run_probe
from minik8s.api.v1 import types_pb2 as t


class HttpServer:
    """Answers every request with one status code (None: accepts and never answers)."""

    def __init__(self, code: int | None) -> None:
        self.code = code
        self.requests: list[bytes] = []
        self.handlers: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self.server.close()
        for task in self.handlers:
            task.cancel()
        await asyncio.gather(*self.handlers, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            self.requests.append(await reader.readuntil(b"\r\n\r\n"))
            if self.code is None:
                await asyncio.Event().wait()
            writer.write(f"HTTP/1.0 {self.code} Whatever\r\n\r\nbody".encode())
            await writer.drain()
        finally:
            writer.close()


@pytest.fixture
async def http_server(request: pytest.FixtureRequest) -> AsyncIterator[HttpServer]:
    """An HttpServer answering with the status code given as the fixture parameter."""
    server = HttpServer(request.param)
    await server.start()
    yield server
    await server.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _http(port: int | str, **kwargs: object) -> t.Probe:
    target = t.IntOrString(str_val=port) if isinstance(port, str) else t.IntOrString(int_val=port)
    return t.Probe(http_get=t.HTTPGetAction(port=target, **kwargs))


async def _no_exec(container_id: str, command: list[str], timeout: float) -> tuple[int, bytes]:
    raise AssertionError("exec_fn must not be called")


async def _run(probe: t.Probe, container: t.Container | None = None,
               pod_ip: str = "127.0.0.1", exec_fn: ExecFn = _no_exec) -> tuple[bool, str]:
    return await run_probe(probe, container or t.Container(name="app"), pod_ip, "cid", exec_fn,
                           time_scale=0.05)


@pytest.mark.parametrize("http_server", [200, 302, 399], indirect=True)
async def test_http_success_codes(http_server: HttpServer) -> None:
    port, requests = http_server.port, http_server.requests
    ok, message = await _run(_http(port))
    assert ok, message
    assert requests[0].startswith(b"GET / HTTP/1.0\r\n")


@pytest.mark.parametrize("http_server", [500], indirect=True)
async def test_http_failure_code(http_server: HttpServer) -> None:
    assert await _run(_http(http_server.port)) == (False, "HTTP probe failed with statuscode: 500")


@pytest.mark.parametrize("http_server", [404], indirect=True)
async def test_http_400_fails(http_server: HttpServer) -> None:
    assert await _run(_http(http_server.port)) == (False, "HTTP probe failed with statuscode: 404")


@pytest.mark.parametrize("http_server", [200], indirect=True)
async def test_http_named_port_path_headers_and_host(http_server: HttpServer) -> None:
    port, requests = http_server.port, http_server.requests
    container = t.Container(name="app", ports=[
        t.ContainerPort(name="metrics", container_port=1), t.ContainerPort(name="web", container_port=port)])
    probe = _http("web", path="healthz", host="127.0.0.1",
                  http_headers=[t.HTTPHeader(name="X-Probe", value="yes"),
                                t.HTTPHeader(name="user-agent", value="custom")])
    ok, message = await _run(probe, container, pod_ip="")
    assert ok, message
    request = requests[0].decode()
    assert request.startswith("GET /healthz HTTP/1.0\r\n")
    assert f"Host: 127.0.0.1:{port}\r\n" in request
    assert "X-Probe: yes\r\n" in request
    assert "user-agent: custom\r\n" in request and "kube-probe" not in request


async def test_http_unknown_named_port() -> None:
    ok, message = await _run(_http("nope"))
    assert not ok
    assert message == "couldn't find port 'nope' in container 'app'"


async def test_http_connection_refused() -> None:
    port = _closed_port()
    assert await _run(_http(port)) == (False, f'Get "http://127.0.0.1:{port}/": connection refused')


async def test_https_not_supported() -> None:
    assert await _run(_http(80, scheme="HTTPS")) == (False, "HTTPS probes are not supported")


@pytest.mark.parametrize("http_server", [None], indirect=True)
async def test_http_timeout(http_server: HttpServer) -> None:
    assert await _run(_http(http_server.port)) == (False, "probe timed out after 1s")


async def test_http_without_pod_ip() -> None:
    assert await _run(_http(80), pod_ip="") == (False, "pod has no IP address yet")


async def test_invalid_port() -> None:
    assert await _run(_http(0)) == (False, "invalid port number: 0")


@pytest.mark.parametrize("http_server", [200], indirect=True)
async def test_tcp_success(http_server: HttpServer) -> None:
    probe = t.Probe(tcp_socket=t.TCPSocketAction(port=t.IntOrString(int_val=http_server.port)))
    ok, message = await _run(probe)
    assert ok, message


async def test_tcp_named_port_refused() -> None:
    port = _closed_port()
    container = t.Container(name="app", ports=[t.ContainerPort(name="db", container_port=port)])
    probe = t.Probe(tcp_socket=t.TCPSocketAction(port=t.IntOrString(str_val="db")))
    assert await _run(probe, container) == (False, f"dial tcp 127.0.0.1:{port}: connection refused")


async def test_exec_success_and_failure() -> None:
    seen: list[tuple[str, list[str], float]] = []

    async def exec_fn(container_id: str, command: list[str], timeout: float) -> tuple[int, bytes]:
        seen.append((container_id, command, timeout))
        return (0, b" ok\n") if command == ["true"] else (2, b"x" * 5000)

    assert await _run(t.Probe(exec=t.ExecAction(command=["true"])), exec_fn=exec_fn) == (True, "ok")
    ok, message = await _run(t.Probe(exec=t.ExecAction(command=["false"]), timeout_seconds=3),
                             exec_fn=exec_fn)
    assert not ok and message == "x" * 1024
    assert seen == [("cid", ["true"], pytest.approx(0.05)), ("cid", ["false"], pytest.approx(0.15))]


async def test_exec_failure_without_output() -> None:
    async def exec_fn(container_id: str, command: list[str], timeout: float) -> tuple[int, bytes]:
        return 1, b""

    ok, message = await _run(t.Probe(exec=t.ExecAction(command=["check"])), exec_fn=exec_fn)
    assert (ok, message) == (False, "command ['check'] exited with code 1")


async def test_exec_timeout() -> None:
    async def exec_fn(container_id: str, command: list[str], timeout: float) -> tuple[int, bytes]:
        await asyncio.sleep(3600)
        return 0, b""

    probe = t.Probe(exec=t.ExecAction(command=["sleep"]), timeout_seconds=2)
    assert await _run(probe, exec_fn=exec_fn) == (False, "probe timed out after 2s")


async def test_probe_without_handler() -> None:
    ok, message = await _run(t.Probe(period_seconds=1))
    assert not ok and "no handler" in message
