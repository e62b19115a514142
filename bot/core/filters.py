"""The steps every message passes before its handler, as errbot's `@cmdfilter`: each returns None to let
the message through or an `Outcome` that ends it. Dialog answers are not commands: the rate limit counts
commands and free text only. Nothing is dropped silently: a limited command is answered with the wait.

Deduplication and addressing run in the router before these (they decide whether a message is for the bot
at all); the audit entry is written after the handler, for every message that reached the pipeline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.core.commands import Context, Outcome
from bot.core.handlers import COMMANDS

if TYPE_CHECKING:
    from bot.core.router import Router


@COMMANDS.cmdfilter
async def too_long(bot: Router, ctx: Context) -> Outcome | None:
    if len(ctx.msg.text) > bot.max_input_length:
        await bot.reply(ctx, "too_long", limit=bot.max_input_length)
        return Outcome("too_long")
    return None


@COMMANDS.cmdfilter
async def rate_limit(bot: Router, ctx: Context) -> Outcome | None:
    if ctx.kind == "answer":
        return None
    wait = bot.rate_wait(ctx.msg.user_id)
    if wait is None:
        return None
    if wait >= 0:  # answered each time, up to a second limit's worth of answers, then quiet (logged)
        await bot.reply(ctx, "rate_limited", seconds=max(1, round(wait)))
    return Outcome("rate_limited")


@COMMANDS.cmdfilter
async def admin_check(bot: Router, ctx: Context) -> Outcome | None:
    if ctx.spec is None or not ctx.spec.needs_admin(ctx.args):
        return None
    ctx.is_admin = await bot.is_admin(ctx.msg.user_id)
    if ctx.is_admin:
        return None
    await bot.reply(ctx, "not_admin")
    return Outcome("denied", ctx.msg.text[:200])


@COMMANDS.cmdfilter
async def usage(bot: Router, ctx: Context) -> Outcome | None:
    if ctx.spec is None or not ctx.usage_error:
        return None
    await bot.reply(
        ctx, "usage", usage=ctx.spec.usage(ctx.lang), help=bot.t(ctx.lang, f"cmd.{ctx.spec.name}.help")
    )
    return Outcome("usage")
