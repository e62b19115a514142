"""Webhook mode with two bot replicas behind one outgoing webhook (issue 17).

Real processes: the Rocket.Chat simulator, the ERP, redis-server and two bots in webhook mode sharing it.
The outgoing webhook names both replicas, as playbooks/rocketchat_config.yml sets it up: Rocket.Chat
posts each message to every URL, one replica claims it in the shared store and answers, the other finds
it claimed (503) or handled (skipped). Each message is answered exactly once. Then the first replica is
killed (SIGKILL): Rocket.Chat's POST to it fails at once and is not retried, the other replica answers
the next messages, once each, and carries on the dialog the two had started.
"""

from __future__ import annotations

import secrets
import signal
import statistics
import time
from pathlib import Path

import pytest
from plugins.bot import BOT_SIM_SETTINGS, ChatUser, prepare_workspace, start_bot
from plugins.erp import start_erp_server
from plugins.rocketchat import start_simulator

pytestmark = pytest.mark.integration


def timed_converse(user: ChatUser, room: str, bot_id: str, text: str) -> tuple[str, float]:
    started = time.monotonic()
    reply = user.converse(room, bot_id, text, timeout=10)
    return reply, time.monotonic() - started


def test_each_message_reaches_both_replicas_and_is_answered_once_even_when_one_dies(
    tmp_path: Path, redis_url: str
) -> None:
    rc = start_simulator(tmp_path, "rocketchat-sim", BOT_SIM_SETTINGS)
    erp = None
    bots = []
    try:
        erp = start_erp_server(tmp_path / "erp")
        admin, bot_user, admins_channel = prepare_workspace(rc)
        token = secrets.token_urlsafe(24)
        pat = bot_user.personal_access_token("webhook-replicas")
        for n in (1, 2):
            bots.append(
                start_bot(
                    rocketchat_url=rc.base_url,
                    erp_url=erp.base_url,
                    erp_key=erp.admin_key,
                    bot_user=bot_user,
                    state_dir=tmp_path / f"bot{n}",
                    name=f"bot-webhook-{n}",
                    token=pat,
                    extra_env={
                        "BOT_MODE": "webhook",
                        "BOT_WEBHOOK_TOKEN": token,
                        "BOT_STATE_URL": redis_url,
                        "BOT_ADMINS_CHANNEL": admins_channel,
                    },
                )
            )
        urls = [f"{bot.http_url}/webhook" for bot in bots]
        # As rocketchat_bootstrap creates it (no retryFailedCalls): every replica's URL.
        integration = admin.call(
            "POST",
            "integrations.create",
            json={
                "type": "webhook-outgoing",
                "name": f"erp-bot-webhook-{bot_user.username}",
                "enabled": True,
                "event": "sendMessage",
                "username": bot_user.username,
                "channel": f"@{bot_user.username}",
                "urls": urls,
                "scriptEnabled": False,
                "token": token,
            },
        )["integration"]
        bot_id = bot_user.user_id
        user = admin.create_user(f"webhook.replicas.{secrets.token_hex(2)}")
        room = user.dm_room(bot_user.username)

        before = []
        reply, took = timed_converse(user, room, bot_id, "help")
        before.append(took)
        assert "register" in reply.lower()
        reply, took = timed_converse(user, room, bot_id, "register")
        before.append(took)
        reply, took = timed_converse(user, room, bot_id, "help")
        before.append(took)
        time.sleep(1.0)  # a second answer from the other replica would be here by now
        assert len(user.bot_messages(room, bot_id)) == 3
        delivered = admin.call("GET", "integrations.history", params={"id": integration["_id"], "count": 100})
        assert {h["url"] for h in delivered["history"]} == set(urls)  # both replicas got the messages
        assert len(delivered["history"]) == 6

        bots[0].process.stop(signal.SIGKILL)
        after = []
        # The dialog "register" opened (on whichever replica) goes on on the survivor: state in Redis.
        reply, took = timed_converse(user, room, bot_id, "Ivan Petrov")
        after.append(took)
        assert "Choose your position" in reply
        for text in ("help", "help"):
            reply, took = timed_converse(user, room, bot_id, text)
            after.append(took)
        other = admin.create_user(f"webhook.survivor.{secrets.token_hex(2)}")
        other_room = other.dm_room(bot_user.username)
        reply, took = timed_converse(other, other_room, bot_id, "help")
        after.append(took)
        time.sleep(1.0)
        assert len(user.bot_messages(room, bot_id)) == 6  # every answer exactly once
        assert len(other.bot_messages(other_room, bot_id)) == 1
        history = admin.call("GET", "integrations.history", params={"id": integration["_id"], "count": 100})
        dead = [h for h in history["history"] if h["url"] == urls[0]][: len(after)]
        # Each message after the kill went to the dead replica too: refused at once, not retried.
        assert len(dead) == len(after)
        assert {h["step"] for h in dead} == {"after-http-error"}
        # A dead first URL costs the survivor nothing: Rocket.Chat does not wait on one URL for the next.
        assert max(after) < 3.0, f"answers after the kill took {after}"
        print(
            f"\nreply latency, two replicas: median {statistics.median(before):.3f} s,"
            f" max {max(before):.3f} s; first one killed: median {statistics.median(after):.3f} s,"
            f" max {max(after):.3f} s"
        )
    finally:
        for bot in bots:
            bot.stop()
        if erp is not None:
            erp.stop()
        if rc.process is not None:
            rc.process.stop()
