"""The hot read path: staff look-ups with one plain SQL query (no ORM identity map, no lazy loads).

The bot polls status often. On SQLite the read is in-process CPU work and runs inline on the event
loop (cheaper than a hop to the thread pool); on PostgreSQL it waits on the network, so it runs on the
event loop through async psycopg connections, where many reads overlap. Either way it is serialised
once, through the same pydantic model.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy import text
from sqlalchemy.engine import make_url

from erp.db import read_engine
from erp.schemas import StaffList, StaffOut
from erp.settings import get_settings

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
_PG_BY_ID = _SELECT + "WHERE s.id = %(id)s"
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
_PG_BY_FILTERS = {
    mask: _SELECT
    + "WHERE "
    + " AND ".join(f"s.{name} = %({name})s" for i, name in enumerate(FILTERS) if mask & (1 << i))
    + " LIMIT 1"
    for mask in range(1, 1 << len(FILTERS))
}


class PgReadPool:
    """A few autocommit async psycopg connections for the hot reads, used on the event loop itself: no
    hop to the thread pool and no GIL hand-offs between worker threads. At most `size` connections are
    in use; a read beyond that waits for one to come back (rather than opening a connection, a backend
    fork, per request). A connection that failed is dropped; a read is retried once on a fresh
    connection (a stale connection after a database restart). One pool per event loop."""

    def __init__(self, database_url: str, size: int = 8) -> None:
        url = make_url(database_url).set(drivername="postgresql")
        self._conninfo = url.render_as_string(hide_password=False)
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        self._slots = asyncio.Semaphore(size)

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        if self._idle:
            return self._idle.pop()
        return await psycopg.AsyncConnection.connect(
            self._conninfo, autocommit=True, connect_timeout=5, row_factory=namedtuple_row
        )

    async def _once(self, sql: str, params: dict[str, Any]) -> list[Any]:
        conn = await self._connect()
        try:
            cursor = await conn.execute(sql, params)
            rows = await cursor.fetchall()
        except BaseException:
            # Failed or cancelled mid-query: the connection's state is unknown, it is not reused.
            conn.pgconn.finish()
            raise
        if not conn.closed:
            self._idle.append(conn)
        return rows

    async def rows(self, sql: str, params: dict[str, Any]) -> list[Any]:
        async with self._slots:
            try:
                return await self._once(sql, params)
            except psycopg.OperationalError:
                return await self._once(sql, params)


_pg_pools: dict[asyncio.AbstractEventLoop, PgReadPool] = {}


def _pg() -> PgReadPool:
    loop = asyncio.get_running_loop()
    pool = _pg_pools.get(loop)
    if pool is None:
        for old in [old for old in _pg_pools if old.is_closed()]:
            del _pg_pools[old]
        pool = _pg_pools[loop] = PgReadPool(get_settings().database_url)
    return pool


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
            "activated_at": as_utc(row.activated_at),
        },
        "created_at": as_utc(row.created_at),
        "updated_at": as_utc(row.updated_at),
    }


def as_utc(value: Any) -> Any:
    """An aware UTC datetime from what a driver hands back (also used by services/reports.py)."""
    # SQLite hands back naive datetimes (stored as UTC) or ISO strings; pydantic parses both.
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value


def _is_sqlite() -> bool:
    return read_engine().dialect.name == "sqlite"


async def find_json(**filters: str) -> bytes:
    """`{"items": [Staff]}` as JSON bytes: zero or one record matching every filter (names in FILTERS)."""
    mask = sum(1 << i for i, name in enumerate(FILTERS) if name in filters)
    if _is_sqlite():
        with read_engine().connect() as conn:
            rows = list(conn.execute(_BY_FILTERS[mask], filters).all())
    else:
        rows = await _pg().rows(_PG_BY_FILTERS[mask], filters)
    return StaffList.model_validate({"items": [_record(r) for r in rows]}).model_dump_json().encode()


async def get_json(staff_id: int) -> bytes | None:
    if _is_sqlite():
        with read_engine().connect() as conn:
            rows = list(conn.execute(_BY_ID, {"id": staff_id}).all())
    else:
        rows = await _pg().rows(_PG_BY_ID, {"id": staff_id})
    row = rows[0] if rows else None
    return None if row is None else StaffOut.model_validate(_record(row)).model_dump_json().encode()
