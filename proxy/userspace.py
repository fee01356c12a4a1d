"""The userspace mode, for nodes where iptables cannot be used.

Every ClusterIP becomes a local address of the sink bridge, and the proxy
listens on each TCP service port there (and on each NodePort of the node's
address), forwarding every connection to an endpoint, round-robin, or to
the same endpoint as before for a client with ClientIP affinity. A service
port without endpoints has no listener, so a connection to it is refused at
once. UDP is not proxied in this mode.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Sequence

from proxy.model import ServicePort
from proxy.sink import Sink

log = logging.getLogger("minik8s.proxy.userspace")

Address = tuple[str, int]


class _Listener:
    """One listening address of one service port."""

    def __init__(self, port: ServicePort) -> None:
        self.port = port
        self._turn = itertools.count()
        self._affinity: dict[str, tuple[str, float]] = {}
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[asyncio.Task] = set()

    async def start(self, address: Address) -> None:
        self._server = await asyncio.start_server(self._accept, *address, reuse_address=True)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._conns):
            task.cancel()

    def _order(self, client: str) -> list[str]:
        """The endpoints to try for a client, the chosen one first."""
        endpoints = list(self.port.endpoints)
        if not endpoints:
            return []
        sticky = self._affinity.get(client)
        if sticky and sticky[1] > time.monotonic() and sticky[0] in endpoints:
            first = endpoints.index(sticky[0])
        else:
            first = next(self._turn) % len(endpoints)
        return endpoints[first:] + endpoints[:first]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        client = writer.get_extra_info("peername")[0]
        try:
            for endpoint in self._order(client):
                host, port = endpoint.rsplit(":", 1)
                try:
                    up_reader, up_writer = await asyncio.wait_for(
                        asyncio.open_connection(host, int(port)), 3)
                except (OSError, TimeoutError):
                    continue
                if self.port.affinity_seconds:
                    self._affinity[client] = (endpoint,
                                              time.monotonic() + self.port.affinity_seconds)
                await _pipe(reader, writer, up_reader, up_writer)
                return
        finally:
            writer.close()
            self._conns.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                up_reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter) -> None:
    async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
            if dst.can_write_eof():
                dst.write_eof()
        except (ConnectionError, OSError):
            pass

    try:
        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))
    finally:
        up_writer.close()


class UserspaceProxier:
    def __init__(self, sink: Sink, node_ip: str) -> None:
        self.sink, self.node_ip = sink, node_ip
        self.rules = 0
        self._listeners: dict[Address, _Listener] = {}

    def setup(self) -> None:
        """Nothing beyond the sink, which the caller made."""

    async def sync(self, ports: Sequence[ServicePort]) -> None:
        await asyncio.to_thread(self.sink.set_addresses, {p.cluster_ip for p in ports})
        wanted: dict[Address, ServicePort] = {}
        for port in ports:
            if port.protocol != "TCP" or not port.endpoints:
                continue
            wanted[(port.cluster_ip, port.port)] = port
            if port.node_port:
                wanted[(self.node_ip, port.node_port)] = port
        for address in [a for a in self._listeners if a not in wanted]:
            await self._listeners.pop(address).close()
        for address, port in wanted.items():
            listener = self._listeners.get(address)
            if listener is not None:
                listener.port = port
                continue
            listener = _Listener(port)
            try:
                await listener.start(address)
            except OSError as exc:
                log.error("listening on %s:%d for %s: %s", *address, port.key, exc)
                continue
            self._listeners[address] = listener
        self.rules = len(self._listeners)

    async def close(self) -> None:
        for listener in self._listeners.values():
            with contextlib.suppress(Exception):
                await listener.close()
        self._listeners.clear()
        await asyncio.to_thread(self.sink.set_addresses, set())
