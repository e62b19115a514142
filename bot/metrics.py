"""Prometheus metrics of the bot (one registry per process, served on /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()

COMMANDS = Counter(
    "bot_commands_total",
    "Commands handled, by command and outcome",
    ["command", "outcome"],
    registry=REGISTRY,
)
COMMAND_SECONDS = Histogram(
    "bot_command_seconds",
    "Time from receiving a message to the end of handling it",
    ["command"],
    buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10),
    registry=REGISTRY,
)
RECONNECTS = Counter("bot_reconnects_total", "Realtime reconnects to Rocket.Chat", registry=REGISTRY)
REALTIME_CONNECTED = Gauge("bot_realtime_connected", "1 while the realtime stream is up", registry=REGISTRY)
LEADER = Gauge(
    "bot_leader",
    "1 while this replica holds the leader lease (the realtime stream and the periodic jobs)",
    registry=REGISTRY,
)
CAUGHT_UP = Counter(
    "bot_caught_up_messages_total", "Messages recovered from history after a gap", registry=REGISTRY
)
DUPLICATES = Counter("bot_duplicate_messages_total", "Messages dropped as already handled", registry=REGISTRY)
ERP_ERRORS = Counter("bot_erp_errors_total", "ERP call failures, by kind", ["kind"], registry=REGISTRY)
ERP_SECONDS = Histogram(
    "bot_erp_request_seconds",
    "ERP request latency",
    ["method"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
BREAKER_STATE = Gauge(
    "bot_erp_breaker_state", "ERP circuit breaker: 0 closed, 1 open, 2 half-open", registry=REGISTRY
)
REMINDERS = Counter(
    "bot_reminders_total",
    "Reminders sent, by kind (pending_digest to the admins channel, activation_expiry to the employee)",
    ["kind"],
    registry=REGISTRY,
)
REMINDER_FAILURES = Counter(
    "bot_reminder_failures_total",
    "Reminders that could not be sent (retried next round), by kind",
    ["kind"],
    registry=REGISTRY,
)
REMINDER_ROUNDS = Counter(
    "bot_reminder_rounds_total",
    "Reminder rounds, by result (sent, nothing, off_hours, erp_unavailable, erp_error)",
    ["result"],
    registry=REGISTRY,
)
TASKS_OPENED = Counter(
    "bot_tasks_opened_total",
    "Approval tasks opened in the task tracker, by backend",
    ["backend"],
    registry=REGISTRY,
)
TASKS_CLOSED = Counter(
    "bot_tasks_closed_total",
    "Approval tasks commented and closed, by backend",
    ["backend"],
    registry=REGISTRY,
)
TASKS_FAILED = Counter(
    "bot_tasks_failed_total",
    "Task-tracker events given up (dead-lettered, or not queued), by backend and kind (open, close)",
    ["backend", "kind"],
    registry=REGISTRY,
)
TASK_RETRIES = Counter(
    "bot_task_retries_total",
    "Task-tracker deliveries that failed and are retried, by backend",
    ["backend"],
    registry=REGISTRY,
)
TASK_OUTBOX_DEPTH = Gauge(
    "bot_task_outbox_depth", "Task-tracker events waiting in the outbox", registry=REGISTRY
)
TASK_OUTBOX_DEAD = Gauge(
    "bot_task_outbox_dead", "Task-tracker events dead-lettered (kept in the store)", registry=REGISTRY
)
ALERTS_RECEIVED = Counter(
    "bot_alerts_received_total",
    "Alerts received from Alertmanager, by their status (firing, resolved)",
    ["status"],
    registry=REGISTRY,
)
ALERTS_POSTED = Counter(
    "bot_alerts_posted_total", "Alert notifications posted to the admins channel", registry=REGISTRY
)
ALERTS_DUPLICATES = Counter(
    "bot_alerts_duplicates_total",
    "Alert notifications not posted again: another replica (or an earlier copy) posted them",
    registry=REGISTRY,
)
ALERTS_POST_FAILURES = Counter(
    "bot_alerts_post_failures_total",
    "Alert notifications not posted (Rocket.Chat failed; Alertmanager retries)",
    registry=REGISTRY,
)
ALERTS_REJECTED = Counter(
    "bot_alerts_rejected_total",
    "Alert notifications refused, by reason (unauthorized, invalid, too_large)",
    ["reason"],
    registry=REGISTRY,
)
