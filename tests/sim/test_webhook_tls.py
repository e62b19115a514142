"""Outgoing webhooks over HTTPS, verified like Rocket.Chat's Node.js does it (issue 10).

In webhook mode with the internal CA the bot's port serves HTTPS with a certificate from that CA, and
Rocket.Chat trusts it through NODE_EXTRA_CA_CERTS (the rocketchat role mounts the CA and names it there).
The simulator's webhook client verifies like Node: the well-known roots plus that file; a certificate it
cannot verify fails the delivery (recorded as an HTTP error, logged, not retried). These tests start the
real simulator and the bot's own HTTPS server (bot.app.http_server_config, the bot's webhook route)
with a certificate from a CA made here.
"""

from __future__ import annotations

import asyncio
import queue
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from plugins.pki import ServerPki, make_test_pki
from plugins.processes import free_port
from starlette.applications import Starlette

from bot.app import http_server_config
from bot.core.ports import IncomingMessage
from bot.settings import BotSettings
from bot.transport.webhook import webhook_routes

pytestmark = pytest.mark.integration

TOKEN = secrets.token_hex(16)


class RecordingRouter:
    """Stands in for the bot's router: records what the webhook route hands it."""

    def __init__(self) -> None:
        self.messages: queue.Queue[IncomingMessage] = queue.Queue()

    async def handle(self, incoming: IncomingMessage) -> str:
        self.messages.put(incoming)
        return "handled"


class BotHttps:
    """The bot's HTTP server as it runs with BOT_HTTP_TLS_CERTFILE/KEYFILE, with its webhook route."""

    def __init__(self, pki: ServerPki) -> None:
        self.router = RecordingRouter()
        self.port = free_port()
        settings = BotSettings(
            rocketchat_url="http://127.0.0.1:3000",
            rocketchat_user_id="bot-id",
            rocketchat_token=secrets.token_hex(16),
            erp_url="http://127.0.0.1:8000",
            erp_api_key=secrets.token_hex(16),
            http_host="127.0.0.1",
            http_port=self.port,
            http_tls_certfile=pki.cert,
            http_tls_keyfile=pki.key,
        )
        app = Starlette(routes=webhook_routes("/webhook", TOKEN, self.router))  # type: ignore[arg-type]
        self.server = uvicorn.Server(http_server_config(settings, app))
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the bot's HTTPS server did not start"
            time.sleep(0.05)
        self.url = f"https://127.0.0.1:{self.port}/webhook"

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def bot_https(tmp_path: Path):
    # The bot's certificate carries its replica's fixed address (chatbot_tls_names), the URL's host.
    (tmp_path / "internal-ca").mkdir()
    pki = make_test_pki(
        tmp_path / "internal-ca", ca_name="Photomatrix internal CA", names=("chatbot", "127.0.0.1")
    )
    server = BotHttps(pki)
    try:
        yield server, pki
    finally:
        server.close()


def _webhook_setup(rocketchat, url: str) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    owner = rocketchat.create_user()
    bot = rocketchat.create_user(roles=["bot"], login=False)
    channel = rocketchat.api(
        "POST", "channels.create", headers=owner.headers, json={"name": f"tls-{owner.username}"}
    ).json()["channel"]
    created = rocketchat.api(
        "POST",
        "integrations.create",
        json={
            "type": "webhook-outgoing",
            "name": f"erp-bot-webhook-{owner.username}",
            "enabled": True,
            "event": "sendMessage",
            "username": bot.username,
            "channel": f"#{channel['name']}",
            "urls": [url],
            "scriptEnabled": False,
            "token": TOKEN,
            "retryFailedCalls": True,
            "retryCount": 2,
            "retryDelay": "powers-of-ten",
        },
    )
    assert created.status_code == 200, created.text
    return owner, channel, created.json()["integration"]


def _post(rocketchat, owner, channel: dict[str, Any], text: str) -> None:
    posted = rocketchat.api(
        "POST", "chat.postMessage", headers=owner.headers, json={"roomId": channel["_id"], "text": text}
    )
    assert posted.status_code == 200, posted.text


def _history(rocketchat, integration: dict[str, Any], url: str, wait: float = 10.0) -> list[dict[str, Any]]:
    """The finished delivery records to URL (waits until there is one)."""
    deadline = time.monotonic() + wait
    while True:
        history = rocketchat.api(
            "GET", "integrations.history", params={"id": integration["_id"], "count": 50}
        ).json()["history"]
        records = [h for h in history if h["url"] == url and h["step"] != "start-execute-trigger"]
        if records or time.monotonic() > deadline:
            return records
        time.sleep(0.1)


def test_delivered_over_verified_tls_when_node_extra_ca_certs_names_the_ca(rocketchat_sim, bot_https):
    bot, pki = bot_https
    rocketchat = rocketchat_sim(env={"NODE_EXTRA_CA_CERTS": str(pki.ca)})
    owner, channel, integration = _webhook_setup(rocketchat, bot.url)
    _post(rocketchat, owner, channel, "hello over TLS")
    incoming = bot.router.messages.get(timeout=10)
    assert incoming.text == "hello over TLS"
    assert incoming.room_id == channel["_id"]
    (record,) = _history(rocketchat, integration, bot.url)
    assert record["step"] == "after-process-http-status"
    assert record["httpResult"] == {"statusCode": 200}
    assert record["finished"] is True


@pytest.mark.parametrize("trust", ["none", "another-ca", "missing-file"])
def test_refused_and_logged_when_the_certificate_cannot_be_verified(
    rocketchat_sim, bot_https, tmp_path, trust
):
    bot, _ = bot_https
    env = {"NODE_EXTRA_CA_CERTS": ""}  # none, whatever this shell sets
    if trust == "another-ca":
        (tmp_path / "other").mkdir()
        env["NODE_EXTRA_CA_CERTS"] = str(make_test_pki(tmp_path / "other", ca_name="Another CA").ca)
    elif trust == "missing-file":
        env["NODE_EXTRA_CA_CERTS"] = str(tmp_path / "absent-ca.crt")  # Node warns once and goes on
    rocketchat = rocketchat_sim(env=env)
    owner, channel, integration = _webhook_setup(rocketchat, bot.url)
    _post(rocketchat, owner, channel, "must not arrive")
    (record,) = _history(rocketchat, integration, bot.url)
    # A request error: recorded as such, not retried (Rocket.Chat retries answers, not errors).
    assert record["step"] == "after-http-error"
    assert record["finished"] is True
    with pytest.raises(queue.Empty):
        bot.router.messages.get(timeout=1.0)
    assert rocketchat.process is not None
    log = rocketchat.process.tail(200)
    assert "TLS certificate verification failed" in log, log
    if trust == "missing-file":
        assert "NODE_EXTRA_CA_CERTS" in log, log
        assert "not loaded" in log, log
