"""What a bot meets on a real Rocket.Chat server, produced by the simulator and handled by the bot process.

System messages (Rocket.Chat's `t` types) and messages from itself or other bots are never answered,
even when their text mentions the bot; thread replies are answered; edits, reactions and thread-count
updates re-send a message that must not be answered twice; attachment-only messages do not break the
bot; a room the bot was removed from is no longer its conversation; a deactivated user cannot write;
the bot's own sessions revoked by an admin are renewed by logging in again.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

SETTLE_SECONDS = 1.5  # long enough for the bot to have answered anything it was going to answer


def _channel(stack: Any, *members: str) -> str:
    name = f"events-{secrets.token_hex(4)}"
    return stack.admin.create_channel(name, [stack.bot_user.username, *members])


def _history(stack: Any, room_id: str) -> list[dict[str, Any]]:
    return stack.admin.call("GET", "channels.history", params={"roomId": room_id, "count": 200})["messages"]


def _bot_said(stack: Any, room_id: str) -> list[str]:
    bot_id = stack.bot_user.user_id
    return [m["msg"] for m in _history(stack, room_id) if m["u"]["_id"] == bot_id and not m.get("t")]


def _mention_answered(stack: Any, user: Any, room_id: str) -> None:
    """The control: a real mention by a person is answered once (the bot asks for a direct message)."""
    before = len(_bot_said(stack, room_id))
    user.say(room_id, f"@{stack.bot_user.username} register")
    user.wait_for_bot(room_id, stack.bot_user.user_id, before + 1, kind="c")


def test_system_messages_and_bots_are_never_answered(bot_stack):
    stack = bot_stack
    mention = f"@{stack.bot_user.username} register"
    user, _ = stack.new_user("sys")
    other, _ = stack.new_user("sys2")
    channel = _channel(stack, user.username)
    admin = stack.admin
    # Room changes whose system message carries a mention of the bot.
    admin.call("POST", "channels.setTopic", json={"roomId": channel, "topic": mention})
    admin.call("POST", "channels.setDescription", json={"roomId": channel, "description": mention})
    admin.call("POST", "channels.setAnnouncement", json={"roomId": channel, "announcement": mention})
    # Membership and roles: au, uj, ul, ru, subscription-role-added/removed, rename.
    admin.call("POST", "channels.invite", json={"roomId": channel, "userId": other.user_id})
    admin.call("POST", "channels.addModerator", json={"roomId": channel, "userId": user.user_id})
    admin.call("POST", "channels.removeModerator", json={"roomId": channel, "userId": user.user_id})
    other.call("POST", "channels.leave", json={"roomId": channel})
    other.call("POST", "channels.join", json={"roomId": channel})
    admin.call("POST", "channels.kick", json={"roomId": channel, "userId": other.user_id})
    admin.call("POST", "channels.rename", json={"roomId": channel, "name": f"renamed-{secrets.token_hex(3)}"})
    # A pinned message quoting a mention; a deleted message shown as removed (`rm`).
    pinned = user.say(channel, "pin me")
    admin.call("POST", "chat.pinMessage", json={"messageId": pinned})
    admin.call("POST", "settings/Message_ShowDeletedStatus", json={"value": True}, headers=_2fa(stack))
    try:
        removed = user.say(channel, "remove me")
        admin.call("POST", "chat.delete", json={"roomId": channel, "msgId": removed})
    finally:
        admin.call("POST", "settings/Message_ShowDeletedStatus", json={"value": False}, headers=_2fa(stack))
    # users.create joining the default channels posts `uj` there.
    admin.call("POST", "channels.setDefault", json={"roomId": channel, "default": True})
    try:
        joined = f"joiner-{secrets.token_hex(3)}"
        admin.call(
            "POST",
            "users.create",
            json={
                "username": joined,
                "name": mention,
                "email": f"{joined}@example.com",
                "password": secrets.token_urlsafe(16),
            },
        )
    finally:
        admin.call("POST", "channels.setDefault", json={"roomId": channel, "default": False})
    # Another bot, and an integration (messages with `bot`), both mentioning the bot.
    other_bot = admin.create_user(f"otherbot-{secrets.token_hex(3)}", roles=("bot", "user"))
    admin.call("POST", "channels.invite", json={"roomId": channel, "userId": other_bot.user_id})
    other_bot.say(channel, mention)
    hook = admin.call(
        "POST",
        "integrations.create",
        json={
            "type": "webhook-incoming",
            "name": f"hook-{secrets.token_hex(3)}",
            "enabled": True,
            "username": stack.rc.admin_username,
            "channel": f"#{_name(stack, channel)}",
            "scriptEnabled": False,
        },
    )["integration"]
    posted = httpx.post(
        f"{stack.rocketchat_url}/hooks/{hook['_id']}/{hook['token']}", json={"text": mention}, timeout=10
    )
    assert posted.status_code == 200, posted.text
    # And the bot's own message mentioning itself.
    stack.bot_user.say(channel, mention)

    kinds = {m.get("t") for m in _history(stack, channel)}
    expected = {
        "room_changed_topic",
        "room_changed_description",
        "room_changed_announcement",
        "au",
        "uj",
        "ul",
        "ru",
        "r",
        "subscription-role-added",
        "subscription-role-removed",
        "message_pinned",
        "rm",
    }
    assert expected <= kinds, expected - kinds
    _mention_answered(stack, user, channel)
    time.sleep(SETTLE_SECONDS)
    assert len(_bot_said(stack, channel)) == 2  # its own message + the one answer to the person


def _2fa(stack: Any) -> dict[str, str]:
    """Admin auth plus the 2FA password fallback (settings changes are two-factor protected)."""
    return stack.rc.admin_2fa_headers | {"X-User-Id": stack.admin.user_id, "X-Auth-Token": stack.admin.token}


def _name(stack: Any, room_id: str) -> str:
    return stack.admin.call("GET", "channels.info", params={"roomId": room_id})["channel"]["name"]


def test_thread_replies_are_answered_and_thread_updates_are_not(bot_stack):
    user, room = bot_stack.new_user("thread")
    bot_id = bot_stack.bot_user.user_id
    first = user.say(room, "статус")
    user.wait_for_bot(room, bot_id, 1)
    # A reply in the thread of the first message is a message like any other...
    user.call("POST", "chat.sendMessage", json={"message": {"rid": room, "msg": "status", "tmid": first}})
    assert "not registered" in user.wait_for_bot(room, bot_id, 2)[1]
    parent = user.call("GET", "chat.getMessage", params={"msgId": first})["message"]
    assert parent["tcount"] == 1
    # ...while the parent re-sent with its new thread count is not answered again.
    time.sleep(SETTLE_SECONDS)
    assert len(user.bot_messages(room, bot_id)) == 2


def test_reactions_and_stars_resend_the_message_without_a_second_answer(bot_stack):
    user, room = bot_stack.new_user("react")
    bot_id = bot_stack.bot_user.user_id
    mine = user.say(room, "статус")
    user.wait_for_bot(room, bot_id, 1)
    user.call("POST", "chat.react", json={"messageId": mine, "emoji": ":thumbsup:"})
    user.call("POST", "chat.starMessage", json={"messageId": mine})
    bot_reply = next(m for m in user.history(room) if m["u"]["_id"] == bot_id)
    user.call("POST", "chat.react", json={"messageId": bot_reply["_id"], "emoji": "heart"})
    reacted = user.call("GET", "chat.getMessage", params={"msgId": mine})["message"]
    assert reacted["reactions"] == {":thumbsup:": {"usernames": [user.username]}}
    time.sleep(SETTLE_SECONDS)
    assert len(user.bot_messages(room, bot_id)) == 1


def test_attachment_without_text_does_not_break_the_conversation(bot_stack):
    user, room = bot_stack.new_user("attach")
    bot_id = bot_stack.bot_user.user_id
    user.call(
        "POST",
        "chat.postMessage",
        json={"roomId": room, "text": "", "attachments": [{"title": "scan.pdf", "title_link": "/x"}]},
    )
    sent = [m for m in user.history(room) if m["u"]["_id"] == user.user_id]
    assert sent[0]["msg"] == ""
    assert sent[0]["attachments"][0]["title"] == "scan.pdf"
    time.sleep(SETTLE_SECONDS)
    before = len(user.bot_messages(room, bot_id))
    assert before <= 1  # at most one answer (a hint), never an error
    assert "не зарегистрированы" in user.converse(room, bot_id, "статус")
    assert "command crashed" not in bot_stack.bot.process.log_path.read_text()


def test_a_room_the_bot_was_removed_from_is_not_its_conversation(bot_stack):
    stack = bot_stack
    user, room = stack.new_user("removed")
    channel = _channel(stack, user.username)
    _mention_answered(stack, user, channel)
    stack.admin.call("POST", "channels.kick", json={"roomId": channel, "userId": stack.bot_user.user_id})
    assert any(m.get("t") == "ru" for m in _history(stack, channel))
    user.say(channel, f"@{stack.bot_user.username} register")
    time.sleep(SETTLE_SECONDS)
    assert len(_bot_said(stack, channel)) == 1  # only the answer from before the removal
    members = stack.admin.call("GET", "channels.members", params={"roomId": channel})["members"]
    assert stack.bot_user.user_id not in {m["_id"] for m in members}  # it did not join again by answering
    assert "not registered" in user.converse(room, stack.bot_user.user_id, "status")  # DMs still work


def test_a_deactivated_user_cannot_write_and_is_answered_after_reactivation(bot_stack):
    stack = bot_stack
    user, room = stack.new_user("inactive")
    bot_id = stack.bot_user.user_id
    stack.admin.call("POST", "users.setActiveStatus", json={"userId": user.user_id, "activeStatus": False})
    refused = user.http.post("/api/v1/chat.sendMessage", json={"message": {"rid": room, "msg": "статус"}})
    assert refused.status_code == 401  # deactivation revoked every session
    login = user.http.post("/api/v1/login", json={"user": user.username, "password": user.password})
    assert login.status_code == 401
    time.sleep(SETTLE_SECONDS)
    stack.admin.call("POST", "users.setActiveStatus", json={"userId": user.user_id, "activeStatus": True})
    again = type(user).login(stack.rocketchat_url, user.username, user.password)
    assert again.history(room) == []  # nothing was written, nothing was answered
    assert "не зарегистрированы" in again.converse(room, bot_id, "статус")


def test_the_bot_logs_in_again_after_an_admin_revokes_its_sessions(bot_stack):
    stack = bot_stack
    user, room = stack.new_user("revoke")
    bot_id = stack.bot_user.user_id
    assert "не зарегистрированы" in user.converse(room, bot_id, "статус")
    stack.admin.call("POST", "users.logout", json={"userId": bot_id})
    # Every login token is gone and the stream was closed: the bot must log in again by itself.
    assert "не зарегистрированы" in user.converse(room, bot_id, "статус", timeout=30)
    assert "logging in again" in stack.bot.process.log_path.read_text() or _reconnected(stack)


def _reconnected(stack: Any) -> bool:
    for line in stack.bot.metrics().splitlines():
        if line.startswith("bot_realtime_reconnects_total"):
            return float(line.split()[-1]) >= 1
    return False
