"""users.* endpoints, personal access tokens and users.createToken."""

from __future__ import annotations

import hmac
import re
from typing import Any

from .. import auth, views
from ..errors import failure, invalid_params, meteor_error, unauthorized
from ..util import hash_token, iso, new_token, now_ms
from .base import Call, endpoint, optional, paginate, query_json, require

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _user_view(call: Call, user: dict[str, Any]) -> dict[str, Any]:
    full = call.user is not None and (
        call.user["_id"] == user["_id"] or call.can("view-full-other-user-info")
    )
    return views.user_rest(user, full=full)


def _check_email(email: str) -> None:
    if not _EMAIL.match(email):
        raise meteor_error(
            "error-invalid-email", f"Invalid email {email}", {"method": "insertOrUpdateUser", "email": email}
        )


def _check_username(call: Call, username: str) -> None:
    if not call.ws.validate_username(username):
        raise meteor_error(
            "error-input-is-not-a-valid-field",
            f"{username} is not a valid username",
            {"method": "insertOrUpdateUser", "input": username, "field": "Username"},
        )


def _check_roles(call: Call, roles: list[Any]) -> None:
    for role in roles:
        if not isinstance(role, str) or role not in call.sim.state.roles:
            raise meteor_error("error-invalid-role", "Invalid role", {"method": "insertOrUpdateUser"})
    if "admin" in roles and not call.can("assign-admin-role"):
        raise meteor_error(
            "error-action-not-allowed",
            "Assigning admin is not allowed",
            {"method": "insertOrUpdateUser", "action": "Assign_admin"},
        )


@endpoint("POST", "users.create")
def users_create(call: Call) -> dict[str, Any]:
    body = call.body
    for name in ("email", "name", "password", "username"):
        require(body, name)
    if not call.can("create-user"):
        raise meteor_error(
            "error-action-not-allowed",
            "Adding user is not allowed",
            {"method": "insertOrUpdateUser", "action": "Adding_user"},
        )
    active = optional(body, "active", bool, True)
    if active is False and not call.can("edit-other-user-active-status"):
        raise meteor_error(
            "error-action-not-allowed",
            "Edit user active status is not allowed",
            {"method": "insertOrUpdateUser", "action": "Edit_user_active_status"},
        )
    roles = optional(body, "roles", list, ["user"])
    _check_roles(call, roles)
    _check_email(body["email"])
    _check_username(call, body["username"])
    user = call.ws.create_user(
        username=body["username"],
        name=body["name"],
        email=body["email"],
        password=body["password"],
        roles=roles,
        active=active,
        verified=bool(optional(body, "verified", bool, False)),
        require_password_change=bool(optional(body, "requirePasswordChange", bool, False)),
        nickname=optional(body, "nickname", str),
        bio=optional(body, "bio", str),
        status_text=optional(body, "statusText", str),
        custom_fields=optional(body, "customFields", dict),
        join_default_channels=bool(optional(body, "joinDefaultChannels", bool, True)),
    )
    return {"user": views.user_rest(user, full=True)}


def _lookup(call: Call, params: dict[str, Any]) -> dict[str, Any] | None:
    if params.get("userId"):
        return call.sim.state.users.get(str(params["userId"]))
    if params.get("username"):
        return call.ws.user_by_username(str(params["username"]))
    return None


@endpoint("GET", "users.info")
def users_info(call: Call) -> dict[str, Any]:
    keys = [k for k in ("userId", "username", "importId") if call.query.get(k)]
    if len(keys) != 1:
        raise invalid_params("must have required property 'userId'")
    user = _lookup(call, call.query)
    if user is None:
        raise failure("User not found.")
    result = _user_view(call, user)
    if call.query.get("includeUserRooms") == "true" and (
        call.uid == user["_id"] or call.can("view-other-user-channels")
    ):
        rooms = []
        for rid in sorted(call.sim.state.user_rooms.get(user["_id"], ())):
            sub = call.sim.state.subscriptions[(rid, user["_id"])]
            rooms.append(
                {
                    "_id": sub["_id"],
                    "rid": rid,
                    "name": sub["name"],
                    "t": sub["t"],
                    "unread": sub["unread"],
                    "roles": sub.get("roles", []),
                }
            )
        result["rooms"] = rooms
    return {"user": result}


