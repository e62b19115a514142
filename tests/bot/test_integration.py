"""The bot as a process against the Rocket.Chat simulator and the real ERP, all over loopback."""

import re
import time

import httpx
import pytest

pytestmark = pytest.mark.integration

REGISTRATION = ["регистрация", "Петров Иван Сергеевич", "ENG", "{email}", "+7 999 123-45-67", "да"]


def register(user, room, bot_id, position="ENG", lang="ru"):
    answers = ["регистрация", "Петров Иван", position, f"{user.username}@example.com", "-", "да"]
    if lang == "en":
        answers = ["register", "Ivan Petrov", position, f"{user.username}@example.com", "-", "yes"]
    return [user.converse(room, bot_id, text) for text in answers]


def code_of(text):
    login = re.search(r"(?:логин в ERP|ERP login): `([^`]+)`", text).group(1)
    code = re.search(r"(?:Код активации|Activation code): `(\d+)`", text).group(1)
    return login, code


def erp_staff(stack, username):
    with stack.erp.client(stack.erp.admin_key) as client:
        return client.get("/api/bot/v1/staff", params={"rocketchat_username": username}).json()["items"]


@pytest.mark.e2e
def admins_room_id(stack) -> str:
    info = stack.admin.call("GET", "channels.info", params={"roomName": stack.admins_channel})
    return info["channel"]["_id"]


