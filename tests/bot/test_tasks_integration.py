"""The task-tracker integration end to end: the bot as a process, the real ERP, the Rocket.Chat
simulator and a stand-in Jira server on a loopback port."""

import os
import re
import time

import httpx
import pytest
from plugins.bot import start_bot_stack

pytestmark = pytest.mark.integration


def register(user, room, bot_id, full_name, position):
    answers = ["регистрация", full_name, position, f"{user.username}@example.com", "-", "да"]
    return [user.converse(room, bot_id, text) for text in answers]


def wait_for(predicate, what, timeout=60.0):  # generous: CI machines are slow and noisy
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def metric(bot, name):
    match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", bot.metrics(), re.M)
    return float(match.group(1)) if match else None


def staff_id_of(stack, username):
    with stack.erp.client(stack.erp.admin_key) as client:
        return client.get("/api/bot/v1/staff", params={"rocketchat_username": username}).json()["items"][0][
            "id"
        ]


@pytest.fixture
def tracked_stack(tmp_path, stand_in_jira):
    if os.environ.get("ROCKETCHAT_URL"):
        pytest.skip("needs the simulator (restarts); ROCKETCHAT_URL targets a real server")
    env = {
        "BOT_TASKS_BACKEND": "jira",
        "BOT_TASKS_URL": stand_in_jira.url,
        "BOT_TASKS_PROJECT": stand_in_jira.project,
        "BOT_TASKS_TOKEN": stand_in_jira.token,
        "BOT_TASKS_TIMEOUT": "2",
        "BOT_TASKS_POLL_SECONDS": "0.3",
        "BOT_TASKS_BACKOFF_BASE": "0.2",
        "BOT_TASKS_BACKOFF_MAX": "0.5",
    }
    stack = start_bot_stack(tmp_path, bot_env=env)
    yield stack, stand_in_jira
    stack.stop()


def test_approval_task_opened_once_closed_on_decision_and_delivered_after_an_outage(tracked_stack):
    stack, jira = tracked_stack
    bot_id = stack.bot_user.user_id

    # 1. An accountant's registration needs approval: exactly one task, with the commands, no secrets.
    anna, anna_room = stack.new_user("anna")
    assert "отправлена администраторам" in register(anna, anna_room, bot_id, "Петрова Анна", "ACC")[-1]
    anna_id = staff_id_of(stack, anna.username)
    wait_for(lambda: len(jira.issues) == 1, "the task")
    (issue,) = jira.issues.values()
    assert issue.fields["summary"] == "Одобрить регистрацию в ERP: Петрова Анна (Бухгалтер)"
    assert f"одобрить {anna_id}" in issue.fields["description"]
    assert f"Номер заявки: {anna_id}" in issue.fields["description"]
    assert f"@{anna.username}" in issue.fields["description"]
    assert f"{anna.username}@example.com" not in issue.fields["description"]
    assert f"photomatrix-staff-{anna_id}" in issue.fields["labels"]

    # 2. The admin approves through the bot: the task gets the decision as a comment and is closed.
    admin = stack.admin_user()
    admin_dm = admin.dm_room(stack.bot_user.username)
    assert f"№{anna_id}" in admin.converse(admin_dm, bot_id, f"одобрить {anna_id}")
    code = re.search(r"Код активации: `(\d+)`", anna.wait_for_bot(anna_room, bot_id, 7)[6]).group(1)
    wait_for(lambda: issue.done, "the task closed")
    assert issue.comments == [f"Одобрено @{admin.username} через бота. Сотруднику сообщено."]
    assert len(jira.issues) == 1
    assert all(code not in body for _, _, body in jira.requests)  # the activation code never leaves the chat
    assert metric(stack.bot, 'bot_tasks_opened_total{backend="jira"}') == 1.0
    assert metric(stack.bot, 'bot_tasks_closed_total{backend="jira"}') == 1.0

    # 3. The tracker is down: the registration still completes; the event waits in the outbox,
    #    across a restart of the bot, and the task appears once the tracker is back.
    jira.stop()
    oleg, oleg_room = stack.new_user("oleg")
    assert "отправлена администраторам" in register(oleg, oleg_room, bot_id, "Сидоров Олег", "HR")[-1]
    wait_for(
        lambda: (metric(stack.bot, 'bot_task_retries_total{backend="jira"}') or 0) >= 1, "a failed attempt"
    )
    assert metric(stack.bot, "bot_task_outbox_depth") == 1.0
    stack.restart_bot()
    wait_for(lambda: metric(stack.bot, "bot_task_outbox_depth") == 1.0, "the queued event after the restart")
    jira.start()
    wait_for(lambda: len(jira.issues) == 2, "the delayed task")
    oleg_issue = jira.issues["HR-2"]
    assert "Сидоров Олег (Специалист по кадрам)" in oleg_issue.fields["summary"]
    wait_for(lambda: metric(stack.bot, "bot_task_outbox_depth") == 0.0, "an empty outbox")

    # 4. A decision made in the ERP itself is noticed by the bot's approval watch and closes the task.
    oleg_id = staff_id_of(stack, oleg.username)
    with stack.erp.client(stack.erp.admin_key) as client:
        response = client.post(f"/api/bot/v1/staff/{oleg_id}/reject", json={"reason": "not hired"})
        assert response.status_code == 200, response.text
    wait_for(lambda: oleg_issue.done, "the task closed after the ERP's decision")
    assert oleg_issue.comments == [
        "Решение принято в ERP: статус заявки теперь отклонена. Сотруднику сообщено."
    ]
    assert len(jira.issues) == 2
    assert metric(stack.bot, "bot_task_outbox_dead") == 0.0
    # The tracker's token never reaches the bot's log.
    assert jira.token not in stack.bot.process.log_path.read_text()
    assert httpx.get(f"{stack.bot.http_url}/readyz", timeout=5).status_code == 200
