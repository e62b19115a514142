"""Authentication and authorisation: API key or bearer JWT, per-key networks, scopes, rate limits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from erp.errors import ProblemError
from erp.metrics import AUTH_FAILURES, RATE_LIMITED
from erp.runtime import Runtime
from erp.security import tokens
from erp.security.api_keys import KeyIdentity
from erp.security.network import source_key
from erp.security.ratelimit import retry_after_header
from erp.services import audit

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")
bearer = HTTPBearer(auto_error=False, description="JWT from POST /api/bot/v1/auth/token")


@dataclass
class Principal:
    identity: KeyIdentity
    actor: audit.Actor


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


def actor_for(request: Request, identity: KeyIdentity | None = None) -> audit.Actor:
    state = request.scope["state"]
    return audit.Actor(
        identity.name if identity else None,
        state.get("client_ip_str"),
        state.get("request_id"),
        identity.id if identity else None,
    )


def rate_limited(rt: Runtime, limit: str, source: str | None, wait: float) -> ProblemError:
    RATE_LIMITED.labels(limit).inc()
    rt.alerts.note("rate_limited", source)
    return ProblemError(
        429, "rate_limited", "too many requests", headers={"Retry-After": retry_after_header(wait)}
    )


def check_ip_limits(rt: Runtime, ip: str | None) -> None:
    name = source_key(ip)
    wait = rt.auth_failures.retry_after(name)
    if wait:
        raise rate_limited(rt, "auth_failures", ip, wait)
    wait = rt.ip_buckets.take(name)
    if wait:
        raise rate_limited(rt, "ip", ip, wait)


async def auth_failure(
    request: Request, rt: Runtime, reason: str, identity: KeyIdentity | None = None
) -> None:
    actor = actor_for(request, identity)
    AUTH_FAILURES.labels(reason).inc()
    rt.auth_failures.add(source_key(actor.source_ip))
    rt.alerts.note("auth_failures", actor.source_ip)
    await run_in_threadpool(audit.record, actor, "auth", reason, request.url.path)


async def _resolve(
    rt: Runtime, key: str | None, creds: HTTPAuthorizationCredentials | None
) -> KeyIdentity | None:
    if key:
        hit = rt.keys.cached(key)
        return hit[1] if hit is not None else await run_in_threadpool(rt.keys.by_key, key)
    if creds is not None and creds.scheme.lower() == "bearer":
        key_id = tokens.verify(creds.credentials, rt.settings.secret_bytes)
        if key_id is None:
            return None
        hit = rt.keys.cached_id(key_id)
        return hit[1] if hit is not None else await run_in_threadpool(rt.keys.by_id, key_id)
    return None


async def authenticate(
    request: Request,
    key: Annotated[str | None, Security(api_key_header)],
    creds: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> Principal:
    rt = runtime(request)
    ip = request.scope["state"].get("client_ip_str")
    check_ip_limits(rt, ip)
    identity = await _resolve(rt, key, creds)
    if identity is None:
        await auth_failure(request, rt, "unauthorized")
        raise ProblemError(401, "unauthorized", "missing, unknown, revoked or expired credentials")
    if not identity.allows(request.scope["state"].get("client_ip")):
        await auth_failure(request, rt, "network_denied", identity)
        raise ProblemError(403, "forbidden")
    wait = rt.key_buckets.take(f"key:{identity.id}")
    if wait:
        raise rate_limited(rt, "key", ip, wait)
    request.scope["state"]["key_name"] = identity.name  # for the audit of requests refused later
    return Principal(identity, actor_for(request, identity))


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    async def dependency(
        request: Request, principal: Annotated[Principal, Depends(authenticate)]
    ) -> Principal:
        if scope not in principal.identity.scopes:
            await auth_failure(request, runtime(request), "scope_denied", principal.identity)
            raise ProblemError(403, "forbidden")
        return principal

    return dependency


require_bot = require("bot")
require_admin = require("admin")
KeyPrincipal = Annotated[Principal, Depends(authenticate)]
BotPrincipal = Annotated[Principal, Depends(require_bot)]
AdminPrincipal = Annotated[Principal, Depends(require_admin)]
