"""Suspicious activity: bursts of auth failures, rate-limit hits or registrations raise an alert.

An alert is a structured log line plus a POST to a webhook (a Rocket.Chat incoming webhook once
deployed). Webhook calls run on a background thread with a timeout and are themselves rate limited.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from prometheus_client import Counter

from erp.security.ratelimit import FailureWindow
from erp.settings import Settings

log = logging.getLogger("erp.alerts")
ALERTS = Counter("erp_alerts_total", "Suspicious-activity alerts raised", ["kind"])
WEBHOOK_FAILURES = Counter("erp_alert_webhook_failures_total", "Alert webhook deliveries that failed")

KINDS = ("auth_failures", "rate_limited", "registrations")


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
                timeout=self.settings.alert_webhook_timeout_seconds,
            )
            response.raise_for_status()
        except httpx.HTTPError as exc:
            WEBHOOK_FAILURES.inc()
            # The URL holds a token: log only the exception type.
            log.error("alert webhook delivery failed: %s", type(exc).__name__)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
