"""One pure-ASGI middleware: request id, client address, global allowlist, body size limit, metrics."""

from __future__ import annotations

import codecs
import json
import re
import time
import uuid
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from erp.errors import PROBLEM_MEDIA_TYPE, problem_body
from erp.metrics import AUTH_FAILURES, LATENCY, REQUESTS
from erp.runtime import Runtime
from erp.security.network import client_ip, in_networks, source_key
from erp.services import audit

REQUEST_ID_RE = re.compile(r"^[\x20-\x7e]{1,128}$")
PROTECTED_PREFIX = "/api/bot/"
API_PREFIX = "/api/"
METRICS_PATH = "/metrics"
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


class BodyTooLarge(HTTPException):
    def __init__(self) -> None:
        super().__init__(413, "body over the size limit")


class NotUtf8(HTTPException):
    def __init__(self) -> None:
        super().__init__(400, "the body is not UTF-8 JSON")


def _is_json(content_type: bytes | None) -> bool:
    """application/json or application/<x>+json, with no charset or charset=utf-8."""
    if content_type is None:
        return False
    media, _, params = content_type.decode("latin-1").lower().partition(";")
    media = media.strip()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        return False
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name == "charset" and value.strip('"') not in ("utf-8", "utf8"):
            return False
    return True


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
        request_id = forwarded = length = content_type = chunked = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value.decode("latin-1").strip()
            elif name == b"x-forwarded-for":
                forwarded = value.decode("latin-1")
            elif name == b"content-length":
                length = value
            elif name == b"content-type":
                content_type = value
            elif name == b"transfer-encoding":
                chunked = value
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
        utf8 = codecs.getincrementaldecoder("utf-8")()

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                received += len(chunk)
                if received > limit:
                    raise BodyTooLarge()
                try:  # JSON is UTF-8 (RFC 8259); a NUL is never in JSON text, always in UTF-16
                    utf8.decode(chunk, final=not message.get("more_body", False))
                except UnicodeDecodeError:
                    raise NotUtf8() from None
                if b"\x00" in chunk:
                    raise NotUtf8()
            return message

        try:
            path = scope["path"]
            if (
                rt.allowed_networks
                and path.startswith(PROTECTED_PREFIX)
                and not in_networks(ip, rt.allowed_networks)
            ):
                # Counted toward the source's failed authentications (and alerts); audited as a tally.
                actor = audit.Actor(None, state["client_ip_str"], request_id)
                AUTH_FAILURES.labels("network_denied").inc()
                rt.auth_failures.add(source_key(ip))
                rt.alerts.note("auth_failures", actor.source_ip)
                await run_in_threadpool(rt.refusals.refused, actor, "auth", "network_denied", path)
                await _problem(send_with_id, 403, "forbidden", None, request_id)
                return
            if path == METRICS_PATH and not in_networks(ip, rt.metrics_networks):
                await _problem(send_with_id, 404, "not_found", None, request_id)  # not there for strangers
                return
            if length is not None and (not length.isdigit() or int(length) > limit):
                if scope["method"] in MUTATING:
                    actor = audit.Actor(None, state["client_ip_str"], request_id)
                    await run_in_threadpool(rt.refusals.refused, actor, "request", "payload_too_large", path)
                await _problem(send_with_id, 413, "payload_too_large", "body over the size limit", request_id)
                return
            has_body = chunked is not None or (length is not None and length != b"0")
            mutation = path.startswith(API_PREFIX) and scope["method"] in MUTATING
            if mutation and has_body and not _is_json(content_type):
                detail = "the body must be application/json (UTF-8)"
                await _problem(send_with_id, 415, "unsupported_media_type", detail, request_id)
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
