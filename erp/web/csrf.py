"""CSRF protection of the activation form: a signed double-submit token.

The browser holds a random value in an HttpOnly, SameSite=Strict cookie (Secure and `__Host-` named over
HTTPS); the form carries HMAC(secret, value). A POST is accepted only with both, matching, and not from
another origin (Origin / Sec-Fetch-Site when the browser sends them).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from urllib.parse import urlsplit

COOKIE = "erp_activate"
SECURE_COOKIE = "__Host-erp_activate"
FIELD = "csrf"
_VALUE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_CONTEXT = b"erp.web.activate.csrf\x00"


def cookie_name(secure: bool) -> str:
    return SECURE_COOKIE if secure else COOKIE


def new_value() -> str:
    return secrets.token_urlsafe(32)


def usable(value: str | None) -> bool:
    return value is not None and _VALUE.fullmatch(value) is not None


def token_for(secret: bytes, value: str) -> str:
    digest = hmac.new(secret, _CONTEXT + value.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def token_matches(secret: bytes, value: str | None, token: str | None) -> bool:
    if value is None or not usable(value) or not token or len(token) > 64:
        return False
    return hmac.compare_digest(token_for(secret, value), token)


def same_origin(origin: str | None, sec_fetch_site: str | None, host: str | None) -> bool:
    """False when the browser says the request comes from another site or origin."""
    if sec_fetch_site is not None and sec_fetch_site not in ("same-origin", "none"):
        return False
    if origin is None:
        return True  # older browsers; the token still has to match
    if origin == "null" or not host:
        return False
    return urlsplit(origin).netloc.lower() == host.lower()
