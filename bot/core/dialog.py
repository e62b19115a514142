"""The registration dialog as a state machine: name -> position -> email -> phone -> confirm.

Pure logic: `advance` takes the dialog and an answer and returns what to say and what to do; the router
does the talking and the ERP call. The dialog is a plain dict-able object so the store can persist it.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

STEPS = ("name", "position", "email", "phone", "confirm")
NAME_RE = re.compile(r"^[A-Za-zА-Яа-яЁё]+(?:[ '’-]+[A-Za-zА-Яа-яЁё]+)*$")
# A pragmatic subset of RFC 5322 addr-spec: dot-atom local part and a dotted domain.
EMAIL_RE = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
E164_RE = re.compile(r"^\+[1-9]\d{7,14}$")
SKIP_WORDS = {"-", "skip", "no", "none", "нет", "пропустить", "пропуск"}
YES_WORDS = {"yes", "y", "confirm", "ok", "да", "д", "подтвердить", "подтверждаю"}
NO_WORDS = {"no", "n", "нет", "н"}


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
    positions: list[dict[str, str]] = field(default_factory=list)

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


@dataclass
class Step:
    """What the router must do: say `replies` (i18n key, params) and maybe `action` ("submit"/"cancel")."""

    replies: list[tuple[str, dict[str, Any]]]
    action: str | None = None


def validate_full_name(text: str) -> str | None:
    name = " ".join(text.split())
    if not 2 <= len(name) <= 150 or not NAME_RE.match(name):
        return None
    return name


def validate_email(text: str) -> str | None:
    email = text.strip()
    if len(email) > 254 or not EMAIL_RE.match(email) or len(email.split("@")[0]) > 64:
        return None
    return email.lower()


def normalise_phone(text: str) -> str | None:
    """E.164: '+7 (999) 123-45-67' -> '+79991234567'; a Russian '8XXXXXXXXXX' becomes '+7XXXXXXXXXX'."""
    compact = re.sub(r"[\s()-]", "", text)
    if re.fullmatch(r"8\d{10}", compact):
        compact = "+7" + compact[1:]
    return compact if E164_RE.match(compact) else None


def choose_position(text: str, positions: list[dict[str, str]]) -> dict[str, str] | None:
    answer = text.strip().rstrip(".")
    if answer.isascii() and answer.isdigit():
        index = int(answer)
        return positions[index - 1] if 1 <= index <= len(positions) else None
    for position in positions:
        if answer.lower() in (position["code"].lower(), position["name"].lower()):
            return position
    return None


def position_list(positions: list[dict[str, str]]) -> str:
    return "\n".join(
        f"{i}. {p['name']}" + (f" ({p['department']})" if p.get("department") else "")
        for i, p in enumerate(positions, start=1)
    )


def prompt(dialog: Dialog) -> tuple[str, dict[str, Any]]:
    if dialog.step == "position":
        return "dialog.ask_position", {"positions": position_list(dialog.positions)}
    if dialog.step == "confirm":
        return "dialog.summary", {
            "full_name": dialog.full_name,
            "position": dialog.position_name,
            "email": dialog.email,
            "phone": dialog.phone or "—",
        }
    return f"dialog.ask_{dialog.step}", {}


def advance(dialog: Dialog, text: str) -> Step:
    """Apply one answer. Invalid answers leave the step as is and say why, then ask again."""
    answer = text.strip()
    if dialog.step == "name":
        name = validate_full_name(answer)
        if name is None:
            return Step([("dialog.invalid_name", {}), prompt(dialog)])
        dialog.full_name, dialog.step = name, "position"
    elif dialog.step == "position":
        chosen = choose_position(answer, dialog.positions)
        if chosen is None:
            return Step([("dialog.invalid_position", {"max": len(dialog.positions)}), prompt(dialog)])
        dialog.position_code, dialog.position_name = chosen["code"], chosen["name"]
        dialog.step = "email"
    elif dialog.step == "email":
        email = validate_email(answer)
        if email is None:
            return Step([("dialog.invalid_email", {}), prompt(dialog)])
        dialog.email, dialog.step = email, "phone"
    elif dialog.step == "phone":
        if answer.lower() in SKIP_WORDS:
            dialog.phone = None
        else:
            phone = normalise_phone(answer)
            if phone is None:
                return Step([("dialog.invalid_phone", {}), prompt(dialog)])
            dialog.phone = phone
        dialog.step = "confirm"
    elif dialog.step == "confirm":
        word = answer.lower()
        if word in YES_WORDS:
            return Step([], action="submit")
        if word in NO_WORDS:
            return Step([], action="cancel")
        return Step([("dialog.invalid_confirm", {}), prompt(dialog)])
    return Step([prompt(dialog)])


def back_to(dialog: Dialog, step: str) -> None:
    """After the ERP refused a field: ask for it again."""
    dialog.step = step if step in STEPS else "name"
