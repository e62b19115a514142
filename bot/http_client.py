"""A small keep-alive HTTP/1.1 client on asyncio streams, for the bot's hot calls (ERP, Rocket.Chat REST).

Why not httpx here: on a `status` command the bot makes two HTTP calls, and httpx + httpcore + anyio +
h11 spent about 60 % of the bot's CPU on them (request models, pool scans, socket wrappers; profile in
docs/bot-admin-guide.md). This client does only what those calls need, and keeps the safety rules:

- one origin per client (a URL to another host is refused, never followed); redirects are returned as
  they are, never followed;
- a timeout on every request (connect, write and read together) and on connecting;
- TLS verified against the system store or the configured CA bundle (`ssl_context`);
- connections reused (keep-alive), at most `max_connections` at once, idle ones closed after
  `keepalive_expiry` seconds (below uvicorn's and nginx's keep-alive timeouts, so a reused connection is
  rarely one the server is closing);
- response heads and bodies capped (`max_response_bytes`): a larger answer is an error, not a buffer;
- a reused connection found closed before any answer byte is retried once on a fresh one only for
  requests that are safe to repeat (GET/HEAD/PUT/DELETE/OPTIONS, or carrying an Idempotency-Key).

Errors are httpx's transport exceptions (ConnectError, ConnectTimeout, ReadTimeout, ReadError,
WriteError, RemoteProtocolError), so callers keep one set of `except` clauses for both clients.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import ssl
import time
from collections import deque
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

MAX_HEAD_BYTES = 64 * 1024
SAFE_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


class Headers(dict[str, str]):
    """Response headers by lower-case name (`get` accepts any case); a repeated header keeps the last."""

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key.lower() if isinstance(key, str) else key)


class Response:
    """The parts of httpx.Response the bot reads: status_code, headers, content, json(), text."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, headers: Headers, content: bytes) -> None:
        self.status_code, self.headers, self.content = status_code, headers, content

    def json(self) -> Any:
        return jsonlib.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


