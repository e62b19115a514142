"""Workspace administration: custom roles, permission grants, moderation, licence, statistics, user statuses.

Also the features this simulator leaves out (uploads and media, omnichannel, teams, E2E, federation,
apps, video conferences...): their documented routes answer as Rocket.Chat answers a disabled
endpoint, `error-endpoint-disabled`, never a 404 that would look like a typo in the client.
"""

from __future__ import annotations

from typing import Any

from .. import views
from ..errors import failure, invalid_params, meteor_error
from ..metrics import workspace_counts
from ..util import iso, new_id, now_ms
from .base import Call, endpoint, listing

# ---------------------------------------------------------------- roles & permissions


def _role_doc(role: dict[str, Any]) -> dict[str, Any]:
    return views.rest(role)


@endpoint("POST", "roles.create", permissions=("access-permissions",))
def roles_create(call: Call) -> dict[str, Any]:
    # Custom roles are an Enterprise feature since 6.0: a Community workspace refuses them.
    raise meteor_error(
        "error-action-not-allowed", "This is an enterprise feature", {"method": "roles.create"}
    )


@endpoint("POST", "roles.update", permissions=("access-permissions",))
def roles_update(call: Call) -> dict[str, Any]:
    role = call.sim.state.roles.get(call.body.get("roleId") or "")
    if role is None:
        raise meteor_error("error-invalid-roleId", "This role does not exist")
    if role.get("protected") and call.body.get("name") not in (None, role["name"]):
        raise meteor_error("error-role-protected", "Cannot change a protected role's name")
    for key in ("description", "mandatory2fa"):
        if key in call.body:
            role[key] = call.body[key]
    role["_updatedAt"] = now_ms()
    call.sim.state.mark_dirty()
    return {"role": _role_doc(role)}


@endpoint("POST", "roles.delete", permissions=("access-permissions",))
def roles_delete(call: Call) -> dict[str, Any]:
    role = call.sim.state.roles.get(call.body.get("roleId") or "")
    if role is None:
        raise meteor_error("error-invalid-roleId", "This role does not exist")
    if role.get("protected"):
        raise meteor_error("error-role-protected", "Cannot delete a protected role")
    if any(role["_id"] in u["roles"] for u in call.sim.state.users.values()):
        raise meteor_error("error-role-in-use", "Cannot delete role because it's in use")
    del call.sim.state.roles[role["_id"]]
    call.sim.state.mark_dirty()
    return {}


@endpoint("GET", "roles.sync")
def roles_sync(call: Call) -> dict[str, Any]:
    from .rooms import _parse_date

    since = _parse_date(call.query.get("updatedSince"))
    if since is None:
        raise invalid_params("must have required property 'updatedSince'")
    roles = [_role_doc(r) for r in call.sim.state.roles.values() if r["_updatedAt"] > since]
    return {"roles": {"update": roles, "remove": []}}


@endpoint("GET", "roles.getUsersInPublicRoles")
def roles_public_users(call: Call) -> dict[str, Any]:
    public = {r["_id"] for r in call.sim.state.roles.values() if r.get("public")}
    users = [
        {"_id": u["_id"], "username": u["username"], "roles": [r for r in u["roles"] if r in public]}
        for u in call.sim.state.users.values()
        if public.intersection(u["roles"])
    ]
    return {"users": users}


def _grant(call: Call, add: bool) -> dict[str, Any]:
    pid, role = call.body.get("permissionId"), call.body.get("roleId") or call.body.get("role")
    perm = call.sim.state.permissions.get(pid) if isinstance(pid, str) else None
    if perm is None:
        raise failure("Invalid permission", "error-invalid-permission")
    if not isinstance(role, str) or role not in call.sim.state.roles:
        raise failure("Invalid role", "error-invalid-role")
    roles = [r for r in perm["roles"] if r != role]
    if add:
        roles.append(role)
    perm["roles"] = roles
    perm["_updatedAt"] = now_ms()
    call.sim.state.mark_dirty()
    return {"permission": views.rest(perm)}


