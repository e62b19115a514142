"""Helpers for the rcchat tests: run the CLI as a process, a TLS front with a private CA, a pty session."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import select
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from plugins.pki import make_test_pki
from plugins.processes import ROOT, free_port


def rcchat(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m rcchat ARGS` with a clean rcchat environment; output captured as text."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("RCCHAT_")}
    return subprocess.run(
        [sys.executable, "-m", "rcchat", *args],
        cwd=ROOT,
        env={**base, **(env or {})},
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def write_secret(path: Path, value: str) -> Path:
    path.write_text(value + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


@dataclass
class TlsFront:
    url: str
    ca_file: Path


@contextlib.contextmanager
def tls_front(backend_port: int, directory: Path) -> Iterator[TlsFront]:
    """A TLS-terminating TCP forwarder on loopback (as the nginx proxy does) to a plain HTTP backend."""
    pki = make_test_pki(directory, "rcchat test CA")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.cert, pki.key)
    port = free_port()
    loop = asyncio.new_event_loop()
    started = threading.Event()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(Exception):
            writer.close()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            backend_r, backend_w = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", backend_port), 5
            )
        except (OSError, TimeoutError):
            client_w.close()
            return
        await asyncio.gather(pipe(client_r, backend_w), pipe(backend_r, client_w))

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, ssl=context)
        started.set()
        async with server:
            await server.serve_forever()

    def run() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(serve())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield TlsFront(f"https://127.0.0.1:{port}", pki.ca)
    finally:
        for task in asyncio.all_tasks(loop):
            loop.call_soon_threadsafe(task.cancel)
        thread.join(10)


class PtySession:
    """A command on a pseudo-terminal: what a person at the terminal types and sees."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        master, slave = pty.openpty()
        base = {k: v for k, v in os.environ.items() if not k.startswith("RCCHAT_")}
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env={**base, **(env or {})}, stdin=slave, stdout=slave, stderr=slave
        )
        os.close(slave)
        self.master = master
        self.screen = ""

    def expect(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.screen:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (self.proc.poll() is not None and not self._readable(0)):
                raise AssertionError(f"{text!r} not seen on the terminal; it shows:\n{self.screen}")
            if self._readable(min(remaining, 0.5)):
                try:
                    self.screen += os.read(self.master, 65536).decode("utf-8", errors="replace")
                except OSError:  # the process closed the terminal
                    if text not in self.screen:
                        raise AssertionError(
                            f"{text!r} not seen; the terminal shows:\n{self.screen}"
                        ) from None
        return self.screen

    def _readable(self, timeout: float) -> bool:
        return bool(select.select([self.master], [], [], timeout)[0])

    def type(self, line: str) -> None:
        os.write(self.master, (line + "\r").encode())

    def wait(self, timeout: float = 20) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            if self._readable(0.2):
                with contextlib.suppress(OSError):
                    self.screen += os.read(self.master, 65536).decode("utf-8", errors="replace")
        return self.proc.wait(max(0.1, deadline - time.monotonic()))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        with contextlib.suppress(OSError):
            os.close(self.master)


@pytest.fixture
def pty_session() -> Iterator[type[PtySession]]:
    sessions: list[PtySession] = []

    def start(argv: list[str], env: dict[str, str] | None = None) -> PtySession:
        session = PtySession(argv, env)
        sessions.append(session)
        return session

    yield start  # type: ignore[misc]
    for session in sessions:
        session.close()


@pytest.fixture
def run_rcchat():
    """`run_rcchat(*args, env=..., stdin=...)` → the finished `python -m rcchat` process."""
    return rcchat


@pytest.fixture
def secret_file(tmp_path: Path):
    """`secret_file(name, value)` → a 0600 file holding value."""
    return lambda name, value: write_secret(tmp_path / name, value)


@pytest.fixture(scope="module")
def rocketchat_tls(rocketchat, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsFront]:
    """The shared Rocket.Chat behind TLS with a private CA (the deployment's proxy does the same)."""
    if not rocketchat.is_simulator:
        pytest.skip("the TLS front wraps the local simulator; a real server brings its own TLS")
    port = int(rocketchat.base_url.rsplit(":", 1)[1])
    with tls_front(port, tmp_path_factory.mktemp("tls")) as front:
        yield front


@pytest.fixture(scope="module")
def bot_stack_tls(bot_stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsFront]:
    """The bot stack's Rocket.Chat behind TLS with a private CA, as `make up` serves it."""
    if not bot_stack.rc.is_simulator:
        pytest.skip("the TLS front wraps the local simulator; a real server brings its own TLS")
    port = int(bot_stack.rc.base_url.rsplit(":", 1)[1])
    with tls_front(port, tmp_path_factory.mktemp("tls")) as front:
        yield front
