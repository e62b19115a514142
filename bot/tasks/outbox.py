"""Task-tracker events through an outbox in the bot's store, so the tracker never holds up a registration.

The router only *enqueues* (`registration_pending`, `registration_decided`): one row in the store, no
network. A background loop (`run_forever`, started by the app) delivers the rows oldest first:

- order per staff id: a later event waits while an earlier one for the same person is undelivered
  (a close never overtakes its open); other people's events go on;
- a failure the tracker may get over (down, timeout, 5xx, 429) is retried with exponential backoff;
  after `max_attempts` attempts, or at once when the tracker calls the request malformed, the event
  is dead-lettered (kept in the store, logged as an error, counted);
- the rows are in the store, so with SQLite or Redis they survive a restart;
- idempotent: the task key is stored the moment the tracker returns it; an open whose key is known is
  not sent again. If the tracker created a task but its answer was lost, a retry first asks the tracker
  for a task with the person's label (Jira) before creating one;
- one deliverer at a time across replicas (a claim in the store, like the reminders).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from datetime import UTC, tzinfo
from typing import Any

from bot import metrics
from bot.core.report import format_time, parse_time
from bot.i18n import translate
from bot.logging import new_request_id, request_id_var
from bot.store import Store
from bot.tasks.base import TaskClosing, TaskSpec, TaskTracker, TrackerError

log = logging.getLogger("bot.tasks")

TASK_KEY_PREFIX = "tasks:key:"  # + staff id -> the task's key in the tracker
LEASE_KEY = "tasks:outbox-delivery"
LABEL_PREFIX = "photomatrix-staff-"


class TaskOutbox:
    def __init__(
        self,
        *,
        store: Store,
        tracker: TaskTracker,
        language: str = "ru",
        timezone: tzinfo = UTC,
        max_attempts: int = 10,
        backoff_base: float = 5.0,
        backoff_max: float = 600.0,
        lease_seconds: float = 300.0,
        batch: int = 100,
        clock: Any = time.time,
    ) -> None:
        self.store, self.tracker, self.language = store, tracker, language
        self.timezone = timezone  # the company's: the times tasks show
        self.max_attempts, self.backoff_base, self.backoff_max = max_attempts, backoff_base, backoff_max
        self.lease_seconds, self.batch, self.clock = lease_seconds, batch, clock
        self._wake = asyncio.Event()

    @property
    def backend(self) -> str:
        return self.tracker.name

    # --- the router's side: enqueue only (never raises, never touches the network) ---
    async def registration_pending(self, staff: dict[str, Any], username: str) -> None:
        """A request now waits for approval: open a task for the admins."""
        staff_id = int(staff["id"])
        position = staff.get("position") or {}
        params = {
            "id": staff_id,
            "full_name": staff.get("full_name", ""),
            "position": position.get("name", ""),
            "position_code": position.get("code", ""),
            "username": username or staff.get("rocketchat_username", ""),
            "created": format_time(parse_time(staff.get("created_at")), self.timezone, self.language),
        }
        # Only these public fields reach the tracker: never the email, phone or any activation code.
        await self._enqueue(
            {
                "kind": "open",
                "staff_id": staff_id,
                "title": translate(self.language, "task.title", **params),
                "description": translate(self.language, "task.description", **params),
            }
        )

    async def registration_decided(
        self, staff_id: int, outcome: str, *, admin: str | None = None, reason: str | None = None
    ) -> None:
        """The request was decided (by an admin through the bot, or in the ERP): comment and close."""
        if outcome in ("approved", "rejected") and admin:
            why = translate(self.language, "task.reason", reason=reason) if reason else ""
            comment = translate(self.language, f"task.closed.{outcome}", admin=admin, reason=why)
        else:
            comment = translate(
                self.language, "task.closed.erp", status=translate(self.language, f"state.{outcome}")
            )
        await self._enqueue(
            {"kind": "close", "staff_id": int(staff_id), "outcome": outcome, "comment": comment}
        )

    async def _enqueue(self, event: dict[str, Any]) -> None:
        event.update(event_id=uuid.uuid4().hex, attempts=0, next_at=0.0, queued_at=self.clock())
        try:
            await self.store.outbox_add(event)
        except Exception:
            metrics.TASKS_FAILED.labels(self.backend, event["kind"]).inc()
            log.exception(
                "task event not queued", extra={"staff_id": event["staff_id"], "kind": event["kind"]}
            )
            return
        self._wake.set()
        await self._publish_depth()

    # --- delivery ---
    async def run_forever(self, interval: float) -> None:
        """Deliver every `interval` seconds, and at once when something is queued (or left from before)."""
        log.info("task tracker delivery started", extra={"backend": self.backend})
        self._wake.set()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=interval)
            self._wake.clear()
            try:
                await self.run_once()
            except Exception:
                log.exception("task delivery round failed")

    async def run_once(self) -> int:
        """One delivery round; returns how many events were delivered."""
        token = request_id_var.set(new_request_id())
        now = self.clock()
        until = now + self.lease_seconds
        try:
            if not await self.store.claim(LEASE_KEY, until, now):
                return 0  # another replica is delivering
            try:
                return await self._round(now)
            finally:
                with contextlib.suppress(Exception):
                    await self.store.release(LEASE_KEY, until)
        finally:
            await self._publish_depth()
            request_id_var.reset(token)

    async def _round(self, now: float) -> int:
        delivered = 0
        waiting: set[int] = set()  # people with an undelivered earlier event: their later ones wait
        for entry in await self.store.outbox_list(self.batch):
            if self.clock() - now > self.lease_seconds / 2:
                break  # a slow tracker: end well within the lease, so no other replica starts meanwhile
            staff_id = int(entry["staff_id"])
            if staff_id in waiting:
                continue
            if float(entry.get("next_at", 0)) > now:
                waiting.add(staff_id)
                continue
            try:
                await self._deliver(entry)
            except TrackerError as exc:
                if await self._failed(entry, exc, now):
                    waiting.add(staff_id)
                    # The tracker is struggling: leave the rest for the next round instead of piling on.
                    break
                continue
            except Exception as exc:  # a bug or the store failing: keep the event, try again later
                log.exception(
                    "task event delivery crashed", extra={"staff_id": staff_id, "kind": entry["kind"]}
                )
                if await self._failed(entry, TrackerError(type(exc).__name__, retryable=True), now):
                    break
                continue
            delivered += 1
        return delivered

    async def _deliver(self, entry: dict[str, Any]) -> None:
        staff_id = int(entry["staff_id"])
        known = await self.store.get_value(f"{TASK_KEY_PREFIX}{staff_id}")
        if entry["kind"] == "open":
            if known:
                log.info("task already open", extra={"staff_id": staff_id, "task_key": known})
            else:
                spec = TaskSpec(staff_id, entry["title"], entry["description"], f"{LABEL_PREFIX}{staff_id}")
                key = await self.tracker.find(spec) if entry.get("attempts") else None
                key = key or await self.tracker.open(spec, entry["event_id"])
                # Remembered before anything else, so no later attempt creates it again.
                await self.store.set_value(f"{TASK_KEY_PREFIX}{staff_id}", key)
                metrics.TASKS_OPENED.labels(self.backend).inc()
                log.info(
                    "task opened", extra={"staff_id": staff_id, "task_key": key, "backend": self.backend}
                )
        elif not known:
            # Its open was dead-lettered, or the request predates the tracker: nothing to close.
            log.info("no task to close", extra={"staff_id": staff_id, "outcome": entry.get("outcome")})
        else:
            progress = entry.setdefault("progress", {})
            closing = TaskClosing(staff_id, known, str(entry.get("outcome")), entry["comment"])
            await self.tracker.close(closing, entry["event_id"], progress)
            metrics.TASKS_CLOSED.labels(self.backend).inc()
            log.info(
                "task closed", extra={"staff_id": staff_id, "task_key": known, "outcome": closing.outcome}
            )
        await self.store.outbox_remove(int(entry["id"]))

    async def _failed(self, entry: dict[str, Any], exc: TrackerError, now: float) -> bool:
        """Record a failed attempt; True when the event stays queued (retried later), False if buried."""
        entry["attempts"] = int(entry.get("attempts", 0)) + 1
        entry["last_error"] = str(exc)
        extra = {
            "staff_id": entry["staff_id"],
            "kind": entry["kind"],
            "attempts": entry["attempts"],
            "error": str(exc),
            "backend": self.backend,
        }
        if not exc.retryable or entry["attempts"] >= self.max_attempts:
            await self.store.outbox_bury(entry)
            metrics.TASKS_FAILED.labels(self.backend, entry["kind"]).inc()
            log.error("task event dead-lettered", extra=extra)
            return False
        delay = min(self.backoff_max, self.backoff_base * 2 ** (entry["attempts"] - 1))
        if exc.retry_after is not None:
            delay = max(delay, min(exc.retry_after, self.backoff_max))
        entry["next_at"] = now + delay
        await self.store.outbox_save(entry)
        metrics.TASK_RETRIES.labels(self.backend).inc()
        log.warning("task event not delivered, retried later", extra={**extra, "retry_in": delay})
        return True

    async def _publish_depth(self) -> None:
        with contextlib.suppress(Exception):
            waiting, dead = await self.store.outbox_counts()
            metrics.TASK_OUTBOX_DEPTH.set(waiting)
            metrics.TASK_OUTBOX_DEAD.set(dead)
