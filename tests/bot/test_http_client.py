"""The bot's keep-alive HTTP/1.1 client against a real loopback server speaking raw HTTP.

Reuse of connections, the bounded pool, chunked and sized bodies, the caps, redirects not followed,
timeouts, one origin only, and the retry of a reused connection that the server closed (only for
requests that are safe to repeat). TLS with the private CA is covered in test_tls.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest

from bot.http_client import KeepAliveClient

pytestmark = pytest.mark.integration

Handler = Callable[[bytes, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]


class RawServer:
    """Reads request heads (and Content-Length bodies); the handler writes the answer and says whether
    to keep the connection."""

    def __init__(self, handler: Handler) -> None:
        self.handler, self.connections, self.requests = handler, 0, []
        self.tasks: set = set()
        self.open_now = 0
        self.most_open = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.tasks.add(asyncio.current_task())
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                for line in head.decode().split("\r\n"):
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                body = await reader.readexactly(length) if length else b""
                self.requests.append(head + body)
                if not await self.handler(head, reader, writer):
                    return
        except asyncio.CancelledError:
            return
        finally:
            self.open_now -= 1
            writer.close()

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def answer(status: str, body: bytes, *extra: str) -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def ok_json(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    await asyncio.sleep(0.01)
    writer.write(answer("200 OK", b'{"ok": true}', "Content-Type: application/json"))
    await writer.drain()
    return True


async def test_connections_are_reused_and_the_pool_is_bounded():
    server = RawServer(ok_json)
    async with server as url:
        client = KeepAliveClient(url + "/api", timeout=5, max_connections=3, headers={"X-API-Key": "k1"})
        for _ in range(5):
            assert (await client.get("/me")).json() == {"ok": True}
        assert server.connections == 1  # one keep-alive connection for sequential calls
        results = await asyncio.gather(*(client.post("/x", json={"n": i}) for i in range(12)))
        assert all(r.status_code == 200 for r in results)
        assert server.most_open <= 3  # never more than max_connections at once
        await client.aclose()
    first = server.requests[0].decode()
    assert first.startswith("GET /api/me HTTP/1.1\r\n")
    assert "X-API-Key: k1\r\n" in first
    assert "Host: 127.0.0.1:" in first
    posted = server.requests[5].decode()
    assert "Content-Type: application/json" in posted
    assert posted.endswith('{"n":0}')


async def test_query_parameters_chunked_bodies_and_headers_in_any_case():
    async def chunked(head, reader, writer):
        writer.write(
            b"HTTP/1.1 429 Too Many Requests\r\nTransfer-Encoding: chunked\r\nretry-after: 3\r\n\r\n"
            b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"
        )
        await writer.drain()
        return True

    server = RawServer(chunked)
    async with server as url:
        client = KeepAliveClient(url, timeout=5)
        response = await client.get(url + "/staff", params={"rocketchat_username": "a b&c", "skip": None})
        assert (response.status_code, response.content, response.text) == (429, b"hello world", "hello world")
        assert response.headers.get("Retry-After") == "3"
        assert response.headers["RETRY-AFTER"] == "3"
        await client.get("/again")  # the same connection, after the chunked body was read to its end
        assert server.connections == 1
        await client.aclose()
    assert server.requests[0].startswith(b"GET /staff?rocketchat_username=a+b%26c HTTP/1.1\r\n")


async def test_redirects_are_returned_not_followed_and_other_origins_refused():
    async def redirect(head, reader, writer):
        writer.write(answer("302 Found", b"", "Location: http://127.0.0.2:9/elsewhere"))
        await writer.drain()
        return True

    server = RawServer(redirect)
    async with server as url:
        client = KeepAliveClient(url, timeout=5)
        response = await client.get("/x")
        assert response.status_code == 302
        assert len(server.requests) == 1
        with pytest.raises(ValueError, match="one origin"):
            await client.get("http://127.0.0.2:9/elsewhere")
        with pytest.raises(ValueError, match="line breaks"):
            await client.get("/x", headers={"X-Evil": "a\r\nInjected: 1"})
        await client.aclose()


async def test_oversized_answers_are_refused():
    async def big(head, reader, writer):
        if b"/chunked" in head:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"400\r\n" + b"x" * 1024)
            writer.write(b"\r\n" * 1 + b"400\r\n" + b"x" * 1024 + b"\r\n0\r\n\r\n")
        elif b"/close" in head:
            writer.write(b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 4096)
            await writer.drain()
            return False
        else:
            writer.write(answer("200 OK", b"x" * 4096))
        await writer.drain()
        return True

    server = RawServer(big)
    async with server as url:
        client = KeepAliveClient(url, timeout=5, max_response_bytes=1500)
        for path in ("/sized", "/chunked", "/close"):
            with pytest.raises(httpx.RemoteProtocolError, match="larger"):
                await client.get(path)
        small = KeepAliveClient(url, timeout=5, max_response_bytes=8192)
        assert len((await small.get("/close")).content) == 4096  # a body ended by closing is read whole
        await client.aclose()
        await small.aclose()


async def test_timeouts_and_connection_errors_are_httpx_transport_errors():
    async def silent(head, reader, writer):
        await asyncio.sleep(5)
        return False

    server = RawServer(silent)
    async with server as url:
        client = KeepAliveClient(url, timeout=0.3)
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/slow")
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/slow", timeout=0.1)
        await client.aclose()
    closed = KeepAliveClient(url, timeout=2)  # the server is gone: nothing listens on that port
    with pytest.raises(httpx.ConnectError):
        await closed.get("/x")
    await closed.aclose()


async def test_a_reused_connection_closed_by_the_server_is_retried_only_when_safe():
    served: dict[object, int] = {}

    async def one_per_connection(head, reader, writer):
        # The first request on a connection is answered and the connection kept; the second gets no
        # answer, the connection just closes (a server whose keep-alive timed out as the request came).
        # Keyed by the writer itself, which the dict keeps alive: an id() of a closed connection's writer
        # could be a later connection's (one CI run failed so, a new connection taken for a kept one).
        count = served[writer] = served.get(writer, 0) + 1
        if count > 1:
            return False
        writer.write(answer("200 OK", b"{}"))
        await writer.drain()
        return True

    server = RawServer(one_per_connection)
    async with server as url:
        client = KeepAliveClient(url, timeout=5)
        await client.get("/a")
        assert (await client.get("/b")).status_code == 200  # a GET is repeated on a new connection
        assert server.connections == 2
        with pytest.raises(httpx.ReadError):  # a POST without an Idempotency-Key may have been acted on
            await client.post("/c", json={})
        await client.get("/e")
        assert (await client.post("/d", json={}, headers={"Idempotency-Key": "k"})).status_code == 200
        await client.aclose()
