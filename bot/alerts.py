"""Alertmanager webhook receiver: `POST /alerts/alertmanager` turns one notification (webhook format v4)
into ONE message in the admins channel, whichever bot replica receives it and whichever one leads.

Auth is `Authorization: Bearer <token>` compared in constant time (Alertmanager's
`http_config.authorization.credentials_file`). Without a configured token the route is not mounted (404).
Bad input is a 400 with a reason; a Rocket.Chat failure is a 503, so Alertmanager retries the notification.

Replicas (docs/topology.md, "Alerts and bot replicas"): Alertmanager's one receiver names every replica
(one webhook_config each), so a notification reaches every live replica. Any replica may post it, the
leader or a standby, but only once, by the notification's key in the shared store (Redis; SQLite for one
replica):

1. The key is a digest of (receiver, group key, status, each alert's fingerprint, status, start and,
   once resolved, end time): every copy and every retry of one notification has it. The webhook body
   carries no notification time; a repeat of an unchanged group (repeat_interval) is posted again because
   the "posted" mark lasts `dedup_seconds` only, which must stay below repeat_interval (default 1 h < 4 h).
2. A replica looks for the "posted" mark (200 without posting), else takes the short "posting" claim
   and posts under a message id derived from the key and the dedup window the time falls in
   (`send_to_channel_once`: Rocket.Chat keeps one message per id, so a replica that died after posting
   but before setting the mark does not make the next one post again), then sets the mark. A failed
   post gives the claim back: 503.
3. A replica that finds the claim taken waits (polling) for the mark: it answers 200 once the other
   replica posted, takes over when the claim is given back or runs out (the other replica died
   mid-post), and answers 503 after `wait_seconds` (Alertmanager retries). With the store down a replica
   posts without it: the derived message id still makes the copies one message.

Why not "only the leader posts, a standby answers 200 at once": Alertmanager retries each webhook_config
on its own, so when the leader dies between the standby's 200 and its own post (or is dead already while
its lease has not run out, up to `ttl + ttl / 3` s), only the dead replica's URL is retried and the alert
is lost until repeat_interval. Here a notification is done only when it was posted by someone.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot import metrics
from bot.core.ports import ChatPort
from bot.core.router import reply_id
from bot.http_body import read_limited
from bot.i18n import translate
from bot.store import Store

log = logging.getLogger("bot.alerts")

ALERTS_PATH = "/alerts/alertmanager"
# Alertmanager sends every alert of a group; a few hundred alerts stay well below this.
MAX_BODY_BYTES = 256 * 1024
MAX_LINE_CHARS = 400
MAX_LABELS_SHOWN = 6
# Labels every line shows anyway (name, severity) or that only repeat the group.
HIDDEN_LABELS = {"alertname", "severity"}
# How long one notification counts as posted (below Alertmanager's repeat_interval, 4 h by default).
DEDUP_SECONDS = 3600.0
# How long a replica may take to post before another one may try (above the REST timeout).
POSTING_HOLD_SECONDS = 30.0
# How long a replica that found the claim taken waits for the other one's post before a 503.
WAIT_SECONDS = 35.0
POLL_SECONDS = 0.2


class Alert(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str = ""
    endsAt: str = ""
    fingerprint: str = ""


class Notification(BaseModel):
    """Alertmanager's webhook body (version 4); fields the message does not use are ignored."""

    model_config = ConfigDict(extra="ignore")

    version: str = "4"
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupKey: str = ""
    alerts: list[Alert] = Field(min_length=1)


def _neutral(text: str) -> str:
    # Label values and annotations must not mention @all / @here or anyone in the channel.
    return text.replace("@", "@\u200b").replace("\r", " ")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def alert_line(alert: Alert, lang: str) -> str:
    name = alert.labels.get("alertname", "?")
    severity = alert.labels.get("severity", "-")
    summary = alert.annotations.get("summary") or alert.annotations.get("description") or ""
    description = alert.annotations.get("description", "") if alert.annotations.get("summary") else ""
    labels = [f"{k}={v}" for k, v in sorted(alert.labels.items()) if k not in HIDDEN_LABELS]
    shown = ", ".join(labels[:MAX_LABELS_SHOWN]) + (", …" if len(labels) > MAX_LABELS_SHOWN else "")
    line = translate(
        lang,
        f"alerts.line.{alert.status}",
        severity=severity,
        name=name,
        summary=summary or "-",
    )
    if description:
        line += f" — {description}"
    if shown:
        line += f" ({shown})"
    return _cut(_neutral(" ".join(line.split())), MAX_LINE_CHARS)


def format_notification(notification: Notification, lang: str, max_lines: int) -> str:
    firing = sum(alert.status == "firing" for alert in notification.alerts)
    resolved = len(notification.alerts) - firing
    header = translate(lang, f"alerts.header.{notification.status}", firing=firing, resolved=resolved)
    # Firing first: they are what someone has to act on.
    ordered = sorted(notification.alerts, key=lambda alert: alert.status != "firing")
    lines = [alert_line(alert, lang) for alert in ordered[:max_lines]]
    if len(ordered) > max_lines:
        lines.append(translate(lang, "alerts.more", count=len(ordered) - max_lines))
    return "\n".join([header, *lines])


