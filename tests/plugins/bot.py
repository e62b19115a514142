"""Fixtures and fakes for the bot tests: unit fakes (chat, ERP) and the bot started as a real process."""

from __future__ import annotations

import hashlib
import itertools
import os
import secrets
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.erp_client import ErpError, ErpUnavailable
from plugins.processes import ServiceProcess, free_port
from plugins.rocketchat import RocketChat, real_server_from_env, start_simulator


class FakeChat:
    def __init__(self, admins: set[str] | None = None, bots: set[str] | None = None) -> None:
        self.sent: list[tuple[str, str]] = []
        self.edits: list[tuple[str, str, str]] = []
        self.admins = admins or set()
        self.bots = bots or set()

    async def send(self, room_id: str, text: str) -> None:
        self.sent.append((room_id, text))

    async def direct_room(self, username: str) -> str:
        return f"dm-{username}"

    async def send_to_channel(self, channel: str, text: str) -> dict[str, str]:
        self.sent.append((f"#{channel}", text))
        return {"room_id": f"#{channel}", "message_id": f"post-{len(self.sent)}"}

    async def edit(self, room_id: str, message_id: str, text: str) -> None:
        self.edits.append((room_id, message_id, text))

    async def user_roles(self, user_id: str) -> set[str]:
        if user_id in self.bots:
            return {"bot"}
        return {"admin", "user"} if user_id in self.admins else {"user"}

    def texts(self, room_id: str) -> list[str]:
        return [text for room, text in self.sent if room == room_id]


POSITIONS = [
    {
        "code": "ENG",
        "name": "Инженер",
        "department": "Производство",
        "erp_access": True,
        "erp_role": "engineer",
        "requires_approval": False,
        "is_active": True,
    },
    {
        "code": "DIR",
        "name": "Директор",
        "department": "",
        "erp_access": True,
        "erp_role": "director",
        "requires_approval": True,
        "is_active": True,
    },
    {
        "code": "CLN",
        "name": "Уборщик",
        "department": "",
        "erp_access": False,
        "erp_role": "",
        "requires_approval": False,
        "is_active": True,
    },
]


