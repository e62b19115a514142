"""roles.* and permissions.* endpoints."""

from __future__ import annotations

from typing import Any

from .. import views
from ..errors import failure, invalid_params, meteor_error
from ..util import iso, now_ms
from .base import Call, endpoint, paginate


def _role_view(role: dict[str, Any], *, with_updated: bool = True) -> dict[str, Any]:
    out = {k: v for k, v in role.items() if k != "_updatedAt"}
    if with_updated:
        out["_updatedAt"] = iso(role["_updatedAt"])
    return out


def _find_role(call: Call, body: dict[str, Any]) -> dict[str, Any] | None:
    ref = body.get("roleId") or body.get("roleName")
    if not isinstance(ref, str):
        return None
    role = call.sim.state.roles.get(ref)
    if role is None:
        role = next((r for r in call.sim.state.roles.values() if r["name"] == ref), None)
    return role


@endpoint("GET", "roles.list")
def roles_list(call: Call) -> dict[str, Any]:
    return {"roles": [_role_view(r, with_updated=False) for r in call.sim.state.roles.values()]}


@endpoint("POST", "roles.addUserToRole")
def add_user_to_role(call: Call) -> dict[str, Any]:
    body = call.body
    if not body.get("roleId") and not body.get("roleName"):
        raise failure("error-invalid-role-properties")
    if not isinstance(body.get("username"), str):
        raise invalid_params("must have required property 'username'")
    role = _find_role(call, body)
    if role is None:
        raise failure("error-role-not-found", "Role not found")  # sic: Rocket.Chat swaps the arguments here
    if not call.can("access-permissions"):
        raise meteor_error(
            "error-action-not-allowed",
            "Accessing permissions is not allowed",
            {"method": "authorization:addUserToRole", "action": "Accessing_permissions"},
        )
    if role["_id"] == "admin" and not call.can("assign-admin-role"):
        raise meteor_error(
            "error-action-not-allowed",
            "Assigning admin is not allowed",
            {"method": "authorization:addUserToRole", "action": "Assign_admin"},
        )
    user = call.ws.user_by_username(body["username"])
    if user is None:
        raise meteor_error("error-invalid-user", "Invalid user", {"method": "authorization:addUserToRole"})
    room_id = body.get("roomId")
    if role["scope"] == "Subscriptions" and room_id:
        sub = call.sim.state.subscriptions.get((room_id, user["_id"]))
        if sub is None:
            raise meteor_error(
                "error-invalid-room", "Invalid room", {"method": "authorization:addUserToRole"}
            )
        if role["_id"] in sub.get("roles", []):
            raise meteor_error("error-user-already-in-role", "User already in role")
        sub.setdefault("roles", []).append(role["_id"])
    else:
        if role["_id"] in user["roles"]:
            raise meteor_error("error-user-already-in-role", "User already in role")
        call.ws.update_user(user, {"roles": [*user["roles"], role["_id"]]})
    call.sim.state.mark_dirty()
    return {"role": _role_view(role)}


@endpoint("POST", "roles.removeUserFromRole", permissions=("access-permissions",))
def remove_user_from_role(call: Call) -> dict[str, Any]:
    body = call.body
    if not isinstance(body.get("username"), str) or not (body.get("roleId") or body.get("roleName")):
        raise invalid_params("must have required property 'roleId'")
    user = call.ws.user_by_username(body["username"])
    if user is None:
        raise meteor_error("error-invalid-user", "There is no user with this username")
    role = _find_role(call, body)
    if role is None:
        raise meteor_error("error-invalid-roleId", "This role does not exist")
    scope = body.get("scope")
    if role["scope"] == "Subscriptions" and scope:
        sub = call.sim.state.subscriptions.get((scope, user["_id"]))
        if sub is None or role["_id"] not in sub.get("roles", []):
            raise meteor_error("error-user-not-in-role", "User is not in this role")
        sub["roles"].remove(role["_id"])
    else:
        if role["_id"] not in user["roles"]:
            raise meteor_error("error-user-not-in-role", "User is not in this role")
        if role["_id"] == "admin":
            admins = [u for u in call.sim.state.users.values() if "admin" in u["roles"]]
            if len(admins) <= 1:
                raise meteor_error("error-admin-required", "You need to have at least one admin")
        call.ws.update_user(user, {"roles": [r for r in user["roles"] if r != role["_id"]]})
    call.sim.state.mark_dirty()
    return {"role": _role_view(role)}


@endpoint("GET", "roles.getUsersInRole", permissions=("access-permissions",))
def get_users_in_role(call: Call) -> dict[str, Any]:
    ref = call.query.get("role")
    if not ref:
        raise meteor_error("error-param-not-provided", 'Query param "role" is required')
    role = _find_role(call, {"roleId": ref})
    if role is None:
        raise meteor_error("error-invalid-roleId", "Role not found")
    room_id = call.query.get("roomId")
    if room_id:
        users = [
            call.sim.state.users[uid]
            for uid in sorted(call.sim.state.room_members.get(room_id, ()))
            if role["_id"] in call.sim.state.subscriptions[(room_id, uid)].get("roles", [])
        ]
    else:
        users = [u for u in call.sim.state.users.values() if role["_id"] in u["roles"]]
    users.sort(key=lambda u: u["username"])
    page, _, _ = paginate(call, users)
    return {"users": [views.user_rest(u, full=True) for u in page], "total": len(users)}


@endpoint("GET", "permissions.listAll")
def permissions_list_all(call: Call) -> dict[str, Any]:
    since = call.query.get("updatedSince")
    docs = list(call.sim.state.permissions.values())
    if since:
        from datetime import datetime

        try:
            since_ms = int(datetime.fromisoformat(since.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            raise meteor_error(
                "error-updatedSince-param-invalid", 'The "updatedSince" query parameter must be a valid date.'
            ) from None
        docs = [d for d in docs if d["_updatedAt"] > since_ms]
    return {"update": [views.rest(d) for d in docs], "remove": []}


@endpoint("POST", "permissions.update", permissions=("access-permissions",))
def permissions_update(call: Call) -> dict[str, Any]:
    items = call.body.get("permissions")
    if not isinstance(items, list) or not all(
        isinstance(i, dict) and isinstance(i.get("_id"), str) and isinstance(i.get("roles"), list)
        for i in items
    ):
        raise invalid_params("must have required property 'permissions'")
    state = call.sim.state
    for item in items:
        if item["_id"] not in state.permissions:
            raise failure("Invalid permission", "error-invalid-permission")
        if any(not isinstance(r, str) or r not in state.roles for r in item["roles"]):
            raise failure("Invalid role", "error-invalid-role")
    now = now_ms()
    for item in items:
        state.permissions[item["_id"]]["roles"] = list(dict.fromkeys(item["roles"]))
        state.permissions[item["_id"]]["_updatedAt"] = now
    state.mark_dirty()
    return {"permissions": [views.rest(d) for d in state.permissions.values()]}