class _Connection:
    __slots__ = ("idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.idle_since = 0.0

    def usable(self, now: float, expiry: float) -> bool:
        return not self.reader.at_eof() and not self.writer.is_closing() and now - self.idle_since < expiry

    def close(self) -> None:
        self.writer.close()


class _StaleConnection(Exception):
    """A reused connection closed before the first byte of the answer."""


class KeepAliveClient:
    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        headers: dict[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 16,
        keepalive_expiry: float = 4.0,
        max_response_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._prefix = parts.path.rstrip("/")
        self._host, self._tls = parts.hostname, parts.scheme == "https"
        self._port = parts.port or (443 if self._tls else 80)
        self._ssl = (ssl_context or ssl.create_default_context()) if self._tls else None
        self.timeout, self.keepalive_expiry = timeout, keepalive_expiry
        self.max_response_bytes = max_response_bytes
        host_header = parts.netloc.rsplit("@", 1)[-1]
        fixed = {"Host": host_header, "Accept": "*/*", **(headers or {})}
        self._fixed = "".join(f"{k}: {v}\r\n" for k, v in fixed.items())
        if self._fixed.count("\n") != len(fixed) or self._fixed.count("\r") != len(fixed):
            raise ValueError("header names and values must not contain line breaks")
        self._idle: deque[_Connection] = deque()
        self._slots = asyncio.Semaphore(max_connections)
        self._closed = False

    # --- the httpx-like surface the bot uses ---
    async def get(self, url: str, **kwargs: Any) -> Response:
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> Response:
        return await self.request("POST", url, **kwargs)

    async def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - per call, as httpx's (the ERP health probe's 2 s)
    ) -> Response:
        if self._closed:
            raise RuntimeError("client is closed")
        target = self._target(url, params)
        body = b""
        head = f"{method} {target} HTTP/1.1\r\n{self._fixed}"
        if json is not None:
            body = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
            head += "Content-Type: application/json\r\n"
        if body or method in ("POST", "PUT", "PATCH"):
            head += f"Content-Length: {len(body)}\r\n"
        if headers:
            extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            if extra.count("\n") != len(headers) or extra.count("\r") != len(headers) or "\0" in extra:
                raise ValueError("header names and values must not contain line breaks")
            head += extra
        data = (head + "\r\n").encode() + body
        repeatable = method in SAFE_METHODS or any(k.lower() == "idempotency-key" for k in headers or {})
        phase = ["connect"]  # what a timeout interrupted: connecting is safe to repeat, the rest may not be
        async with self._slots:
            try:
                async with asyncio.timeout(timeout if timeout is not None else self.timeout):
                    return await self._send(method, data, repeatable, phase)
            except TimeoutError:
                if phase[0] == "connect":
                    raise httpx.ConnectTimeout(f"connect to {self._origin} timed out") from None
                raise httpx.ReadTimeout(f"no answer within the timeout: {method} {self._origin}") from None

    async def aclose(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().close()

    # --- internals ---
    def _target(self, url: str, params: dict[str, Any] | None) -> str:
        if url.startswith(("http://", "https://")):
            if not url.startswith(self._origin + "/") and url != self._origin:
                raise ValueError("this client talks to one origin only")
            path = url[len(self._origin) :] or "/"
        else:
            path = self._prefix + (url if url.startswith("/") else "/" + url)
        if any(c in path for c in " \r\n"):
            raise ValueError("invalid characters in the request path")
        if params:
            query = urlencode({k: v for k, v in params.items() if v is not None}, doseq=True)
            path += ("&" if "?" in path else "?") + query
        return path

    async def _connect(self) -> _Connection:
        try:
            reader, writer = await asyncio.open_connection(
                self._host,
                self._port,
                ssl=self._ssl,
                server_hostname=self._host if self._tls else None,
                limit=MAX_HEAD_BYTES,
            )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connect to {self._origin} timed out") from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(f"cannot connect to {self._origin}: {type(exc).__name__}") from None
        return _Connection(reader, writer)

    def _checkout(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()  # the most recently used: warmest, least likely to be closed
            if conn.usable(now, self.keepalive_expiry):
                return conn
            conn.close()
        return None

    async def _send(self, method: str, data: bytes, repeatable: bool, phase: list[str]) -> Response:
        conn = self._checkout()
        if conn is not None:
            phase[0] = "exchange"
            try:
                return await self._exchange(conn, method, data)
            except _StaleConnection:
                if not repeatable:
                    raise httpx.ReadError("connection closed by the server before answering") from None
            phase[0] = "connect"
        conn = await self._connect()
        phase[0] = "exchange"
        try:
            return await self._exchange(conn, method, data)
        except _StaleConnection:
            raise httpx.ReadError("connection closed by the server before answering") from None

    async def _exchange(self, conn: _Connection, method: str, data: bytes) -> Response:
        keep = False
        try:
            try:
                conn.writer.write(data)
                await conn.writer.drain()
            except (OSError, ssl.SSLError) as exc:
                raise _StaleConnection from exc
            response, keep = await self._read_response(conn.reader, method)
            return response
        finally:
            if keep and not self._closed:
                conn.idle_since = time.monotonic()
                self._idle.append(conn)
            else:
                conn.close()

    async def _read_response(self, reader: asyncio.StreamReader, method: str) -> tuple[Response, bool]:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                raise _StaleConnection from None
            raise httpx.RemoteProtocolError("incomplete response head") from None
        except asyncio.LimitOverrunError:
            raise httpx.RemoteProtocolError("response head too large") from None
        except (OSError, ssl.SSLError) as exc:
            raise _StaleConnection from exc
        lines = head[:-4].decode("latin-1").split("\r\n")
        status_line = lines[0].split(" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith("HTTP/1.") or not status_line[1].isdigit():
            raise httpx.RemoteProtocolError("malformed status line")
        status = int(status_line[1])
        headers = Headers()
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise httpx.RemoteProtocolError("malformed header line")
            headers[name.strip().lower()] = value.strip()
        keep = status_line[0] == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        try:
            if status < 200:
                raise httpx.RemoteProtocolError("interim responses are not supported")
            if method == "HEAD" or status in (204, 304):
                body = b""
            elif headers.get("transfer-encoding", "").lower() == "chunked":
                body = await self._read_chunked(reader)
            elif "content-length" in headers:
                length = headers["content-length"]
                if not length.isdigit():
                    raise httpx.RemoteProtocolError("invalid Content-Length")
                if int(length) > self.max_response_bytes:
                    raise httpx.RemoteProtocolError("response larger than the client accepts")
                body = await reader.readexactly(int(length))
            else:
                keep = False  # the body ends when the server closes the connection
                body = await reader.read(self.max_response_bytes + 1)
                while body and len(body) <= self.max_response_bytes:
                    more = await reader.read(self.max_response_bytes + 1 - len(body))
                    if not more:
                        break
                    body += more
                if len(body) > self.max_response_bytes:
                    raise httpx.RemoteProtocolError("response larger than the client accepts")
        except asyncio.IncompleteReadError:
            raise httpx.RemoteProtocolError("connection closed in the middle of the response") from None
        except asyncio.LimitOverrunError:
            raise httpx.RemoteProtocolError("chunk header too large") from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ReadError(f"reading the response failed: {type(exc).__name__}") from None
        return Response(status, headers, body), keep

    async def _read_chunked(self, reader: asyncio.StreamReader) -> bytes:
        body = bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size_text = size_line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise httpx.RemoteProtocolError("invalid chunk size") from None
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers, ignored
                    pass
                return bytes(body)
            if len(body) + size > self.max_response_bytes:
                raise httpx.RemoteProtocolError("response larger than the client accepts")
            body += await reader.readexactly(size)
            if await reader.readexactly(2) != b"\r\n":
                raise httpx.RemoteProtocolError("invalid chunk terminator")
