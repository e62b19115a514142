"""Request and response models of the bot-integration API: strict, with the limits the contract names."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, StringConstraints

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


def _person_name(value: str) -> str:
    value = _no_control_characters(value)
    if not NAME_RE.fullmatch(value):
        raise ValueError(
            "a name is Cyrillic or Latin letters separated by single spaces, hyphens or apostrophes"
        )
    return value


def _lower_email(value: str) -> str:
    return value.lower()


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
    erp_access: bool | None = None
    erp_role: Role | None = None
    requires_approval: bool | None = None
    is_active: bool | None = None


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