class FakeErp:
    def __init__(self) -> None:
        self.staff: dict[int, dict[str, Any]] = {}
        self.keys: dict[str, dict[str, Any]] = {}
        self.ids = itertools.count(1)
        self.down = False
        self.creates = 0
        self.refuse_next: ErpError | None = None
        self.keys_seen: list[str] = []
        self.report_calls: list[tuple[Any, Any]] = []
        # Tests set the waiting lists of the report directly (StaffBrief dicts, as the ERP returns them).
        self.waiting: dict[str, list[dict[str, Any]]] = {"pending_approval": [], "awaiting_activation": []}

    def _check(self) -> None:
        if self.down:
            raise ErpUnavailable("down")

    async def positions(self):
        self._check()
        return POSITIONS

    def _activation(self, staff):
        staff["status"] = "awaiting_activation"
        staff["user"] = {"login": staff["rocketchat_username"] + ".erp", "role": "x", "is_active": False}
        return {"login": staff["user"]["login"], "code": "483920", "expires_at": "2030-01-01T10:00:00Z"}

    async def create_staff(self, body, key):
        self._check()
        self.keys_seen.append(key)
        if self.refuse_next is not None:
            refusal, self.refuse_next = self.refuse_next, None
            raise refusal
        if key in self.keys:
            return self.keys[key]
        for staff in self.staff.values():
            if staff["rocketchat_user_id"] == body["rocketchat_user_id"]:
                raise ErpError(409, "staff_exists", body={"code": "staff_exists", "staff_id": staff["id"]})
        self.creates += 1
        position = next(p for p in POSITIONS if p["code"] == body["position_code"])
        staff = {**body, "id": next(self.ids), "position": position, "status_reason": None, "user": None}
        activation = None
        if not position["erp_access"]:
            staff["status"] = "no_erp_access"
        elif position["requires_approval"]:
            staff["status"] = "pending_approval"
        else:
            activation = self._activation(staff)
        self.staff[staff["id"]] = staff
        self.keys[key] = {"staff": staff, "activation": activation}
        return self.keys[key]

    async def get_staff(self, staff_id):
        self._check()
        if staff_id not in self.staff:
            raise ErpError(404, "not_found")
        return self.staff[staff_id]

    async def find_staff(self, **query):
        self._check()
        ((field, value),) = query.items()
        return next((s for s in self.staff.values() if s.get(field) == value), None)

    async def approve(self, staff_id):
        staff = await self.get_staff(staff_id)
        if staff["status"] != "pending_approval":
            raise ErpError(409, "invalid_state")
        return {"staff": staff, "activation": self._activation(staff)}

    async def reject(self, staff_id, reason):
        staff = await self.get_staff(staff_id)
        staff["status"], staff["status_reason"] = "rejected", reason
        return staff

    async def block(self, staff_id):
        staff = await self.get_staff(staff_id)
        staff["status"] = "blocked"
        return staff

    async def unblock(self, staff_id):
        staff = await self.get_staff(staff_id)
        staff["status"] = "active"
        return staff

    async def reissue_code(self, staff_id):
        staff = await self.get_staff(staff_id)
        return {"staff": staff, "activation": self._activation(staff)}

    async def registration_report(self, since, until=None):
        """The report's shape (contract in docs/api/erp-bot-api.md), counted from the fake's records."""
        self._check()
        self.report_calls.append((since, until))
        statuses = (
            "pending_approval",
            "awaiting_activation",
            "active",
            "rejected",
            "blocked",
            "no_erp_access",
        )
        by_status = dict.fromkeys(statuses, 0)
        by_position: dict[str, dict[str, Any]] = {}
        for staff in self.staff.values():
            by_status[staff["status"]] += 1
            position = staff["position"]
            entry = by_position.setdefault(
                position["code"], {"code": position["code"], "name": position["name"], "total": 0}
            )
            entry["total"] += 1
        return {
            "since": since.isoformat(),
            "until": (until or since).isoformat(),
            "total": len(self.staff),
            "by_status": by_status,
            "by_position": sorted(by_position.values(), key=lambda p: (-p["total"], p["code"])),
            "activated": by_status["active"],
            "waiting": self.waiting,
        }

    async def update_position(self, code, changes):
        self._check()
        for position in POSITIONS:
            if position["code"] == code:
                return {**position, **changes}
        raise ErpError(404, "not_found")


# --------------------------------------------------------------------------------------------------
# Integration: the bot as a real process against the simulator (or a real Rocket.Chat) and the ERP.


