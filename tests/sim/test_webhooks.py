"""Incoming and outgoing webhooks against a real HTTP receiver on loopback."""

from __future__ import annotations

import json
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

pytestmark = pytest.mark.integration


class Receiver:
    """An HTTP server that records each POST and answers with a programmable status/body."""

    def __init__(self) -> None:
        self.requests: queue.Queue[dict[str, Any]] = queue.Queue()
        self.reply: tuple[int, dict[str, Any] | None] = (200, None)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                receiver.requests.put({"path": self.path, "headers": dict(self.headers), "body": body})
                status, payload = receiver.reply
                data = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def get(self, timeout: float = 5.0) -> dict[str, Any]:
        return self.requests.get(timeout=timeout)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def _channel(rocketchat, owner, prefix: str) -> dict[str, Any]:
    return rocketchat.api(
        "POST", "channels.create", headers=owner.headers, json={"name": f"{prefix}-{owner.username}"}
    ).json()["channel"]


def test_incoming_webhook_posts_into_its_channel(rocketchat):
    owner = rocketchat.create_user()
    bot = rocketchat.create_user(roles=["bot"], login=False)
    channel = _channel(rocketchat, owner, "in")
    created = rocketchat.api(
        "POST",
        "integrations.create",
        json={
            "type": "webhook-incoming",
            "name": f"alerts-{owner.username}",
            "enabled": True,
            "username": bot.username,
            "channel": f"#{channel['name']}",
            "scriptEnabled": False,
            "alias": "ERP",
        },
    )
    assert created.status_code == 200, created.text
    integration = created.json()["integration"]
    assert integration["channel"] == [f"#{channel['name']}"]
    assert integration["scriptEngine"] == "isolated-vm"
    hook = f"/hooks/{integration['_id']}/{integration['token']}"
    sent = rocketchat.api(
        "POST", hook, headers={}, json={"text": "ERP is down", "attachments": [{"title": "db", "text": "x"}]}
    )
    assert sent.json() == {"success": True}
    history = rocketchat.api(
        "GET", "channels.history", headers=owner.headers, params={"roomId": channel["_id"]}
    ).json()
    msg = history["messages"][0]
    assert msg["msg"] == "ERP is down"
    assert msg["u"]["username"] == bot.username
    assert msg["bot"] == {"i": integration["_id"]}
    assert msg["alias"] == "ERP"
    assert msg["attachments"][0]["title"] == "db"
    wrong = rocketchat.api("POST", f"/hooks/{integration['_id']}/wrong-token", headers={}, json={"text": "x"})
    assert wrong.status_code in (401, 404)
    override = rocketchat.api("POST", hook, headers={}, json={"text": "x", "channel": "#general"})
    assert override.status_code == 400
    listed = rocketchat.api("GET", "integrations.list", params={"name": f"alerts-{owner.username}"}).json()
    assert [i["_id"] for i in listed["integrations"]] == [integration["_id"]]
    assert (
        rocketchat.api("GET", "integrations.get", params={"integrationId": integration["_id"]}).status_code
        == 200
    )
    disabled = rocketchat.api(
        "PUT",
        "integrations.update",
        json={
            **{k: integration[k] for k in ("type", "name", "username", "scriptEnabled")},
            "enabled": False,
            "channel": f"#{channel['name']}",
            "integrationId": integration["_id"],
        },
    )
    assert disabled.json()["integration"]["enabled"] is False
    assert rocketchat.api("POST", hook, headers={}, json={"text": "x"}).status_code == 503
    removed = rocketchat.api(
        "POST", "integrations.remove", json={"type": "webhook-incoming", "integrationId": integration["_id"]}
    )
    assert removed.json()["integration"]["_id"] == integration["_id"]


def test_integrations_need_permission(rocketchat):
    user = rocketchat.create_user()
    denied = rocketchat.api(
        "POST",
        "integrations.create",
        headers=user.headers,
        json={
            "type": "webhook-incoming",
            "name": "x",
            "enabled": True,
            "username": user.username,
            "channel": "#general",
            "scriptEnabled": False,
        },
    )
    assert denied.status_code == 400
    assert rocketchat.api("GET", "integrations.list", headers=user.headers).status_code in (401, 403)


def _outgoing(rocketchat, receiver, bot, channel: str, **extra: Any) -> dict[str, Any]:
    created = rocketchat.api(
        "POST",
        "integrations.create",
        json={
            "type": "webhook-outgoing",
            "name": f"out-{bot.username}-{channel}",
            "enabled": True,
            "event": "sendMessage",
            "username": bot.username,
            "channel": channel,
            "urls": [receiver.url],
            "scriptEnabled": False,
            "token": "outgoing-secret",
            **extra,
        },
    )
    assert created.status_code == 200, created.text
    return created.json()["integration"]


