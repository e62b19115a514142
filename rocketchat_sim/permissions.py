"""Rocket.Chat's built-in roles and the default grants of the permissions this project touches.

Source: apps/meteor/app/authorization/server/functions/upsertPermissions.ts (see facts.md §2).
"""

from __future__ import annotations

# (id, scope, description, protected)
DEFAULT_ROLES: list[tuple[str, str, str]] = [
    ("admin", "Users", "Admin"),
    ("moderator", "Subscriptions", "Moderator"),
    ("leader", "Subscriptions", "Leader"),
    ("owner", "Subscriptions", "Owner"),
    ("user", "Users", ""),
    ("bot", "Users", ""),
    ("app", "Users", ""),
    ("guest", "Users", ""),
    ("anonymous", "Users", ""),
    ("livechat-agent", "Livechat", "Livechat Agent"),
    ("livechat-manager", "Livechat", "Livechat Manager"),
]

_A = ["admin"]
DEFAULT_PERMISSIONS: dict[str, list[str]] = {
    "access-permissions": _A,
    "add-user-to-any-c-room": _A,
    "add-user-to-any-p-room": [],
    "add-user-to-joined-room": ["admin", "owner", "moderator"],
    "api-bypass-rate-limit": ["admin", "bot", "app"],
    "assign-admin-role": _A,
    "assign-roles": _A,
    "create-c": ["admin", "user", "bot", "app"],
    "create-d": ["admin", "user", "bot", "app"],
    "create-p": ["admin", "user", "bot", "app"],
    "create-personal-access-tokens": ["admin", "user"],
    "create-user": _A,
    "delete-message": ["admin", "owner", "moderator"],
    "delete-own-message": ["admin", "user", "bot", "app"],
    "delete-user": _A,
    "edit-message": ["admin", "owner", "moderator"],
    "edit-other-user-active-status": _A,
    "edit-other-user-info": _A,
    "edit-other-user-password": _A,
    "edit-privileged-setting": _A,
    "edit-room": ["admin", "owner", "moderator"],
    "manage-incoming-integrations": _A,
    "manage-outgoing-integrations": _A,
    "manage-own-incoming-integrations": _A,
    "manage-own-outgoing-integrations": _A,
    "message-impersonate": ["bot", "app"],
    "remove-user": ["admin", "owner", "moderator"],
    "send-many-messages": ["admin", "bot", "app"],
    "user-generate-access-token": _A,
    "view-c-room": ["admin", "user", "bot", "app", "anonymous"],
    "view-d-room": ["admin", "user", "bot", "app", "guest"],
    "view-full-other-user-info": _A,
    "view-joined-room": ["guest", "bot", "app", "anonymous"],
    "view-other-user-channels": ["admin"],
    "view-privileged-setting": _A,
    "view-room-administration": _A,
    "view-statistics": _A,
    "view-user-administration": _A,
}

# Roles whose scope is a room: granted through the subscription, checked with the room.
ROOM_ROLES = {"owner", "moderator", "leader"}
