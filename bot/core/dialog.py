"""The registration dialog as a conversation handler (as python-telegram-bot's ConversationHandler).

Entry points start it (the `register` command, or text that asks to register), each state takes one answer,
fallbacks work in every state (`back`, `cancel`, `help`). Pure logic: `ConversationHandler.answer` takes the
dialog and an answer and returns a `Step` (what to say, what to do); the router does the talking and the ERP
call. The dialog is a plain dict-able object so the store can persist it.

The checks mirror the ERP's (erp/schemas.py: PersonName, Email, Phone) and are stricter where the ERP would
accept something that fails later (a one-word name, a 10-digit Russian number, a mistyped `.con`).
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from email_validator import EmailNotValidError
from email_validator import validate_email as _email_validator

from bot.i18n import translate

STEPS = ("name", "position", "email", "phone", "confirm")
FIELDS = ("name", "position", "email", "phone")  # the steps a person can go back to from the summary
CYRILLIC, LATIN = "А-Яа-яЁё", "A-Za-z"
# The ERP's PersonName: letters separated by single spaces, hyphens or apostrophes, 2 to 150 characters.
NAME_RE = re.compile(rf"^[{LATIN}{CYRILLIC}]+(?:[ '\-’][{LATIN}{CYRILLIC}]+)*$")
WORD_RE = re.compile(rf"[{LATIN}{CYRILLIC}]+")
# Common Russian surname endings: "Алёна Иванова" is most likely given name first.
SURNAME_ENDINGS = (
    "ов",
    "ова",
    "ев",
    "ева",
    "ёв",
    "ёва",
    "ин",
    "ина",
    "ын",
    "ына",
    "ский",
    "ская",
    "цкий",
    "цкая",
)
# The ERP's Phone: E.164, at most 15 digits. Numbers of known countries must have their full length.
E164_RE = re.compile(r"^\+[1-9]\d{6,14}$")
NATIONAL_DIGITS = {"7": 10, "375": 9, "380": 9, "1": 10, "44": 10, "49": None}
# Top-level domains people mistype; the ERP accepts them, the mail never arrives.
TLD_TYPOS = {"con": "com", "cmo": "com", "ocm": "com", "comm": "com", "cm": "com", "rru": "ru", "ry": "ru"}

# Fallbacks: words that work in every state (compared after `normalise_answer`).
BACK_WORDS = {"back", "назад", "вернуться", "previous", "предыдущий"}
SKIP_WORDS = {"-", "—", "skip", "no", "none", "нет", "пропустить", "пропуск", "без телефона", "no phone"}
YES_WORDS = {
    *("yes", "y", "yep", "yeah", "confirm", "ok", "okay", "correct", "send", "yes send"),
    *("да", "д", "ага", "подтвердить", "подтверждаю", "верно", "всё верно", "все верно", "отправить"),
    *("да все верно", "да всё верно", "да отправить"),
}
NO_WORDS = {"no", "n", "нет", "н", "не", "неверно", "not right", "wrong", "change", "изменить", "исправить"}
# Words that name a field at the summary ("wait, the email is wrong" -> the email step).
FIELD_WORDS: dict[str, tuple[str, ...]] = {
    "name": ("name", "surname", "имя", "фио", "фамилия", "фамилию", "отчество"),
    "position": ("position", "job", "role", "должность", "должности", "позиция"),
    "email": ("email", "e-mail", "mail", "address", "почта", "почту", "адрес", "емейл", "имейл", "мейл"),
    "phone": ("phone", "number", "mobile", "телефон", "номер", "мобильный"),
}


@dataclass
class Dialog:
    user_id: str
    username: str
    room_id: str
    lang: str
    expires_at: float
    dialog_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    step: str = "name"
    full_name: str | None = None
    position_code: str | None = None
    position_name: str | None = None
    email: str | None = None
    phone: str | None = None
    phone_given: bool = False  # the phone step was answered (a skip counts)
    editing: bool = False  # a field is being changed from the summary: back to the summary after it
    positions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def idempotency_key(self) -> str:
        # Stable for the life of the dialog, so every retry of the confirm is the same ERP request.
        return f"rc-{self.user_id}-{self.dialog_id}"[:128]

    def renew_key(self) -> None:
        """After the ERP refused the request: the corrected request is a new one, with a new key."""
        self.dialog_id = uuid.uuid4().hex

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Dialog:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    @property
    def position(self) -> dict[str, Any]:
        return next((p for p in self.positions if p["code"] == self.position_code), {})

    def staff_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "full_name": self.full_name,
            "email": self.email,
            "position_code": self.position_code,
            "rocketchat_user_id": self.user_id,
            "rocketchat_username": self.username,
        }
        if self.phone:
            body["phone"] = self.phone
        return body


Reply = tuple[str, dict[str, Any]]


@dataclass
class Step:
    """What the router must do: say `replies` (i18n key, params) and maybe `action` ("submit"/"cancel")."""

    replies: list[Reply]
    action: str | None = None
    outcome: str = ""  # the audit label; "" means step_<state>


# --- checks, mirroring erp/schemas.py ---


def normalise_answer(text: str) -> str:
    """Lower case, NFC, no surrounding punctuation: "Да!" -> "да", "«назад»" -> "назад"."""
    text = unicodedata.normalize("NFC", text).strip().lower()
    return " ".join(text.strip(" .,!?;:«»\"'()[]").split())


def _script(word: str) -> str:
    has_cyr = re.search(f"[{CYRILLIC}]", word) is not None
    has_lat = re.search(f"[{LATIN}]", word) is not None
    return "mixed" if has_cyr and has_lat else ("cyr" if has_cyr else "lat")


def _capitalise(word: str) -> str:
    """`иванов` / `ИВАНОВ` -> `Иванов`, `o'brien` -> `O'Brien`; a word in mixed case is kept as typed."""
    if not (word.islower() or word.isupper()):
        return word
    return re.sub(WORD_RE, lambda m: m.group(0).capitalize(), word.lower())


def check_full_name(text: str) -> tuple[str | None, str]:
    """(the name, "") or (None, reason key). Surname and given name are required, in one alphabet."""
    name = " ".join(unicodedata.normalize("NFC", text).split())
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        return None, "name.reason.letters"
    if not 2 <= len(name) <= 150 or not NAME_RE.match(name):
        return None, "name.reason.letters"
    words = name.split(" ")
    if len(words) < 2 or any(sum(len(m) for m in WORD_RE.findall(w)) < 2 for w in words[:2]):
        return None, "name.reason.two_words"
    if len(words) > 5:
        return None, "name.reason.too_many"
    if len({_script(w) for w in words}) > 1 or any(_script(w) == "mixed" for w in words):
        return None, "name.reason.mixed"
    words = [_capitalise(w) for w in words]
    first, second = words[0].lower(), words[1].lower()
    if second.endswith(SURNAME_ENDINGS) and not first.endswith(SURNAME_ENDINGS) and len(words) == 2:
        return None, "name.reason.order"
    return " ".join(words), ""


def validate_full_name(text: str) -> str | None:
    return check_full_name(text)[0]


def check_email(text: str) -> tuple[str | None, str, dict[str, str]]:
    """(address, "", {}) or (None, reason key, params). The ERP's rules (email-validator, no deliverability
    check, at most 254 characters, lower-cased) plus the mistyped top-level domains."""
    email = text.strip().strip("<>").strip()
    if len(email) > 254 or any(ch.isspace() for ch in email) or "@" not in email:
        return None, "email.reason.format", {}
    try:
        checked = _email_validator(email, check_deliverability=False)
    except EmailNotValidError as exc:
        reason = "email.reason.reserved" if "special-use or reserved" in str(exc) else "email.reason.format"
        return None, reason, {"domain": email.rsplit("@", 1)[-1][:100]}
    normalised = checked.normalized.lower()
    domain = normalised.rsplit("@", 1)[1]
    tld = domain.rsplit(".", 1)[-1]
    if tld in TLD_TYPOS:
        suggestion = normalised[: -len(tld)] + TLD_TYPOS[tld]
        return None, "email.reason.typo", {"suggestion": suggestion}
    return normalised, "", {}


def validate_email(text: str) -> str | None:
    return check_email(text)[0]


def normalise_phone(text: str) -> str | None:
    """E.164: '+7 (999) 123-45-67' -> '+79991234567'; a Russian '8XXXXXXXXXX' becomes '+7XXXXXXXXXX'.

    The ERP takes any 7-15 digits; a number of a known country must also have that country's length."""
    compact = re.sub(r"[\s().-]", "", text)
    if re.fullmatch(r"8\d{10}", compact):
        compact = "+7" + compact[1:]
    if not E164_RE.match(compact):
        return None
    digits = compact[1:]
    for prefix, national in NATIONAL_DIGITS.items():
        if digits.startswith(prefix):
            if national is not None and len(digits) != len(prefix) + national:
                return None
            break
    return compact


