"""rooms.* by room id (whatever its type), subscriptions read state, directory, spotlight and invites."""

from __future__ import annotations

from typing import Any

from .. import views
from ..errors import failure, invalid_params, meteor_error
from ..util import iso, new_id, now_ms
from .base import Call, endpoint, listing, paginate, query_json
from .room_family import (
    delete_room,
    leave_room,
    rename_room,
    room_roles,
    save_setting,
    set_archived,
    set_open,
    set_type,
)
from .rooms import _parse_date


def _rid_room(call: Call, params: dict[str, Any], key: str = "roomId") -> dict[str, Any]:
    rid = params.get(key)
    if not isinstance(rid, str) or not rid:
        raise invalid_params(f"must have required property '{key}'")
    room = call.sim.state.rooms.get(rid)
    if room is None or not call.ws.can_access_room(call.uid, room):
        raise meteor_error(
            "error-room-not-found", 'The required "roomId" param provided does not match any room'
        )
    return room


def _sub(call: Call, room: dict[str, Any]) -> dict[str, Any]:
    sub = call.sim.state.subscriptions.get((room["_id"], call.uid))
    if sub is None:
        raise meteor_error("error-invalid-subscription", "Invalid subscription")
    return sub


@endpoint("POST", "rooms.join")
def rooms_join(call: Call) -> dict[str, Any]:
    room = _rid_room(call, call.body)
    if room["t"] != "c":
        raise meteor_error("error-not-allowed", "Not allowed", {"method": "joinRoom"})
    if room.get("joinCodeRequired") and call.body.get("joinCode") != room.get("joinCode"):
        raise meteor_error("error-code-invalid", "Invalid Room Password", {"method": "joinRoom"})
    if (room["_id"], call.uid) not in call.sim.state.subscriptions:
        call.ws.add_member(room, call.user)
        call.ws.system_message("uj", room, call.user, call.user["username"])
    return {"room": views.room_rest(room)}


@endpoint("POST", "rooms.leave")
def rooms_leave(call: Call) -> dict[str, Any]:
    leave_room(call, _rid_room(call, call.body), call.user)
    return {}


@endpoint("POST", "rooms.delete")
def rooms_delete(call: Call) -> dict[str, Any]:
    delete_room(call, _rid_room(call, call.body))
    return {}


@endpoint("POST", "rooms.favorite")
def rooms_favorite(call: Call) -> dict[str, Any]:
    fav = call.body.get("favorite")
    if not isinstance(fav, bool):
        raise invalid_params("must have required property 'favorite'")
    sub = _sub(call, _rid_room(call, call.body))
    sub["f"] = fav
    sub["_updatedAt"] = now_ms()
    call.sim.state.mark_dirty()
    return {}


@endpoint("POST", "rooms.open")
def rooms_open(call: Call) -> dict[str, Any]:
    room = _rid_room(call, call.body)
    sub = _sub(call, room)
    if not sub.get("open"):
        set_open(call, room, True)
    return {}


@endpoint("POST", "rooms.hide")
def rooms_hide(call: Call) -> dict[str, Any]:
    room = _rid_room(call, call.body)
    sub = _sub(call, room)
    if not sub.get("open"):
        raise meteor_error("error-room-already-hidden", "Room is already hidden")
    set_open(call, room, False)
    return {}


@endpoint("POST", "rooms.saveNotification")
def rooms_save_notification(call: Call) -> dict[str, Any]:
    prefs = call.body.get("notifications")
    if not isinstance(prefs, dict) or not prefs:
        raise failure("The 'notifications' param is required")
    sub = _sub(call, _rid_room(call, call.body))
    sub.update({k: v for k, v in prefs.items() if isinstance(v, str | bool | int)})
    sub["_updatedAt"] = now_ms()
    call.sim.state.mark_dirty()
    return {}


