"""Audit log: every mutating request and every authentication failure. Never secrets; codes only "issued"."""

from __future__ import annotations

import logging
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


def _values(
    actor: Actor, action: str, outcome: str, target: str | None, detail: str | None
) -> dict[str, object]:
    return {
        "at": utcnow(),
        "key_name": actor.key_name,
        "source_ip": actor.source_ip,
        "action": action,
        "target": target,
        "outcome": outcome,
        "request_id": actor.request_id,
        "detail": (detail or None) and detail[:500],
    }


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
    log.info(
        "audit action=%s outcome=%s target=%s key=%s ip=%s request_id=%s",
        action,
        outcome,
        target,
        actor.key_name,
        actor.source_ip,
        actor.request_id,
    )


def recent(limit: int, offset: int) -> list[AuditEvent]:
    with read_session() as session:
        query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit).offset(offset)
        return list(session.scalars(query))
