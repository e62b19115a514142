"""Exception handlers that turn every error into RFC 9457 problem+json, and the documented responses."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.routing import Match

from erp.errors import PROBLEM_MEDIA_TYPE, ProblemError, problem_body
from erp.schemas import Problem
from erp.services import audit

log = logging.getLogger("erp")

STATUS_CODES = {
    400: "validation_error",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


def problem_response(
    request: Request,
    status: int,
    code: str,
    detail: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    request_id = request.scope.get("state", {}).get("request_id")
    return JSONResponse(
        problem_body(status, code, detail, request_id, **extra),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def _loc(item: Any) -> list[str | int]:
    return [part if isinstance(part, int) else str(part) for part in item]


MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
# Refusals of mutations that are tallied (first of each interval plus one summed row, see
# audit.RefusalTally) rather than written one by one: they can come before or instead of authentication.
TALLIED = {"rate_limited", "payload_too_large"}


def _actor(request: Request) -> audit.Actor:
    state = request.scope.get("state", {})
    return audit.Actor(state.get("key_name"), state.get("client_ip_str"), state.get("request_id"))


async def _tally(request: Request, code: str) -> None:
    if request.method in MUTATING:
        refusals = request.app.state.runtime.refusals
        await run_in_threadpool(refusals.refused, _actor(request), "request", code, request.url.path)


async def on_problem(request: Request, exc: ProblemError) -> JSONResponse:
    if exc.code in TALLIED:
        await _tally(request, exc.code)
    return problem_response(request, exc.status, exc.code, exc.detail, exc.headers, **exc.extra)


async def _authenticated_for_audit(request: Request) -> ProblemError | None:
    """A body can be refused before the route's authentication ran (an unparseable body is refused
    first). Authenticate now, limits first, so that the refusal is written with the key's name, and
    refused (401/403/429) instead when the credentials are bad or the source is limited."""
    from erp.api.deps import api_key_header, authenticate, bearer

    try:
        key = await api_key_header(request)
        creds = await bearer(request)
        await authenticate(request, key, creds)
    except ProblemError as exc:
        return exc
    return None


async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    # Every mutating request is audited, refused ones too, but only after authentication and limits
    # (security finding 2): an anonymous refusal is tallied, an authenticated one names its key.
    if request.method in MUTATING:
        state = request.scope.get("state", {})
        headers = request.headers
        if state.get("key_name") is None and ("x-api-key" in headers or "authorization" in headers):
            refused = await _authenticated_for_audit(request)
            if refused is not None:
                return await on_problem(request, refused)
        if state.get("key_name") is not None:
            await run_in_threadpool(
                audit.record, _actor(request), "request", "validation_error", request.url.path
            )
        else:
            await _tally(request, "validation_error")
    # Only location and message: inputs are never echoed (they may be passwords or codes).
    errors = [{"loc": _loc(e.get("loc", ())), "msg": str(e.get("msg", "invalid"))} for e in exc.errors()]
    return problem_response(request, 422, "validation_error", "the request is invalid", errors=errors)


def _allowed_methods(request: Request) -> str:
    """Every method any route at this path accepts (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match != Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return ", ".join(sorted(methods))


async def on_http(request: Request, exc: HTTPException) -> JSONResponse:
    status = exc.status_code
    headers = dict(exc.headers or {})
    if status == 405:
        headers["Allow"] = _allowed_methods(request)
    code = STATUS_CODES.get(status, "internal_error" if status >= 500 else "validation_error")
    if code in TALLIED:
        await _tally(request, code)
    if status == 400:  # an unparseable body: report it as the validation error the contract names
        status = 422
    return problem_response(request, status, code, str(exc.detail), headers)


async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return problem_response(request, 500, "internal_error", "an internal error occurred")


def install(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, on_problem)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, on_validation)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, on_http)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, on_unexpected)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries: each listed status answers with a problem document."""
    return {
        status: {
            "model": Problem,
            "content": {PROBLEM_MEDIA_TYPE: {}},
            "description": STATUS_CODES.get(status, ""),
        }
        for status in statuses
    }