def test_registration_from_first_dm_to_activation(bot_stack):
    user, room = bot_stack.new_user("ivan")
    bot_id = bot_stack.bot_user.user_id
    replies = register(user, room, bot_id)
    assert "фамилия" in replies[0]
    assert "Инженер" in replies[1]
    assert "Фамилия: Петров" in replies[4]
    login, code = code_of(replies[5])
    response = httpx.post(
        f"{bot_stack.erp.base_url}/api/v1/account/activate",
        json={"login": login, "code": code, "password": "Activ8Me-Now2026"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert "активна" in user.converse(room, bot_id, "статус")
    # A second registration shows the status instead of creating a duplicate.
    assert "уже зарегистрированы" in user.converse(room, bot_id, "регистрация")
    assert len(erp_staff(bot_stack, user.username)) == 1
    # The code went to the DM only: never to the admins channel.
    admin_room = admins_room_id(bot_stack)
    history = bot_stack.admin.call("GET", "channels.history", params={"roomId": admin_room})["messages"]
    assert all(code not in m["msg"] for m in history)
    # The bot's log: every command as a JSON line, but no code, no password, no plain email.
    log = bot_stack.bot.process.log_path.read_text()
    assert f'"user": "{user.username}"' in log
    assert not re.search(rf"(?<![0-9a-f]){code}(?![0-9a-f])", log)  # request ids are hex: match whole tokens
    assert bot_stack.bot_user.password not in log
    assert f"{user.username}@example.com" not in log


def test_approval_path_tells_admins_and_the_person(bot_stack):
    user, room = bot_stack.new_user("anna")
    bot_id = bot_stack.bot_user.user_id
    replies = register(user, room, bot_id, position="ACC", lang="en")
    assert "sent to the administrators" in replies[-1]
    staff_id = erp_staff(bot_stack, user.username)[0]["id"]
    admin_room = admins_room_id(bot_stack)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        history = bot_stack.admin.call("GET", "channels.history", params={"roomId": admin_room})["messages"]
        if any(f"одобрить {staff_id}" in m["msg"] for m in history):
            break
        time.sleep(0.1)
    else:
        pytest.fail("no approval request in the admins channel")
    # A non-admin cannot approve; the real admin can, and the person gets the code by DM.
    other, other_room = bot_stack.new_user("mallory")
    assert "только администраторам" in other.converse(other_room, bot_id, f"одобрить {staff_id}")
    admin = bot_stack.admin_user()
    admin_dm = admin.dm_room(bot_stack.bot_user.username)
    assert f"#{staff_id}" in admin.converse(admin_dm, bot_id, f"approve {staff_id}")
    texts = user.wait_for_bot(room, bot_id, 7)
    assert "has been approved" in texts[6]  # in the language the person registered in
    code_of(texts[6])


def test_status_help_and_channel_mention(bot_stack):
    user, room = bot_stack.new_user("olga")
    bot_id = bot_stack.bot_user.user_id
    assert "не зарегистрированы" in user.converse(room, bot_id, "статус")
    help_text = user.converse(room, bot_id, "help")
    assert "register" in help_text
    assert "approve" not in help_text
    channel = bot_stack.admin.create_channel(
        f"general-{user.username.replace('.', '-')}", [user.username, bot_stack.bot_user.username]
    )
    user.say(channel, "status without a mention")
    user.say(channel, f"@{bot_stack.bot_user.username} register")
    said = user.wait_for_bot(channel, bot_id, 1, kind="c")
    assert "direct messages" in said[0]
    assert "Let's register you" in user.wait_for_bot(room, bot_id, 3)[2]
    time.sleep(0.5)
    assert len(user.bot_messages(channel, bot_id, kind="c")) == 1  # the unmentioned message was ignored


def test_every_admin_command(bot_stack):
    user, room = bot_stack.new_user("petr")
    bot_id = bot_stack.bot_user.user_id
    register(user, room, bot_id)
    admin = bot_stack.admin_user()
    admin_dm = admin.dm_room(bot_stack.bot_user.username)
    name = user.username
    assert "Инженер" in admin.converse(admin_dm, bot_id, f"статус @{name}")
    assert "заблокирован" in admin.converse(admin_dm, bot_id, f"заблокировать @{name}")
    assert erp_staff(bot_stack, name)[0]["status"] == "blocked"
    assert "разблокирован" in admin.converse(admin_dm, bot_id, f"разблокировать @{name}")
    # The employee's own notice follows the admin's reply: count the employee's messages after it.
    deadline = time.monotonic() + 15
    while "разблокирована" not in (user.bot_messages(room, bot_id) or [""])[-1]:
        assert time.monotonic() < deadline, user.bot_messages(room, bot_id)
        time.sleep(0.05)
    before = len(user.bot_messages(room, bot_id))
    reply = admin.converse(admin_dm, bot_id, f"перевыпустить @{name}")
    assert "личные сообщения" in reply
    assert not re.search(r"`\d{6}`", reply)  # the admin never sees the code
    code_of(user.wait_for_bot(room, bot_id, before + 1)[before])
    assert "`ENG`" in admin.converse(admin_dm, bot_id, "должности")
    assert "выключен" in admin.converse(admin_dm, bot_id, "должность DRV доступ выкл")
    assert "не найдена" in admin.converse(admin_dm, bot_id, "должность NOPE доступ вкл")
    outsider, outsider_room = bot_stack.new_user("eve")
    assert "Only administrators" in outsider.converse(outsider_room, bot_id, f"block @{name}")
    audit = admin.converse(admin_dm, bot_id, "аудит 20")
    assert f"@{outsider.username} block → denied" in audit
    assert "reissue → reissued" in audit
    second, second_room = bot_stack.new_user("hr")
    register(second, second_room, bot_id, position="HR")
    staff_id = erp_staff(bot_stack, second.username)[0]["id"]
    assert f"№{staff_id}" in admin.converse(admin_dm, bot_id, f"отклонить {staff_id} нет вакансии")
    assert "нет вакансии" in second.wait_for_bot(second_room, bot_id, 7)[6]


def test_edits_and_resent_messages_are_answered_once(bot_stack):
    user, room = bot_stack.new_user("edit")
    bot_id = bot_stack.bot_user.user_id
    message_id = user.say(room, "статус")
    user.wait_for_bot(room, bot_id, 1)
    user.edit(room, message_id, "помощь")
    time.sleep(1.0)
    assert len(user.bot_messages(room, bot_id)) == 1


def test_invalid_answers_get_a_reason_and_the_question_again(bot_stack):
    user, room = bot_stack.new_user("typo")
    bot_id = bot_stack.bot_user.user_id
    user.converse(room, bot_id, "register")
    reply = user.converse(room, bot_id, "x")
    assert "2 to 150" in reply
    assert "full name" in reply
    user.converse(room, bot_id, "Ivan Petrov")
    assert "number from 1" in user.converse(room, bot_id, "99")
    assert "cancelled" in user.converse(room, bot_id, "cancel")


def test_health_readiness_and_metrics(bot_stack):
    assert bot_stack.bot.ready().json()["checks"] == {"store": True, "erp": True, "rocketchat": True}
    metrics = bot_stack.bot.metrics()
    assert "bot_commands_total" in metrics
    assert "bot_erp_breaker_state 0.0" in metrics


def test_approval_decided_in_the_erp_reaches_the_person_with_a_working_code(bot_stack):
    user, room = bot_stack.new_user("outside")
    bot_id = bot_stack.bot_user.user_id
    assert "отправлена администраторам" in register(user, room, bot_id, position="ACC")[-1]
    staff_id = erp_staff(bot_stack, user.username)[0]["id"]
    with bot_stack.erp.client(bot_stack.erp.admin_key) as client:
        assert client.post(f"/api/bot/v1/staff/{staff_id}/approve").status_code == 200
    texts = user.wait_for_bot(room, bot_id, 7, timeout=20)
    assert "одобрена" in texts[6]
    login, code = code_of(texts[6])
    response = httpx.post(
        f"{bot_stack.erp.base_url}/api/v1/account/activate",
        json={"login": login, "code": code, "password": "Outs1de-Approval-77"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
