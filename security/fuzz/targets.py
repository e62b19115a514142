"""Fuzz targets: each takes the fuzzer's bytes, drives one parser, and raises only on a real defect.

An exception a target expects (a validation error: the input was refused cleanly) is swallowed; any
other exception, or a broken invariant (AssertionError), is a crash the fuzzer keeps.

- bot_parser: the bot's command parser (bot/core/parser.py) over the real command registry;
- bot_dialog: the registration dialog (bot/core/dialog.py), one answer per input line;
- erp_validation: the ERP's request models (erp/schemas.py) from raw JSON bytes, the body checks of
  the middleware and the audit's value cleaning;
- erp_transliteration: logins from names (erp/services/transliteration.py): always ASCII, bounded;
- sim_ddp: the simulator's DDP frame handling (rocketchat_sim/ddp.py) on a connection whose socket is
  a list (the frame handling is real; only the bytes going out are kept instead of sent).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

LOGIN_RE = re.compile(r"^[a-z0-9.-]{1,64}$")


class Defect(AssertionError):
    """A broken invariant: the fuzzer keeps the input."""


def check(condition: object, what: object) -> None:
    if not condition:
        raise Defect(repr(what))


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def bot_parser(data: bytes) -> None:
    from bot.core.handlers import COMMANDS
    from bot.core.parser import intent_of, parse, text_language

    text = _text(data)
    command = parse(text, COMMANDS, "erp.bot")
    check(command.text is not None, text)
    if command.spec is None:
        intent_of(text)
        text_language(text)


_POSITIONS = [
    {"code": "ENG", "name": "Инженер", "department": "Производство", "erp_access": True},
    {"code": "ACC", "name": "Бухгалтер", "department": "", "erp_access": True, "requires_approval": True},
    {"code": "CLN", "name": "Уборщик", "department": "", "erp_access": False},
]


def bot_dialog(data: bytes) -> None:
    from bot.core.dialog import ConversationHandler, Dialog

    handler = ConversationHandler()
    dialog = Dialog(
        user_id="u1", username="fuzz", room_id="r1", lang="ru", expires_at=0.0, positions=_POSITIONS
    )
    for line in _text(data).split("\n")[:12]:
        step = handler.answer(dialog, line)
        check(isinstance(step.replies, list), line)
        if step.action == "submit":
            body = dialog.staff_body()
            check(body["full_name"], body)
            check(body["email"], body)


def erp_validation(data: bytes) -> None:
    from pydantic import ValidationError

    from erp.middleware import _is_json
    from erp.schemas import ActivateRequest, PositionPatch, RejectRequest, StaffCreate
    from erp.services.audit import clean

    for model in (StaffCreate, ActivateRequest, PositionPatch, RejectRequest):
        try:
            parsed = model.model_validate_json(data)
        except ValidationError:
            continue
        if isinstance(parsed, StaffCreate):  # what passed must be what the database and logins take
            check(parsed.email == parsed.email.lower(), parsed.email)
            check(len(parsed.full_name) <= 150, parsed.full_name)
    _is_json(data[:200])
    cleaned = clean(_text(data), 200)
    check(cleaned is None or (len(cleaned) <= 200 and cleaned.isprintable()), cleaned)


def erp_transliteration(data: bytes) -> None:
    from pydantic import ValidationError

    from erp.schemas import StaffCreate
    from erp.services.transliteration import login_base, transliterate

    text = _text(data)[:300]
    transliterate(text)
    body = {
        "full_name": text,
        "email": "fuzz@example.com",
        "position_code": "ENG",
        "rocketchat_user_id": "u1",
        "rocketchat_username": "fuzz",
    }
    try:
        name = StaffCreate.model_validate(body).full_name
    except ValidationError:
        return
    login = login_base(name)  # a name the API accepts always gives a usable login
    check(LOGIN_RE.fullmatch(login), (name, login))


_DDP: Any = None


def _ddp() -> Any:
    """One simulator (state in memory) and a connection class whose socket is a list."""
    global _DDP
    if _DDP is None:
        from rocketchat_sim.app import Simulator
        from rocketchat_sim.config import SimSettings
        from rocketchat_sim.ddp import Connection

        class Captured(Connection):
            def write(self, frame: bytes, text: str) -> None:
                self.out.append(frame)
                if len(self.out) > 64:
                    self.out.clear()

            def close(self, code: int = 1000) -> None:
                self.closed = True

        sim = Simulator(SimSettings(_env_file=None))
        _DDP = (sim.realtime, Captured)
    return _DDP


def sim_ddp(data: bytes) -> None:
    from rocketchat_sim.ddp import text_frame

    realtime, captured = _ddp()
    conn = captured(realtime, None, None)
    for line in _text(data).split("\n")[:8]:
        realtime.handle(conn, line)
        if conn.closed:
            break
    text_frame(_text(data[:512]))
    realtime.forget(conn)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "bot_parser": bot_parser,
    "bot_dialog": bot_dialog,
    "erp_validation": erp_validation,
    "erp_transliteration": erp_transliteration,
    "sim_ddp": sim_ddp,
}
# What each target's coverage instrumentation covers (atheris.instrument_imports).
INSTRUMENTED = {
    "bot_parser": ("bot.core.parser", "bot.core.commands", "bot.core.handlers"),
    "bot_dialog": ("bot.core.dialog",),
    "erp_validation": ("erp.schemas", "erp.middleware", "erp.services.audit"),
    "erp_transliteration": ("erp.services.transliteration", "erp.schemas"),
    "sim_ddp": ("rocketchat_sim.ddp",),
}
