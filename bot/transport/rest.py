"""Rocket.Chat REST client (httpx): the bot acts only through REST, as Rocket.Chat recommends."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
import time
from typing import Any

import httpx

from bot.core.ports import Identity
from bot.http_client import KeepAliveClient, Response

log = logging.getLogger("bot.rest")


class RestError(Exception):
    def __init__(self, status: int, error: str) -> None:
        super().__init__(f"Rocket.Chat REST {status}: {error[:200]}")
        self.status, self.error = status, error


class RocketChatRest:
    def __init__(
        self,
        base_url: str,
        *,
        user_id: str | None = None,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        ca_file: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.user_id, self.token = user_id, token
        self._username, self._password = username, password
        context = ssl.create_default_context(cafile=ca_file) if ca_file else None
        self._http: KeepAliveClient | httpx.AsyncClient
        if transport is None:
            # The bot's own keep-alive client: a fraction of httpx's CPU per call (bot/http_client.py).
            self._http = KeepAliveClient(self.base_url, timeout=timeout, ssl_context=context)
        else:  # an injected httpx transport (tests)
            self._http = httpx.AsyncClient(
                base_url=self.base_url,
                timeout=httpx.Timeout(timeout),
                verify=context or True,
                transport=transport,
            )
        self._dm_rooms: dict[str, str] = {}
        self._room_ids: dict[str, str] = {}
        self._login_lock = asyncio.Lock()

    @property
    def can_login(self) -> bool:
        return self._username is not None and self._password is not None

    async def aclose(self) -> None:
        await self._http.aclose()

    async def login(self) -> None:
        """Password login when no token was given; the resume token is kept for REST and the stream."""
        if self._username is None or self._password is None:
            return
        async with self._login_lock:
            response = await self._http.post(
                "/api/v1/login", json={"user": self._username, "password": self._password}
            )
            body = _json(response)
            if response.status_code != 200 or body.get("status") != "success":
                raise RestError(
                    response.status_code, str(body.get("error") or body.get("message") or "login failed")
                )
            self.user_id, self.token = body["data"]["userId"], body["data"]["authToken"]

    async def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        if self.token is None:
            await self.login()
        for attempt in range(4):
            headers = {"X-User-Id": self.user_id or "", "X-Auth-Token": self.token or ""}
            response = await self._http.request(method, path, headers=headers, **kwargs)
            if response.status_code == 429 and attempt < 3:
                await asyncio.sleep(_rate_limit_wait(response))
                continue
            if response.status_code == 401 and attempt == 0 and self._password is not None:
                await self.login()  # the login token expired or was revoked: log in again once
                continue
            body = _json(response)
            if response.status_code != 200 or body.get("success") is False:
                raise RestError(response.status_code, str(body.get("error") or body.get("message") or ""))
            return body
        raise RestError(429, "rate limited")

    async def me(self) -> Identity:
        body = await self.request("GET", "/api/v1/me")
        return Identity(user_id=body["_id"], username=body["username"])

    async def post_message(self, room_id: str, text: str) -> dict[str, Any]:
        return (
            await self.request("POST", "/api/v1/chat.postMessage", json={"roomId": room_id, "text": text})
        )["message"]

    async def send_message_once(self, room_id: str, text: str, message_id: str) -> bool:
        """Post under a client-chosen id (chat.sendMessage); False when a message with that id is there
        already (posted by an earlier attempt: this bot's own, in this room).

        Rocket.Chat stores no second message with an id it has, but its answer to the repeat is no clear
        refusal (the REST route fails on the missing result with a plain 400), so a 400 is checked by
        reading the message back: found as ours, it was posted before; otherwise the error stands."""
        body = {"message": {"_id": message_id, "rid": room_id, "msg": text}}
        try:
            await self.request("POST", "/api/v1/chat.sendMessage", json=body)
        except RestError as exc:
            if exc.status != 400 or not await self._posted_before(room_id, message_id):
                raise
            return False
        return True

    async def _posted_before(self, room_id: str, message_id: str) -> bool:
        try:
            body = await self.request("GET", "/api/v1/chat.getMessage", params={"msgId": message_id})
        except RestError:
            return False
        message = body.get("message") or {}
        return message.get("rid") == room_id and (message.get("u") or {}).get("_id") == self.user_id

    async def room_id(self, name: str) -> str:
        """A channel's or group's id by its name (rooms.info), kept after the first look-up."""
        name = name.lstrip("#")
        if name not in self._room_ids:
            body = await self.request("GET", "/api/v1/rooms.info", params={"roomName": name})
            self._room_ids[name] = str(body["room"]["_id"])
        return self._room_ids[name]

    async def post_to_channel(self, channel: str, text: str) -> dict[str, Any]:
        target = channel if channel.startswith(("#", "@")) else f"#{channel}"
        body = await self.request("POST", "/api/v1/chat.postMessage", json={"channel": target, "text": text})
        return body.get("message") or {}

    async def update_message(self, room_id: str, message_id: str, text: str) -> None:
        await self.request(
            "POST", "/api/v1/chat.update", json={"roomId": room_id, "msgId": message_id, "text": text}
        )

    async def direct_room(self, username: str) -> str:
        if username not in self._dm_rooms:
            body = await self.request("POST", "/api/v1/dm.create", json={"username": username})
            room = body["room"]
            self._dm_rooms[username] = room.get("rid") or room["_id"]
        return self._dm_rooms[username]

    async def user_roles(self, user_id: str) -> set[str]:
        body = await self.request("GET", "/api/v1/users.info", params={"userId": user_id})
        user = body.get("user") or {}
        if "roles" not in user:
            # Rocket.Chat shows other users' roles only to holders of view-full-other-user-info.
            log.warning("users.info shows no roles: grant the bot view-full-other-user-info")
        return set(user.get("roles") or [])

    async def rooms_updated_since(self, since_iso: str) -> list[dict[str, Any]]:
        body = await self.request("GET", "/api/v1/rooms.get", params={"updatedSince": since_iso})
        rooms = body.get("update")
        return rooms if isinstance(rooms, list) else []

    async def history(self, room: dict[str, Any], oldest_iso: str, count: int = 100) -> list[dict[str, Any]]:
        endpoint = {"d": "dm.history", "c": "channels.history", "p": "groups.history"}.get(room.get("t", ""))
        if endpoint is None:
            return []
        body = await self.request(
            "GET", f"/api/v1/{endpoint}", params={"roomId": room["_id"], "oldest": oldest_iso, "count": count}
        )
        return body.get("messages") or []


def password_digest(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def _json(response: httpx.Response | Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _rate_limit_wait(response: httpx.Response | Response) -> float:
    reset = response.headers.get("X-RateLimit-Reset")  # epoch milliseconds, not seconds
    try:
        wait = float(reset) / 1000 - time.time() if reset else 1.0
    except ValueError:
        wait = 1.0
    return min(max(wait, 0.1), 10.0)


class RestChatPort:
    """The router's ChatPort on top of REST."""

    def __init__(self, rest: RocketChatRest) -> None:
        self.rest = rest

    async def send(self, room_id: str, text: str) -> None:
        await self.rest.post_message(room_id, text)

    async def send_once(self, room_id: str, text: str, message_id: str) -> bool:
        return await self.rest.send_message_once(room_id, text, message_id)

    async def send_to_channel_once(self, channel: str, text: str, message_id: str) -> dict[str, str] | None:
        if channel.startswith("@"):
            room_id = await self.rest.direct_room(channel[1:])
        else:
            room_id = await self.rest.room_id(channel)
        await self.rest.send_message_once(room_id, text, message_id)
        return {"room_id": room_id, "message_id": message_id}

    async def direct_room(self, username: str) -> str:
        return await self.rest.direct_room(username)

    async def send_to_channel(self, channel: str, text: str) -> dict[str, str] | None:
        message = await self.rest.post_to_channel(channel, text)
        if message.get("rid") and message.get("_id"):
            return {"room_id": str(message["rid"]), "message_id": str(message["_id"])}
        return None

    async def edit(self, room_id: str, message_id: str, text: str) -> None:
        await self.rest.update_message(room_id, message_id, text)

    async def user_roles(self, user_id: str) -> set[str]:
        return await self.rest.user_roles(user_id)
