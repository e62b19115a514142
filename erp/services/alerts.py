"""Suspicious activity: bursts of auth failures, rate-limit hits or registrations raise an alert.

An alert is a structured log line plus a POST to a webhook (a Rocket.Chat incoming webhook once
deployed). Webhook calls run on a background thread with a timeout and are themselves rate limited.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
from prometheus_client import Counter

from erp.security.ratelimit import FailureWindow
from erp.settings import Settings

log = logging.getLogger("erp.alerts")
ALERTS = Counter("erp_alerts_total", "Suspicious-activity alerts raised", ["kind"])
WEBHOOK_FAILURES = Counter("erp_alert_webhook_failures_total", "Alert webhook deliveries that failed")

KINDS = ("auth_failures", "rate_limited", "registrations")


def webhook_verify(settings: Settings) -> ssl.SSLContext | bool:
    """How the webhook's certificate is checked: against ERP_ALERT_WEBHOOK_CA_FILE when set (the internal CA
    of a self-signed deployment), else against the bundled roots."""
    if settings.alert_webhook_ca_file is None:
        return True
    return ssl.create_default_context(cafile=str(settings.alert_webhook_ca_file))


def webhook_origin(settings: Settings) -> str | None:
    """The webhook's scheme, host and port: what may be printed (the path holds the token)."""
    if settings.alert_webhook_url is None:
        return None
    parts = urlsplit(settings.alert_webhook_url.get_secret_value())
    return f"{parts.scheme}://{parts.netloc}"


def probe_webhook(settings: Settings) -> tuple[bool, str]:
    """Read-only: can this process reach the webhook's Rocket.Chat (name, route, certificate)? A GET of its
    public /api/info at the webhook's origin, with the delivery's own verification and timeout; nothing is
    posted. Returns (reachable, what to print), never the URL's path."""
    origin = webhook_origin(settings)
    if origin is None:
        return False, "no alerts webhook configured (ERP_ALERT_WEBHOOK_URL_FILE)"
    try:
        response = httpx.get(
            origin + "/api/info",
            verify=webhook_verify(settings),
            timeout=settings.alert_webhook_timeout_seconds,
        )
    except httpx.HTTPError as exc:
        return False, f"{origin}: unreachable: {type(exc).__name__}: {exc}"
    if response.status_code != 200:
        return False, f"{origin}: /api/info answered {response.status_code}"
    return True, f"{origin}: reachable (/api/info 200)"


class AlertMonitor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        thresholds = {
            "auth_failures": settings.alert_auth_failures_threshold,
            "rate_limited": settings.alert_rate_limited_threshold,
            "registrations": settings.alert_registrations_threshold,
        }
        self._windows = {k: FailureWindow(v, settings.alert_window_seconds) for k, v in thresholds.items()}
        self._thresholds = thresholds
        self._last_alert: dict[str, float] = {}
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="erp-alert")

    def note(self, kind: str, source: str | None = None) -> None:
        count = self._windows[kind].add("all")
        if count < self._thresholds[kind]:
            return
        now = time.monotonic()
        with self._lock:
            last = self._last_alert.get(kind)
            if last is not None and now - last < self.settings.alert_webhook_min_interval_seconds:
                return
            self._last_alert[kind] = now
        self._raise(kind, count, source)

    def _raise(self, kind: str, count: int, source: str | None) -> None:
        event = {
            "event": "suspicious_activity",
            "kind": kind,
            "count": count,
            "window_seconds": self.settings.alert_window_seconds,
            "last_source_ip": source,
        }
        ALERTS.labels(kind).inc()
        log.warning("suspicious activity: %s", kind, extra={"fields": event})
        if self.settings.alert_webhook_url is not None:
            self._executor.submit(self._post, event)

    def _post(self, event: dict[str, object]) -> None:
        url = self.settings.alert_webhook_url
        if url is None:
            return
        text = (
            f":warning: ERP: suspicious activity `{event['kind']}`: {event['count']} events in "
            f"{event['window_seconds']} s (last source {event['last_source_ip']})"
        )
        try:
            response = httpx.post(
                url.get_secret_value(),
                json={"text": text, "alert": event},
                verify=webhook_verify(self.settings),
                timeout=self.settings.alert_webhook_timeout_seconds,
            )
            response.raise_for_status()
        except httpx.HTTPError as exc:
            WEBHOOK_FAILURES.inc()
            # The URL holds a token: log only the exception type.
            log.error("alert webhook delivery failed: %s", type(exc).__name__)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
