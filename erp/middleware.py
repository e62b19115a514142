"""One pure-ASGI middleware: request id, client address, global allowlist, body size limit, metrics."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from erp.errors import PROBLEM_MEDIA_TYPE, problem_body
from erp.metrics import LATENCY, REQUESTS
from erp.runtime import Runtime
from erp.security.network import client_ip, in_networks
from erp.services import audit

REQUEST_ID_RE = re.compile(r"^[\x20-\x7e]{1,128}$")
PROTECTED_PREFIX = "/api/bot/"


class BodyTooLarge(HTTPException):
    def __init__(self) -> None:
        super().__init__(413, "body over the size limit")


class RequestMiddleware:
    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rt = self.runtime
        request_id = forwarded = length = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value.decode("latin-1").strip()
            elif name == b"x-forwarded-for":
                forwarded = value.decode("latin-1")
            elif name == b"content-length":
                length = value
        if not request_id or not REQUEST_ID_RE.fullmatch(request_id):
            request_id = uuid.uuid4().hex
        peer = scope.get("client")
        ip = client_ip(peer[0] if peer else None, forwarded, rt.trusted_proxies)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["client_ip"] = ip
        state["client_ip_str"] = str(ip) if ip is not None else None
        rid_header = (b"x-request-id", request_id.encode())
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), rid_header]
            await send(message)

        received = 0
        limit = rt.settings.max_body_bytes

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge()
            return message

        try:
            path = scope["path"]
            if (
                rt.allowed_networks
                and path.startswith(PROTECTED_PREFIX)
                and not in_networks(ip, rt.allowed_networks)
            ):
                actor = audit.Actor(None, state["client_ip_str"], request_id)
                await run_in_threadpool(audit.record, actor, "auth", "network_denied", path)
                await _problem(send_with_id, 403, "forbidden", None, request_id)
                return
            if length is not None and (not length.isdigit() or int(length) > limit):
                await _problem(send_with_id, 413, "payload_too_large", "body over the size limit", request_id)
                return
            await self.app(scope, receive_limited, send_with_id)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", "unmatched")
            REQUESTS.labels(scope["method"], label, str(status)).inc()
            LATENCY.labels(label).observe(time.perf_counter() - started)


async def _problem(send: Send, status: int, code: str, detail: str | None, request_id: str) -> None:
    body: Any = json.dumps(problem_body(status, code, detail, request_id)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
