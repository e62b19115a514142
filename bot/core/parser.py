"""Turn a chat message into a command. Total: any input gives a `Command`, never an exception.

The words come from the command registry (bot/core/commands.py). People type «Регистрация!», «помощь?»,
«Register please», «хочу зарегистрироваться», «Привет»: case and punctuation around the command word are
ignored, and free text is read for an intent (register, help, greeting) in the language it is written in.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from bot.core.commands import CommandSpec, Registry, UsageError

USERNAME_RE = re.compile(r"^@?([A-Za-z0-9._-]{1,64})$")
POSITION_CODE_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")  # the ERP's PositionCode
ON_WORDS = {
    "on": True,
    "вкл": True,
    "да": True,
    "yes": True,
    "off": False,
    "выкл": False,
    "нет": False,
    "no": False,
}
ACCESS_WORDS = {"access", "доступ"}
MAX_ID = 10**12
MAX_REASON = 500  # the ERP's SafeText
MAX_AUDIT = 100
MAX_REPORT_DAYS = 366  # the ERP's longest report period
DEFAULT_REPORT_DAYS = 7
PUNCTUATION = " .,!?;:…«»\"'()[]¡¿"

# Free text: stems that show what a person wants (lower case, matched at the start of a word).
INTENTS: dict[str, tuple[str, ...]] = {
    "register": ("регистр", "зарегистр", "register", "registration", "sign up", "signup", "onboard", "оформ"),
    "help": ("помощ", "помоги", "справк", "help", "команд", "command", "что умеешь", "what can you"),
    "status": ("статус", "status"),
}
GREETINGS = (
    *("привет", "здравствуй", "здравствуйте", "добрый день", "доброе утро", "добрый вечер", "хай", "салют"),
    *("hello", "hi", "hey", "good morning", "good afternoon", "good evening", "greetings"),
)


@dataclass(frozen=True)
class Command:
    """`spec` is None for text that is not a command (a dialog answer, free text)."""

    spec: CommandSpec | None
    text: str
    args: dict[str, Any] = field(default_factory=dict)
    lang: str | None = None
    usage_error: bool = False
    intent: str | None = None  # for free text: "register", "help", "status", "greeting" or None

    @property
    def name(self) -> str:
        return self.spec.name if self.spec else ""


def normalise(text: str) -> str:
    """NFC, control characters dropped, whitespace collapsed."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in text)
    return " ".join(text.split())


def text_language(text: str) -> str | None:
    """ "ru" for Cyrillic, "en" for Latin letters, None when the text has no letters to tell."""
    if re.search("[А-Яа-яЁё]", text):
        return "ru"
    if re.search("[A-Za-z]", text):
        return "en"
    return None


def strip_mention(text: str, bot_username: str | None) -> tuple[str, bool]:
    """Remove a leading `@bot` (with an optional `:` or `,`); report whether the bot was mentioned."""
    if not bot_username:
        return text, False
    mention = f"@{bot_username}".lower()
    lowered = text.lower()
    if lowered.startswith(mention) and (len(text) == len(mention) or not _is_name_char(text[len(mention)])):
        rest = text[len(mention) :].lstrip(" :,")
        return rest, True
    mentioned = re.search(rf"(?<![\w@]){re.escape(mention)}(?![\w.-])", lowered) is not None
    return text, mentioned


def _is_name_char(ch: str) -> bool:
    return ch.isalnum() or ch in "._-"


def intent_of(text: str) -> str | None:
    lowered = " " + " ".join(re.sub(r"[^\w\s-]", " ", text.lower()).split())
    for intent, stems in INTENTS.items():
        if any(f" {stem}" in lowered for stem in stems):
            return intent
    if any(lowered == f" {g}" or lowered.startswith(f" {g} ") for g in GREETINGS):
        return "greeting"
    return None


def parse(raw: str, registry: Registry, bot_username: str | None = None) -> Command:
    text, _ = strip_mention(normalise(raw), bot_username)
    if not text:
        return Command(spec=None, text="")
    head, _, rest = text.partition(" ")
    word = head.lower().lstrip("/!").strip(PUNCTUATION)
    found = registry.lookup(word)
    if found is None:
        return Command(spec=None, text=text, lang=text_language(text), intent=intent_of(text))
    spec, lang = found
    try:
        args = spec.args(rest.strip())
    except UsageError:
        return Command(spec=spec, text=text, lang=lang, usage_error=True)
    return Command(spec=spec, text=text, args=args, lang=lang)


# --- argument parsers (each command's spec names one) ---


def _staff_id(token: str) -> int:
    token = token.lstrip("#№")
    if not token.isascii() or not token.isdigit() or not 0 < int(token) < MAX_ID:
        raise UsageError
    return int(token)


def _username(token: str) -> str:
    match = USERNAME_RE.match(token)
    if not match:
        raise UsageError
    return match.group(1)


def status_args(text: str) -> dict[str, Any]:
    text = text.strip(PUNCTUATION)
    if not text:
        return {}
    parts = text.split()
    if len(parts) != 1:
        raise UsageError
    return {"username": _username(parts[0])}


def staff_id_args(text: str) -> dict[str, Any]:
    parts = text.strip(PUNCTUATION).split()
    if len(parts) != 1:
        raise UsageError
    return {"staff_id": _staff_id(parts[0])}


def reject_args(text: str) -> dict[str, Any]:
    head, _, reason = text.partition(" ")
    if not head:
        raise UsageError
    reason = reason.strip()
    if len(reason) > MAX_REASON:
        raise UsageError
    return {"staff_id": _staff_id(head.strip(PUNCTUATION)), "reason": reason or None}


def username_args(text: str) -> dict[str, Any]:
    parts = text.strip(PUNCTUATION).split()
    if len(parts) != 1:
        raise UsageError
    return {"username": _username(parts[0])}


def position_args(text: str) -> dict[str, Any]:
    parts = text.split()
    if len(parts) != 3 or parts[1].lower() not in ACCESS_WORDS or parts[2].lower() not in ON_WORDS:
        raise UsageError
    if not POSITION_CODE_RE.match(parts[0]):
        raise UsageError
    return {"code": parts[0], "erp_access": ON_WORDS[parts[2].lower()]}


def audit_args(text: str) -> dict[str, Any]:
    if not text:
        return {"limit": 10}
    if not text.isascii() or not text.isdigit() or not 0 < int(text) <= MAX_AUDIT:
        raise UsageError
    return {"limit": int(text)}


def report_args(text: str) -> dict[str, Any]:
    if not text:
        return {"days": DEFAULT_REPORT_DAYS}
    if not text.isascii() or not text.isdigit() or not 0 < int(text) <= MAX_REPORT_DAYS:
        raise UsageError
    return {"days": int(text)}
