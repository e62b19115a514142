"""Bot settings: environment (prefix BOT_), an optional YAML/JSON config file, secrets from *_FILE paths."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from bot.work_calendar import WorkCalendar, parse_timezone, parse_work_days, parse_work_hours

ENV_PREFIX = "BOT_"
API_ACTIVATE_PATH = "/api/v1/account/activate"  # POST-only API; people need the page, /activate
# Values an operator forgot to replace: the bot refuses to start with them.
PLACEHOLDER_SECRETS = {
    "",
    "changeme",
    "change-me",
    "change_me",
    "changeit",
    "placeholder",
    "secret",
    "password",
    "token",
    "xxx",
    "todo",
    "replace-me",
    "example",
}
SECRET_FIELDS = (
    "rocketchat_token",
    "rocketchat_password",
    "erp_api_key",
    "webhook_token",
    "tasks_token",
    "tasks_webhook_secret",
    "alerts_token",
)


class FileSecretsSource(PydanticBaseSettingsSource):
    """`BOT_<NAME>_FILE=/path` supplies the field `<name>` from that file (trailing newline stripped)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        path = os.environ.get(f"{ENV_PREFIX}{field_name.upper()}_FILE")
        if not path:
            return None, field_name, False
        try:
            return Path(path).read_text(encoding="utf-8").strip(), field_name, False
        except OSError as exc:
            # Name the variable, never the content.
            raise ValueError(
                f"{ENV_PREFIX}{field_name.upper()}_FILE: cannot read {path}: {exc.strerror}"
            ) from None

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, name)
            if value is not None:
                values[key] = value
        return values


