"""Task-tracker integration: a task for the admins when a registration waits for approval, closed with
the decision. `bot.tasks.base` is the port, `jira`/`redmine`/`webhook` the adapters, `outbox` the
fault-tolerant delivery; `build_tracker` picks the adapter named by `BOT_TASKS_BACKEND`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.tasks.base import TaskTracker

if TYPE_CHECKING:
    from bot.settings import BotSettings


def build_tracker(settings: BotSettings) -> TaskTracker | None:
    """The configured adapter, or None when `BOT_TASKS_BACKEND=none` (the settings were validated)."""
    backend = settings.tasks_backend
    if backend == "none":
        return None
    token = settings.tasks_token.get_secret_value() if settings.tasks_token else ""
    ca = str(settings.tasks_ca_file) if settings.tasks_ca_file else None
    if backend == "jira":
        from bot.tasks.jira import JiraTracker

        return JiraTracker(
            settings.tasks_url,
            token=token,
            project=settings.tasks_project,
            issue_type=settings.tasks_issue_type,
            done_transition=settings.tasks_done_transition,
            timeout=settings.tasks_timeout,
            ca_file=ca,
        )
    if backend == "redmine":
        from bot.tasks.redmine import RedmineTracker

        return RedmineTracker(
            settings.tasks_url,
            api_key=token,
            project=settings.tasks_project,
            tracker_id=settings.tasks_redmine_tracker_id,
            closed_status_id=settings.tasks_redmine_closed_status_id,
            timeout=settings.tasks_timeout,
            ca_file=ca,
        )
    from bot.tasks.webhook import WebhookTracker

    secret = settings.tasks_webhook_secret.get_secret_value() if settings.tasks_webhook_secret else ""
    return WebhookTracker(settings.tasks_url, secret=secret, timeout=settings.tasks_timeout, ca_file=ca)
