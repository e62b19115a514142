"""Every command, each declared once with `@COMMANDS.botcmd` (words per language, admin flag, arguments).

Help lines come from the i18n keys `cmd.<name>.args` and `cmd.<name>.help`. Handlers talk through the router's
ports and return an `Outcome`; they raise no chat errors: ERP failures propagate and the router answers them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from bot.core import parser
from bot.core.commands import Context, Outcome, Registry, any_args, no_args
from bot.erp_client import ErpError

if TYPE_CHECKING:
    from bot.core.router import Router

COMMANDS = Registry()


# --- everyone's commands ---


@COMMANDS.botcmd(
    en=("register", "registration", "signup"),
    ru=("регистрация", "зарегистрироваться", "зарегистрируй", "регистрироваться"),
    args=any_args,
    in_dialog=True,
)
async def register(bot: Router, ctx: Context) -> Outcome:
    return await bot.start_registration(ctx)


@COMMANDS.botcmd(
    en=("status",), ru=("статус",), args=parser.status_args, admin=lambda a: bool(a), in_dialog=True
)
async def status(bot: Router, ctx: Context) -> Outcome:
    username = ctx.args.get("username")
    if username:
        staff = await bot.erp.find_staff(rocketchat_username=str(username))
        if staff is None:
            await bot.reply(ctx, "staff.not_found", username=username)
            return Outcome("not_found", f"@{username}")
        await bot.reply_text(ctx, bot.status_text(ctx.lang, staff, for_admin=True))
        return Outcome("ok", f"@{username}")
    staff = await bot.erp.find_staff(rocketchat_user_id=ctx.msg.user_id)
    if staff is None:
        await bot.reply(ctx, "status.none")
        return Outcome("not_registered")
    await bot.reply_text(ctx, bot.status_text(ctx.lang, staff))
    return Outcome("ok")


@COMMANDS.botcmd(
    en=("help", "commands"), ru=("помощь", "справка", "команды"), args=any_args, in_dialog=True, name="help"
)
async def help_(bot: Router, ctx: Context) -> Outcome:
    text = COMMANDS.help_text(ctx.lang, admin=await bot.is_admin(ctx.msg.user_id))
    if ctx.kind == "dialog_help":
        text = bot.t(ctx.lang, "dialog.help") + "\n\n" + text
    await bot.reply_text(ctx, text)
    return Outcome("ok")


@COMMANDS.botcmd(en=("cancel", "stop"), ru=("отмена", "отменить", "стоп"), args=any_args, in_dialog=True)
async def cancel(bot: Router, ctx: Context) -> Outcome:
    if await bot.open_dialog(ctx.msg.user_id) is None:
        await bot.reply(ctx, "dialog.nothing_to_cancel")
        return Outcome("nothing")
    await bot.close_dialog(ctx.msg.user_id)
    await bot.reply(ctx, "dialog.cancelled")
    return Outcome("cancelled")


# --- admin commands ---


@COMMANDS.botcmd(en=("approve",), ru=("одобрить",), args=parser.staff_id_args, admin=True)
async def approve(bot: Router, ctx: Context) -> Outcome:
    staff_id = int(ctx.args["staff_id"])
    async with bot.deciding(staff_id) as taken:  # the approval watch stays out meanwhile (one code, one DM)
        if not taken:
            await bot.reply(ctx, "approval.busy", id=staff_id)
            return Outcome("decision_in_progress", f"staff {staff_id}")
        return await _approve(bot, ctx, staff_id)


async def _approve(bot: Router, ctx: Context, staff_id: int) -> Outcome:
    result = await bot.staff_call(ctx, staff_id, "approve", bot.erp.approve(staff_id))
    if isinstance(result, Outcome):
        return result
    staff, activation = result["staff"], result.get("activation")
    username = staff.get("rocketchat_username") or ""
    await bot.reply(ctx, "approval.approved_admin", id=staff_id, username=username)
    entry = await bot.forget_pending(staff_id)
    await bot.mark_request_decided(entry, "approved", ctx.msg.username)
    await bot.task_decided(staff_id, "approved", admin=ctx.msg.username)
    if username:
        lang = entry.get("lang") or await bot.person_lang(username)
        text = bot.t(lang, "approval.approved_user") + "\n"
        text += bot.code_text(lang, activation) if activation else bot.t(lang, "result.no_access")
        await bot.direct(username, text)
    return Outcome("approved", f"staff {staff_id}")


@COMMANDS.botcmd(en=("reject",), ru=("отклонить",), args=parser.reject_args, admin=True)
async def reject(bot: Router, ctx: Context) -> Outcome:
    staff_id = int(ctx.args["staff_id"])
    async with bot.deciding(staff_id) as taken:
        if not taken:
            await bot.reply(ctx, "approval.busy", id=staff_id)
            return Outcome("decision_in_progress", f"staff {staff_id}")
        return await _reject(bot, ctx, staff_id, ctx.args.get("reason"))


async def _reject(bot: Router, ctx: Context, staff_id: int, reason: str | None) -> Outcome:
    staff = await bot.staff_call(ctx, staff_id, "reject", bot.erp.reject(staff_id, reason))
    if isinstance(staff, Outcome):
        return staff
    username = staff.get("rocketchat_username") or ""
    await bot.reply(ctx, "approval.rejected_admin", id=staff_id, username=username)
    entry = await bot.forget_pending(staff_id)
    await bot.mark_request_decided(entry, "rejected", ctx.msg.username)
    await bot.task_decided(staff_id, "rejected", admin=ctx.msg.username, reason=reason)
    if username:
        lang = entry.get("lang") or await bot.person_lang(username)
        await bot.direct(username, bot.rejection_text(lang, reason, ctx.msg.username))
    return Outcome("rejected", f"staff {staff_id}")


@COMMANDS.botcmd(en=("block",), ru=("заблокировать",), args=parser.username_args, admin=True)
async def block(bot: Router, ctx: Context) -> Outcome:
    return await _block_or_unblock(bot, ctx, "block")


@COMMANDS.botcmd(en=("unblock",), ru=("разблокировать",), args=parser.username_args, admin=True)
async def unblock(bot: Router, ctx: Context) -> Outcome:
    return await _block_or_unblock(bot, ctx, "unblock")


async def _block_or_unblock(bot: Router, ctx: Context, action: str) -> Outcome:
    username = str(ctx.args["username"])
    staff = await bot.staff_by_username(ctx, username)
    if isinstance(staff, Outcome):
        return staff
    call = bot.erp.block(staff["id"]) if action == "block" else bot.erp.unblock(staff["id"])
    result = await bot.staff_call(ctx, staff["id"], action, call)
    if isinstance(result, Outcome):
        return result
    await bot.reply(ctx, f"{action}.done", username=username)
    # The employee hears it too, in their language, with whom to ask.
    lang = await bot.person_lang(username)
    await bot.direct(username, bot.t(lang, f"{action}.user", admin=ctx.msg.username))
    return Outcome(f"{action}ed", f"@{username}")


@COMMANDS.botcmd(en=("reissue",), ru=("перевыпустить", "новый-код"), args=parser.username_args, admin=True)
async def reissue(bot: Router, ctx: Context) -> Outcome:
    username = str(ctx.args["username"])
    staff = await bot.staff_by_username(ctx, username)
    if isinstance(staff, Outcome):
        return staff
    result = await bot.staff_call(ctx, staff["id"], "reissue", bot.erp.reissue_code(staff["id"]))
    if isinstance(result, Outcome):
        return result
    # The code goes to its owner only, in their language, never into the admin's room.
    lang = await bot.person_lang(username)
    text = bot.t(lang, "code.reissued_user") + "\n" + bot.code_text(lang, result["activation"])
    await bot.direct(username, text)
    await bot.reply(ctx, "code.reissued_admin", username=username)
    return Outcome("reissued", f"@{username}")


@COMMANDS.botcmd(en=("positions",), ru=("должности",), args=no_args, admin=True)
async def positions(bot: Router, ctx: Context) -> Outcome:
    items = await bot.erp.positions()
    if not items:
        await bot.reply(ctx, "positions.empty")
        return Outcome("ok")
    yes, no = bot.t(ctx.lang, "word.yes"), bot.t(ctx.lang, "word.no")
    lines = [bot.t(ctx.lang, "positions.header")] + [
        bot.t(
            ctx.lang,
            "positions.line",
            code=p["code"],
            name=bot.name(ctx.lang, p["name"]),
            access=yes if p.get("erp_access") else no,
            approval=yes if p.get("requires_approval") else no,
        )
        for p in items
    ]
    await bot.reply_text(ctx, "\n".join(lines))
    return Outcome("ok")


@COMMANDS.botcmd(en=("position",), ru=("должность",), args=parser.position_args, admin=True)
async def position(bot: Router, ctx: Context) -> Outcome:
    code, access = str(ctx.args["code"]), bool(ctx.args["erp_access"])
    detail = f"{code} erp_access={access}"
    try:
        updated = await bot.erp.update_position(code, {"erp_access": access})
    except ErpError as exc:
        if exc.code in ("not_found", "position_not_found"):
            await bot.reply(ctx, "position.not_found", code=code)
            return Outcome("not_found", detail)
        raise
    word = bot.t(ctx.lang, "word.on" if updated.get("erp_access") else "word.off")
    await bot.reply(ctx, "position.updated", code=updated["code"], access=word)
    return Outcome("updated", detail)


@COMMANDS.botcmd(en=("audit",), ru=("аудит",), args=parser.audit_args, admin=True)
async def audit(bot: Router, ctx: Context) -> Outcome:
    entries = await bot.store.list_audit(int(ctx.args["limit"]))
    if not entries:
        await bot.reply(ctx, "audit.empty")
        return Outcome("ok")
    lines = [bot.t(ctx.lang, "audit.header")] + [
        bot.t(
            ctx.lang,
            "audit.line",
            id=e["id"],
            username=e.get("username") or "?",
            command=e.get("command"),
            outcome=e.get("outcome"),
            at=bot.when(ctx.lang, datetime.fromtimestamp(float(e["at"]), UTC)),
        )
        for e in entries
    ]
    await bot.reply_text(ctx, "\n".join(lines))
    return Outcome("ok")


@COMMANDS.botcmd(en=("report",), ru=("отчёт", "отчет"), args=parser.report_args, admin=True)
async def report(bot: Router, ctx: Context) -> Outcome:
    from bot.core.report import report_text

    days = int(ctx.args["days"])
    now = datetime.fromtimestamp(bot.clock(), UTC)
    data = await bot.erp.registration_report(since=now - timedelta(days=days), until=now)
    await bot.reply_text(ctx, report_text(ctx.lang, data, days, now, bot.timezone))
    return Outcome("ok", f"days {days}")
