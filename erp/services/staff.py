"""Staff records: registration from the bot, status look-ups, and the admin transitions."""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, or_, select
from sqlalchemy.orm import Session

from erp.errors import ProblemError
from erp.models import Position, Staff, StaffStatus, utcnow
from erp.schemas import Activation, PositionOut, StaffCreate, StaffOut
from erp.services.users import create_account, create_user_from_staff
from erp.settings import Settings


def find_conflict(conn: Connection, data: StaffCreate) -> int | None:
    """The id of a record that holds this Rocket.Chat user or email already, if any."""
    return conn.scalar(
        select(Staff.id)
        .where(
            or_(
                Staff.rocketchat_user_id == data.rocketchat_user_id,
                Staff.rocketchat_username == data.rocketchat_username,
                Staff.email == data.email,
            )
        )
        .limit(1)
    )


def staff_exists(staff_id: int) -> ProblemError:
    return ProblemError(
        409,
        "staff_exists",
        "the Rocket.Chat user or the email is registered already",
        staff_id=staff_id,
    )


_staff = Staff.__table__
_positions = Position.__table__
_ACTIVE_POSITION = select(_positions).where(_positions.c.code == bindparam("code"), _positions.c.is_active)
_INSERT_STAFF = _staff.insert().returning(_staff.c.id)


def register(conn: Connection, data: StaffCreate, settings: Settings) -> tuple[StaffOut, Activation | None]:
    """The bot's registration: the Staff record and, when the position grants ERP access without
    approval, its account. Core statements on the caller's transaction: this is the write hot path."""
    position = conn.execute(_ACTIVE_POSITION, {"code": data.position_code}).first()
    if position is None:
        raise ProblemError(422, "position_not_found", "unknown or inactive position code")
    if not position.erp_access:
        status = StaffStatus.no_erp_access
    elif position.requires_approval:
        status = StaffStatus.pending_approval
    else:
        status = StaffStatus.awaiting_activation
    now = utcnow()
    record = {
        "full_name": data.full_name,
        "email": data.email,
        "phone": data.phone,
        "rocketchat_user_id": data.rocketchat_user_id,
        "rocketchat_username": data.rocketchat_username,
        "status": status,
        "status_reason": None,
        "created_at": now,
        "updated_at": now,
    }
    # No pre-check for duplicates: the unique constraints decide, also between concurrent requests;
    # the caller turns the IntegrityError into 409 staff_exists (or an idempotent replay).
    staff_id = conn.execute(_INSERT_STAFF, {**record, "position_id": position.id}).scalar_one()
    activation = user = None
    if status == StaffStatus.awaiting_activation:
        activation = create_account(conn, staff_id, data.full_name, data.email, position.erp_role, settings)
        user = {"login": activation.login, "role": position.erp_role or "employee", "is_active": False,
                "activated_at": None}  # fmt: skip
    position_out = {name: getattr(position, name) for name in PositionOut.model_fields}
    staff = StaffOut.model_validate({**record, "id": staff_id, "position": position_out, "user": user})
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
