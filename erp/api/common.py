"""Helpers shared by the routers: serialising records and running an audited write."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from erp.db import write_session
from erp.errors import ProblemError
from erp.models import Staff
from erp.schemas import StaffOut
from erp.services import audit

T = TypeVar("T")


def staff_out(staff: Staff) -> StaffOut:
    return StaffOut.model_validate(staff)


def audited_write(
    actor: audit.Actor,
    action: str,
    target: str,
    work: Callable[..., T],
    detail: Callable[[T], str | None] | None = None,
) -> T:
    """Run `work(session)` in one transaction with its audit row (its detail `detail(result)`); a
    refusal is audited on its own."""
    try:
        with write_session() as session:
            result = work(session)
            audit.add(session, actor, action, "ok", target, detail(result) if detail else None)
        return result
    except ProblemError as exc:
        audit.record(actor, action, exc.code, target, exc.detail)
        raise
