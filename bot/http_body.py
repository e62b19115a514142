"""Size-limited request bodies for the bot's inbound HTTP routes (Rocket.Chat webhook, Alertmanager)."""

from __future__ import annotations

from starlette.requests import Request


async def read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None when it is over `limit` bytes: refused by Content-Length before reading, and
    while streaming (a missing or false Content-Length cannot make the bot buffer more than `limit`)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)
