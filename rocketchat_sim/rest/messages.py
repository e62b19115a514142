"""chat.* beyond posting: reactions, pins, stars, search, reports, follow, threads, sync, ignore."""

from __future__ import annotations

from typing import Any

from .. import views
from ..errors import failure, invalid_params, meteor_error
from ..util import iso, new_id, now_ms
from .base import Call, endpoint, listing
from .rooms import _parse_date


def _message(call: Call, msg_id: Any, method: str) -> dict[str, Any]:
    """The message by id, visible to the caller (Rocket.Chat answers not-allowed for both cases)."""
    msg = call.sim.state.message_index.get(msg_id) if isinstance(msg_id, str) else None
    if msg is None or not call.ws.can_access_room(call.uid, call.sim.state.rooms[msg["rid"]]):
        raise meteor_error("error-not-allowed", "Not allowed", {"method": method})
    return msg


def _room(call: Call, rid: Any) -> dict[str, Any]:
    room = call.sim.state.rooms.get(rid) if isinstance(rid, str) else None
    if room is None or not call.ws.can_access_room(call.uid, room):
        raise meteor_error("error-not-allowed", "Not allowed")
    return room


@endpoint("POST", "chat.react")
def chat_react(call: Call) -> dict[str, Any]:
    emoji = call.body.get("emoji") or call.body.get("reaction")
    msg_id = call.body.get("messageId")
    if not isinstance(msg_id, str):
        raise invalid_params("must have required property 'messageId'")
    if not isinstance(emoji, str) or not emoji:
        raise invalid_params("must have required property 'emoji'")
    msg = call.sim.state.message_index.get(msg_id)
    if msg is None:
        raise failure('The required "messageId" param is missing.')
    call.ws.set_reaction(call.user, msg, emoji, call.body.get("shouldReact"))
    return {}


def _pin(call: Call, msg: dict[str, Any], pinned: bool) -> dict[str, Any] | None:
    if not call.ws.settings.get("Message_AllowPinning", True):
        raise meteor_error(
            "error-action-not-allowed", "Message pinning not allowed", {"method": "pinMessage"}
        )
    room = call.sim.state.rooms[msg["rid"]]
    if not call.can("pin-message", room["_id"]):
        raise meteor_error("not-authorized", "Not Authorized", {"method": "pinMessage"})
    msg["pinned"] = pinned
    if pinned:
        msg["pinnedAt"] = now_ms()
        msg["pinnedBy"] = {"_id": call.uid, "username": call.user["username"]}
    call.ws.republish(msg)
    if not pinned:
        return None
    attachment = {
        "text": msg.get("msg", ""),
        "author_name": msg["u"]["username"],
        "author_icon": f"/avatar/{msg['u']['username']}",
        "ts": iso(msg["ts"]),
    }
    return call.ws.system_message("message_pinned", room, call.user, "", attachments=[attachment])


@endpoint("POST", "chat.pinMessage")
def chat_pin(call: Call) -> dict[str, Any]:
    msg_id = call.body.get("messageId")
    if not msg_id:
        raise failure('The required "messageId" param is missing.')
    pinned = _pin(call, _message(call, msg_id, "pinMessage"), True)
    return {"message": views.message_rest(pinned) if pinned else None}


@endpoint("POST", "chat.unPinMessage")
def chat_unpin(call: Call) -> dict[str, Any]:
    msg_id = call.body.get("messageId")
    if not msg_id:
        raise failure('The required "messageId" param is missing.')
    _pin(call, _message(call, msg_id, "unpinMessage"), False)
    return {}


def _star(call: Call, starred: bool) -> dict[str, Any]:
    msg_id = call.body.get("messageId")
    if not msg_id:
        raise failure('The required "messageId" param is missing.')
    msg = _message(call, msg_id, "starMessage")
    if not call.ws.settings.get("Message_AllowStarring", True):
        raise meteor_error(
            "error-action-not-allowed", "Message starring not allowed", {"method": "starMessage"}
        )
    stars = [s for s in msg.get("starred", []) if s.get("_id") != call.uid]
    if starred:
        stars.append({"_id": call.uid})
    msg["starred"] = stars
    call.ws.republish(msg)
    return {}


