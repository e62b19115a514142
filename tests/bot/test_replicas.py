"""Two realtime replicas on one Redis: one leads (holds the lease, keeps the stream), the other stands by.

Real processes: the simulator, the ERP, redis-server and two bots. The active replica is killed
(SIGKILL: no clean stop, its lease must run out) in the middle of a registration dialog; the standby
takes over within 10 s, catches up from history what was said while nobody listened, continues the
dialog from the shared state, and nothing is answered twice.
"""

import signal
import time

import pytest
from plugins.bot import start_bot, start_bot_stack

pytestmark = pytest.mark.integration


def leader(bot) -> bool:
    return bool(bot.ready().json()["leader"])


def test_standby_takes_over_when_the_active_replica_dies_mid_dialog(redis_url, tmp_path):
    state_url = redis_url.rsplit("/", 1)[0] + "/7"  # a database of its own: the lease is this test's
    env = {"BOT_STATE_URL": state_url, "BOT_LEASE_SECONDS": "6"}
    stack = start_bot_stack(tmp_path, bot_env=env)
    standby = None
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
        assert "bot_leader 0.0" in standby.metrics()
        user, room = stack.new_user("failover")
        bot_id = stack.bot_user.user_id
        assert "full name" in user.converse(room, bot_id, "register")
        assert "Choose your position" in user.converse(room, bot_id, "Ivan Petrov")
        assert len(user.bot_messages(room, bot_id)) == 2  # only the active replica answers

        stack.bot.process.stop(signal.SIGKILL)
        killed = time.monotonic()
        user.say(room, "ENG")  # said while nobody listens: the standby finds it in history
        texts = user.wait_for_bot(room, bot_id, 3, timeout=20)
        took_over = time.monotonic() - killed
        assert took_over < 10, f"the standby answered {took_over:.1f} s after the active replica died"
        assert "email" in texts[2]
        assert leader(standby)
        assert "phone" in user.converse(room, bot_id, f"{user.username}@example.com")
        assert "check" in user.converse(room, bot_id, "-").lower()
        assert "Activation code" in user.converse(room, bot_id, "yes")
        time.sleep(1.5)
        assert len(user.bot_messages(room, bot_id)) == 6  # every answer exactly once
        with stack.erp.client(stack.erp.admin_key) as client:
            records = client.get("/api/bot/v1/staff", params={"rocketchat_username": user.username})
        assert len(records.json()["items"]) == 1
    finally:
        if standby is not None:
            standby.stop()
        stack.stop()


def test_a_cleanly_stopped_leader_hands_over_at_once(redis_url, tmp_path):
    state_url = redis_url.rsplit("/", 1)[0] + "/8"
    env = {"BOT_STATE_URL": state_url, "BOT_LEASE_SECONDS": "30"}  # a lease that would take long to run out
    stack = start_bot_stack(tmp_path, bot_env=env)
    standby = None
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
        assert not leader(standby)
        stack.bot.stop()  # SIGTERM: the lease is given back
        deadline = time.monotonic() + 15  # the standby retries every lease/3 = 10 s
        while not leader(standby):
            assert time.monotonic() < deadline, "the standby did not take the lease given back"
            time.sleep(0.2)
        user, room = stack.new_user("handover")
        assert "not registered" in user.converse(room, stack.bot_user.user_id, "status")
    finally:
        if standby is not None:
            standby.stop()
        stack.stop()
