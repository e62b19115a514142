"""Idempotency keys, per API key, stored in the database with the exact response to replay.

The stored response may hold an activation code: it is kept encrypted (AES-GCM, key derived from the
server secret) and expires with the record, so the database never holds a code in clear.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Connection, bindparam, delete, select
from sqlalchemy.orm import Session

from erp.errors import ProblemError
from erp.models import IdempotencyRecord, utcnow
from erp.settings import Settings


@dataclass
class StoredResponse:
    status_code: int
    body: bytes


def request_fingerprint(payload: dict[str, Any]) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _cipher(settings: Settings) -> AESGCM:
    key = hmac.new(settings.secret_bytes, b"idempotency-response", hashlib.sha256).digest()
    return AESGCM(key)


def _seal(settings: Settings, body: bytes, aad: bytes) -> str:
    nonce = secrets.token_bytes(12)
    return base64.b64encode(nonce + _cipher(settings).encrypt(nonce, body, aad)).decode()


def _open(settings: Settings, sealed: str, aad: bytes) -> bytes:
    raw = base64.b64decode(sealed)
    return _cipher(settings).decrypt(raw[:12], raw[12:], aad)


def _aad(api_key_id: int, key: str) -> bytes:
    return f"{api_key_id}:{key}".encode()


_records = IdempotencyRecord.__table__
_LOOKUP = select(
    _records.c.id, _records.c.request_hash, _records.c.status_code, _records.c.response_body,
    _records.c.created_at,
).where(_records.c.api_key_id == bindparam("api_key_id"), _records.c.key == bindparam("key"))  # fmt: skip
_DELETE = delete(_records).where(_records.c.id == bindparam("record_id"))
_INSERT = _records.insert()


def lookup(
    conn: Connection, settings: Settings, api_key_id: int, key: str, fingerprint: str
) -> StoredResponse | None:
    """The stored response for a repeat; 422 when the key came with another body; None when new."""
    record = conn.execute(_LOOKUP, {"api_key_id": api_key_id, "key": key}).first()
    if record is None:
        return None
    if record.created_at < utcnow() - timedelta(hours=settings.idempotency_ttl_hours):
        conn.execute(_DELETE, {"record_id": record.id})
        return None
    if not hmac.compare_digest(record.request_hash, fingerprint):
        raise ProblemError(
            422, "idempotency_key_reused", "this Idempotency-Key was used with another request body"
        )
    return StoredResponse(record.status_code, _open(settings, record.response_body, _aad(api_key_id, key)))


def store(
    conn: Connection,
    settings: Settings,
    api_key_id: int,
    key: str,
    fingerprint: str,
    status_code: int,
    body: bytes,
) -> None:
    values = {
        "api_key_id": api_key_id,
        "key": key,
        "request_hash": fingerprint,
        "status_code": status_code,
        "response_body": _seal(settings, body, _aad(api_key_id, key)),
        "created_at": utcnow(),
    }
    conn.execute(_INSERT, values)


def purge_expired(session: Session, settings: Settings) -> int:
    cutoff = utcnow() - timedelta(hours=settings.idempotency_ttl_hours)
    result = session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff))
    return result.rowcount or 0
