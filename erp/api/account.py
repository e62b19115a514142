"""The main application's side: an employee activates the account with login + code + new password."""

from __future__ import annotations

from fastapi import APIRouter, Request

from erp.api.deps import actor_for, rate_limited, runtime
from erp.api.problems import responses
from erp.db import write_session
from erp.errors import ProblemError
from erp.metrics import ACTIVATIONS
from erp.schemas import ActivateRequest, ActivateResponse
from erp.services import audit
from erp.services import users as users_service

router = APIRouter(prefix="/api/v1/account", tags=["account"])


@router.post("/activate", response_model=ActivateResponse, responses=responses(400, 413, 422, 429))
def activate(body: ActivateRequest, request: Request) -> ActivateResponse:
    rt = runtime(request)
    actor = actor_for(request)
    ip = actor.source_ip or "unknown"
    wait = rt.auth_failures.retry_after(ip) or rt.activation_buckets.take(ip)
    if wait:
        raise rate_limited(rt, "activation", actor.source_ip, wait)
    wrong: users_service.WrongCode | None = None
    try:
        with write_session() as session:
            try:
                user = users_service.activate(session, body.login, body.code, body.password, rt.settings)
                result = ActivateResponse(login=user.login, activated_at=user.activated_at)
                audit.add(session, actor, "account.activate", "ok", f"login:{body.login}")
            except users_service.WrongCode as exc:
                wrong = exc  # leave the block normally: the attempt counter must be committed
                audit.add(session, actor, "account.activate", "wrong_code", f"login:{body.login}")
    except ProblemError as exc:
        ACTIVATIONS.labels(exc.code).inc()
        if exc.code != "weak_password":
            rt.auth_failures.add(ip)
            rt.alerts.note("auth_failures", actor.source_ip)
        audit.record(actor, "account.activate", exc.code, f"login:{body.login}")
        raise
    if wrong is not None:
        ACTIVATIONS.labels("wrong_code").inc()
        rt.auth_failures.add(ip)
        rt.alerts.note("auth_failures", actor.source_ip)
        if wrong.exhausted:
            raise ProblemError(
                400, "activation_code_exhausted", "too many wrong attempts: ask for a new code"
            )
        raise ProblemError(400, "activation_code_invalid", "wrong login or code")
    ACTIVATIONS.labels("ok").inc()
    return result