class ConfigFileSource(PydanticBaseSettingsSource):
    """`BOT_CONFIG_FILE=/etc/bot.yaml`: keys are the field names (lower case, without the prefix)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get(f"{ENV_PREFIX}CONFIG_FILE")
        if not path:
            return {}
        text = Path(path).read_text(encoding="utf-8")
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of setting names to values")
        return {str(k).lower(): v for k, v in data.items()}


class BotSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", case_sensitive=False)

    # Rocket.Chat: a personal access token (user id + token) or username/password.
    rocketchat_url: str = "http://127.0.0.1:3000"
    rocketchat_ws_url: str | None = None
    rocketchat_user_id: str | None = None
    rocketchat_token: SecretStr | None = None
    rocketchat_username: str | None = None
    rocketchat_password: SecretStr | None = None

    erp_url: str = "http://127.0.0.1:8000"
    erp_api_key: SecretStr | None = None
    erp_timeout: float = Field(5.0, gt=0, le=120)
    erp_retries: int = Field(3, ge=0, le=10)
    erp_backoff_base: float = Field(0.2, ge=0)
    erp_backoff_max: float = Field(5.0, ge=0)
    erp_breaker_threshold: int = Field(5, ge=1)
    erp_breaker_reset_seconds: float = Field(30.0, gt=0)
    # Shown to people with their activation code: the ERP's activation page, `<public base URL>/activate`
    # (the code is never put into the link). A URL of the old API path is turned into the page's URL.
    erp_activation_url: str = ""

    mode: Literal["realtime", "webhook"] = "realtime"
    webhook_token: SecretStr | None = None
    webhook_path: str = "/webhook"

    admin_role: str = "admin"
    admin_cache_seconds: float = Field(30.0, ge=0)
    admins_channel: str = "erp-admins"
    # In the admins channel, admin commands work without mentioning the bot (`одобрить 2`).
    admins_channel_commands: bool = True
    language: Literal["ru", "en"] = "ru"
    # Alertmanager notifications (POST /alerts/alertmanager, Bearer token); no token: the route is off.
    alerts_token: SecretStr | None = None
    alerts_max_lines: int = Field(10, ge=1, le=50)

    state_url: str = "./.state/bot.sqlite3"
    # In a container the proxy network must reach the webhook endpoint and the healthcheck.
    http_host: str = "0.0.0.0"  # noqa: S104  # nosec B104
    http_port: int = Field(8080, ge=0, le=65535)
    # HTTPS on http_port (Alertmanager's and Prometheus' calls from another host): the certificate and its
    # key as files (BOT_HTTP_TLS_CERTFILE, BOT_HTTP_TLS_KEYFILE), both or neither; neither: plain HTTP.
    http_tls_certfile: Path | None = None
    http_tls_keyfile: Path | None = None
    ca_file: Path | None = None

    dialog_ttl_seconds: float = Field(900.0, gt=0)
    # How often requests waiting for approval are checked (decisions made in the ERP, not via the bot).
    pending_poll_seconds: float = Field(60.0, gt=0)
    rate_limit_per_minute: int = Field(20, ge=1)
    max_input_length: int = Field(500, ge=50)
    rest_timeout: float = Field(10.0, gt=0)
    reconnect_max_seconds: float = Field(30.0, gt=0)
    # Replicas share one leader lease in the state store (Redis for more than one replica): a standby
    # takes over at most lease + lease/3 seconds after the leader died (bot/leader.py).
    lease_seconds: float = Field(6.0, ge=1.5, le=60)
    log_level: str = "INFO"

    # Reminders (pending approvals to the admins channel, expiring activation codes to their owners).
    reminders_enabled: bool = True
    reminder_check_seconds: float = Field(300.0, gt=0)
    reminder_pending_after_hours: float = Field(24.0, ge=0)
    reminder_repeat_hours: float = Field(24.0, gt=0)
    reminder_expiry_within_hours: float = Field(24.0, gt=0)
    reminder_work_hours: str = "09:00-18:00"
    reminder_work_days: str = "mon-fri"
    reminder_timezone: str = "Europe/Moscow"
    # ISO dates; in the environment a JSON list or comma-separated: 2027-01-01,2027-01-07
    reminder_holidays: Annotated[list[date], NoDecode] = Field(default_factory=list)

    # Task tracker (docs/bot-admin-guide.md, "Task tracker"): a task per request waiting for approval.
    tasks_backend: Literal["none", "jira", "redmine", "webhook"] = "none"
    tasks_url: str = ""  # Jira or Redmine base URL, or the webhook's URL
    tasks_project: str = ""  # Jira project key, or Redmine project id / identifier
    tasks_issue_type: str = "Task"  # Jira issue type name
    tasks_done_transition: str = "Done"  # Jira transition that closes the task
    tasks_redmine_tracker_id: int | None = Field(None, ge=1)
    tasks_redmine_closed_status_id: int = Field(5, ge=1)
    tasks_token: SecretStr | None = None  # Jira personal access token, or Redmine API key
    tasks_webhook_secret: SecretStr | None = None  # HMAC-SHA256 key of the webhook's signature
    tasks_ca_file: Path | None = None
    tasks_timeout: float = Field(10.0, gt=0, le=120)
    tasks_poll_seconds: float = Field(5.0, gt=0)
    tasks_max_attempts: int = Field(10, ge=1, le=1000)
    tasks_backoff_base: float = Field(5.0, gt=0)
    tasks_backoff_max: float = Field(600.0, gt=0)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Priority: explicit arguments, environment, *_FILE secrets, config file.
        return (
            init_settings,
            env_settings,
            FileSecretsSource(settings_cls),
            ConfigFileSource(settings_cls),
        )

    @field_validator("rocketchat_url", "erp_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("erp_activation_url")
    @classmethod
    def _activation_page(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return value
        if not value.startswith(("http://", "https://")) or any(c in value for c in "?#") or " " in value:
            raise ValueError("must be the activation page's http(s) URL, without a query or fragment")
        return value.rstrip("/").replace(API_ACTIVATE_PATH, "/activate")

    @field_validator("reminder_work_hours")
    @classmethod
    def _work_hours(cls, value: str) -> str:
        parse_work_hours(value)
        return value

    @field_validator("reminder_work_days")
    @classmethod
    def _work_days(cls, value: str) -> str:
        parse_work_days(value)
        return value

    @field_validator("reminder_timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        parse_timezone(value)
        return value

    @field_validator("reminder_holidays", mode="before")
    @classmethod
    def _holidays(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _check(self) -> BotSettings:
        for name in SECRET_FIELDS:
            secret = getattr(self, name)
            if secret is not None and secret.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
                raise ValueError(f"{ENV_PREFIX}{name.upper()} is a placeholder: set a real secret")
        has_token = bool(self.rocketchat_user_id and self.rocketchat_token)
        has_password = bool(self.rocketchat_username and self.rocketchat_password)
        if not (has_token or has_password):
            raise ValueError(
                "Rocket.Chat credentials missing: set BOT_ROCKETCHAT_USER_ID + BOT_ROCKETCHAT_TOKEN "
                "or BOT_ROCKETCHAT_USERNAME + BOT_ROCKETCHAT_PASSWORD"
            )
        if self.erp_api_key is None:
            raise ValueError("BOT_ERP_API_KEY (or BOT_ERP_API_KEY_FILE) is required")
        if self.mode == "webhook" and self.webhook_token is None:
            raise ValueError("BOT_WEBHOOK_TOKEN is required in webhook mode")
        if self.ca_file is not None and not self.ca_file.is_file():
            raise ValueError(f"BOT_CA_FILE: {self.ca_file} is not a file")
        if (self.http_tls_certfile is None) != (self.http_tls_keyfile is None):
            raise ValueError(
                "BOT_HTTP_TLS_CERTFILE and BOT_HTTP_TLS_KEYFILE go together: set both or neither"
            )
        for name in ("http_tls_certfile", "http_tls_keyfile"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{ENV_PREFIX}{name.upper()}: {path} is not a file")
        self._check_tasks()
        return self

    def _check_tasks(self) -> None:
        backend = self.tasks_backend
        if backend == "none":
            return
        if not self.tasks_url.startswith(("http://", "https://")):
            raise ValueError(f"BOT_TASKS_URL must be an http(s) URL when BOT_TASKS_BACKEND={backend}")
        self.tasks_url = self.tasks_url.rstrip("/")
        if backend in ("jira", "redmine"):
            if not self.tasks_project:
                raise ValueError(f"BOT_TASKS_PROJECT is required when BOT_TASKS_BACKEND={backend}")
            if self.tasks_token is None:
                raise ValueError(f"BOT_TASKS_TOKEN (or BOT_TASKS_TOKEN_FILE) is required for {backend}")
        if backend == "webhook" and self.tasks_webhook_secret is None:
            raise ValueError("BOT_TASKS_WEBHOOK_SECRET (or _FILE) is required when BOT_TASKS_BACKEND=webhook")
        if self.tasks_ca_file is not None and not self.tasks_ca_file.is_file():
            raise ValueError(f"BOT_TASKS_CA_FILE: {self.tasks_ca_file} is not a file")

    @property
    def work_calendar(self) -> WorkCalendar:
        return WorkCalendar.parse(
            self.reminder_work_hours, self.reminder_work_days, self.reminder_timezone, self.reminder_holidays
        )

    @property
    def websocket_url(self) -> str:
        if self.rocketchat_ws_url:
            return self.rocketchat_ws_url
        base = self.rocketchat_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        return f"{base}/websocket"

    @property
    def erp_api_base(self) -> str:
        url = self.erp_url
        return url if url.endswith("/api/bot/v1") else f"{url}/api/bot/v1"

    @property
    def erp_root(self) -> str:
        return self.erp_url.removesuffix("/api/bot/v1")
