"""`python -m bot`: run the onboarding bot with settings from BOT_* (see docs/bot-admin-guide.md)."""

from __future__ import annotations

import asyncio
import sys

from pydantic import ValidationError

from bot.app import BotApp
from bot.logging import configure_logging
from bot.settings import BotSettings


def main() -> int:
    try:
        settings = BotSettings()
    except (ValidationError, ValueError, OSError) as exc:
        # pydantic's message names the setting and the rule; secret values are SecretStr and not echoed.
        errors = exc.errors(include_input=False) if isinstance(exc, ValidationError) else [{"msg": str(exc)}]
        for error in errors:
            location = ".".join(str(part) for part in error.get("loc", ())) or "settings"
            print(f"bot: invalid configuration: {location}: {error['msg']}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    # uvloop (installed with uvicorn[standard]) when present: the loop's own overhead per message is lower.
    try:
        import uvloop
    except ImportError:
        loop_factory = None
    else:
        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(BotApp(settings).run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
