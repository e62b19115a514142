"""chat.postMessage / sendMessage / update / delete / getMessage."""

from __future__ import annotations

from typing import Any

from .. import views
from ..errors import failure, invalid_params, meteor_error
from ..util import now_ms
from .base import Call, endpoint, optional, require

_IMPERSONATION = ("alias", "avatar", "emoji")


def resolve_channel(call_ws: Any, user: dict[str, Any], ref: str) -> dict[str, Any]:
    """`#name`, `@username` (a direct room with that user) or a room id, as processWebhookMessage reads it."""
    if ref.startswith("@"):
        other = call_ws.user_by_username(ref[1:])
        if other is None:
            raise meteor_error("invalid-channel")
        return call_ws.direct_room([user, other], user)
    room = call_ws.room_by_name_or_id(ref[1:] if ref.startswith("#") else ref)
    if room is None:
        raise meteor_error("invalid-channel")
    return room


def message_fields(source: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {"msg": source.get("text") if "text" in source else source.get("msg", "")}
    for key in ("alias", "emoji", "avatar", "tmid", "customFields", "_id", "tshow"):
        if source.get(key) is not None:
            fields[key] = source[key]
    attachments = source.get("attachments")
    if attachments is not None:
        if not isinstance(attachments, list) or not all(isinstance(a, dict) for a in attachments):
            raise invalid_params("/attachments must be array of objects")
        fields["attachments"] = attachments
    fields["groupable"] = False if "groupable" not in source else bool(source["groupable"])
    if "parseUrls" in source:
        fields["parseUrls"] = bool(source["parseUrls"])
    return fields


@endpoint("POST", "chat.postMessage")
def post_message(call: Call) -> dict[str, Any]:
    body = call.body
    text = optional(body, "text", str)
    target = body.get("roomId") or body.get("channel")
    if not target:
        raise meteor_error("invalid-channel")
    if any(body.get(k) for k in _IMPERSONATION) and not call.can("message-impersonate"):
        raise meteor_error("error-not-allowed", "Not enough permission", {"method": "postMessage"})
    targets = target if isinstance(target, list) else [target]
    if not all(isinstance(t, str) for t in targets):
        raise meteor_error("invalid-channel")
    fields = message_fields({**body, "text": text or ""})
    message = None
    for ref in targets:
        room = resolve_channel(call.ws, call.user, ref)
        message = call.ws.send_message(call.user, room, dict(fields))
    if message is None:
        raise meteor_error("invalid-channel")
    return {"ts": message["ts"], "channel": target, "message": views.message_rest(message)}


@endpoint("POST", "chat.sendMessage")
def send_message(call: Call) -> dict[str, Any]:
    message = call.body.get("message")
    if not isinstance(message, dict):
        raise meteor_error("error-invalid-params", 'The "message" parameter must be provided.')
    if not message.get("rid"):
        raise failure("The 'rid' property on the message object is missing.")
    if any(message.get(k) for k in _IMPERSONATION) and not call.can("message-impersonate"):
        raise meteor_error("error-not-allowed", "Not enough permission", {"method": "sendMessage"})
    room = call.sim.state.rooms.get(message["rid"])
    if room is None:
        raise meteor_error("error-invalid-room", "Invalid room", {"method": "sendMessage"})
    if message.get("_id") and message["_id"] in call.sim.state.message_index:
        _refuse_known_id(call, room, message)
    saved = call.ws.send_message(call.user, room, message_fields(message))
    return {"message": views.message_rest(saved)}


# What Rocket.Chat's chat.sendMessage answers to a client `_id` it has already: sendMessage
# (app/lib/server/functions/sendMessage.ts) stores nothing and returns undefined for a known `_id`, after
# the usual checks; the route then hands that undefined to normalizeMessagesForUser, whose TypeError the
# API's catch turns into a plain failure (HTTP 400, no errorType).
KNOWN_ID_ERROR = "Cannot read properties of undefined (reading 'starred')"


def _refuse_known_id(call: Call, room: dict[str, Any], message: dict[str, Any]) -> None:
    text = message.get("msg") or ""
    if isinstance(text, str) and len(text) > int(call.ws.settings.get("Message_MaxAllowedSize", 5000)):
        raise meteor_error("error-message-size-exceeded", "Message size exceeds the allowed limit")
    call.ws.check_can_send(call.user, room)
    raise failure(KNOWN_ID_ERROR)


def _own_message(call: Call, room_id: str, msg_id: str) -> dict[str, Any]:
    msg = call.sim.state.message_index.get(msg_id)
    if msg is None:
        raise failure(f'No message found with the id of "{msg_id}".')
    if msg["rid"] != room_id:
        raise failure("The room id provided does not match where the message is from.")
    return msg


@endpoint("POST", "chat.update")
def chat_update(call: Call) -> dict[str, Any]:
    room_id = require(call.body, "roomId")
    msg_id = require(call.body, "msgId")
    text = require(call.body, "text")
    msg = _own_message(call, room_id, msg_id)
    updated = call.ws.update_message(call.user, msg, text)
    return {"message": views.message_rest(updated)}


@endpoint("POST", "chat.delete")
def chat_delete(call: Call) -> dict[str, Any]:
    room_id = require(call.body, "roomId")
    msg_id = require(call.body, "msgId")
    msg = _own_message(call, room_id, msg_id)
    if call.body.get("asUser") and msg["u"]["_id"] != call.uid:
        raise failure("Unauthorized. You must use the same user as the message.")
    call.ws.delete_message(call.user, msg)
    return {
        "_id": msg["_id"],
        "ts": str(now_ms()),  # Date.now() as a string here, unlike chat.postMessage
        "message": {"_id": msg["_id"], "rid": msg["rid"], "u": msg["u"]},
    }


@endpoint("GET", "chat.getMessage")
def chat_get_message(call: Call) -> dict[str, Any]:
    msg_id = call.query.get("msgId")
    if not msg_id:
        raise failure('The "msgId" query parameter must be provided.')
    msg = call.sim.state.message_index.get(msg_id)
    if msg is None or not call.ws.can_access_room(call.uid, call.sim.state.rooms[msg["rid"]]):
        raise failure("Not allowed [error-not-allowed]", "error-not-allowed")
    return {"message": views.message_rest(msg)}
