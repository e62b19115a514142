"""Hashes for activation codes (HMAC with the server secret) and passwords (scrypt)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets


def new_activation_code(digits: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(digits))


def activation_code_hash(secret: bytes, user_id: int, code: str) -> str:
    # Six digits are easy to brute force offline: the keyed HMAC makes a leaked table useless.
    return hmac.new(secret, f"activation:{user_id}:{code}".encode(), hashlib.sha256).hexdigest()


def activation_code_matches(secret: bytes, user_id: int, code: str, stored: str | None) -> bool:
    if stored is None:
        return False
    return hmac.compare_digest(activation_code_hash(secret, user_id, code), stored)


SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    enc = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${enc(salt).decode()}${enc(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)
