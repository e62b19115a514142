"""Pure pieces of the transports: stream/REST message conversion, EJSON dates, webhook payloads."""

import pytest

from bot.transport.realtime import iso, message_time, to_incoming
from bot.transport.webhook import payload_to_incoming

pytestmark = pytest.mark.unit


def test_stream_message_conversion():
    message = {
        "_id": "m1",
        "rid": "r1",
        "msg": "@erpbot help",
        "ts": {"$date": 1700000000000},
        "u": {"_id": "u1", "username": "ivan"},
        "mentions": [{"_id": "bot-id", "username": "erpbot"}],
    }
    incoming = to_incoming(message, "c", "bot-id")
    assert incoming is not None
    assert (incoming.message_id, incoming.room_type, incoming.ts, incoming.mentions_bot) == (
        "m1",
        "c",
        1700000000.0,
        True,
    )
    assert to_incoming({**message, "editedAt": {"$date": 1}}, "c", "bot-id").edited
    assert to_incoming({**message, "t": "uj"}, "c", "bot-id").system
    assert to_incoming({**message, "bot": {"i": "x"}}, "c", "bot-id").from_bot
    assert to_incoming({"_id": "m"}, "d", "bot-id") is None


def test_dates():
    assert message_time("2016-12-09T12:50:51.555Z") == pytest.approx(1481287851.555)
    assert message_time({"$date": 1481287851555}) == pytest.approx(1481287851.555)
    assert message_time(None) == 0.0
    assert iso(1481287851.555) == "2016-12-09T12:50:51.555Z"


def test_webhook_payload():
    payload = {
        "token": "t",
        "bot": False,
        "channel_id": "r1",
        "message_id": "m1",
        "user_id": "u1",
        "user_name": "ivan",
        "text": "status",
        "timestamp": "2026-01-01T00:00:00.000Z",
    }
    incoming = payload_to_incoming(payload)
    assert incoming is not None
    assert incoming.room_type == "d"
    assert payload_to_incoming({**payload, "channel_name": "general"}).room_type == "c"
    assert payload_to_incoming({**payload, "isEdited": True}).edited
    assert payload_to_incoming({"token": "t"}) is None
