"""Employees talking to the bot through Rocket.Chat: each simulated user sends `status` in its DM with
the bot and waits for the answer; the round trip is reported as its own line ("bot round trip").

    locust -f loadtests/chat_locustfile.py --host https://chat.example.com
    # LOAD_RC_ADMIN_USER / LOAD_RC_ADMIN_PASSWORD: an admin that may create users
    # LOAD_BOT_USERNAME: the bot's username (default erp-bot)

Users are created once per simulated user (load-<random>), so run it against staging or the simulator,
with the REST rate limiter raised or off for the test users (the bot's role bypasses it anyway).
"""

from __future__ import annotations

import os
import secrets
import time
import uuid

from locust import FastHttpUser, between, events, task

REPLY_TIMEOUT = 15.0


class Employee(FastHttpUser):
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        admin = self._login(os.environ["LOAD_RC_ADMIN_USER"], os.environ["LOAD_RC_ADMIN_PASSWORD"])
        self.username = f"load-{uuid.uuid4().hex[:10]}"
        password = secrets.token_urlsafe(12) + "aA1"
        self.client.post(
            "/api/v1/users.create",
            headers=admin,
            json={
                "name": "Load Test",
                "email": f"{self.username}@example.com",
                "password": password,
                "username": self.username,
                "verified": False,
                "joinDefaultChannels": False,
            },
            name="/api/v1/users.create",
        )
        self.auth = self._login(self.username, password)
        self.bot_username = os.environ.get("LOAD_BOT_USERNAME", "erp-bot")
        room = self.client.post(
            "/api/v1/dm.create", headers=self.auth, json={"username": self.bot_username}
        ).json()["room"]
        self.room_id = room.get("rid") or room["_id"]

    def _login(self, user: str, password: str) -> dict[str, str]:
        data = self.client.post("/api/v1/login", json={"user": user, "password": password}).json()["data"]
        return {"X-User-Id": data["userId"], "X-Auth-Token": data["authToken"]}

    @task
    def ask_status(self) -> None:
        sent = self.client.post(
            "/api/v1/chat.postMessage", headers=self.auth, json={"roomId": self.room_id, "text": "status"}
        ).json()
        sent_ts = sent["message"]["ts"]
        started = time.perf_counter()
        error: Exception | None = None
        while True:
            history = self.client.get(
                "/api/v1/dm.history",
                headers=self.auth,
                params={"roomId": self.room_id, "oldest": sent_ts, "count": 20},
                name="/api/v1/dm.history (poll)",
            ).json()
            if any(m["u"]["username"] == self.bot_username for m in history.get("messages", [])):
                break
            if time.perf_counter() - started > REPLY_TIMEOUT:
                error = TimeoutError(f"no answer from {self.bot_username} in {REPLY_TIMEOUT}s")
                break
            time.sleep(0.02)
        events.request.fire(
            request_type="BOT",
            name="bot round trip (status)",
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=error,
            context={},
        )
