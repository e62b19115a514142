"""Reminders from the ERP's list of who is waiting, run by the app's background loop.

- to the admins channel: one digest of the registrations waiting for approval longer than a threshold,
  at most once per repeat interval;
- to an employee by DM: their activation code expires soon and the account is still not activated,
  once per code (a reissued code has a new expiry, so it gets its own reminder).

Reminders go out only in working time (`WorkCalendar`); outside it they wait for the next working period.
What was sent is claimed in the store before sending, so a restart or a second replica sends nothing
twice; a failed send gives its claim back and is retried next round.
"""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bot import metrics
from bot.core.ports import ChatPort
from bot.core.report import digest_text, expiry_text, parse_time
from bot.erp_client import ErpClient, ErpError, ErpUnavailable
from bot.i18n import PERSON_LANG_KEY
from bot.logging import new_request_id, request_id_var
from bot.store import Store
from bot.work_calendar import WorkCalendar

log = logging.getLogger("bot.reminders")

DIGEST_KEY = "reminder:pending_digest"
# An expiry reminder's claim outlives the code by this much (the code no longer qualifies by then).
EXPIRY_CLAIM_GRACE_SECONDS = 24 * 3600.0


class Reminders:
    def __init__(
        self,
        *,
        store: Store,
        erp: ErpClient,
        chat: ChatPort,
        calendar: WorkCalendar,
        admins_channel: str,
        language: str = "ru",
        pending_after_hours: float = 24.0,
        repeat_hours: float = 24.0,
        expiry_within_hours: float = 24.0,
        activation_url: str = "",
        clock: Any = time.time,
    ) -> None:
        self.store, self.erp, self.chat, self.calendar = store, erp, chat, calendar
        self.admins_channel, self.language, self.activation_url = admins_channel, language, activation_url
        self.pending_after = pending_after_hours * 3600
        self.pending_after_hours = pending_after_hours
        self.repeat = repeat_hours * 3600
        self.expiry_within = expiry_within_hours * 3600
        self.clock = clock

    async def run_once(self) -> dict[str, int]:
        """One round; returns how many reminders of each kind went out (never raises on ERP trouble)."""
        token = request_id_var.set(new_request_id())
        try:
            return await self._round()
        finally:
            request_id_var.reset(token)

    async def _round(self) -> dict[str, int]:
        sent = {"pending_digest": 0, "activation_expiry": 0}
        now = datetime.fromtimestamp(self.clock(), UTC)
        if not self.calendar.is_working(now):
            metrics.REMINDER_ROUNDS.labels("off_hours").inc()
            log.debug("reminders wait for working time", extra={"next": str(self.calendar.next_working(now))})
            return sent
        try:
            # Only the waiting lists matter here; a one-day period keeps the ERP's counting cheap.
            report = await self.erp.registration_report(since=now - timedelta(days=1), until=now)
        except ErpUnavailable as exc:
            metrics.REMINDER_ROUNDS.labels("erp_unavailable").inc()
            log.warning("reminders skipped: ERP unavailable", extra={"reason": str(exc)[:200]})
            return sent
        except ErpError as exc:
            metrics.REMINDER_ROUNDS.labels("erp_error").inc()
            log.warning("reminders skipped: ERP refused the report", extra={"code": exc.code})
            return sent
        waiting = report.get("waiting") or {}
        sent["pending_digest"] = await self._digest(waiting.get("pending_approval") or [], now)
        for brief in waiting.get("awaiting_activation") or []:
            sent["activation_expiry"] += await self._expiry(brief, now)
        metrics.REMINDER_ROUNDS.labels("sent" if any(sent.values()) else "nothing").inc()
        return sent

    async def _digest(self, pending: list[dict[str, Any]], now: datetime) -> int:
        overdue = []
        for brief in pending:
            created = parse_time(brief.get("created_at"))
            if created is not None and (now - created).total_seconds() >= self.pending_after:
                overdue.append(brief)
        if not overdue:
            return 0
        stamp = now.timestamp()
        until = stamp + self.repeat
        if not await self.store.claim(DIGEST_KEY, until, stamp):
            return 0  # sent within the repeat interval (by this or another replica)
        text = digest_text(self.language, overdue, self.pending_after_hours, now)
        try:
            await self.chat.send_to_channel(self.admins_channel, text)
        except Exception as exc:
            await self._failed("pending_digest", DIGEST_KEY, until, exc)
            return 0
        metrics.REMINDERS.labels("pending_digest").inc()
        ids = ",".join(str(b.get("id")) for b in overdue[:20])
        log.info("reminder sent", extra={"kind": "pending_digest", "count": len(overdue)})
        await self._audit("-", "pending_digest", f"staff {ids}")
        return 1

    async def _expiry(self, brief: dict[str, Any], now: datetime) -> int:
        expires = parse_time(brief.get("activation_expires_at"))
        username = brief.get("rocketchat_username")
        if expires is None or not username:
            return 0
        left = (expires - now).total_seconds()
        if left <= 0 or left > self.expiry_within:
            return 0
        # Keyed by the expiry itself: a reissued code (new expiry) is a new reminder.
        key = f"reminder:activation_expiry:{brief.get('id')}:{expires.timestamp():.0f}"
        until = expires.timestamp() + EXPIRY_CLAIM_GRACE_SECONDS
        if not await self.store.claim(key, until, now.timestamp()):
            return 0
        lang = self.language
        with contextlib.suppress(Exception):  # the language the person registered in, if known
            lang = await self.store.get_value(PERSON_LANG_KEY + username) or lang
        text = expiry_text(lang, brief, expires, self.calendar.tz, self.activation_url)
        try:
            room_id = await self.chat.direct_room(username)
            await self.chat.send(room_id, text)
        except Exception as exc:
            await self._failed("activation_expiry", key, until, exc)
            return 0
        metrics.REMINDERS.labels("activation_expiry").inc()
        log.info("reminder sent", extra={"kind": "activation_expiry", "user": username})
        await self._audit(username, "activation_expiry", f"staff {brief.get('id')}")
        return 1

    async def _failed(self, kind: str, key: str, until: float, exc: Exception) -> None:
        metrics.REMINDER_FAILURES.labels(kind).inc()
        log.warning(
            "reminder not sent, retried next round", extra={"kind": kind, "reason": type(exc).__name__}
        )
        with contextlib.suppress(Exception):  # if the store fails too, the claim ends by itself
            await self.store.release(key, until)

    async def _audit(self, username: str, kind: str, detail: str) -> None:
        with contextlib.suppress(Exception):
            await self.store.add_audit(
                {
                    "request_id": request_id_var.get(),
                    "username": username,
                    "command": "reminder",
                    "outcome": kind,
                    "detail": detail,
                }
            )