@endpoint("POST", "rooms.saveRoomSettings")
def rooms_save_settings(call: Call) -> dict[str, Any]:
    room = _rid_room(call, call.body, "rid")
    settings = {k: v for k, v in call.body.items() if k != "rid"}
    known = {
        "roomName",
        "roomTopic",
        "roomAnnouncement",
        "roomDescription",
        "roomType",
        "readOnly",
        "default",
        "joinCode",
        "roomCustomFields",
        "favorite",
        "sysMes",
        "reactWhenReadOnly",
        "systemMessages",
        "featured",
        "encrypted",
        "roomAvatar",
        "retentionEnabled",
    }
    unknown = [k for k in settings if k not in known]
    if unknown:
        raise meteor_error(
            "error-invalid-settings", "Invalid settings provided", {"method": "saveRoomSettings"}
        )
    if "roomName" in settings:
        rename_room(call, room, str(settings["roomName"]))
    for body_key, room_key in (
        ("roomTopic", "topic"),
        ("roomAnnouncement", "announcement"),
        ("roomDescription", "description"),
        ("readOnly", "ro"),
        ("default", "default"),
        ("roomCustomFields", "customFields"),
        ("sysMes", "sysMes"),
        ("reactWhenReadOnly", "reactWhenReadOnly"),
        ("featured", "featured"),
    ):
        if body_key in settings:
            save_setting(call, room, room_key, settings[body_key])
    if "roomType" in settings and settings["roomType"] != room["t"]:
        set_type(call, room, str(settings["roomType"]))
    return {"rid": room["_id"]}


@endpoint("POST", "rooms.changeArchivationState")
def rooms_change_archivation(call: Call) -> dict[str, Any]:
    action = call.body.get("action")
    room = _rid_room(call, call.body, "rid")
    set_archived(call, room, action == "archive")
    return {}


@endpoint("POST", "rooms.cleanHistory")
def rooms_clean_history(call: Call) -> dict[str, Any]:
    room = _rid_room(call, call.body)
    latest, oldest = _parse_date(call.body.get("latest")), _parse_date(call.body.get("oldest"))
    if latest is None or oldest is None:
        raise failure('Body parameter "latest" and "oldest" are required.')
    if not call.can("clean-channel-history", room["_id"]):
        raise meteor_error("error-not-allowed", "Not allowed", {"method": "cleanRoomHistory"})
    inclusive = bool(call.body.get("inclusive"))
    state = call.sim.state
    kept, removed = [], 0
    for msg in state.messages.get(room["_id"], []):
        inside = (oldest < msg["ts"] < latest) or (inclusive and msg["ts"] in (oldest, latest))
        if inside and not (call.body.get("excludePinned") and msg.get("pinned")):
            state.message_index.pop(msg["_id"], None)
            state.note_deleted(room["_id"], msg["_id"], now_ms())
            removed += 1
        else:
            kept.append(msg)
    state.messages[room["_id"]] = kept
    room["msgs"] = len(kept)
    state.mark_dirty()
    return {"count": removed}


@endpoint("GET", "rooms.adminRooms")
def rooms_admin_rooms(call: Call) -> dict[str, Any]:
    if not call.can("view-room-administration"):
        raise failure("unauthorized")
    kinds = call.query.get("types")
    needle = (call.query.get("filter") or "").lower()
    rooms = [
        r
        for r in call.sim.state.rooms.values()
        if (not kinds or r["t"] in kinds) and needle in (r.get("name") or "").lower()
    ]
    rooms.sort(key=lambda r: r.get("name") or r["_id"])
    return listing(call, "rooms", rooms, views.room_rest)


@endpoint("GET", "rooms.adminRooms.getRoom")
def rooms_admin_get_room(call: Call) -> dict[str, Any]:
    if not call.can("view-room-administration"):
        raise failure("unauthorized")
    room = call.sim.state.rooms.get(call.query.get("rid") or "")
    return views.room_rest(room) if room else {}


def _autocomplete(call: Call, kinds: tuple[str, ...], admin: bool) -> list[dict[str, Any]]:
    selector = query_json(call, "selector")
    needle = str(selector.get("name", "")).lower()
    state = call.sim.state
    rooms = [
        r
        for r in state.rooms.values()
        if r["t"] in kinds
        and needle in (r.get("name") or "").lower()
        and (admin or (r["_id"], call.uid) in state.subscriptions)
    ]
    return sorted(rooms, key=lambda r: r.get("name", ""))


def _brief(room: dict[str, Any]) -> dict[str, Any]:
    return {k: room[k] for k in ("_id", "name", "fname", "t", "avatarETag") if k in room}


@endpoint("GET", "rooms.autocomplete.channelAndPrivate")
def rooms_autocomplete(call: Call) -> dict[str, Any]:
    return {"items": [_brief(r) for r in _autocomplete(call, ("c", "p"), False)[:10]]}


