"""Alert notifications with several bot replicas: Alertmanager sends each one to every replica; it is posted
once, whichever replica leads, even when the replica posting it dies mid-post.

Two receivers (two replicas' alert routes) share one real store (redis-server, and SQLite for the single
replica case) and one Rocket.Chat stand-in that, like Rocket.Chat, keeps one message per client-chosen id.
"""

import asyncio
import copy
import shutil
import socket
import subprocess
import time
import uuid

import httpx
import pytest
from plugins.bot import FakeChat
from plugins.processes import free_port
from starlette.applications import Starlette

from bot.alerts import ALERTS_PATH, AlertsReceiver, Notification, notification_key
from bot.store import open_store

pytestmark = pytest.mark.integration

TOKEN = "alerts-replicas-4c1e"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHANNEL = "admins"


class OnceChat(FakeChat):
    """Rocket.Chat as the replicas share it: a message id it has is not stored again (chat.sendMessage)."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.entered = asyncio.Event()
        self.hang = False  # the replica posting "dies" inside the call
        self.fail = 0  # the next n calls fail like a Rocket.Chat outage

    async def send_to_channel_once(self, channel: str, text: str, message_id: str) -> dict[str, str]:
        self.entered.set()
        if self.hang:
            await asyncio.Event().wait()
        if self.fail:
            self.fail -= 1
            raise ConnectionError("rocket.chat down")
        if message_id not in self.ids:
            self.ids.append(message_id)
            self.sent.append((f"#{channel}", text))
        return {"room_id": f"#{channel}", "message_id": message_id}


def payload(status="firing", group=None, starts="2026-11-27T06:00:00Z"):
    group = group or uuid.uuid4().hex  # a group of its own: the stores outlive one test
    alert = {
        "status": status,
        "labels": {"alertname": "BotReplicaDown", "severity": "critical", "group": group},
        "annotations": {"summary": "A bot replica is down"},
        "startsAt": starts,
        "endsAt": "2026-11-27T06:10:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "fingerprint": group[:16],
    }
    return {
        "version": "4",
        "groupKey": f'{{}}:{{group="{group}"}}',
        "status": status,
        "receiver": "chatbot",
        "alerts": [alert],
    }


@pytest.fixture(params=["redis", "sqlite"])
async def store(request, tmp_path):
    url = request.getfixturevalue("redis_url") if request.param == "redis" else str(tmp_path / "bot.sqlite3")
    store = open_store(url)
    await store.open()
    yield store
    await store.close()


def replica(store, chat, **timing):
    receiver = AlertsReceiver(chat=chat, admins_channel=CHANNEL, token=TOKEN, store=store, **timing)
    transport = httpx.ASGITransport(app=Starlette(routes=receiver.routes()))
    return httpx.AsyncClient(transport=transport, base_url="http://bot")


async def deliver(client, body):
    return await client.post(ALERTS_PATH, json=body, headers=AUTH)


async def test_one_notification_sent_to_both_replicas_is_posted_once(store):
    chat = OnceChat()
    async with replica(store, chat) as a, replica(store, chat) as b:
        body = payload()
        first, second = await asyncio.gather(deliver(a, body), deliver(b, body))
        assert (first.status_code, second.status_code) == (200, 200)
        answers = sorted([first.json().get("posted"), second.json().get("posted")])
        assert answers == [False, True]
        assert len(chat.sent) == 1
        # Alertmanager's retry of either copy, later: posted before.
        again = await deliver(b, copy.deepcopy(body))
        assert again.json() == {"posted": False, "duplicate": True}
        # The group resolves: another notification, posted.
        resolved = payload(status="resolved", group=body["alerts"][0]["labels"]["group"])
        results = await asyncio.gather(deliver(a, resolved), deliver(b, resolved))
        assert [r.status_code for r in results] == [200, 200]
        assert len(chat.sent) == 2
        assert "BotReplicaDown" in chat.sent[1][1]


async def test_the_store_alone_keeps_a_plain_chat_to_one_post(store):
    # A chat without client-chosen ids (no second line of defence): the claim in the store decides.
    chat = FakeChat()
    async with replica(store, chat) as a, replica(store, chat) as b:
        body = payload()
        results = await asyncio.gather(*(deliver(c, body) for c in (a, b, a, b)))
        assert [r.status_code for r in results] == [200] * 4
        assert len(chat.sent) == 1


async def test_a_replica_dying_mid_post_leaves_the_post_to_the_other(store):
    dying, alive = OnceChat(), OnceChat()
    dying.hang = True
    async with replica(store, dying, posting_hold_seconds=1.0) as a, replica(store, alive) as b:
        body = payload()
        posting = asyncio.create_task(deliver(a, body))
        await asyncio.wait_for(dying.entered.wait(), 5)
        posting.cancel()  # the process is gone; its claim stays until it runs out
        loop = asyncio.get_running_loop()
        started = loop.time()
        answer = await deliver(b, body)
        assert answer.status_code == 200
        assert answer.json()["posted"] is True
        assert 0.5 < loop.time() - started < 5  # it waited for the claim to run out, then posted
        assert len(alive.sent) == 1
        assert dying.sent == []


async def test_a_failed_post_is_retried_by_whichever_replica_gets_it_next(store):
    chat = OnceChat()
    chat.fail = 1
    async with replica(store, chat) as a, replica(store, chat) as b:
        body = payload()
        failed = await deliver(a, body)
        assert failed.status_code == 503  # Alertmanager retries it
        assert chat.sent == []
        retried = await deliver(b, body)  # the claim was given back: no wait
        assert retried.status_code == 200
        assert retried.json()["posted"] is True
        assert len(chat.sent) == 1


async def test_an_unchanged_group_is_posted_again_after_the_dedup_window(store):
    chat = OnceChat()
    async with replica(store, chat, dedup_seconds=0.5) as a:
        body = payload()
        assert (await deliver(a, body)).json()["posted"] is True
        assert (await deliver(a, body)).json()["duplicate"] is True
        await asyncio.sleep(0.7)
        # Alertmanager's repeat_interval: the same content once more, a new message (a new derived id).
        repeat = await deliver(a, body)
        assert repeat.status_code == 200
        assert repeat.json()["posted"] is True
        assert len(chat.sent) == 2
        assert len(set(chat.ids)) == 2


def test_the_key_ignores_what_differs_between_copies_and_keeps_what_matters():
    body = payload()
    key = notification_key(Notification.model_validate(body))
    later = copy.deepcopy(body)
    later["alerts"][0]["endsAt"] = "2026-11-27T06:20:00Z"  # a firing alert's end moves on every resend
    later["alerts"][0]["annotations"] = {"summary": "reworded"}
    assert notification_key(Notification.model_validate(later)) == key
    changes = {"status": "resolved", "startsAt": "2026-11-27T07:00:00Z", "fingerprint": "ff"}
    for field, value in changes.items():
        other = copy.deepcopy(body)
        other["alerts"][0][field] = value
        assert notification_key(Notification.model_validate(other)) != key
    assert notification_key(Notification.model_validate(body | {"groupKey": "other"})) != key


@pytest.fixture
def lone_redis(tmp_path):
    """A redis-server of this test's own, which the test stops: (url, stop)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    server = subprocess.Popen(
        [*args, "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                server.kill()
                raise
            time.sleep(0.05)

    def stop() -> None:
        server.terminate()
        server.wait(10)

    yield f"redis://127.0.0.1:{port}/0", stop
    if server.poll() is None:
        stop()


async def test_with_the_store_down_the_derived_id_keeps_the_copies_to_one_message(lone_redis):
    """Redis stopped under the replicas: they post anyway (alerts matter most then), still once."""
    url, stop = lone_redis
    store = open_store(url)
    await store.open()
    stop()
    chat = OnceChat()
    async with replica(store, chat) as a, replica(store, chat) as b:
        body = payload()
        results = await asyncio.gather(deliver(a, body), deliver(b, body))
        assert [r.status_code for r in results] == [200, 200]
        assert len(chat.sent) == 1
        assert len(chat.ids) == 1