@endpoint("POST", "chat.starMessage")
def chat_star(call: Call) -> dict[str, Any]:
    return _star(call, True)


@endpoint("POST", "chat.unStarMessage")
def chat_unstar(call: Call) -> dict[str, Any]:
    return _star(call, False)


def _room_messages(call: Call, keep: Any) -> dict[str, Any]:
    room = _room(call, call.query.get("roomId"))
    msgs = [m for m in reversed(call.sim.state.messages.get(room["_id"], [])) if keep(m)]
    return listing(call, "messages", msgs, views.message_rest)


@endpoint("GET", "chat.getPinnedMessages")
def chat_pinned(call: Call) -> dict[str, Any]:
    return _room_messages(call, lambda m: m.get("pinned") and not m.get("t"))


@endpoint("GET", "chat.getStarredMessages")
def chat_starred(call: Call) -> dict[str, Any]:
    return _room_messages(call, lambda m: any(s.get("_id") == call.uid for s in m.get("starred", [])))


@endpoint("GET", "chat.getMentionedMessages")
def chat_mentioned(call: Call) -> dict[str, Any]:
    return _room_messages(call, lambda m: any(x.get("_id") == call.uid for x in m.get("mentions", [])))


@endpoint("GET", "chat.getDiscussions")
def chat_discussions(call: Call) -> dict[str, Any]:
    room = _room(call, call.query.get("roomId"))
    found = [r for r in call.sim.state.rooms.values() if r.get("prid") == room["_id"]]
    return listing(call, "messages", found, views.room_rest)


@endpoint("GET", "chat.search")
def chat_search(call: Call) -> dict[str, Any]:
    text = call.query.get("searchText")
    if not text:
        raise failure('The required "searchText" param is missing.')
    room = _room(call, call.query.get("roomId"))
    needle = text.lower()
    msgs = [
        m
        for m in reversed(call.sim.state.messages.get(room["_id"], []))
        if not m.get("t") and needle in (m.get("msg") or "").lower()
    ]
    return listing(call, "messages", msgs, views.message_rest)


@endpoint("POST", "chat.reportMessage")
def chat_report(call: Call) -> dict[str, Any]:
    msg_id = call.body.get("messageId")
    description = call.body.get("description")
    if not msg_id or not isinstance(description, str) or not description:
        raise failure('The required "messageId" and "description" params are missing.')
    msg = _message(call, msg_id, "reportMessage")
    report = {
        "_id": new_id(),
        "message": dict(msg),
        "description": description,
        "ts": now_ms(),
        "room": {"_id": msg["rid"]},
        "reportedBy": {"_id": call.uid, "username": call.user["username"], "name": call.user.get("name")},
        "_hidden": False,
    }
    call.sim.state.reports.append(report)
    call.sim.state.mark_dirty()
    return {}


def _follow(call: Call, follow: bool) -> dict[str, Any]:
    mid = call.body.get("mid")
    if not isinstance(mid, str) or not mid:
        raise invalid_params("must have required property 'mid'")
    if not call.ws.settings.get("Threads_enabled", True):
        raise meteor_error("error-not-allowed", "not-allowed", {"method": "followMessage"})
    msg = _message(call, mid, "followMessage")
    replies = msg.setdefault("replies", [])
    if follow and call.uid not in replies:
        replies.append(call.uid)
    elif not follow and call.uid in replies:
        replies.remove(call.uid)
    call.ws.republish(msg)
    return {}


@endpoint("POST", "chat.followMessage")
def chat_follow(call: Call) -> dict[str, Any]:
    return _follow(call, True)


@endpoint("POST", "chat.unfollowMessage")
def chat_unfollow(call: Call) -> dict[str, Any]:
    return _follow(call, False)


def _threads_enabled(call: Call) -> None:
    if not call.ws.settings.get("Threads_enabled", True):
        raise meteor_error("error-not-allowed", "Threads Disabled", {"method": "getThreadsList"})


@endpoint("GET", "chat.getThreadsList")
def chat_threads(call: Call) -> dict[str, Any]:
    rid = call.query.get("rid")
    if not rid:
        raise invalid_params("must have required property 'rid'")
    _threads_enabled(call)
    room = _room(call, rid)
    kind = call.query.get("type")
    msgs = [m for m in reversed(call.sim.state.messages.get(room["_id"], [])) if m.get("tcount")]
    if kind == "following":
        msgs = [m for m in msgs if call.uid in m.get("replies", [])]
    return listing(call, "threads", msgs, views.message_rest)


