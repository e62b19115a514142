"""The bot's REST client posts a reply under its derived id once, against the simulator (Rocket.Chat's
behaviour for a known `_id`: nothing stored, a plain 400): the repeat reads as "posted before", and a
400 for an id that is not this bot's message in that room stays an error."""

from __future__ import annotations

import uuid

import pytest

from bot.transport.rest import RestChatPort, RestError, RocketChatRest

pytestmark = pytest.mark.integration


def _new_id() -> str:
    return uuid.uuid4().hex[:17]


async def test_a_reply_id_is_posted_once_and_a_foreign_id_stays_an_error(rocketchat):
    user, other = rocketchat.create_user(), rocketchat.create_user()
    name = f"rid-{user.username}"
    rid = rocketchat.api("POST", "channels.create", headers=user.headers, json={"name": name}).json()[
        "channel"
    ]["_id"]
    rest = RocketChatRest(rocketchat.base_url, user_id=user.id, token=user.token, timeout=10)
    port = RestChatPort(rest)
    try:
        reply = _new_id()
        assert await rest.send_message_once(rid, "the answer", reply) is True
        assert await rest.send_message_once(rid, "the answer", reply) is False
        posted = await port.send_to_channel_once(name, "to the channel", _new_id())
        assert posted is not None
        assert posted["room_id"] == rid
        assert await port.send_to_channel_once(name, "to the channel", posted["message_id"]) == posted

        # An id that is someone else's message (in a room this user cannot read) is no "posted before".
        other_room = rocketchat.api(
            "POST", "groups.create", headers=other.headers, json={"name": f"rid-{other.username}"}
        ).json()["group"]["_id"]
        foreign = _new_id()
        rocketchat.api(
            "POST",
            "chat.sendMessage",
            headers=other.headers,
            json={"message": {"_id": foreign, "rid": other_room, "msg": "theirs"}},
        )
        with pytest.raises(RestError) as refused:
            await rest.send_message_once(rid, "mine", foreign)
        assert refused.value.status == 400
    finally:
        await rest.aclose()
    history = rocketchat.api(
        "GET", "channels.history", headers=user.headers, params={"roomId": rid, "count": 50}
    ).json()["messages"]
    texts = sorted(m["msg"] for m in history if m["u"]["_id"] == user.id)
    assert texts == ["the answer", "to the channel"]
