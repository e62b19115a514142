"""Settings (env, *_FILE secrets, config file, placeholder refusal) and log masking."""

import json
import logging

import pytest
from pydantic import ValidationError

from bot.logging import JsonFormatter, mask, request_id_var
from bot.settings import BotSettings

pytestmark = pytest.mark.unit

BASE = {
    "BOT_ROCKETCHAT_URL": "http://127.0.0.1:3000/",
    "BOT_ROCKETCHAT_USER_ID": "bot-id",
    "BOT_ROCKETCHAT_TOKEN": "pat-abcdef123456",
    "BOT_ERP_URL": "http://127.0.0.1:8000",
    "BOT_ERP_API_KEY": "erp-key-0123456789",
}


@pytest.fixture
def env(monkeypatch):
    for key in list(__import__("os").environ):
        if key.startswith("BOT_"):
            monkeypatch.delenv(key)
    for key, value in BASE.items():
        monkeypatch.setenv(key, value)
    return monkeypatch


def test_environment_and_derived_urls(env):
    settings = BotSettings()
    assert settings.rocketchat_url == "http://127.0.0.1:3000"
    assert settings.websocket_url == "ws://127.0.0.1:3000/websocket"
    assert settings.erp_api_base == "http://127.0.0.1:8000/api/bot/v1"
    assert settings.mode == "realtime"
    assert settings.language == "ru"


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("", ""),
        ("https://photomatrix.example/activate", "https://photomatrix.example/activate"),
        ("https://photomatrix.example/activate/", "https://photomatrix.example/activate"),
        # The POST-only API answers a browser 405: an old setting is turned into the page.
        ("https://photomatrix.example/api/v1/account/activate", "https://photomatrix.example/activate"),
    ],
)
def test_the_activation_link_is_the_page(env, given, shown):
    env.setenv("BOT_ERP_ACTIVATION_URL", given)
    assert BotSettings().erp_activation_url == shown


@pytest.mark.parametrize(
    "bad", ["photomatrix.example/activate", "https://x.example/activate?code=1", "https://x/#a"]
)
def test_an_activation_link_with_a_query_or_no_scheme_is_refused(env, bad):
    env.setenv("BOT_ERP_ACTIVATION_URL", bad)
    with pytest.raises(ValidationError, match="activation page"):
        BotSettings()


def test_admin_commands_in_the_admins_channel_are_on_by_default(env):
    assert BotSettings().admins_channel_commands is True
    env.setenv("BOT_ADMINS_CHANNEL_COMMANDS", "false")
    assert BotSettings().admins_channel_commands is False


def test_secret_from_file(env, tmp_path):
    secret = tmp_path / "key"
    secret.write_text("from-file-key-987\n")
    env.delenv("BOT_ERP_API_KEY")
    env.setenv("BOT_ERP_API_KEY_FILE", str(secret))
    assert BotSettings().erp_api_key.get_secret_value() == "from-file-key-987"


def test_unreadable_secret_file_names_the_variable(env, tmp_path):
    env.setenv("BOT_ERP_API_KEY_FILE", str(tmp_path / "missing"))
    env.delenv("BOT_ERP_API_KEY")
    with pytest.raises(ValueError, match="BOT_ERP_API_KEY_FILE"):
        BotSettings()


@pytest.mark.parametrize("value", ["changeme", "CHANGE_ME", "placeholder", ""])
def test_placeholder_secrets_are_refused(env, value):
    env.setenv("BOT_ERP_API_KEY", value)
    with pytest.raises(ValidationError, match="placeholder"):
        BotSettings()


def test_missing_credentials_and_webhook_token(env):
    env.delenv("BOT_ROCKETCHAT_TOKEN")
    with pytest.raises(ValidationError, match="credentials"):
        BotSettings()
    env.setenv("BOT_ROCKETCHAT_TOKEN", "pat-abcdef123456")
    env.setenv("BOT_MODE", "webhook")
    with pytest.raises(ValidationError, match="WEBHOOK_TOKEN"):
        BotSettings()


def test_config_file(env, tmp_path):
    config = tmp_path / "bot.yaml"
    config.write_text("language: en\nadmins_channel: hr-admins\ndialog_ttl_seconds: 60\n")
    env.setenv("BOT_CONFIG_FILE", str(config))
    env.setenv("BOT_LANGUAGE", "ru")  # the environment wins over the file
    settings = BotSettings()
    assert (settings.language, settings.admins_channel, settings.dialog_ttl_seconds) == (
        "ru",
        "hr-admins",
        60,
    )


def test_secrets_do_not_appear_in_repr(env):
    assert "pat-abcdef123456" not in repr(BotSettings())


def test_masking():
    assert mask("mail ivanov@example.com") == "mail i***@example.com"
    assert mask("tel +7 (999) 123-45-67 ok") == "tel ***67 ok"
    assert mask({"code": "483920", "nested": {"token": "t", "email": "a@b.ru"}}) == {
        "code": "***",
        "nested": {"token": "***", "email": "a***@b.ru"},
    }


def test_json_lines_with_request_id():
    request_id_var.set("rid-42")
    record = logging.makeLogRecord(
        {
            "msg": "registered %s",
            "args": ("petrov@example.com",),
            "levelno": 20,
            "levelname": "INFO",
            "user": "petrov",
            "password": "hunter2hunter2",
        }
    )
    entry = json.loads(JsonFormatter().format(record))
    assert entry["request_id"] == "rid-42"
    assert entry["message"] == "registered p***@example.com"
    assert entry["password"] == "***"
    assert "hunter2" not in json.dumps(entry)


def test_the_process_refuses_to_start_with_a_placeholder_secret(tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    env.update(BASE, BOT_ERP_API_KEY="changeme", BOT_ROCKETCHAT_TOKEN="pat-very-secret-value-1234")
    result = subprocess.run(
        [sys.executable, "-m", "bot"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 2
    assert "BOT_ERP_API_KEY is a placeholder" in result.stderr
    assert "pat-very-secret-value-1234" not in result.stderr + result.stdout
