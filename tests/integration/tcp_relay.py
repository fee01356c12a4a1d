"""A TCP relay on 127.0.0.1 that can hold one direction, as a partition holds
packets in flight: bytes sent while held are delivered, in order, on release."""
from __future__ import annotations

import asyncio
import contextlib


class HeldRelay:
    """Relays every connection to upstream; hold() stops client→server bytes
    (they queue, as TCP retransmits them), release() lets them through."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.rsplit(":", 1)
        self._upstream = (host, int(port))
        self._open = asyncio.Event()
        self._open.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.held_bytes = 0
        self.address = ""

    async def __aenter__(self) -> HeldRelay:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.address = f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        for task in (self._pipe(reader, up_writer, held=True),
                     self._pipe(up_reader, writer, held=False)):
            t = asyncio.create_task(task)
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    held: bool) -> None:
        try:
            while data := await reader.read(65536):
                if held and not self._open.is_set():
                    self.held_bytes += len(data)
                    await self._open.wait()
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
