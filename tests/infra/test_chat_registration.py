"""An employee registers by chatting with the deployed bot, then activates the ERP account, via the proxy."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
import uuid

import httpx
import pytest
import websockets
from plugins.infra import Stack

from lab.drill_rocketchat import ANSWERS  # the registration dialog's six answers

pytestmark = [pytest.mark.infra, pytest.mark.e2e]


async def post_within_rate_limit(http: httpx.AsyncClient, path: str, **kwargs) -> httpx.Response:
    """POST; on Rocket.Chat's 429 (10 calls a minute per address and route) wait for the window once."""
    response = await http.post(path, **kwargs)
    if response.status_code == 429:
        reset_ms = int(response.headers.get("x-ratelimit-reset", "0"))
        await asyncio.sleep(min(61.0, max(1.0, reset_ms / 1000 - time.time() + 0.5)))
        response = await http.post(path, **kwargs)
    return response


class ChatSession:
    """A Rocket.Chat user: REST to send (few calls, under the rate limiter), DDP stream to receive."""

    def __init__(self, stack: Stack, user_id: str, token: str) -> None:
        self.stack = stack
        self.http = httpx.AsyncClient(
            base_url=stack.base_url,
            verify=stack.ssl_context(),
            timeout=15,
            headers={"X-User-Id": user_id, "X-Auth-Token": token},
        )
        self.token = token
        self.replies: asyncio.Queue[dict] = asyncio.Queue()

    async def listen(self, room_id: str, ready: asyncio.Event) -> None:
        url = f"wss://{self.stack.domain}/websocket"
        async with websockets.connect(url, ssl=self.stack.ssl_context(), open_timeout=10) as ws:
            await ws.send(json.dumps({"msg": "connect", "version": "1", "support": ["1"]}))
            await ws.send(
                json.dumps(
                    {"msg": "method", "method": "login", "id": "1", "params": [{"resume": self.token}]}
                )
            )
            await ws.send(
                json.dumps(
                    {"msg": "sub", "id": "2", "name": "stream-room-messages", "params": [room_id, False]}
                )
            )
            async for raw in ws:
                frame = json.loads(raw)
                if frame.get("msg") == "ping":
                    await ws.send(json.dumps({"msg": "pong"}))
                elif frame.get("msg") == "ready":
                    ready.set()
                elif frame.get("msg") == "changed" and frame.get("collection") == "stream-room-messages":
                    for message in frame["fields"]["args"]:
                        await self.replies.put(message)

    async def say(self, room_id: str, text: str) -> None:
        body = {"message": {"_id": uuid.uuid4().hex[:17], "rid": room_id, "msg": text}}
        response = await post_within_rate_limit(self.http, "/api/v1/chat.sendMessage", json=body)
        assert response.status_code == 200, response.text

    async def reply_from(self, bot_user_id: str) -> str:
        async with asyncio.timeout(20):
            while True:
                message = await self.replies.get()
                if message["u"]["_id"] == bot_user_id:
                    return message["msg"]


@pytest.mark.timeout(300)
async def test_registration_in_chat_then_activation(stack: Stack) -> None:
    admin_password = (stack.root / "secrets" / "rocketchat" / "admin_password").read_text().strip()
    bot_user_id = (stack.root / "secrets" / "bootstrap" / "erp-bot-user-id").read_text().strip()
    username = f"emp{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(12) + "aA1"
    async with httpx.AsyncClient(base_url=stack.base_url, verify=stack.ssl_context(), timeout=15) as http:
        admin = {"user": "admin", "password": admin_password}
        login = (await post_within_rate_limit(http, "/api/v1/login", json=admin)).json()
        admin_headers = {"X-User-Id": login["data"]["userId"], "X-Auth-Token": login["data"]["authToken"]}
        created = await http.post(
            "/api/v1/users.create",
            headers=admin_headers,
            json={
                "name": "Petrov Ivan",
                "email": f"{username}@example.com",
                "password": password,
                "username": username,
                "verified": False,
                "joinDefaultChannels": False,
            },
        )
        assert created.status_code == 200, created.text
        user = (await http.post("/api/v1/login", json={"user": username, "password": password})).json()[
            "data"
        ]

    chat = ChatSession(stack, user["userId"], user["authToken"])
    room = await chat.http.post("/api/v1/dm.create", json={"username": "erp-bot"})
    room_id = room.json()["room"].get("rid") or room.json()["room"]["_id"]
    ready = asyncio.Event()
    listener = asyncio.create_task(chat.listen(room_id, ready))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        replies = []
        for answer in ANSWERS:
            await chat.say(room_id, answer.format(email=f"{username}@example.com"))
            replies.append(await chat.reply_from(bot_user_id))
        last = replies[-1]
        erp_login = re.search(r"(?:логин в ERP|ERP login): `([^`]+)`", last)
        code = re.search(r"(?:Код активации|Activation code): `(\d+)`", last)
        assert erp_login, replies
        assert code, replies
        async with httpx.AsyncClient(verify=stack.ssl_context(), timeout=15) as http:
            activated = await http.post(
                f"{stack.base_url}/api/v1/account/activate",
                json={
                    "login": erp_login.group(1),
                    "code": code.group(1),
                    "password": f"Qw{secrets.token_hex(6)}7z",
                },
            )
        assert activated.status_code == 200, activated.text
        await chat.say(room_id, "статус")
        assert "активна" in await chat.reply_from(bot_user_id)
    finally:
        listener.cancel()
        await chat.http.aclose()
