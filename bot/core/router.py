"""Routes each message through the filters to a command handler or to the registration conversation.

The router depends on ports only (ChatPort, ErpPort, Store); commands are declared in bot/core/handlers.py,
the filters in bot/core/filters.py, the conversation's states in bot/core/dialog.py.

Every message is answered at least once, and each answer is posted once, even when the replica handling
it dies half-way (issue 17):

- Two phases in the store (`Store.begin_handling`, `finish_handling`): the message is claimed for this
  replica before anything happens and marked handled only after its replies were posted. The claim
  lasts while its holder is alive (bot/store.py), so the standby that takes over from a dead leader
  finds the message unhandled and unclaimed (realtime: in its catch-up from history; webhook: in
  Rocket.Chat's retry) and handles it again. A reply that could not be posted leaves the message
  unmarked, for the next delivery.
- Idempotent replies: the n-th post made while handling a message gets the id `reply_id(message, n)`
  (chat.sendMessage takes a client-chosen `_id`). Rocket.Chat stores no second message with an id it
  has, so the second attempt's posts that the first one made already are not posted again.
- Dialog changes once: a dialog saved (or closed) while handling a message records that message's id
  and the dialog as it was before it (`applied_by`, `before`; a closed dialog stays as such a record
  for the dialog's lifetime). Handling the message again starts from `before`, so the answer is not
  applied twice and the same replies come out under the same ids; the ERP sees the same request with
  the same idempotency key. Admin commands' ERP calls carry no such key: a repeated `approve` finds the
  record approved and says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from bot import metrics
from bot.core import filters as _filters  # noqa: F401 - registers the filter pipeline
from bot.core.commands import Context, Outcome, Registry
from bot.core.dialog import ConversationHandler, Dialog, back_to, prompt
from bot.core.handlers import COMMANDS
from bot.core.parser import Command, parse
from bot.core.ports import ChatPort, ErpPort, Identity, IncomingMessage
from bot.core.report import format_time, parse_time
from bot.erp_client import ErpError, ErpUnavailable
from bot.i18n import LANGUAGES, PERSON_LANG_KEY, translate, translate_name
from bot.leader import replica_id
from bot.logging import new_request_id, request_id_var
from bot.store import NEW, Store
from bot.tasks.outbox import TaskOutbox

log = logging.getLogger("bot.commands")

PENDING_KEY = "router.pending_approvals"
# One decision on a request at a time, across replicas: an admin's command, or the watch telling the person
# about one made in the ERP (a claim in the store; it outlasts an ERP call with its retries, and a replica
# that dies holding it frees it when it ends).
DECIDING_PREFIX = "router.deciding:"
DECIDING_SECONDS = 120.0
DECIDING_WAIT_SECONDS = 10.0  # an admin's command waits this long for the watch to finish with the request
# The map of requests waiting for approval is edited by one task at a time (read, change, write).
PENDING_EDIT_KEY = "router.pending_approvals.edit"
PENDING_EDIT_SECONDS = 10.0
# ERP validation error field -> the dialog step that asks for it again.
FIELD_STEPS = {"full_name": "name", "email": "email", "phone": "phone", "position_code": "position"}
STATE_HINT_COMMANDS = {"pending_approval": "approve", "awaiting_activation": "reissue", "blocked": "unblock"}
BUSY = "busy"  # handle()'s answer for a message another live replica (or this one) is handling now
_ID_CHARS = "23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz"  # Meteor's Random.id alphabet
_DIALOG_MARKS = ("applied_by", "before")


def reply_id(message_id: str, n: int) -> str:
    """The id of the n-th post made while handling a message: the same on every attempt, shaped like
    Rocket.Chat's own ids (17 characters of Meteor's alphabet)."""
    number = int.from_bytes(hashlib.sha256(f"rcbot-reply:{message_id}:{n}".encode()).digest(), "big")
    chars = []
    for _ in range(17):
        number, index = divmod(number, len(_ID_CHARS))
        chars.append(_ID_CHARS[index])
    return "".join(chars)


@dataclass
class Handling:
    """The message being handled (in a context variable: handlers and the chat wrapper see it)."""

    message_id: str
    user_id: str
    posts: int = 0
    failed: bool = False  # a post failed: the message is not marked handled
    before: dict[str, Any] | None = None  # the author's dialog record before this message
    before_known: bool = False
    wrote: bool = False  # this attempt changed the author's dialog: reads see the change

    def next_id(self) -> str:
        self.posts += 1
        return reply_id(self.message_id, self.posts - 1)


_handling: ContextVar[Handling | None] = ContextVar("bot_handling", default=None)


class ReplyChat:
    """The router's chat: while a message is handled, each post goes out under the next id derived from
    the message's (once), and a failed post is noted; outside (periodic jobs) posts go out as they are."""

    def __init__(self, port: ChatPort) -> None:
        self.port = port

    async def send(self, room_id: str, text: str) -> None:
        handling = _handling.get()
        if handling is None:
            await self.port.send(room_id, text)
            return
        message_id = handling.next_id()
        once = getattr(self.port, "send_once", None)
        try:
            if once is None:
                await self.port.send(room_id, text)
            elif not await once(room_id, text, message_id):
                log.info("reply posted before", extra={"message_id": message_id})
        except Exception:
            handling.failed = True
            raise

    async def send_to_channel(self, channel: str, text: str) -> dict[str, str] | None:
        handling = _handling.get()
        once = getattr(self.port, "send_to_channel_once", None)
        if handling is None:
            return await self.port.send_to_channel(channel, text)
        message_id = handling.next_id()
        try:
            if once is None:
                return await self.port.send_to_channel(channel, text)
            result: dict[str, str] | None = await once(channel, text, message_id)
            return result
        except Exception:
            handling.failed = True
            raise

    async def direct_room(self, username: str) -> str:
        return await self.port.direct_room(username)

    async def edit(self, room_id: str, message_id: str, text: str) -> None:
        await self.port.edit(room_id, message_id, text)

    async def user_roles(self, user_id: str) -> set[str]:
        return await self.port.user_roles(user_id)


