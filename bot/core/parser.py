"""Turn a chat message into a command. Total: any input gives a `Command`, never an exception."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

# Canonical command -> words that invoke it, with the language each word implies.
ALIASES: dict[str, dict[str, str]] = {
    "register": {"register": "en", "registration": "en", "регистрация": "ru", "зарегистрироваться": "ru"},
    "status": {"status": "en", "статус": "ru"},
    "help": {"help": "en", "помощь": "ru", "справка": "ru"},
    "cancel": {"cancel": "en", "stop": "en", "отмена": "ru", "отменить": "ru"},
    "approve": {"approve": "en", "одобрить": "ru"},
    "reject": {"reject": "en", "отклонить": "ru"},
    "block": {"block": "en", "заблокировать": "ru"},
    "unblock": {"unblock": "en", "разблокировать": "ru"},
    "positions": {"positions": "en", "должности": "ru"},
    "position": {"position": "en", "должность": "ru"},
    "reissue": {"reissue": "en", "перевыпустить": "ru", "новый-код": "ru"},
    "audit": {"audit": "en", "аудит": "ru"},
    "report": {"report": "en", "отчет": "ru", "отчёт": "ru"},
}
WORDS: dict[str, tuple[str, str]] = {
    word: (name, lang) for name, words in ALIASES.items() for word, lang in words.items()
}
ADMIN_COMMANDS = frozenset(
    {"approve", "reject", "block", "unblock", "positions", "position", "reissue", "audit", "report"}
)
USER_COMMANDS = ("register", "status", "help", "cancel")

USERNAME_RE = re.compile(r"^@?([A-Za-z0-9._-]{1,64})$")
POSITION_CODE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
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
MAX_REASON = 500
MAX_AUDIT = 100
MAX_REPORT_DAYS = 366  # the ERP's longest report period
DEFAULT_REPORT_DAYS = 7


@dataclass(frozen=True)
class Command:
    """`name` is "" for text that is not a command (a dialog answer, or nothing)."""

    name: str
    text: str
    args: dict[str, object] = field(default_factory=dict)
    lang: str | None = None
    error: str | None = None  # i18n key of the usage message when the arguments are wrong


def normalise(text: str) -> str:
    """NFC, control characters dropped, whitespace collapsed."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in text)
    return " ".join(text.split())


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


def parse(raw: str, bot_username: str | None = None) -> Command:
    text, _ = strip_mention(normalise(raw), bot_username)
    if not text:
        return Command(name="", text="")
    head, _, rest = text.partition(" ")
    word = head.lower().lstrip("/!")
    if word not in WORDS:
        return Command(name="", text=text)
    name, lang = WORDS[word]
    args_text = rest.strip()
    try:
        args = _ARG_PARSERS[name](args_text)
    except _UsageError:
        return Command(name=name, text=text, lang=lang, error=f"usage.{name}")
    return Command(name=name, text=text, args=args, lang=lang)


class _UsageError(Exception):
    pass


def _no_args(text: str) -> dict[str, object]:
    if text:
        raise _UsageError
    return {}


def _staff_id(token: str) -> int:
    token = token.lstrip("#")
    if not token.isascii() or not token.isdigit() or not 0 < int(token) < MAX_ID:
        raise _UsageError
    return int(token)


def _username(token: str) -> str:
    match = USERNAME_RE.match(token)
    if not match:
        raise _UsageError
    return match.group(1)


def _status(text: str) -> dict[str, object]:
    if not text:
        return {}
    parts = text.split()
    if len(parts) != 1:
        raise _UsageError
    return {"username": _username(parts[0])}


def _approve(text: str) -> dict[str, object]:
    parts = text.split()
    if len(parts) != 1:
        raise _UsageError
    return {"staff_id": _staff_id(parts[0])}


def _reject(text: str) -> dict[str, object]:
    head, _, reason = text.partition(" ")
    if not head:
        raise _UsageError
    reason = reason.strip()
    if len(reason) > MAX_REASON:
        raise _UsageError
    return {"staff_id": _staff_id(head), "reason": reason or None}


def _user_arg(text: str) -> dict[str, object]:
    parts = text.split()
    if len(parts) != 1:
        raise _UsageError
    return {"username": _username(parts[0])}


def _position(text: str) -> dict[str, object]:
    parts = text.split()
    if len(parts) != 3 or parts[1].lower() not in ACCESS_WORDS or parts[2].lower() not in ON_WORDS:
        raise _UsageError
    if not POSITION_CODE_RE.match(parts[0]):
        raise _UsageError
    return {"code": parts[0], "erp_access": ON_WORDS[parts[2].lower()]}


def _audit(text: str) -> dict[str, object]:
    if not text:
        return {"limit": 10}
    if not text.isascii() or not text.isdigit() or not 0 < int(text) <= MAX_AUDIT:
        raise _UsageError
    return {"limit": int(text)}


def _report(text: str) -> dict[str, object]:
    if not text:
        return {"days": DEFAULT_REPORT_DAYS}
    if not text.isascii() or not text.isdigit() or not 0 < int(text) <= MAX_REPORT_DAYS:
        raise _UsageError
    return {"days": int(text)}


_ARG_PARSERS = {
    "register": _no_args,
    "status": _status,
    "help": lambda _text: {},
    "cancel": lambda _text: {},
    "approve": _approve,
    "reject": _reject,
    "block": _user_arg,
    "unblock": _user_arg,
    "positions": _no_args,
    "position": _position,
    "reissue": _user_arg,
    "audit": _audit,
    "report": _report,
}
