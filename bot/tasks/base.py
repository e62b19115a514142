"""The task-tracker port: what the outbox needs from any tracker, and the HTTP plumbing adapters share.

An adapter opens a task (returning its key), comments on it and closes it. Every failure is a
`TrackerError` that says whether trying again later can help (`retryable`): the tracker being down,
slow, overloaded or rate limiting can; a request the tracker calls malformed (400, 404, 422) cannot.
Error texts carry status codes and the tracker's own short message, never a token or a signature.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from bot.erp_client import retry_after_seconds

# Answers that say the request itself is wrong: repeating it cannot succeed.
PERMANENT_STATUSES = frozenset({400, 404, 405, 410, 413, 422})
MAX_ERROR_TEXT = 200


@dataclass(frozen=True)
class TaskSpec:
    """What goes into a new task. Built only from public fields of the staff record: no secrets."""

    staff_id: int
    title: str
    description: str
    label: str  # a stable per-staff marker (Jira label), so a lost answer can be found again


@dataclass(frozen=True)
class TaskClosing:
    """How a task ends: the decision, as a comment, then the task is closed."""

    staff_id: int
    key: str
    outcome: str  # approved | rejected | <the ERP status seen>
    comment: str


class TrackerError(Exception):
    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message[:MAX_ERROR_TEXT])
        self.retryable, self.retry_after = retryable, retry_after


class TaskTracker(Protocol):
    name: str

    async def open(self, spec: TaskSpec, event_id: str) -> str:
        """Create the task; return its key (e.g. `ERP-17`, or a Redmine issue id)."""
        ...

    async def find(self, spec: TaskSpec) -> str | None:
        """The key of a task opened for this spec by an attempt whose answer was lost, if the tracker can
        tell (None otherwise)."""
        ...

    async def close(self, closing: TaskClosing, event_id: str, progress: dict[str, Any]) -> None:
        """Comment on the task and close it. Steps done are noted in `progress` (kept by the outbox
        across attempts), so a retry after a failed second step does not comment twice."""
        ...

    async def aclose(self) -> None: ...


class HttpTracker:
    """An httpx client with a timeout on every call and the error mapping every adapter uses."""

    name = "http"

    def __init__(
        self,
        base_url: str,
        *,
        headers: dict[str, str],
        timeout: float,
        ca_file: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            headers={"User-Agent": "photomatrix-onboarding-bot", "Accept": "application/json", **headers},
            verify=verify,
            transport=transport,
            follow_redirects=False,  # a redirect would resend credentials somewhere unexpected
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        url = path if path.startswith(("http://", "https://")) else f"{self.base_url}{path}"
        try:
            response = await self._http.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise TrackerError(f"{method} {path}: timeout ({type(exc).__name__})", retryable=True) from None
        except httpx.TransportError as exc:
            raise TrackerError(f"{method} {path}: {type(exc).__name__}", retryable=True) from None
        if response.status_code < 300:
            return response
        raise TrackerError(
            f"{method} {path}: HTTP {response.status_code} {_short_reason(response)}".rstrip(),
            retryable=response.status_code not in PERMANENT_STATUSES,
            retry_after=retry_after_seconds(response),
        )

    async def find(self, spec: TaskSpec) -> str | None:
        return None


def json_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise TrackerError(f"answer is not JSON (HTTP {response.status_code})", retryable=True) from None
    if not isinstance(body, dict):
        raise TrackerError(f"answer is not a JSON object (HTTP {response.status_code})", retryable=True)
    return body


def _short_reason(response: httpx.Response) -> str:
    """The tracker's own error words (Jira errorMessages/errors, Redmine errors), shortened."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    parts: list[str] = []
    messages = body.get("errorMessages") or []
    if isinstance(body.get("errors"), list):
        messages = [*messages, *body["errors"]]
    elif isinstance(body.get("errors"), dict):
        parts += [f"{k}: {v}" for k, v in body["errors"].items()]
    parts = [str(m) for m in messages] + parts
    return "; ".join(parts)[:MAX_ERROR_TEXT]