def rest_call(http: httpx.Client, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    response = http.request(method, f"/api/v1/{path}", **kwargs)
    body = response.json()
    if response.status_code != 200 or not body.get("success"):
        raise AssertionError(f"{path}: {response.status_code} {body}")
    return body


class RocketChatAdmin:
    """Admin REST session used by the tests to make users, rooms and roles (Rocket.Chat's public API)."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, timeout=15.0)
        body = self.http.post("/api/v1/login", json={"user": username, "password": password}).json()
        self.user_id, self.token = body["data"]["userId"], body["data"]["authToken"]
        self.http.headers.update({"X-User-Id": self.user_id, "X-Auth-Token": self.token})

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return rest_call(self.http, method, path, **kwargs)

    def create_user(self, username: str, *, roles: tuple[str, ...] = ("user",)) -> ChatUser:
        password = secrets.token_urlsafe(16) + "aA1"
        self.call(
            "POST",
            "users.create",
            json={
                "name": username.replace(".", " ").title(),
                "email": f"{username}@example.com",
                "password": password,
                "username": username,
                "roles": list(roles),
                "verified": False,
                "joinDefaultChannels": False,
            },
        )
        return ChatUser.login(self.base_url, username, password)

    def grant(self, permission: str, role: str) -> None:
        """Add `role` to a permission (permissions.update replaces the whole role list)."""
        current = self.call("GET", "permissions.listAll")["update"]
        roles = next(p["roles"] for p in current if p["_id"] == permission)
        if role not in roles:
            self.call(
                "POST",
                "permissions.update",
                json={"permissions": [{"_id": permission, "roles": [*roles, role]}]},
            )

    def create_channel(self, name: str, members: list[str]) -> str:
        return self.call("POST", "channels.create", json={"name": name, "members": members})["channel"]["_id"]


@dataclass
class ChatUser:
    base_url: str
    username: str
    password: str
    user_id: str
    token: str
    http: httpx.Client = field(repr=False)

    @classmethod
    def login(cls, base_url: str, username: str, password: str) -> ChatUser:
        http = httpx.Client(base_url=base_url, timeout=15.0)
        body = http.post("/api/v1/login", json={"user": username, "password": password}).json()
        user_id, token = body["data"]["userId"], body["data"]["authToken"]
        http.headers.update({"X-User-Id": user_id, "X-Auth-Token": token})
        return cls(base_url, username, password, user_id, token, http)

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return rest_call(self.http, method, path, **kwargs)

    def personal_access_token(self, name: str) -> str:
        """A PAT that bypasses 2FA; creating it is 2FA-protected: the password fallback answers."""
        digest = hashlib.sha256(self.password.encode()).hexdigest()
        return self.call(
            "POST",
            "users.generatePersonalAccessToken",
            json={"tokenName": name, "bypassTwoFactor": True},
            headers={"x-2fa-method": "password", "x-2fa-code": digest},
        )["token"]

    def dm_room(self, username: str) -> str:
        room = self.call("POST", "dm.create", json={"username": username})["room"]
        return room.get("rid") or room["_id"]

    def say(self, room_id: str, text: str) -> str:
        message_id = uuid.uuid4().hex[:17]
        self.call(
            "POST", "chat.sendMessage", json={"message": {"_id": message_id, "rid": room_id, "msg": text}}
        )
        return message_id

    def edit(self, room_id: str, message_id: str, text: str) -> None:
        self.call("POST", "chat.update", json={"roomId": room_id, "msgId": message_id, "text": text})

    def history(self, room_id: str, kind: str = "dm") -> list[dict[str, Any]]:
        endpoint = {"dm": "dm.history", "c": "channels.history"}[kind]
        return self.call("GET", endpoint, params={"roomId": room_id, "count": 200})["messages"]

    def bot_messages(self, room_id: str, bot_user_id: str, kind: str = "dm") -> list[str]:
        """Texts from the bot in the room, oldest first."""
        messages = [m for m in self.history(room_id, kind) if m["u"]["_id"] == bot_user_id]
        return [m["msg"] for m in sorted(messages, key=lambda m: m["ts"])]

    def wait_for_bot(
        self, room_id: str, bot_user_id: str, count: int, *, kind: str = "dm", timeout: float = 15.0
    ) -> list[str]:
        """Wait until the bot has said at least `count` messages in the room; return them all."""
        deadline = time.monotonic() + timeout
        while True:
            texts = self.bot_messages(room_id, bot_user_id, kind)
            if len(texts) >= count or time.monotonic() > deadline:
                assert len(texts) >= count, f"bot said {len(texts)} < {count} messages: {texts}"
                return texts
            time.sleep(0.05)

    def converse(self, room_id: str, bot_user_id: str, text: str, timeout: float = 15.0) -> str:
        """Send `text`, wait for the bot's next message, return it."""
        before = len(self.bot_messages(room_id, bot_user_id))
        self.say(room_id, text)
        return self.wait_for_bot(room_id, bot_user_id, before + 1, timeout=timeout)[before]


@dataclass
class BotProcess:
    process: ServiceProcess
    http_url: str
    user_id: str
    username: str
    env: dict[str, str]

    def ready(self) -> httpx.Response:
        return httpx.get(f"{self.http_url}/readyz", timeout=5)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.ready().status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"bot not ready: {self.process.tail()}")

    def metrics(self) -> str:
        return httpx.get(f"{self.http_url}/metrics", timeout=5).text

    def stop(self) -> None:
        self.process.stop()


