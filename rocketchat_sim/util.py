"""Small helpers shared by every module: Rocket.Chat-style ids, clock, date encodings, JSON."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from datetime import UTC, datetime
from typing import Any

# Meteor's Random.id() alphabet (no look-alike characters); ids are 17 characters long.
_ID_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz"
_TOKEN_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"  # noqa: S105  # nosec B105


def new_id(length: int = 17) -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def new_token() -> str:
    """A login token shaped like Meteor's Random.secret() (43 url-safe characters)."""
    return "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(43))


def hash_token(token: str) -> str:
    """Meteor's Accounts._hashLoginToken: base64 of the SHA-256 of the token."""
    return base64.b64encode(hashlib.sha256(token.encode()).digest()).decode()


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def now_ms() -> int:
    return int(time.time() * 1000)


def iso(ms: int | None) -> str | None:
    """Dates as the REST API writes them: ISO 8601 with milliseconds and Z."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def ejson_date(ms: int) -> dict[str, int]:
    """Dates as DDP writes them (EJSON)."""
    return {"$date": ms}


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
