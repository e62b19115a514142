"""ERP accounts: the ONE function that makes a User from a Staff record, activation codes, activation."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from erp.errors import ProblemError
from erp.models import Staff, StaffStatus, User, utcnow
from erp.schemas import Activation
from erp.security.secrets_hashing import (
    activation_code_hash,
    activation_code_matches,
    hash_password,
    new_activation_code,
)
from erp.services.transliteration import login_base
from erp.settings import Settings

MIN_PASSWORD_LENGTH = 10
_USER_INSERT_COLUMNS = (
    "staff_id",
    "login",
    "email",
    "role",
    "is_active",
    "activation_code_hash",
    "activation_expires_at",
    "activation_attempts",
)


def _issue_code(user: User, settings: Settings) -> Activation:
    code = new_activation_code(settings.activation_code_digits)
    # Keyed on the staff id (1:1 with the user, known before the user row exists: no extra UPDATE).
    user.activation_code_hash = activation_code_hash(settings.secret_bytes, user.staff_id, code)
    user.activation_expires_at = utcnow() + timedelta(hours=settings.activation_code_ttl_hours)
    user.activation_attempts = 0
    return Activation(login=user.login, code=code, expires_at=user.activation_expires_at)


def create_user_from_staff(session: Session, staff: Staff, settings: Settings) -> Activation:
    """Make the ERP account for a Staff record and issue its activation code.

    Used by the bot's registration and by the admin approval path alike (checklist 4.7). The login is
    derived from the name; a collision (also a concurrent one) moves on to the next suffix.
    """
    if staff.user is not None:
        raise ProblemError(409, "invalid_state", "the staff record has an account already")
    role = staff.position.erp_role or "employee"
    base = login_base(staff.full_name)
    taken = set(session.scalars(select(User.login).where(User.login.like(_like_prefix(base), escape="\\"))))
    # SQLite serialises writers (BEGIN IMMEDIATE): no concurrent namesake, no savepoint needed.
    serialised = session.get_bind().dialect.name == "sqlite"
    while True:
        login = _first_free(base, taken)
        user = User(staff_id=staff.id, login=login, email=staff.email, role=role, is_active=False)
        activation = _issue_code(user, settings)
        if serialised:
            session.add(user)
            session.flush()
        else:
            # A concurrent namesake may take the login first: ON CONFLICT DO NOTHING returns no row
            # then (after that transaction commits), and the next suffix is tried. One round trip,
            # where a savepoint around a plain INSERT took three.
            values = {column: getattr(user, column) for column in _USER_INSERT_COLUMNS}
            insert = pg_insert(User).values(**values).on_conflict_do_nothing(index_elements=[User.login])
            inserted = session.scalars(insert.returning(User)).first()
            if inserted is None:
                taken.add(login)
                continue
            user = inserted
        staff.user = user
        staff.status = StaffStatus.awaiting_activation
        return activation


def _first_free(base: str, taken: set[str]) -> str:
    """`base`, else the smallest `base<n>` (n >= 2) not taken; linear in the namesakes."""
    if base not in taken:
        return base
    n = 2
    while f"{base}{n}" in taken:
        n += 1
    return f"{base}{n}"


def _like_prefix(base: str) -> str:
    return base.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def reissue_code(session: Session, staff: Staff, settings: Settings) -> Activation:
    if staff.user is None or staff.status != StaffStatus.awaiting_activation:
        raise ProblemError(409, "invalid_state", f"no code can be issued in status {staff.status}")
    return _issue_code(staff.user, settings)


def password_problems(password: str, login: str) -> list[str]:
    problems = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(f"at least {MIN_PASSWORD_LENGTH} characters")
    if not re.search(r"[^\W\d_]", password):
        problems.append("at least one letter")
    if not re.search(r"\d", password):
        problems.append("at least one digit")
    if login and login.lower() in password.lower():
        problems.append("must not contain the login")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in password):
        problems.append("no control characters")
    return problems


def activate(session: Session, login: str, code: str, password: str, settings: Settings) -> User:
    """Check the code (counting wrong attempts), then the password; on success the account is active.

    A wrong attempt is committed by the caller even though an error is raised (see api/account.py).
    """
    user = session.scalar(select(User).where(User.login == login).with_for_update())
    if user is None:
        raise ProblemError(400, "activation_code_invalid", "wrong login or code")
    staff = user.staff
    if user.activated_at is not None:
        raise ProblemError(400, "activation_code_used", "the account is activated already")
    if staff.status != StaffStatus.awaiting_activation or user.activation_code_hash is None:
        raise ProblemError(400, "activation_code_invalid", "wrong login or code")
    if user.activation_attempts >= settings.activation_max_attempts:
        raise ProblemError(400, "activation_code_exhausted", "too many wrong attempts: ask for a new code")
    expires: datetime | None = user.activation_expires_at
    if expires is None or expires <= utcnow():
        raise ProblemError(400, "activation_code_expired", "the code's time is over: ask for a new code")
    if not activation_code_matches(settings.secret_bytes, user.staff_id, code, user.activation_code_hash):
        user.activation_attempts += 1
        raise WrongCode(user.activation_attempts >= settings.activation_max_attempts)
    problems = password_problems(password, login)
    if problems:
        raise ProblemError(422, "weak_password", "the password needs: " + "; ".join(problems))
    user.password_hash = hash_password(password)
    user.activation_code_hash = None
    user.activation_expires_at = None
    user.activated_at = utcnow()
    user.is_active = True
    staff.status = StaffStatus.active
    staff.status_reason = None
    return user


class WrongCode(Exception):
    """A wrong code: the attempt counter change must be committed before the error goes out."""

    def __init__(self, exhausted: bool) -> None:
        super().__init__("wrong code")
        self.exhausted = exhausted
