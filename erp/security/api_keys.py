"""API keys: random secrets shown once, stored as SHA-256 digests, looked up through a short-TTL cache."""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from erp.db import read_session, write_session
from erp.models import ApiKey, utcnow

KEY_PREFIX = "erp_"
SCOPES = ("bot", "admin")
# New names carry no dot: a key a rotation replaced keeps its row (audit, idempotency records) under
# NAME.<id>, and a revoked key's name can be taken again the same way.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,48}")
# last_used_at is written at most this often per key, so the hot path stays read-only.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    # Keys carry 256 bits of entropy: a fast digest is enough, no password KDF needed.
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class KeyIdentity:
    id: int
    name: str
    scopes: frozenset[str]
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(default=())

    def allows(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
        if not self.networks:
            return True
        return ip is not None and any(ip in net for net in self.networks)


def _identity(row: ApiKey) -> KeyIdentity:
    nets = tuple(ipaddress.ip_network(n, strict=False) for n in row.allowed_networks.split())
    return KeyIdentity(row.id, row.name, frozenset(row.scopes.split()), nets)


class KeyCache:
    """Resolves keys (by digest) and key ids (for JWTs) to identities; revocations show within the TTL.

    `cached*` answer from memory only (the event loop calls them); `by_*` read the database (a worker
    thread calls them) and refresh last_used_at at most once a minute per key.
    """

    def __init__(self, ttl_seconds: float) -> None:
        self.ttl = ttl_seconds
        self._by_hash: dict[str, tuple[float, KeyIdentity | None]] = {}
        self._by_id: dict[int, tuple[float, KeyIdentity | None]] = {}
        self._last_touch: dict[int, float] = {}
        self._lock = threading.Lock()

    def cached(self, key: str) -> tuple[float, KeyIdentity | None] | None:
        hit = self._by_hash.get(hash_key(key))
        return hit if hit is not None and hit[0] > time.monotonic() else None

    def cached_id(self, key_id: int) -> tuple[float, KeyIdentity | None] | None:
        hit = self._by_id.get(key_id)
        return hit if hit is not None and hit[0] > time.monotonic() else None

    def by_key(self, key: str) -> KeyIdentity | None:
        digest = hash_key(key)
        with read_session() as session:
            row = session.scalar(select(ApiKey).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None)))
            identity = _identity(row) if row is not None else None
        with self._lock:
            if len(self._by_hash) > 10000:  # unknown keys must not grow memory without bound
                self._by_hash.clear()
            self._by_hash[digest] = (time.monotonic() + self.ttl, identity)
        if identity is not None:
            self._touch(identity.id)
        return identity

    def by_id(self, key_id: int) -> KeyIdentity | None:
        with read_session() as session:
            row = session.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None)))
            identity = _identity(row) if row is not None else None
        with self._lock:
            if len(self._by_id) > 10000:
                self._by_id.clear()
            self._by_id[key_id] = (time.monotonic() + self.ttl, identity)
        if identity is not None:
            self._touch(identity.id)
        return identity

    def _touch(self, key_id: int) -> None:
        now = time.monotonic()
        if now - self._last_touch.get(key_id, -1e9) < LAST_USED_RESOLUTION.total_seconds():
            return
        self._last_touch[key_id] = now
        with write_session() as session:
            session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=utcnow()))


def _check_name(name: str) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError("a key name is 1-48 letters, digits, '-' or '_'")


def _retire(session: Session, row: ApiKey) -> str:
    """Free the row's name: it becomes NAME.<id> (the row, its audit trail and its records are kept)."""
    retired = f"{row.name}.{row.id}"
    if session.scalar(select(ApiKey.id).where(ApiKey.name == retired)) is not None:
        raise ValueError(f"cannot retire key {row.name!r}: a key named {retired!r} exists already")
    row.name = retired
    session.flush()
    return retired


def create_key(name: str, scopes: list[str], networks: list[str]) -> str:
    """Store a new key and return its secret (the only time it exists in clear).

    A name held by an active key is refused; a revoked key's name is taken again (the revoked row is
    kept as NAME.<id>).
    """
    _check_name(name)
    bad = set(scopes) - set(SCOPES)
    if bad or not scopes:
        raise ValueError(f"scopes must be among {SCOPES}")
    nets = [str(ipaddress.ip_network(n, strict=False)) for n in networks]
    key = generate_key()
    with write_session() as session:
        existing = session.scalar(select(ApiKey).where(ApiKey.name == name))
        if existing is not None:
            if existing.revoked_at is None:
                raise ValueError(
                    f"a key named {name!r} exists already (a new secret for it: keys rotate --name {name})"
                )
            _retire(session, existing)
        session.add(
            ApiKey(
                name=name,
                key_hash=hash_key(key),
                scopes=" ".join(sorted(set(scopes))),
                allowed_networks=" ".join(nets),
            )
        )
    return key


def rotate_key(name: str, revoke_previous: bool = False) -> tuple[str, str]:
    """A new secret for the active key NAME, with its scopes and networks; returns (secret, previous name).

    The previous key is renamed NAME.<id> and stays valid until `revoke_previous_keys(NAME)` (or at once
    with revoke_previous), so consumers can switch to the new secret before the old one stops working.
    """
    key = generate_key()
    with write_session() as session:
        old = session.scalar(
            select(ApiKey).where(ApiKey.name == name, ApiKey.revoked_at.is_(None)).with_for_update()
        )
        if old is None:
            raise LookupError(f"no active key named {name!r}")
        scopes, networks = old.scopes, old.allowed_networks
        previous = _retire(session, old)
        if revoke_previous:
            old.revoked_at = utcnow()
        session.add(ApiKey(name=name, key_hash=hash_key(key), scopes=scopes, allowed_networks=networks))
    return key, previous


def set_networks(name: str, networks: list[str]) -> bool:
    """Replace the networks the active key NAME may be used from; True when they changed.

    Its secret, scopes and audit trail stay: a deployment that adds a caller (a second bot replica, a
    new host) widens the list without a new secret. An empty list allows any address, like `create`.
    """
    nets = " ".join(str(ipaddress.ip_network(n, strict=False)) for n in networks)
    with write_session() as session:
        row = session.scalar(
            select(ApiKey).where(ApiKey.name == name, ApiKey.revoked_at.is_(None)).with_for_update()
        )
        if row is None:
            raise LookupError(f"no active key named {name!r}")
        if row.allowed_networks == nets:
            return False
        row.allowed_networks = nets
        return True


def revoke_previous_keys(name: str) -> list[str]:
    """Revoke the still-active keys rotations of NAME left (NAME.<id>); returns their names."""
    retired = re.compile(re.escape(name) + r"\.[0-9]+")
    with write_session() as session:
        rows = [
            row
            for row in session.scalars(
                select(ApiKey).where(
                    ApiKey.name.startswith(name + ".", autoescape=True), ApiKey.revoked_at.is_(None)
                )
            )
            if retired.fullmatch(row.name)
        ]
        for row in rows:
            row.revoked_at = utcnow()
        return sorted(row.name for row in rows)


def revoke_key(name: str) -> bool:
    with write_session() as session:
        result = session.execute(
            update(ApiKey).where(ApiKey.name == name, ApiKey.revoked_at.is_(None)).values(revoked_at=utcnow())
        )
        return bool(result.rowcount)


def list_keys() -> list[ApiKey]:
    with read_session() as session:
        return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))
