"""Settings of the ERP service: environment variables with the `ERP_` prefix (secrets also from files)."""

from __future__ import annotations

import ipaddress
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Values that must never protect anything: they are public (this file, old docs, tutorials).
PLACEHOLDER_SECRETS = {"", "change-me", "changeme", "secret", "dev-secret-change-me", "test", "password"}
MIN_SECRET_LENGTH = 32
KEY_ADVICE = (
    "ERP_SECRET_KEY (or ERP_SECRET_KEY_FILE) must be a random value of at least 32 characters, "
    "e.g. `openssl rand -base64 48`"
)

Networks = Annotated[list[str], NoDecode]


def _split_networks(value: object) -> list[str]:
    """Accept a comma/space separated string or a list; validate every CIDR."""
    if value is None:
        return []
    items = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    for item in items:
        ipaddress.ip_network(item, strict=False)  # raises ValueError with the bad value
    return [str(ipaddress.ip_network(item, strict=False)) for item in items]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ERP_", extra="ignore")

    _ephemeral: bool = PrivateAttr(default=False)

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite:///./.state/erp.sqlite3"
    # No default: without one, a random secret lives as long as the process (development only; the
    # server then listens on loopback only). See _secret_from_file.
    secret_key: SecretStr | None = None
    secret_key_file: Path | None = None
    log_level: str = "INFO"

    # Networks: an empty allowlist admits every source; proxies are trusted for X-Forwarded-For only.
    trusted_proxies: Networks = Field(default_factory=list)
    allowed_networks: Networks = Field(default_factory=list)
    # Who may read /metrics on the app port: loopback and private networks (a scraper on the same host
    # or container network), not the internet. Empty: nobody.
    metrics_networks: Networks = Field(
        default_factory=lambda: [
            "127.0.0.0/8",
            "::1/128",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "fc00::/7",
        ]
    )

    max_body_bytes: int = Field(65536, ge=1024)
    # Refusals before authentication are audited as the first of each interval plus one summed row.
    audit_refusal_interval_seconds: float = Field(60.0, gt=0, le=3600)
    # The server's own protection when reached directly (erp/server.py).
    server_header_timeout_seconds: float = Field(10.0, gt=0, le=300)
    server_max_header_bytes: int = Field(32768, ge=1024, le=1048576)
    server_max_connections: int = Field(1024, ge=1)
    server_max_connections_per_source: int = Field(64, ge=1)
    jwt_ttl_seconds: int = Field(900, ge=30, le=900)
    api_key_cache_seconds: float = Field(5.0, ge=0)
    idempotency_ttl_hours: float = Field(24.0, gt=0)

    # Activation codes: hours may be fractional (tests use seconds).
    activation_code_ttl_hours: float = Field(72.0, gt=0)
    activation_code_digits: int = Field(6, ge=6, le=12)
    # Wrong attempts on one login (from anywhere) before each further one doubles a wait (1, 2, 4 ... s,
    # at most activation_backoff_max_seconds): a slowdown a stranger can cause, never a lockout.
    activation_max_attempts: int = Field(5, ge=1, le=20)
    activation_backoff_max_seconds: float = Field(300.0, ge=1, le=3600)
    # Every failed activation answers the same, and no sooner than this (no timing oracle for logins).
    activation_failure_seconds: float = Field(0.25, ge=0, le=5)

    # Token buckets: sustained rate per second and burst size.
    rate_limit_key_per_second: float = Field(20.0, gt=0)
    rate_limit_key_burst: int = Field(60, ge=1)
    rate_limit_ip_per_second: float = Field(20.0, gt=0)
    rate_limit_ip_burst: int = Field(60, ge=1)
    rate_limit_activation_per_minute: float = Field(10.0, gt=0)
    # Failed authentications per source IP within the window before the IP is throttled.
    auth_failure_limit: int = Field(10, ge=1)
    auth_failure_window_seconds: int = Field(300, ge=1)

    # Suspicious activity: counts within the window that raise an alert.
    alert_window_seconds: int = Field(60, ge=1)
    alert_auth_failures_threshold: int = Field(20, ge=1)
    alert_rate_limited_threshold: int = Field(50, ge=1)
    alert_registrations_threshold: int = Field(30, ge=1)
    alert_webhook_url: SecretStr | None = None
    # The webhook URL holds its token: deployments hand it over as a file, like the secret key.
    alert_webhook_url_file: Path | None = None
    # The CA certificate(s) the webhook's TLS certificate is checked against (PEM); unset: the bundled roots.
    # An ERP host apart from Rocket.Chat's posts through the proxy's public name (docs/operations.md).
    alert_webhook_ca_file: Path | None = None
    alert_webhook_timeout_seconds: float = Field(5.0, gt=0, le=60)
    alert_webhook_min_interval_seconds: float = Field(300.0, ge=0)

    @field_validator("trusted_proxies", "allowed_networks", "metrics_networks", mode="before")
    @classmethod
    def _networks(cls, value: object) -> list[str]:
        return _split_networks(value)

    @model_validator(mode="after")
    def _secret_from_file(self) -> Settings:
        if self.secret_key_file is not None:
            self.secret_key = SecretStr(_read_secret(self.secret_key_file, "ERP_SECRET_KEY_FILE"))
        if self.alert_webhook_url_file is not None:
            url = _read_secret(self.alert_webhook_url_file, "ERP_ALERT_WEBHOOK_URL_FILE")
            self.alert_webhook_url = SecretStr(url) if url else None
        if self.alert_webhook_ca_file is not None and not self.alert_webhook_ca_file.is_file():
            raise ValueError(f"ERP_ALERT_WEBHOOK_CA_FILE: no such file: {self.alert_webhook_ca_file}")
        if self.secret_key is None:
            if self.environment == "production":
                raise ValueError(KEY_ADVICE + " in production")
            # Random and private to this process: tokens, codes and stored replays die with it.
            self._ephemeral = True
            self.secret_key = SecretStr(secrets.token_urlsafe(48))
        elif self.environment != "test":  # a public or guessable secret is refused whatever the environment
            secret = self.secret_key.get_secret_value()
            if secret.strip().lower() in PLACEHOLDER_SECRETS or len(secret) < MIN_SECRET_LENGTH:
                raise ValueError(KEY_ADVICE + " (a placeholder or short secret is refused)")
        return self

    @property
    def secret_is_ephemeral(self) -> bool:
        """True when no secret was configured and this process made up its own."""
        return self._ephemeral

    @property
    def secret_bytes(self) -> bytes:
        if self.secret_key is None:  # the validator always sets one
            raise RuntimeError("no secret")
        return self.secret_key.get_secret_value().encode()

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _read_secret(path: Path, variable: str) -> str:
    """A secret file's content; an unreadable file is a clear error naming the variable, not the content."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"{variable}: cannot read {path}: {exc.strerror}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
