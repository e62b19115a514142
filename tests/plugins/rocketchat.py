"""Rocket.Chat for the test suites: the simulator as a real process, or a real server from the environment.

`rocketchat` (session): the shared target. With `ROCKETCHAT_URL` (+ `ROCKETCHAT_ADMIN_USER`,
`ROCKETCHAT_ADMIN_PASSWORD`) it is that real server; otherwise one `python -m rocketchat_sim` process.
`rocketchat_sim` (function): a factory of fresh simulator processes for tests that restart the server,
inject faults or change its startup settings; it skips when a real server is targeted.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from plugins.processes import ServiceProcess, free_port

# The shared simulator behaves like a long-running workspace: 2FA applies at once (no 30-minute grace
# for a just-created admin) and the REST limiter is on but roomy enough for concurrent suites.
SHARED_SIM_SETTINGS = {
    "OVERWRITE_SETTING_Accounts_TwoFactorAuthentication_RememberFor": "0",
    "OVERWRITE_SETTING_API_Enable_Rate_Limiter_Limit_Calls_Default": "100000",
}
TIMEOUT = httpx.Timeout(10.0)


@dataclass
class CreatedUser:
    id: str
    username: str
    password: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-User-Id": self.id, "X-Auth-Token": self.token}


@dataclass
class RocketChat:
    base_url: str
    admin_username: str
    admin_password: str
    is_simulator: bool
    control_url: str | None = None
    process: ServiceProcess | None = None
    admin_user_id: str = ""
    admin_token: str = ""
    created: list[str] = field(default_factory=list)

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://").replace("https://", "wss://") + "/websocket"

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"X-User-Id": self.admin_user_id, "X-Auth-Token": self.admin_token}

    @property
    def admin_2fa_headers(self) -> dict[str, str]:
        """Admin auth plus the 2FA password fallback headers (sha256 hex of the password)."""
        digest = hashlib.sha256(self.admin_password.encode()).hexdigest()
        return {**self.admin_headers, "x-2fa-method": "password", "x-2fa-code": digest}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=TIMEOUT)

    def api(
        self, method: str, endpoint: str, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Call /api/v1/<endpoint> (or an absolute path) as the admin unless headers say otherwise."""
        path = endpoint if endpoint.startswith("/") else f"/api/v1/{endpoint}"
        with self.client() as client:
            return client.request(
                method, path, headers=self.admin_headers if headers is None else headers, **kwargs
            )

    def login(self, username: str, password: str) -> tuple[str, str]:
        response = self.api("POST", "login", headers={}, json={"user": username, "password": password})
        response.raise_for_status()
        data = response.json()["data"]
        return data["userId"], data["authToken"]

    def connect_admin(self) -> None:
        self.admin_user_id, self.admin_token = self.login(self.admin_username, self.admin_password)

    def create_user(
        self,
        username: str | None = None,
        password: str | None = None,
        *,
        roles: list[str] | tuple[str, ...] = ("user",),
        name: str | None = None,
        email: str | None = None,
        login: bool = True,
    ) -> CreatedUser:
        """Create a user via REST as the admin and (by default) log it in; unique names when omitted."""
        username = username or f"u-{secrets.token_hex(5)}"
        password = password or secrets.token_urlsafe(12)
        response = self.api(
            "POST",
            "users.create",
            json={
                "username": username,
                "password": password,
                "name": name or username,
                "email": email or f"{username}@example.test",
                "roles": list(roles),
                "verified": False,
                "joinDefaultChannels": False,
            },
        )
        assert response.status_code == 200, response.text
        user_id = response.json()["user"]["_id"]
        self.created.append(user_id)
        token = self.login(username, password)[1] if login else ""
        return CreatedUser(user_id, username, password, token)

    def control(self, path: str, payload: dict[str, Any] | None = None) -> httpx.Response:
        if self.control_url is None:
            pytest.skip("fault injection needs the simulator's control API")
        return httpx.post(f"{self.control_url}{path}", json=payload or {}, timeout=TIMEOUT)


def _sim_env(port: int, control_port: int, admin_password: str, extra: dict[str, str]) -> dict[str, str]:
    return {
        "PORT": str(port),
        "BIND_IP": "127.0.0.1",
        "ROOT_URL": f"http://127.0.0.1:{port}",
        "ADMIN_USERNAME": "admin",
        "ADMIN_PASS": admin_password,
        "ADMIN_EMAIL": "admin@example.test",
        "CREATE_TOKENS_FOR_USERS_SECRET": "test-create-tokens-secret",
        "SIM_CONTROL_PORT": str(control_port),
        **extra,
    }


def start_simulator(log_dir: Path, name: str, env: dict[str, str] | None = None) -> RocketChat:
    port, control_port = free_port(), free_port()
    password = secrets.token_urlsafe(12)
    process = ServiceProcess(
        name,
        ["-m", "rocketchat_sim"],
        env=_sim_env(port, control_port, password, env or {}),
        health_url=f"http://127.0.0.1:{port}/api/info",
        log_dir=log_dir,
    )
    process.start()
    target = RocketChat(
        base_url=f"http://127.0.0.1:{port}",
        admin_username="admin",
        admin_password=password,
        is_simulator=True,
        control_url=f"http://127.0.0.1:{control_port}",
        process=process,
    )
    target.connect_admin()
    return target


def real_server_from_env() -> RocketChat | None:
    """The real Rocket.Chat named by ROCKETCHAT_URL (+ admin credentials), logged in; None when unset."""
    url = os.environ.get("ROCKETCHAT_URL")
    if not url:
        return None
    target = RocketChat(
        base_url=url.rstrip("/"),
        admin_username=os.environ.get("ROCKETCHAT_ADMIN_USER", "admin"),
        admin_password=os.environ.get("ROCKETCHAT_ADMIN_PASSWORD", ""),
        is_simulator=False,
    )
    target.connect_admin()
    return target


