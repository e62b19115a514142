"""Bot scope: positions, registration (idempotent), status look-ups; and the key-for-JWT exchange."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request, Response
from pydantic import BeforeValidator
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from erp.api.deps import BotPrincipal, KeyPrincipal, runtime
from erp.api.problems import responses
from erp.db import read_session, write_connection
from erp.errors import ProblemError
from erp.metrics import REGISTRATIONS
from erp.schemas import (
    PositionList,
    PositionOut,
    RocketChatUserId,
    RocketChatUsername,
    StaffCreate,
    StaffList,
    StaffOut,
    StaffWithActivation,
    TokenResponse,
)
from erp.security import tokens
from erp.services import audit, idempotency, staff_reads
from erp.services import positions as positions_service
from erp.services import staff as staff_service
from erp.settings import Settings

AUTH_ERRORS = (401, 403, 415, 422, 429)
router = APIRouter(prefix="/api/bot/v1", responses=responses(*AUTH_ERRORS))


def _plain_digits(value: object) -> object:
    """Only ASCII digits name a record: int() also takes `1_0`, ` 1` and other digit scripts."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("a record id is a positive decimal number")
    return value


StaffId = Annotated[int, Path(ge=1, le=2_147_483_647), BeforeValidator(_plain_digits)]


@router.post("/auth/token", response_model=TokenResponse, tags=["auth"])
async def issue_token(request: Request, principal: KeyPrincipal) -> TokenResponse:
    """Exchange an API key (header X-API-Key) for a signed token of at most 15 minutes."""
    if request.headers.get("x-api-key") is None:
        raise ProblemError(401, "unauthorized", "a token is obtained with an API key")
    rt = runtime(request)
    ttl = rt.settings.jwt_ttl_seconds
    identity = principal.identity
    token = tokens.issue(identity.id, identity.name, identity.scopes, rt.settings.secret_bytes, ttl)
    await run_in_threadpool(audit.record, principal.actor, "auth.token", "ok", f"key:{identity.name}")
    return TokenResponse(access_token=token, expires_in=ttl)


@router.get("/positions", response_model=PositionList, tags=["bot"])
def list_positions(principal: BotPrincipal) -> PositionList:
    with read_session() as session:
        items = positions_service.active_positions(session)
        return PositionList(items=[PositionOut.model_validate(p) for p in items])


@router.post(
    "/staff",
    status_code=201,
    response_model=StaffWithActivation,
    responses=responses(409, 413, 428),
    tags=["bot"],
)
def create_staff(
    data: StaffCreate,
    request: Request,
    principal: BotPrincipal,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=128,
            description="Required: a repeat with the same key and body replays the first response.",
        ),
    ] = None,
) -> Response:
    """Register an employee; the activation code is in this response only (and its idempotent replays)."""
    if idempotency_key is None:
        problem = ProblemError(428, "idempotency_key_required", "POST /staff needs an Idempotency-Key header")
        audit.record(principal.actor, "staff.create", problem.code, data.rocketchat_username)
        raise problem
    rt = runtime(request)
    settings = rt.settings
    key_id = principal.identity.id
    fingerprint = idempotency.request_fingerprint(data.model_dump(mode="json"))
    actor = principal.actor
    try:
        with write_connection() as conn:
            stored = idempotency.lookup(conn, settings, key_id, idempotency_key, fingerprint)
            if stored is None:
                staff, activation = staff_service.register(conn, data, settings)
                raw = StaffWithActivation(staff=staff, activation=activation).model_dump_json().encode()
                idempotency.store(conn, settings, key_id, idempotency_key, fingerprint, 201, raw)
                detail = activation.audit_detail() if activation else None
                audit.add(conn, actor, "staff.create", "ok", f"staff:{staff.id}", detail)
    except ProblemError as exc:
        REGISTRATIONS.labels(exc.code).inc()
        audit.record(actor, "staff.create", exc.code, data.rocketchat_username, exc.detail)
        raise
    except IntegrityError:
        # A concurrent request won the race: replay its response if it was ours, else report the duplicate.
        stored = _after_race(data, settings, key_id, idempotency_key, fingerprint, actor)
    if stored is not None:
        REGISTRATIONS.labels("replayed").inc()
        return Response(
            stored.body,
            status_code=stored.status_code,
            media_type="application/json",
            headers={"Idempotent-Replayed": "true"},
        )
    REGISTRATIONS.labels("created").inc()
    rt.alerts.note("registrations", actor.source_ip)
    return Response(raw, status_code=201, media_type="application/json")


def _after_race(
    data: StaffCreate,
    settings: Settings,
    key_id: int,
    idempotency_key: str,
    fingerprint: str,
    actor: audit.Actor,
) -> idempotency.StoredResponse:
    with write_connection() as conn:
        stored = idempotency.lookup(conn, settings, key_id, idempotency_key, fingerprint)
        if stored is not None:
            return stored
        existing = staff_service.find_conflict(conn, data)
    if existing is None:  # the conflicting transaction rolled back meanwhile: the client may retry
        raise ProblemError(409, "staff_exists", "a concurrent registration conflicted; retry")
    REGISTRATIONS.labels("staff_exists").inc()
    audit.record(actor, "staff.create", "staff_exists", data.rocketchat_username)
    raise staff_service.staff_exists(existing)


@router.get("/staff/{staff_id}", response_model=StaffOut, responses=responses(404), tags=["bot"])
async def get_staff(staff_id: StaffId, principal: BotPrincipal) -> Response:
    body = await staff_reads.get_json(staff_id)
    if body is None:
        raise ProblemError(404, "not_found", "no such staff record")
    return Response(body, media_type="application/json")


@router.get("/staff", response_model=StaffList, tags=["bot"])
async def find_staff(
    principal: BotPrincipal,
    rocketchat_username: Annotated[RocketChatUsername | None, Query()] = None,
    rocketchat_user_id: Annotated[RocketChatUserId | None, Query()] = None,
    # No control characters (a NUL made PostgreSQL fail: 500) and no spaces.
    email: Annotated[str | None, Query(min_length=3, max_length=254, pattern=r"^[^\x00-\x20\x7f]+$")] = None,
) -> Response:
    """Zero or one record matching every given filter; at least one filter is required."""
    filters = {"rocketchat_username": rocketchat_username, "rocketchat_user_id": rocketchat_user_id}
    if email is not None:
        filters["email"] = email.lower()
    given = {name: value for name, value in filters.items() if value is not None}
    if not given:
        raise ProblemError(422, "validation_error", "give rocketchat_username, rocketchat_user_id or email")
    return Response(await staff_reads.find_json(**given), media_type="application/json")