class Router:
    def __init__(
        self,
        *,
        store: Store,
        erp: ErpPort,
        chat: ChatPort,
        identity: Identity,
        language: str = "ru",
        admin_role: str = "admin",
        admins_channel: str = "erp-admins",
        admins_channel_commands: bool = True,
        admin_cache_seconds: float = 30.0,
        dialog_ttl_seconds: float = 900.0,
        rate_limit_per_minute: int = 20,
        max_input_length: int = 500,
        activation_url: str = "",
        timezone: tzinfo = UTC,
        tasks: TaskOutbox | None = None,
        registry: Registry = COMMANDS,
        clock: Any = time.time,
        holder: str | None = None,
    ) -> None:
        self.store, self.erp, self.identity = store, erp, identity
        self.chat = ReplyChat(chat)
        self.holder = holder or replica_id()  # this replica's id in message claims (its lease holder id)
        self.language, self.admin_role, self.admins_channel = language, admin_role, admins_channel
        self.admins_channel_commands = admins_channel_commands
        self.admin_cache_seconds, self.dialog_ttl = admin_cache_seconds, dialog_ttl_seconds
        self.rate_limit, self.max_input_length = rate_limit_per_minute, max_input_length
        self.activation_url, self.clock = activation_url, clock
        self.timezone = timezone  # the company's: every time the bot shows is in it
        self.tasks = tasks  # the task tracker's outbox (None: no tracker configured)
        self.registry = registry
        self.deciding_wait = DECIDING_WAIT_SECONDS
        self.conversation = ConversationHandler(names=translate_name)
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._recent: dict[str, deque[float]] = defaultdict(deque)
        self._roles: dict[str, tuple[float, frozenset[str]]] = {}

    # --- entry point ---
    async def handle(self, msg: IncomingMessage) -> str | None:
        """Handle one delivered message; returns the outcome, None when the message is not for us (or was
        handled before), BUSY while it is being handled elsewhere."""
        if msg.user_id == self.identity.user_id or msg.from_bot or msg.system:
            return None
        if msg.edited:  # an edit comes again under the message's id: never a new request
            return None
        command = parse(msg.text[: self.max_input_length * 4], self.registry, self.identity.username)
        if not self._addressed(msg, command):
            return None
        state = await self.store.begin_handling(msg.message_id, self.holder)
        if state != NEW:
            metrics.DUPLICATES.inc()
            return BUSY if state == BUSY else None
        handling = Handling(msg.message_id, msg.user_id)
        marker = _handling.set(handling)
        try:
            return await self._handle_claimed(msg, command)
        finally:
            _handling.reset(marker)
            try:
                await self.store.finish_handling(msg.message_id, self.holder, done=not handling.failed)
            except Exception:
                log.exception("message not marked handled", extra={"message_id": msg.message_id})

    async def _handle_claimed(self, msg: IncomingMessage, command: Command) -> str | None:
        if await self._is_other_bot(msg.user_id):
            return None
        token = request_id_var.set(new_request_id())
        started = time.perf_counter()
        ctx = Context(
            msg=msg,
            lang=command.lang or self.language,
            is_dm=msg.room_type == "d",
            spec=command.spec,
            args=command.args,
            usage_error=command.usage_error,
            kind="command" if command.spec else "text",
        )
        try:
            async with self._locks[msg.user_id]:
                outcome = await self._run(ctx, command)
        except Exception:
            log.exception("command crashed", extra={"user": msg.username, "command": self._name(ctx)})
            outcome = Outcome("error")
            handling = _handling.get()
            with contextlib.suppress(Exception):  # best effort: Rocket.Chat itself may be what failed
                await self.reply(ctx, "internal_error")
                if handling is not None:
                    handling.failed = False  # the person has an answer (the error): handled
        elapsed = time.perf_counter() - started
        await self._audit(ctx, outcome, elapsed)
        request_id_var.reset(token)
        self._trim()
        return outcome.label

    def _addressed(self, msg: IncomingMessage, command: Command) -> bool:
        """DMs always; elsewhere a mention, or an admin command in the admins channel (no mention needed)."""
        if msg.room_type == "d":
            return True
        if msg.mentions_bot or f"@{self.identity.username}".lower() in msg.text.lower():
            return True
        in_admins = msg.room_name == self.admins_channel.lstrip("#")
        return bool(in_admins and self.admins_channel_commands and command.spec and command.spec.admin_only)

    def _name(self, ctx: Context) -> str:
        return "register" if ctx.kind == "answer" else (ctx.spec.name if ctx.spec else "text")

    async def _run(self, ctx: Context, command: Command) -> Outcome:
        dialog = await self._load_dialog(ctx.msg.user_id) if ctx.is_dm else None
        if dialog is not None:
            ctx.lang = dialog.lang
            if ctx.spec is None or not ctx.spec.in_dialog:
                ctx.kind, ctx.spec, ctx.usage_error = "answer", None, False
            elif ctx.spec.name == "help":
                ctx.kind = "dialog_help"
        for step in self.registry.filters:
            stopped = await step(self, ctx)
            if stopped is not None:
                return stopped
        try:
            if ctx.kind == "answer" and dialog is not None:
                return await self._answer(dialog, ctx.msg.text)
            if ctx.spec is None:
                return await self._free_text(ctx, command)
            return await ctx.spec.handler(self, ctx)
        except ErpUnavailable:
            await self.reply(ctx, "erp_unavailable")
            return Outcome("erp_unavailable")
        except ErpError as exc:
            await self.reply(ctx, "erp_error")
            return Outcome("erp_error", exc.code)

    async def _free_text(self, ctx: Context, command: Command) -> Outcome:
        """Text that is no command: what the person seems to want, in the language they wrote in."""
        ctx.lang = command.lang or await self.person_lang(ctx.msg.username)
        if command.intent in ("register", "help", "status"):
            ctx.spec = self.registry.commands[command.intent]
            ctx.args = {}
            return await ctx.spec.handler(self, ctx)
        if not ctx.is_dm:
            await self.reply(ctx, "unknown")
            return Outcome("unknown")
        await self.reply(ctx, "greeting" if command.intent == "greeting" else "unknown_dm")
        return Outcome("greeting" if command.intent == "greeting" else "unknown")

    async def _audit(self, ctx: Context, outcome: Outcome, elapsed: float) -> None:
        name = self._name(ctx)
        metrics.COMMANDS.labels(name, outcome.label).inc()
        metrics.COMMAND_SECONDS.labels(name).observe(elapsed)
        log.info(
            "command",
            extra={
                "user": ctx.msg.username,
                "command": name,
                "outcome": outcome.label,
                "latency_ms": round(elapsed * 1000, 1),
            },
        )
        with contextlib.suppress(Exception):
            await self.store.add_audit(
                {
                    "request_id": request_id_var.get(),
                    "user_id": ctx.msg.user_id,
                    "username": ctx.msg.username,
                    "command": name,
                    "outcome": outcome.label,
                    "detail": outcome.detail,
                }
            )

    def _trim(self) -> None:
        if len(self._locks) > 10_000:
            self._locks = defaultdict(asyncio.Lock, {k: v for k, v in self._locks.items() if v.locked()})
        if len(self._recent) > 10_000:
            horizon = self.clock() - 60
            self._recent = defaultdict(
                deque, {k: v for k, v in self._recent.items() if v and v[-1] > horizon}
            )

    def rate_wait(self, user_id: str) -> float | None:
        """None when the command is within the limit; else the seconds to wait (-1: over twice the limit,
        where the bot stops answering the flood but still counts and logs it)."""
        now = self.clock()
        recent = self._recent[user_id]
        while recent and recent[0] <= now - 60:
            recent.popleft()
        recent.append(now)
        if len(recent) <= self.rate_limit:
            return None
        if len(recent) > 2 * self.rate_limit:
            return -1
        return recent[-self.rate_limit - 1] + 60 - now

    # --- talking ---
    def t(self, lang: str, key: str, **params: Any) -> str:
        return translate(lang, key, **params)

    def name(self, lang: str, text: str) -> str:
        return translate_name(lang, text)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def when(self, lang: str, moment: datetime | str | None) -> str:
        """A time in the company's zone, in the natural form of the language."""
        if isinstance(moment, str) or moment is None:
            moment = parse_time(moment)
        return format_time(moment, self.timezone, lang, now=self._now())

    async def reply(self, ctx: Context, key: str, **params: Any) -> None:
        await self.chat.send(ctx.msg.room_id, translate(ctx.lang, key, **params))

    async def reply_text(self, ctx: Context, text: str) -> None:
        await self.chat.send(ctx.msg.room_id, text)

    async def direct(self, username: str, text: str) -> None:
        room_id = await self.chat.direct_room(username)
        await self.chat.send(room_id, text)

    async def person_lang(self, username: str) -> str:
        with contextlib.suppress(Exception):
            lang = await self.store.get_value(PERSON_LANG_KEY + username)
            if lang in LANGUAGES:
                return str(lang)
        return self.language

    async def remember_lang(self, username: str, lang: str) -> None:
        with contextlib.suppress(Exception):
            await self.store.set_value(PERSON_LANG_KEY + username, lang)

    # --- admin rights ---
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

    # --- the ERP's answers to admin commands ---
    async def staff_by_username(self, ctx: Context, username: str) -> dict[str, Any] | Outcome:
        staff = await self.erp.find_staff(rocketchat_username=username)
        if staff is None:
            await self.reply(ctx, "staff.not_found", username=username)
            return Outcome("not_found", f"@{username}")
        return staff

    async def staff_call(self, ctx: Context, staff_id: int, action: str, call: Any) -> Any:
        """Await an ERP call on a staff record; a missing record or a wrong status is answered here."""
        try:
            return await call
        except ErpError as exc:
            if exc.code == "not_found":
                await self.reply(ctx, "staff.id_not_found", id=staff_id)
                return Outcome("not_found", f"staff {staff_id}")
            if exc.code != "invalid_state":
                raise
        staff = await self.erp.get_staff(staff_id)
        status = str(staff.get("status", ""))
        username = staff.get("rocketchat_username") or ""
        hint_command = STATE_HINT_COMMANDS.get(status)
        hint = translate(
            ctx.lang,
            f"state.hint.{status}",
            id=staff_id,
            command=self.registry.commands[hint_command].word(ctx.lang) if hint_command else "",
            username=username,
        )
        await self.reply(
            ctx,
            "staff.invalid_state",
            id=staff_id,
            username=username,
            status=translate(ctx.lang, f"state.{status}"),
            action=self.registry.commands[action].word(ctx.lang),
            hint=hint,
        )
        return Outcome("invalid_state", f"staff {staff_id} {status}")

    # --- the registration conversation ---
    async def start_registration(self, ctx: Context) -> Outcome:
        msg, lang = ctx.msg, ctx.lang
        room_id = msg.room_id if ctx.is_dm else await self.chat.direct_room(msg.username)
        if not ctx.is_dm:
            await self.reply(ctx, "register.dm_sent", username=msg.username)
        # Both ERP reads at once: one round trip instead of two before the first question.
        staff, positions = await asyncio.gather(
            self.erp.find_staff(rocketchat_user_id=msg.user_id), self._positions()
        )
        if staff is not None:
            await self.close_dialog(msg.user_id)
            await self.chat.send(
                room_id, translate(lang, "result.already") + "\n" + self.status_text(lang, staff)
            )
            return Outcome("already_registered", f"staff {staff['id']}")
        if not positions:
            await self.chat.send(room_id, translate(lang, "register.no_positions"))
            return Outcome("no_positions")
        dialog = Dialog(
            user_id=msg.user_id,
            username=msg.username,
            room_id=room_id,
            lang=lang,
            expires_at=self.clock() + self.dialog_ttl,
            positions=positions,
        )
        await self._save(dialog)
        key, params = prompt(dialog, self.conversation)
        await self.chat.send(
            room_id, translate(lang, "register.intro") + "\n" + translate(lang, key, **params)
        )
        return Outcome("started")

    async def _positions(self) -> list[dict[str, Any]]:
        keep = ("code", "name", "department", "erp_access", "requires_approval")
        return [{k: p.get(k) for k in keep} for p in await self.erp.positions() if p.get("is_active", True)]

    async def _dialog_record(self, user_id: str) -> dict[str, Any] | None:
        """The user's dialog record; while handling their message, as it was before that message if it
        was handled before up to a dialog change (see the module doc)."""
        data = await self.store.get_dialog(user_id)
        handling = _handling.get()
        if handling is None or handling.user_id != user_id or handling.wrote:
            return data
        if data is not None and data.get("applied_by") == handling.message_id:
            data = data.get("before")  # this message changed the dialog before: start again from there
            if not handling.before_known:
                log.info("message handled again", extra={"message_id": handling.message_id})
        if data is not None:
            data = {k: v for k, v in data.items() if k not in _DIALOG_MARKS}
        if not handling.before_known:
            handling.before, handling.before_known = data, True
        return data

    async def open_dialog(self, user_id: str) -> dict[str, Any] | None:
        """The user's open dialog record (None: none, or it was closed)."""
        data = await self._dialog_record(user_id)
        return None if data is None or data.get("closed") else data

    async def close_dialog(self, user_id: str) -> None:
        """End the user's dialog; while handling their message, a record of the close stays (once)."""
        handling = _handling.get()
        if handling is None or handling.user_id != user_id:
            await self.store.delete_dialog(user_id)
            return
        await self._read_before(user_id)
        until = self.clock() + self.dialog_ttl
        record = {"user_id": user_id, "closed": True, "expires_at": until}
        await self.store.put_dialog(user_id, self._stamped(record), until)
        handling.wrote = True

    async def _read_before(self, user_id: str) -> None:
        """Before the first change of the author's dialog: what it was before the message, if not read."""
        handling = _handling.get()
        if handling is not None and handling.user_id == user_id and not handling.before_known:
            await self._dialog_record(user_id)

    def _stamped(self, data: dict[str, Any]) -> dict[str, Any]:
        handling = _handling.get()
        if handling is None or handling.user_id != data.get("user_id"):
            return data
        return {**data, "applied_by": handling.message_id, "before": handling.before}

    async def _load_dialog(self, user_id: str) -> Dialog | None:
        data = await self.open_dialog(user_id)
        if data is None:
            return None
        dialog = Dialog.from_dict(data)
        if dialog.expires_at <= self.clock():
            await self._expire(dialog)
            return None
        return dialog

    async def _expire(self, dialog: Dialog) -> None:
        await self.close_dialog(dialog.user_id)
        minutes = max(1, round(self.dialog_ttl / 60))
        await self.chat.send(dialog.room_id, translate(dialog.lang, "dialog.expired", minutes=minutes))

    async def expire_dialogs(self) -> int:
        """Tell people whose dialog timed out; called periodically by the app."""
        expired = await self.store.expired_dialogs(self.clock())
        told = 0
        for data in expired:
            with contextlib.suppress(Exception):
                if data.get("closed"):  # the record of a closed dialog: nobody to tell
                    await self.store.delete_dialog(str(data["user_id"]))
                    continue
                told += 1
                await self._expire(Dialog.from_dict(data))
        return told

    async def _save(self, dialog: Dialog) -> None:
        dialog.expires_at = self.clock() + self.dialog_ttl
        await self._read_before(dialog.user_id)
        await self.store.put_dialog(dialog.user_id, self._stamped(dialog.to_dict()), dialog.expires_at)
        handling = _handling.get()
        if handling is not None and handling.user_id == dialog.user_id:
            handling.wrote = True

    async def _answer(self, dialog: Dialog, text: str) -> Outcome:
        step = self.conversation.answer(dialog, text)
        if step.action == "submit":
            return await self._submit(dialog)
        await self._save(dialog)
        await self._say(dialog, step.replies)
        return Outcome(step.outcome or f"step_{dialog.step}")

    async def _say(self, dialog: Dialog, replies: list[tuple[str, dict[str, Any]]]) -> None:
        await self.chat.send(dialog.room_id, "\n".join(translate(dialog.lang, k, **p) for k, p in replies))

    async def _submit(self, dialog: Dialog) -> Outcome:
        lang = dialog.lang
        try:
            result = await self.erp.create_staff(dialog.staff_body(), dialog.idempotency_key)
        except ErpUnavailable:
            await self._save(dialog)  # keep the answers and the key: a later "yes" repeats the same request
            await self.chat.send(dialog.room_id, translate(lang, "dialog.erp_unavailable"))
            return Outcome("erp_unavailable")
        except ErpError as exc:
            return await self._submit_refused(dialog, exc)
        await self.close_dialog(dialog.user_id)
        await self.remember_lang(dialog.username, lang)
        staff, activation = result["staff"], result.get("activation")
        status = staff["status"]
        detail = f"staff {staff['id']} {status}"
        if activation:
            text = translate(lang, "result.created") + "\n" + self.code_text(lang, activation)
            await self.chat.send(dialog.room_id, text)
            return Outcome("created", detail)
        if status == "pending_approval":
            # Queued first: the tracker is an independent channel, useful even if Rocket.Chat fails below.
            await self.task_pending(staff, dialog.username)
            await self.chat.send(dialog.room_id, translate(lang, "result.pending"))
            request = translate(
                self.language,
                "admins.request",
                id=staff["id"],
                full_name=staff["full_name"],
                username=dialog.username,
                position=self.name(self.language, staff["position"]["name"]),
            )
            posted = await self.chat.send_to_channel(self.admins_channel, request)
            await self._remember_pending(staff["id"], dialog.username, lang, posted, request)
            return Outcome("pending_approval", detail)
        if status == "no_erp_access":
            await self.chat.send(dialog.room_id, translate(lang, "result.no_access"))
            return Outcome("no_erp_access", detail)
        await self.chat.send(dialog.room_id, self.status_text(lang, staff))
        return Outcome(status, detail)

    async def _submit_refused(self, dialog: Dialog, exc: ErpError) -> Outcome:
        lang = dialog.lang
        if exc.code == "staff_exists":
            staff = None
            with contextlib.suppress(ErpError, ErpUnavailable, ValueError, TypeError, KeyError):
                staff = await self.erp.get_staff(int(exc.body["staff_id"]))
            if staff is not None and staff.get("rocketchat_user_id") == dialog.user_id:
                await self.close_dialog(dialog.user_id)
                text = translate(lang, "result.already") + "\n" + self.status_text(lang, staff)
                await self.chat.send(dialog.room_id, text)
                return Outcome("already_registered", exc.code)
            # Someone else's record has this address: say it is taken, reveal nothing, ask again.
            back_to(dialog, "email")
            dialog.email = None
            dialog.renew_key()
            await self._save(dialog)
            await self._say(dialog, [("dialog.email_taken", {}), prompt(dialog, self.conversation)])
            return Outcome("email_taken", exc.code)
        if exc.code in ("position_not_found", "validation_error"):
            step, field = "position", "position_code"
            if exc.code == "validation_error":
                errors = exc.body.get("errors") or [{}]
                loc = errors[0].get("loc") or [""]
                field = str(loc[-1])
                step = FIELD_STEPS.get(field, "name")
            if step == "position":
                with contextlib.suppress(ErpError, ErpUnavailable):
                    dialog.positions = await self._positions()
            back_to(dialog, step)
            dialog.renew_key()
            await self._save(dialog)
            field_key = f"field.{FIELD_STEPS.get(field, 'name')}"
            replies = [("dialog.field_rejected", {"field": translate(lang, field_key)})]
            await self._say(dialog, [*replies, prompt(dialog, self.conversation)])
            return Outcome("refused_field", exc.code)
        await self.close_dialog(dialog.user_id)
        await self.chat.send(dialog.room_id, translate(lang, "erp_error"))
        return Outcome("erp_error", exc.code)

    # --- requests waiting for approval: the person hears the outcome even if it was decided in the ERP ---
    async def _pending(self) -> dict[str, dict[str, str]]:
        raw = await self.store.get_value(PENDING_KEY)
        return json.loads(raw) if raw else {}

    @contextlib.asynccontextmanager
    async def _claimed(self, key: str, seconds: float, wait: float) -> AsyncIterator[bool]:
        """Hold the claim `key` (trying for up to `wait` seconds); yields whether it was taken."""
        deadline = time.monotonic() + wait
        while True:
            now = self.clock()
            until = now + seconds
            if await self.store.claim(key, until, now):
                break
            if time.monotonic() >= deadline:
                yield False
                return
            await asyncio.sleep(0.05)
        try:
            yield True
        finally:
            with contextlib.suppress(Exception):  # a claim not given back ends on its own
                await self.store.release(key, until)

    def deciding(self, staff_id: int, *, wait: float | None = None) -> Any:
        """The claim on deciding request `staff_id` (yields False when another holds it past `wait`,
        by default `deciding_wait`)."""
        wait = self.deciding_wait if wait is None else wait
        return self._claimed(f"{DECIDING_PREFIX}{staff_id}", DECIDING_SECONDS, wait)

    async def _edit_pending(self, change: Callable[[dict[str, dict[str, str]]], Any]) -> Any:
        """Read the map, change it, write it back, with no other edit in between (else one is lost)."""
        async with self._claimed(PENDING_EDIT_KEY, PENDING_EDIT_SECONDS, PENDING_EDIT_SECONDS) as taken:
            if not taken:  # a stuck editor: edit anyway rather than lose this one
                log.warning("pending approvals edited without the claim")
            pending = await self._pending()
            result = change(pending)
            await self.store.set_value(PENDING_KEY, json.dumps(pending))
            return result

    async def _remember_pending(
        self, staff_id: int, username: str, lang: str, posted: Any, request: str
    ) -> None:
        entry = {"username": username, "lang": lang, "text": request}
        if isinstance(posted, dict) and posted.get("room_id") and posted.get("message_id"):
            entry |= {"room_id": str(posted["room_id"]), "message_id": str(posted["message_id"])}
        await self._edit_pending(lambda pending: pending.__setitem__(str(staff_id), entry))

    async def forget_pending(self, staff_id: int) -> dict[str, str]:
        if str(staff_id) not in await self._pending():
            return {}
        entry = await self._edit_pending(lambda pending: pending.pop(str(staff_id), None))
        return entry or {}

    async def mark_request_decided(self, entry: dict[str, str], outcome: str, admin: str | None) -> None:
        """Edit the request's post in the admins channel: decided, by whom, when."""
        if not entry.get("message_id"):
            return
        lang = self.language
        key = f"admins.decided.{outcome}" if admin else "admins.decided.erp"
        status = translate(lang, f"state.{outcome}")
        note = translate(lang, key, admin=admin or "", status=status, at=self.when(lang, self._now()))
        with contextlib.suppress(Exception):  # the decision stands even if the post cannot be edited
            await self.chat.edit(entry["room_id"], entry["message_id"], entry.get("text", "") + "\n" + note)

    async def check_pending(self) -> int:
        """Tell people whose request was decided outside the bot; called periodically by the app."""
        told = 0
        for key in await self._pending():
            async with self.deciding(int(key), wait=0) as taken:
                if not taken:
                    continue  # an admin is deciding it through the bot right now: they tell the person
                result = await self._tell_decided(int(key))
            if result is None:
                return told  # the ERP is down: try again next round
            told += result
        return told

    async def _tell_decided(self, staff_id: int) -> int | None:
        """Tell the person about request `staff_id` if it was decided (held under its deciding claim):
        1 if told, 0 if not (still waiting, or already told), None while the ERP is down."""
        entry = (await self._pending()).get(str(staff_id))
        if entry is None:
            return 0  # decided through the bot meanwhile: the admin's command told the person
        username, lang = entry["username"], entry.get("lang", self.language)
        try:
            staff = await self.erp.get_staff(staff_id)
            if staff["status"] == "pending_approval":
                return 0
            outcome = str(staff["status"])
            text = await self._outcome_text(staff, lang)
        except ErpUnavailable:
            return None
        except ErpError as exc:
            if exc.code != "not_found":
                return 0
            text, outcome = None, "deleted"
        await self.forget_pending(staff_id)
        await self.mark_request_decided(entry, outcome, None)
        await self.task_decided(staff_id, outcome)
        if not text:
            return 0
        await self.direct(username, text)
        await self.store.add_audit(
            {
                "username": username,
                "command": "approval_watch",
                "outcome": outcome,
                "detail": f"staff {staff_id}",
            }
        )
        return 1

    async def _outcome_text(self, staff: dict[str, Any], lang: str) -> str:
        staff_id, status = staff["id"], staff["status"]
        if status == "awaiting_activation":
            # The code was issued to whoever approved in the ERP; a fresh one goes to its owner.
            activation = (await self.erp.reissue_code(staff_id))["activation"]
            return translate(lang, "approval.approved_user") + "\n" + self.code_text(lang, activation)
        if status == "no_erp_access":
            return translate(lang, "approval.approved_user") + "\n" + translate(lang, "result.no_access")
        if status == "rejected":
            return self.rejection_text(lang, staff.get("status_reason"), None)
        return self.status_text(lang, staff)

    async def task_pending(self, staff: dict[str, Any], username: str) -> None:
        """Queue a tracker task for the admins (no network here: the outbox delivers it)."""
        if self.tasks is None:
            return
        try:
            await self.tasks.registration_pending(staff, username)
        except Exception:  # the tracker is a side channel: a registration never fails because of it
            log.exception("task open not queued", extra={"staff_id": staff.get("id")})

    async def task_decided(
        self, staff_id: int, outcome: str, *, admin: str | None = None, reason: str | None = None
    ) -> None:
        """Queue the tracker task's close (no network here: the outbox delivers it)."""
        if self.tasks is None:
            return
        try:
            await self.tasks.registration_decided(staff_id, outcome, admin=admin, reason=reason)
        except Exception:  # the tracker is a side channel: a decision never fails because of it
            log.exception("task close not queued", extra={"staff_id": staff_id})

    # --- texts built from ERP records ---
    def code_text(self, lang: str, activation: dict[str, Any]) -> str:
        url = translate(lang, "code.url", url=self.activation_url) if self.activation_url else ""
        return translate(
            lang,
            "code.issued",
            login=activation["login"],
            code=activation["code"],
            expires=self.when(lang, activation.get("expires_at")),
            url=url,
        )

    def rejection_text(self, lang: str, reason: str | None, admin: str | None) -> str:
        why = translate(lang, "approval.reason", reason=reason) if reason else ""
        contact = translate(lang, "contact.admin", admin=admin) if admin else translate(lang, "contact.hr")
        return translate(lang, "approval.rejected_user", reason=why, contact=contact)

    def status_text(self, lang: str, staff: dict[str, Any], *, for_admin: bool = False) -> str:
        status = str(staff.get("status", ""))
        position = self.name(lang, str((staff.get("position") or {}).get("name", "")))
        header = translate(
            lang,
            "status.header_admin" if for_admin else "status.header",
            id=staff.get("id"),
            full_name=staff.get("full_name"),
            username=staff.get("rocketchat_username") or "",
            position=position,
        )
        login = (staff.get("user") or {}).get("login", "")
        reason = staff.get("status_reason")
        why = translate(lang, "approval.reason", reason=reason) if reason else ""
        key = f"status.{status}"
        if translate(lang, key) == key:
            return header + "\n" + translate(lang, "status.unknown", status=status)
        body = translate(lang, key, login=login, reason=why, contact=translate(lang, "contact.hr"))
        return header + "\n" + body