@endpoint("GET", "rooms.autocomplete.channelAndPrivate.withPagination")
def rooms_autocomplete_paged(call: Call) -> dict[str, Any]:
    rooms = _autocomplete(call, ("c", "p"), False)
    page, offset, count = paginate(call, rooms)
    return {"items": [_brief(r) for r in page], "count": count, "offset": offset, "total": len(rooms)}


@endpoint("GET", "rooms.autocomplete.adminRooms")
def rooms_autocomplete_admin(call: Call) -> dict[str, Any]:
    if not call.can("view-room-administration"):
        raise failure("unauthorized")
    return {"items": [_brief(r) for r in _autocomplete(call, ("c", "p", "d"), True)[:10]]}


@endpoint("GET", "rooms.nameExists")
def rooms_name_exists(call: Call) -> dict[str, Any]:
    name = call.query.get("roomName")
    if not name:
        raise invalid_params("must have required property 'roomName'")
    return {"exists": name in call.sim.state.rooms_by_name}


@endpoint("GET", "rooms.roles")
def rooms_roles(call: Call) -> dict[str, Any]:
    return {"roles": room_roles(call, _rid_room(call, call.query, "rid"))}


@endpoint("GET", "rooms.isMember")
def rooms_is_member(call: Call) -> dict[str, Any]:
    room = _rid_room(call, call.query)
    user = call.sim.state.users.get(call.query.get("userId") or "") or call.ws.user_by_username(
        call.query.get("username") or ""
    )
    if user is None:
        raise failure("error-user-not-found")
    return {"isMember": (room["_id"], user["_id"]) in call.sim.state.subscriptions}


@endpoint("GET", "rooms.membersOrderedByRole")
def rooms_members_by_role(call: Call) -> dict[str, Any]:
    room = _rid_room(call, call.query)
    rank = {"owner": 0, "moderator": 1, "leader": 2}
    state = call.sim.state
    members = []
    for uid in state.room_members.get(room["_id"], ()):
        user = state.users.get(uid)
        if user is None:
            continue
        roles = state.subscriptions[(room["_id"], uid)].get("roles", [])
        members.append((min((rank[r] for r in roles if r in rank), default=3), user["username"], user, roles))
    members.sort(key=lambda m: (m[0], m[1]))
    page, offset, count = paginate(call, members)
    out = [
        {
            "_id": u["_id"],
            "username": u["username"],
            "name": u.get("name"),
            "status": u.get("status", "offline"),
            "roles": roles,
        }
        for _, _, u, roles in page
    ]
    return {"members": out, "count": count, "offset": offset, "total": len(members)}


@endpoint("POST", "rooms.muteUser")
def rooms_mute(call: Call) -> dict[str, Any]:
    return _mute(call, True)


@endpoint("POST", "rooms.unmuteUser")
def rooms_unmute(call: Call) -> dict[str, Any]:
    return _mute(call, False)


def _mute(call: Call, mute: bool) -> dict[str, Any]:
    room = _rid_room(call, call.body)
    user = call.sim.state.users.get(call.body.get("userId") or "") or call.ws.user_by_username(
        call.body.get("username") or ""
    )
    if user is None:
        raise meteor_error("error-invalid-user", "Invalid user")
    if not call.can("mute-user", room["_id"]):
        raise meteor_error("error-not-allowed", "Not allowed", {"method": "muteUserInRoom"})
    if (room["_id"], user["_id"]) not in call.sim.state.subscriptions:
        raise meteor_error("error-user-not-in-room", "User is not in this room")
    muted = [u for u in room.get("muted", []) if u != user["username"]]
    if mute:
        muted.append(user["username"])
    room["muted"] = muted
    call.ws.system_message("user-muted" if mute else "user-unmuted", room, call.user, user["username"])
    return {}


