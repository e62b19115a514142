"""The leader dies between taking a message and posting its reply: the new leader answers it, once (issue 17).

Real processes: the simulator, the ERP, redis-server and two bot replicas on it. The simulator holds the
leader's reply to a dialog answer (a delay on chat.sendMessage), so the leader has claimed the message and
saved the dialog's next step, and its reply is still in flight, when it is killed (SIGKILL: no clean stop).
The standby takes over, finds the message unhandled in history, and answers from the dialog as it was
before the message; the dead leader's reply, arriving late under the same derived id, is not posted again.
"""

import json
import signal
import time

import pytest
import redis
from plugins.bot import start_bot, start_bot_stack

pytestmark = pytest.mark.integration

HELD_MS = 12_000  # how long Rocket.Chat holds the leader's reply: it lands after the standby's answer


def leader(bot) -> bool:
    return bool(bot.ready().json()["leader"])


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_the_new_leader_answers_a_message_the_dead_leader_took_but_never_answered(redis_url, tmp_path):
    state_url = redis_url.rsplit("/", 1)[0] + "/9"  # a database of its own: the lease is this test's
    env = {"BOT_STATE_URL": state_url, "BOT_LEASE_SECONDS": "6"}
    stack = start_bot_stack(tmp_path, bot_env=env)
    standby = None
    state = redis.Redis.from_url(state_url, decode_responses=True, socket_timeout=5)
    try:
        standby = start_bot(
            rocketchat_url=stack.rocketchat_url,
            erp_url=stack.erp.base_url,
            erp_key=stack.erp.admin_key,
            bot_user=stack.bot_user,
            state_dir=tmp_path / "standby",
            name="bot-standby",
            extra_env={"BOT_ADMINS_CHANNEL": stack.admins_channel, **env},
        )
        assert leader(stack.bot)
        assert not leader(standby)
        user, room = stack.new_user("dies")
        bot_id = stack.bot_user.user_id
        assert "full name" in user.converse(room, bot_id, "register")
        assert "Choose your position" in user.converse(room, bot_id, "Ivan Petrov")

        held_reply = {"ms": HELD_MS, "path": "/api/v1/chat.sendMessage"}
        stack.rc.control("/faults/delay", held_reply).raise_for_status()
        held = time.monotonic()
        message_id = user.say(room, "ENG")

        def dialog_changed_by_it():
            raw = state.get(f"rcbot:dialog:{user.user_id}")
            return raw is not None and json.loads(raw).get("applied_by") == message_id

        wait_for(dialog_changed_by_it, 10, "the leader did not take the message")
        assert state.get(f"rcbot:handling:{message_id}")  # claimed, in hand
        assert state.get(f"rcbot:seen:{message_id}") is None  # not marked handled
        assert len(user.bot_messages(room, bot_id)) == 2  # and not answered
        stack.bot.process.stop(signal.SIGKILL)
        killed = time.monotonic()
        stack.fault("/faults/reset")  # the standby's replies go through; the dead one's is still held

        texts = user.wait_for_bot(room, bot_id, 3, timeout=30)
        took_over = time.monotonic() - killed
        assert "email" in texts[2], texts
        assert leader(standby)
        assert took_over < 15, f"the standby answered {took_over:.1f} s after the leader died"
        wait_for(lambda: state.get(f"rcbot:seen:{message_id}"), 10, "the message was not marked handled")
        assert state.get(f"rcbot:handling:{message_id}") is None

        # The dead leader's reply is let through now, under the same id: nothing is posted twice.
        time.sleep(max(0.0, HELD_MS / 1000 - (time.monotonic() - held)) + 2.0)
        texts = user.bot_messages(room, bot_id)
        assert len(texts) == 3, texts
        assert sum("email" in text for text in texts) == 1

        # The dialog goes on from the step the message led to, applied once.
        assert "phone" in user.converse(room, bot_id, f"{user.username}@example.com")
        assert "check" in user.converse(room, bot_id, "-").lower()
        assert "Activation code" in user.converse(room, bot_id, "yes")
        time.sleep(1.0)
        assert len(user.bot_messages(room, bot_id)) == 6  # every answer exactly once
    finally:
        state.close()
        if standby is not None:
            standby.stop()
        stack.stop()
