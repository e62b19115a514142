"""An outgoing webhook with several URLs (one per bot replica): each URL gets the message on its own.

Rocket.Chat's triggerHandler (executeTriggerUrl) starts the POST to a URL and goes on to the next URL
without awaiting the answer; a failed answer is retried by a timer, a request that failed outright
(connection refused) is recorded and never retried. So a replica that is down, slow, or answering 503
delays no other replica. Real HTTP receivers on loopback.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from plugins.processes import free_port

pytestmark = pytest.mark.integration


class Receiver:
    """Records each POST with its arrival time; answers `status` after `delay` seconds."""

    def __init__(self, status: int = 200, delay: float = 0.0) -> None:
        self.arrivals: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                receiver.arrivals.put((time.monotonic(), body))
                time.sleep(delay)
                data = json.dumps({"outcome": "x"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def get(self, timeout: float = 5.0) -> tuple[float, dict[str, Any]]:
        return self.arrivals.get(timeout=timeout)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _setup(rocketchat, urls: list[str], **extra: Any) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    owner = rocketchat.create_user()
    bot = rocketchat.create_user(roles=["bot"], login=False)
    channel = rocketchat.api(
        "POST", "channels.create", headers=owner.headers, json={"name": f"urls-{owner.username}"}
    ).json()["channel"]
    created = rocketchat.api(
        "POST",
        "integrations.create",
        json={
            "type": "webhook-outgoing",
            "name": f"replicas-{bot.username}",
            "enabled": True,
            "event": "sendMessage",
            "username": bot.username,
            "channel": f"#{channel['name']}",
            "urls": urls,
            "scriptEnabled": False,
            "token": "replicas-secret",
            **extra,
        },
    )
    assert created.status_code == 200, created.text
    return owner, channel, created.json()["integration"]


def _post(rocketchat, owner, channel, text: str) -> float:
    posted = rocketchat.api(
        "POST", "chat.postMessage", headers=owner.headers, json={"roomId": channel["_id"], "text": text}
    )
    assert posted.status_code == 200, posted.text
    return time.monotonic()


def test_a_slow_first_url_does_not_delay_the_second(rocketchat):
    slow, fast = Receiver(delay=2.0), Receiver()
    try:
        owner, channel, _ = _setup(rocketchat, [slow.url, fast.url])
        sent = _post(rocketchat, owner, channel, "both of you")
        at_fast, body = fast.get()
        at_slow, _ = slow.get()
        assert body["text"] == "both of you"
        # Sequential delivery would reach the second URL only after the first answered (2 s).
        assert at_fast - sent < 1.0, f"second URL reached {at_fast - sent:.2f} s after the message"
        assert abs(at_fast - at_slow) < 1.0
    finally:
        slow.close()
        fast.close()


def test_a_dead_first_url_is_not_retried_and_the_second_gets_each_message_at_once(rocketchat):
    dead = f"http://127.0.0.1:{free_port()}/webhook"  # nothing listens: connection refused
    live = Receiver()
    try:
        owner, channel, integration = _setup(
            rocketchat, [dead, live.url], retryFailedCalls=True, retryCount=3, retryDelay="powers-of-ten"
        )
        for n in range(3):
            sent = _post(rocketchat, owner, channel, f"message {n}")
            at, body = live.get()
            assert body["text"] == f"message {n}"
            assert at - sent < 1.0
        time.sleep(1.5)  # past the first two retry delays (0.1 s, 1 s)
        assert live.arrivals.empty()  # each message once
        history = rocketchat.api(
            "GET", "integrations.history", params={"id": integration["_id"], "count": 50}
        ).json()["history"]
        to_dead = [h for h in history if h["url"] == dead]
        # One record per message, a request error, no retry (Rocket.Chat retries answers, not errors).
        assert len(to_dead) == 3
        assert {h["step"] for h in to_dead} == {"after-http-error"}
    finally:
        live.close()


def test_retries_of_one_url_leave_the_others_alone(rocketchat):
    busy, live = Receiver(status=503), Receiver()
    try:
        owner, channel, _ = _setup(
            rocketchat, [busy.url, live.url], retryFailedCalls=True, retryCount=2, retryDelay="powers-of-ten"
        )
        sent = _post(rocketchat, owner, channel, "retry the busy one")
        at_live, _ = live.get()
        assert at_live - sent < 1.0
        arrivals = [busy.get()[0] for _ in range(3)]  # the first call and two retries (0.1 s, 1 s)
        assert arrivals[2] - arrivals[0] >= 1.0
        time.sleep(0.3)
        assert live.arrivals.empty()  # the busy URL's retries go to the busy URL only
    finally:
        busy.close()
        live.close()