def choose_position(
    text: str, positions: list[dict[str, Any]], names: dict[str, str]
) -> dict[str, Any] | None:
    answer = normalise_answer(text).removeprefix("№").removeprefix("#").strip()
    if answer.isascii() and answer.isdigit():
        index = int(answer)
        return positions[index - 1] if 1 <= index <= len(positions) else None
    for position in positions:
        candidates = {
            position["code"].lower(),
            position["name"].lower(),
            names.get(position["code"], "").lower(),
        }
        if answer in candidates - {""}:
            return position
    return None


def field_named(answer: str) -> str | None:
    """The field a summary answer names: "3", "email", "wait, the email is wrong" -> "email"."""
    if answer.isdigit() and 1 <= int(answer) <= len(FIELDS):
        return FIELDS[int(answer) - 1]
    words = set(re.findall(r"[\w-]+", answer))
    for name, keys in FIELD_WORDS.items():
        if words & set(keys):
            return name
    return None


# --- the conversation ---


def position_list(dialog: Dialog, handler: ConversationHandler | None = None) -> str:
    """Numbered positions in the dialog's language, each with what it means for the person."""
    lines = []
    for i, p in enumerate(dialog.positions, start=1):
        name = handler.position_name(dialog.lang, p) if handler else str(p.get("name", ""))
        department = handler.department_name(dialog.lang, p) if handler else str(p.get("department") or "")
        line = f"{i}. {name}" + (f" ({department})" if department else "")
        if not p.get("erp_access", True):
            line += " — " + translate(dialog.lang, "position.mark.no_access")
        elif p.get("requires_approval"):
            line += " — " + translate(dialog.lang, "position.mark.approval")
        lines.append(line)
    return "\n".join(lines)


