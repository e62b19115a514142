"""One handler family for channels.* (t c), groups.* (t p) and dm.*/im.* (t d), as Rocket.Chat shares it.

Each operation is written once against a room kind; `_register` mounts it under every prefix that
Rocket.Chat documents for it. Changes that Rocket.Chat records in the room post the same system
messages (`ul`, `r`, `room_changed_*`, `subscription-role-*`, `room-archived`, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import views
from ..errors import failure, invalid_params, meteor_error
from ..util import iso, now_ms
from ..workspace import room_type_error
from .base import Call, endpoint, listing, paginate, query_json
from .rooms import _room_param

PREFIXES = {"c": ("channels",), "p": ("groups",), "d": ("im", "dm")}
RESULT_KEY = {"c": "channel", "p": "group", "d": "room"}
_KIND_NAMES = {"c": "channel", "p": "group", "d": "direct message"}


def _register(
    methods: str, op: str, kinds: str, *, auth_required: bool = True
) -> Callable[[Callable[[Call, str], dict[str, Any]]], Callable[[Call, str], dict[str, Any]]]:
    """Mount `handler(call, kind)` as <prefix>.<op> for each kind in `kinds`."""

    def wrap(handler: Callable[[Call, str], dict[str, Any]]) -> Callable[[Call, str], dict[str, Any]]:
        for kind in kinds:
            paths = [f"{prefix}.{op}" for prefix in PREFIXES[kind]]

            def bound(call: Call, _kind: str = kind) -> dict[str, Any]:
                return handler(call, _kind)

            endpoint(methods, *paths, auth_required=auth_required)(bound)
        return handler

    return wrap


def resolve(call: Call, params: dict[str, Any], kind: str) -> dict[str, Any]:
    """roomId/roomName (channels, groups) or roomId/username (dm) → the room, visible to the caller."""
    if kind != "d":
        return _room_param(call, params, kind)
    rid = params.get("roomId")
    room = None
    if rid:
        room = call.sim.state.rooms.get(str(rid))
    elif params.get("username"):
        other = call.ws.user_by_username(str(params["username"]))
        if other is not None:
            room = call.sim.state.rooms.get("".join(sorted({other["_id"], call.uid})))
    else:
        raise meteor_error("error-room-param-not-provided", 'Body param "roomId" or "username" is required')
    if room is None or room["t"] != "d" or (room["_id"], call.uid) not in call.sim.state.subscriptions:
        raise meteor_error(
            "error-room-not-found", 'The required "roomId" param provided does not match any direct message'
        )
    return room


def _user_param(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    uid = params.get("userId")
    user = call.sim.state.users.get(uid) if isinstance(uid, str) else None
    if user is None and isinstance(params.get("username"), str):
        user = call.ws.user_by_username(params["username"])
    if user is None:
        raise meteor_error("error-invalid-user", "Invalid user")
    return user


def _room_result(room: dict[str, Any], kind: str) -> dict[str, Any]:
    return {RESULT_KEY[kind]: views.room_rest(room)}


def _require_edit(call: Call, room: dict[str, Any]) -> None:
    if not call.can("edit-room", room["_id"]):
        raise meteor_error(
            "error-action-not-allowed",
            "Editing room is not allowed",
            {"method": "saveRoomSettings", "action": "Editing_room"},
        )


def _touch(call: Call, room: dict[str, Any]) -> None:
    room["_updatedAt"] = now_ms()
    call.sim.state.mark_dirty()
    if call.sim.realtime is not None:
        call.sim.realtime.room_updated(room)


def owners(call: Call, room: dict[str, Any]) -> list[str]:
    subs = call.sim.state.subscriptions
    return [
        uid
        for uid in call.sim.state.room_members.get(room["_id"], ())
        if "owner" in subs[(room["_id"], uid)].get("roles", [])
    ]


# ---------------------------------------------------------------- leave, rename, archive, delete
def leave_room(call: Call, room: dict[str, Any], user: dict[str, Any]) -> None:
    """leaveRoom: the last owner of a room with other members must hand over first; posts `ul`."""
    sub = call.sim.state.subscriptions.get((room["_id"], user["_id"]))
    if sub is None:
        raise meteor_error("error-user-not-in-room", "You are not in this room", {"method": "leaveRoom"})
    if (
        "owner" in sub.get("roles", [])
        and owners(call, room) == [user["_id"]]
        and room.get("usersCount", 0) > 1
    ):
        raise meteor_error(
            "error-you-are-last-owner",
            "You are the last owner. Please set new owner before leaving the room.",
            {"method": "leaveRoom"},
        )
    if room["t"] != "d":
        call.ws.system_message("ul", room, user, user["username"])
    call.ws.remove_member(room, user)


@_register("POST", "leave", "cp")
def room_leave(call: Call, kind: str) -> dict[str, Any]:
    room = resolve(call, call.body, kind)
    leave_room(call, room, call.user)
    return _room_result(room, kind)


def rename_room(call: Call, room: dict[str, Any], name: str) -> None:
    _require_edit(call, room)
    if not call.ws.validate_room_name(name):
        raise meteor_error(
            "error-invalid-room-name", f"{name} is not a valid room name", {"channel_name": name}
        )
    if room.get("name") == name:
        return
    if name in call.sim.state.rooms_by_name:
        raise meteor_error(
            "error-duplicate-channel-name", f"A channel with name '{name}' exists", {"channel_name": name}
        )
    call.sim.state.rooms_by_name.pop(room.get("name", ""), None)
    room["name"] = room["fname"] = name
    call.sim.state.index_room(room)
    for uid in call.sim.state.room_members.get(room["_id"], ()):
        sub = call.sim.state.subscriptions[(room["_id"], uid)]
        sub["name"] = sub["fname"] = name
    call.ws.system_message("r", room, call.user, name)
    _touch(call, room)


@_register("POST", "rename", "cp")
def room_rename(call: Call, kind: str) -> dict[str, Any]:
    name = call.body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise failure('The bodyParam "name" is required')
    room = resolve(call, call.body, kind)
    rename_room(call, room, name.strip())
    return _room_result(room, kind)


def set_archived(call: Call, room: dict[str, Any], archived: bool) -> None:
    permission = "archive-room" if archived else "unarchive-room"
    if not call.can(permission, room["_id"]):
        raise meteor_error(
            "error-not-authorized", "Not authorized", {"method": f"{'un' if not archived else ''}archiveRoom"}
        )
    if bool(room.get("archived")) == archived:
        state = "archived" if archived else "not archived"
        raise failure(f"The {_KIND_NAMES[room['t']]}, {room.get('name')}, is already {state}")
    room["archived"] = archived
    for uid in call.sim.state.room_members.get(room["_id"], ()):
        sub = call.sim.state.subscriptions[(room["_id"], uid)]
        sub["archived"] = archived
        sub["open"] = not archived
    call.ws.system_message(
        "room-archived" if archived else "room-unarchived", room, call.user, call.user["username"]
    )
    _touch(call, room)


@_register("POST", "archive", "cp")
def room_archive(call: Call, kind: str) -> dict[str, Any]:
    set_archived(call, resolve(call, call.body, kind), True)
    return {}


@_register("POST", "unarchive", "cp")
def room_unarchive(call: Call, kind: str) -> dict[str, Any]:
    set_archived(call, resolve(call, call.body, kind), False)
    return {}


def delete_room(call: Call, room: dict[str, Any]) -> None:
    permission = {"c": "delete-c", "p": "delete-p", "d": "delete-d"}[room["t"]]
    if not call.can(permission, room["_id"]):
        raise meteor_error("error-not-allowed", "Not allowed", {"method": "eraseRoom"})
    state = call.sim.state
    for uid in list(state.room_members.get(room["_id"], ())):
        user = state.users.get(uid)
        if user is not None:
            call.ws.remove_member(room, user)
    for msg in state.messages.pop(room["_id"], []):
        state.message_index.pop(msg["_id"], None)
    state.rooms_by_name.pop(room.get("name", ""), None)
    state.rooms.pop(room["_id"], None)
    state.room_members.pop(room["_id"], None)
    state.mark_dirty()


@_register("POST", "delete", "cpd")
def room_delete(call: Call, kind: str) -> dict[str, Any]:
    room = resolve(call, call.body, kind)
    delete_room(call, room)
    return {}


# ---------------------------------------------------------------- room roles
_ROLE_OPS = {
    "Owner": ("owner", "set-owner"),
    "Moderator": ("moderator", "set-moderator"),
    "Leader": ("leader", "set-leader"),
}


def set_room_role(call: Call, room: dict[str, Any], user: dict[str, Any], role: str, add: bool) -> None:
    permission = _ROLE_OPS[role.capitalize()][1]
    method = f"{'add' if add else 'remove'}Room{role.capitalize()}"
    if not call.can(permission, room["_id"]):
        raise meteor_error("error-not-allowed", "Not allowed", {"method": method})
    sub = call.sim.state.subscriptions.get((room["_id"], user["_id"]))
    if sub is None:
        raise meteor_error("error-user-not-in-room", "User is not in this room", {"method": method})
    roles = sub.setdefault("roles", [])
    if add and role in roles:
        raise meteor_error(f"error-user-already-{role}", f"User is already an {role}", {"method": method})
    if not add and role not in roles:
        raise meteor_error(f"error-user-not-{role}", f"User is not an {role}", {"method": method})
    if not add and role == "owner" and owners(call, room) == [user["_id"]]:
        raise meteor_error(
            "error-remove-last-owner",
            "This is the last owner. Please set a new owner before removing this one.",
            {"method": method},
        )
    if add:
        roles.append(role)
    else:
        roles.remove(role)
    sub["_updatedAt"] = now_ms()
    call.ws.system_message(
        "subscription-role-added" if add else "subscription-role-removed",
        room,
        call.user,
        user["username"],
        role=role,
    )


def _role_handler(role: str, add: bool) -> Callable[[Call, str], dict[str, Any]]:
    def handler(call: Call, kind: str) -> dict[str, Any]:
        room = resolve(call, call.body, kind)
        set_room_role(call, room, _user_param(call, call.body), role, add)
        return {}

    return handler


for _title, (_role, _perm) in _ROLE_OPS.items():
    _register("POST", f"add{_title}", "cp")(_role_handler(_role, True))
    _register("POST", f"remove{_title}", "cp")(_role_handler(_role, False))


def room_roles(call: Call, room: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for uid in sorted(call.sim.state.room_members.get(room["_id"], ())):
        sub = call.sim.state.subscriptions[(room["_id"], uid)]
        if sub.get("roles"):
            out.append({"_id": sub["_id"], "rid": room["_id"], "u": sub["u"], "roles": sub["roles"]})
    return out


@_register("GET", "roles", "cp")
def room_roles_get(call: Call, kind: str) -> dict[str, Any]:
    return {"roles": room_roles(call, resolve(call, call.query, kind))}


@_register("GET", "moderators", "cp")
def room_moderators(call: Call, kind: str) -> dict[str, Any]:
    room = resolve(call, call.query, kind)
    mods = [
        {"_id": r["u"]["_id"], "username": r["u"]["username"], "name": r["u"].get("name")}
        for r in room_roles(call, room)
        if "moderator" in r["roles"]
    ]
    return {"moderators": mods}


# ---------------------------------------------------------------- room settings
def save_setting(call: Call, room: dict[str, Any], key: str, value: Any) -> None:
    """saveRoomSettings for one key, with its system message where Rocket.Chat posts one."""
    _require_edit(call, room)
    room[key] = value
    system = {
        "topic": "room_changed_topic",
        "description": "room_changed_description",
        "announcement": "room_changed_announcement",
    }.get(key)
    if system:
        call.ws.system_message(system, room, call.user, value or "")
    _touch(call, room)


def _text_setting(body_key: str, room_key: str) -> Callable[[Call, str], dict[str, Any]]:
    def handler(call: Call, kind: str) -> dict[str, Any]:
        value = call.body.get(body_key)
        if not isinstance(value, str):
            raise failure(f'The bodyParam "{body_key}" is required')
        room = resolve(call, call.body, kind)
        save_setting(call, room, room_key, value)
        return {body_key: value}

    return handler


_register("POST", "setDescription", "cp")(_text_setting("description", "description"))
_register("POST", "setPurpose", "cp")(_text_setting("purpose", "description"))  # purpose is the description
_register("POST", "setAnnouncement", "cp")(_text_setting("announcement", "announcement"))
_register("POST", "setTopic", "d")(_text_setting("topic", "topic"))


@_register("POST", "setCustomFields", "cp")
def room_set_custom_fields(call: Call, kind: str) -> dict[str, Any]:
    fields = call.body.get("customFields")
    if not isinstance(fields, dict):
        raise failure('The bodyParam "customFields" is required with a type like object.')
    room = resolve(call, call.body, kind)
    save_setting(call, room, "customFields", fields)
    return _room_result(room, kind)


@endpoint("POST", "channels.setJoinCode")
def channels_set_join_code(call: Call) -> dict[str, Any]:
    code = call.body.get("joinCode")
    if not isinstance(code, str) or not code:
        raise failure('The bodyParam "joinCode" is required')
    room = resolve(call, call.body, "c")
    _require_edit(call, room)
    room["joinCodeRequired"] = True
    room["joinCode"] = code
    _touch(call, room)
    view = views.room_rest(room)
    view.pop("joinCode", None)
    return {"channel": view}


def set_type(call: Call, room: dict[str, Any], new_type: str) -> None:
    if new_type not in ("c", "p"):
        raise meteor_error(
            "error-invalid-room-type", f"{new_type} is not a valid room type", {"room_type": new_type}
        )
    _require_edit(call, room)
    if not call.can("create-c" if new_type == "c" else "create-p"):
        raise meteor_error(
            "error-action-not-allowed", "Changing a private group to a public channel is not allowed"
        )
    room["t"] = new_type
    for uid in call.sim.state.room_members.get(room["_id"], ()):
        call.sim.state.subscriptions[(room["_id"], uid)]["t"] = new_type
    call.ws.system_message(
        "room_changed_privacy", room, call.user, "public" if new_type == "c" else "private"
    )
    _touch(call, room)


@_register("POST", "setType", "cp")
def room_set_type(call: Call, kind: str) -> dict[str, Any]:
    new_type = call.body.get("type")
    if not isinstance(new_type, str) or not new_type:
        raise failure('The bodyParam "type" is required')
    room = resolve(call, call.body, kind)
    if room["t"] == new_type:
        raise failure(f"The {_KIND_NAMES[kind]} type is the same as what it would be changed to.")
    set_type(call, room, new_type)
    return {RESULT_KEY[new_type]: views.room_rest(room)}


# ---------------------------------------------------------------- open, close, counters, members
def set_open(call: Call, room: dict[str, Any], is_open: bool) -> None:
    sub = call.sim.state.subscriptions.get((room["_id"], call.uid))
    if sub is None:
        raise failure(
            f'The user/callee is not in the {_KIND_NAMES[room["t"]]} "{room.get("name", room["_id"])}"'
        )
    if bool(sub.get("open")) == is_open:
        state = "open" if is_open else "closed"
        raise failure(
            f"The {_KIND_NAMES[room['t']]}, {room.get('name', room['_id'])}, is already {state} to the sender"
        )
    sub["open"] = is_open
    sub["_updatedAt"] = now_ms()
    call.sim.state.mark_dirty()


@_register("POST", "open", "cpd")
def room_open(call: Call, kind: str) -> dict[str, Any]:
    set_open(call, resolve(call, call.body, kind), True)
    return {}


@_register("POST", "close", "cpd")
def room_close(call: Call, kind: str) -> dict[str, Any]:
    set_open(call, resolve(call, call.body, kind), False)
    return {}


def counters(call: Call, room: dict[str, Any], uid: str) -> dict[str, Any]:
    sub = call.sim.state.subscriptions.get((room["_id"], uid))
    msgs = call.sim.state.messages.get(room["_id"], [])
    latest = msgs[-1]["ts"] if msgs else room["ts"]
    since = sub.get("ls", sub["ts"]) if sub else None
    unreads = sum(1 for m in msgs if since is not None and m["ts"] > since and m["u"]["_id"] != uid)
    return {
        "joined": sub is not None,
        "members": room.get("usersCount", 0),
        "unreads": unreads if sub else None,
        "unreadsFrom": iso(since) if since else None,
        "msgs": room.get("msgs", 0),
        "latest": iso(latest),
        "userMentions": sub.get("userMentions", 0) if sub else 0,
    }


@_register("GET", "counters", "cpd")
def room_counters(call: Call, kind: str) -> dict[str, Any]:
    room = resolve(call, call.query, kind)
    uid = call.query.get("userId") or call.uid
    if uid != call.uid and not call.can("view-room-administration"):
        raise meteor_error("error-not-allowed", "Not allowed")
    return counters(call, room, uid)


@_register("GET", "members", "d")
def dm_members(call: Call, kind: str) -> dict[str, Any]:
    room = resolve(call, call.query, kind)
    users = [
        call.sim.state.users[u]
        for u in sorted(call.sim.state.room_members.get(room["_id"], ()))
        if u in call.sim.state.users
    ]
    page, offset, count = paginate(call, users)
    members = [
        {
            "_id": u["_id"],
            "username": u["username"],
            "name": u.get("name"),
            "status": u.get("status", "offline"),
        }
        for u in page
    ]
    return {"members": members, "count": count, "offset": offset, "total": len(users)}


@_register("GET", "online", "cp")
def room_online(call: Call, kind: str) -> dict[str, Any]:
    query = query_json(call, "query")
    ref = {
        "roomId": query.get("_id") or call.query.get("_id") or call.query.get("roomId"),
        "roomName": call.query.get("roomName"),
    }
    room = resolve(call, ref, kind)
    online = [
        {"_id": uid, "username": call.sim.state.users[uid]["username"]}
        for uid in sorted(call.sim.state.room_members.get(room["_id"], ()))
        if uid in call.sim.state.users and call.sim.realtime.is_online(uid)
    ]
    return {"online": online}


@_register("POST", "addAll", "cp")
def room_add_all(call: Call, kind: str) -> dict[str, Any]:
    room = resolve(call, call.body, kind)
    if not call.can("add-all-to-room"):
        raise meteor_error("error-not-allowed", "Not allowed", {"method": "addAllToRoom"})
    for user in list(call.sim.state.users.values()):
        if user.get("active", True) and (room["_id"], user["_id"]) not in call.sim.state.subscriptions:
            call.ws.add_member(room, user)
            call.ws.system_message("au", room, call.user, user["username"])
    return _room_result(room, kind)


@_register("GET", "getIntegrations", "cp")
def room_integrations(call: Call, kind: str) -> dict[str, Any]:
    room = resolve(call, call.query, kind)
    if not call.ws.has_any_permission(
        call.uid, ["manage-incoming-integrations", "manage-outgoing-integrations"]
    ):
        raise meteor_error("error-not-authorized", "Not authorized")
    names = {
        f"#{room.get('name')}",
        f"#{room['_id']}",
        "all_public_channels" if kind == "c" else "all_private_groups",
    }
    found = [
        views.rest({k: v for k, v in i.items() if k != "token"} | {"token": i.get("token")})
        for i in call.sim.state.integrations.values()
        if not names.isdisjoint(i.get("channel") or [])
    ]
    return listing(call, "integrations", found, lambda d: d)


# ---------------------------------------------------------------- messages
def message_query(call: Call, room: dict[str, Any]) -> list[dict[str, Any]]:
    query = query_json(call, "query")
    msgs = list(reversed(call.sim.state.messages.get(room["_id"], [])))
    if "mentionIds" in call.query:
        msgs = [
            m for m in msgs if any(x.get("_id") == call.query["mentionIds"] for x in m.get("mentions", []))
        ]
    if call.query.get("starredIds"):
        msgs = [
            m for m in msgs if any(s.get("_id") == call.query["starredIds"] for s in m.get("starred", []))
        ]
    if call.query.get("pinned") == "true":
        msgs = [m for m in msgs if m.get("pinned")]
    for key, value in query.items():
        if not isinstance(value, dict):
            msgs = [m for m in msgs if m.get(key) == value]
    return msgs


def _messages(call: Call, kind: str) -> dict[str, Any]:
    room = resolve(call, call.query, kind)
    return listing(call, "messages", message_query(call, room), views.message_rest)


_register("GET", "messages", "cpd")(_messages)


@_register("GET", "messages.others", "d")
def dm_messages_others(call: Call, kind: str) -> dict[str, Any]:
    if not call.sim.workspace.settings.get("API_Enable_Direct_Message_History_EndPoint"):
        raise meteor_error(
            "error-endpoint-disabled", "This endpoint is disabled", {"route": "/api/v1/im.messages.others"}
        )
    if not call.can("view-room-administration"):
        raise meteor_error("error-not-allowed", "Not allowed")
    rid = call.query.get("roomId")
    room = call.sim.state.rooms.get(rid or "")
    if room is None or room["t"] != "d":
        raise meteor_error("error-room-not-found", f"No direct message room found by the id of: {rid}")
    return listing(call, "messages", message_query(call, room), views.message_rest)


@endpoint("GET", "channels.getAllUserMentionsByChannel")
def channels_mentions(call: Call) -> dict[str, Any]:
    room = resolve(call, call.query, "c")
    mentions = [
        m
        for m in reversed(call.sim.state.messages.get(room["_id"], []))
        if any(x.get("_id") == call.uid for x in m.get("mentions", []))
    ]
    return listing(call, "mentions", mentions, views.message_rest)


@endpoint("GET", "channels.anonymousread", auth_required=False)
def channels_anonymousread(call: Call) -> dict[str, Any]:
    if not call.ws.settings.get("Accounts_AllowAnonymousRead"):
        raise failure('Enable "Allow Anonymous Read" [error-not-allowed]', "error-not-allowed")
    ref = call.query.get("roomId") or call.query.get("roomName") or ""
    room = call.ws.room_by_name_or_id(ref)
    if room is None or room["t"] != "c":
        raise room_type_error("channel")
    return listing(
        call, "messages", list(reversed(call.sim.state.messages.get(room["_id"], []))), views.message_rest
    )


@endpoint("GET", "groups.listAll")
def groups_list_all(call: Call) -> dict[str, Any]:
    if not call.can("view-room-administration"):
        raise failure("unauthorized")
    rooms = sorted(
        (r for r in call.sim.state.rooms.values() if r["t"] == "p"), key=lambda r: r.get("name", "")
    )
    return listing(call, "groups", rooms, views.room_rest)


@endpoint("GET", "dm.list.everyone", "im.list.everyone")
def dm_list_everyone(call: Call) -> dict[str, Any]:
    if not call.can("view-room-administration"):
        raise failure("unauthorized")
    rooms = sorted((r for r in call.sim.state.rooms.values() if r["t"] == "d"), key=lambda r: r["_id"])
    return listing(call, "ims", rooms, views.room_rest)


@endpoint("POST", "im.blockUser")
def im_block_user(call: Call) -> dict[str, Any]:
    rid = call.body.get("rid")
    blocked = call.body.get("blocked")
    if not isinstance(rid, str) or not isinstance(blocked, str):
        raise invalid_params("must have required property 'rid'")
    sub = call.sim.state.subscriptions.get((rid, call.uid))
    if sub is None or call.sim.state.rooms[rid]["t"] != "d":
        raise meteor_error("error-invalid-room", "Invalid room", {"method": "blockUser"})
    sub["blocker"] = True
    other = call.sim.state.subscriptions.get((rid, blocked))
    if other is not None:
        other["blocked"] = True
    call.sim.state.mark_dirty()
    return {}
