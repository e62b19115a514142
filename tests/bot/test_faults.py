"""Faults with real processes: ERP down at confirm, stream dropped, bot restarted; webhook mode."""

import re
import time

import httpx
import pytest
from plugins.bot import start_bot

pytestmark = pytest.mark.integration


def erp_records(stack, username):
    with stack.erp.client(stack.erp.admin_key) as client:
        return client.get("/api/bot/v1/staff", params={"rocketchat_username": username}).json()["items"]


def test_erp_down_at_confirm_then_one_record_after_recovery(fresh_bot_stack):
    stack = fresh_bot_stack
    user, room = stack.new_user("down")
    bot_id = stack.bot_user.user_id
    for text in ["register", "Ivan Petrov", "ENG", f"{user.username}@example.com", "-"]:
        user.converse(room, bot_id, text)
    stack.erp.process.stop()
    try:
        assert "not answering" in user.converse(room, bot_id, "yes")
        # Now the breaker is open: the bot answers at once instead of waiting on retries.
        started = time.monotonic()
        assert "not answering" in user.converse(room, bot_id, "yes")
        assert time.monotonic() - started < 5
        assert stack.bot.ready().status_code == 503
    finally:
        stack.erp.process.start()
    time.sleep(1.2)  # the breaker's reset time in the test settings
    assert "Activation code" in user.converse(room, bot_id, "yes")
    assert len(erp_records(stack, user.username)) == 1
    assert "bot_erp_errors_total" in stack.bot.metrics()


def test_stream_dropped_mid_dialog_resumes_without_double_answers(fresh_bot_stack):
    stack = fresh_bot_stack
    user, room = stack.new_user("drop")
    bot_id = stack.bot_user.user_id
    user.converse(room, bot_id, "register")
    user.converse(room, bot_id, "Ivan Petrov")
    stack.fault("/faults/drop-websockets", abort=True)
    # Sent while the bot is reconnecting: it arrives either live or from the history catch-up.
    user.say(room, "ENG")
    texts = user.wait_for_bot(room, bot_id, 3, timeout=20)
    assert "email" in texts[2]
    assert "phone" in user.converse(room, bot_id, f"{user.username}@example.com")
    stack.fault("/faults/drop-websockets")
    time.sleep(0.3)
    assert "Please check" in user.converse(room, bot_id, "-")
    time.sleep(1.5)
    assert len(user.bot_messages(room, bot_id)) == 5  # every answer exactly once
    assert re.search(r"bot_reconnects_total (\d+)", stack.bot.metrics()).group(1) != "0"


def test_bot_restarted_mid_dialog_resumes_and_catches_up(fresh_bot_stack):
    stack = fresh_bot_stack
    user, room = stack.new_user("restart")
    bot_id = stack.bot_user.user_id
    user.converse(room, bot_id, "регистрация")
    user.converse(room, bot_id, "Петров Иван")
    stack.bot.stop()
    user.say(room, "ENG")  # sent while the bot is down
    stack.restart_bot()
    texts = user.wait_for_bot(room, bot_id, 3, timeout=20)
    assert "почты" in texts[2]
    assert "телефон" in user.converse(room, bot_id, f"{user.username}@example.com").lower()
    time.sleep(1.0)
    assert len(user.bot_messages(room, bot_id)) == 4


def test_webhook_mode_refuses_a_wrong_token_and_answers_a_right_one(bot_stack, tmp_path):
    token = "webhook-token-" + "x7" * 10
    bot = start_bot(
        rocketchat_url=bot_stack.rocketchat_url,
        erp_url=bot_stack.erp.base_url,
        erp_key=bot_stack.erp.admin_key,
        bot_user=bot_stack.bot_user,
        state_dir=tmp_path / "webhook-bot",
        name="bot-webhook",
        extra_env={"BOT_MODE": "webhook", "BOT_WEBHOOK_TOKEN": token},
    )
    try:
        user, room = bot_stack.new_user("hook")
        payload = {
            "token": "wrong",
            "bot": False,
            "channel_id": room,
            "message_id": "hook-msg-1",
            "timestamp": "2026-01-01T00:00:00.000Z",
            "user_id": user.user_id,
            "user_name": user.username,
            "text": "status",
            "siteUrl": bot_stack.rocketchat_url,
        }
        url = f"{bot.http_url}/webhook"
        assert httpx.post(url, json=payload, timeout=10).status_code == 403
        assert (
            httpx.post(url, json={k: v for k, v in payload.items() if k != "token"}, timeout=10).status_code
            == 403
        )
        assert httpx.post(url, content=b"not json", timeout=10).status_code == 400
        response = httpx.post(url, json={**payload, "token": token}, timeout=10)
        assert response.status_code == 200
        assert "text" not in response.json()  # the reply goes through REST, not through Rocket.Chat's hook
        texts = user.wait_for_bot(room, bot_stack.bot_user.user_id, 1)
        assert "not registered" in texts[0]
        # The same message delivered twice (Rocket.Chat retries) is answered once.
        httpx.post(url, json={**payload, "token": token}, timeout=10)
        time.sleep(0.5)
        assert len(user.bot_messages(room, bot_stack.bot_user.user_id)) == 1
        assert bot.ready().status_code == 200
    finally:
        bot.stop()


