"""Alertmanager webhook receiver: `POST /alerts/alertmanager` turns one notification (webhook format v4)
into ONE message in the admins channel.

Auth is `Authorization: Bearer <token>` compared in constant time (Alertmanager's
`http_config.authorization.credentials_file`). Without a configured token the route is not mounted (404).
Bad input is a 400 with a reason; a Rocket.Chat failure is a 503, so Alertmanager retries the notification.
"""

from __future__ import annotations

import hmac
import logging
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot import metrics
from bot.core.ports import ChatPort
from bot.http_body import read_limited
from bot.i18n import translate

log = logging.getLogger("bot.alerts")

ALERTS_PATH = "/alerts/alertmanager"
# Alertmanager sends every alert of a group; a few hundred alerts stay well below this.
MAX_BODY_BYTES = 256 * 1024
MAX_LINE_CHARS = 400
MAX_LABELS_SHOWN = 6
# Labels every line shows anyway (name, severity) or that only repeat the group.
HIDDEN_LABELS = {"alertname", "severity"}


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


class AlertsReceiver:
    def __init__(
        self, *, chat: ChatPort, admins_channel: str, token: str, language: str = "ru", max_lines: int = 10
    ) -> None:
        self.chat, self.admins_channel, self.language = chat, admins_channel, language
        self.max_lines = max_lines
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
        text = format_notification(notification, self.language, self.max_lines)
        names = sorted({alert.labels.get("alertname", "?") for alert in notification.alerts})
        try:
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
