"""What every journey shares: the run's admin session (creates and removes the test accounts) and a
person: a fresh Rocket.Chat account, logged in over REST, with its DM to the bot on the stream.

Rate limiting: Rocket.Chat's REST limiter stays on. Every simulated person has a client address of
its own (on loopback targets) and paces itself under the per-address, per-route limit; the run's own
setup calls (create/delete accounts) and the HR admins use `admin` accounts, which Rocket.Chat exempts
by role (`api-bypass-rate-limit`), as an operator's admins are.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import secrets
from dataclasses import dataclass
from typing import Any

import gevent.lock
import requests
import websocket

from loadtests.client import Account, ChatClient, JourneyError, next_source_ip
from loadtests.settings import Target, config

# Errors a step has already recorded in the statistics: the journey stops, the person is cleaned up.
STEP_ERRORS = (JourneyError, requests.RequestException, websocket.WebSocketException, OSError)

FIRST = ("Ivan", "Anna", "Oleg", "Maria", "Pavel", "Elena", "Sergey", "Olga", "Dmitry", "Irina")
LAST = ("Petrov", "Ivanova", "Sidorov", "Smirnova", "Kuznetsov", "Popova", "Volkov", "Morozova")


def think(bounds: list[float] | tuple[float, float]) -> float:
    low, high = float(bounds[0]), float(bounds[1])
    return random.uniform(low, high)


class AdminSession:
    """One per locust process: the admin account that creates and deletes the run's test accounts."""

    _instance: AdminSession | None = None
    _lock = gevent.lock.Semaphore()

    def __init__(self, target: Target, fire: Any) -> None:
        self.target = target
        self.client = ChatClient(target.rocketchat_url, fire)
        self.client.login(target.admin_user, target.admin_password)
        self.names = itertools.count(1)
        self._channel_id: str | None = None

    @classmethod
    def get(cls, target: Target, fire: Any) -> AdminSession:
        with cls._lock:
            if cls._instance is None:
                cls._instance = AdminSession(target, fire)
            return cls._instance

    def new_username(self) -> str:
        worker = AdminSession.worker_tag()
        return f"{self.target.prefix}{worker}{next(self.names)}-{secrets.token_hex(2)}"

    @staticmethod
    def worker_tag() -> str:
        return f"w{os.environ.get('LOAD_WORKER_INDEX', '0')}-"

    def create_account(self, roles: tuple[str, ...]) -> Account:
        username = self.new_username()
        password = secrets.token_urlsafe(12) + "aA1"
        body = self.client.rest(
            "POST",
            "users.create",
            name="setup: users.create",
            headers=self.client.auth_headers(),
            json={
                "username": username,
                "password": password,
                "name": username,
                "email": f"{username}@example.com",
                "roles": list(roles),
                "verified": False,
                "joinDefaultChannels": False,
            },
        )
        return Account(body["user"]["_id"], username, password)

    def delete_account(self, account: Account) -> None:
        self.client.rest(
            "POST",
            "users.delete",
            name="setup: users.delete",
            headers=self.client.auth_headers(),
            json={"userId": account.user_id, "confirmRelinquish": True},
        )

    def admins_channel_id(self) -> str:
        if self._channel_id is None:
            kind = self.target.admins_room_type  # channel, or group (a private room: groups.*)
            body = self.client.rest(
                "GET",
                f"{kind}s.info",
                name=f"setup: {kind}s.info",
                headers=self.client.auth_headers(),
                params={"roomName": self.target.admins_channel},
            )
            self._channel_id = body[kind]["_id"]
        return self._channel_id

    def invite(self, room_id: str, account: Account) -> None:
        self.client.rest(
            "POST",
            f"{self.target.admins_room_type}s.invite",
            name=f"setup: {self.target.admins_room_type}s.invite",
            headers=self.client.auth_headers(),
            json={"roomId": room_id, "userId": account.user_id},
        )


@dataclass
class Person:
    """A test account in use: its client, its DM room with the bot."""

    account: Account
    client: ChatClient
    dm: str

    @classmethod
    def start(
        cls, admin: AdminSession, target: Target, fire: Any, roles: tuple[str, ...], extra_rooms: tuple = ()
    ) -> Person:
        account = admin.create_account(roles)
        client = ChatClient(target.rocketchat_url, fire, source_ip=next_source_ip(target.rocketchat_url))
        try:
            client.login(account.username, account.password)
            dm = client.direct_room(target.bot_username)
            client.connect_realtime([dm, *extra_rooms])
        except BaseException:
            client.close()
            _quietly_delete(admin, account)
            raise
        return cls(client.account or account, client, dm)

    def finish(self, admin: AdminSession) -> None:
        self.client.close()
        _quietly_delete(admin, self.account)


def _quietly_delete(admin: AdminSession, account: Account) -> None:
    # A failure is recorded as a failed "setup: users.delete"; the runner's final sweep removes it.
    with contextlib.suppress(*STEP_ERRORS):
        admin.delete_account(account)


def reply_timeout() -> float:
    return float(config().get("reply_timeout", 20))


def full_name() -> str:
    return f"{random.choice(FIRST)} {random.choice(LAST)}"
