"""Client of the ERP bot-integration API (docs/api/erp-bot-api.md).

Every call has a timeout and carries the current request id as `X-Request-ID`. Failures that say
nothing about the request itself (connection errors, 5xx, 429) are retried with exponential backoff and
jitter, honouring `Retry-After`; but a request the server may already have acted on (a timeout or 5xx on
a POST) is retried only when it carries an Idempotency-Key. A circuit breaker fails fast while the ERP
is down, so people are told to try later instead of waiting for every retry.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from datetime import datetime
from typing import Any

import httpx

from bot import metrics
from bot.http_client import KeepAliveClient, Response
from bot.logging import request_id_var

log = logging.getLogger("bot.erp")


class ErpError(Exception):
    """The ERP answered with a problem document; branch on `code`."""

    def __init__(self, status: int, code: str, detail: str = "", body: dict[str, Any] | None = None) -> None:
        super().__init__(f"ERP {status} {code}")
        self.status, self.code, self.detail, self.body = status, code, detail, body or {}


class ErpUnavailable(Exception):
    """The ERP could not be reached (or the breaker is open): tell the person to try later."""


class CircuitBreaker:
    CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"

    def __init__(self, threshold: int, reset_seconds: float, clock: Any = time.monotonic) -> None:
        self.threshold, self.reset_seconds, self.clock = threshold, reset_seconds, clock
        self.failures = 0
        self.opened_at = 0.0
        self._state = self.CLOSED
        self._publish()

    @property
    def state(self) -> str:
        if self._state == self.OPEN and self.clock() - self.opened_at >= self.reset_seconds:
            self._state = self.HALF_OPEN
            self._publish()
        return self._state

    def allow(self) -> bool:
        # Half-open lets calls through; the first outcome decides whether it closes or opens again.
        return self.state != self.OPEN

    def success(self) -> None:
        self.failures = 0
        if self._state != self.CLOSED:
            self._state = self.CLOSED
            self._publish()

    def failure(self) -> None:
        self.failures += 1
        if self._state == self.HALF_OPEN or self.failures >= self.threshold:
            self._state, self.opened_at = self.OPEN, self.clock()
            self._publish()

    def _publish(self) -> None:
        metrics.BREAKER_STATE.set({self.CLOSED: 0, self.OPEN: 1, self.HALF_OPEN: 2}[self._state])


def retry_after_seconds(response: httpx.Response | Response) -> float | None:
    """Retry-After in seconds (the delta form; an HTTP date or garbage counts as absent)."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class ErpClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 5.0,
        retries: int = 3,
        backoff_base: float = 0.2,
        backoff_max: float = 5.0,
        breaker_threshold: int = 5,
        breaker_reset_seconds: float = 30.0,
        ca_file: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.root_url = self.base_url.removesuffix("/api/bot/v1")
        self.retries, self.backoff_base, self.backoff_max = retries, backoff_base, backoff_max
        self.breaker = CircuitBreaker(breaker_threshold, breaker_reset_seconds)
        headers = {"X-API-Key": api_key, "User-Agent": "photomatrix-onboarding-bot"}
        context = ssl.create_default_context(cafile=ca_file) if ca_file else None
        self._http: KeepAliveClient | httpx.AsyncClient
        if transport is None:
            # The bot's own keep-alive client: a fraction of httpx's CPU per call (bot/http_client.py).
            self._http = KeepAliveClient(self.base_url, timeout=timeout, headers=headers, ssl_context=context)
        else:  # an injected httpx transport (tests)
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(timeout), headers=headers, verify=context or True, transport=transport
            )

    async def aclose(self) -> None:
        await self._http.aclose()

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, 60.0)
        ceiling = min(self.backoff_max, self.backoff_base * 2**attempt)
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311  # nosec B311

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        if not self.breaker.allow():
            metrics.ERP_ERRORS.labels("breaker_open").inc()
            raise ErpUnavailable("circuit breaker open")
        headers = {"X-Request-ID": request_id_var.get()}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        safe_to_repeat = method in ("GET", "PATCH", "PUT", "DELETE") or idempotency_key is not None
        attempt = 0
        while True:
            started = time.perf_counter()
            retry_after: float | None = None
            try:
                response = await self._http.request(
                    method, f"{self.base_url}{path}", json=json, params=params, headers=headers
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                reason, retryable = f"connect: {type(exc).__name__}", True
            except httpx.TransportError as exc:
                # Sent, maybe processed: repeat only what the ERP deduplicates.
                reason, retryable = f"transport: {type(exc).__name__}", safe_to_repeat
            else:
                metrics.ERP_SECONDS.labels(method).observe(time.perf_counter() - started)
                if response.status_code == 429:
                    reason, retryable, retry_after = "rate_limited", True, retry_after_seconds(response)
                elif response.status_code >= 500:
                    reason, retryable = f"http {response.status_code}", safe_to_repeat
                    retry_after = retry_after_seconds(response)
                else:
                    self.breaker.success()
                    return self._result(response)
            metrics.ERP_ERRORS.labels(reason.split(":")[0].replace(" ", "_")).inc()
            if not retryable or attempt >= self.retries:
                if reason != "rate_limited":
                    self.breaker.failure()
                log.warning("erp call failed", extra={"method": method, "path": path, "reason": reason})
                raise ErpUnavailable(reason)
            delay = self._delay(attempt, retry_after)
            log.info("erp retry", extra={"method": method, "path": path, "reason": reason, "delay": delay})
            await asyncio.sleep(delay)
            attempt += 1

    @staticmethod
    def _result(response: httpx.Response | Response) -> Any:
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = None
        if response.status_code >= 400:
            body = body if isinstance(body, dict) else {}
            raise ErpError(
                response.status_code, str(body.get("code", "unknown")), str(body.get("detail", "")), body
            )
        return body

    # --- bot scope ---
    async def positions(self) -> list[dict[str, Any]]:
        return (await self.request("GET", "/positions"))["items"]

    async def create_staff(self, body: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        return await self.request("POST", "/staff", json=body, idempotency_key=idempotency_key)

    async def get_staff(self, staff_id: int) -> dict[str, Any]:
        return await self.request("GET", f"/staff/{staff_id}")

    async def find_staff(self, **query: str) -> dict[str, Any] | None:
        items = (await self.request("GET", "/staff", params=query))["items"]
        return items[0] if items else None

    # --- admin scope ---
    async def approve(self, staff_id: int) -> dict[str, Any]:
        return await self.request("POST", f"/staff/{staff_id}/approve")

    async def reject(self, staff_id: int, reason: str | None) -> dict[str, Any]:
        return await self.request(
            "POST", f"/staff/{staff_id}/reject", json={"reason": reason} if reason else {}
        )

    async def block(self, staff_id: int) -> dict[str, Any]:
        return await self.request("POST", f"/staff/{staff_id}/block")

    async def unblock(self, staff_id: int) -> dict[str, Any]:
        return await self.request("POST", f"/staff/{staff_id}/unblock")

    async def reissue_code(self, staff_id: int) -> dict[str, Any]:
        return await self.request("POST", f"/staff/{staff_id}/activation-code")

    async def update_position(self, code: str, changes: dict[str, Any]) -> dict[str, Any]:
        return await self.request("PATCH", f"/positions/{code}", json=changes)

    async def registration_report(self, since: datetime, until: datetime | None = None) -> dict[str, Any]:
        """Registrations created in [since, until) and everyone still waiting (aware datetimes only)."""
        params = {"since": since.isoformat()}
        if until is not None:
            params["until"] = until.isoformat()
        return await self.request("GET", "/reports/registrations", params=params)

    async def ping(self) -> bool:
        try:
            response = await self._http.get(f"{self.root_url}/healthz", timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200
