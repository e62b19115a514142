"""A client-chosen message `_id` (chat.sendMessage, DDP sendMessage) is stored once: a second send with
the same id stores nothing, as Rocket.Chat's sendMessage does (it returns nothing for a known id); REST
then fails with a plain 400 (no errorType), DDP answers a result frame without `result`.

The bot's idempotent replies rest on this (bot/transport/rest.py `send_message_once`)."""

from __future__ import annotations

import uuid

import pytest
from plugins.rocketchat import DDPClient

pytestmark = pytest.mark.integration


def _channel(rocketchat, user) -> str:
    body = rocketchat.api(
        "POST", "channels.create", headers=user.headers, json={"name": f"ids-{user.username}"}
    ).json()
    return body["channel"]["_id"]


def _history(rocketchat, user, rid) -> list[dict]:
    return rocketchat.api(
        "GET", "channels.history", headers=user.headers, params={"roomId": rid, "count": 100}
    ).json()["messages"]


def test_rest_second_send_with_the_same_id_stores_nothing_and_fails_plainly(rocketchat):
    user = rocketchat.create_user()
    rid = _channel(rocketchat, user)
    message_id = uuid.uuid4().hex[:17]
    first = rocketchat.api(
        "POST",
        "chat.sendMessage",
        headers=user.headers,
        json={"message": {"_id": message_id, "rid": rid, "msg": "first"}},
    )
    assert first.status_code == 200
    assert first.json()["message"]["_id"] == message_id
    again = rocketchat.api(
        "POST",
        "chat.sendMessage",
        headers=user.headers,
        json={"message": {"_id": message_id, "rid": rid, "msg": "second"}},
    )
    assert again.status_code == 400
    body = again.json()
    assert body["success"] is False
    assert "errorType" not in body
    texts = [m["msg"] for m in _history(rocketchat, user, rid) if m["_id"] == message_id]
    assert texts == ["first"]  # neither stored twice nor overwritten
    stored = rocketchat.api("GET", "chat.getMessage", headers=user.headers, params={"msgId": message_id})
    assert stored.json()["message"]["msg"] == "first"


def test_rest_known_id_from_an_outsider_is_refused_for_the_room_first(rocketchat):
    owner, outsider = rocketchat.create_user(), rocketchat.create_user()
    rid = rocketchat.api(
        "POST", "groups.create", headers=owner.headers, json={"name": f"idg-{owner.username}"}
    ).json()["group"]["_id"]
    message_id = uuid.uuid4().hex[:17]
    rocketchat.api(
        "POST",
        "chat.sendMessage",
        headers=owner.headers,
        json={"message": {"_id": message_id, "rid": rid, "msg": "mine"}},
    )
    denied = rocketchat.api(
        "POST",
        "chat.sendMessage",
        headers=outsider.headers,
        json={"message": {"_id": message_id, "rid": rid, "msg": "x"}},
    )
    assert denied.status_code == 400
    assert denied.json().get("errorType")  # the room check answers, not the known id


async def test_ddp_second_send_with_the_same_id_has_no_result(rocketchat):
    user = rocketchat.create_user()
    rid = _channel(rocketchat, user)
    message_id = uuid.uuid4().hex[:17]
    async with DDPClient(rocketchat.ws_url) as ddp:
        await ddp.call("login", {"resume": user.token})
        first = await ddp.call("sendMessage", {"_id": message_id, "rid": rid, "msg": "first"})
        assert first["result"]["_id"] == message_id
        again = await ddp.call("sendMessage", {"_id": message_id, "rid": rid, "msg": "second"})
        assert "result" not in again
        assert "error" not in again
    texts = [m["msg"] for m in _history(rocketchat, user, rid) if m["_id"] == message_id]
    assert texts == ["first"]