def test_revoked_login_token_makes_the_bot_log_in_again(fresh_bot_stack):
    stack = fresh_bot_stack
    user, room = stack.new_user("relogin")
    bot_id = stack.bot_user.user_id
    assert "не зарегистрированы" in user.converse(room, bot_id, "статус")
    # Deactivating a user revokes all its login tokens and closes its connections (Rocket.Chat does so).
    stack.admin.call("POST", "users.setActiveStatus", json={"userId": bot_id, "activeStatus": False})
    stack.admin.call("POST", "users.setActiveStatus", json={"userId": bot_id, "activeStatus": True})
    assert "не зарегистрированы" in user.converse(room, bot_id, "статус", timeout=30)
    assert len(user.bot_messages(room, bot_id)) == 2


def test_webhook_replicas_share_state_through_redis(bot_stack, redis_url, tmp_path):
    token = "replica-token-" + "k3" * 10
    pat = bot_stack.bot_user.personal_access_token("replicas")
    replicas = [
        start_bot(
            rocketchat_url=bot_stack.rocketchat_url,
            erp_url=bot_stack.erp.base_url,
            erp_key=bot_stack.erp.admin_key,
            bot_user=bot_stack.bot_user,
            state_dir=tmp_path / f"replica{i}",
            name=f"bot-replica{i}",
            token=pat,
            extra_env={"BOT_MODE": "webhook", "BOT_WEBHOOK_TOKEN": token, "BOT_STATE_URL": redis_url},
        )
        for i in range(2)
    ]
    try:
        user, room = bot_stack.new_user("replica")
        bot_id = bot_stack.bot_user.user_id

        def deliver(replica, message_id, text):
            payload = {
                "token": token,
                "bot": False,
                "channel_id": room,
                "message_id": message_id,
                "user_id": user.user_id,
                "user_name": user.username,
                "text": text,
            }
            return httpx.post(f"{replica.http_url}/webhook", json=payload, timeout=10)

        # One message delivered to both replicas (a retried webhook): answered once.
        assert deliver(replicas[0], "rep-1", "register").status_code == 200
        assert deliver(replicas[1], "rep-1", "register").json()["outcome"] is None
        # The dialog started on one replica continues on the other.
        deliver(replicas[1], "rep-2", "Ivan Petrov")
        texts = user.wait_for_bot(room, bot_id, 2)
        assert "Choose your position" in texts[1]
        time.sleep(0.3)
        assert len(user.bot_messages(room, bot_id)) == 2
    finally:
        for replica in replicas:
            replica.stop()


def test_an_abandoned_dialog_expires_with_a_notice(bot_stack, tmp_path):
    bot = start_bot(
        rocketchat_url=bot_stack.rocketchat_url,
        erp_url=bot_stack.erp.base_url,
        erp_key=bot_stack.erp.admin_key,
        bot_user=bot_stack.bot_user,
        state_dir=tmp_path / "short-ttl",
        name="bot-short-ttl",
        token=bot_stack.bot_user.personal_access_token("short-ttl"),
        extra_env={
            "BOT_MODE": "webhook",
            "BOT_WEBHOOK_TOKEN": "ttl-token-" + "z9" * 10,
            "BOT_DIALOG_TTL_SECONDS": "2",
        },
    )
    try:
        user, room = bot_stack.new_user("slow")
        payload = {
            "token": "ttl-token-" + "z9" * 10,
            "bot": False,
            "channel_id": room,
            "message_id": "ttl-1",
            "user_id": user.user_id,
            "user_name": user.username,
            "text": "register",
        }
        assert httpx.post(f"{bot.http_url}/webhook", json=payload, timeout=10).json()["outcome"] == "started"
        texts = user.wait_for_bot(room, bot_stack.bot_user.user_id, 2, timeout=10)
        assert "timed out" in texts[1]
    finally:
        bot.stop()