@endpoint("POST", "rooms.createDiscussion")
def rooms_create_discussion(call: Call) -> dict[str, Any]:
    prid = call.body.get("prid")
    name = call.body.get("t_name")
    if not prid or not name:
        raise failure('Body parameters "prid" and "t_name" are required.')
    parent = call.sim.state.rooms.get(prid)
    if parent is None or not call.ws.can_access_room(call.uid, parent):
        raise meteor_error("error-invalid-room", "Invalid room", {"method": "DiscussionCreation"})
    if not call.can("start-discussion", prid) and not call.can("start-discussion-other-user", prid):
        raise meteor_error("error-action-not-allowed", "You are not allowed to create a discussion")
    users = [u for u in call.body.get("users", []) if isinstance(u, str)]
    room = call.ws.create_room(
        parent["t"] if parent["t"] != "d" else "p", new_id(), call.user, users, extra={}
    )
    room["fname"] = name
    room["prid"] = prid
    for uid in call.sim.state.room_members.get(room["_id"], ()):
        call.sim.state.subscriptions[(room["_id"], uid)]["fname"] = name
    call.ws.system_message("discussion-created", parent, call.user, name, drid=room["_id"])
    if call.body.get("reply"):
        call.ws.send_message(call.user, room, {"msg": str(call.body["reply"])})
    return {"discussion": views.room_rest(room)}


@endpoint("GET", "rooms.getDiscussions")
def rooms_discussions(call: Call) -> dict[str, Any]:
    room = _rid_room(call, call.query)
    found = [r for r in call.sim.state.rooms.values() if r.get("prid") == room["_id"]]
    return listing(call, "discussions", found, views.room_rest)


# ---------------------------------------------------------------- subscriptions read state
def _mark_read(call: Call, room: dict[str, Any]) -> None:
    sub = _sub(call, room)
    sub.update(unread=0, alert=False, userMentions=0, groupMentions=0, ls=now_ms(), _updatedAt=now_ms())
    sub.pop("tunread", None)
    call.sim.state.mark_dirty()


@endpoint("POST", "subscriptions.read")
def subscriptions_read(call: Call) -> dict[str, Any]:
    rid = call.body.get("rid") or call.body.get("roomId")
    _mark_read(call, _rid_room(call, {"roomId": rid}))
    return {}


@endpoint("POST", "subscriptions.unread")
def subscriptions_unread(call: Call) -> dict[str, Any]:
    if call.body.get("firstUnreadMessage"):
        first = call.body["firstUnreadMessage"]
        msg = call.sim.state.message_index.get(first.get("_id") if isinstance(first, dict) else "")
        if msg is None:
            raise meteor_error("error-invalid-message", "Invalid message", {"method": "unreadMessages"})
        room, since = call.sim.state.rooms[msg["rid"]], msg["ts"] - 1
    elif call.body.get("roomId"):
        room = _rid_room(call, call.body)
        since = None
    else:
        raise failure('At least one of "firstUnreadMessage._id" or "roomId" is required')
    sub = _sub(call, room)
    sub.update(alert=True, unread=max(1, sub.get("unread", 0)), _updatedAt=now_ms())
    if since is not None:
        sub["ls"] = since
    call.sim.state.mark_dirty()
    return {}


# ---------------------------------------------------------------- directory & spotlight
@endpoint("GET", "directory")
def directory(call: Call) -> dict[str, Any]:
    legacy = query_json(call, "query")  # older clients send {"text", "type"} as a JSON `query`
    kind = call.query.get("type") or legacy.get("type") or "channels"
    text = str(call.query.get("text") or legacy.get("text") or "").lower()
    state = call.sim.state
    if kind == "users":
        users = sorted(
            (
                u
                for u in state.users.values()
                if u.get("active", True)
                and (text in u["username"].lower() or text in (u.get("name") or "").lower())
            ),
            key=lambda u: u["username"],
        )
        return listing(
            call,
            "result",
            users,
            lambda u: {
                k: (iso(u[k]) if k == "createdAt" else u[k])
                for k in ("_id", "username", "name", "createdAt")
                if k in u
            },
        )
    if kind not in ("channels", "teams"):
        raise failure("error-invalid-type")
    rooms = sorted(
        (
            r
            for r in state.rooms.values()
            if r["t"] == "c"
            and text in (r.get("name") or "").lower()
            and (kind == "channels" or r.get("teamMain"))
        ),
        key=lambda r: r.get("name", ""),
    )
    return listing(call, "result", rooms, views.room_rest)