@endpoint("GET", "chat.getThreadMessages")
def chat_thread_messages(call: Call) -> dict[str, Any]:
    tmid = call.query.get("tmid")
    if not tmid:
        raise invalid_params("must have required property 'tmid'")
    _threads_enabled(call)
    parent = _message(call, tmid, "getThreadMessages")
    msgs = [m for m in call.sim.state.messages.get(parent["rid"], []) if m.get("tmid") == tmid]
    return listing(call, "messages", msgs, views.message_rest)


def _updated_since(call: Call, name: str = "updatedSince") -> int:
    since = _parse_date(call.query.get(name))
    if since is None:
        raise invalid_params(f"must have required property '{name}'")
    return since


@endpoint("GET", "chat.syncThreadsList")
def chat_sync_threads(call: Call) -> dict[str, Any]:
    _threads_enabled(call)
    room = _room(call, call.query.get("rid"))
    since = _updated_since(call)
    update = [
        m for m in call.sim.state.messages.get(room["_id"], []) if m.get("tcount") and m["_updatedAt"] > since
    ]
    return {"threads": {"update": [views.message_rest(m) for m in update], "remove": []}}


@endpoint("GET", "chat.syncThreadMessages")
def chat_sync_thread_messages(call: Call) -> dict[str, Any]:
    _threads_enabled(call)
    parent = _message(call, call.query.get("tmid"), "getThreadMessages")
    since = _updated_since(call)
    update = [
        m
        for m in call.sim.state.messages.get(parent["rid"], [])
        if m.get("tmid") == parent["_id"] and m["_updatedAt"] > since
    ]
    return {"messages": {"update": [views.message_rest(m) for m in update], "remove": []}}


@endpoint("GET", "chat.syncMessages")
def chat_sync_messages(call: Call) -> dict[str, Any]:
    room = _room(call, call.query.get("roomId"))
    since = _parse_date(call.query.get("lastUpdate")) or _parse_date(call.query.get("next"))
    if since is None:
        raise failure('The required "lastUpdate" param is missing.')
    update = [m for m in call.sim.state.messages.get(room["_id"], []) if m["_updatedAt"] > since]
    return {"result": {"updated": [views.message_rest(m) for m in update], "deleted": []}}


@endpoint("GET", "chat.getDeletedMessages")
def chat_deleted(call: Call) -> dict[str, Any]:
    room = _room(call, call.query.get("roomId"))
    since = _updated_since(call, "since")
    deleted = [d for d in call.sim.state.deleted_messages.get(room["_id"], []) if d["_deletedAt"] > since]
    return listing(call, "messages", deleted, lambda d: {"_id": d["_id"]})


@endpoint("GET", "chat.ignoreUser")
def chat_ignore_user(call: Call) -> dict[str, Any]:
    rid, uid = call.query.get("rid"), call.query.get("userId")
    if not rid or not uid:
        raise failure('The required "rid" and "userId" params are missing.')
    sub = call.sim.state.subscriptions.get((rid, call.uid))
    if sub is None:
        raise meteor_error("error-invalid-subscription", "Invalid subscription", {"method": "ignoreUser"})
    if (rid, uid) not in call.sim.state.subscriptions:
        raise meteor_error("error-invalid-subscription", "Invalid subscription", {"method": "ignoreUser"})
    ignored = [u for u in sub.get("ignored", []) if u != uid]
    if call.query.get("ignore", "true") != "false":
        ignored.append(uid)
    sub["ignored"] = ignored
    call.sim.state.mark_dirty()
    return {}


@endpoint("GET", "chat.getURLPreview")
def chat_url_preview(call: Call) -> dict[str, Any]:
    url = call.query.get("url")
    _room(call, call.query.get("roomId"))
    if not url:
        raise invalid_params("must have required property 'url'")
    # The simulator fetches nothing from the network: no preview metadata, as for an unreachable URL.
    return {"urlPreview": {"url": url, "meta": {}, "headers": {}}}
