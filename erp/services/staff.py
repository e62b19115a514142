"""Staff records: registration from the bot, status look-ups, and the admin transitions."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from erp.errors import ProblemError
from erp.models import Position, Staff, StaffStatus
from erp.schemas import Activation, StaffCreate
from erp.services.users import create_user_from_staff
from erp.settings import Settings


def find_conflict(session: Session, data: StaffCreate) -> Staff | None:
    return session.scalar(
        select(Staff).where(
            or_(
                Staff.rocketchat_user_id == data.rocketchat_user_id,
                Staff.rocketchat_username == data.rocketchat_username,
                Staff.email == data.email,
            )
        )
    )


def staff_exists(existing: Staff) -> ProblemError:
    return ProblemError(
        409,
        "staff_exists",
        "the Rocket.Chat user or the email is registered already",
        staff_id=existing.id,
    )


def register(session: Session, data: StaffCreate, settings: Settings) -> tuple[Staff, Activation | None]:
    position = session.scalar(select(Position).where(Position.code == data.position_code, Position.is_active))
    if position is None:
        raise ProblemError(422, "position_not_found", "unknown or inactive position code")
    # No pre-check for duplicates: the unique constraints decide, also between concurrent requests;
    # the caller turns the IntegrityError into 409 staff_exists (or an idempotent replay).
    if not position.erp_access:
        status = StaffStatus.no_erp_access
    elif position.requires_approval:
        status = StaffStatus.pending_approval
    else:
        status = StaffStatus.awaiting_activation
    staff = Staff(
        full_name=data.full_name,
        email=data.email,
        phone=data.phone,
        position=position,
        rocketchat_user_id=data.rocketchat_user_id,
        rocketchat_username=data.rocketchat_username,
        status=status,
        user=None,  # known empty: no lazy load when the account is made below
    )
    session.add(staff)
    session.flush()  # a concurrent duplicate fails here on the unique constraints
    activation = None
    if status == StaffStatus.awaiting_activation:
        activation = create_user_from_staff(session, staff, settings)
    return staff, activation


def get(session: Session, staff_id: int, *, lock: bool = False) -> Staff:
    query = select(Staff).where(Staff.id == staff_id)
    if lock:
        query = query.with_for_update(of=Staff)
    staff = session.scalar(query)
    if staff is None:
        raise ProblemError(404, "not_found", "no such staff record")
    return staff


def _require(staff: Staff, *allowed: StaffStatus) -> None:
    if staff.status not in allowed:
        raise ProblemError(409, "invalid_state", f"not allowed from status {staff.status}")


def approve(session: Session, staff: Staff, settings: Settings) -> Activation | None:
    _require(staff, StaffStatus.pending_approval)
    staff.status_reason = None
    if not staff.position.erp_access:
        staff.status = StaffStatus.no_erp_access
        return None
    return create_user_from_staff(session, staff, settings)


def reject(staff: Staff, reason: str | None) -> None:
    _require(staff, StaffStatus.pending_approval)
    staff.status = StaffStatus.rejected
    staff.status_reason = reason


def block(staff: Staff) -> None:
    _require(
        staff,
        StaffStatus.pending_approval,
        StaffStatus.awaiting_activation,
        StaffStatus.active,
        StaffStatus.no_erp_access,
    )
    staff.status = StaffStatus.blocked
    if staff.user is not None:
        staff.user.is_active = False


def unblock(staff: Staff) -> None:
    """Back to the status the record's facts imply: an account decides, else the position."""
    _require(staff, StaffStatus.blocked)
    staff.status_reason = None
    user = staff.user
    if user is not None:
        user.is_active = user.activated_at is not None
        staff.status = StaffStatus.active if user.activated_at else StaffStatus.awaiting_activation
    elif staff.position.erp_access:
        # No account yet: an admin decides again rather than an account appearing silently.
        staff.status = StaffStatus.pending_approval
    else:
        staff.status = StaffStatus.no_erp_access
