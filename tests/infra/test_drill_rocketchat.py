"""Failure drill (`make drill`, never production): Rocket.Chat down and back while an employee is in a
dialog with the bot, on the stack this machine runs.

An employee starts the registration dialog; Rocket.Chat (here the simulator, which keeps its workspace
in a state file across restarts) is stopped until BotRocketChatDisconnected fires in Prometheus, then
started again. The employee's next answer goes out as soon as Rocket.Chat answers, usually before the
bot's backoff lets it reconnect: the bot must pick it up (stream or catch-up from history) and the
dialog must finish with every answer handled exactly once. The reconnect must show in the bot's
metrics and log, and the alert, which the bot could not post while Rocket.Chat was down (it answers
Alertmanager 503, so Alertmanager retries), must reach the admins channel after Rocket.Chat returns.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import secrets
import subprocess
import time

import httpx
import pytest
from infra.test_chat_registration import ChatSession, post_within_rate_limit
from infra.test_drill_alerts import ALERT_TIMEOUT, delivered, firing, report
from infra.test_monitoring import wait_for
from plugins.infra import Stack, bot_get

from lab.drill_rocketchat import ANSWERS, answers_per_message, dialog_problems, parse_metrics

pytestmark = [pytest.mark.infra, pytest.mark.drill]

# The bot's reconnect backoff tops out at BOT_RECONNECT_MAX_SECONDS (30 s), then one catch-up.
REPLY_TIMEOUT = 90
# Long enough for a duplicate to show: the catch-up replays from a few seconds before the gap.
SETTLE_SECONDS = 15


def run(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def bot_replicas(stack: Stack) -> list[str]:
    """photomatrix-chatbot and, with chatbot_replicas > 1, its standbys (only the leader streams)."""
    return [name for name in stack.containers if re.fullmatch(re.escape(stack.bot) + r"(-\d+)?", name)]


def bot_metrics(stack: Stack) -> dict[str, float]:
    """The bots' own /metrics, unlabelled samples summed over the replicas (read inside each container:
    nothing is published)."""
    found: dict[str, float] = {}
    for replica in bot_replicas(stack):
        for name, value in parse_metrics(bot_get(replica, "/metrics")).items():
            found[name] = found.get(name, 0.0) + value
    return found


def rocketchat_answers(stack: Stack) -> bool:
    try:
        response = httpx.get(f"{stack.base_url}/api/info", verify=stack.ssl_context(), timeout=5)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


async def new_employee(stack: Stack) -> tuple[str, str, str]:
    """(username, user id, auth token) of a fresh employee, created by the workspace admin."""
    admin_password = (stack.root / "secrets" / "rocketchat" / "admin_password").read_text().strip()
    username = f"drill{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(12) + "aA1"
    async with httpx.AsyncClient(base_url=stack.base_url, verify=stack.ssl_context(), timeout=15) as http:
        login = await post_within_rate_limit(
            http, "/api/v1/login", json={"user": "admin", "password": admin_password}
        )
        assert login.status_code == 200, login.text
        data = login.json()["data"]
        created = await http.post(
            "/api/v1/users.create",
            headers={"X-User-Id": data["userId"], "X-Auth-Token": data["authToken"]},
            json={
                "name": "Sidorov Petr",
                "email": f"{username}@example.com",
                "password": password,
                "username": username,
                "verified": False,
                "joinDefaultChannels": False,
            },
        )
        assert created.status_code == 200, created.text
        user = await post_within_rate_limit(
            http, "/api/v1/login", json={"user": username, "password": password}
        )
        assert user.status_code == 200, user.text
    return username, user.json()["data"]["userId"], user.json()["data"]["authToken"]


async def next_reply(chat: ChatSession, bot_user_id: str, within: float) -> str:
    async with asyncio.timeout(within):
        while True:
            message = await chat.replies.get()
            if message["u"]["_id"] == bot_user_id:
                return message["msg"]


async def listening(chat: ChatSession, room_id: str) -> asyncio.Task[None]:
    ready = asyncio.Event()
    task = asyncio.create_task(chat.listen(room_id, ready))
    await asyncio.wait_for(ready.wait(), 15)
    return task


async def dm_history(chat: ChatSession, room_id: str) -> list[dict]:
    """The DM's messages as Rocket.Chat's im.history gives them, newest first."""
    for _ in range(5):
        response = await chat.http.get("/api/v1/im.history", params={"roomId": room_id, "count": 100})
        if response.status_code != 429:
            break
        await asyncio.sleep(13)
    assert response.status_code == 200, response.text
    return response.json()["messages"]


@pytest.mark.timeout(1200)
async def test_rocketchat_down_and_back_loses_no_command(stack: Stack) -> None:
    for name in (stack.rocketchat, stack.bot, "photomatrix-prometheus", "photomatrix-alertmanager"):
        assert name in stack.containers, f"{name} is not running: deploy first (make up)"
    assert bot_metrics(stack).get("bot_realtime_connected") == 1, "the bot is not connected before the drill"
    bot_user_id = (stack.root / "secrets" / "bootstrap" / "erp-bot-user-id").read_text().strip()
    username, user_id, token = await new_employee(stack)
    email = f"{username}@example.com"
    chat = ChatSession(stack, user_id, token)
    room = await chat.http.post("/api/v1/dm.create", json={"username": "erp-bot"})
    assert room.status_code == 200, room.text
    room_id = room.json()["room"].get("rid") or room.json()["room"]["_id"]
    listener = await listening(chat, room_id)
    answers = [a.format(email=email) for a in ANSWERS]
    try:
        # The dialog is open: the bot asked its first question.
        await chat.say(room_id, answers[0])
        await next_reply(chat, bot_user_id, REPLY_TIMEOUT)
        listener.cancel()
        before = bot_metrics(stack)
        since = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")

        out = run(["docker", "stop", "--time", "10", stack.rocketchat])
        assert out.returncode == 0, out.stderr
        stopped = time.monotonic()
        try:
            wait_for(
                lambda: bot_metrics(stack).get("bot_realtime_connected") == 0,
                "the bot to lose its stream",
                60,
            )
            wait_for(lambda: firing("BotRocketChatDisconnected"), "BotRocketChatDisconnected", ALERT_TIMEOUT)
            detected = time.monotonic() - stopped
        finally:
            out = run(["docker", "start", stack.rocketchat])
            assert out.returncode == 0, out.stderr
        restarted = time.monotonic()
        wait_for(lambda: rocketchat_answers(stack), "Rocket.Chat to answer through the proxy", 180)
        back = time.monotonic() - restarted

        # At once, before the bot's backoff may have let it reconnect.
        listener = await listening(chat, room_id)
        await chat.say(room_id, answers[1])
        connected_at_send = bot_metrics(stack).get("bot_realtime_connected")
        replies = [await next_reply(chat, bot_user_id, REPLY_TIMEOUT)]
        first_answer_s = time.monotonic() - restarted
        for answer in answers[2:]:
            await chat.say(room_id, answer)
            replies.append(await next_reply(chat, bot_user_id, REPLY_TIMEOUT))
        assert re.search(r"(?:Код активации|Activation code): `(\d+)`", replies[-1]), replies
        await asyncio.sleep(SETTLE_SECONDS)
        counts = answers_per_message(await dm_history(chat, room_id), user_id)
        problems = dialog_problems(counts, answers)
        assert not problems, problems
    finally:
        listener.cancel()
        await chat.http.aclose()

    after = bot_metrics(stack)
    assert after.get("bot_realtime_connected") == 1
    reconnects = after.get("bot_reconnects_total", 0) - before.get("bot_reconnects_total", 0)
    assert reconnects >= 1, (before, after)
    caught_up = after.get("bot_caught_up_messages_total", 0) - before.get("bot_caught_up_messages_total", 0)
    duplicates = after.get("bot_duplicate_messages_total", 0) - before.get("bot_duplicate_messages_total", 0)
    log = ""
    for replica in bot_replicas(stack):
        logs = run(["docker", "logs", "--since", since, replica])
        log += logs.stdout + logs.stderr
    assert "realtime disconnected" in log, log[-3000:]
    assert "realtime connected" in log, log[-3000:]

    # Posted once Rocket.Chat is back: Alertmanager retries what the bot refused with 503.
    wait_for(
        lambda: delivered(stack, "BotRocketChatDisconnected", "BotRocketChatDisconnected"),
        "BotRocketChatDisconnected in the admins channel",
        timeout=420,
    )
    delivered_s = time.monotonic() - restarted
    wait_for(lambda: not firing("BotRocketChatDisconnected"), "the alert to resolve", 180)
    report(
        "Rocket.Chat down and back",
        f"stopped {stack.rocketchat} with an employee mid-registration; started it once the alert fired",
        f"Rocket.Chat answered {back:.0f} s after start; the next answer was sent with the bot "
        f"{'connected' if connected_at_send == 1 else 'still disconnected'} and answered after "
        f"{first_answer_s:.0f} s; {len(answers)} answers, each answered once; {reconnects:.0f} reconnect "
        f"attempts, {caught_up:.0f} messages caught up from history, {duplicates:.0f} duplicates dropped; "
        f"the alert reached the admins channel {delivered_s:.0f} s after Rocket.Chat was started",
        detected,
        first_answer_s,
        figure="rocketchat",
    )
