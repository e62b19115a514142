"""The main application's side: an employee activates the account with login + code + new password."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from erp.api.deps import actor_for, rate_limited, runtime
from erp.api.problems import responses
from erp.db import write_session
from erp.errors import ProblemError
from erp.metrics import ACTIVATIONS
from erp.runtime import Runtime
from erp.schemas import ActivateRequest, ActivateResponse
from erp.security.network import source_key
from erp.services import activation_backoff, audit
from erp.services import users as users_service

router = APIRouter(prefix="/api/v1/account", tags=["account"])


def _activate(rt: Runtime, body: ActivateRequest, actor: audit.Actor) -> ActivateResponse:
    with write_session() as session:
        user = users_service.activate(session, body.login, body.code, body.password, rt.settings)
        activation_backoff.reset(session, body.login)  # with the activation, in its transaction
        audit.add(session, actor, "account.activate", "ok", f"login:{body.login}")
        return ActivateResponse(login=user.login, activated_at=user.activated_at)


@router.post("/activate", response_model=ActivateResponse, responses=responses(400, 413, 415, 422, 429))
async def activate(body: ActivateRequest, request: Request) -> ActivateResponse:
    """Every failure answers 400 `activation_code_invalid` with one detail and no sooner than a fixed
    time. Limits: per source (token bucket and failed-authentication window) and per login (backoff
    after a few wrong attempts from anywhere, bounded, reset by a new code)."""
    # The per-login backoff is kept in the database (erp/services/activation_backoff.py): every replica
    # sees the same state.
    started = time.monotonic()
    rt = runtime(request)
    actor = actor_for(request)
    source = source_key(actor.source_ip)
    wait = (
        rt.auth_failures.retry_after(source)
        or await run_in_threadpool(rt.activation_logins.retry_after, body.login)
        or rt.activation_buckets.take(source)
    )
    if wait:
        raise rate_limited(rt, "activation", actor.source_ip, wait)
    try:
        result = await run_in_threadpool(_activate, rt, body, actor)
    except users_service.ActivationFailed as exc:
        ACTIVATIONS.labels(exc.reason).inc()
        await run_in_threadpool(rt.activation_logins.fail, body.login)
        rt.auth_failures.add(source)
        rt.alerts.note("auth_failures", actor.source_ip)
        await run_in_threadpool(audit.record, actor, "account.activate", exc.reason, f"login:{body.login}")
        # The same answer after the same time, whichever check failed.
        await asyncio.sleep(max(0.0, rt.settings.activation_failure_seconds - (time.monotonic() - started)))
        raise
    except ProblemError as exc:  # weak_password: the code was right and stays valid
        ACTIVATIONS.labels(exc.code).inc()
        await run_in_threadpool(audit.record, actor, "account.activate", exc.code, f"login:{body.login}")
        raise
    ACTIVATIONS.labels("ok").inc()
    return result
