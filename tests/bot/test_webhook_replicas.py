"""Webhook mode with two bot replicas behind one outgoing webhook (issue 17).

Real processes: the Rocket.Chat simulator, the ERP, redis-server and two bots in webhook mode sharing it.
The outgoing webhook names both replicas, as playbooks/rocketchat_config.yml sets it up: Rocket.Chat
posts each message to every URL, one replica claims it in the shared store and answers, the other finds
it claimed (503) or handled (skipped). Each message is answered exactly once. Then the first replica is
killed (SIGKILL): Rocket.Chat's POST to it fails at once and is not retried, the other replica answers
the next messages, once each, and carries on the dialog the two had started. With retryFailedCalls (as
rocketchat_bootstrap sets it), a message whose replica is killed before answering is answered by the
other one after Rocket.Chat's retry of its 503.
"""

from __future__ import annotations

import secrets
import signal
import statistics
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from plugins.bot import BOT_SIM_SETTINGS, ChatUser, prepare_workspace, start_bot
from plugins.erp import start_erp_server
from plugins.rocketchat import start_simulator

pytestmark = pytest.mark.integration


def timed_converse(user: ChatUser, room: str, bot_id: str, text: str) -> tuple[str, float]:
    started = time.monotonic()
    reply = user.converse(room, bot_id, text, timeout=10)
    return reply, time.monotonic() - started


def start_webhook_replicas(
    tmp_path: Path,
    rc: Any,
    erp: Any,
    bot_user: Any,
    admins_channel: str,
    state_url: str,
    name: str,
    bots: list,
    extra_env: dict[str, str] | None = None,
) -> str:
    """Two webhook-mode bots sharing `state_url`, appended to `bots` as each starts (the caller stops
    them); the outgoing webhook's token they expect."""
    token = secrets.token_urlsafe(24)
    pat = bot_user.personal_access_token(f"webhook-{name}")
    for n in (1, 2):
        bots.append(
            start_bot(
                rocketchat_url=rc.base_url,
                erp_url=erp.base_url,
                erp_key=erp.admin_key,
                bot_user=bot_user,
                state_dir=tmp_path / f"bot{n}",
                name=f"bot-{name}-{n}",
                token=pat,
                extra_env={
                    "BOT_MODE": "webhook",
                    "BOT_WEBHOOK_TOKEN": token,
                    "BOT_STATE_URL": state_url,
                    "BOT_ADMINS_CHANNEL": admins_channel,
                    **(extra_env or {}),
                },
            )
        )
    return token


def create_outgoing_webhook(admin: Any, bot_user: Any, bots: list, token: str, **extra: Any) -> dict:
    """One outgoing webhook naming every replica's /webhook URL (as playbooks/rocketchat_config.yml)."""
    return admin.call(
        "POST",
        "integrations.create",
        json={
            "type": "webhook-outgoing",
            "name": f"erp-bot-webhook-{bot_user.username}",
            "enabled": True,
            "event": "sendMessage",
            "username": bot_user.username,
            "channel": f"@{bot_user.username}",
            "urls": [f"{bot.http_url}/webhook" for bot in bots],
            "scriptEnabled": False,
            "token": token,
            **extra,
        },
    )["integration"]


def test_each_message_reaches_both_replicas_and_is_answered_once_even_when_one_dies(
    tmp_path: Path, redis_url: str
) -> None:
    rc = start_simulator(tmp_path, "rocketchat-sim", BOT_SIM_SETTINGS)
    erp = None
    bots = []
    try:
        erp = start_erp_server(tmp_path / "erp")
        admin, bot_user, admins_channel = prepare_workspace(rc)
        token = start_webhook_replicas(
            tmp_path, rc, erp, bot_user, admins_channel, redis_url, "webhook", bots
        )
        # Every replica's URL; without retryFailedCalls here (a refused connection is never retried).
        integration = create_outgoing_webhook(admin, bot_user, bots, token)
        urls = integration["urls"]
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


# How long the simulator holds the replies (chat.sendMessage) of the replica that took the message: past
# the other replica's answer, which comes with Rocket.Chat's retry some 6-14 s after the first 503.
HELD_MS = 25_000


