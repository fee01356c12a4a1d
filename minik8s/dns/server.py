"""The DNS wire protocol over UDP and TCP, with dnslib for the packets.

Every query is answered from the in-memory Zone, so an answer costs one
dictionary lookup. A packet that cannot be parsed gets FORMERR (when it
carries at least an id) and the server keeps serving. Names outside the
cluster domain are REFUSED, or forwarded to ``upstream`` when one is given.
"""
from __future__ import annotations

import asyncio
import logging
import struct
import time

from dnslib import QTYPE, RCODE, RR, DNSHeader, DNSRecord
from dnslib.dns import PTR, SRV, A, DNSError
from prometheus_client import Counter, Histogram

from minik8s.dns.zone import Record, Zone

log = logging.getLogger("minik8s.dns")

REQUESTS = Counter("dns_requests_total", "DNS queries answered.", ["type", "rcode"])
DURATION = Histogram("dns_request_duration_seconds", "Seconds to answer one query.",
                     buckets=(1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.1, 1))


def _rdata(record: Record) -> A | PTR | SRV:
    if record.rtype == "A":
        return A(record.value)
    if record.rtype == "PTR":
        return PTR(record.value + ".")
    priority, weight, port, target = record.value.split()
    return SRV(int(priority), int(weight), int(port), target + ".")


def _formerr(data: bytes) -> bytes:
    (ident,) = struct.unpack("!H", data[:2])
    return DNSRecord(DNSHeader(id=ident, qr=1, rcode=RCODE.FORMERR)).pack()


class Resolver:
    """Query bytes in, answer bytes out."""

    def __init__(self, zone: Zone, upstream: tuple[str, int] | None = None) -> None:
        self.zone, self.upstream = zone, upstream

    async def handle(self, data: bytes) -> bytes | None:
        started = time.perf_counter()
        try:
            request = DNSRecord.parse(data)
            question = request.q
        except (DNSError, IndexError, struct.error, ValueError, TypeError):
            REQUESTS.labels("invalid", "FORMERR").inc()
            return _formerr(data) if len(data) >= 2 else None
        qtype = QTYPE.get(question.qtype, str(question.qtype))
        name = str(question.qname)
        if self.upstream is not None and not self.zone.ours(name):
            return await exchange(data, self.upstream)
        answer = self.zone.answer(name, qtype)
        reply = request.reply()
        reply.header.rcode = getattr(RCODE, answer.rcode)
        reply.header.aa = int(answer.rcode != "REFUSED")
        for record in answer.records:
            reply.add_answer(RR(record.name + ".", getattr(QTYPE, record.rtype),
                                rdata=_rdata(record), ttl=record.ttl))
        REQUESTS.labels(qtype, answer.rcode).inc()
        DURATION.observe(time.perf_counter() - started)
        return reply.pack()


async def exchange(data: bytes, server: tuple[str, int], timeout: float = 2.0) -> bytes | None:
    """One query sent to a DNS server over UDP: its answer, or None (refused, or no answer)."""
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[bytes | None] = loop.create_future()

    class Relay(asyncio.DatagramProtocol):
        def datagram_received(self, reply: bytes, _addr: tuple[str, int]) -> None:
            if not answered.done():
                answered.set_result(reply)

        def error_received(self, _exc: Exception) -> None:  # ICMP: nobody listens there
            if not answered.done():
                answered.set_result(None)

    transport, _ = await loop.create_datagram_endpoint(Relay, remote_addr=server)
    try:
        transport.sendto(data)
        return await asyncio.wait_for(answered, timeout)
    except TimeoutError:
        return None
    finally:
        transport.close()


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        asyncio.get_running_loop().create_task(self._reply(data, addr))

    async def _reply(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = await self.resolver.handle(data)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


async def _tcp(resolver: Resolver, reader: asyncio.StreamReader,
               writer: asyncio.StreamWriter) -> None:
    """Length-prefixed messages, as many as the client sends on the connection."""
    try:
        while True:
            (size,) = struct.unpack("!H", await reader.readexactly(2))
            reply = await resolver.handle(await reader.readexactly(size))
            if reply is None:
                break
            writer.write(struct.pack("!H", len(reply)) + reply)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve(resolver: Resolver, host: str, port: int) -> list[asyncio.BaseTransport |
                                                                   asyncio.AbstractServer]:
    """Listen on host:port over UDP and TCP; returns what to close on shutdown."""
    loop = asyncio.get_running_loop()
    udp, _ = await loop.create_datagram_endpoint(lambda: _Udp(resolver), local_addr=(host, port))
    tcp = await asyncio.start_server(lambda r, w: _tcp(resolver, r, w), host, port)
    return [udp, tcp]