@endpoint("POST", "permissions.addRole", permissions=("access-permissions",))
def permissions_add_role(call: Call) -> dict[str, Any]:
    return _grant(call, True)


@endpoint("POST", "permissions.removeRole", permissions=("access-permissions",))
def permissions_remove_role(call: Call) -> dict[str, Any]:
    return _grant(call, False)


# ---------------------------------------------------------------- moderation
def _reports(call: Call, *, hidden: bool = False) -> list[dict[str, Any]]:
    return [r for r in call.sim.state.reports if r.get("_hidden", False) == hidden]


_MOD = ("view-moderation-console",)


@endpoint("POST", "moderation.reportUser")
def moderation_report_user(call: Call) -> dict[str, Any]:
    uid, description = call.body.get("userId"), call.body.get("description")
    user = call.sim.state.users.get(uid) if isinstance(uid, str) else None
    if not isinstance(description, str) or not description:
        raise invalid_params("must have required property 'description'")
    if user is None:
        raise failure("Invalid user id provided.")
    call.sim.state.reports.append(
        {
            "_id": new_id(),
            "reportedUser": {"_id": user["_id"], "username": user["username"], "name": user.get("name")},
            "description": description,
            "ts": now_ms(),
            "reportedBy": {"_id": call.uid, "username": call.user["username"]},
            "_hidden": False,
        }
    )
    call.sim.state.mark_dirty()
    return {}


def _message_reports(call: Call) -> list[dict[str, Any]]:
    return [r for r in _reports(call) if "message" in r]


@endpoint("GET", "moderation.reportsByUsers", permissions=_MOD)
def moderation_reports_by_users(call: Call) -> dict[str, Any]:
    grouped: dict[str, dict[str, Any]] = {}
    for r in _message_reports(call):
        u = r["message"]["u"]
        entry = grouped.setdefault(
            u["_id"],
            {
                "userId": u["_id"],
                "username": u["username"],
                "name": u.get("name"),
                "count": 0,
                "rooms": [],
                "isUserDeleted": u["_id"] not in call.sim.state.users,
            },
        )
        entry["count"] += 1
        entry["ts"] = iso(r["ts"])
        if r["room"] not in entry["rooms"]:
            entry["rooms"].append(r["room"])
    return listing(call, "reports", list(grouped.values()), lambda d: d)


@endpoint("GET", "moderation.userReports", permissions=_MOD)
def moderation_user_reports(call: Call) -> dict[str, Any]:
    grouped: dict[str, dict[str, Any]] = {}
    for r in _reports(call):
        if "reportedUser" not in r:
            continue
        entry = grouped.setdefault(r["reportedUser"]["_id"], {"reportedUser": r["reportedUser"], "count": 0})
        entry["count"] += 1
        entry["ts"] = iso(r["ts"])
    return listing(call, "reports", list(grouped.values()), lambda d: d)


@endpoint("GET", "moderation.user.reportedMessages", permissions=_MOD)
def moderation_user_messages(call: Call) -> dict[str, Any]:
    uid = call.query.get("userId")
    if not uid:
        raise invalid_params("must have required property 'userId'")
    found = [r for r in _message_reports(call) if r["message"]["u"]["_id"] == uid]
    out = listing(
        call, "messages", found, lambda r: views.rest({**r, "message": views.message_rest(r["message"])})
    )
    out["user"] = None
    return out


@endpoint("GET", "moderation.user.reportsByUserId", permissions=_MOD)
def moderation_reports_by_user_id(call: Call) -> dict[str, Any]:
    uid = call.query.get("userId")
    if not uid:
        raise invalid_params("must have required property 'userId'")
    found = [r for r in _reports(call) if r.get("reportedUser", {}).get("_id") == uid]
    out = listing(call, "reports", found, views.rest)
    user = call.sim.state.users.get(uid)
    out["user"] = views.user_rest(user, full=False) if user else None
    return out