def start_bot(
    *,
    rocketchat_url: str,
    erp_url: str,
    erp_key: str,
    bot_user: ChatUser,
    state_dir: Path,
    name: str = "bot",
    extra_env: dict[str, str] | None = None,
    wait_ready: bool = True,
    token: str | None = None,
) -> BotProcess:
    """The bot as a process; with `token` it authenticates with a personal access token, else a password."""
    port = free_port()
    state_dir.mkdir(parents=True, exist_ok=True)
    env = {
        "BOT_ROCKETCHAT_URL": rocketchat_url,
        **(
            {"BOT_ROCKETCHAT_USER_ID": bot_user.user_id, "BOT_ROCKETCHAT_TOKEN": token}
            if token
            else {"BOT_ROCKETCHAT_USERNAME": bot_user.username, "BOT_ROCKETCHAT_PASSWORD": bot_user.password}
        ),
        "BOT_ERP_URL": erp_url,
        "BOT_ERP_API_KEY": erp_key,
        "BOT_HTTP_HOST": "127.0.0.1",
        "BOT_HTTP_PORT": str(port),
        "BOT_STATE_URL": str(state_dir / "bot.sqlite3"),
        "BOT_ADMINS_CHANNEL": "erp-admins",
        "BOT_RATE_LIMIT_PER_MINUTE": "1000",
        "BOT_ERP_RETRIES": "1",
        "BOT_ERP_BACKOFF_BASE": "0.05",
        "BOT_ERP_BREAKER_RESET_SECONDS": "1",
        "BOT_RECONNECT_MAX_SECONDS": "2",
        "BOT_PENDING_POLL_SECONDS": "1",
        # Reminders would add messages to other tests' rooms; their own tests switch them on.
        "BOT_REMINDERS_ENABLED": "false",
        "BOT_LOG_LEVEL": "INFO",
        **(extra_env or {}),
    }
    process = ServiceProcess(
        name, ["-m", "bot"], env=env, health_url=f"http://127.0.0.1:{port}/healthz", log_dir=state_dir
    ).start()
    bot = BotProcess(process, f"http://127.0.0.1:{port}", bot_user.user_id, bot_user.username, env)
    if wait_ready:
        bot.wait_ready()
    return bot


# The harness's own users poll history; the bot itself has the `bot` role, which bypasses the limiter.
BOT_SIM_SETTINGS = {"OVERWRITE_SETTING_API_Enable_Rate_Limiter": "false"}


@dataclass
class BotStack:
    """Simulator + ERP + bot, each a real process; `new_user` makes a Rocket.Chat user with a DM room."""

    rc: RocketChat
    erp: Any
    admin: RocketChatAdmin
    bot_user: ChatUser
    bot: BotProcess
    state_dir: Path
    admins_channel: str
    _names: itertools.count = field(default_factory=lambda: itertools.count(1))

    @property
    def rocketchat_url(self) -> str:
        return self.rc.base_url

    def new_user(self, prefix: str = "user", roles: tuple[str, ...] = ("user",)) -> tuple[ChatUser, str]:
        username = f"{prefix}.{next(self._names)}.{secrets.token_hex(2)}"
        user = self.admin.create_user(username, roles=roles)
        return user, user.dm_room(self.bot_user.username)

    def admin_user(self) -> ChatUser:
        """The workspace admin (role `admin`) as a chat user."""
        return ChatUser.login(self.rc.base_url, self.rc.admin_username, self.rc.admin_password)

    def fault(self, path: str, **body: Any) -> dict[str, Any]:
        response = self.rc.control(path, body)
        response.raise_for_status()
        return response.json()

    def restart_bot(self, **extra_env: str) -> BotProcess:
        self.bot.stop()
        self.bot = start_bot(
            rocketchat_url=self.rc.base_url,
            erp_url=self.erp.base_url,
            erp_key=self.erp.admin_key,
            bot_user=self.bot_user,
            state_dir=self.state_dir / "bot",
            extra_env={k: v for k, v in self.bot.env.items() if k not in _BASE_KEYS} | extra_env,
        )
        return self.bot

    def stop(self) -> None:
        self.bot.stop()
        self.erp.stop()
        if self.rc.process is not None:
            self.rc.process.stop()


