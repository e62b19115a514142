"""Webhook adapter: Rocket.Chat outgoing-webhook POSTs in, replies out through REST. Keeps no state of
its own (dialogs and seen ids live in the shared store), so several replicas can run behind the proxy."""

from __future__ import annotations

import hmac
import json
import logging
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.core.ports import IncomingMessage
from bot.core.router import BUSY, Router
from bot.http_body import read_limited

log = logging.getLogger("bot.webhook")
MAX_BODY_BYTES = 64 * 1024


def payload_to_incoming(payload: dict[str, Any]) -> IncomingMessage | None:
    required = ("message_id", "channel_id", "user_id")
    if not all(isinstance(payload.get(key), str) and payload[key] for key in required):
        return None
    ts = 0.0
    if isinstance(payload.get("timestamp"), str):
        try:
            ts = datetime.fromisoformat(payload["timestamp"].replace("Z", "+00:00")).timestamp()
        except ValueError:
            ts = 0.0
    return IncomingMessage(
        message_id=payload["message_id"],
        room_id=payload["channel_id"],
        # Rocket.Chat leaves channel_name out for direct messages.
        room_type="c" if payload.get("channel_name") else "d",
        text=str(payload.get("text") or ""),
        user_id=payload["user_id"],
        username=str(payload.get("user_name") or ""),
        ts=ts,
        edited=bool(payload.get("isEdited")),
        from_bot=bool(payload.get("bot")),
        room_name=str(payload.get("channel_name") or ""),
    )


def webhook_routes(path: str, token: str, router: Router) -> list[Route]:
    expected = token.encode()

    async def receive(request: Request) -> JSONResponse:
        body = await read_limited(request, MAX_BODY_BYTES)
        if body is None:
            return JSONResponse({"error": "payload too large"}, status_code=413)
        try:
            payload = json.loads(body)
        except ValueError:
            return JSONResponse({"error": "invalid JSON"}, status_code=400)
        if not isinstance(payload, dict):
            return JSONResponse({"error": "invalid payload"}, status_code=400)
        given = payload.get("token")
        if not isinstance(given, str) or not hmac.compare_digest(given.encode(), expected):
            log.warning(
                "webhook with a wrong token refused",
                extra={"client": request.client.host if request.client else "?"},
            )
            return JSONResponse({"error": "invalid token"}, status_code=403)
        incoming = payload_to_incoming(payload)
        if incoming is None:
            return JSONResponse({"error": "missing message fields"}, status_code=400)
        outcome = await router.handle(incoming)
        if outcome == BUSY:
            # Another replica has it in hand; if that one died, Rocket.Chat's retry finds it free.
            return JSONResponse({"error": "message being handled, retry"}, status_code=503)
        # No `text` in the answer: Rocket.Chat posts nothing itself; the bot replied through REST.
        return JSONResponse({"outcome": outcome})

    return [Route(path, receive, methods=["POST"])]
