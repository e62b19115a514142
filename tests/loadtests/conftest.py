"""Fixtures of the load-test suite: a deployed-like stack behind a TLS endpoint of its own.

`tls_target`: the simulator (REST limiter on, Rocket.Chat's defaults), the ERP and the bot as real
processes, and in front of the simulator a TLS terminator with a private CA. The terminator connects
upstream from the client's own address, as a proxy passing the client address on would, so the
simulator's per-address limiter sees each simulated person.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from plugins.pki import make_test_pki
from plugins.processes import free_port


class TlsTerminator:
    """https://localhost:<port> → http://127.0.0.1:<upstream>, byte for byte, in a thread of its own."""

    def __init__(self, upstream_port: int, cert: Path, key: Path) -> None:
        import ssl

        self.port = free_port()
        self.upstream_port = upstream_port
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.connections = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> TlsTerminator:
        self.thread.start()
        assert self.ready.wait(10), "the TLS terminator did not start"
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", self.port, ssl=self.context)
        )
        self.ready.set()
        self.loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        client_ip = writer.get_extra_info("peername")[0]
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.upstream_port, local_addr=(client_ip, 0)), 10
            )
        except OSError:
            writer.close()
            return

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            with contextlib.suppress(OSError, ConnectionError, RuntimeError):
                sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def stop(self) -> None:
        async def shutdown() -> None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@dataclass
class TlsTarget:
    url: str
    ca_file: Path
    rocketchat: object
    stack: object
    terminator: TlsTerminator


@pytest.fixture(scope="module")
def tls_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsTarget]:
    from loadtests.stack import start_local_stack

    directory = tmp_path_factory.mktemp("tls-target")
    stack = start_local_stack(state_dir=directory / "stack")
    try:
        pki = make_test_pki(directory, "load test CA")
        ca, cert, key = pki.ca, pki.cert, pki.key
        upstream = int(stack.rocketchat_url.rsplit(":", 1)[1])
        terminator = TlsTerminator(upstream, cert, key).start()
    except BaseException:
        stack.stop()
        raise
    try:
        yield TlsTarget(f"https://localhost:{terminator.port}", ca, None, stack, terminator)
    finally:
        terminator.stop()
        stack.stop()
