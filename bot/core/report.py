"""Texts built from the ERP registration report: the `report` command's summary and the reminders."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any

from bot.i18n import translate

STATUSES = ("pending_approval", "awaiting_activation", "active", "rejected", "blocked", "no_erp_access")
# Long lists are cut: a chat message stays readable and under Rocket.Chat's message size limit.
LIST_LIMIT = 10
POSITION_LIMIT = 10


def parse_time(value: str | None) -> datetime | None:
    """An RFC 3339 time from the ERP, as an aware datetime (naive values are taken as UTC)."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def format_time(moment: datetime | None, tz: tzinfo, lang: str = "en", now: datetime | None = None) -> str:
    """A time in the company's zone, in the language's natural form: «5 декабря, 02:22 МСК»,
    "5 December, 02:22 MSK"; the year is shown when it is not the current one ("?" when unknown)."""
    if moment is None:
        return "?"
    local = moment.astimezone(tz)
    current = (now or datetime.now(UTC)).astimezone(tz)
    month = translate(lang, f"month.{local.month}")
    day = f"{local.day} {month}" + (f" {local.year}" if local.year != current.year else "")
    zone = local.tzname() or ""
    zone = translate(lang, f"zone.{zone}") if translate(lang, f"zone.{zone}") != f"zone.{zone}" else zone
    if zone[:1] in "+-":
        zone = f"UTC{zone}"
    return f"{day}, {local:%H:%M} {zone}".strip()


def format_age(lang: str, seconds: float) -> str:
    minutes = max(0, int(seconds // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return translate(lang, "age.days_hours", days=days, hours=hours)
    return translate(lang, "age.hours_minutes", hours=hours, minutes=minutes)


def _cut(lang: str, lines: list[str], limit: int) -> list[str]:
    if len(lines) <= limit:
        return lines
    return [*lines[:limit], translate(lang, "report.more", count=len(lines) - limit)]


def pending_line(lang: str, brief: dict[str, Any], now: datetime) -> str:
    created = parse_time(brief.get("created_at"))
    age = format_age(lang, (now - created).total_seconds()) if created else "?"
    return translate(
        lang,
        "report.pending_line",
        id=brief.get("id"),
        full_name=brief.get("full_name") or "?",
        username=brief.get("rocketchat_username") or "?",
        position=brief.get("position_code") or "?",
        age=age,
    )


def awaiting_line(lang: str, brief: dict[str, Any], now: datetime, tz: tzinfo) -> str:
    expires = parse_time(brief.get("activation_expires_at"))
    params = {
        "id": brief.get("id"),
        "full_name": brief.get("full_name") or "?",
        "username": brief.get("rocketchat_username") or "?",
        "position": brief.get("position_code") or "?",
    }
    if expires is None or expires <= now:
        return translate(lang, "report.awaiting_line_no_code", **params)
    return translate(lang, "report.awaiting_line", expires=format_time(expires, tz, lang, now), **params)


def report_text(lang: str, report: dict[str, Any], days: int, now: datetime, tz: tzinfo) -> str:
    """The `report` command's answer: a compact Markdown summary."""
    by_status = report.get("by_status") or {}
    statuses = " · ".join(
        f"{translate(lang, f'report.status.{status}')} {by_status.get(status, 0)}" for status in STATUSES
    )
    positions = [
        translate(
            lang,
            "report.position_item",
            name=p.get("name") or p.get("code"),
            code=p.get("code"),
            total=p.get("total"),
        )
        for p in report.get("by_position") or []
    ]
    if len(positions) > POSITION_LIMIT:
        positions = [
            *positions[:POSITION_LIMIT],
            translate(lang, "report.more", count=len(positions) - POSITION_LIMIT),
        ]
    waiting = report.get("waiting") or {}
    pending = waiting.get("pending_approval") or []
    awaiting = waiting.get("awaiting_activation") or []
    lines = [
        translate(
            lang,
            "report.header",
            since=format_time(parse_time(report.get("since")), tz, lang, now),
            until=format_time(parse_time(report.get("until")), tz, lang, now),
            days=days,
        ),
        translate(lang, "report.totals", total=report.get("total", 0), activated=report.get("activated", 0)),
        translate(lang, "report.by_status", items=statuses),
        translate(lang, "report.by_position", items=" · ".join(positions) or "—"),
        "",
        translate(lang, "report.pending_header", count=len(pending)),
        *(
            _cut(lang, [pending_line(lang, b, now) for b in pending], LIST_LIMIT)
            or [translate(lang, "report.none")]
        ),
        "",
        translate(lang, "report.awaiting_header", count=len(awaiting)),
        *(
            _cut(lang, [awaiting_line(lang, b, now, tz) for b in awaiting], LIST_LIMIT)
            or [translate(lang, "report.none")]
        ),
    ]
    return "\n".join(lines)


def digest_text(lang: str, overdue: list[dict[str, Any]], hours: float, now: datetime) -> str:
    """The reminder to the admins channel: requests waiting for approval longer than `hours`."""
    lines = _cut(lang, [pending_line(lang, b, now) for b in overdue], LIST_LIMIT)
    return translate(
        lang, "reminder.pending_digest", count=len(overdue), hours=f"{hours:g}", lines="\n".join(lines)
    )


def expiry_text(lang: str, brief: dict[str, Any], expires: datetime, tz: tzinfo, activation_url: str) -> str:
    """The reminder to an employee whose activation code runs out soon."""
    url = translate(lang, "code.url", url=activation_url) if activation_url else ""
    return translate(
        lang,
        "reminder.activation_expiry",
        expires=format_time(expires, tz, lang),
        url=url,
        username=brief.get("rocketchat_username") or "",
    )
