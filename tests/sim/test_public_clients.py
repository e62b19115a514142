"""Clients no one here wrote, run against the simulator as a new user would run them.

1. The official Node.js SDK, `@rocket.chat/sdk` 1.0.0-alpha.42 (npm, pinned in clients/package-lock.json,
   installed by clients/install.sh): a bot logs in (REST login, then DDP resume), subscribes to
   `__my_messages__`, receives a person's direct message and answers it over REST.
2. `rocketchat-API` 3.7.1 (PyPI, pinned in requirements.txt), the most used Python REST wrapper: the
   calls an integration makes, from login to logout, through the library's own method names.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

CLIENTS = Path(__file__).resolve().parent / "clients"


def _install_sdk() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for the Node.js SDK test")
    subprocess.run(["bash", str(CLIENTS / "install.sh")], check=True, timeout=300)


class NodeBot:
    """clients/sdk_bot.js as a process; its JSON-lines events are read into a queue."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "RC_HOST": base_url,
            "RC_USER": username,
            "RC_PASSWORD": password,
            "RC_RUN_SECONDS": "120",
        }
        self.proc = subprocess.Popen(
            ["node", str(CLIENTS / "sdk_bot.js")],
            cwd=CLIENTS,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.events.put(json.loads(line))
            except ValueError:
                self.events.put({"event": "output", "text": line.strip()})

    def wait(self, predicate: Any, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event = self.events.get(timeout=max(0.05, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append(event)
            if event["event"] in ("fatal", "sdk-error"):
                raise AssertionError(f"SDK failed: {event}")
            if predicate(event):
                return event
        raise AssertionError(f"no matching SDK event; seen: {self.seen}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def test_official_nodejs_sdk_bot_receives_and_answers(rocketchat_sim):
    _install_sdk()
    rc = rocketchat_sim()
    bot = rc.create_user(f"sdkbot-{secrets.token_hex(3)}", roles=("bot", "user"))
    person = rc.create_user(f"person-{secrets.token_hex(3)}")
    node = NodeBot(rc.base_url, bot.username, bot.password)
    try:
        logged_in = node.wait(lambda e: e["event"] == "logged-in")
        assert logged_in["userId"] == bot.id
        node.wait(lambda e: e["event"] == "subscribed")
        room = rc.api("POST", "dm.create", headers=person.headers, json={"username": bot.username})
        rid = room.json()["room"]["_id"]
        sent = rc.api(
            "POST",
            "chat.sendMessage",
            headers=person.headers,
            json={"message": {"rid": rid, "msg": "hello sdk"}},
        )
        assert sent.status_code == 200, sent.text
        received = node.wait(lambda e: e["event"] == "received" and e["msg"] == "hello sdk")
        assert received["rid"] == rid
        node.wait(lambda e: e["event"] == "answered" and e["rid"] == rid)
        history = rc.api("GET", "dm.history", headers=person.headers, params={"roomId": rid}).json()
        answers = [m for m in history["messages"] if m["u"]["_id"] == bot.id]
        assert [m["msg"] for m in answers] == ["sdk heard: hello sdk"]
        # A system message reaches the SDK too, with its `t`: the bot above is written to skip it.
        channel = rc.api(
            "POST", "channels.create", json={"name": f"sdk-{secrets.token_hex(3)}", "members": [bot.username]}
        )
        channel_id = channel.json()["channel"]["_id"]
        rc.api("POST", "channels.setTopic", json={"roomId": channel_id, "topic": "sdk topic"})
        system = node.wait(lambda e: e["event"] == "received" and e["rid"] == channel_id)
        assert system["t"] == "room_changed_topic"
        time.sleep(0.5)
        assert not any(e["event"] == "answered" and e["rid"] == channel_id for e in node.seen)
    finally:
        node.stop()


def test_rocketchat_api_python_client(rocketchat_sim):
    from rocketchat_API.APIExceptions.RocketExceptions import RocketApiException
    from rocketchat_API.rocketchat import RocketChat

    rc = rocketchat_sim()
    admin = RocketChat(rc.admin_username, rc.admin_password, server_url=rc.base_url, timeout=10)
    assert admin.me()["username"] == rc.admin_username
    assert admin.info()["version"].startswith("8.6")
    assert "license" not in admin.licenses_info()["license"]  # a Community workspace: no licence
    name = f"api-{secrets.token_hex(3)}"
    user_name = f"apiuser-{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(12)
    created = admin.users_create(f"{user_name}@example.test", "Api User", password, user_name)["user"]
    channel = admin.channels_create(name, members=[user_name])["channel"]
    posted = admin.chat_post_message("hello from rocketchat_API", room_id=channel["_id"])["message"]
    admin.chat_react(posted["_id"], emoji="smile")
    admin.chat_pin_message(posted["_id"])
    admin.chat_star_message(posted["_id"])
    assert admin.chat_get_message(posted["_id"])["message"]["reactions"] == {
        ":smile:": {"usernames": ["admin"]}
    }
    found = list(admin.chat_search(channel["_id"], "hello"))  # the library pages through `messages`
    assert [m["_id"] for m in found] == [posted["_id"]]
    assert [m["_id"] for m in admin.chat_get_pinned_messages(channel["_id"])] == [posted["_id"]]
    thread_reply = admin.chat_post_message("in thread", room_id=channel["_id"], tmid=posted["_id"])["message"]
    assert [m["_id"] for m in admin.chat_get_thread_messages(posted["_id"])] == [thread_reply["_id"]]
    admin.channels_set_topic(channel["_id"], "a topic")
    admin.channels_add_moderator(channel["_id"], created["_id"])
    assert admin.channels_moderators(room_id=channel["_id"])["moderators"][0]["username"] == user_name
    counters = admin.channels_counters(room_id=channel["_id"])
    assert counters["joined"] is True
    assert counters["msgs"] >= 4
    history = list(admin.channels_history(channel["_id"], count=2))  # three pages at least
    assert {"room_changed_topic", "subscription-role-added", "message_pinned"} <= {
        m.get("t") for m in history
    }
    assert admin.rooms_info(room_id=channel["_id"])["room"]["topic"] == "a topic"
    assert admin.spotlight(name)["rooms"][0]["_id"] == channel["_id"]
    assert next(admin.directory({"text": name, "type": "channels"}))["_id"] == channel["_id"]
    admin.subscriptions_read(channel["_id"])
    admin.users_set_status("at lunch", status="away")
    assert admin.users_info(user_id=rc.admin_user_id)["user"]["statusText"] == "at lunch"
    user = RocketChat(user_name, password, server_url=rc.base_url, timeout=10)
    assert sorted(c["_id"] for c in user.channels_list_joined()) == sorted([channel["_id"], "GENERAL"])
    with pytest.raises(RocketApiException) as refused:
        user.channels_archive(channel["_id"])
    assert refused.value.response_json["errorType"] == "error-not-authorized"
    user.channels_leave(channel["_id"])
    with pytest.raises(RocketApiException) as last_owner:
        admin.users_delete(rc.admin_user_id)  # the last admin cannot be deleted
    assert last_owner.value.response_json["errorType"] == "error-action-not-allowed"
    admin.channels_delete(room_id=channel["_id"])
    admin.logout()
