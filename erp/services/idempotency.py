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
from sqlalchemy import delete, select
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


def lookup(
    session: Session, settings: Settings, api_key_id: int, key: str, fingerprint: str
) -> StoredResponse | None:
    """The stored response for a repeat; 422 when the key came with another body; None when new."""
    record = session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.api_key_id == api_key_id, IdempotencyRecord.key == key
        )
    )
    if record is None:
        return None
    if record.created_at < utcnow() - timedelta(hours=settings.idempotency_ttl_hours):
        session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == record.id))
        session.flush()
        return None
    if not hmac.compare_digest(record.request_hash, fingerprint):
        raise ProblemError(
            422, "idempotency_key_reused", "this Idempotency-Key was used with another request body"
        )
    return StoredResponse(record.status_code, _open(settings, record.response_body, _aad(api_key_id, key)))


def store(
    session: Session,
    settings: Settings,
    api_key_id: int,
    key: str,
    fingerprint: str,
    status_code: int,
    body: bytes,
) -> None:
    session.add(
        IdempotencyRecord(
            api_key_id=api_key_id,
            key=key,
            request_hash=fingerprint,
            status_code=status_code,
            response_body=_seal(settings, body, _aad(api_key_id, key)),
        )
    )


def purge_expired(session: Session, settings: Settings) -> int:
    cutoff = utcnow() - timedelta(hours=settings.idempotency_ttl_hours)
    result = session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff))
    return result.rowcount or 0