def prompt(dialog: Dialog, handler: ConversationHandler | None = None) -> Reply:
    """The question of the current state."""
    if dialog.step == "position":
        return "dialog.ask_position", {"positions": position_list(dialog, handler)}
    if dialog.step == "email":
        no_access = dialog.position and not dialog.position.get("erp_access", True)
        return ("dialog.ask_email_contact" if no_access else "dialog.ask_email"), {}
    if dialog.step == "confirm":
        surname, _, given = (dialog.full_name or "").partition(" ")
        return "dialog.summary", {
            "surname": surname,
            "given": given,
            "position": (
                handler.position_name(dialog.lang, dialog.position)
                if handler and dialog.position
                else dialog.position_name or ""
            ),
            "email": dialog.email or "",
            "phone": dialog.phone or translate(dialog.lang, "dialog.no_phone"),
        }
    return f"dialog.ask_{dialog.step}", {}


State = Callable[[Dialog, str, "ConversationHandler"], Step]


class ConversationHandler:
    """States, each a function of (dialog, answer); fallbacks that work in every state.

    `names` translates a position's name or department into the dialog's language (the ERP names them in
    Russian): names(lang, text) -> text."""

    def __init__(self, names: Callable[[str, str], str] | None = None) -> None:
        self.states: dict[str, State] = {
            "name": _state_name,
            "position": _state_position,
            "email": _state_email,
            "phone": _state_phone,
            "confirm": _state_confirm,
        }
        self.fallbacks: list[tuple[set[str], Callable[[Dialog], Step]]] = [(BACK_WORDS, self._back)]
        self.names = names or (lambda _lang, text: text)

    def position_name(self, lang: str, position: dict[str, Any]) -> str:
        return self.names(lang, str(position.get("name") or position.get("code") or ""))

    def department_name(self, lang: str, position: dict[str, Any]) -> str:
        return self.names(lang, str(position.get("department") or ""))

    def answer(self, dialog: Dialog, text: str) -> Step:
        word = normalise_answer(text)
        for words, fallback in self.fallbacks:
            if word in words:
                return fallback(dialog)
        return self.states[dialog.step](dialog, text, self)

    def _back(self, dialog: Dialog) -> Step:
        index = STEPS.index(dialog.step)
        dialog.editing = False
        if index == 0:
            return Step([("dialog.back_at_start", {}), prompt(dialog, self)], outcome="back")
        dialog.step = STEPS[index - 1]
        return Step([prompt(dialog, self)], outcome="back")


