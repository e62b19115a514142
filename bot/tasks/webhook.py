"""A generic JSON webhook: the bot POSTs events, the receiver (any automation) manages the tasks.

Body: `{"event": "task.open" | "task.close", "event_id", "staff_id", "sent_at", ...}`; `task.open` adds
`title`, `description`; `task.close` adds `key`, `comment`, `outcome`. Headers:

- `X-Photomatrix-Event`: the event name; `X-Photomatrix-Delivery`: the event id (the same on every retry
  of one event, so the receiver can drop repeats);
- `X-Photomatrix-Timestamp`: Unix seconds; `X-Photomatrix-Signature: sha256=<hex>`: HMAC-SHA256 with the
  shared secret over `<timestamp>.<raw body>` (the receiver recomputes it, compares in constant time,
  and refuses old timestamps).

A 2xx answer is success. The answer to `task.open` may name the task: `{"key": "..."}`; otherwise the
task is known as `webhook-<staff id>` in the close event.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx

from bot.tasks.base import HttpTracker, TaskClosing, TaskSpec

SIGNATURE_HEADER = "X-Photomatrix-Signature"
TIMESTAMP_HEADER = "X-Photomatrix-Timestamp"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class WebhookTracker(HttpTracker):
    name = "webhook"

    def __init__(
        self,
        url: str,
        *,
        secret: str,
        timeout: float = 10.0,
        ca_file: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Any = time.time,
    ) -> None:
        super().__init__(url, headers={}, timeout=timeout, ca_file=ca_file, transport=transport)
        self._secret, self.clock = secret, clock

    async def _post(self, event: str, event_id: str, payload: dict[str, Any]) -> httpx.Response:
        now = self.clock()
        body = json.dumps(
            {"event": event, "event_id": event_id, "sent_at": round(now, 3), **payload},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        timestamp = str(int(now))
        headers = {
            "Content-Type": "application/json",
            "X-Photomatrix-Event": event,
            "X-Photomatrix-Delivery": event_id,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
        }
        return await self.call("POST", self.base_url, content=body, headers=headers)

    async def open(self, spec: TaskSpec, event_id: str) -> str:
        response = await self._post(
            "task.open",
            event_id,
            {"staff_id": spec.staff_id, "title": spec.title, "description": spec.description},
        )
        try:
            key = response.json().get("key") if response.content else None
        except (ValueError, AttributeError):
            key = None
        return str(key) if key else f"webhook-{spec.staff_id}"

    async def close(self, closing: TaskClosing, event_id: str, progress: dict[str, Any]) -> None:
        key = closing.key
        await self._post(
            "task.close",
            event_id,
            {
                "staff_id": closing.staff_id,
                "key": key,
                "comment": closing.comment,
                "outcome": closing.outcome,
            },
        )
        progress["commented"] = True
