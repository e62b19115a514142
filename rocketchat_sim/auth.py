"""Passwords, login tokens, personal access tokens and the two-factor check of REST routes.

Passwords are stored the way Rocket.Chat treats them: the client-side SHA-256 hex digest is what
gets hashed (bcrypt there, PBKDF2 here), so DDP logins with `{digest, algorithm: "sha-256"}` and the
2FA password fallback (`x-2fa-code` = sha256 hex of the password) verify against the same record.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from .errors import meteor_error
from .util import hash_token, new_token, now_ms, sha256_hex

_PBKDF2_ROUNDS = 20_000
MAX_LOGIN_TOKENS = 50


def hash_password_digest(digest: str) -> dict[str, str]:
    salt = secrets.token_hex(16)
    derived = hashlib.pbkdf2_hmac("sha256", digest.lower().encode(), bytes.fromhex(salt), _PBKDF2_ROUNDS)
    return {"pbkdf2": derived.hex(), "salt": salt}


def hash_password(password: str) -> dict[str, str]:
    return hash_password_digest(sha256_hex(password))


def check_password_digest(user: dict[str, Any], digest: str) -> bool:
    record = user.get("services", {}).get("password")
    if not record or not isinstance(digest, str):
        return False
    derived = hashlib.pbkdf2_hmac(
        "sha256", digest.lower().encode(), bytes.fromhex(record["salt"]), _PBKDF2_ROUNDS
    )
    return hmac.compare_digest(derived.hex(), record["pbkdf2"])


def login_tokens(user: dict[str, Any]) -> list[dict[str, Any]]:
    return user.setdefault("services", {}).setdefault("resume", {}).setdefault("loginTokens", [])


def find_token(user: dict[str, Any], hashed: str) -> dict[str, Any] | None:
    for tok in login_tokens(user):
        if tok["hashedToken"] == hashed:
            return tok
    return None


def issue_login_token(state: Any, user: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A new resume token; like Rocket.Chat, only the newest MAX_LOGIN_TOKENS login tokens survive."""
    token = new_token()
    record = {"when": now_ms(), "hashedToken": hash_token(token)}
    tokens = login_tokens(user)
    tokens.append(record)
    plain = [t for t in tokens if t.get("type") != "personalAccessToken"]
    for old in plain[:-MAX_LOGIN_TOKENS]:
        tokens.remove(old)
        state.tokens.pop(old["hashedToken"], None)
    state.tokens[record["hashedToken"]] = user["_id"]
    state.mark_dirty()
    return token, record


def revoke_all_tokens(state: Any, user: dict[str, Any]) -> None:
    for tok in login_tokens(user):
        state.tokens.pop(tok["hashedToken"], None)
    user["services"]["resume"]["loginTokens"] = []
    state.mark_dirty()


def token_expires_ms(record: dict[str, Any], expiration_days: int) -> int:
    return record["when"] + expiration_days * 86_400_000


def check_two_factor(
    settings: dict[str, Any],
    user: dict[str, Any],
    token_record: dict[str, Any] | None,
    code: str | None,
    method: str | None,
    fingerprint: str,
) -> None:
    """Rocket.Chat's checkCodeForUser for a user without TOTP/email 2FA (the password fallback)."""
    if not settings["Accounts_TwoFactorAuthentication_Enabled"]:
        return
    remember_ms = int(settings["Accounts_TwoFactorAuthentication_RememberFor"]) * 1000
    now = now_ms()
    if not code and not method and token_record is not None:
        if token_record.get("bypassTwoFactor") is True:
            return
        # Rocket.Chat remembers a user right after registration ...
        if user.get("createdAt", 0) + remember_ms > now:
            return
        # ... and a token that passed 2FA recently from the same client.
        if (
            token_record.get("twoFactorAuthorizedUntil", 0) > now
            and token_record.get("twoFactorAuthorizedHash") == fingerprint
        ):
            return
    has_password = bool(user.get("services", {}).get("password"))
    if not (settings["Accounts_TwoFactorAuthentication_Enforce_Password_Fallback"] and has_password):
        return  # no second factor available for this user
    if not code:
        raise meteor_error(
            "totp-required",
            "TOTP Required",
            {"method": "password", "codeGenerated": False, "availableMethods": []},
        )
    if method not in (None, "password") or not check_password_digest(user, code):
        raise meteor_error("totp-invalid", "TOTP Invalid", {"method": "password"})
    if token_record is not None and remember_ms > 0:
        token_record["twoFactorAuthorizedUntil"] = now + remember_ms
        token_record["twoFactorAuthorizedHash"] = fingerprint


def fingerprint(user_agent: str, ip: str) -> str:
    return sha256_hex(f"{user_agent}{ip}")
