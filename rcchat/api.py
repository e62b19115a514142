"""Rocket.Chat's public API as rcchat uses it: REST (/api/v1) to act, DDP over WebSocket to receive.

Every call has a timeout; TLS verifies against the system's trust store or one CA file. Endpoints and frames
follow Rocket.Chat's OpenAPI definitions and realtime API (login, subscriptions.get, dm.create,
chat.sendMessage, users.create, logout; DDP connect, login with resume, stream-room-messages).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import ssl
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import websockets


class ChatError(Exception):
    """A refusal or failure, worded for the person at the terminal (never carries a secret)."""


class ChatTimeout(ChatError):
    pass


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Verify certificates against `ca_file` only when given, else the system's trust store."""
    try:
        return ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    except (OSError, ssl.SSLError) as exc:
        raise ChatError(f"cannot use the CA file {ca_file}: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class Message:
    id: str
    room_id: str
    user_id: str
    username: str
    text: str
    ts: datetime | None
    edited: bool = False
    system: str | None = None
    alias: str | None = None  # a display name some integrations post under (Rocket.Chat shows it)

    @classmethod
    def from_wire(cls, doc: dict[str, Any]) -> Message:
        user = doc.get("u") or {}
        return cls(
            id=str(doc.get("_id", "")),
            room_id=str(doc.get("rid", "")),
            user_id=str(user.get("_id", "")),
            username=str(user.get("username", "")),
            text=str(doc.get("msg", "")),
            ts=_when(doc.get("ts")),
            edited=bool(doc.get("editedAt")),
            system=doc.get("t"),
            alias=doc.get("alias") or None,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "room_id": self.room_id,
            "user_id": self.user_id,
            "username": self.username,
            "text": self.text,
            "ts": self.ts.isoformat() if self.ts else None,
            "edited": self.edited,
            "system": self.system,
            "alias": self.alias,
        }


def _when(value: Any) -> datetime | None:
    """EJSON {"$date": ms} on the realtime API, ISO 8601 strings on REST."""
    if isinstance(value, dict) and isinstance(value.get("$date"), int | float):
        return datetime.fromtimestamp(value["$date"] / 1000, UTC)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None


def _reason(body: Any, status: int) -> str:
    if isinstance(body, dict):
        for key in ("error", "message", "reason"):
            if isinstance(body.get(key), str) and body[key]:
                return body[key]
    return f"HTTP {status}"


class Session:
    """A logged-in REST session (X-User-Id / X-Auth-Token) against one server."""

    def __init__(self, url: str, *, ca_file: str | None = None, timeout: float = 10.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ChatError(f"the server URL must start with http:// or https://, got {url!r}")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.ssl = tls_context(ca_file)
        self.http = httpx.AsyncClient(base_url=self.url, timeout=timeout, verify=self.ssl)
        self.user_id = ""
        self.username = ""
        self._token: str | None = None

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def call(self, method: str, endpoint: str, **kwargs: Any) -> dict[str, Any]:
        response = await self._request(method, endpoint, **kwargs)
        if response.status_code == 429:  # Rocket.Chat's REST limiter: wait for its window once
            wait = _rate_limit_wait(response)
            if wait is not None:
                print(
                    f"rcchat: {endpoint} rate limited, retrying in {wait:.0f} s", file=sys.stderr, flush=True
                )
                await asyncio.sleep(wait)
                response = await self._request(method, endpoint, **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200 or not isinstance(body, dict):
            status = response.status_code
            raise ChatError(f"{endpoint}: {_reason(body, status)} (HTTP {status})")
        if body.get("success") is False or body.get("status") == "error":
            raise ChatError(f"{endpoint}: {_reason(body, response.status_code)}")
        return body

    async def _request(self, method: str, endpoint: str, **kwargs: Any) -> httpx.Response:
        headers = {"X-User-Id": self.user_id, "X-Auth-Token": self._token} if self._token else {}
        try:
            return await self.http.request(method, f"/api/v1/{endpoint}", headers=headers, **kwargs)
        except httpx.TimeoutException:
            raise ChatTimeout(f"{self.url} did not answer {endpoint} within {self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise ChatError(f"cannot reach {self.url}: {_transport_reason(exc)}") from None

    async def login(self, username: str, password: str) -> None:
        try:
            body = await self.call("POST", "login", json={"user": username, "password": password})
        except ChatTimeout:
            raise
        except ChatError as exc:
            text = str(exc)
            if "totp" in text.lower():
                raise ChatError(
                    f"login as {username}: the server asks for a two-factor code; use an account without "
                    "2FA for rcchat"
                ) from None
            if "(HTTP 401)" in text or "(HTTP 403)" in text:
                raise ChatError(f"login as {username} refused: wrong username or password") from None
            raise
        data = body.get("data") or {}
        self.user_id, self._token = str(data.get("userId", "")), str(data.get("authToken", ""))
        if not self.user_id or not self._token:
            raise ChatError("login: the server's answer has no userId/authToken")
        self.username = str((data.get("me") or {}).get("username") or username)

    async def logout(self) -> None:
        if self._token:
            with contextlib.suppress(ChatError):
                await self.call("POST", "logout")
            self._token = None

    async def close(self) -> None:
        await self.logout()
        await self.http.aclose()

    # -- rooms ------------------------------------------------------------------------------------------
    async def rooms(self) -> list[dict[str, Any]]:
        """The rooms this user is in (its subscriptions): id, name, type, unread."""
        body = await self.call("GET", "subscriptions.get")
        rooms = [
            {
                "id": str(sub.get("rid", "")),
                "name": str(sub.get("name") or sub.get("fname") or sub.get("rid", "")),
                "type": str(sub.get("t", "")),
                "unread": int(sub.get("unread") or 0),
            }
            for sub in body.get("update", [])
        ]
        return sorted(rooms, key=lambda r: (r["type"], r["name"]))

    async def resolve_room(self, ref: str) -> str:
        """`@username` (a direct message, opened if needed), `#name`/`name` of a joined room, or a room id."""
        if ref.startswith("@") and len(ref) > 1:
            body = await self.call("POST", "dm.create", json={"username": ref[1:]})
            room = body.get("room") or {}
            room_id = room.get("rid") or room.get("_id")
            if not room_id:
                raise ChatError(f"dm.create {ref}: no room id in the answer")
            return str(room_id)
        wanted = ref.removeprefix("#")
        for room in await self.rooms():
            if wanted in (room["name"], room["id"]):
                return room["id"]
        raise ChatError(f"room {ref!r}: you are not a member (`rooms` lists yours; @user opens a DM)")

    async def send(self, room_id: str, text: str) -> str:
        if not text.strip():
            raise ChatError("nothing to send: the message is empty")
        message_id = uuid.uuid4().hex[:17]
        body = await self.call(
            "POST", "chat.sendMessage", json={"message": {"_id": message_id, "rid": room_id, "msg": text}}
        )
        return str((body.get("message") or {}).get("_id") or message_id)

    async def create_user(
        self, username: str, *, name: str, email: str, password: str, roles: list[str]
    ) -> str:
        body = await self.call(
            "POST",
            "users.create",
            json={
                "username": username,
                "name": name,
                "email": email,
                "password": password,
                "roles": roles,
                "verified": False,
                "requirePasswordChange": False,
                "sendWelcomeEmail": False,
                "joinDefaultChannels": True,
            },
        )
        return str((body.get("user") or {}).get("_id", ""))

    def stream(self, room_id: str) -> RoomStream:
        return RoomStream(self, room_id)


def _rate_limit_wait(response: httpx.Response, ceiling: float = 65.0) -> float | None:
    """Seconds until X-RateLimit-Reset (epoch ms), if it is near enough to wait for."""
    try:
        reset_ms = int(response.headers.get("x-ratelimit-reset", ""))
    except ValueError:
        return None
    wait = max(1.0, reset_ms / 1000 - time.time() + 0.5)
    return wait if wait <= ceiling else None


def _transport_reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "the server's TLS certificate is not trusted (give the CA file with --ca-file)"
    return text


class RoomStream:
    """Messages of one room as they arrive: DDP connect, login (resume), sub stream-room-messages."""

    def __init__(self, session: Session, room_id: str) -> None:
        self.session, self.room_id = session, room_id
        base = session.url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        self.ws_url = f"{base}/websocket"
        self._ws: Any = None
        self._ids = itertools.count(1)
        self._queue: asyncio.Queue[Message | Exception] = asyncio.Queue()
        self._waiting: dict[str, asyncio.Future[Any]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._seen: dict[str, bool] = {}

    async def __aenter__(self) -> RoomStream:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        timeout = self.session.timeout
        kwargs: dict[str, Any] = {"open_timeout": timeout, "close_timeout": 5, "max_size": 4 * 1024 * 1024}
        if self.ws_url.startswith("wss://"):
            kwargs["ssl"] = self.session.ssl
        try:
            self._ws = await websockets.connect(self.ws_url, **kwargs)
        except TimeoutError:
            raise ChatTimeout(f"{self.ws_url} did not open within {timeout:g} s") from None
        except (OSError, websockets.InvalidHandshake) as exc:
            raise ChatError(f"cannot open {self.ws_url}: {_transport_reason(exc)}") from None
        await self._send({"msg": "connect", "version": "1", "support": ["1"]})
        self._reader = asyncio.create_task(self._read(), name="rcchat-ddp")
        await self._request("connected", None)
        await self._request(
            "result", {"msg": "method", "method": "login", "params": [{"resume": self.session._token}]}
        )
        await self._request(
            "ready",
            {
                "msg": "sub",
                "name": "stream-room-messages",
                "params": [self.room_id, {"useCollection": False, "args": []}],
            },
        )

    async def _send(self, frame: dict[str, Any]) -> None:
        try:
            await self._ws.send(json.dumps(frame))
        except websockets.ConnectionClosed:
            raise ChatError("the realtime connection closed") from None

    async def _request(self, answer: str, frame: dict[str, Any] | None) -> Any:
        """Send `frame` (with a fresh id) and wait for its answer; `connected` has no id."""
        key = "connected" if frame is None else str(next(self._ids))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        try:
            if frame is not None:
                await self._send({**frame, "id": key})
            async with asyncio.timeout(self.session.timeout):
                return await future
        except TimeoutError:
            raise ChatTimeout(
                f"the realtime API did not answer ({answer}) within {self.session.timeout:g} s"
            ) from None
        finally:
            self._waiting.pop(key, None)

    def _settle(self, key: str, result: Any = None, error: Any = None) -> None:
        future = self._waiting.get(key)
        if future is None or future.done():
            return
        if error is not None:
            reason = error.get("reason") or error.get("message") if isinstance(error, dict) else error
            future.set_exception(ChatError(f"realtime API refused: {reason}"))
        else:
            future.set_result(result)

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                try:
                    frame = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(frame, dict):
                    await self._dispatch(frame)
            failure: Exception = ChatError("the realtime connection closed")
        except websockets.ConnectionClosed:
            failure = ChatError("the realtime connection closed")
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(failure)
        self._queue.put_nowait(failure)

    async def _dispatch(self, frame: dict[str, Any]) -> None:
        kind = frame.get("msg")
        if kind == "ping":
            pong = {"msg": "pong", **({"id": frame["id"]} if "id" in frame else {})}
            with contextlib.suppress(ChatError):
                await self._send(pong)
        elif kind == "connected":
            self._settle("connected", frame.get("session"))
        elif kind == "failed":
            self._settle("connected", error={"reason": f"DDP version refused: {frame.get('version')}"})
        elif kind == "result":
            self._settle(str(frame.get("id")), frame.get("result"), frame.get("error"))
        elif kind == "ready":
            for sub in frame.get("subs", []):
                self._settle(str(sub))
        elif kind == "nosub":
            key = str(frame.get("id"))
            if key in self._waiting:
                self._settle(key, error=frame.get("error") or {"reason": "subscription refused"})
            else:
                self._queue.put_nowait(ChatError("the server ended the room's stream"))
        elif kind == "changed" and frame.get("collection") == "stream-room-messages":
            fields = frame.get("fields") or {}
            args = fields.get("args") or []
            if fields.get("eventName") == self.room_id and args and isinstance(args[0], dict):
                self._accept(Message.from_wire(args[0]))

    def _accept(self, message: Message) -> None:
        """Rocket.Chat re-sends the whole message on every change: pass each message once, edits again."""
        if not message.id or self._seen.get(message.id) == message.edited:
            return
        first = message.id not in self._seen
        self._seen[message.id] = message.edited
        if first or message.edited:
            self._queue.put_nowait(message)

    async def messages(self, *, duration: float | None = None) -> AsyncIterator[Message]:
        """Messages as they arrive, until `duration` seconds have passed (forever when None)."""
        loop = asyncio.get_running_loop()
        deadline = None if duration is None else loop.time() + duration
        while True:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return
            try:
                item = await asyncio.wait_for(self._queue.get(), remaining)
            except TimeoutError:
                return
            if isinstance(item, Exception):
                raise item
            yield item

    def mark_seen(self, message_id: str) -> None:
        self._seen.setdefault(message_id, False)

    async def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 5)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
