"""Reminders and the report command end to end: the bot as a process, the real ERP, the simulator."""

import re
import time

import pytest

pytestmark = pytest.mark.integration

# Round the clock, no threshold: every pending request is overdue, every live code (72 h) is "soon".
REMINDER_ENV = {
    "BOT_REMINDERS_ENABLED": "true",
    "BOT_REMINDER_CHECK_SECONDS": "0.3",
    "BOT_REMINDER_PENDING_AFTER_HOURS": "0",
    "BOT_REMINDER_EXPIRY_WITHIN_HOURS": "100",
    "BOT_REMINDER_WORK_HOURS": "00:00-24:00",
    "BOT_REMINDER_WORK_DAYS": "mon-sun",
}


def register(user, room, bot_id, position):
    answers = ["регистрация", "Петров Иван", position, f"{user.username}@example.com", "-", "да"]
    return [user.converse(room, bot_id, text) for text in answers]


def channel_texts(stack, needle):
    room = stack.admin.call("GET", "channels.info", params={"roomName": stack.admins_channel})["channel"][
        "_id"
    ]
    history = stack.admin.call("GET", "channels.history", params={"roomId": room, "count": 200})["messages"]
    return [m["msg"] for m in history if m["u"]["_id"] == stack.bot_user.user_id and needle in m["msg"]]


def wait_for(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_digest_and_expiry_reminder_go_out_once_and_the_report_shows_them(fresh_bot_stack):
    stack = fresh_bot_stack
    bot_id = stack.bot_user.user_id
    waiting, waiting_room = stack.new_user("waiting")
    assert "отправлена администраторам" in register(waiting, waiting_room, bot_id, "ACC")[-1]
    newcomer, newcomer_room = stack.new_user("newcomer")
    assert "Код активации" in register(newcomer, newcomer_room, bot_id, "ENG")[-1]
    assert channel_texts(stack, "Напоминание") == []  # reminders are off in the harness by default

    stack.restart_bot(**REMINDER_ENV)
    wait_for(lambda: channel_texts(stack, "Напоминание"))
    wait_for(lambda: len(newcomer.bot_messages(newcomer_room, bot_id)) == 7)
    (digest,) = channel_texts(stack, "Напоминание")
    assert f"@{waiting.username}" in digest
    assert f"@{newcomer.username}" not in digest
    reminder = newcomer.bot_messages(newcomer_room, bot_id)[6]
    assert "ещё не активирована" in reminder
    assert "попросите администратора выпустить новый" in reminder
    assert "перевыпустить" not in reminder  # an admin-only command is no advice for an employee
    assert not re.search(r"`\d{6}`", reminder)  # a reminder never repeats the code
    assert len(waiting.bot_messages(waiting_room, bot_id)) == 6  # pending: no expiry reminder

    time.sleep(1.5)  # several more rounds
    metrics = stack.bot.metrics()
    assert 'bot_reminders_total{kind="pending_digest"} 1.0' in metrics
    assert 'bot_reminders_total{kind="activation_expiry"} 1.0' in metrics
    stack.restart_bot(**REMINDER_ENV)  # the state survives a restart: nothing is sent again
    time.sleep(1.5)
    assert len(channel_texts(stack, "Напоминание")) == 1
    assert len(newcomer.bot_messages(newcomer_room, bot_id)) == 7

    admin = stack.admin_user()
    admin_dm = admin.dm_room(stack.bot_user.username)
    report = admin.converse(admin_dm, bot_id, "отчёт 1")
    assert "Зарегистрировано: 2" in report
    assert "ждут одобрения 1 · ждут активации 1" in report
    assert f"@{waiting.username}" in report
    assert f"@{newcomer.username}), `ENG`, код действует до" in report
    assert "от 1 до 366" in admin.converse(admin_dm, bot_id, "отчёт 0")
    outsider_reply = waiting.converse(waiting_room, bot_id, "report")
    assert "Only administrators" in outsider_reply
    audit = admin.converse(admin_dm, bot_id, "аудит 5")
    assert "report → ok" in audit
    # The new process found both already sent (its counters start from zero).
    assert 'bot_reminders_total{kind="pending_digest"} 1.0' not in stack.bot.metrics()
