"""RFC 9457 problem details with a stable `code` for every error the API returns."""

from __future__ import annotations

from typing import Any

PROBLEM_TYPE_BASE = "https://photomatrix.example/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"

TITLES = {
    "validation_error": "The request is invalid",
    "payload_too_large": "The request body is too large",
    "unauthorized": "Authentication required",
    "forbidden": "Forbidden",
    "rate_limited": "Too many requests",
    "not_found": "Not found",
    "method_not_allowed": "Method not allowed",
    "idempotency_key_required": "Idempotency-Key header required",
    "idempotency_key_reused": "Idempotency-Key reused with another request",
    "staff_exists": "Staff record exists already",
    "position_not_found": "Unknown position",
    "invalid_state": "The transition is not allowed",
    "activation_code_invalid": "Invalid login or activation code",
    "unsupported_media_type": "Unsupported media type",
    "request_timeout": "The request head did not arrive in time",
    "headers_too_large": "The request headers are too large",
    "internal_error": "Internal error",
    "unavailable": "Service unavailable",
}


# Built from pairs: a dict literal with this key reads as a hard-coded password to bandit.
TITLES.update([("weak_password", "The password is too weak")])


class ProblemError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


def problem_body(
    status: int, code: str, detail: str | None, request_id: str | None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": TITLES.get(code, code),
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": request_id,
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    return body
