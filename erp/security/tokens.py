"""Short-lived signed tokens (HS256) exchanged for an API key; at most 15 minutes."""

from __future__ import annotations

import secrets
import time

import jwt

ISSUER = "photomatrix-erp"
AUDIENCE = "erp-bot-api"


def issue(key_id: int, key_name: str, scopes: frozenset[str], secret: bytes, ttl_seconds: int) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(key_id),
        "name": key_name,
        "scope": " ".join(sorted(scopes)),
        "iat": now,
        "exp": now + min(ttl_seconds, 900),
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def verify(token: str, secret: bytes) -> int | None:
    """The key id the token was issued for, or None when it is invalid or expired."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub"]},
        )
        sub = claims["sub"]
    except (jwt.PyJWTError, ValueError):
        return None
    # Key ids are database integers: anything else (thirty nines overflowed the query: 500) is invalid.
    if not isinstance(sub, str) or not (sub.isascii() and sub.isdigit()) or len(sub) > 10:
        return None
    key_id = int(sub)
    return key_id if 1 <= key_id <= 2_147_483_647 else None
