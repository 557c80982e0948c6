"""A TCP proxy on 127.0.0.1 that makes every database handshake slow.

Failed logins under rotation showed up only when connects took hundreds of
milliseconds (a loaded host, a distant server): an attempt could then begin
before setSecret and be judged by the server after it. Putting this proxy
between the workers and the server reproduces that on a quiet machine. Each
new connection is held twice before the server sees the login: once before the
proxy connects upstream (the server's greeting comes late) and once before the
client's first packet is forwarded (the password is checked late). Both delays
are drawn from a seeded generator; after the first packet, bytes flow freely.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

__all__ = ["SlowProxy", "slow_proxy"]


class SlowProxy:
    """Forwards ``127.0.0.1:<port>`` to ``upstream``, delaying each handshake."""

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        delay: tuple[float, float] = (0.05, 0.25),
        seed: int = 9,
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.delay = delay
        self.host = "127.0.0.1"
        self.port = 0
        self.connections = 0
        self._random = random.Random(seed)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._run, name="slow-proxy", daemon=True)

    def start(self) -> SlowProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the slow proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _pause(self) -> float:
        low, high = self.delay
        return self._random.uniform(low, high)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, self.host, 0, backlog=256)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._server.close()
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            with suppress(Exception):
                self._loop.run_until_complete(asyncio.sleep(0))
            self._loop.close()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await asyncio.sleep(self._pause())
            server_r, server_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            return
        first_delay = self._pause()
        await asyncio.gather(
            self._pipe(client_r, server_w, first_delay),
            self._pipe(server_r, client_w, 0.0),
            return_exceptions=True,
        )

    @staticmethod
    async def _pipe(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, first_delay: float
    ) -> None:
        try:
            delayed = first_delay > 0
            while data := await reader.read(65536):
                if delayed:
                    await asyncio.sleep(first_delay)
                    delayed = False
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            with suppress(Exception):
                writer.close()


@contextmanager
def slow_proxy(
    upstream_host: str, upstream_port: int, **kwargs: float | tuple[float, float] | int
) -> Iterator[SlowProxy]:
    proxy = SlowProxy(upstream_host, upstream_port, **kwargs).start()  # type: ignore[arg-type]
    try:
        yield proxy
    finally:
        proxy.stop()
