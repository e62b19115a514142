"""Audit log: every mutating request and every authentication failure. Never secrets; codes only "issued"."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from sqlalchemy import Connection, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from erp.db import read_session, write_connection
from erp.models import AuditEvent, utcnow

log = logging.getLogger("erp.audit")


@dataclass
class Actor:
    """Who made a request: the key (if any), where from, and the request id to correlate logs."""

    key_name: str | None
    source_ip: str | None
    request_id: str | None
    key_id: int | None = None


def clean(value: str | None, limit: int) -> str | None:
    """Fit a value to its column: control characters (a NUL fails a PostgreSQL insert; CR/LF forge log
    lines) are escaped as \\xNN, and the result is cut to `limit` characters. Any request path fits."""
    if not value:
        return None
    if not value.isprintable():
        value = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in value)
    return value if len(value) <= limit else value[: limit - 1] + "…"


_COLUMNS = {c.name: c.type.length for c in AuditEvent.__table__.columns if getattr(c.type, "length", None)}


def _values(
    actor: Actor, action: str, outcome: str, target: str | None, detail: str | None
) -> dict[str, object]:
    raw = {
        "key_name": actor.key_name,
        "source_ip": actor.source_ip,
        "action": action,
        "target": target,
        "outcome": outcome,
        "request_id": actor.request_id,
        "detail": detail,
    }
    values: dict[str, object] = {name: clean(value, _COLUMNS[name]) for name, value in raw.items()}
    values["at"] = utcnow()
    return values


_INSERT = AuditEvent.__table__.insert()


def add(
    tx: Session | Connection,
    actor: Actor,
    action: str,
    outcome: str,
    target: str | None = None,
    detail: str | None = None,
) -> None:
    """Write the event in the caller's transaction (an ORM session's, or a Core connection's on the
    registration hot path): a plain INSERT, no unit of work."""
    conn = tx.connection() if isinstance(tx, Session) else tx
    conn.execute(_INSERT, _values(actor, action, outcome, target, detail))


def record(
    actor: Actor, action: str, outcome: str, target: str | None = None, detail: str | None = None
) -> None:
    """Write one event in its own transaction (failures: the request's own transaction was rolled back)."""
    try:
        with write_connection() as conn:
            add(conn, actor, action, outcome, target, detail)
    except SQLAlchemyError:
        # Losing an audit row must not turn a 4xx into a 500; the structured log line still carries it.
        log.exception("audit write failed")
    fields = {
        "event": "audit",
        "action": action,
        "outcome": outcome,
        "target": target,
        "key": actor.key_name,
        "ip": actor.source_ip,
        "request_id": actor.request_id,
    }
    log.info("audit %s %s", action, outcome, extra={"fields": fields})


def recent(limit: int, offset: int) -> list[AuditEvent]:
    with read_session() as session:
        query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit).offset(offset)
        return list(session.scalars(query))


class RefusalTally:
    """Refusals nobody authenticated for (malformed bodies, refused networks, 413, 429) are counted, not
    written one by one: a flood from one source would otherwise write a row per request (security
    finding 2). Per (action, outcome, source) the first refusal of each interval is written at once
    with its request id; the others are summed into one row when the interval ends.
    """

    def __init__(self, interval_seconds: float, max_entries: int = 10000) -> None:
        self.interval = interval_seconds
        self.max_entries = max_entries
        self._counts: dict[tuple[str, str, str | None], list] = {}  # key -> [count, first_target, started]
        self._lock = threading.Lock()
        self._next_scan = 0.0

    def add(self, actor: Actor, action: str, outcome: str, target: str | None) -> bool:
        """Count one refusal; True when it is the first of its kind in the interval (write it now)."""
        key = (action, outcome, actor.source_ip)
        with self._lock:
            entry = self._counts.get(key)
            if entry is None:
                if len(self._counts) >= self.max_entries:
                    return False  # counted nowhere but in the metrics: the table is full of others
                self._counts[key] = [0, target, time.monotonic()]
                return True
            entry[0] += 1
            return False

    def due(self, force: bool = False) -> list[tuple[tuple[str, str, str | None], int, str | None]]:
        """Take the tallies whose interval has ended (all with `force`) that counted more refusals."""
        now = time.monotonic()
        out: list[tuple[tuple[str, str, str | None], int, str | None]] = []
        with self._lock:
            if not force and now < self._next_scan:
                return out
            self._next_scan = now + min(1.0, self.interval)
            for key, (count, target, started) in list(self._counts.items()):
                if force or now - started >= self.interval:
                    del self._counts[key]
                    if count:
                        out.append((key, count, target))
        return out

    def flush(self, force: bool = False) -> None:
        for (action, outcome, source_ip), count, target in self.due(force):
            actor = Actor(None, source_ip, None)
            record(actor, action, outcome, target, f"{count} more refused in {self.interval:.0f} s (summed)")

    def refused(self, actor: Actor, action: str, outcome: str, target: str | None) -> None:
        """Count a refusal; write it when it is the first of its interval; write the sums that are due."""
        if self.add(actor, action, outcome, target):
            record(actor, action, outcome, target)
        self.flush()