def notification_key(notification: Notification) -> str:
    """The same for every copy and retry of one notification (module docstring, point 1)."""
    parts = [notification.receiver, notification.groupKey, notification.status]
    for alert in sorted(notification.alerts, key=lambda a: (a.fingerprint, sorted(a.labels.items()))):
        identity = alert.fingerprint or repr(sorted(alert.labels.items()))
        ended = alert.endsAt if alert.status == "resolved" else ""
        parts.append(f"{identity}|{alert.status}|{alert.startsAt}|{ended}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


class AlertsReceiver:
    def __init__(
        self,
        *,
        chat: ChatPort,
        admins_channel: str,
        token: str,
        store: Store | None = None,
        language: str = "ru",
        max_lines: int = 10,
        dedup_seconds: float = DEDUP_SECONDS,
        posting_hold_seconds: float = POSTING_HOLD_SECONDS,
        wait_seconds: float = WAIT_SECONDS,
    ) -> None:
        """Without a store every notification is posted as it comes (one replica, no shared state)."""
        self.chat, self.admins_channel, self.language = chat, admins_channel, language
        self.store, self.max_lines = store, max_lines
        self.dedup_seconds, self.posting_hold_seconds = dedup_seconds, posting_hold_seconds
        self.wait_seconds = wait_seconds
        self._expected = f"Bearer {token}".encode()

    def routes(self) -> list[Route]:
        return [Route(ALERTS_PATH, self.receive, methods=["POST"])]

    def _refuse(self, reason: str, status: int, message: str) -> JSONResponse:
        metrics.ALERTS_REJECTED.labels(reason).inc()
        return JSONResponse({"error": message}, status_code=status)

    async def receive(self, request: Request) -> JSONResponse:
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, self._expected):
            log.warning(
                "alert notification with a wrong token refused",
                extra={"client": request.client.host if request.client else "?"},
            )
            return self._refuse("unauthorized", 401, "invalid or missing bearer token")
        try:
            body = await read_limited(request, MAX_BODY_BYTES)
        except ClientDisconnect:
            return self._refuse("invalid", 400, "incomplete body")
        if body is None:
            return self._refuse("too_large", 413, f"payload over {MAX_BODY_BYTES} bytes")
        try:
            notification = Notification.model_validate_json(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "body"
            # The reason names the field, never echoes the (possibly huge) input.
            return self._refuse("invalid", 400, f"not an Alertmanager notification: {where}: {first['msg']}")
        return await self._deliver(notification)

    async def _deliver(self, notification: Notification) -> JSONResponse:
        for alert in notification.alerts:
            metrics.ALERTS_RECEIVED.labels(alert.status).inc()
        if self.store is None:
            return await self._post(notification, None)
        key = notification_key(notification)
        posted_key, posting_key = f"alert-posted:{key}", f"alert-posting:{key}"
        deadline = time.monotonic() + self.wait_seconds
        try:
            while True:
                now = time.time()
                if await self.store.claimed(posted_key, now):
                    metrics.ALERTS_DUPLICATES.inc()
                    log.info("alert notification posted before", extra={"key": key})
                    return JSONResponse({"posted": False, "duplicate": True})
                until = now + self.posting_hold_seconds
                if await self.store.claim(posting_key, until, now):
                    break
                if time.monotonic() >= deadline:
                    log.warning("alert notification still being posted elsewhere", extra={"key": key})
                    return JSONResponse(
                        {"error": "being posted by another replica, retry later"}, status_code=503
                    )
                await asyncio.sleep(POLL_SECONDS)
        except Exception as exc:
            # Posted anyway: the derived message id still keeps the replicas' copies to one message.
            log.warning("alert state store unavailable, posting", extra={"reason": type(exc).__name__})
            return await self._post(notification, key)
        response = await self._post(notification, key)
        try:
            if response.status_code == 200:
                now = time.time()
                await self.store.claim(posted_key, now + self.dedup_seconds, now)
            # Done or failed: the next copy needs no wait (the "posted" mark, set first, answers it).
            await self.store.release(posting_key, until)
        except Exception as exc:
            # The posting claim runs out by itself; a second post keeps the derived message id.
            log.warning("alert state not saved", extra={"reason": type(exc).__name__})
        return response

    async def _post(self, notification: Notification, key: str | None) -> JSONResponse:
        text = format_notification(notification, self.language, self.max_lines)
        names = sorted({alert.labels.get("alertname", "?") for alert in notification.alerts})
        once = getattr(self.chat, "send_to_channel_once", None)
        try:
            if key is not None and once is not None:
                # The same id for every copy within one dedup window, another one for a later repeat.
                window = int(time.time() // self.dedup_seconds)
                await once(self.admins_channel, text, reply_id(f"alert:{key}:{window}", 0))
            else:
                await self.chat.send_to_channel(self.admins_channel, text)
        except Exception as exc:
            metrics.ALERTS_POST_FAILURES.inc()
            log.warning(
                "alert notification not posted, Alertmanager will retry",
                extra={"alerts": ",".join(names)[:200], "reason": type(exc).__name__},
            )
            return JSONResponse({"error": "Rocket.Chat unavailable, retry later"}, status_code=503)
        metrics.ALERTS_POSTED.inc()
        log.info(
            "alert notification posted",
            extra={
                "status": notification.status,
                "alerts": ",".join(names)[:200],
                "count": len(notification.alerts),
            },
        )
        return JSONResponse({"posted": True, "alerts": len(notification.alerts)})