_BASE_KEYS = {
    "BOT_ROCKETCHAT_URL",
    "BOT_ROCKETCHAT_USERNAME",
    "BOT_ROCKETCHAT_PASSWORD",
    "BOT_ERP_URL",
    "BOT_ERP_API_KEY",
    "BOT_HTTP_PORT",
    "BOT_STATE_URL",
}


def prepare_workspace(rc: RocketChat) -> tuple[RocketChatAdmin, ChatUser, str]:
    """What the deployment's bootstrap does for the bot: its user, its permission, the admins channel.

    Names carry a random suffix, so stacks never collide on one server (a real Rocket.Chat keeps them).
    """
    suffix = secrets.token_hex(3)
    admin = RocketChatAdmin(rc.base_url, rc.admin_username, rc.admin_password)
    bot_user = admin.create_user(f"erpbot-{suffix}", roles=("bot", "user"))
    # The bot reads other users' roles (admin commands): users.info shows them only with this.
    admin.grant("view-full-other-user-info", "bot")
    admins_channel = f"erp-admins-{suffix}"
    admin.create_channel(admins_channel, [bot_user.username])
    return admin, bot_user, admins_channel


def start_bot_stack(
    state_dir: Path, *, bot_env: dict[str, str] | None = None, rc: RocketChat | None = None
) -> BotStack:
    """Simulator (or the given Rocket.Chat) + ERP + bot; a simulator started here stops with the stack."""
    from plugins.erp import start_erp_server  # the ERP part's helper: migrated, seeded, keys made

    if rc is None:
        rc = start_simulator(state_dir, "rocketchat-sim", BOT_SIM_SETTINGS)
    erp = None
    try:
        erp = start_erp_server(state_dir / "erp")
        admin, bot_user, admins_channel = prepare_workspace(rc)
        bot = start_bot(
            rocketchat_url=rc.base_url,
            erp_url=erp.base_url,
            erp_key=erp.admin_key,
            bot_user=bot_user,
            state_dir=state_dir / "bot",
            extra_env={"BOT_ADMINS_CHANNEL": admins_channel, **(bot_env or {})},
        )
    except Exception:
        if erp is not None:
            erp.stop()
        if rc.process is not None:
            rc.process.stop()
        raise
    return BotStack(rc, erp, admin, bot_user, bot, state_dir, admins_channel)


@pytest.fixture(scope="module")
def bot_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotStack]:
    """One stack per test module (tests make their own users, so they do not interfere).

    With ROCKETCHAT_URL set, the stack uses that real server (its REST rate limiter must allow the
    harness's history polling); otherwise a simulator of its own."""
    stack = start_bot_stack(tmp_path_factory.mktemp("bot-stack"), rc=real_server_from_env())
    yield stack
    stack.stop()


@pytest.fixture
def fresh_bot_stack(tmp_path: Path) -> Iterator[BotStack]:
    """A stack of its own, for tests that break things (faults, restarts): always a simulator."""
    if os.environ.get("ROCKETCHAT_URL"):
        pytest.skip("needs the simulator (faults, restarts); ROCKETCHAT_URL targets a real server")
    stack = start_bot_stack(tmp_path)
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway redis-server on a free port (Debian package redis-server); skips when absent."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(
        [*args, "--dir", str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)
