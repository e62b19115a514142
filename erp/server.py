"""The HTTP server protocol of the ERP: uvicorn's httptools protocol with the limits it lacks.

Reached directly (not through nginx) uvicorn kept sockets with unfinished headers forever and read
headers of any size (security finding 5). This protocol adds, per connection:

- a deadline for the request head (`ERP_SERVER_HEADER_TIMEOUT_SECONDS`): the head of each request
  must arrive complete within it, measured from the connection (or the previous response), else 408;
- a size limit on the request line plus headers (`ERP_SERVER_MAX_HEADER_BYTES`), else 431;
- a limit on open connections in all (`ERP_SERVER_MAX_CONNECTIONS`) and per source address
  (`ERP_SERVER_MAX_CONNECTIONS_PER_SOURCE`; an IPv6 address counts as its /64; trusted proxies are
  exempt, they multiplex many clients and protect themselves): a connection over either is closed at
  once, before it costs a buffer;
- every HTTP-layer refusal as RFC 9457 problem JSON.

Module-level and configured from the settings at first use, so uvicorn can import it in workers.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from erp.errors import PROBLEM_MEDIA_TYPE, problem_body
from erp.security.network import in_networks, parse_ip, parse_networks, source_key
from erp.settings import Settings, get_settings

log = logging.getLogger("erp.server")

REASONS = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large"}
CODES = {400: "validation_error", 408: "request_timeout", 431: "headers_too_large"}
DRAIN_SECONDS = 1.0


def problem_response(status: int, detail: str) -> bytes:
    """A complete HTTP/1.1 response carrying a problem document; the connection closes after it."""
    body = json.dumps(problem_body(status, CODES[status], detail, None)).encode()
    head = (
        f"HTTP/1.1 {status} ".encode()
        + REASONS[status]
        + b"\r\ncontent-type: "
        + PROBLEM_MEDIA_TYPE.encode()
        + b"\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\nconnection: close\r\n\r\n"
    )
    return head + body


class ServerLimits:
    """The limits, read once from the settings (tests may install others with `configure`)."""

    settings: ClassVar[Settings | None] = None

    @classmethod
    def configure(cls, settings: Settings) -> None:
        cls.settings = settings
        GuardedHttpToolsProtocol.trusted = parse_networks(settings.trusted_proxies)

    @classmethod
    def get(cls) -> Settings:
        if cls.settings is None:
            cls.configure(get_settings())
        return cls.settings  # type: ignore[return-value]


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    per_source: ClassVar[Counter[str]] = Counter()
    trusted: ClassVar[tuple[Any, ...]] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limits = ServerLimits.get()
        self.header_timeout = limits.server_header_timeout_seconds
        self.max_header_bytes = limits.server_max_header_bytes
        self.max_connections = limits.server_max_connections
        self.max_per_source = limits.server_max_connections_per_source
        self.source: str | None = None
        self.header_bytes = 0
        self.in_head = True
        self.head_deadline: asyncio.TimerHandle | None = None
        self.discarding = False
        self.message_done = True
        self.awaiting_body_end = False

    # -- connections --------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        peer = self.client[0] if self.client else None
        key = None if in_networks(parse_ip(peer), self.trusted) else source_key(peer)
        if len(self.connections) > self.max_connections or (
            key is not None and self.per_source[key] >= self.max_per_source
        ):
            log.warning("connection refused: limit reached (source %s)", key or "trusted proxy")
            transport.abort()  # no response: answering costs what the limit is there to save
            return
        if key is not None:
            self.source = key
            self.per_source[key] += 1
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.source is not None:
            self.per_source[self.source] -= 1
            if self.per_source[self.source] <= 0:
                del self.per_source[self.source]
            self.source = None
        self._disarm_head_deadline()
        super().connection_lost(exc)

    # -- the request head ---------------------------------------------------------------------
    def _arm_head_deadline(self) -> None:
        self._disarm_head_deadline()
        self.in_head = True
        self.header_bytes = 0
        self.head_deadline = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _disarm_head_deadline(self) -> None:
        if self.head_deadline is not None:
            self.head_deadline.cancel()
            self.head_deadline = None

    def _head_timed_out(self) -> None:
        self.head_deadline = None
        if self.transport.is_closing():
            return
        if self.header_bytes:  # a started head that never ended: say so; an idle socket just closes
            self.transport.write(problem_response(408, "the request head did not arrive in time"))
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.discarding:
            return
        started_in_head = self.in_head
        super().data_received(data)  # may end the head (a body can share the chunk)
        if not (started_in_head and self.in_head):
            return  # only chunks wholly inside a head count (never the previous request's body)
        self.header_bytes += len(data)
        if self.header_bytes > self.max_header_bytes and not self.transport.is_closing():
            self._disarm_head_deadline()
            self.in_head = False
            self._refuse(problem_response(431, "the request line and headers are too large"))

    def _refuse(self, response: bytes) -> None:
        """Answer, then read and drop what is still coming for a moment before closing: closing with
        unread data makes the kernel reset the connection, and the client could lose the answer."""
        self.discarding = True
        self.transport.write(response)
        self.loop.call_later(DRAIN_SECONDS, self.transport.close)

    def on_headers_complete(self) -> None:
        self.in_head = False
        self._disarm_head_deadline()
        super().on_headers_complete()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.message_done = False

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.message_done = True
        if self.awaiting_body_end:  # answered early (e.g. 413); the rest of its body is now read
            self.awaiting_body_end = False
            self.in_head = True
            self.header_bytes = 0

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self._arm_head_deadline()  # the next request's head has the same deadline
            if not self.message_done:  # bytes still coming belong to this request's body, not a head
                self.in_head = False
                self.awaiting_body_end = True

    def send_400_response(self, msg: str) -> None:
        self._disarm_head_deadline()
        self.transport.write(problem_response(400, "the request is not valid HTTP"))
        self.transport.close()
