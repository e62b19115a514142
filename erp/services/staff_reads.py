"""The hot read path: staff look-ups with one plain SQL query (no ORM identity map, no lazy loads).

The bot polls status often. On SQLite the read is in-process CPU work and runs inline on the event
loop (cheaper than a hop to the thread pool); on PostgreSQL it waits on the network, so it runs in the
thread pool where many reads overlap. Either way it is serialised once, through the same pydantic model.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from erp.db import read_engine
from erp.schemas import StaffList, StaffOut

# Plain SQL: ORM-annotated columns cost ~20 expression coercions per call on this path.
_SELECT = """
SELECT s.id, s.full_name, s.email, s.phone, s.rocketchat_user_id, s.rocketchat_username, s.status,
       s.status_reason, s.created_at, s.updated_at,
       p.code, p.name, p.department, p.erp_access, p.erp_role, p.requires_approval, p.is_active,
       u.login, u.role, u.is_active AS user_is_active, u.activated_at
FROM staff s JOIN positions p ON p.id = s.position_id LEFT JOIN users u ON u.staff_id = s.id
"""
FILTERS = ("rocketchat_username", "rocketchat_user_id", "email")
_BY_ID = text(_SELECT + "WHERE s.id = :id")
# One prepared statement per combination of filters (column names come from FILTERS only).
_BY_FILTERS = {
    mask: text(
        _SELECT
        + "WHERE "
        + " AND ".join(f"s.{name} = :{name}" for i, name in enumerate(FILTERS) if mask & (1 << i))
        + " LIMIT 1"
    )
    for mask in range(1, 1 << len(FILTERS))
}


def _record(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "full_name": row.full_name,
        "email": row.email,
        "phone": row.phone,
        "position": {
            "code": row.code,
            "name": row.name,
            "department": row.department,
            "erp_access": row.erp_access,
            "erp_role": row.erp_role,
            "requires_approval": row.requires_approval,
            "is_active": row.is_active,
        },
        "rocketchat_user_id": row.rocketchat_user_id,
        "rocketchat_username": row.rocketchat_username,
        "status": row.status,
        "status_reason": row.status_reason,
        "user": None
        if row.login is None
        else {
            "login": row.login,
            "role": row.role,
            "is_active": row.user_is_active,
            "activated_at": _utc(row.activated_at),
        },
        "created_at": _utc(row.created_at),
        "updated_at": _utc(row.updated_at),
    }


T = TypeVar("T")


async def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    if read_engine().dialect.name == "sqlite":
        return fn(*args, **kwargs)
    return await run_in_threadpool(fn, *args, **kwargs)


def _utc(value: Any) -> Any:
    # SQLite hands back naive datetimes (stored as UTC) or ISO strings; pydantic parses both.
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value


def find_json(**filters: str) -> bytes:
    """`{"items": [Staff]}` as JSON bytes: zero or one record matching every filter (names in FILTERS)."""
    mask = sum(1 << i for i, name in enumerate(FILTERS) if name in filters)
    with read_engine().connect() as conn:
        rows = conn.execute(_BY_FILTERS[mask], filters).all()
    return StaffList.model_validate({"items": [_record(r) for r in rows]}).model_dump_json().encode()


def get_json(staff_id: int) -> bytes | None:
    with read_engine().connect() as conn:
        row = conn.execute(_BY_ID, {"id": staff_id}).first()
    return None if row is None else StaffOut.model_validate(_record(row)).model_dump_json().encode()