def test_a_message_whose_replica_dies_before_answering_is_answered_by_the_other_after_the_retry(
    tmp_path: Path, redis_url: str
) -> None:
    """The replica that claimed the message is killed with its reply in flight. The other one had answered
    503; with retryFailedCalls (as rocketchat_bootstrap sets it: 6 tries, powers-of-two) Rocket.Chat posts
    to it again 2, 6, 14... s later, and once the dead replica's claim has run out (its alive mark, at most
    BOT_LEASE_SECONDS after it died) it answers the message, once. The dead replica's held reply, let
    through later under the same derived id, is not posted a second time."""
    state_url = redis_url.rsplit("/", 1)[0] + "/10"  # a database of its own: the lease is this test's
    rc = start_simulator(tmp_path, "rocketchat-sim", BOT_SIM_SETTINGS)
    erp = None
    bots = []
    state = redis.Redis.from_url(state_url, decode_responses=True, socket_timeout=5)
    try:
        erp = start_erp_server(tmp_path / "erp")
        admin, bot_user, admins_channel = prepare_workspace(rc)
        token = start_webhook_replicas(
            tmp_path, rc, erp, bot_user, admins_channel, state_url, "retry", bots, {"BOT_LEASE_SECONDS": "6"}
        )
        # As rocketchat_bootstrap creates it (roles/rocketchat_bootstrap/defaults/main.yml).
        integration = create_outgoing_webhook(
            admin, bot_user, bots, token, retryFailedCalls=True, retryCount=6, retryDelay="powers-of-two"
        )
        bot_id = bot_user.user_id
        user = admin.create_user(f"webhook.retry.{secrets.token_hex(2)}")
        room = user.dm_room(bot_user.username)
        assert "register" in user.converse(room, bot_id, "help", timeout=10).lower()

        # The replies are held (the user writes through chat.postMessage, which is not).
        rc.control("/faults/delay", {"ms": HELD_MS, "path": "/api/v1/chat.sendMessage"}).raise_for_status()
        sent = time.monotonic()
        message_id = user.call("POST", "chat.postMessage", json={"roomId": room, "text": "help"})["message"][
            "_id"
        ]
        deadline = time.monotonic() + 10
        while not (holder := state.get(f"rcbot:handling:{message_id}")):
            assert time.monotonic() < deadline, "no replica took the message"
            time.sleep(0.05)
        pids = [bot.process.proc.pid for bot in bots]
        taker = [n for n, pid in enumerate(pids) if holder.split(":")[1] == str(pid)]
        assert len(taker) == 1, (holder, pids)
        dead, survivor = bots[taker[0]], bots[1 - taker[0]]
        dead.process.stop(signal.SIGKILL)
        killed = time.monotonic()
        rc.control("/faults/reset").raise_for_status()  # the survivor's replies go through

        texts = user.wait_for_bot(room, bot_id, 2, timeout=HELD_MS / 1000 - 5)
        answered = time.monotonic()
        assert "register" in texts[1].lower()
        assert state.get(f"rcbot:seen:{message_id}")  # marked handled, by the survivor
        history = admin.call("GET", "integrations.history", params={"id": integration["_id"], "count": 100})
        records = {h["url"]: h for h in history["history"] if h["data"].get("message_id") == message_id}
        assert records[f"{dead.http_url}/webhook"]["step"] == "after-http-error"  # killed mid-request
        assert records[f"{survivor.http_url}/webhook"]["httpResult"]["statusCode"] == 200  # after its 503s
        assert answered - killed < 20, f"answered {answered - killed:.1f} s after the kill"

        # The dead replica's held reply lands now, under the same id: the message has one answer.
        time.sleep(max(0.0, HELD_MS / 1000 - (time.monotonic() - sent)) + 2.0)
        assert len(user.bot_messages(room, bot_id)) == 2
        print(
            f"\nmessage answered by the surviving replica {answered - sent:.1f} s after it was sent,"
            f" {answered - killed:.1f} s after the replica that took it was killed"
        )
    finally:
        state.close()
        for bot in bots:
            bot.stop()
        if erp is not None:
            erp.stop()
        if rc.process is not None:
            rc.process.stop()
