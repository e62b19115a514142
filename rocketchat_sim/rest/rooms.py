"""channels.*, groups.*, im.* (alias dm.*), rooms.get/info and subscriptions.get."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .. import views
from ..errors import failure, invalid_params, meteor_error, unauthorized
from ..util import iso, now_ms
from ..workspace import room_type_error
from .base import Call, endpoint, listing, optional, paginate

_KIND_NAMES = {"c": "channel", "p": "group"}


def _room_param(call: Call, params: dict[str, Any], kind: str) -> dict[str, Any]:
    """Resolve roomId / roomName for a channels.* (kind c) or groups.* (kind p) call."""
    room_id, room_name = params.get("roomId"), params.get("roomName")
    if not room_id and not room_name:
        raise meteor_error(
            "error-room-param-not-provided", 'The parameter "roomId" or "roomName" is required'
        )
    room = call.sim.state.rooms.get(room_id) if room_id else call.ws.room_by_name_or_id(str(room_name))
    if room is None or room["t"] != kind:
        raise room_type_error(_KIND_NAMES[kind])
    if kind == "p" and (room["_id"], call.uid) not in call.sim.state.subscriptions:
        # private groups are invisible to non-members
        raise room_type_error(_KIND_NAMES[kind])
    return room


def _create(call: Call, kind: str) -> dict[str, Any]:
    body = call.body
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise failure('Body param "name" is required')
    members = optional(body, "members", list, [])
    if not all(isinstance(m, str) for m in members):
        raise invalid_params("/members must be array of strings")
    permission = "create-c" if kind == "c" else "create-p"
    if not call.can(permission):
        raise unauthorized()
    extra = optional(body, "extraData", dict, {}) or {}
    return call.ws.create_room(
        kind,
        name,
        call.user,
        members,
        read_only=bool(optional(body, "readOnly", bool, False)),
        exclude_self=bool(optional(body, "excludeSelf", bool, False)),
        custom_fields=optional(body, "customFields", dict),
        extra=extra,
    )


@endpoint("POST", "channels.create")
def channels_create(call: Call) -> dict[str, Any]:
    return {"channel": views.room_rest(_create(call, "c"))}


@endpoint("POST", "groups.create")
def groups_create(call: Call) -> dict[str, Any]:
    return {"group": views.room_rest(_create(call, "p"))}


@endpoint("GET", "channels.info")
def channels_info(call: Call) -> dict[str, Any]:
    return {"channel": views.room_rest(_room_param(call, call.query, "c"))}


@endpoint("GET", "groups.info")
def groups_info(call: Call) -> dict[str, Any]:
    return {"group": views.room_rest(_room_param(call, call.query, "p"))}


def _rooms_of_kind(call: Call, kind: str, *, joined_only: bool) -> list[dict[str, Any]]:
    if joined_only:
        rids = call.sim.state.user_rooms.get(call.uid, set())
        rooms = [call.sim.state.rooms[r] for r in rids if call.sim.state.rooms[r]["t"] == kind]
    else:
        rooms = [r for r in call.sim.state.rooms.values() if r["t"] == kind]
    return sorted(rooms, key=lambda r: r.get("name") or r["_id"])


@endpoint("GET", "channels.list")
def channels_list(call: Call) -> dict[str, Any]:
    if not call.ws.has_any_permission(call.uid, ["view-c-room", "view-joined-room"]):
        raise unauthorized()
    rooms = _rooms_of_kind(call, "c", joined_only=not call.can("view-c-room"))
    return listing(call, "channels", rooms, views.room_rest)


@endpoint("GET", "channels.list.joined")
def channels_list_joined(call: Call) -> dict[str, Any]:
    rooms = _rooms_of_kind(call, "c", joined_only=True)
    return listing(call, "channels", rooms, views.room_rest)


@endpoint("GET", "groups.list")
def groups_list(call: Call) -> dict[str, Any]:
    rooms = _rooms_of_kind(call, "p", joined_only=True)
    return listing(call, "groups", rooms, views.room_rest)


def _invite(call: Call, kind: str) -> dict[str, Any]:
    room = _room_param(call, call.body, kind)
    ids = call.body.get("userIds") or ([call.body["userId"]] if call.body.get("userId") else None)
    if not ids or not isinstance(ids, list):
        raise invalid_params("must have required property 'userId'")
    member = (room["_id"], call.uid) in call.sim.state.subscriptions
    any_perm = "add-user-to-any-c-room" if kind == "c" else "add-user-to-any-p-room"
    if not (call.can(any_perm) or (member and call.can("add-user-to-joined-room", room["_id"]))):
        raise meteor_error("error-not-allowed", "Not allowed", {"method": "addUsersToRoom"})
    for uid in ids:
        user = call.sim.state.users.get(uid) if isinstance(uid, str) else None
        if user is None:
            raise meteor_error("error-invalid-user", "Invalid user", {"method": "addUsersToRoom"})
        if (room["_id"], uid) in call.sim.state.subscriptions:
            continue
        call.ws.add_member(room, user)
        call.ws.send_message(call.user, room, {"msg": user["username"]}, system_type="au")
    return room


@endpoint("POST", "channels.invite")
def channels_invite(call: Call) -> dict[str, Any]:
    return {"channel": views.room_rest(_invite(call, "c"))}


@endpoint("POST", "groups.invite")
def groups_invite(call: Call) -> dict[str, Any]:
    return {"group": views.room_rest(_invite(call, "p"))}


def _kick(call: Call, kind: str) -> dict[str, Any]:
    room = _room_param(call, call.body, kind)
    user_id = call.body.get("userId")
    user = call.sim.state.users.get(user_id) if isinstance(user_id, str) else None
    if user is None:
        raise meteor_error("error-invalid-user", "Invalid user", {"method": "removeUserFromRoom"})
    if not call.can("remove-user", room["_id"]):
        raise meteor_error("error-not-allowed", "Not allowed", {"method": "removeUserFromRoom"})
    if (room["_id"], user["_id"]) not in call.sim.state.subscriptions:
        raise meteor_error(
            "error-user-not-in-room", "User is not in this room", {"method": "removeUserFromRoom"}
        )
    call.ws.send_message(call.user, room, {"msg": user["username"]}, system_type="ru")
    call.ws.remove_member(room, user)
    return room


@endpoint("POST", "channels.kick")
def channels_kick(call: Call) -> dict[str, Any]:
    return {"channel": views.room_rest(_kick(call, "c"))}


@endpoint("POST", "groups.kick")
def groups_kick(call: Call) -> dict[str, Any]:
    return {"group": views.room_rest(_kick(call, "p"))}


@endpoint("POST", "channels.join")
def channels_join(call: Call) -> dict[str, Any]:
    room = _room_param(call, call.body, "c")
    if (room["_id"], call.uid) not in call.sim.state.subscriptions:
        call.ws.add_member(room, call.user)
        call.ws.send_message(call.user, room, {"msg": call.user["username"]}, system_type="uj")
    return {"channel": views.room_rest(room)}


def _set_topic(call: Call, kind: str) -> dict[str, Any]:
    room = _room_param(call, call.body, kind)
    topic = call.body.get("topic")
    if not isinstance(topic, str):
        raise failure('The bodyParam "topic" is required')
    if not call.can("edit-room", room["_id"]):
        raise meteor_error(
            "error-action-not-allowed",
            "Editing room is not allowed",
            {"method": "saveRoomSettings", "action": "Editing_room"},
        )
    room["topic"] = topic
    call.ws.send_message(call.user, room, {"msg": topic}, system_type="room_changed_topic")
    return {"topic": topic}


@endpoint("POST", "channels.setTopic")
def channels_set_topic(call: Call) -> dict[str, Any]:
    return _set_topic(call, "c")


@endpoint("POST", "groups.setTopic")
def groups_set_topic(call: Call) -> dict[str, Any]:
    return _set_topic(call, "p")


def _members(call: Call, kind: str) -> dict[str, Any]:
    room = _room_param(call, call.query, kind)
    if kind == "c" and not call.ws.can_access_room(call.uid, room):
        raise failure("Not allowed", "error-not-allowed")
    users = [
        call.sim.state.users[uid]
        for uid in call.sim.state.room_members.get(room["_id"], ())
        if uid in call.sim.state.users
    ]
    users.sort(key=lambda u: u["username"])
    needle = (call.query.get("filter") or "").lower()
    if needle:
        users = [
            u for u in users if needle in u["username"].lower() or needle in (u.get("name") or "").lower()
        ]
    page, offset, count = paginate(call, users)
    members = [
        {
            "_id": u["_id"],
            "username": u["username"],
            "name": u.get("name"),
            "status": u.get("status", "offline"),
            "_updatedAt": iso(u["_updatedAt"]),
        }
        for u in page
    ]
    return {"members": members, "count": count, "offset": offset, "total": len(users)}


@endpoint("GET", "channels.members")
def channels_members(call: Call) -> dict[str, Any]:
    return _members(call, "c")


@endpoint("GET", "groups.members")
def groups_members(call: Call) -> dict[str, Any]:
    return _members(call, "p")


def _set_read_only(call: Call, kind: str) -> dict[str, Any]:
    room = _room_param(call, call.body, kind)
    read_only = call.body.get("readOnly")
    if not isinstance(read_only, bool):
        raise failure('The bodyParam "readOnly" is required')
    if not call.can("edit-room", room["_id"]):
        raise meteor_error(
            "error-action-not-allowed",
            "Editing room is not allowed",
            {"method": "saveRoomSettings", "action": "Editing_room"},
        )
    if room.get("ro") == read_only:
        raise failure(
            f"The {_KIND_NAMES[kind]} read only setting is the same as what it would be changed to."
        )
    room["ro"] = read_only
    room["_updatedAt"] = now_ms()
    call.sim.state.mark_dirty()
    return room


@endpoint("POST", "channels.setReadOnly")
def channels_set_read_only(call: Call) -> dict[str, Any]:
    return {"channel": views.room_rest(_set_read_only(call, "c"))}


@endpoint("POST", "groups.setReadOnly")
def groups_set_read_only(call: Call) -> dict[str, Any]:
    return {"group": views.room_rest(_set_read_only(call, "p"))}


@endpoint("POST", "channels.setDefault")
def channels_set_default(call: Call) -> dict[str, Any]:
    room = _room_param(call, call.body, "c")
    raw = call.body.get("default")
    if isinstance(raw, str) and raw.lower() in ("true", "false"):
        raw = raw.lower() == "true"
    if not isinstance(raw, bool):
        raise failure('The bodyParam "default" is required')
    if not call.can("edit-room", room["_id"]):
        raise meteor_error(
            "error-action-not-allowed",
            "Editing room is not allowed",
            {"method": "saveRoomSettings", "action": "Editing_room"},
        )
    if room.get("default", False) == raw:
        raise failure("The channel default setting is the same as what it would be changed to.")
    room["default"] = raw
    room["_updatedAt"] = now_ms()
    call.sim.state.mark_dirty()
    return {"channel": views.room_rest(room)}


# ---------------------------------------------------------------- history
def _parse_date(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        raise invalid_params(f"Invalid date {value}") from None


def _history(call: Call, room: dict[str, Any]) -> dict[str, Any]:
    latest = _parse_date(call.query.get("latest"))
    oldest = _parse_date(call.query.get("oldest"))
    inclusive = call.query.get("inclusive") == "true"
    msgs = []
    for msg in reversed(call.sim.state.messages.get(room["_id"], [])):
        ts = msg["ts"]
        if latest is not None and (ts > latest or (ts == latest and not inclusive)):
            continue
        if oldest is not None and (ts < oldest or (ts == oldest and not inclusive)):
            continue
        msgs.append(msg)
    page, _, _ = paginate(call, msgs)
    return {"messages": [views.message_rest(m) for m in page]}


def _history_room(call: Call, kind: str) -> dict[str, Any]:
    room_id = call.query.get("roomId") or call.query.get("roomName")
    if not room_id:
        raise meteor_error(
            "error-room-param-not-provided", 'The parameter "roomId" or "roomName" is required'
        )
    room = call.ws.room_by_name_or_id(room_id)
    if room is None or room["t"] != kind or not call.ws.can_access_room(call.uid, room):
        if kind == "d":
            raise meteor_error(
                "error-room-not-found",
                'The required "roomId" param provided does not match any direct message',
            )
        raise room_type_error(_KIND_NAMES[kind])
    return room


@endpoint("GET", "channels.history")
def channels_history(call: Call) -> dict[str, Any]:
    return _history(call, _history_room(call, "c"))


@endpoint("GET", "groups.history")
def groups_history(call: Call) -> dict[str, Any]:
    return _history(call, _history_room(call, "p"))


@endpoint("GET", "im.history", "dm.history")
def im_history(call: Call) -> dict[str, Any]:
    return _history(call, _history_room(call, "d"))


# ---------------------------------------------------------------- direct messages
@endpoint("POST", "im.create", "dm.create")
def im_create(call: Call) -> dict[str, Any]:
    body = call.body
    names: list[str]
    if isinstance(body.get("username"), str) and body["username"]:
        names = [body["username"]]
    elif isinstance(body.get("usernames"), str) and body["usernames"]:
        names = [n.strip() for n in body["usernames"].split(",") if n.strip()]
    else:
        raise invalid_params(
            "must have required property 'username'\n must have required property 'usernames'"
            "\n must match exactly one schema in oneOf"
        )
    if not call.can("create-d"):
        raise meteor_error("error-not-allowed", "Not allowed", {"method": "createDirectMessage"})
    users = []
    for name in names:
        user = call.ws.user_by_username(name)
        if user is None:
            raise meteor_error("error-invalid-user", "Invalid user", {"method": "createDirectMessage"})
        users.append(user)
    if not body.get("excludeSelf"):
        users.append(call.user)
    room = call.ws.direct_room(users, call.user)
    view = views.room_rest(room)
    view["rid"] = room["_id"]
    return {"room": view}


@endpoint("GET", "im.list", "dm.list")
def im_list(call: Call) -> dict[str, Any]:
    rooms = _rooms_of_kind(call, "d", joined_only=True)
    return listing(call, "ims", rooms, views.room_rest)


# ---------------------------------------------------------------- rooms & subscriptions
def _user_rooms(call: Call) -> list[dict[str, Any]]:
    rids = call.sim.state.user_rooms.get(call.uid, set())
    return [call.sim.state.rooms[r] for r in sorted(rids)]


@endpoint("GET", "rooms.get")
def rooms_get(call: Call) -> dict[str, Any]:
    since = _parse_date(call.query.get("updatedSince"))
    rooms = [r for r in _user_rooms(call) if since is None or r["_updatedAt"] > since]
    return {"update": [views.room_rest(r) for r in rooms], "remove": []}


@endpoint("GET", "rooms.info")
def rooms_info(call: Call) -> dict[str, Any]:
    room = find_room_by_id_or_name(call, call.query, checked_archived=False)
    if not call.ws.can_access_room(call.uid, room):
        raise failure("not-allowed", "Not Allowed")  # sic: Rocket.Chat passes the text as errorType
    return {"room": views.room_rest(room)}


def find_room_by_id_or_name(
    call: Call, params: dict[str, Any], *, checked_archived: bool = True
) -> dict[str, Any]:
    """findRoomByIdOrName: the errors every rooms.* route by id or name answers with."""
    room_id, room_name = (str(params.get("roomId") or "").strip(), str(params.get("roomName") or "").strip())
    if not room_id and not room_name:
        raise meteor_error(
            "error-roomid-param-not-provided", 'The parameter "roomId" or "roomName" is required'
        )
    room = call.sim.state.rooms.get(room_id) if room_id else call.ws.room_by_name_or_id(room_name)
    if room is None:
        raise meteor_error(
            "error-room-not-found",
            'The required "roomId" or "roomName" param provided does not match any room',
        )
    if checked_archived and room.get("archived"):
        raise meteor_error("error-room-archived", f"The channel, {room.get('name')}, is archived")
    return room


@endpoint("GET", "subscriptions.get")
def subscriptions_get(call: Call) -> dict[str, Any]:
    since = _parse_date(call.query.get("updatedSince"))
    subs = [
        call.sim.state.subscriptions[(rid, call.uid)]
        for rid in sorted(call.sim.state.user_rooms.get(call.uid, set()))
    ]
    subs = [s for s in subs if since is None or s["_updatedAt"] > since]
    return {"update": [views.rest(s) for s in subs], "remove": []}


@endpoint("GET", "subscriptions.getOne")
def subscriptions_get_one(call: Call) -> dict[str, Any]:
    rid = call.query.get("roomId")
    if not rid:
        raise failure('The "roomId" param is required')
    sub = call.sim.state.subscriptions.get((rid, call.uid))
    return {"subscription": views.rest(sub) if sub else None}