def test_outgoing_webhook_payload_and_reply(rocketchat, receiver):
    owner = rocketchat.create_user()
    bot = rocketchat.create_user(roles=["bot"], login=False)
    channel = _channel(rocketchat, owner, "out")
    integration = _outgoing(rocketchat, receiver, bot, f"#{channel['name']}", triggerWords="!erp,!hr")
    receiver.reply = (200, {"text": "ERP says hi", "attachments": [{"text": "details"}]})
    rocketchat.api(
        "POST",
        "chat.postMessage",
        headers=owner.headers,
        json={"roomId": channel["_id"], "text": "no trigger"},
    )
    posted = rocketchat.api(
        "POST",
        "chat.postMessage",
        headers=owner.headers,
        json={"roomId": channel["_id"], "text": "!erp status"},
    )
    request = receiver.get()
    body = request["body"]
    assert request["headers"]["Content-Type"] == "application/json"
    assert body["token"] == "outgoing-secret"
    assert body["bot"] is False
    assert body["trigger_word"] == "!erp"
    assert body["channel_id"] == channel["_id"]
    assert body["channel_name"] == channel["name"]
    assert body["message_id"] == posted.json()["message"]["_id"]
    assert body["user_id"] == owner.id
    assert body["user_name"] == owner.username
    assert body["text"] == "!erp status"
    assert body["timestamp"].endswith("Z")
    assert receiver.requests.empty()  # "no trigger" was not sent
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        history = rocketchat.api(
            "GET", "channels.history", headers=owner.headers, params={"roomId": channel["_id"]}
        ).json()
        reply = history["messages"][0]
        if reply["msg"] == "ERP says hi":
            break
        time.sleep(0.05)
    assert reply["msg"] == "ERP says hi"
    assert reply["u"]["username"] == bot.username
    assert reply["bot"] == {"i": integration["_id"]}
    assert reply["attachments"] == [{"text": "details"}]
    time.sleep(0.2)
    assert receiver.requests.empty()  # the integration's own reply does not trigger it again


def test_outgoing_webhook_direct_messages_and_410_disables(rocketchat, receiver):
    alice = rocketchat.create_user()
    bot = rocketchat.create_user(roles=["bot"])
    integration = _outgoing(rocketchat, receiver, bot, "all_direct_messages")
    receiver.reply = (410, None)
    rocketchat.api(
        "POST",
        "chat.postMessage",
        headers=alice.headers,
        json={"channel": f"@{bot.username}", "text": "hello bot"},
    )
    body = receiver.get()["body"]
    assert body["text"] == "hello bot"
    assert "channel_name" not in body
    time.sleep(0.3)
    state = rocketchat.api("GET", "integrations.get", params={"integrationId": integration["_id"]}).json()
    assert state["integration"]["enabled"] is False


def test_outgoing_webhook_retries_failed_calls(rocketchat, receiver):
    owner = rocketchat.create_user()
    bot = rocketchat.create_user(roles=["bot"], login=False)
    channel = _channel(rocketchat, owner, "retry")
    _outgoing(
        rocketchat,
        receiver,
        bot,
        f"#{channel['name']}",
        retryFailedCalls=True,
        retryCount=2,
        retryDelay="powers-of-ten",
    )
    receiver.reply = (500, None)
    rocketchat.api(
        "POST", "chat.postMessage", headers=owner.headers, json={"roomId": channel["_id"], "text": "retry me"}
    )
    bodies = [receiver.get()["body"]["text"] for _ in range(3)]  # first call + 2 retries (0.1 s, 1 s)
    assert bodies == ["retry me"] * 3
    time.sleep(0.3)
    assert receiver.requests.empty()


def test_incoming_webhook_accepts_slack_style_form_payload(rocketchat):
    owner = rocketchat.create_user()
    channel = _channel(rocketchat, owner, "form")
    integration = rocketchat.api(
        "POST",
        "integrations.create",
        json={
            "type": "webhook-incoming",
            "name": f"form-{owner.username}",
            "enabled": True,
            "username": rocketchat.admin_username,
            "channel": f"#{channel['name']}",
            "scriptEnabled": False,
        },
    ).json()["integration"]
    hook = f"/hooks/{integration['_id']}/{integration['token']}"
    sent = rocketchat.api("POST", hook, headers={}, data={"payload": json.dumps({"text": "from a form"})})
    assert sent.json() == {"success": True}
    history = rocketchat.api(
        "GET", "channels.history", headers=owner.headers, params={"roomId": channel["_id"]}
    ).json()
    assert history["messages"][0]["msg"] == "from a form"
    assert rocketchat.api("POST", hook, headers={}, content=b"").json() == {"success": True}
