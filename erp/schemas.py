"""Request and response models of the bot-integration API: strict, with the limits the contract names."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    StrictBool,
    StringConstraints,
)

LETTERS = "A-Za-zА-Яа-яЁё"
NAME_RE = re.compile(rf"^[{LETTERS}]+(?:[ '\-’][{LETTERS}]+)*$")
PHONE_RE = r"^\+[1-9][0-9]{6,14}$"
RC_USER_ID_RE = r"^[A-Za-z0-9_-]+$"
RC_USERNAME_RE = r"^[A-Za-z0-9._-]+$"
POSITION_CODE_RE = r"^[A-Za-z0-9_-]+$"
ROLE_RE = r"^[a-z][a-z0-9_-]*$"
StaffStatusLiteral = Literal[
    "pending_approval", "awaiting_activation", "active", "rejected", "blocked", "no_erp_access"
]


def _no_control_characters(value: str) -> str:
    if any(unicodedata.category(ch).startswith("C") for ch in value):
        raise ValueError("control characters are not allowed")
    return value


CYRILLIC_RE = re.compile(r"[А-Яа-яЁё]")
LATIN_RE = re.compile(r"[A-Za-z]")


def _person_name(value: str) -> str:
    value = _no_control_characters(value)
    if not NAME_RE.fullmatch(value):
        raise ValueError(
            "a name is Cyrillic or Latin letters separated by single spaces, hyphens or apostrophes"
        )
    # One script per word: `Ivаnov` with a Cyrillic а looks Latin and would collide with its login.
    for word in re.split(r"[ '\-’]", value):
        if CYRILLIC_RE.search(word) and LATIN_RE.search(word):
            raise ValueError(f"the word {word!r} mixes Cyrillic and Latin letters")
    return value


def _lower_email(value: str) -> str:
    local = value.rpartition("@")[0]
    if len(local) > 64:  # RFC 5321 4.5.3.1.1
        raise ValueError("the part before @ is at most 64 characters")
    return value.lower()


# RFC 3339 with a time zone; pydantic alone would also take bare Unix timestamps and date-only values.
RFC3339_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})$")


def _rfc3339(value: object) -> object:
    if isinstance(value, str) and not RFC3339_RE.fullmatch(value):
        raise ValueError("an RFC 3339 timestamp with a time zone is required, e.g. 2026-11-20T00:00:00Z")
    return value


PersonName = Annotated[
    str,
    StringConstraints(min_length=2, max_length=150, pattern=NAME_RE.pattern),
    AfterValidator(_person_name),
]
Email = Annotated[EmailStr, StringConstraints(max_length=254), AfterValidator(_lower_email)]
Phone = Annotated[str, StringConstraints(pattern=PHONE_RE, max_length=16)]
SafeText = Annotated[str, StringConstraints(max_length=500), AfterValidator(_no_control_characters)]
PositionCode = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=POSITION_CODE_RE)]
RocketChatUserId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=RC_USER_ID_RE)]
RocketChatUsername = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=RC_USERNAME_RE)]
Rfc3339Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]
Role = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=ROLE_RE)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class PositionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    name: str
    department: str
    erp_access: bool
    erp_role: str | None
    requires_approval: bool
    is_active: bool


class PositionList(BaseModel):
    items: list[PositionOut]


class PositionPatch(Strict):
    # JSON true/false only: lax booleans took "yes", "on" and 1.
    erp_access: StrictBool | None = None
    erp_role: Role | None = None
    requires_approval: StrictBool | None = None
    is_active: StrictBool | None = None


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    login: str
    role: str
    is_active: bool
    activated_at: datetime | None


class StaffOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    full_name: str
    email: str
    phone: str | None
    position: PositionOut
    rocketchat_user_id: str
    rocketchat_username: str
    status: StaffStatusLiteral
    status_reason: str | None
    user: UserOut | None
    created_at: datetime
    updated_at: datetime


class StaffList(BaseModel):
    items: list[StaffOut]


class Activation(BaseModel):
    login: str
    code: str
    expires_at: datetime
    # For the audit only, never in a response: the wrong codes the new code's reset of the login's
    # backoff cleared (erp/services/activation_backoff.py: reset).
    backoff_cleared: int = Field(0, exclude=True)

    def audit_detail(self) -> str:
        """The audit detail of issuing it: the code only as "issued", and any cleared wrong codes."""
        if not self.backoff_cleared:
            return "activation code issued"
        return f"activation code issued; {self.backoff_cleared} earlier wrong codes on the login cleared"


class StaffWithActivation(BaseModel):
    staff: StaffOut
    activation: Activation | None


class StaffWithNewActivation(BaseModel):
    staff: StaffOut
    activation: Activation


class StaffCreate(Strict):
    full_name: PersonName
    email: Email
    phone: Phone | None = None
    position_code: PositionCode
    rocketchat_user_id: RocketChatUserId
    rocketchat_username: RocketChatUsername


class RejectRequest(Strict):
    reason: SafeText | None = None


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    key_name: str | None
    source_ip: str | None
    action: str
    target: str | None
    outcome: str
    request_id: str | None
    detail: str | None


class AuditList(BaseModel):
    items: list[AuditEventOut]


class StaffBrief(BaseModel):
    """A staff record in a report's waiting list: enough to name it and act on it."""

    id: int
    full_name: str
    rocketchat_username: str
    position_code: str
    status: StaffStatusLiteral
    created_at: datetime
    activation_expires_at: datetime | None = Field(
        description="The expiry of the account's live activation code; null without an account or live code"
    )


class StatusCounts(BaseModel):
    pending_approval: int
    awaiting_activation: int
    active: int
    rejected: int
    blocked: int
    no_erp_access: int


class PositionCount(BaseModel):
    code: str
    name: str
    total: int


class WaitingLists(BaseModel):
    pending_approval: list[StaffBrief]
    awaiting_activation: list[StaffBrief]


class RegistrationReport(BaseModel):
    """Records created in [since, until) by current status and position; `waiting` ignores the period."""

    since: datetime
    until: datetime
    total: int
    by_status: StatusCounts
    by_position: list[PositionCount]
    activated: int
    waiting: WaitingLists


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - a token type, not a secret
    expires_in: int


class ActivateRequest(Strict):
    login: Annotated[
        str, StringConstraints(min_length=1, max_length=64), AfterValidator(_no_control_characters)
    ]
    code: Annotated[
        str, StringConstraints(min_length=1, max_length=32), AfterValidator(_no_control_characters)
    ]
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class ActivateResponse(BaseModel):
    login: str
    activated_at: datetime


class ValidationItem(BaseModel):
    loc: list[str | int]
    msg: str


class Problem(BaseModel):
    """RFC 9457 problem details; clients branch on `code`."""

    type: str
    title: str
    status: int
    detail: str | None = None
    code: str
    request_id: str | None = None
    errors: list[ValidationItem] | None = None
    staff_id: int | None = None


class Health(BaseModel):
    status: str
