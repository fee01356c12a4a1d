"""Sending test traffic to cluster addresses, only where it stays on this machine."""
from __future__ import annotations

import asyncio
import subprocess
import urllib.error
import urllib.request

from docker.models.containers import Container

from tests.integration.helpers import eventually


def assert_stays_local(ip: str) -> None:
    """Refuse an address the machine would route off itself (via its gateway)."""
    route = subprocess.run(["ip", "route", "get", ip], capture_output=True, text=True,
                           check=True).stdout.split()
    dev = route[route.index("dev") + 1] if "dev" in route else ""
    if "via" in route or not dev.startswith(("br-", "mksink", "lo")):
        raise AssertionError(f"{ip} routes via {' '.join(route)}: refusing to send to it")


def _get(ip: str, port: int, timeout: float) -> str | None:
    try:
        with urllib.request.urlopen(f"http://{ip}:{port}/", timeout=timeout) as resp:
            return resp.read().decode().strip()
    except (OSError, urllib.error.URLError):
        return None


async def http_get(ip: str, port: int, timeout: float = 2.0) -> str | None:
    """The body of GET / (the echo pods answer with their name), or None if it failed."""
    if not ip.startswith("127."):
        assert_stays_local(ip)
    return await asyncio.to_thread(_get, ip, port, timeout)


async def names_seen(ip: str, port: int, requests: int) -> list[str | None]:
    """The answers to a number of requests, one after the other."""
    return [await http_get(ip, port) for _ in range(requests)]


async def answers_from_inside(container: Container, url: str, expected: set[str]) -> set[str]:
    """GET url from inside a container (busybox wget) until every expected pod answered."""
    seen: set[str] = set()

    def once() -> str:
        out = container.exec_run(["wget", "-qO-", url])
        return out.output.decode().strip() if out.exit_code == 0 else ""

    async def all_answered() -> bool:
        seen.add(await asyncio.to_thread(once))
        return expected <= seen
    await eventually(all_answered, timeout=30, interval=0)
    return seen - {""}


def lookup(container: Container, name: str) -> list[str]:
    """The addresses busybox nslookup finds for name from inside the container."""
    out = container.exec_run(["nslookup", name]).output.decode()
    answer = out.split("Name:\t", 1)[-1] if "Name:" in out else ""
    return sorted(line.split()[-1] for line in answer.splitlines()
                  if line.startswith("Address") and ":53" not in line)