@endpoint("GET", "users.list")
def users_list(call: Call) -> dict[str, Any]:
    if not call.can("view-d-room"):
        raise unauthorized()
    query = query_json(call, "query")
    email = call.query.get("email")
    users = sorted(call.sim.state.users.values(), key=lambda u: u["username"])
    selected = []
    for user in users:
        if email and not any(e["address"].lower() == email.lower() for e in user.get("emails", [])):
            continue
        if any(not isinstance(v, dict) and user.get(k) != v for k, v in query.items()):
            continue
        selected.append(user)
    page, offset, count = paginate(call, selected)
    full = call.can("view-full-other-user-info")
    out = []
    for user in page:
        view = views.user_rest(user, full=full)
        view["nameInsensitive"] = (user.get("name") or "").lower()
        out.append(view)
    return {"users": out, "count": count, "offset": offset, "total": len(selected)}


@endpoint("POST", "users.update", two_factor=True)
def users_update(call: Call) -> dict[str, Any]:
    user_id = require(call.body, "userId")
    data = require(call.body, "data", dict)
    user = call.sim.state.users.get(user_id)
    own = user_id == call.uid
    if not own and not call.can("edit-other-user-info"):
        raise meteor_error(
            "error-action-not-allowed",
            "Editing user is not allowed",
            {"method": "insertOrUpdateUser", "action": "Editing_user"},
        )
    if user is None:
        raise meteor_error("error-invalid-user", "Invalid user", {"method": "insertOrUpdateUser"})
    if "password" in data and not own and not call.can("edit-other-user-password"):
        raise meteor_error(
            "error-action-not-allowed",
            "Editing user is not allowed",
            {"method": "insertOrUpdateUser", "action": "Editing_user"},
        )
    if "roles" in data:
        if not isinstance(data["roles"], list):
            raise invalid_params("/data/roles must be array")
        if not call.can("assign-roles"):
            raise meteor_error(
                "error-action-not-allowed",
                "Assign roles is not allowed",
                {"method": "insertOrUpdateUser", "action": "Assign_role"},
            )
        _check_roles(call, data["roles"])
    if "active" in data and not call.can("edit-other-user-active-status"):
        raise meteor_error(
            "error-action-not-allowed",
            "Edit user active status is not allowed",
            {"method": "insertOrUpdateUser", "action": "Edit_user_active_status"},
        )
    if "email" in data:
        _check_email(str(data["email"]))
    if "username" in data:
        _check_username(call, str(data["username"]))
    call.ws.update_user(user, data)
    return {"user": views.user_rest(user, full=True)}


@endpoint("POST", "users.setActiveStatus")
def users_set_active_status(call: Call) -> dict[str, Any]:
    active = require(call.body, "activeStatus", bool)
    user_id = require(call.body, "userId")
    if not call.ws.has_any_permission(
        call.uid, ["edit-other-user-active-status", "manage-moderation-actions"]
    ):
        raise unauthorized()
    user = call.sim.state.users.get(user_id)
    if user is None:
        raise meteor_error("error-invalid-user", "Invalid user", {"method": "setUserActiveStatus"})
    if not active and "admin" in user["roles"] and _admin_count(call) <= 1:
        raise meteor_error(
            "error-action-not-allowed",
            "Leaving the app without an active admin is not allowed",
            {"method": "setUserActiveStatus", "action": "Remove_last_admin"},
        )
    call.ws.set_active(user, active)
    return {"user": {"_id": user["_id"], "active": user["active"]}}


def _admin_count(call: Call) -> int:
    return sum(1 for u in call.sim.state.users.values() if "admin" in u["roles"] and u.get("active", True))


