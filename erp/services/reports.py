"""Registration report: counts by status and position over a period, and who is still waiting.

The counting is done by the database (GROUP BY / COUNT), never by loading records: one statement for
the records created in the period, one for the accounts activated in it. The waiting lists take one
more statement, capped per status by a window function. Timestamps are compared through the columns'
UTCDateTime type, so SQLite (naive UTC text) and PostgreSQL (timestamptz) see the same bounds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from erp.db import read_engine
from erp.errors import ProblemError
from erp.models import Position, Staff, StaffStatus, User
from erp.schemas import (
    PositionCount,
    RegistrationReport,
    StaffBrief,
    StatusCounts,
    WaitingLists,
)
from erp.services.staff_reads import as_utc

DEFAULT_PERIOD = timedelta(days=7)
MAX_PERIOD = timedelta(days=366)
WAITING_LIMIT = 100
WAITING_STATUSES = (StaffStatus.pending_approval, StaffStatus.awaiting_activation)

_staff = Staff.__table__
_positions = Position.__table__
_users = User.__table__


def _invalid(field: str, message: str) -> ProblemError:
    return ProblemError(422, "validation_error", message, errors=[{"loc": ["query", field], "msg": message}])


def period(since: datetime | None, until: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    """The report's [since, until) in UTC: `until` defaults to now, `since` to `until` - 7 days.

    Both must be aware (the query parser guarantees it), since < until, and at most 366 days apart.
    """
    try:
        end = (until or now).astimezone(UTC)
    except OverflowError:
        raise _invalid("until", "until is out of the representable range") from None
    try:
        start = since.astimezone(UTC) if since is not None else end - DEFAULT_PERIOD
    except OverflowError:
        raise _invalid("since", "since is out of the representable range") from None
    if start >= end:
        raise _invalid("since", "since must be earlier than until")
    if end - start > MAX_PERIOD:
        raise _invalid("since", "the period is at most 366 days")
    return start, end


def _created_in(start: datetime, end: datetime):  # type: ignore[no-untyped-def]
    return _staff.c.created_at >= start, _staff.c.created_at < end


_COUNTS_BY_STATUS_AND_POSITION = (
    select(_staff.c.status, _positions.c.code, _positions.c.name, func.count().label("n"))
    .select_from(_staff.join(_positions, _positions.c.id == _staff.c.position_id))
    .group_by(_staff.c.status, _positions.c.code, _positions.c.name)
)
_ACTIVATED = select(func.count()).select_from(_users)

# Oldest first within each waiting status, at most WAITING_LIMIT each: ranked in one pass.
_ranked = (
    select(
        _staff.c.id,
        _staff.c.full_name,
        _staff.c.rocketchat_username,
        _staff.c.status,
        _staff.c.created_at,
        _positions.c.code.label("position_code"),
        _users.c.activation_expires_at,
        _users.c.activation_code_hash.is_not(None).label("has_code"),
        func.row_number()
        .over(partition_by=_staff.c.status, order_by=(_staff.c.created_at, _staff.c.id))
        .label("rank"),
    )
    .select_from(
        _staff.join(_positions, _positions.c.id == _staff.c.position_id).outerjoin(
            _users, _users.c.staff_id == _staff.c.id
        )
    )
    .where(_staff.c.status.in_([s.value for s in WAITING_STATUSES]))
    .subquery()
)
_WAITING = (
    select(_ranked)
    .where(_ranked.c.rank <= WAITING_LIMIT)
    .order_by(_ranked.c.status, _ranked.c.created_at, _ranked.c.id)
)


def registrations(start: datetime, end: datetime, now: datetime) -> RegistrationReport:
    """The report for [start, end); `now` decides whether an activation code is still live."""
    with read_engine().connect() as conn:
        groups = conn.execute(_COUNTS_BY_STATUS_AND_POSITION.where(*_created_in(start, end))).all()
        activated = conn.scalar(_ACTIVATED.where(_users.c.activated_at >= start, _users.c.activated_at < end))
        waiting_rows = conn.execute(_WAITING).all()

    by_status = dict.fromkeys(StatusCounts.model_fields, 0)
    by_position: dict[str, PositionCount] = {}
    for status, code, name, n in groups:
        by_status[status] = by_status.get(status, 0) + n
        entry = by_position.setdefault(code, PositionCount(code=code, name=name, total=0))
        entry.total += n
    waiting: dict[str, list[StaffBrief]] = {s.value: [] for s in WAITING_STATUSES}
    for row in waiting_rows:
        expires = as_utc(row.activation_expires_at)
        live = bool(row.has_code) and expires is not None and expires > now
        waiting[row.status].append(
            StaffBrief(
                id=row.id,
                full_name=row.full_name,
                rocketchat_username=row.rocketchat_username,
                position_code=row.position_code,
                status=row.status,
                created_at=as_utc(row.created_at),
                activation_expires_at=expires if live else None,
            )
        )
    return RegistrationReport(
        since=start,
        until=end,
        total=sum(n for *_, n in groups),
        by_status=StatusCounts(**by_status),
        by_position=sorted(by_position.values(), key=lambda p: (-p.total, p.code)),
        activated=activated or 0,
        waiting=WaitingLists(**waiting),
    )
