"""Documents as each transport shows them: REST renders dates as ISO strings, DDP as EJSON."""

from __future__ import annotations

from typing import Any

from .util import ejson_date, iso

_DATE_KEYS = (
    "ts",
    "_updatedAt",
    "editedAt",
    "createdAt",
    "lastLogin",
    "ls",
    "lr",
    "tlm",
    "_createdAt",
    "when",
    "pinnedAt",
)
_USER_PUBLIC = (
    "_id",
    "username",
    "name",
    "type",
    "status",
    "statusConnection",
    "active",
    "utcOffset",
    "nickname",
    "bio",
    "statusText",
)


def _dates(doc: dict[str, Any], render: Any) -> dict[str, Any]:
    out = dict(doc)
    for key in _DATE_KEYS:
        value = out.get(key)
        if isinstance(value, int):
            out[key] = render(value)
    return out


def rest(doc: dict[str, Any]) -> dict[str, Any]:
    return _dates(doc, iso)


def ddp(doc: dict[str, Any]) -> dict[str, Any]:
    return _dates(doc, ejson_date)


def message_rest(msg: dict[str, Any]) -> dict[str, Any]:
    return _dates(msg, iso)


def message_ddp(msg: dict[str, Any]) -> dict[str, Any]:
    return _dates(msg, ejson_date)


def room_rest(room: dict[str, Any]) -> dict[str, Any]:
    out = _dates(room, iso)
    last = out.get("lastMessage")
    if last:
        out["lastMessage"] = message_rest(last)
    if isinstance(out.get("lm"), int):
        out["lm"] = iso(out["lm"])
    return out


def room_ddp(room: dict[str, Any]) -> dict[str, Any]:
    out = _dates(room, ejson_date)
    last = out.get("lastMessage")
    if last:
        out["lastMessage"] = message_ddp(last)
    if isinstance(out.get("lm"), int):
        out["lm"] = ejson_date(out["lm"])
    return out


def user_rest(user: dict[str, Any], *, full: bool) -> dict[str, Any]:
    """users.info / users.list view; `full` (view-full-other-user-info or self) adds emails, roles, dates."""
    out: dict[str, Any] = {k: user[k] for k in _USER_PUBLIC if k in user}
    if full:
        for key in (
            "emails",
            "roles",
            "createdAt",
            "lastLogin",
            "requirePasswordChange",
            "customFields",
            "_updatedAt",
        ):
            if key in user and user[key] is not None:
                out[key] = iso(user[key]) if key in ("createdAt", "lastLogin", "_updatedAt") else user[key]
    return out


def me(user: dict[str, Any], avatar_base: str) -> dict[str, Any]:
    """The `me` shape of /api/v1/me and login's data.me."""
    out = user_rest(user, full=True)
    out.setdefault("emails", [])
    out["settings"] = user.get("settings", {"preferences": {}})
    out["avatarUrl"] = f"{avatar_base}/avatar/{user['username']}"
    return out
