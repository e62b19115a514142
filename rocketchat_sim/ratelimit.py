"""Rocket.Chat's REST rate limiter: N calls per window per (client IP, route), with X-RateLimit-* headers.

Settings `API_Enable_Rate_Limiter`, `API_Enable_Rate_Limiter_Limit_Calls_Default`,
`API_Enable_Rate_Limiter_Limit_Time_Default` (ms) are read on every call, so changing them through
the settings API takes effect at once. Callers with `api-bypass-rate-limit` are never limited.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from .errors import too_many_requests


@dataclass
class _Window:
    reset_at_ms: int
    remaining: int


class RateLimiter:
    def __init__(self) -> None:
        self._windows: dict[tuple[str, str], _Window] = {}

    def enabled(self, settings: dict[str, Any]) -> bool:
        return bool(settings.get("API_Enable_Rate_Limiter")) and bool(
            settings.get("API_Enable_Rate_Limiter_Dev", True)
        )

    def check(self, settings: dict[str, Any], ip: str, route: str) -> dict[str, str]:
        """Count one call; returns the headers for the response or raises the 429 ApiError."""
        limit = int(settings.get("API_Enable_Rate_Limiter_Limit_Calls_Default", 10))
        interval = int(settings.get("API_Enable_Rate_Limiter_Limit_Time_Default", 60000))
        now = int(time.time() * 1000)
        key = (ip, route)
        window = self._windows.get(key)
        if window is None or window.reset_at_ms <= now:
            if len(self._windows) > 10_000:
                self._windows = {k: w for k, w in self._windows.items() if w.reset_at_ms > now}
            window = _Window(now + interval, limit)
            self._windows[key] = window
        headers = {"X-RateLimit-Limit": str(limit), "X-RateLimit-Reset": str(window.reset_at_ms)}
        if window.remaining <= 0:
            headers["X-RateLimit-Remaining"] = "0"
            raise too_many_requests(max(1, math.ceil((window.reset_at_ms - now) / 1000)), headers)
        window.remaining -= 1
        headers["X-RateLimit-Remaining"] = str(window.remaining)
        return headers

    def reset(self) -> None:
        self._windows.clear()