@endpoint("GET", "moderation.reports", permissions=_MOD)
def moderation_reports(call: Call) -> dict[str, Any]:
    mid = call.query.get("msgId")
    if not mid:
        raise invalid_params("must have required property 'msgId'")
    found = [r for r in _message_reports(call) if r["message"]["_id"] == mid]
    return listing(
        call, "reports", found, lambda r: views.rest({k: v for k, v in r.items() if k != "message"})
    )


@endpoint("GET", "moderation.reportInfo", permissions=_MOD)
def moderation_report_info(call: Call) -> dict[str, Any]:
    rid = call.query.get("reportId")
    report = next((r for r in call.sim.state.reports if r["_id"] == rid), None)
    if report is None:
        raise failure("Report not found")
    return {"report": views.rest(report)}


@endpoint("POST", "moderation.dismissReports", permissions=("manage-moderation-actions",))
def moderation_dismiss(call: Call) -> dict[str, Any]:
    uid, mid = call.body.get("userId"), call.body.get("msgId")
    if not uid and not mid:
        raise failure("error-invalid-params")
    for r in call.sim.state.reports:
        if "message" in r and (r["message"]["u"]["_id"] == uid or r["message"]["_id"] == mid):
            r["_hidden"] = True
    call.sim.state.mark_dirty()
    return {}


@endpoint("POST", "moderation.dismissUserReports", permissions=("manage-moderation-actions",))
def moderation_dismiss_user(call: Call) -> dict[str, Any]:
    uid = call.body.get("userId")
    if not uid:
        raise invalid_params("must have required property 'userId'")
    for r in call.sim.state.reports:
        if r.get("reportedUser", {}).get("_id") == uid:
            r["_hidden"] = True
    call.sim.state.mark_dirty()
    return {}


@endpoint("POST", "moderation.user.deleteReportedMessages", permissions=("manage-moderation-actions",))
def moderation_delete_messages(call: Call) -> dict[str, Any]:
    uid = call.body.get("userId")
    if not uid:
        raise invalid_params("must have required property 'userId'")
    for r in _message_reports(call):
        if r["message"]["u"]["_id"] != uid:
            continue
        msg = call.sim.state.message_index.get(r["message"]["_id"])
        if msg is not None:
            call.ws.delete_message(call.user, msg)
        r["_hidden"] = True
    return {}


# ---------------------------------------------------------------- licence, statistics, custom statuses
@endpoint("GET", "licenses.info")
def licenses_info(call: Call) -> dict[str, Any]:
    """A Community workspace: License.getInfo() without a licence (its `license` is undefined, so absent)."""
    return {
        "license": {
            "activeModules": [],
            "preventedActions": {},
            "limits": {},
            "tags": [],
            "trial": False,
        }
    }


@endpoint("GET", "statistics")
def statistics(call: Call) -> dict[str, Any]:
    if not call.can("view-statistics"):
        raise meteor_error("error-not-allowed", "Not allowed", {"method": "getStatistics"})
    state = call.sim.state
    return {
        "_id": new_id(),
        "wizard": {},
        "uniqueId": "rocketchat-sim",
        "installedAt": iso(min((u["createdAt"] for u in state.users.values()), default=now_ms())),
        "version": call.sim.config.SIM_VERSION,
        **workspace_counts(call.sim),  # the counts the Prometheus exporter serves too
        "totalIntegrations": len(state.integrations),
        # Rocket.Chat's statistics.ts: statistics.migration = getControl(), the control record of its
        # `migrations` collection (make upgrade / make rollback read its version: roles/rocketchat).
        "migration": dict(state.migrations or {"_id": "control", "version": 0, "locked": False}),
        "createdAt": iso(now_ms()),
    }


@endpoint("GET", "statistics.list")
def statistics_list(call: Call) -> dict[str, Any]:
    stats = statistics(call)
    return {"statistics": [stats], "count": 1, "offset": 0, "total": 1}


def _status_view(doc: dict[str, Any]) -> dict[str, Any]:
    return views.rest(doc)


