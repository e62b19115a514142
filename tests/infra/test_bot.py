"""The deployed bot: its replicas (chatbot_replicas, inventory/local: 2) and their shared Redis.

Every replica is ready; exactly one holds the leader lease; Redis is hardened and its password is in no
environment; Prometheus scrapes every replica; killing the leader mid-dialog hands the dialog to the
standby within 10 s, which answers the message sent while nobody led, and nothing is answered twice.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import httpx
import pytest
from infra.test_chat_registration import ChatSession, post_within_rate_limit
from plugins.infra import Stack, bot_get, docker_health, docker_inspect

from lab.drill_rocketchat import ANSWERS

pytestmark = pytest.mark.infra

REDIS = "photomatrix-redis"
PROMETHEUS = "photomatrix-prometheus"
TAKEOVER_SECONDS = 10
# A dialog the bot answers message by message (the registration of test_chat_registration.py).
KILL_AFTER = 2  # answers before the leader is killed


def run(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def replicas(stack: Stack) -> list[str]:
    """The bot containers, first replica first."""
    return sorted(
        (name for name in stack.containers if name.startswith(stack.bot)), key=lambda n: (len(n), n)
    )


def address(container: str) -> str:
    networks = docker_inspect(container)["NetworkSettings"]["Networks"]
    return next(iter(networks.values()))["IPAddress"]


def readiness(container: str, ca_file) -> dict:
    """/readyz of one replica, from this host over the internal network (200 or 503, both JSON): HTTPS
    when it serves it, the chain checked against the stack's CA (CA_FILE)."""
    tls = any(
        entry.startswith("BOT_HTTP_TLS_CERTFILE=") for entry in docker_inspect(container)["Config"]["Env"]
    )
    context = ssl.create_default_context(cafile=str(ca_file)) if tls else None
    if context is not None:
        context.check_hostname = False  # reached by address, which a certificate may not name
    url = f"{'https' if tls else 'http'}://{address(container)}:8080/readyz"
    try:
        with urllib.request.urlopen(url, timeout=3, context=context) as response:  # noqa: S310  # nosec B310
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())


def leading(container: str) -> bool:
    body = bot_get(container, "/metrics")
    return any(line.split() == ["bot_leader", "1.0"] for line in body.splitlines())