def _next(dialog: Dialog, step: str) -> str:
    """The following state; after changing a field from the summary, back to the summary."""
    if dialog.editing:
        dialog.editing = False
        return "confirm"
    return step


def _state_name(dialog: Dialog, text: str, handler: ConversationHandler) -> Step:
    name, reason = check_full_name(text)
    if name is None:
        params = {}
        if reason == "name.reason.order":
            words = " ".join(text.split()).split(" ")
            params = {"suggestion": " ".join([_capitalise(words[1]), _capitalise(words[0])])}
        return Step([(reason, params), prompt(dialog, handler)], outcome="invalid")
    dialog.full_name = name
    dialog.step = _next(dialog, "position")
    return Step([prompt(dialog, handler)])


def _state_position(dialog: Dialog, text: str, handler: ConversationHandler) -> Step:
    names = {p["code"]: handler.position_name(dialog.lang, p) for p in dialog.positions}
    chosen = choose_position(text, dialog.positions, names)
    if chosen is None:
        reply = ("dialog.invalid_position", {"max": len(dialog.positions)})
        return Step([reply, prompt(dialog, handler)], outcome="invalid")
    dialog.position_code, dialog.position_name = chosen["code"], chosen["name"]
    replies: list[Reply] = [("dialog.position_chosen", {"position": names[chosen["code"]]})]
    if not chosen.get("erp_access", True):
        replies.append(("dialog.position_no_access", {}))
    elif chosen.get("requires_approval"):
        replies.append(("dialog.position_approval", {}))
    dialog.step = _next(dialog, "email")
    return Step([*replies, prompt(dialog, handler)])


def _state_email(dialog: Dialog, text: str, handler: ConversationHandler) -> Step:
    email, reason, params = check_email(text)
    if email is None:
        return Step([(reason, params), prompt(dialog, handler)], outcome="invalid")
    dialog.email = email
    dialog.step = _next(dialog, "confirm" if dialog.phone_given else "phone")
    return Step([prompt(dialog, handler)])


def _state_phone(dialog: Dialog, text: str, handler: ConversationHandler) -> Step:
    answer = normalise_answer(text)
    if answer in SKIP_WORDS:
        dialog.phone = None
    else:
        phone = normalise_phone(text)
        if phone is None:
            return Step([("dialog.invalid_phone", {}), prompt(dialog, handler)], outcome="invalid")
        dialog.phone = phone
    dialog.phone_given = True
    dialog.editing = False
    dialog.step = "confirm"
    return Step([prompt(dialog, handler)])


def _state_confirm(dialog: Dialog, text: str, handler: ConversationHandler) -> Step:
    answer = normalise_answer(text)
    if answer in YES_WORDS:
        return Step([], action="submit")
    chosen = field_named(answer)
    if chosen is not None:
        dialog.step, dialog.editing = chosen, True
        return Step([prompt(dialog, handler)], outcome="edit")
    if answer in NO_WORDS or answer.startswith(("нет", "no ", "wait", "подожд", "стоп")):
        return Step([("dialog.ask_what_to_change", {})], outcome="edit")
    return Step([("dialog.invalid_confirm", {})], outcome="invalid")


def back_to(dialog: Dialog, step: str) -> None:
    """After the ERP refused a field: ask for it again, then come back to the summary."""
    dialog.step = step if step in STEPS else "name"
    dialog.editing = dialog.step != "confirm"
