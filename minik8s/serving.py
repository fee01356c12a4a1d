"""What every long-running component shares: logging, HTTP health and
metrics endpoints, gRPC server construction, and clean SIGTERM handling."""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

Check = Callable[[], Awaitable[bool] | bool]


def setup_logging(component: str, level: str | None = None) -> None:
    """Log lines that name the component, at MINIK8S_LOG_LEVEL (default INFO)."""
    level = level or os.environ.get("MINIK8S_LOG_LEVEL", "INFO")
    logging.basicConfig(
        level=level.upper(), stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s {component}[%(process)d] %(name)s: %(message)s",
    )


def make_grpc_server(max_message_bytes: int = 8 * 1024 * 1024) -> grpc.aio.Server:
    """The one place gRPC servers are built (TLS and authentication go here)."""
    return grpc.aio.server(options=(
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", 64 * 1024 * 1024),
        # clients ping idle connections (to notice a dead peer); never punish them for it
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 5_000),
        ("grpc.http2.max_ping_strikes", 0),
        ("grpc.so_reuseport", 0),
    ))


@dataclass(frozen=True)
class TlsFiles:
    """A server's certificate and key, and the CA its clients' certificates must come from."""

    cert: Path
    key: Path
    client_ca: Path

    def credentials(self, require_client_cert: bool) -> grpc.ServerCredentials:
        """TLS credentials; ValueError naming the file that cannot be read."""
        def read(path: Path) -> bytes:
            try:
                return path.read_bytes()
            except OSError as exc:
                raise ValueError(f"{path}: {exc.strerror}") from None
        return grpc.ssl_server_credentials([(read(self.key), read(self.cert))],
                                           root_certificates=read(self.client_ca),
                                           require_client_auth=require_client_cert)


def add_port(server: grpc.aio.Server, address: str, tls: TlsFiles | None,
             require_client_cert: bool = True) -> int:
    """Listen on address: mutual TLS (or server TLS only), or plaintext without tls."""
    if tls is None:
        return server.add_insecure_port(address)
    return server.add_secure_port(address, tls.credentials(require_client_cert))


def add_grpc_health(server: grpc.aio.Server) -> health.aio.HealthServicer:
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    return servicer


async def set_serving(servicer: health.aio.HealthServicer, serving: bool) -> None:
    status = (health_pb2.HealthCheckResponse.SERVING if serving
              else health_pb2.HealthCheckResponse.NOT_SERVING)
    await servicer.set("", status)


async def _run_check(check: Check) -> bool:
    result = check()
    if asyncio.iscoroutine(result) or isinstance(result, Awaitable):
        result = await result
    return bool(result)


class HttpEndpoints:
    """/healthz (alive), /readyz (ready to serve) and /metrics on one port."""

    def __init__(self, healthz: Check, readyz: Check) -> None:
        self._checks = {"/healthz": healthz, "/readyz": readyz}
        self._server: asyncio.AbstractServer | None = None

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._handle, host, port)
        return self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = request.decode("latin-1").split()
            path = parts[1].split("?")[0] if len(parts) > 1 else ""
            status, ctype, body = await self._respond(path)
            head = (f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _respond(self, path: str) -> tuple[str, str, bytes]:
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, generate_latest()
        check = self._checks.get(path)
        if check is None:
            return "404 Not Found", "text/plain", b"not found\n"
        try:
            ok = await _run_check(check)
        except Exception as exc:  # a failing check is an answer, not a crash
            return "503 Service Unavailable", "text/plain", f"{exc}\n".encode()
        if ok:
            return "200 OK", "text/plain", b"ok\n"
        return "503 Service Unavailable", "text/plain", b"not ready\n"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def wait_for_termination() -> str:
    """Return the name of the first SIGTERM or SIGINT received."""
    loop = asyncio.get_running_loop()
    received: asyncio.Future[str] = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda s=sig: received.done() or received.set_result(s.name))
    try:
        return await received
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
