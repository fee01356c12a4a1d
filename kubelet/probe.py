"""Running one container probe once, as Kubernetes' pkg/probe (exec, http, tcp).

The prober (kubelet/prober.py) decides when to probe and what the results
mean; this module only answers "did this probe pass right now, and why not".
HTTP is spoken by hand over asyncio streams (HTTP/1.0, status line only) so
probing needs no HTTP client dependency and never blocks the event loop.
Every probe is bounded by its timeoutSeconds, and a timeout is a failure.
Errors of the exec function itself (Docker unreachable, container gone) are
not a probe result: they propagate, and the caller throws the attempt away
as Kubernetes does.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable

from minik8s.api.v1 import types_pb2 as t

# (container id, command, timeout seconds) -> (exit code, combined output)
ExecFn = Callable[[str, list[str], float], Awaitable[tuple[int, bytes]]]

DEFAULT_TIMEOUT_SECONDS = 1
MAX_MESSAGE_BYTES = 1024
MAX_STATUS_LINE = 8192
USER_AGENT = "kube-probe/minik8s"


class _Failed(Exception):
    """The probe failed before it could run (bad port, no address, ...)."""


async def run_probe(probe: t.Probe, container: t.Container, pod_ip: str, container_id: str,
                    exec_fn: ExecFn, *, time_scale: float = 1.0) -> tuple[bool, str]:
    """Run `probe` once against the container; return (success, message).

    time_scale multiplies the timeout (tests shrink it); messages keep the
    configured seconds.
    """
    seconds = probe.timeout_seconds or DEFAULT_TIMEOUT_SECONDS
    timeout = seconds * time_scale
    try:
        async with asyncio.timeout(timeout):
            return await _dispatch(probe, container, pod_ip, container_id, exec_fn, timeout)
    except TimeoutError:
        return False, f"probe timed out after {seconds}s"
    except _Failed as err:
        return False, str(err)


async def _dispatch(probe: t.Probe, container: t.Container, pod_ip: str, container_id: str,
                    exec_fn: ExecFn, timeout: float) -> tuple[bool, str]:
    if probe.HasField("exec"):
        return await _exec(probe.exec, container_id, exec_fn, timeout)
    if probe.HasField("http_get"):
        return await _http_get(probe.http_get, container, pod_ip)
    if probe.HasField("tcp_socket"):
        return await _tcp_socket(probe.tcp_socket, container, pod_ip)
    return False, "probe has no handler (exec, httpGet or tcpSocket)"


async def _exec(action: t.ExecAction, container_id: str, exec_fn: ExecFn,
                timeout: float) -> tuple[bool, str]:
    code, output = await exec_fn(container_id, list(action.command), timeout)
    message = output[:MAX_MESSAGE_BYTES].decode(errors="replace").strip()
    if code == 0:
        return True, message
    return False, message or f"command {list(action.command)} exited with code {code}"


async def _http_get(action: t.HTTPGetAction, container: t.Container,
                    pod_ip: str) -> tuple[bool, str]:
    if action.scheme and action.scheme.upper() != "HTTP":
        return False, "HTTPS probes are not supported"
    host = _host(action.host, pod_ip)
    port = resolve_port(action.port, container)
    path = action.path if action.path.startswith("/") else "/" + action.path
    url = f"http://{_hostport(host, port)}{path}"
    try:
        status = await _get_status(host, port, _request(action, host, port, path))
    except (OSError, ValueError) as err:
        return False, f'Get "{url}": {_describe(err)}'
    if 200 <= status < 400:
        return True, f"HTTP probe succeeded with statuscode: {status}"
    return False, f"HTTP probe failed with statuscode: {status}"


def _request(action: t.HTTPGetAction, host: str, port: int, path: str) -> bytes:
    headers = {"host": ("Host", _hostport(host, port)), "user-agent": ("User-Agent", USER_AGENT),
               "accept": ("Accept", "*/*")}
    for header in action.http_headers:
        if any(c in header.name + header.value for c in "\r\n") or ":" in header.name:
            raise _Failed(f"invalid HTTP header {header.name!r}")
        headers[header.name.lower()] = (header.name, header.value)
    lines = [f"GET {path} HTTP/1.0"] + [f"{name}: {value}" for name, value in headers.values()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="replace")


async def _get_status(host: str, port: int, request: bytes) -> int:
    """Send the request and return the status code of the response."""
    reader, writer = await asyncio.open_connection(host, port, limit=MAX_STATUS_LINE)
    try:
        writer.write(request)
        await writer.drain()
        line = await reader.readline()
    finally:
        await _close(writer)
    if not line:
        raise ValueError("EOF")
    version, _, rest = line.decode("latin-1").partition(" ")
    code = rest[:3]
    if not (version.startswith("HTTP/") and code.isdigit()):
        raise ValueError(f"malformed HTTP status line {line[:100]!r}")
    return int(code)


async def _tcp_socket(action: t.TCPSocketAction, container: t.Container,
                      pod_ip: str) -> tuple[bool, str]:
    host = _host(action.host, pod_ip)
    port = resolve_port(action.port, container)
    address = _hostport(host, port)
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError as err:
        return False, f"dial tcp {address}: {_describe(err)}"
    await _close(writer)
    return True, f"tcp connection to {address} succeeded"


def resolve_port(port: t.IntOrString, container: t.Container) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if port.WhichOneof("value") == "str_val":
        number = next((p.container_port for p in container.ports if p.name == port.str_val), None)
        if number is None:
            raise _Failed(f"couldn't find port {port.str_val!r} in container {container.name!r}")
    else:
        number = port.int_val
    if not 0 < number < 65536:
        raise _Failed(f"invalid port number: {number}")
    return number


def _host(host: str, pod_ip: str) -> str:
    if not (host or pod_ip):
        raise _Failed("pod has no IP address yet")
    return host or pod_ip


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _describe(err: Exception) -> str:
    """Go-style error text: 'connection refused' rather than '[Errno 111] ...'."""
    if isinstance(err, OSError) and err.errno and err.errno > 0:
        return os.strerror(err.errno).lower()
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err) or type(err).__name__


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