@endpoint("POST", "users.delete")
def users_delete(call: Call) -> dict[str, Any]:
    if not call.can("delete-user"):
        raise unauthorized()
    if not call.body.get("userId") and not call.body.get("username"):
        raise meteor_error(
            "error-user-param-not-provided", 'The required "userId" or "username" param was not provided'
        )
    user = _lookup(call, call.body)
    if user is None:
        raise failure("User not found.")
    if "admin" in user["roles"] and _admin_count(call) <= 1:
        raise meteor_error(
            "error-action-not-allowed",
            "Leaving the app without admins is not allowed",
            {"method": "deleteUser", "action": "Remove_last_admin"},
        )
    delete_checked(call, user, call.body.get("confirmRelinquish") in (True, "true"))
    return {}


def single_owned_rooms(call: Call, user: dict[str, Any]) -> list[dict[str, Any]]:
    """Rooms where the user is the only owner: others stay (change owner) or nobody does (remove room)."""
    state = call.sim.state
    rooms = []
    for rid in sorted(state.user_rooms.get(user["_id"], ())):
        room = state.rooms.get(rid)
        if room is None or room["t"] == "d":
            continue
        members = state.room_members.get(rid, set())
        owners = [u for u in members if "owner" in state.subscriptions[(rid, u)].get("roles", [])]
        if owners != [user["_id"]]:
            continue
        others = sorted(
            (u for u in members if u != user["_id"]), key=lambda u: state.subscriptions[(rid, u)]["ts"]
        )
        rooms.append(
            {
                "rid": rid,
                "t": room["t"],
                "name": room.get("name"),
                "shouldBeRemoved": not others,
                "shouldChangeOwner": bool(others),
                "userIsLastOwner": True,
                "newOwner": others[0] if others else None,
            }
        )
    return rooms


def delete_checked(call: Call, user: dict[str, Any], confirm_relinquish: bool) -> None:
    """deleteUser: the last owner of a room others are in needs confirmRelinquish (else user-last-owner)."""
    rooms = single_owned_rooms(call, user)
    if any(r["shouldChangeOwner"] for r in rooms) and not confirm_relinquish:
        raise meteor_error("user-last-owner", None, [r for r in rooms if r["shouldChangeOwner"]])
    state = call.sim.state
    for entry in rooms:
        room = state.rooms[entry["rid"]]
        if entry["shouldChangeOwner"]:
            sub = state.subscriptions[(entry["rid"], entry["newOwner"])]
            sub["roles"] = [*sub.get("roles", []), "owner"]
    call.ws.delete_user(user)
    for entry in rooms:
        if entry["shouldBeRemoved"] and entry["rid"] in state.rooms:
            room = state.rooms.pop(entry["rid"])
            state.rooms_by_name.pop(room.get("name", ""), None)
            for msg in state.messages.pop(entry["rid"], []):
                state.message_index.pop(msg["_id"], None)
    state.mark_dirty()


# ---------------------------------------------------------------- personal access tokens
def _pats(user: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in auth.login_tokens(user) if t.get("type") == "personalAccessToken"]


@endpoint("POST", "users.generatePersonalAccessToken", two_factor=True)
def generate_pat(call: Call) -> dict[str, Any]:
    name = call.body.get("tokenName")
    bypass = optional(call.body, "bypassTwoFactor", bool, False)
    if not name or not isinstance(name, str):
        raise failure("The 'tokenName' param is required")
    if not call.can("create-personal-access-tokens"):
        raise meteor_error(
            "not-authorized", "Not Authorized", {"method": "personalAccessTokens:generateToken"}
        )
    if any(t.get("name") == name for t in _pats(call.user)):
        raise meteor_error(
            "error-token-already-exists",
            "A token with this name already exists",
            {"method": "personalAccessTokens:generateToken"},
        )
    token = new_token()
    record = {
        "hashedToken": hash_token(token),
        "type": "personalAccessToken",
        "createdAt": now_ms(),
        "lastTokenPart": token[-6:],
        "name": name,
        "bypassTwoFactor": bool(bypass),
    }
    auth.login_tokens(call.user).append(record)
    call.sim.state.tokens[record["hashedToken"]] = call.uid
    call.sim.state.mark_dirty()
    return {"token": token}