@endpoint("GET", "spotlight")
def spotlight(call: Call) -> dict[str, Any]:
    query = call.query.get("query")
    if query is None:
        raise invalid_params("must have required property 'query'")
    needle = query.lstrip("@#").lower()
    state = call.sim.state
    users = [
        {
            "_id": u["_id"],
            "username": u["username"],
            "name": u.get("name"),
            "status": u.get("status", "offline"),
        }
        for u in sorted(state.users.values(), key=lambda u: u["username"])
        if u.get("active", True)
        and (needle in u["username"].lower() or needle in (u.get("name") or "").lower())
    ][:10]
    rooms = [
        {"_id": r["_id"], "name": r["name"], "t": r["t"]}
        for r in sorted(state.rooms.values(), key=lambda r: r.get("name") or "")
        if r["t"] in ("c", "p")
        and needle in (r.get("name") or "").lower()
        and (r["t"] == "c" or (r["_id"], call.uid) in state.subscriptions)
    ][:10]
    if query.startswith("#"):
        users = []
    if query.startswith("@"):
        rooms = []
    return {"users": users, "rooms": rooms}


# ---------------------------------------------------------------- invites
def _invite_view(invite: dict[str, Any], base: str) -> dict[str, Any]:
    out = views.rest(invite)
    out["url"] = f"{base}/invite/{invite['_id']}"
    for key in ("expires",):
        if isinstance(out.get(key), int):
            out[key] = iso(out[key])
    return out


@endpoint("POST", "findOrCreateInvite")
def find_or_create_invite(call: Call) -> dict[str, Any]:
    rid = call.body.get("rid")
    days, max_uses = call.body.get("days"), call.body.get("maxUses")
    if not isinstance(rid, str) or not isinstance(days, int) or not isinstance(max_uses, int):
        raise invalid_params("must have required property 'rid'")
    room = _rid_room(call, {"roomId": rid})
    if not call.can("create-invite-links", rid):
        raise meteor_error("not_authorized", "Not authorized")
    base = call.sim.config.root_url
    for invite in call.sim.state.invites.values():
        if (
            invite["rid"] == rid
            and invite["userId"] == call.uid
            and invite["days"] == days
            and invite["maxUses"] == max_uses
        ):
            return _invite_view(invite, base)
    now = now_ms()
    invite = {
        "_id": new_id(6),
        "days": days,
        "maxUses": max_uses,
        "rid": room["_id"],
        "userId": call.uid,
        "createdAt": now,
        "_updatedAt": now,
        "uses": 0,
        "expires": now + days * 86_400_000 if days > 0 else None,
    }
    call.sim.state.invites[invite["_id"]] = invite
    call.sim.state.mark_dirty()
    return _invite_view(invite, base)


@endpoint("GET", "listInvites")
def list_invites(call: Call) -> dict[str, Any]:
    if not call.can("create-invite-links"):
        raise meteor_error("not_authorized", "Not authorized")
    base = call.sim.config.root_url
    return {"_raw": [_invite_view(i, base) for i in call.sim.state.invites.values()]}


@endpoint("DELETE", "removeInvite/{_id}")
def remove_invite(call: Call) -> dict[str, Any]:
    if not call.can("create-invite-links"):
        raise meteor_error("not_authorized", "Not authorized")
    if call.sim.state.invites.pop(call.path_params["_id"], None) is None:
        raise meteor_error("invalid-invitation-id", "Invalid Invitation _id", {"method": "removeInvite"})
    call.sim.state.mark_dirty()
    return {"_raw": True}


@endpoint("POST", "useInviteToken")
def use_invite_token(call: Call) -> dict[str, Any]:
    token = call.body.get("token")
    invite = call.sim.state.invites.get(token) if isinstance(token, str) else None
    if invite is None:
        raise meteor_error(
            "error-invalid-token", "The invite token is invalid.", {"method": "validateInviteToken"}
        )
    if invite.get("expires") and invite["expires"] < now_ms():
        raise meteor_error("error-invite-expired", "The invite token has expired.")
    if invite["maxUses"] > 0 and invite["uses"] >= invite["maxUses"]:
        raise meteor_error("error-invite-expired", "The invite token has expired.")
    room = call.sim.state.rooms.get(invite["rid"])
    if room is None:
        raise meteor_error("error-invalid-room", "The invite token is invalid.")
    invite["uses"] += 1
    if (room["_id"], call.uid) not in call.sim.state.subscriptions:
        call.ws.add_member(room, call.user)
        call.ws.system_message("uj", room, call.user, call.user["username"])
    call.sim.state.mark_dirty()
    return {
        "room": {
            "rid": room["_id"],
            "prid": room.get("prid"),
            "fname": room.get("fname"),
            "name": room.get("name"),
            "t": room["t"],
        }
    }
