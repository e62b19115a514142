"""Admin scope: approve, reject, block, unblock, reissue a code, change a position, read the audit log."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Body, Query, Request

from erp.api.bot import StaffId
from erp.api.common import audited_write, staff_out
from erp.api.deps import AdminPrincipal, Principal, runtime
from erp.api.problems import responses
from erp.models import Staff
from erp.schemas import (
    AuditEventOut,
    AuditList,
    PositionCode,
    PositionOut,
    PositionPatch,
    RejectRequest,
    StaffOut,
    StaffWithActivation,
    StaffWithNewActivation,
)
from erp.services import audit
from erp.services import positions as positions_service
from erp.services import staff as staff_service
from erp.services import users as users_service

ADMIN_ERRORS = responses(401, 403, 404, 409, 415, 422, 429)
router = APIRouter(prefix="/api/bot/v1", responses=ADMIN_ERRORS, tags=["admin"])


@router.post("/staff/{staff_id}/approve", response_model=StaffWithActivation)
def approve(staff_id: StaffId, request: Request, principal: AdminPrincipal) -> StaffWithActivation:
    """Approve a pending registration: the User is made now (the same function the bot path uses)."""
    settings = runtime(request).settings

    def work(session):  # type: ignore[no-untyped-def]
        staff = staff_service.get(session, staff_id, lock=True)
        activation = staff_service.approve(session, staff, settings)
        session.flush()
        return StaffWithActivation(staff=staff_out(staff), activation=activation)

    return audited_write(principal.actor, "staff.approve", f"staff:{staff_id}", work, _issued)


@router.post("/staff/{staff_id}/reject", response_model=StaffOut)
def reject(
    staff_id: StaffId,
    principal: AdminPrincipal,
    body: Annotated[RejectRequest | None, Body()] = None,
) -> StaffOut:
    reason = body.reason if body else None
    return _transition(principal, staff_id, "staff.reject", lambda staff: staff_service.reject(staff, reason))


@router.post("/staff/{staff_id}/block", response_model=StaffOut)
def block(staff_id: StaffId, principal: AdminPrincipal) -> StaffOut:
    return _transition(principal, staff_id, "staff.block", staff_service.block)


@router.post("/staff/{staff_id}/unblock", response_model=StaffOut)
def unblock(staff_id: StaffId, principal: AdminPrincipal) -> StaffOut:
    return _transition(principal, staff_id, "staff.unblock", staff_service.unblock)


def _transition(principal: Principal, staff_id: int, action: str, apply: Callable[[Staff], None]) -> StaffOut:
    """Lock the staff record, apply one status transition, audit it, answer with the record."""

    def work(session):  # type: ignore[no-untyped-def]
        staff = staff_service.get(session, staff_id, lock=True)
        apply(staff)
        session.flush()
        return staff_out(staff)

    return audited_write(principal.actor, action, f"staff:{staff_id}", work)


@router.post("/staff/{staff_id}/activation-code", response_model=StaffWithNewActivation)
def reissue_code(staff_id: StaffId, request: Request, principal: AdminPrincipal) -> StaffWithNewActivation:
    """Issue a new activation code; the previous one stops working."""
    settings = runtime(request).settings

    def work(session):  # type: ignore[no-untyped-def]
        staff = staff_service.get(session, staff_id, lock=True)
        activation = users_service.reissue_code(session, staff, settings)  # ends the login's backoff
        session.flush()
        return StaffWithNewActivation(staff=staff_out(staff), activation=activation)

    return audited_write(principal.actor, "staff.activation_code", f"staff:{staff_id}", work, _issued)


def _issued(result: StaffWithActivation | StaffWithNewActivation) -> str | None:
    return result.activation.audit_detail() if result.activation else None


@router.patch("/positions/{code}", response_model=PositionOut)
def patch_position(code: PositionCode, patch: PositionPatch, principal: AdminPrincipal) -> PositionOut:
    """Change a position's ERP access and role; a new role applies to its existing accounts too."""

    def work(session):  # type: ignore[no-untyped-def]
        position, _ = positions_service.patch_position(session, code, patch)
        session.flush()
        return PositionOut.model_validate(position)

    changed = ",".join(sorted(patch.model_dump(exclude_unset=True))) or "nothing"
    return audited_write(principal.actor, "position.update", f"position:{code} ({changed})", work)


@router.get("/audit", response_model=AuditList)
def read_audit(
    principal: AdminPrincipal,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> AuditList:
    """The audit log, newest first."""
    return AuditList(items=[AuditEventOut.model_validate(e) for e in audit.recent(limit, offset)])