@endpoint("POST", "users.regeneratePersonalAccessToken", two_factor=True)
def regenerate_pat(call: Call) -> dict[str, Any]:
    name = require(call.body, "tokenName")
    if not call.can("create-personal-access-tokens"):
        raise meteor_error(
            "not-authorized", "Not Authorized", {"method": "personalAccessTokens:regenerateToken"}
        )
    old = next((t for t in _pats(call.user) if t.get("name") == name), None)
    if old is None:
        raise meteor_error(
            "not-authorized", "Not Authorized", {"method": "personalAccessTokens:regenerateToken"}
        )
    auth.login_tokens(call.user).remove(old)
    call.sim.state.tokens.pop(old["hashedToken"], None)
    call.body["bypassTwoFactor"] = old.get("bypassTwoFactor", False)
    return generate_pat(call)


@endpoint("GET", "users.getPersonalAccessTokens")
def get_pats(call: Call) -> dict[str, Any]:
    if not call.can("create-personal-access-tokens"):
        raise meteor_error("not-authorized", "Not allowed")
    tokens = [
        {
            "name": t["name"],
            "createdAt": iso(t["createdAt"]),
            "lastTokenPart": t["lastTokenPart"],
            "bypassTwoFactor": t.get("bypassTwoFactor", False),
        }
        for t in _pats(call.user)
    ]
    return {"tokens": tokens}


@endpoint("POST", "users.removePersonalAccessToken", two_factor=True)
def remove_pat(call: Call) -> dict[str, Any]:
    name = call.body.get("tokenName")
    if not name or not isinstance(name, str):
        raise failure("The 'tokenName' param is required")
    if not call.can("create-personal-access-tokens"):
        raise meteor_error("not-authorized", "Not Authorized", {"method": "personalAccessTokens:removeToken"})
    record = next((t for t in _pats(call.user) if t.get("name") == name), None)
    if record is None:
        raise meteor_error("not-authorized", "Not Authorized", {"method": "personalAccessTokens:removeToken"})
    auth.login_tokens(call.user).remove(record)
    call.sim.state.tokens.pop(record["hashedToken"], None)
    call.sim.state.mark_dirty()
    return {}


@endpoint("POST", "users.createToken", auth_required=False)
def create_token(call: Call) -> dict[str, Any]:
    """8.x: allowed only with the CREATE_TOKENS_FOR_USERS_SECRET the server was started with."""
    configured = call.sim.config.CREATE_TOKENS_FOR_USERS_SECRET
    secret = call.body.get("secret")
    user_id = call.body.get("userId")
    if (
        configured is None
        or not isinstance(secret, str)
        or not hmac.compare_digest(secret.encode(), configured.get_secret_value().encode())
    ):
        raise meteor_error("error-not-authorized", "Not authorized", {"method": "createToken"})
    if call.user is not None and user_id != call.uid and not call.can("user-generate-access-token"):
        raise meteor_error("error-not-authorized", "Not authorized", {"method": "createToken"})
    user = call.sim.state.users.get(user_id) if isinstance(user_id, str) else None
    if user is None:
        raise meteor_error("error-invalid-user", "Invalid user", {"method": "createToken"})
    token, _ = auth.issue_login_token(call.sim.state, user)
    return {"data": {"userId": user["_id"], "authToken": token}}


@endpoint("GET", "users.getPresence")
def get_presence(call: Call) -> dict[str, Any]:
    user = (
        _lookup(call, call.query) if (call.query.get("userId") or call.query.get("username")) else call.user
    )
    if user is None:
        raise failure("User not found.")
    online = call.sim.realtime.is_online(user["_id"])
    status = "online" if online else "offline"
    result: dict[str, Any] = {"presence": status}
    if call.user is not None and user["_id"] == call.uid:
        result["connectionStatus"] = status
        if user.get("lastLogin"):
            result["lastLogin"] = iso(user["lastLogin"])
    return result
