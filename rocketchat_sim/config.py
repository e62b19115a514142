"""Process configuration, read from the environment the way the official Rocket.Chat image reads it.

Official names (`PORT`, `ROOT_URL`, `ADMIN_*`, `CREATE_TOKENS_FOR_USERS_SECRET`, `<SettingId>`,
`OVERWRITE_SETTING_<SettingId>`) plus the simulator's own `SIM_*` knobs. Secrets may also come from a
file named by `<NAME>_FILE` (Docker/Kubernetes secrets).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_SECRET_FIELDS = ("ADMIN_PASS", "CREATE_TOKENS_FOR_USERS_SECRET")


class SimSettings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore")

    PORT: int = Field(3000, ge=1, le=65535)
    BIND_IP: str = "127.0.0.1"
    ROOT_URL: str = ""
    ADMIN_USERNAME: str = "admin"
    ADMIN_NAME: str = "Administrator"
    ADMIN_PASS: SecretStr | None = None
    ADMIN_EMAIL: str = ""
    ADMIN_EMAIL_VERIFIED: bool = False
    CREATE_TOKENS_FOR_USERS_SECRET: SecretStr | None = None

    # Rocket.Chat's: the Prometheus exporter's port, before the Prometheus_Port setting (collectMetrics.ts).
    PROMETHEUS_PORT: int | None = Field(None, ge=1, le=65535)

    SIM_STATE_FILE: Path | None = None
    SIM_CONTROL_PORT: int | None = Field(None, ge=1, le=65535)
    SIM_VERSION: str = "8.6.1"  # the release roles/container_images pins
    # The latest database migration this build knows; a release image built for an upgrade drill raises
    # it. Known migrations: 1..SIM_MIGRATION_VERSION (no-ops); the state file's `migrations.version`
    # follows Rocket.Chat's startup rule (migrations.py), an unknown higher one stops the start.
    SIM_MIGRATION_VERSION: int = Field(330, ge=1)
    # DDP heartbeat: ping after this many idle seconds, drop if nothing arrives for as long again.
    SIM_DDP_PING_INTERVAL: float = Field(15.0, gt=0)
    SIM_DDP_PING_TIMEOUT: float = Field(15.0, gt=0)
    # Outgoing webhook POST timeout (seconds).
    SIM_WEBHOOK_TIMEOUT: float = Field(5.0, gt=0)
    # Node's: more trusted CAs (a PEM file) besides the well-known roots, for outgoing HTTPS (webhooks).
    NODE_EXTRA_CA_CERTS: str = ""
    SIM_LOG_LEVEL: str = "warning"
    # Messages kept in memory per room (oldest dropped beyond it): long load tests stay bounded.
    SIM_MAX_MESSAGES_PER_ROOM: int = Field(10_000, ge=100)

    @model_validator(mode="before")
    @classmethod
    def _secrets_from_files(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for name in _SECRET_FIELDS:
            path = os.environ.get(f"{name}_FILE")
            if path and not data.get(name) and not os.environ.get(name):
                data[name] = Path(path).read_text().strip()
        return data

    @property
    def root_url(self) -> str:
        return (self.ROOT_URL or f"http://localhost:{self.PORT}").rstrip("/")


def setting_overrides(environ: dict[str, str] | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """(initial, overwrite): `<SettingId>=v` applies on first start, `OVERWRITE_SETTING_<Id>=v` always.

    Only ids the registry knows are taken from plain env names (the environment holds PATH etc.).
    """
    env = os.environ if environ is None else environ
    overwrite = {
        k.removeprefix("OVERWRITE_SETTING_"): v for k, v in env.items() if k.startswith("OVERWRITE_SETTING_")
    }
    initial = {k: v for k, v in env.items() if not k.startswith("OVERWRITE_SETTING_")}
    return initial, overwrite