def wait_healthy(container: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if docker_inspect(container)["State"].get("Health", {}).get("Status") == "healthy":
            return
        time.sleep(1)
    logs = run(["docker", "logs", "--tail", "20", container]).stderr
    pytest.fail(f"{container} is not healthy after {timeout} s: {logs}")


@pytest.fixture
def bots(stack: Stack) -> list[str]:
    names = replicas(stack)
    if len(names) < 2:
        pytest.skip("one bot replica deployed (chatbot_replicas: 1)")
    return names


def test_bot_ready_and_connected(stack: Stack) -> None:
    for name in replicas(stack):
        out = bot_get(name, "/readyz")
        readiness = json.loads(out)
        assert readiness["ready"] is True, (name, readiness)
        assert all(readiness["checks"].values()), (name, readiness)


def test_two_replicas_exactly_one_leader(bots: list[str]) -> None:
    assert bots[:2] == ["photomatrix-chatbot", "photomatrix-chatbot-2"]
    leaders = [name for name in bots if leading(name)]
    assert len(leaders) == 1, f"leaders: {leaders}"
    # Each replica has its own fixed address on the internal network (the proxy and the ERP key allow them).
    assert [address(name) for name in bots[:2]] == ["10.250.0.20", "10.250.0.21"]


def test_redis_is_hardened_internal_and_its_password_is_in_no_environment(
    stack: Stack, bots: list[str]
) -> None:
    info = docker_inspect(REDIS)
    host = info["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["Memory"] > 0
    assert not host["PortBindings"], "Redis publishes a port"
    assert list(info["NetworkSettings"]["Networks"]) == ["photomatrix"]
    assert docker_health(REDIS) == "healthy"
    assert any(m["Destination"] == "/data" and m["Type"] == "volume" for m in info["Mounts"])
    config = stack.root / "redis" / "redis.conf"
    assert config.stat().st_mode & 0o777 == 0o600
    assert "appendonly yes" in config.read_text()
    password = next(
        line.split(" ", 1)[1] for line in config.read_text().splitlines() if line.startswith("requirepass ")
    )
    assert len(password) >= 32
    state_url = stack.root / "secrets" / "bot" / "state_url"
    assert state_url.stat().st_mode & 0o777 == 0o600
    for name in [REDIS, *bots]:
        inspected = run(["docker", "inspect", name]).stdout
        assert password not in inspected, f"Redis' password in docker inspect {name}"
        assert password not in run(["docker", "logs", name]).stdout + run(["docker", "logs", name]).stderr
    # Without the password Redis refuses.
    refused = run(["docker", "exec", REDIS, "redis-cli", "ping"])
    assert "NOAUTH" in refused.stdout + refused.stderr


def test_prometheus_scrapes_every_replica(stack: Stack, bots: list[str]) -> None:
    if PROMETHEUS not in stack.containers:
        pytest.skip("no monitoring on this stack")
    code = (
        "import urllib.request, urllib.parse; print(urllib.request.urlopen('http://127.0.0.1:9090/api/v1/query?'"
        " + urllib.parse.urlencode({'query': 'bot_leader'}), timeout=10).read().decode())"
    )
    deadline = time.monotonic() + 120
    while True:
        out = run(["docker", "exec", PROMETHEUS, "python3", "-c", code]).stdout
        series = json.loads(out)["data"]["result"] if out else []
        if len(series) >= len(bots) or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert len(series) == len(bots), series
    assert sum(float(s["value"][1]) for s in series) == 1, series
    rules = run(
        [
            "docker",
            "exec",
            PROMETHEUS,
            "python3",
            "-c",
            code.replace("query?", "rules?").replace(
                " + urllib.parse.urlencode({'query': 'bot_leader'})", ""
            ),
        ]
    ).stdout
    assert "BotLeaderNotOne" in rules


async def new_employee(stack: Stack) -> tuple[str, str, str]:
    """A Rocket.Chat user created by the admin: (user id, token, username)."""
    admin_password = (stack.root / "secrets" / "rocketchat" / "admin_password").read_text().strip()
    username = f"emp{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(12) + "aA1"
    async with httpx.AsyncClient(base_url=stack.base_url, verify=stack.ssl_context(), timeout=15) as http:
        login = (
            await post_within_rate_limit(
                http, "/api/v1/login", json={"user": "admin", "password": admin_password}
            )
        ).json()
        headers = {"X-User-Id": login["data"]["userId"], "X-Auth-Token": login["data"]["authToken"]}
        created = await http.post(
            "/api/v1/users.create",
            headers=headers,
            json={
                "name": "Petrov Ivan",
                "email": f"{username}@example.com",
                "password": password,
                "username": username,
                "verified": False,
                "joinDefaultChannels": False,
            },
        )
        assert created.status_code == 200, created.text
        user = (
            await post_within_rate_limit(http, "/api/v1/login", json={"user": username, "password": password})
        ).json()
    return user["data"]["userId"], user["data"]["authToken"], username


# Destructive (kills a replica, then starts it again): `make drill`, not the read-only `make verify`.
@pytest.mark.drill
@pytest.mark.timeout(420)
async def test_leader_killed_mid_dialog_the_standby_answers_once(stack: Stack, bots: list[str]) -> None:
    bot_user_id = (stack.root / "secrets" / "bootstrap" / "erp-bot-user-id").read_text().strip()
    leaders = [name for name in bots if leading(name)]
    assert len(leaders) == 1, f"leaders before the kill: {leaders}"
    leader = leaders[0]
    standbys = [name for name in bots if name != leader]
    user_id, token, username = await new_employee(stack)
    chat = ChatSession(stack, user_id, token)
    room = await chat.http.post("/api/v1/dm.create", json={"username": "erp-bot"})
    room_id = room.json()["room"].get("rid") or room.json()["room"]["_id"]
    ready = asyncio.Event()
    listener = asyncio.create_task(chat.listen(room_id, ready))
    replies: list[str] = []
    try:
        await asyncio.wait_for(ready.wait(), 10)
        for answer in ANSWERS[:KILL_AFTER]:
            await chat.say(room_id, answer)
            replies.append(await chat.reply_from(bot_user_id))

        killed = run(["docker", "kill", leader])
        assert killed.returncode == 0, killed.stderr
        killed_at = time.monotonic()
        # Sent while nobody leads: the new leader catches up from the room's history and answers it.
        await chat.say(room_id, ANSWERS[KILL_AFTER])
        takeover = None
        while takeover is None and time.monotonic() - killed_at < 30:
            for name in standbys:
                state = await asyncio.to_thread(readiness, name, stack.ca_file)
                if state.get("leader") and state.get("ready"):
                    takeover = time.monotonic() - killed_at
            await asyncio.sleep(0.2)
        replies.append(await chat.reply_from(bot_user_id))
        answered = time.monotonic() - killed_at
        print(f"\ntakeover {takeover} s after the kill; next answer after {answered:.1f} s")
        assert takeover is not None, "no standby took over within 30 s"
        assert takeover <= TAKEOVER_SECONDS, f"takeover after {takeover:.1f} s"

        for answer in ANSWERS[KILL_AFTER + 1 :]:
            await chat.say(room_id, answer.format(email=f"{username}@example.com"))
            replies.append(await chat.reply_from(bot_user_id))
        # The dialog went on from the standby with the state the leader left in Redis.
        assert re.search(r"(?:Код активации|Activation code): `(\d+)`", replies[-1]), replies
        # Nothing answered twice: no more bot message arrives for these six.
        await asyncio.sleep(5)
        extra = []
        while not chat.replies.empty():
            message = chat.replies.get_nowait()
            if message["u"]["_id"] == bot_user_id:
                extra.append(message["msg"])
        assert extra == [], f"answered twice: {extra}"
        assert len(replies) == len(ANSWERS)
    finally:
        listener.cancel()
        await chat.http.aclose()
        # Leave the stack as it was: the killed replica back, ready, as a standby.
        if not docker_inspect(leader)["State"]["Running"]:
            run(["docker", "start", leader])
        await asyncio.to_thread(wait_healthy, leader)
    assert sum(leading(name) for name in bots) == 1