@pytest.fixture(scope="session")
def rocketchat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RocketChat]:
    real = real_server_from_env()
    if real is not None:
        yield real
        return
    target = start_simulator(tmp_path_factory.mktemp("rocketchat-sim"), "rocketchat-sim", SHARED_SIM_SETTINGS)
    try:
        yield target
    finally:
        assert target.process is not None
        target.process.stop()


@pytest.fixture
def rocketchat_sim(tmp_path: Path) -> Iterator[Callable[..., RocketChat]]:
    """Factory: `rocketchat_sim(env={...}, state_file=True)` → a fresh simulator, stopped at teardown."""
    if os.environ.get("ROCKETCHAT_URL"):
        pytest.skip("needs the simulator (restarts, fault injection); ROCKETCHAT_URL targets a real server")
    started: list[RocketChat] = []

    def start(env: dict[str, str] | None = None, *, state_file: bool | Path = False) -> RocketChat:
        merged = dict(env or {})
        if state_file:
            path = state_file if isinstance(state_file, Path) else tmp_path / "state.json"
            merged["SIM_STATE_FILE"] = str(path)
        target = start_simulator(tmp_path / f"sim{len(started)}", f"rocketchat-sim-{len(started)}", merged)
        started.append(target)
        return target

    yield start
    for target in started:
        if target.process is not None:
            target.process.stop()


class DDPClient:
    """A small DDP client for protocol tests: ordered frames, method calls and subscriptions by id."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ws: Any = None
        self.frames: Any = None
        self.pending: dict[str, Any] = {}
        self.changed: Any = None
        self.others: Any = None
        self._reader: Any = None
        self._next_id = 0
        self.session: str | None = None

    async def __aenter__(self) -> DDPClient:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self, *, connect: bool = True) -> None:
        import asyncio

        import websockets

        self.ws = await websockets.connect(self.url, open_timeout=10, max_size=None)
        self.changed = asyncio.Queue()
        self.others = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())
        if connect:
            await self.send({"msg": "connect", "version": "1", "support": ["1"]})
            frame = await self.expect(lambda f: f.get("msg") in ("connected", "failed"))
            assert frame["msg"] == "connected", frame
            self.session = frame["session"]

    async def _read(self) -> None:
        import json

        async for raw in self.ws:
            frame = json.loads(raw)
            key = frame.get("id") if frame.get("msg") in ("result", "ready", "nosub") else None
            if frame.get("msg") == "ready":
                for sub_id in frame["subs"]:
                    fut = self.pending.pop(f"sub:{sub_id}", None)
                    if fut is not None and not fut.done():
                        fut.set_result(frame)
            elif key is not None and (fut := self.pending.pop(f"{frame['msg']}:{key}", None)) is not None:
                if not fut.done():
                    fut.set_result(frame)
            elif (
                frame.get("msg") == "nosub"
                and (fut := self.pending.pop(f"sub:{frame['id']}", None)) is not None
            ):
                fut.set_result(frame)
            elif frame.get("msg") == "changed":
                self.changed.put_nowait(frame)
            else:
                self.others.put_nowait(frame)

    async def close(self) -> None:
        import contextlib

        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader

    async def wait_closed(self, wait: float = 5.0) -> None:
        """Until the server closes the connection (raises TimeoutError if it stays open)."""
        import asyncio

        await asyncio.wait_for(self.ws.wait_closed(), wait)

    async def send(self, frame: dict[str, Any]) -> None:
        import json

        await self.ws.send(json.dumps(frame))

    def new_id(self) -> str:
        self._next_id += 1
        return str(self._next_id)

    async def call(self, method: str, *params: Any, wait: float = 10.0) -> dict[str, Any]:
        import asyncio

        mid = self.new_id()
        fut = asyncio.get_running_loop().create_future()
        self.pending[f"result:{mid}"] = fut
        await self.send({"msg": "method", "method": method, "params": list(params), "id": mid})
        return await asyncio.wait_for(fut, wait)

    async def subscribe(self, name: str, *params: Any, wait: float = 10.0) -> dict[str, Any]:
        import asyncio

        sid = f"s{self.new_id()}"
        fut = asyncio.get_running_loop().create_future()
        self.pending[f"sub:{sid}"] = fut
        await self.send({"msg": "sub", "id": sid, "name": name, "params": list(params)})
        frame = await asyncio.wait_for(fut, wait)
        frame.setdefault("sub_id", sid)
        return frame

    async def login_password(self, username: str, password: str) -> dict[str, Any]:
        digest = hashlib.sha256(password.encode()).hexdigest()
        return await self.call(
            "login", {"user": {"username": username}, "password": {"digest": digest, "algorithm": "sha-256"}}
        )

    async def next_changed(
        self, predicate: Callable[[dict[str, Any]], bool] = lambda f: True, wait: float = 5.0
    ) -> dict[str, Any]:
        import asyncio

        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            frame = await asyncio.wait_for(self.changed.get(), max(0.01, deadline - loop.time()))
            if predicate(frame):
                return frame

    async def expect(self, predicate: Callable[[dict[str, Any]], bool], wait: float = 5.0) -> dict[str, Any]:
        """The next non-changed, non-reply frame matching predicate (connected, ping, error, ...)."""
        import asyncio

        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            frame = await asyncio.wait_for(self.others.get(), max(0.01, deadline - loop.time()))
            if predicate(frame):
                return frame
