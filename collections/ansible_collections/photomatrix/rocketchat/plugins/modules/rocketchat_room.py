#!/usr/bin/python
"""Ansible module: public channels and private groups of Rocket.Chat, with topic and members."""

from __future__ import annotations

DOCUMENTATION = r"""
module: rocketchat_room
short_description: Manage Rocket.Chat channels and private groups idempotently
version_added: "1.0.0"
description:
  - Finds the room with C(channels.info) or C(groups.info) by name, creates it with C(channels.create) or
    C(groups.create), and brings topic, read-only flag, default flag and members in line with
    C(setTopic), C(setReadOnly), C(channels.setDefault) and C(invite). Only what differs is written.
  - Members are added, never removed, unless O(members_exclusive=true).
  - Whether a wanted member is in the room is read from C(users.info?includeUserRooms=true) (needs
    C(view-other-user-channels), which admins have); the full member list (C(members)) is read only with
    O(members_exclusive=true).
  - The module does not convert a channel into a group or back; it fails and says so.
author: Photomatrix
extends_documentation_fragment:
  - photomatrix.rocketchat.connection
options:
  name:
    description: Room name without C(#).
    type: str
    required: true
  type:
    description: V(channel) is a public channel, V(group) a private group.
    type: str
    choices: [channel, group]
    default: channel
  state:
    description: V(present) creates or updates the room, V(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
  topic:
    description: Room topic. Left alone when not given; V("") clears it.
    type: str
  read_only:
    description: Whether only users with the C(post-readonly) permission may post. Left alone when not given.
    type: bool
  default:
    description: Whether new users join this channel automatically (channels only). Left alone when not given.
    type: bool
  members:
    description: User names that must be members.
    type: list
    elements: str
    default: []
  members_exclusive:
    description: Remove members not in O(members) (the room's owner and the authenticated user are kept).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
"""

EXAMPLES = r"""
- name: Support channel
  photomatrix.rocketchat.rocketchat_room:
    server_url: https://chat.example.com
    auth_username: admin
    auth_password: "{{ vault_rocketchat_admin_password }}"
    name: support
    topic: Questions about the ERP
    members: [erp-bot]

- name: Admins only
  photomatrix.rocketchat.rocketchat_room:
    server_url: https://chat.example.com
    auth_username: admin
    auth_password: "{{ vault_rocketchat_admin_password }}"
    name: admins
    type: group
    members: [admin, erp-bot]
"""

RETURN = r"""
room_id:
  description: The room's id (empty when absent, or when it would be created in check mode).
  returned: always
  type: str
changed_fields:
  description: What was (or would be) changed; C(members) means members were added or removed.
  returned: always
  type: list
  elements: str
added_members:
  description: User names added (or that would be added).
  returned: always
  type: list
  elements: str
removed_members:
  description: User names removed (or that would be removed).
  returned: always
  type: list
  elements: str
"""

from typing import Any

from ansible_collections.photomatrix.rocketchat.plugins.module_utils.client import (
    RocketChatClient,
    RocketChatError,
)
from ansible_collections.photomatrix.rocketchat.plugins.module_utils.common import new_module, session

PREFIX = {"channel": "channels", "group": "groups"}
KEY = {"channel": "channel", "group": "group"}
PAGE = 100  # Rocket.Chat's default API_Upper_Count_Limit


def room_view(room: dict[str, Any] | None, members: list[str]) -> dict[str, Any]:
    if not room:
        return {}
    return {
        "name": room.get("name"),
        "type": "group" if room.get("t") == "p" else "channel",
        "topic": room.get("topic") or "",
        "read_only": bool(room.get("ro", False)),
        "default": bool(room.get("default", False)),
        "members": sorted(members),
    }


