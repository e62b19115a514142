"""Task-tracker settings: the backend chosen, what each one requires, secrets from files, never shown."""

import os

import pytest
from pydantic import ValidationError

from bot.settings import BotSettings
from bot.tasks import build_tracker
from bot.tasks.jira import JiraTracker
from bot.tasks.redmine import RedmineTracker
from bot.tasks.webhook import WebhookTracker

pytestmark = pytest.mark.unit

BASE = {
    "BOT_ROCKETCHAT_USER_ID": "bot-id",
    "BOT_ROCKETCHAT_TOKEN": "pat-abcdef123456",
    "BOT_ERP_API_KEY": "erp-key-0123456789",
}
PAT = "jira-pat-NjQ1MjM0OTk2MTQ3"


@pytest.fixture
def env(monkeypatch):
    for key in list(os.environ):
        if key.startswith("BOT_"):
            monkeypatch.delenv(key)
    for key, value in BASE.items():
        monkeypatch.setenv(key, value)
    return monkeypatch


async def test_none_is_the_default(env):
    assert build_tracker(BotSettings()) is None


async def test_jira_from_settings_with_the_token_from_a_file(env, tmp_path):
    (tmp_path / "pat").write_text(PAT + "\n")
    env.setenv("BOT_TASKS_BACKEND", "jira")
    env.setenv("BOT_TASKS_URL", "https://jira.example.com/")
    env.setenv("BOT_TASKS_PROJECT", "HR")
    env.setenv("BOT_TASKS_TOKEN_FILE", str(tmp_path / "pat"))
    env.setenv("BOT_TASKS_DONE_TRANSITION", "Close Issue")
    settings = BotSettings()
    assert PAT not in repr(settings)
    tracker = build_tracker(settings)
    assert isinstance(tracker, JiraTracker)
    assert tracker.base_url == "https://jira.example.com"
    assert tracker._http.headers["Authorization"] == f"Bearer {PAT}"
    assert tracker.done_transition == "Close Issue"
    await tracker.aclose()


async def test_redmine_and_webhook_from_settings(env):
    env.setenv("BOT_TASKS_BACKEND", "redmine")
    env.setenv("BOT_TASKS_URL", "https://redmine.example.com")
    env.setenv("BOT_TASKS_PROJECT", "7")
    env.setenv("BOT_TASKS_TOKEN", "redmine-api-key-123")
    env.setenv("BOT_TASKS_REDMINE_TRACKER_ID", "2")
    tracker = build_tracker(BotSettings())
    assert isinstance(tracker, RedmineTracker)
    assert (tracker.project, tracker.tracker_id, tracker.closed_status_id) == ("7", 2, 5)
    await tracker.aclose()
    env.setenv("BOT_TASKS_BACKEND", "webhook")
    env.setenv("BOT_TASKS_URL", "https://hooks.example.com/tasks")
    env.setenv("BOT_TASKS_WEBHOOK_SECRET", "whsec-long-random-value")
    tracker = build_tracker(BotSettings())
    assert isinstance(tracker, WebhookTracker)
    await tracker.aclose()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"BOT_TASKS_BACKEND": "jira"}, "BOT_TASKS_URL"),
        ({"BOT_TASKS_BACKEND": "jira", "BOT_TASKS_URL": "https://j.example"}, "BOT_TASKS_PROJECT"),
        (
            {"BOT_TASKS_BACKEND": "redmine", "BOT_TASKS_URL": "https://r.example", "BOT_TASKS_PROJECT": "x"},
            "BOT_TASKS_TOKEN",
        ),
        ({"BOT_TASKS_BACKEND": "webhook", "BOT_TASKS_URL": "https://h.example"}, "BOT_TASKS_WEBHOOK_SECRET"),
        (
            {
                "BOT_TASKS_BACKEND": "webhook",
                "BOT_TASKS_URL": "ftp://h.example",
                "BOT_TASKS_WEBHOOK_SECRET": "a" * 20,
            },
            "http(s)",
        ),
        (
            {
                "BOT_TASKS_BACKEND": "jira",
                "BOT_TASKS_URL": "https://j.example",
                "BOT_TASKS_PROJECT": "HR",
                "BOT_TASKS_TOKEN": "changeme",
            },
            "placeholder",
        ),
        ({"BOT_TASKS_BACKEND": "trello"}, "tasks_backend"),
    ],
)
def test_incomplete_settings_are_refused_naming_the_setting(env, settings, message):
    for key, value in settings.items():
        env.setenv(key, value)
    with pytest.raises(ValidationError) as caught:
        BotSettings()
    assert message in str(caught.value)
