"""In-process rate limiting: token buckets per key/IP and a sliding count of failed authentications.

One process keeps its own counters; a deployment with several workers or replicas shares limits at the
reverse proxy (nginx limit_req) in front of the service, see docs/erp.md. The per-login backoff after
wrong activation codes is kept in the database instead (erp/services/activation_backoff.py).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque


class TokenBuckets:
    def __init__(self, rate_per_second: float, burst: int, max_entries: int = 50000) -> None:
        self.rate = rate_per_second
        self.burst = float(burst)
        self.max_entries = max_entries
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, name: str) -> float:
        """0 when allowed, else the seconds to wait before the next token."""
        now = time.monotonic()
        with self._lock:
            tokens, stamp = self._buckets.get(name, (self.burst, now))
            tokens = min(self.burst, tokens + (now - stamp) * self.rate)
            if tokens >= 1.0:
                self._buckets[name] = (tokens - 1.0, now)
                return 0.0
            self._buckets[name] = (tokens, now)
            if len(self._buckets) > self.max_entries:
                self._prune(now)
            return (1.0 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        full_after = self.burst / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}


class FailureWindow:
    """Counts events per name within a sliding window; `blocked` once the limit is reached.

    Bounded: a name keeps at most `limit` timestamps, and past `max_entries` names the expired ones are
    dropped, then the oldest (so a flood of fresh source addresses cannot grow it without end).
    """

    def __init__(self, limit: int, window_seconds: float, max_entries: int = 50000) -> None:
        self.limit = limit
        self.window = window_seconds
        self.max_entries = max_entries
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._events)

    def _evict(self, now: float) -> None:
        for name in list(self._events):
            self._trim(name, now)
        while len(self._events) >= self.max_entries:
            del self._events[next(iter(self._events))]

    def _trim(self, name: str, now: float) -> deque[float] | None:
        events = self._events.get(name)
        if events is None:
            return None
        while events and now - events[0] > self.window:
            events.popleft()
        if not events:
            del self._events[name]
            return None
        return events

    def add(self, name: str) -> int:
        now = time.monotonic()
        with self._lock:
            events = self._trim(name, now)
            if events is None:
                if len(self._events) >= self.max_entries:
                    self._evict(now)
                events = self._events[name] = deque(maxlen=self.limit)
            events.append(now)
            return len(events)

    def retry_after(self, name: str) -> float:
        """0 when not blocked, else seconds until the oldest failure leaves the window."""
        if name not in self._events:  # fast path without the lock
            return 0.0
        now = time.monotonic()
        with self._lock:
            events = self._trim(name, now)
            if events is None or len(events) < self.limit:
                return 0.0
            return max(0.0, self.window - (now - events[0]))


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
