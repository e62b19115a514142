"""Rocket.Chat's REST error bodies (ApiClass.ts helpers), raised as exceptions by handlers."""

from __future__ import annotations

from typing import Any

NOT_LOGGED_IN = "You must be logged in to do this."


class ApiError(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(body.get("error") or body.get("message"))
        self.status = status
        self.body = body
        self.headers = headers or {}


def failure(error: str, error_type: str | None = None, details: Any = None) -> ApiError:
    """API.v1.failure: HTTP 400 with a plain message (errorType only when given)."""
    body: dict[str, Any] = {"success": False, "error": error}
    if error_type is not None:
        body["errorType"] = error_type
    if details is not None:
        body["details"] = details
    return ApiError(400, body)


def meteor_error(code: str, reason: str | None = None, details: Any = None) -> ApiError:
    """A Meteor.Error thrown inside a handler: `error` is "<reason> [<code>]", errorType the code."""
    message = f"{reason} [{code}]" if reason else f"[{code}]"
    return failure(message, code, details)


def invalid_params(message: str) -> ApiError:
    return meteor_error("invalid-params", message)


def not_logged_in() -> ApiError:
    # 8.x sends success/error; 7.x and the OpenAPI definitions add status/message. Both are present so
    # clients written against either keep working.
    return ApiError(
        401, {"success": False, "status": "error", "message": NOT_LOGGED_IN, "error": NOT_LOGGED_IN}
    )


def forbidden() -> ApiError:
    """Route-level `permissionsRequired` failure (RC 8.x text)."""
    return ApiError(
        403,
        {
            "success": False,
            "error": "User does not have the permissions required for this action [error-forbidden]",
        },
    )


def unauthorized() -> ApiError:
    """API.v1.unauthorized() called by a handler itself (status as documented in the OpenAPI)."""
    return ApiError(403, {"success": False, "error": "unauthorized"})


def not_found() -> ApiError:
    return ApiError(404, {"success": False, "error": "Resource not found"})


def too_many_requests(wait_seconds: int, headers: dict[str, str]) -> ApiError:
    return ApiError(
        429,
        {
            "success": False,
            "error": "Error, too many requests. Please slow down. You must wait "
            f"{wait_seconds} seconds before trying this endpoint again. [error-too-many-requests]",
        },
        headers,
    )
