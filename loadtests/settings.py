"""The load run's inputs as every locust process sees them: the config file and the environment.

The runner (`python -m loadtests`) sets the environment of the locust processes it starts; a worker
started by hand on another host needs the same variables (docs/load-testing.md lists them).
Credentials come from the environment or from a file, never from the command line.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

HERE = Path(__file__).resolve().parent
DEFAULT_CONFIG = HERE / "config.yaml"
DEFAULT_SLO = HERE / "slo.yaml"
PROFILES = ("smoke", "baseline", "stress", "soak")


class LoadSettingsError(Exception):
    """A missing or malformed input; the message names it (never a secret's value)."""


@cache
def config() -> dict[str, Any]:
    path = Path(os.environ.get("LOAD_CONFIG") or DEFAULT_CONFIG)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise LoadSettingsError(f"cannot read the load config {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("journeys"), dict):
        raise LoadSettingsError(f"{path}: expected a mapping with `journeys` and `profiles`")
    return data


def profile_settings(name: str) -> dict[str, Any]:
    values = dict((config().get("profiles") or {}).get(name) or {})
    for key in ("users", "duration", "start_users", "step_users", "step_seconds", "max_users", "spawn_rate"):
        override = os.environ.get(f"LOAD_{key.upper()}")
        if override:
            values[key] = float(override) if key == "spawn_rate" else int(override)
    return values


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return socket.gethostbyname(host).startswith("127.")
    except OSError:
        return False


def journey(name: str) -> dict[str, Any]:
    return dict(config()["journeys"].get(name) or {})


def read_credentials(path: str | None) -> dict[str, str]:
    """KEY=VALUE lines (# comments allowed) from a file that only its owner may read."""
    if not path:
        return {}
    file = Path(path)
    try:
        mode = file.stat().st_mode
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise LoadSettingsError(f"cannot read the credentials file {path}: {exc.strerror}") from None
    if mode & 0o077:
        raise LoadSettingsError(f"the credentials file {path} is readable by others: chmod 600 it")
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise LoadSettingsError(f"{path}:{number}: expected KEY=VALUE")
        values[key.strip()] = value.strip().strip('"').strip("'")
    return values


# What a deployed target needs (environment or credentials file); passed on to the locust processes.
ROOT_ENV_KEYS = (
    "LOAD_RC_ADMIN_USER",
    "LOAD_RC_ADMIN_PASSWORD",
    "LOAD_BOT_USERNAME",
    "LOAD_ADMINS_CHANNEL",
    "LOAD_ADMINS_ROOM_TYPE",
    "LOAD_ERP_URL",
    "LOAD_CA_FILE",
    "LOAD_USER_ROLES",
    "LOAD_BOT_METRICS_URL",
    "LOAD_ERP_METRICS_URL",
)


def _room_type(value: str) -> str:
    if value not in ("channel", "group"):
        raise LoadSettingsError(f"LOAD_ADMINS_ROOM_TYPE must be channel or group, got {value!r}")
    return value


@dataclass(frozen=True)
class Target:
    """What the locust processes talk to (from LOAD_* variables the runner sets)."""

    rocketchat_url: str
    admin_user: str
    admin_password: str
    bot_username: str
    admins_channel: str
    erp_url: str
    run_id: str
    user_roles: tuple[str, ...]
    # "channel" (public, as the local stack creates it) or "group" (private, as the roles deploy `admins`).
    admins_room_type: str = "channel"

    @classmethod
    def from_env(cls, host: str | None = None) -> Target:
        env = os.environ
        missing = [
            name
            for name in ("LOAD_RC_ADMIN_USER", "LOAD_RC_ADMIN_PASSWORD", "LOAD_BOT_USERNAME")
            if not env.get(name)
        ]
        if missing:
            raise LoadSettingsError("missing settings: " + ", ".join(missing))
        url = host or env.get("LOAD_RC_URL", "")
        if not url:
            raise LoadSettingsError("no Rocket.Chat URL: pass --host or set LOAD_RC_URL")
        return cls(
            rocketchat_url=url.rstrip("/"),
            admin_user=env["LOAD_RC_ADMIN_USER"],
            admin_password=env["LOAD_RC_ADMIN_PASSWORD"],
            bot_username=env["LOAD_BOT_USERNAME"],
            admins_channel=env.get("LOAD_ADMINS_CHANNEL", "erp-admins"),
            erp_url=env.get("LOAD_ERP_URL", "").rstrip("/"),
            run_id=env.get("LOAD_RUN_ID", "manual"),
            user_roles=tuple(r for r in env.get("LOAD_USER_ROLES", "user").split(",") if r),
            admins_room_type=_room_type(env.get("LOAD_ADMINS_ROOM_TYPE", "channel")),
        )

    @property
    def prefix(self) -> str:
        return f"{config().get('user_prefix', 'lt')}-{self.run_id}-"