def plan_room(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """Scalar room fields of ``wanted`` (None = leave alone) that differ from ``current``."""
    changes = {}
    for field in ("topic", "read_only", "default"):
        if wanted.get(field) is not None and wanted[field] != current.get(field):
            changes[field] = wanted[field]
    return changes


def plan_members(
    current: list[str], wanted: list[str], exclusive: bool, keep: set[str]
) -> tuple[list[str], list[str]]:
    """(user names to add, user names to remove)."""
    add = sorted(set(wanted) - set(current))
    remove = sorted(set(current) - set(wanted) - keep) if exclusive else []
    return add, remove


def find_room(client: RocketChatClient, name: str, room_type: str) -> dict[str, Any] | None:
    try:
        return client.get(f"{PREFIX[room_type]}.info", {"roomName": name}).get(KEY[room_type])
    except RocketChatError as exc:
        if exc.status == 400 and (
            exc.error_type == "error-room-not-found" or "not found" in str(exc).lower()
        ):
            return None
        raise


def room_members(client: RocketChatClient, room_id: str, room_type: str) -> list[str]:
    """Every member's user name (``<prefix>.members``, paged)."""
    names: list[str] = []
    offset = 0
    while True:
        page = client.get(
            f"{PREFIX[room_type]}.members", {"roomId": room_id, "offset": offset, "count": PAGE}
        )
        members = page.get("members") or []
        names.extend(member["username"] for member in members if member.get("username"))
        offset += len(members)
        if not members or offset >= int(page.get("total", offset)):
            return names


def members_among(
    client: RocketChatClient, room_id: str | None, usernames: list[str], missing: list[str] | None = None
) -> tuple[list[str], dict]:
    """(which of ``usernames`` are in the room, their user ids), from each user's own room list.

    ``users.info?includeUserRooms=true`` (needs ``view-other-user-channels``) answers "is X a member" exactly
    without listing rooms of thousands; it also finds unknown user names before anything is written.
    Unknown names fail, unless ``missing`` collects them (check mode: an earlier task may create them).
    """
    present, ids = [], {}
    for username in sorted(set(usernames)):
        try:
            user = client.get("users.info", {"username": username, "includeUserRooms": True}).get("user")
        except RocketChatError as exc:
            if exc.status == 400 and "not found" in str(exc).lower():
                user = None
            else:
                raise
        if not user:
            if missing is None:
                raise RocketChatError(f"member {username!r} does not exist in Rocket.Chat")
            missing.append(username)
            continue
        ids[username] = user["_id"]
        if room_id and any(room.get("rid") == room_id for room in user.get("rooms") or []):
            present.append(username)
    return present, ids


def user_id_of(client: RocketChatClient, username: str) -> str:
    user = client.user_by_username(username)
    if not user:
        raise RocketChatError(f"member {username!r} does not exist in Rocket.Chat")
    return user["_id"]


def main() -> None:
    module = new_module(
        {
            "name": {"type": "str", "required": True},
            "type": {"type": "str", "choices": ["channel", "group"], "default": "channel"},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "topic": {"type": "str"},
            "read_only": {"type": "bool"},
            "default": {"type": "bool"},
            "members": {"type": "list", "elements": "str", "default": []},
            "members_exclusive": {"type": "bool", "default": False},
        }
    )
    params = module.params
    name, room_type = params["name"].lstrip("#"), params["type"]
    prefix = PREFIX[room_type]
    if room_type == "group" and params["default"] is not None:
        module.fail_json(msg="default applies to public channels only")
    result: dict[str, Any] = {
        "changed": False,
        "room_id": "",
        "changed_fields": [],
        "added_members": [],
        "removed_members": [],
    }
    with session(module) as client:
        room = find_room(client, name, room_type)
        if room is None:
            other = "group" if room_type == "channel" else "channel"
            if find_room(client, name, other) is not None:
                module.fail_json(
                    msg=f"room {name!r} exists as a {other}, not a {room_type}; change its type by hand"
                )
        exclusive = params["members_exclusive"]
        unknown: list[str] | None = [] if module.check_mode else None
        if room and exclusive:
            members = room_members(client, room["_id"], room_type)
            _, user_ids = members_among(client, None, params["members"], unknown)
        else:
            # Additive: only the wanted members matter; the diff shows those of them already in the room.
            members, user_ids = members_among(client, room and room["_id"], params["members"], unknown)
        for username in unknown or []:
            module.warn(
                f"member {username!r} does not exist (yet): a real run fails unless an earlier task makes it"
            )
        before = room_view(room, members)

        if params["state"] == "absent":
            if room:
                result.update(changed=True, changed_fields=["state"], room_id=room["_id"])
                if not module.check_mode:
                    client.post(f"{prefix}.delete", {"roomId": room["_id"]})
            if module._diff:
                result["diff"] = {"before": before, "after": {}}
            module.exit_json(**result)

        if room is None:
            changes = {k: params[k] for k in ("topic", "default") if params[k] not in (None, "", False)}
            add, remove = sorted(set(params["members"])), []
            result["changed_fields"] = ["state", *sorted(changes)]
            after = {
                "name": name,
                "type": room_type,
                "topic": params["topic"] or "",
                "read_only": bool(params["read_only"]),
                "default": bool(params["default"]),
                "members": sorted({*add, client.username_hint} - {None}),
            }
            if not module.check_mode:
                created = client.post(
                    f"{prefix}.create", {"name": name, "members": add, "readOnly": bool(params["read_only"])}
                )[KEY[room_type]]
                result["room_id"] = created["_id"]
                write_fields(client, prefix, created["_id"], changes)
        else:
            result["room_id"] = room["_id"]
            changes = plan_room(before, params)
            keep = (
                {(room.get("u") or {}).get("username"), client.username_hint} - {None} if exclusive else set()
            )
            add, remove = plan_members(members, params["members"], params["members_exclusive"], keep)
            result["changed_fields"] = sorted(changes) + (["members"] if add or remove else [])
            after = {**before, **changes, "members": sorted((set(members) | set(add)) - set(remove))}
            if not module.check_mode:
                write_fields(client, prefix, room["_id"], changes)
                for username in add:
                    client.post(f"{prefix}.invite", {"roomId": room["_id"], "userId": user_ids[username]})
                for username in remove:
                    client.post(
                        f"{prefix}.kick", {"roomId": room["_id"], "userId": user_id_of(client, username)}
                    )
        result.update(changed=bool(result["changed_fields"]), added_members=add, removed_members=remove)
        if module._diff:
            result["diff"] = {"before": before, "after": after}
    module.exit_json(**result)


def write_fields(client: RocketChatClient, prefix: str, room_id: str, changes: dict[str, Any]) -> None:
    if "topic" in changes:
        client.post(f"{prefix}.setTopic", {"roomId": room_id, "topic": changes["topic"]})
    if "read_only" in changes:
        client.post(f"{prefix}.setReadOnly", {"roomId": room_id, "readOnly": changes["read_only"]})
    if "default" in changes:
        client.post("channels.setDefault", {"roomId": room_id, "default": changes["default"]})


if __name__ == "__main__":
    main()