@endpoint("GET", "custom-user-status.list")
def custom_status_list(call: Call) -> dict[str, Any]:
    docs = sorted(call.sim.state.custom_user_status.values(), key=lambda d: d["name"])
    return listing(call, "statuses", docs, _status_view)


def _status_fields(call: Call) -> tuple[str, str]:
    name, kind = call.body.get("name"), call.body.get("statusType")
    if not isinstance(name, str) or not name:
        raise invalid_params("must have required property 'name'")
    if kind not in ("online", "away", "busy", "offline"):
        raise meteor_error("error-input-is-not-a-valid-field", f"{kind} is not a valid status type")
    return name, kind


@endpoint("POST", "custom-user-status.create")
def custom_status_create(call: Call) -> dict[str, Any]:
    if not call.can("manage-user-status"):
        raise meteor_error("not_authorized", "Not authorized")
    name, kind = _status_fields(call)
    if any(d["name"] == name for d in call.sim.state.custom_user_status.values()):
        raise meteor_error(
            "Custom_User_Status_Error_Name_Already_In_Use", "The custom user status name is already in use"
        )
    doc = {"_id": new_id(), "name": name, "statusType": kind, "_updatedAt": now_ms()}
    call.sim.state.custom_user_status[doc["_id"]] = doc
    call.sim.state.mark_dirty()
    return {"customUserStatus": _status_view(doc)}


@endpoint("POST", "custom-user-status.update")
def custom_status_update(call: Call) -> dict[str, Any]:
    if not call.can("manage-user-status"):
        raise meteor_error("not_authorized", "Not authorized")
    doc = call.sim.state.custom_user_status.get(call.body.get("_id") or "")
    if doc is None:
        raise failure(f'No custom user status found with the id of "{call.body.get("_id")}".')
    name, kind = _status_fields(call)
    doc.update(name=name, statusType=kind, _updatedAt=now_ms())
    call.sim.state.mark_dirty()
    return {"customUserStatus": _status_view(doc)}


@endpoint("POST", "custom-user-status.delete")
def custom_status_delete(call: Call) -> dict[str, Any]:
    if not call.can("manage-user-status"):
        raise meteor_error("not_authorized", "Not authorized")
    sid = call.body.get("customUserStatusId")
    if not sid:
        raise failure('The "customUserStatusId" params is required!')
    if call.sim.state.custom_user_status.pop(sid, None) is None:
        raise meteor_error("Custom_User_Status_Error_Invalid_User_Status", "Invalid user status")
    call.sim.state.mark_dirty()
    return {}


# ---------------------------------------------------------------- settings.oauth
@endpoint("GET", "settings.oauth", auth_required=False)
def settings_oauth(call: Call) -> dict[str, Any]:
    return {"services": []}  # no OAuth service configured


@endpoint("POST", "settings.addCustomOAuth", permissions=("add-oauth-service",))
def settings_add_custom_oauth(call: Call) -> dict[str, Any]:
    name = call.body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise failure("The 'name' param is required")
    sid = f"Accounts_OAuth_Custom-{name.strip().lower().replace(' ', '')}"
    now = now_ms()
    call.sim.state.settings.setdefault(
        sid,
        {
            "_id": sid,
            "value": False,
            "packageValue": False,
            "type": "boolean",
            "public": True,
            "_updatedAt": now,
        },
    )
    call.ws.settings[sid] = call.sim.state.settings[sid]["value"]
    call.sim.state.mark_dirty()
    return {}


# ---------------------------------------------------------------- features left out
def disabled(call: Call) -> dict[str, Any]:
    raise meteor_error(
        "error-endpoint-disabled", "This endpoint is disabled", {"route": call.request.url.path}
    )


def register_disabled(operations: list[tuple[str, str]]) -> None:
    """Mount every out-of-scope (method, path) on the one disabled-endpoint answer."""
    by_path: dict[str, set[str]] = {}
    for method, path in operations:
        by_path.setdefault(path, set()).add(method)
    for path, methods in sorted(by_path.items()):
        endpoint(tuple(sorted(methods)), path, rate_limited=False)(disabled)
