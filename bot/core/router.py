"""Routes each message to a command or to the open registration dialog; audits and measures it."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import time
from collections import defaultdict, deque
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from bot import metrics
from bot.core.dialog import Dialog, advance, back_to, prompt
from bot.core.parser import ADMIN_COMMANDS, Command, parse
from bot.core.ports import ChatPort, Identity, IncomingMessage
from bot.core.report import format_utc, report_text
from bot.erp_client import ErpClient, ErpError, ErpUnavailable
from bot.i18n import translate
from bot.logging import new_request_id, request_id_var
from bot.store import Store
from bot.tasks.outbox import TaskOutbox

log = logging.getLogger("bot.commands")

PENDING_KEY = "router.pending_approvals"
# ERP validation error field -> the dialog step that asks for it again.
FIELD_STEPS = {"full_name": "name", "email": "email", "phone": "phone", "position_code": "position"}


# Per-command context: the handling task sets them, `handle` reads them for the audit entry.
_command_name: contextvars.ContextVar[str | None] = contextvars.ContextVar("command_name", default=None)
_detail: contextvars.ContextVar[str | None] = contextvars.ContextVar("audit_detail", default=None)


class Outcome(Exception):
    """Ends a command early with an outcome label (for the audit trail and metrics)."""

    def __init__(self, outcome: str) -> None:
        super().__init__(outcome)
        self.outcome = outcome


class Router:
    def __init__(
        self,
        *,
        store: Store,
        erp: ErpClient,
        chat: ChatPort,
        identity: Identity,
        language: str = "ru",
        admin_role: str = "admin",
        admins_channel: str = "erp-admins",
        admin_cache_seconds: float = 30.0,
        dialog_ttl_seconds: float = 900.0,
        rate_limit_per_minute: int = 20,
        max_input_length: int = 500,
        activation_url: str = "",
        timezone: tzinfo = UTC,
        tasks: TaskOutbox | None = None,
        clock: Any = time.time,
    ) -> None:
        self.store, self.erp, self.chat, self.identity = store, erp, chat, identity
        self.language, self.admin_role, self.admins_channel = language, admin_role, admins_channel
        self.admin_cache_seconds, self.dialog_ttl = admin_cache_seconds, dialog_ttl_seconds
        self.rate_limit, self.max_input_length = rate_limit_per_minute, max_input_length
        self.activation_url, self.clock = activation_url, clock
        self.timezone = timezone  # reports show times in the company's zone
        self.tasks = tasks  # the task tracker's outbox (None: no tracker configured)
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._recent: dict[str, deque[float]] = defaultdict(deque)
        self._roles: dict[str, tuple[float, frozenset[str]]] = {}

    # --- entry point ---
    async def handle(self, msg: IncomingMessage) -> str | None:
        """Handle one delivered message; returns the outcome, or None when the message is not for us."""
        if msg.user_id == self.identity.user_id or msg.from_bot or msg.system:
            return None
        if not await self.store.mark_seen(msg.message_id):
            metrics.DUPLICATES.inc()
            return None
        if msg.edited:
            return None
        is_dm = msg.room_type == "d"
        command = parse(msg.text[: self.max_input_length * 4], self.identity.username)
        if not is_dm and not (msg.mentions_bot or f"@{self.identity.username}".lower() in msg.text.lower()):
            return None
        if await self._is_other_bot(msg.user_id):
            return None
        token = request_id_var.set(new_request_id())
        started = time.perf_counter()
        name = command.name or "text"
        try:
            async with self._locks[msg.user_id]:
                outcome = await self._handle(msg, command, is_dm)
                name = _command_name.get() or name
        except Exception:
            log.exception("command crashed", extra={"user": msg.username, "command": name})
            outcome = "error"
            with contextlib.suppress(Exception):  # best effort: Rocket.Chat itself may be what failed
                await self.chat.send(msg.room_id, translate(command.lang or self.language, "internal_error"))
        finally:
            elapsed = time.perf_counter() - started
        metrics.COMMANDS.labels(name, outcome).inc()
        metrics.COMMAND_SECONDS.labels(name).observe(elapsed)
        log.info(
            "command",
            extra={
                "user": msg.username,
                "command": name,
                "outcome": outcome,
                "latency_ms": round(elapsed * 1000, 1),
            },
        )
        with contextlib.suppress(Exception):
            await self.store.add_audit(
                {
                    "request_id": request_id_var.get(),
                    "user_id": msg.user_id,
                    "username": msg.username,
                    "command": name,
                    "outcome": outcome,
                    "detail": _detail.get(),
                }
            )
        request_id_var.reset(token)
        if len(self._locks) > 10_000:
            self._locks = defaultdict(asyncio.Lock, {k: v for k, v in self._locks.items() if v.locked()})
        if len(self._recent) > 10_000:
            horizon = self.clock() - 60
            self._recent = defaultdict(
                deque, {k: v for k, v in self._recent.items() if v and v[-1] > horizon}
            )
        return outcome

    async def _handle(self, msg: IncomingMessage, command: Command, is_dm: bool) -> str:
        _command_name.set(command.name or "text")
        _detail.set(None)
        lang = command.lang or self.language
        if len(msg.text) > self.max_input_length:
            await self.chat.send(msg.room_id, translate(lang, "too_long", limit=self.max_input_length))
            return "too_long"
        if not self._allow_rate(msg.user_id):
            if len(self._recent[msg.user_id]) == self.rate_limit + 1:  # say it once, then stay quiet
                await self.chat.send(msg.room_id, translate(lang, "rate_limited"))
            return "rate_limited"
        dialog = await self._load_dialog(msg.user_id) if is_dm else None
        if dialog is not None and command.name not in ("cancel", "help", "register", "status"):
            _command_name.set("register")
            return await self._answer(dialog, msg.text)
        try:
            return await self._command(msg, command, lang, is_dm, dialog)
        except Outcome as done:
            return done.outcome
        except ErpUnavailable:
            await self.chat.send(msg.room_id, translate(lang, "erp_unavailable"))
            return "erp_unavailable"
        except ErpError as exc:
            _detail.set(exc.code)
            await self.chat.send(msg.room_id, translate(lang, "erp_error", code=exc.code))
            return "erp_error"

    def _allow_rate(self, user_id: str) -> bool:
        now = self.clock()
        recent = self._recent[user_id]
        while recent and recent[0] <= now - 60:
            recent.popleft()
        recent.append(now)
        return len(recent) <= self.rate_limit

    async def _load_dialog(self, user_id: str) -> Dialog | None:
        data = await self.store.get_dialog(user_id)
        if data is None:
            return None
        dialog = Dialog.from_dict(data)
        if dialog.expires_at <= self.clock():
            await self._expire(dialog)
            return None
        return dialog

    async def _expire(self, dialog: Dialog) -> None:
        await self.store.delete_dialog(dialog.user_id)
        minutes = max(1, round(self.dialog_ttl / 60))
        await self.chat.send(dialog.room_id, translate(dialog.lang, "dialog.expired", minutes=minutes))

    async def expire_dialogs(self) -> int:
        """Tell people whose dialog timed out; called periodically by the app."""
        expired = await self.store.expired_dialogs(self.clock())
        for data in expired:
            with contextlib.suppress(Exception):
                await self._expire(Dialog.from_dict(data))
        return len(expired)

    async def user_roles(self, user_id: str) -> frozenset[str]:
        """Rocket.Chat roles, checked live and cached briefly (role changes apply within the cache time)."""
        cached = self._roles.get(user_id)
        now = self.clock()
        if cached and now - cached[0] < self.admin_cache_seconds:
            return cached[1]
        roles = frozenset(await self.chat.user_roles(user_id))
        if len(self._roles) > 10_000:
            self._roles.clear()
        self._roles[user_id] = (now, roles)
        return roles

    async def is_admin(self, user_id: str) -> bool:
        return self.admin_role in await self.user_roles(user_id)

    async def _is_other_bot(self, user_id: str) -> bool:
        try:
            return "bot" in await self.user_roles(user_id)
        except Exception:
            return False  # a failed lookup must not silence a person

    # --- commands ---
    async def _command(
        self, msg: IncomingMessage, command: Command, lang: str, is_dm: bool, dialog: Dialog | None
    ) -> str:
        name = command.name
        needs_admin = name in ADMIN_COMMANDS or (name == "status" and command.args.get("username"))
        if needs_admin and not await self.is_admin(msg.user_id):
            _detail.set(msg.text[:200])
            await self.chat.send(msg.room_id, translate(lang, "not_admin"))
            return "denied"
        if command.error:
            await self.chat.send(msg.room_id, translate(lang, command.error))
            return "usage"
        if name == "":
            await self.chat.send(msg.room_id, translate(lang, "unknown"))
            return "unknown"
        if name == "help":
            text = translate(lang, "help.user")
            if await self.is_admin(msg.user_id):
                text += "\n\n" + translate(lang, "help.admin")
            await self.chat.send(msg.room_id, text)
            return "ok"
        if name == "cancel":
            if dialog is None:
                await self.chat.send(msg.room_id, translate(lang, "dialog.nothing_to_cancel"))
                return "nothing"
            await self.store.delete_dialog(msg.user_id)
            await self.chat.send(msg.room_id, translate(lang, "dialog.cancelled"))
            return "cancelled"
        handler = getattr(self, f"_cmd_{name}")
        return await handler(msg, command, lang, is_dm)

    async def _cmd_register(self, msg: IncomingMessage, command: Command, lang: str, is_dm: bool) -> str:
        room_id = msg.room_id if is_dm else await self.chat.direct_room(msg.username)
        if not is_dm:
            await self.chat.send(msg.room_id, translate(lang, "register.dm_sent", username=msg.username))
        staff = await self.erp.find_staff(rocketchat_user_id=msg.user_id)
        if staff is not None:
            await self.chat.send(
                room_id, translate(lang, "result.already") + "\n" + self._status_text(lang, staff)
            )
            return "already_registered"
        positions = [
            {"code": p["code"], "name": p["name"], "department": p.get("department") or ""}
            for p in await self.erp.positions()
            if p.get("is_active", True)
        ]
        if not positions:
            await self.chat.send(room_id, translate(lang, "register.no_positions"))
            return "no_positions"
        dialog = Dialog(
            user_id=msg.user_id,
            username=msg.username,
            room_id=room_id,
            lang=lang,
            expires_at=self.clock() + self.dialog_ttl,
            positions=positions,
        )
        await self._save(dialog)
        key, params = prompt(dialog)
        await self.chat.send(
            room_id, translate(lang, "register.intro") + "\n" + translate(lang, key, **params)
        )
        return "started"

    async def _cmd_status(self, msg: IncomingMessage, command: Command, lang: str, is_dm: bool) -> str:
        username = command.args.get("username")
        if username:
            staff = await self.erp.find_staff(rocketchat_username=str(username))
            if staff is None:
                await self.chat.send(msg.room_id, translate(lang, "staff.not_found", username=username))
                return "not_found"
        else:
            staff = await self.erp.find_staff(rocketchat_user_id=msg.user_id)
            if staff is None:
                await self.chat.send(msg.room_id, translate(lang, "status.none"))
                return "not_registered"
        await self.chat.send(msg.room_id, self._status_text(lang, staff))
        return "ok"

    async def _cmd_approve(self, msg: IncomingMessage, command: Command, lang: str, is_dm: bool) -> str:
        staff_id = int(command.args["staff_id"])  # type: ignore[call-overload]
        _detail.set(f"staff {staff_id}")
        result = await self._staff_call(msg, lang, staff_id, self.erp.approve(staff_id))
        staff, activation = result["staff"], result.get("activation")
        username = staff.get("rocketchat_username") or ""
        await self.chat.send(
            msg.room_id, translate(lang, "approval.approved_admin", id=staff_id, username=username)
        )
        person_lang = (await self._forget_pending(staff_id)).get("lang", self.language)
        await self._task_decided(staff_id, "approved", admin=msg.username)
        if username:
            text = translate(person_lang, "approval.approved_user", id=staff_id) + "\n"
            if activation:
                text += self._code_text(person_lang, activation)
            else:
                text += translate(person_lang, "result.no_access", id=staff_id)
            await self._direct(username, text)
        return "approved"

    async def _cmd_reject(self, msg: IncomingMessage, command: Command, lang: str, is_dm: bool) -> str:
        staff_id = int(command.args["staff_id"])  # type: ignore[call-overload]
        reason = command.args.get("reason")
        _detail.set(f"staff {staff_id}")
        staff = await self._staff_call(msg, lang, staff_id, self.erp.reject(staff_id, reason))  # type: ignore[arg-type]
        username = staff.get("rocketchat_username") or ""
        await self.chat.send(
            msg.room_id, translate(lang, "approval.rejected_admin", id=staff_id, username=username)
        )
        person_lang = (await self._forget_pending(staff_id)).get("lang", self.language)
        await self._task_decided(staff_id, "rejected", admin=msg.username, reason=reason)  # type: ignore[arg-type]
        if username:
            why = translate(person_lang, "approval.reason", reason=reason) if reason else ""
            await self._direct(
                username, translate(person_lang, "approval.rejected_user", id=staff_id, reason=why)
            )
        return "rejected"

    async def _staff_by_username(self, msg: IncomingMessage, lang: str, username: str) -> dict[str, Any]:
        _detail.set(f"@{username}")
        staff = await self.erp.find_staff(rocketchat_username=username)
        if staff is None:
            await self.chat.send(msg.room_id, translate(lang, "staff.not_found", username=username))
            raise Outcome("not_found")
        return staff

    async def _staff_call(self, msg: IncomingMessage, lang: str, staff_id: int, call: Any) -> Any:
        try:
            return await call
        except ErpError as exc:
            if exc.code == "not_found":
                await self.chat.send(msg.room_id, translate(lang, "staff.id_not_found", id=staff_id))
                raise Outcome("not_found") from None
            if exc.code == "invalid_state":
                await self.chat.send(msg.room_id, translate(lang, "staff.invalid_state", id=staff_id))
                raise Outcome("invalid_state") from None
            raise

    async def _cmd_block(self, msg: IncomingMessage, command: Command, lang: str, is_dm: bool) -> str:
        staff = await self._staff_by_username(msg, lang, str(command.args["username"]))
        await self._staff_call(msg, lang, staff["id"], self.erp.block(staff["id"]))
        await self.chat.send(msg.room_id, translate(lang, "block.done", username=command.args["username"]))
        return "blocked"

    async def _cmd_unblock(self, msg: IncomingMessage, command: Command, lang: str, is_dm: bool) -> str:
        staff = await self._staff_by_username(msg, lang, str(command.args["username"]))
        await self._staff_call(msg, lang, staff["id"], self.erp.unblock(staff["id"]))
        await self.chat.send(msg.room_id, translate(lang, "unblock.done", username=command.args["username"]))
        return "unblocked"

    async def _cmd_reissue(self, msg: IncomingMessage, command: Command, lang: str, is_dm: bool) -> str:
        username = str(command.args["username"])
        staff = await self._staff_by_username(msg, lang, username)
        result = await self._staff_call(msg, lang, staff["id"], self.erp.reissue_code(staff["id"]))
        # The code goes to its owner only, never into the admin's room.
        await self._direct(username, self._code_text(self.language, result["activation"]))
        await self.chat.send(msg.room_id, translate(lang, "code.reissued_admin", username=username))
        return "reissued"

    async def _cmd_positions(self, msg: IncomingMessage, command: Command, lang: str, is_dm: bool) -> str:
        positions = await self.erp.positions()
        if not positions:
            await self.chat.send(msg.room_id, translate(lang, "positions.empty"))
            return "ok"
        yes, no = translate(lang, "word.yes"), translate(lang, "word.no")
        lines = [translate(lang, "positions.header")] + [
            translate(
                lang,
                "positions.line",
                code=p["code"],
                name=p["name"],
                access=yes if p.get("erp_access") else no,
                approval=yes if p.get("requires_approval") else no,
            )
            for p in positions
        ]
        await self.chat.send(msg.room_id, "\n".join(lines))
        return "ok"

    async def _cmd_position(self, msg: IncomingMessage, command: Command, lang: str, is_dm: bool) -> str:
        code, access = str(command.args["code"]), bool(command.args["erp_access"])
        _detail.set(f"{code} erp_access={access}")
        try:
            position = await self.erp.update_position(code, {"erp_access": access})
        except ErpError as exc:
            if exc.code in ("not_found", "position_not_found"):
                await self.chat.send(msg.room_id, translate(lang, "position.not_found", code=code))
                return "not_found"
            raise
        word = translate(lang, "word.on" if position.get("erp_access") else "word.off")
        await self.chat.send(
            msg.room_id, translate(lang, "position.updated", code=position["code"], access=word)
        )
        return "updated"

    async def _cmd_audit(self, msg: IncomingMessage, command: Command, lang: str, is_dm: bool) -> str:
        entries = await self.store.list_audit(int(command.args["limit"]))  # type: ignore[call-overload]
        if not entries:
            await self.chat.send(msg.room_id, translate(lang, "audit.empty"))
            return "ok"
        lines = [translate(lang, "audit.header")] + [
            translate(
                lang,
                "audit.line",
                id=e["id"],
                username=e.get("username") or "?",
                command=e.get("command"),
                outcome=e.get("outcome"),
                at=time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(e["at"]))),
            )
            for e in entries
        ]
        await self.chat.send(msg.room_id, "\n".join(lines))
        return "ok"

    async def _cmd_report(self, msg: IncomingMessage, command: Command, lang: str, is_dm: bool) -> str:
        days = int(command.args["days"])  # type: ignore[call-overload]
        _detail.set(f"days {days}")
        now = datetime.fromtimestamp(self.clock(), UTC)
        report = await self.erp.registration_report(since=now - timedelta(days=days), until=now)
        await self.chat.send(msg.room_id, report_text(lang, report, days, now, self.timezone))
        return "ok"

    # --- the registration dialog ---
    async def _save(self, dialog: Dialog) -> None:
        dialog.expires_at = self.clock() + self.dialog_ttl
        await self.store.put_dialog(dialog.user_id, dialog.to_dict(), dialog.expires_at)

    async def _answer(self, dialog: Dialog, text: str) -> str:
        step = advance(dialog, text)
        if step.action == "cancel":
            await self.store.delete_dialog(dialog.user_id)
            await self.chat.send(dialog.room_id, translate(dialog.lang, "dialog.cancelled"))
            return "cancelled"
        if step.action == "submit":
            return await self._submit(dialog)
        await self._save(dialog)
        await self._say(dialog, step.replies)
        return f"step_{dialog.step}"

    async def _say(self, dialog: Dialog, replies: list[tuple[str, dict[str, Any]]]) -> None:
        await self.chat.send(dialog.room_id, "\n".join(translate(dialog.lang, k, **p) for k, p in replies))

    async def _submit(self, dialog: Dialog) -> str:
        lang = dialog.lang
        try:
            result = await self.erp.create_staff(dialog.staff_body(), dialog.idempotency_key)
        except ErpUnavailable:
            await self._save(dialog)  # keep the answers and the key: a later "yes" repeats the same request
            await self.chat.send(dialog.room_id, translate(lang, "dialog.erp_unavailable"))
            return "erp_unavailable"
        except ErpError as exc:
            return await self._submit_refused(dialog, exc)
        await self.store.delete_dialog(dialog.user_id)
        staff, activation = result["staff"], result.get("activation")
        _detail.set(f"staff {staff['id']} {staff['status']}")
        status = staff["status"]
        if activation:
            text = translate(lang, "result.created") + "\n" + self._code_text(lang, activation)
            await self.chat.send(dialog.room_id, text)
            return "created"
        if status == "pending_approval":
            # Queued first: the tracker is an independent channel, useful even if Rocket.Chat fails below.
            await self._task_pending(staff, dialog.username)
            await self.chat.send(dialog.room_id, translate(lang, "result.pending", id=staff["id"]))
            await self.chat.send_to_channel(
                self.admins_channel,
                translate(
                    self.language,
                    "admins.request",
                    id=staff["id"],
                    full_name=staff["full_name"],
                    username=dialog.username,
                    position=staff["position"]["name"],
                ),
            )
            await self._remember_pending(staff["id"], dialog.username, lang)
            return "pending_approval"
        if status == "no_erp_access":
            await self.chat.send(dialog.room_id, translate(lang, "result.no_access", id=staff["id"]))
            return "no_erp_access"
        await self.chat.send(dialog.room_id, self._status_text(lang, staff))
        return status

    async def _submit_refused(self, dialog: Dialog, exc: ErpError) -> str:
        lang = dialog.lang
        _detail.set(exc.code)
        if exc.code == "staff_exists":
            await self.store.delete_dialog(dialog.user_id)
            staff = None
            with contextlib.suppress(ErpError, ErpUnavailable, ValueError, TypeError):
                staff = await self.erp.get_staff(int(exc.body["staff_id"]))
            text = translate(lang, "result.already")
            if staff:
                text += "\n" + self._status_text(lang, staff)
            await self.chat.send(dialog.room_id, text)
            return "already_registered"
        if exc.code in ("position_not_found", "validation_error"):
            step, field, detail = "position", "position_code", exc.detail
            if exc.code == "validation_error":
                errors = exc.body.get("errors") or [{}]
                loc = errors[0].get("loc") or [""]
                field = str(loc[-1])
                step, detail = FIELD_STEPS.get(field, "name"), str(errors[0].get("msg", exc.detail))
            if step == "position":
                with contextlib.suppress(ErpError, ErpUnavailable):
                    dialog.positions = [
                        {"code": p["code"], "name": p["name"], "department": p.get("department") or ""}
                        for p in await self.erp.positions()
                    ]
            back_to(dialog, step)
            dialog.renew_key()
            await self._save(dialog)
            await self._say(
                dialog, [("dialog.field_rejected", {"field": field, "detail": detail[:200]}), prompt(dialog)]
            )
            return "refused_field"
        await self.store.delete_dialog(dialog.user_id)
        await self.chat.send(dialog.room_id, translate(lang, "erp_error", code=exc.code))
        return "erp_error"

    # --- requests waiting for approval: the person hears the outcome even if it was decided in the ERP ---
    async def _pending(self) -> dict[str, dict[str, str]]:
        raw = await self.store.get_value(PENDING_KEY)
        return json.loads(raw) if raw else {}

    async def _remember_pending(self, staff_id: int, username: str, lang: str) -> None:
        pending = await self._pending()
        pending[str(staff_id)] = {"username": username, "lang": lang}
        await self.store.set_value(PENDING_KEY, json.dumps(pending))

    async def _forget_pending(self, staff_id: int) -> dict[str, str]:
        pending = await self._pending()
        entry = pending.pop(str(staff_id), None)
        if entry is not None:
            await self.store.set_value(PENDING_KEY, json.dumps(pending))
        return entry or {}

    async def check_pending(self) -> int:
        """Tell people whose request was decided outside the bot; called periodically by the app."""
        told = 0
        for key, entry in (await self._pending()).items():
            staff_id, username, lang = int(key), entry["username"], entry.get("lang", self.language)
            try:
                staff = await self.erp.get_staff(staff_id)
                if staff["status"] == "pending_approval":
                    continue
                outcome = str(staff["status"])
                text = await self._outcome_text(staff, lang)
            except ErpUnavailable:
                return told  # the ERP is down: try again next round
            except ErpError as exc:
                if exc.code != "not_found":
                    continue
                text, outcome = None, "deleted"
            await self._forget_pending(staff_id)
            await self._task_decided(staff_id, outcome)
            if text:
                await self._direct(username, text)
                told += 1
                await self.store.add_audit(
                    {
                        "username": username,
                        "command": "approval_watch",
                        "outcome": staff["status"],
                        "detail": f"staff {staff_id}",
                    }
                )
        return told

    async def _outcome_text(self, staff: dict[str, Any], lang: str) -> str:
        staff_id, status = staff["id"], staff["status"]
        if status == "awaiting_activation":
            # The code was issued to whoever approved in the ERP; a fresh one goes to its owner.
            activation = (await self.erp.reissue_code(staff_id))["activation"]
            return (
                translate(lang, "approval.approved_user", id=staff_id)
                + "\n"
                + self._code_text(lang, activation)
            )
        if status == "no_erp_access":
            return (
                translate(lang, "approval.approved_user", id=staff_id)
                + "\n"
                + translate(lang, "result.no_access", id=staff_id)
            )
        if status == "rejected":
            reason = staff.get("status_reason")
            why = translate(lang, "approval.reason", reason=reason) if reason else ""
            return translate(lang, "approval.rejected_user", id=staff_id, reason=why)
        return self._status_text(lang, staff)

    async def _task_pending(self, staff: dict[str, Any], username: str) -> None:
        """Queue a tracker task for the admins (no network here: the outbox delivers it)."""
        if self.tasks is None:
            return
        try:
            await self.tasks.registration_pending(staff, username)
        except Exception:  # the tracker is a side channel: a registration never fails because of it
            log.exception("task open not queued", extra={"staff_id": staff.get("id")})

    async def _task_decided(
        self, staff_id: int, outcome: str, *, admin: str | None = None, reason: str | None = None
    ) -> None:
        """Queue the tracker task's close (no network here: the outbox delivers it)."""
        if self.tasks is None:
            return
        try:
            await self.tasks.registration_decided(staff_id, outcome, admin=admin, reason=reason)
        except Exception:  # the tracker is a side channel: a decision never fails because of it
            log.exception("task close not queued", extra={"staff_id": staff_id})

    # --- helpers ---
    async def _direct(self, username: str, text: str) -> None:
        room_id = await self.chat.direct_room(username)
        await self.chat.send(room_id, text)

    def _code_text(self, lang: str, activation: dict[str, Any]) -> str:
        url = translate(lang, "code.url", url=self.activation_url) if self.activation_url else ""
        return translate(
            lang,
            "code.issued",
            login=activation["login"],
            code=activation["code"],
            expires=format_utc(activation.get("expires_at")),
            url=url,
        )

    def _status_text(self, lang: str, staff: dict[str, Any]) -> str:
        status = staff.get("status", "")
        header = translate(
            lang,
            "status.header",
            id=staff.get("id"),
            full_name=staff.get("full_name"),
            position=(staff.get("position") or {}).get("name", ""),
        )
        login = (staff.get("user") or {}).get("login", "")
        reason = staff.get("status_reason")
        why = translate(lang, "approval.reason", reason=reason) if reason else ""
        key = f"status.{status}"
        if translate(lang, key) == key:
            return header + "\n" + translate(lang, "status.unknown", status=status)
        return header + "\n" + translate(lang, key, login=login, reason=why)
