"""ERP accounts: the ONE function that makes a User from a Staff record, activation codes, activation.

Every new code (an account made, a code reissued) ends the login's activation backoff in the same
transaction: wrong codes tried before, by anyone, against no account or the old code, do not slow the
employee down (erp/services/activation_backoff.py)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import Connection, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
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
from erp.services import activation_backoff
from erp.services.transliteration import login_base
from erp.settings import Settings

MIN_PASSWORD_LENGTH = 10
_users = User.__table__
# ON CONFLICT (login) DO NOTHING RETURNING: a concurrent namesake that took the login first yields no
# row (after its transaction commits), and the next suffix is tried: one round trip, no savepoint.
_INSERT_ACCOUNT = {
    "postgresql": pg_insert(_users).on_conflict_do_nothing(index_elements=["login"]).returning(_users.c.id),
    "sqlite": sqlite_insert(_users).on_conflict_do_nothing(index_elements=["login"]).returning(_users.c.id),
}


def _new_code(staff_id: int, settings: Settings) -> tuple[str, str, datetime]:
    """A fresh code, its HMAC (keyed on the staff id, 1:1 with the account and known before the account
    row exists) and its expiry."""
    code = new_activation_code(settings.activation_code_digits)
    expires = utcnow() + timedelta(hours=settings.activation_code_ttl_hours)
    return code, activation_code_hash(settings.secret_bytes, staff_id, code), expires


def _issue_code(session: Session, user: User, settings: Settings) -> Activation:
    code, code_hash, expires = _new_code(user.staff_id, settings)
    user.activation_code_hash = code_hash
    user.activation_expires_at = expires
    user.activation_attempts = 0
    cleared = activation_backoff.reset(session, user.login)
    return Activation(login=user.login, code=code, expires_at=expires, backoff_cleared=cleared)


def create_account(
    conn: Connection, staff_id: int, full_name: str, email: str, role: str | None, settings: Settings
) -> Activation:
    """THE function that makes the ERP account for a Staff record and issues its activation code.

    Used by the bot's registration and by the admin approval path alike (checklist 4.7), on the
    transaction's connection (Core statements: this is on the registration hot path). The login is
    derived from the name; a collision, also a concurrent one, moves on to the next suffix. The
    login's activation backoff ends with it: wrong codes tried on the login before it had an account
    (a stranger guessing the predictable login) must not hold the new employee back.
    """
    base = login_base(full_name)
    like = _users.c.login.like(_like_prefix(base), escape="\\")
    taken = set(conn.scalars(select(_users.c.login).where(like)))
    insert = _INSERT_ACCOUNT[conn.dialect.name]
    code, code_hash, expires = _new_code(staff_id, settings)
    while True:
        login = _first_free(base, taken)
        values = {
            "staff_id": staff_id,
            "login": login,
            "email": email,
            "role": role or "employee",
            "is_active": False,
            "activation_code_hash": code_hash,
            "activation_expires_at": expires,
            "activation_attempts": 0,
            "created_at": utcnow(),
        }
        if conn.execute(insert, values).first() is not None:
            cleared = activation_backoff.reset(conn, login)
            return Activation(login=login, code=code, expires_at=expires, backoff_cleared=cleared)
        taken.add(login)


def create_user_from_staff(session: Session, staff: Staff, settings: Settings) -> Activation:
    """create_account for a Staff record loaded in an ORM session (the admin approval path)."""
    if staff.user is not None:
        raise ProblemError(409, "invalid_state", "the staff record has an account already")
    role = staff.position.erp_role
    activation = create_account(session.connection(), staff.id, staff.full_name, staff.email, role, settings)
    staff.status = StaffStatus.awaiting_activation
    session.expire(staff, ["user"])  # made outside the ORM: loaded again on first use
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
    """A new code by an admin: the old one stops working and the wrong codes tried so far (on either)
    no longer count."""
    if staff.user is None or staff.status != StaffStatus.awaiting_activation:
        raise ProblemError(409, "invalid_state", f"no code can be issued in status {staff.status}")
    return _issue_code(session, staff.user, settings)


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


# The one answer to every failed activation, whatever the reason: unknown login, wrong code, expired
# code, account activated already or not awaiting activation. Different answers let anyone find out
# which logins exist (logins are predictable: surname.initial).
FAILED_DETAIL = "wrong login or code, or the code is no longer valid: check both, or ask for a new code"
# A code hash no real code matches: an unknown login costs the same HMAC as a known one.
_NO_HASH = "0" * 64


class ActivationFailed(ProblemError):
    """A failed activation (400 `activation_code_invalid`); `reason` is for the audit log only."""

    def __init__(self, reason: str) -> None:
        super().__init__(400, "activation_code_invalid", FAILED_DETAIL)
        self.reason = reason


def activate(session: Session, login: str, code: str, password: str, settings: Settings) -> User:
    """Check login and code, then the password; on success the account is active.

    Every failure raises ActivationFailed (one code, one detail); a weak password with the right code
    raises `weak_password` (422) and keeps the code. Wrong attempts are limited by the caller (per
    source and per login, with backoff), not by spending the code: a stranger's guesses must not lock
    the employee out.
    """
    query = select(User, Staff).join(Staff, Staff.id == User.staff_id).where(User.login == login)
    row = session.execute(query.with_for_update(of=(User, Staff))).first()
    user, staff = (row[0], row[1]) if row is not None else (None, None)
    # The HMAC is computed in every case, so that an unknown login takes as long as a known one.
    matches = activation_code_matches(
        settings.secret_bytes,
        user.staff_id if user is not None else 0,
        code,
        (user.activation_code_hash if user is not None else None) or _NO_HASH,
    )
    expires: datetime | None = user.activation_expires_at if user is not None else None
    if user is None or staff is None:
        raise ActivationFailed("unknown_login")
    if user.activated_at is not None:
        raise ActivationFailed("activated_already")
    if staff.status != StaffStatus.awaiting_activation or user.activation_code_hash is None:
        raise ActivationFailed("not_awaiting_activation")
    if not matches:
        raise ActivationFailed("wrong_code")
    if expires is None or expires <= utcnow():
        raise ActivationFailed("expired")
    problems = password_problems(password, login)
    if problems:
        raise ProblemError(422, "weak_password", "the password needs: " + "; ".join(problems))
    user.password_hash = hash_password(password)
    user.activation_code_hash = None
    user.activation_expires_at = None
    user.activation_attempts = 0
    user.activated_at = utcnow()
    user.is_active = True
    staff.status = StaffStatus.active
    staff.status_reason = None
    return user
