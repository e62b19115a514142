"""Admin scope: reports. Reading one is audited; it changes nothing, so it takes no Idempotency-Key."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from erp.api.deps import AdminPrincipal
from erp.api.problems import responses
from erp.models import utcnow
from erp.schemas import RegistrationReport, Rfc3339Timestamp
from erp.services import audit, reports

router = APIRouter(prefix="/api/bot/v1", responses=responses(401, 403, 422, 429), tags=["admin"])


@router.get("/reports/registrations", response_model=RegistrationReport)
def registrations_report(
    principal: AdminPrincipal,
    since: Annotated[
        Rfc3339Timestamp | None,
        Query(description="Period start, inclusive (RFC 3339 with a time zone); default until - 7 days"),
    ] = None,
    until: Annotated[
        Rfc3339Timestamp | None,
        Query(description="End of the period, exclusive (RFC 3339 with a time zone); default now"),
    ] = None,
) -> RegistrationReport:
    """Registrations created in [since, until) counted by current status and position, accounts activated
    in the period, and every record still waiting for an admin or for activation (oldest first, at most
    100 each, regardless of the period). The period is at most 366 days."""
    now = utcnow()
    start, end = reports.period(since, until, now)
    report = reports.registrations(start, end, now)
    target = f"registrations:{start.isoformat()}/{end.isoformat()}"
    audit.record(principal.actor, "report.registrations", "ok", target, f"total={report.total}")
    return report
