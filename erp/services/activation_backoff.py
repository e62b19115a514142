"""Per-login backoff after wrong activation codes, kept in the ERP database so every replica sees it.

`free` wrong codes on one login (from anywhere, through any replica) cost nothing; after that each
further attempt waits 1, 2, 4 … seconds (at most `max_seconds`) after the last failure. A slowdown a
stranger can cause, never a lockout: the wait is bounded and runs out on its own; a successful
activation and every new code end it (an account made for the login, a code reissued), so wrong codes
tried on a login before its account existed do not carry over to the employee. Entries idle for
`forget_seconds` (a day) count as gone.

The key is the case-folded login *string*, also for logins no account has: the answer must be the same
whether a login exists or not. A failure is one atomic upsert (`INSERT … ON CONFLICT DO UPDATE SET
failures = failures + 1`, SQLite and PostgreSQL alike), so two replicas failing at once both count.
Times are UTC wall clock (replicas share them, unlike monotonic clocks). The table stays bounded:
now and then (at most once per `prune_interval_seconds` per process) a failure deletes the forgotten
rows, then the oldest beyond `max_rows`.

Functions raise no HTTP errors; database errors propagate (the caller fails closed).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, case, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from erp.db import read_engine, write_connection
from erp.models import ActivationBackoff, utcnow
from erp.settings import Settings

log = logging.getLogger("erp.activation")

TABLE = ActivationBackoff.__table__
MAX_LOGIN_LENGTH = 64  # ActivateRequest.login; case folding at most triples it (the column holds 256)
_UPSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


@dataclass(frozen=True)
class Policy:
    free: int
    max_seconds: float
    forget_seconds: float = 86400.0
    max_rows: int = 100_000

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(settings.activation_max_attempts, settings.activation_backoff_max_seconds)

    def wait(self, failures: int) -> float:
        """The wait after the last of `failures` wrong codes: 0 while free, then 1, 2, 4 … capped."""
        over = failures - self.free
        return 0.0 if over < 0 else min(self.max_seconds, float(2 ** min(over, 32)))


def login_key(login: str) -> str:
    if not 1 <= len(login) <= MAX_LOGIN_LENGTH:
        raise ValueError(f"a login has 1 to {MAX_LOGIN_LENGTH} characters")
    return login.casefold()


def retry_after(conn: Connection | Session, login: str, policy: Policy, now: datetime | None = None) -> float:
    """0 when an attempt on `login` may be made now, else the seconds to wait."""
    now = now or utcnow()
    query = select(TABLE.c.failures, TABLE.c.last_failure_at).where(TABLE.c.login_key == login_key(login))
    row = conn.execute(query).first()
    if row is None:
        return 0.0
    failures, last = row
    # Another replica's clock a little ahead must not stretch the wait beyond the policy's.
    elapsed = max(0.0, (now - last).total_seconds())
    if elapsed > policy.forget_seconds:
        return 0.0
    return max(0.0, policy.wait(failures) - elapsed)


def record_failure(
    conn: Connection | Session, login: str, policy: Policy, now: datetime | None = None
) -> int:
    """Count one wrong code on `login` (atomically); the login's failures so far, this one included."""
    now = now or utcnow()
    forgotten = now - timedelta(seconds=policy.forget_seconds)
    dialect = conn.get_bind().dialect.name if isinstance(conn, Session) else conn.dialect.name
    insert = _UPSERTS[dialect](TABLE).values(login_key=login_key(login), failures=1, last_failure_at=now)
    upsert = insert.on_conflict_do_update(
        index_elements=[TABLE.c.login_key],
        set_={
            "failures": case((TABLE.c.last_failure_at < forgotten, 1), else_=TABLE.c.failures + 1),
            "last_failure_at": insert.excluded.last_failure_at,
        },
    ).returning(TABLE.c.failures)
    return int(conn.execute(upsert).scalar_one())


def reset(conn: Connection | Session, login: str) -> int:
    """End the backoff of `login` (a successful activation, a new code): in the caller's transaction.

    The wrong codes it had counted (0 when there was no row): for the audit of a new code, where wrong
    codes on a login before its account existed are a stranger's (pre-poisoning the backoff)."""
    cleared = delete(TABLE).where(TABLE.c.login_key == login_key(login)).returning(TABLE.c.failures)
    return int(conn.execute(cleared).scalar() or 0)


def prune(conn: Connection | Session, policy: Policy, now: datetime | None = None) -> int:
    """Delete the forgotten rows, then the oldest beyond `policy.max_rows`; the number deleted."""
    now = now or utcnow()
    forgotten = now - timedelta(seconds=policy.forget_seconds)
    deleted = conn.execute(delete(TABLE).where(TABLE.c.last_failure_at < forgotten)).rowcount or 0
    newest_first = select(TABLE.c.last_failure_at).order_by(TABLE.c.last_failure_at.desc())
    cutoff = conn.execute(newest_first.offset(policy.max_rows).limit(1)).scalar()
    if cutoff is not None:
        deleted += conn.execute(delete(TABLE).where(TABLE.c.last_failure_at <= cutoff)).rowcount or 0
    return deleted


@dataclass
class LoginBackoff:
    """The process's handle on the shared backoff: its policy and when this process prunes next.

    `retry_after` and `fail` open their own short transactions (blocking: call them off the event loop);
    `reset` runs in the caller's transaction (module function above).
    """

    policy: Policy
    prune_interval_seconds: float = 60.0
    clock: Callable[[], datetime] = utcnow
    _next_prune: float = field(default=0.0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginBackoff:
        return cls(Policy.from_settings(settings))

    def retry_after(self, login: str) -> float:
        with read_engine().connect() as conn:
            return retry_after(conn, login, self.policy, self.clock())

    def fail(self, login: str) -> int:
        now = self.clock()
        with write_connection() as conn:
            failures = record_failure(conn, login, self.policy, now)
        if self._prune_due():
            self._prune(now)
        return failures

    def _prune_due(self) -> bool:
        now = time.monotonic()
        with self._lock:
            if now < self._next_prune:
                return False
            self._next_prune = now + self.prune_interval_seconds
            return True

    def _prune(self, now: datetime) -> None:
        # Housekeeping in its own transaction: its failure (two replicas pruning at once on PostgreSQL
        # may deadlock, one loses) must not fail the request; the next interval tries again.
        try:
            with write_connection() as conn:
                deleted = prune(conn, self.policy, now)
        except SQLAlchemyError as exc:
            log.warning("activation backoff: pruning failed (%s)", type(exc).__name__)
            return
        if deleted:
            log.info("activation backoff: %d idle or surplus logins forgotten", deleted)
