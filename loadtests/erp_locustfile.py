"""Load on the ERP bot-integration API as the bot produces it: status lookups, positions, registrations.

    locust -f loadtests/erp_locustfile.py --host https://erp.example.com   # ERP_API_KEY[_FILE] set

Every registration is retried once with the same Idempotency-Key, as the bot does after a timeout;
the retry must return the same record, so the load also checks idempotency under concurrency.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from locust import FastHttpUser, between, task

API = "/api/bot/v1"


def api_key() -> str:
    if path := os.environ.get("ERP_API_KEY_FILE"):
        return Path(path).read_text(encoding="utf-8").strip()
    return os.environ["ERP_API_KEY"]


class BotApiUser(FastHttpUser):
    wait_time = between(0.01, 0.1)

    def on_start(self) -> None:
        self.headers = {"X-API-Key": api_key()}
        with self.client.get(f"{API}/positions", headers=self.headers, catch_response=True) as response:
            items = response.json().get("items", []) if response.status_code == 200 else []
            self.position_codes = [p["code"] for p in items] or ["ENG"]
        self.usernames: list[str] = []

    @task(10)
    def status_lookup(self) -> None:
        username = self.usernames[-1] if self.usernames else "nobody.registered"
        self.client.get(
            f"{API}/staff",
            params={"rocketchat_username": username},
            headers=self.headers,
            name=f"{API}/staff?rocketchat_username",
        )

    @task(2)
    def positions(self) -> None:
        self.client.get(f"{API}/positions", headers=self.headers)

    @task(3)
    def register(self) -> None:
        suffix = uuid.uuid4().hex[:12]
        body = {
            "full_name": "Нагрузочный Тест Тестович",
            "email": f"load.{suffix}@example.com",
            "position_code": self.position_codes[hash(suffix) % len(self.position_codes)],
            "rocketchat_user_id": f"load{suffix}",
            "rocketchat_username": f"load.{suffix}",
        }
        headers = {**self.headers, "Idempotency-Key": f"load-{suffix}"}
        first = self.client.post(f"{API}/staff", json=body, headers=headers, name=f"{API}/staff")
        with self.client.post(
            f"{API}/staff", json=body, headers=headers, name=f"{API}/staff (retry)", catch_response=True
        ) as retry:
            if retry.status_code != first.status_code or retry.text != first.text:
                retry.failure("an idempotent retry answered differently from the first request")
        if first.status_code == 201:
            self.usernames.append(body["rocketchat_username"])
