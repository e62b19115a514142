"""users.* for the people themselves: register, status, presence, preferences, avatars, sessions."""

from __future__ import annotations

import re
from typing import Any

from starlette.responses import Response

from .. import auth, views
from ..errors import ApiError, failure, invalid_params, meteor_error
from ..util import iso, now_ms
from .base import Call, endpoint, listing, optional, require
from .users import _check_email, _check_username, _lookup

_STATUSES = ("online", "away", "busy", "offline")


@endpoint("POST", "users.register", auth_required=False)
def users_register(call: Call) -> dict[str, Any]:
    """Self-service sign-up; on a workspace without an admin the first user to register becomes admin."""
    body = call.body
    for name in ("username", "email", "pass"):
        require(body, name)
    form = call.ws.settings.get("Accounts_RegistrationForm", "Public")
    if form == "Disabled":
        raise meteor_error("error-user-registration-disabled", "User registration is disabled")
    if form == "Secret URL" and body.get("secretURL") != call.ws.settings.get(
        "Accounts_RegistrationForm_SecretURL"
    ):
        raise meteor_error(
            "error-user-registration-secret", "User registration is only allowed via Secret URL"
        )
    if call.ws.settings.get("Accounts_RequireNameForSignUp", True) and not body.get("name"):
        raise meteor_error("error-user-registration-custom-field", "Name is required", {"field": "name"})
    if call.ws.user_by_username(body["username"]) is not None:
        raise failure("Username is already in use")
    _check_email(body["email"])
    _check_username(call, body["username"])
    if body["email"].lower() in call.sim.state.users_by_email:
        raise failure("Email already exists. [403]", "403")
    user = call.ws.create_user(
        username=body["username"],
        name=body.get("name") or body["username"],
        email=body["email"],
        password=body["pass"],
        roles=["user"],
        active=not call.ws.settings.get("Accounts_ManuallyApproveNewUsers", False),
    )
    view = views.user_rest(user, full=False)
    view["__rooms"] = sorted(call.sim.state.user_rooms.get(user["_id"], ()))
    return {"user": view}


@endpoint("POST", "users.setStatus")
def users_set_status(call: Call) -> dict[str, Any]:
    status, message = call.body.get("status"), call.body.get("message")
    if status is None and message is None:
        raise invalid_params("must have required property 'status'")
    target = call.user
    if call.body.get("userId") and call.body["userId"] != call.uid:
        if not call.can("edit-other-user-info"):
            raise meteor_error("error-not-allowed", "Not allowed")
        target = call.ws.require_user(user_id=call.body["userId"])
    if status is not None:
        if status not in _STATUSES:
            raise meteor_error(
                "error-invalid-status",
                "Valid status types include online, away, offline, and busy.",
                {"method": "users.setStatus"},
            )
        target["statusDefault"] = status
        online = call.sim.realtime.is_online(target["_id"])
        target["status"] = status if (online or status == "offline") else "offline"
    if message is not None:
        target["statusText"] = str(message)
    target["_updatedAt"] = now_ms()
    call.sim.state.mark_dirty()
    return {}


@endpoint("GET", "users.getStatus")
def users_get_status(call: Call) -> dict[str, Any]:
    user = (
        _lookup(call, call.query) if (call.query.get("userId") or call.query.get("username")) else call.user
    )
    if user is None:
        raise failure("User not found.")
    return {
        "_id": user["_id"],
        "message": user.get("statusText", ""),
        "connectionStatus": "online" if call.sim.realtime.is_online(user["_id"]) else "offline",
        "status": user.get("status", "offline"),
    }


@endpoint("GET", "users.presence")
def users_presence(call: Call) -> dict[str, Any]:
    from .rooms import _parse_date

    since = _parse_date(call.query.get("from"))
    ids = [i for i in (call.query.get("ids") or "").split(",") if i]
    users = [u for u in call.sim.state.users.values() if not ids or u["_id"] in ids]
    if since is not None:
        users = [u for u in users if u["_updatedAt"] > since]
    return {
        "users": [
            {k: u[k] for k in ("_id", "username", "name", "status", "utcOffset", "statusText") if k in u}
            for u in users
        ],
        "full": since is None,
    }


@endpoint("GET", "users.getPreferences")
def users_get_preferences(call: Call) -> dict[str, Any]:
    return {"preferences": call.user.get("settings", {}).get("preferences", {})}


@endpoint("POST", "users.setPreferences")
def users_set_preferences(call: Call) -> dict[str, Any]:
    data = require(call.body, "data", dict)
    target = call.user
    if call.body.get("userId") and call.body["userId"] != call.uid:
        if not call.can("edit-other-user-info"):
            raise meteor_error("error-action-not-allowed", "Editing user is not allowed")
        target = call.ws.require_user(user_id=call.body["userId"])
    prefs = target.setdefault("settings", {}).setdefault("preferences", {})
    if "language" in data:
        target["language"] = data.pop("language")
    prefs.update(data)
    target["_updatedAt"] = now_ms()
    call.sim.state.mark_dirty()
    return {"user": {"_id": target["_id"], "settings": {"preferences": prefs}}}


def _avatar_url(call: Call, user: dict[str, Any]) -> str:
    return f"{call.sim.config.root_url}/avatar/{user['username']}"


@endpoint("GET", "users.getAvatar")
def users_get_avatar(call: Call) -> dict[str, Any]:
    user = (
        _lookup(call, call.query) if (call.query.get("userId") or call.query.get("username")) else call.user
    )
    if user is None:
        raise failure("User not found.")
    # Rocket.Chat answers with a redirect to the avatar URL.
    return {"_redirect": _avatar_url(call, user)}


@endpoint("GET", "avatar/{subject}", "/avatar/{subject}", auth_required=False, rate_limited=False)
def avatar(call: Call) -> Any:
    """Generated avatars only (no upload): an SVG with the subject's initial, as Rocket.Chat draws it."""
    subject = call.path_params["subject"].split("?")[0]
    initial = (subject.lstrip("@")[:1] or "?").upper()
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 200 200"><rect width="100%" height="100%" '
        'fill="#2F343D"/><text x="50%" y="50%" dy="0.36em" text-anchor="middle" font-size="128" '
        f'fill="#ffffff">{_escape(initial)}</text></svg>'
    )
    return {
        "_response": Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=0"})
    }


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@endpoint("POST", "users.resetAvatar")
def users_reset_avatar(call: Call) -> dict[str, Any]:
    target = call.user
    if call.body.get("userId") or call.body.get("username"):
        found = _lookup(call, call.body)
        if found is None:
            raise failure("User not found.")
        if found["_id"] != call.uid and not call.can("edit-other-user-avatar"):
            raise meteor_error(
                "error-not-allowed", "Reset avatar is not allowed", {"method": "users.resetAvatar"}
            )
        target = found
    target.pop("avatarOrigin", None)
    target["_updatedAt"] = now_ms()
    call.sim.state.mark_dirty()
    return {}


@endpoint("GET", "users.getAvatarSuggestion")
def users_avatar_suggestion(call: Call) -> dict[str, Any]:
    return {"suggestions": {}}  # suggestions come from OAuth services and Gravatar: none offline


@endpoint("POST", "users.updateOwnBasicInfo")
def users_update_own(call: Call) -> dict[str, Any]:
    data = require(call.body, "data", dict)
    allowed = {
        "email",
        "realname",
        "username",
        "nickname",
        "bio",
        "statusText",
        "newPassword",
        "currentPassword",
        "customFields",
    }
    if set(data) - allowed:
        raise invalid_params("must NOT have additional properties")
    changes: dict[str, Any] = {}
    if data.get("newPassword"):
        current = data.get("currentPassword")
        if not isinstance(current, str) or not auth.check_password_digest(call.user, current):
            raise meteor_error("error-invalid-password", "Invalid password", {"method": "saveUserProfile"})
        changes["password"] = data["newPassword"]
    if "email" in data:
        _check_email(str(data["email"]))
        changes["email"] = data["email"]
    if "username" in data:
        _check_username(call, str(data["username"]))
        changes["username"] = data["username"]
    if "realname" in data:
        changes["name"] = data["realname"]
    for key in ("nickname", "bio", "statusText", "customFields"):
        if key in data:
            changes[key] = data[key]
    call.ws.update_user(call.user, changes)
    return {"user": views.user_rest(call.user, full=True)}


@endpoint("POST", "users.deleteOwnAccount")
def users_delete_own(call: Call) -> dict[str, Any]:
    password = require(call.body, "password")
    if not call.ws.settings.get("Accounts_AllowDeleteOwnAccount", False):
        raise meteor_error("error-not-allowed", "Not allowed", {"method": "deleteUserOwnAccount"})
    if not auth.check_password_digest(call.user, password):
        raise meteor_error("error-invalid-password", "Invalid password", {"method": "deleteUserOwnAccount"})
    from .users import delete_checked

    delete_checked(call, call.user, bool(call.body.get("confirmRelinquish")))
    return {}


@endpoint("POST", "users.forgotPassword", auth_required=False)
def users_forgot_password(call: Call) -> dict[str, Any]:
    require(call.body, "email")
    return {}  # Rocket.Chat answers success whether or not the address is known (no account probing)


@endpoint("GET", "users.getUsernameSuggestion")
def users_username_suggestion(call: Call) -> dict[str, Any]:
    base = re.sub(
        r"[^0-9a-zA-Z._-]", "", (call.user.get("name") or call.user["username"]).replace(" ", ".")
    ).lower()
    candidate, n = base or "user", 0
    while call.ws.user_by_username(candidate) is not None and candidate != call.user["username"]:
        n += 1
        candidate = f"{base}-{n}"
    return {"result": candidate}


@endpoint("GET", "users.checkUsernameAvailability")
def users_check_username(call: Call) -> dict[str, Any]:
    name = call.query.get("username")
    if not name:
        raise invalid_params("must have required property 'username'")
    return {"result": call.ws.user_by_username(name) is None and call.ws.validate_username(name)}


@endpoint("GET", "users.autocomplete")
def users_autocomplete(call: Call) -> dict[str, Any]:
    from .base import query_json

    selector = query_json(call, "selector")
    needle = str(selector.get("term", "")).lower()
    exceptions = set(selector.get("exceptions") or [])
    users = [
        {
            "_id": u["_id"],
            "username": u["username"],
            "name": u.get("name"),
            "status": u.get("status", "offline"),
        }
        for u in sorted(call.sim.state.users.values(), key=lambda u: u["username"])
        if u.get("active", True)
        and u["username"] not in exceptions
        and (needle in u["username"].lower() or needle in (u.get("name") or "").lower())
    ]
    return {"items": users[:10]}


@endpoint("GET", "users.listByStatus")
def users_list_by_status(call: Call) -> dict[str, Any]:
    if not call.can("view-user-administration"):
        raise failure("unauthorized")
    status = call.query.get("status")
    users = sorted(call.sim.state.users.values(), key=lambda u: u["username"])
    if status == "active":
        users = [u for u in users if u.get("active", True)]
    elif status == "deactivated":
        users = [u for u in users if not u.get("active", True)]
    roles = [r for r in (call.query.get("roles") or "").split(",") if r] or call.query.get("roles[]", "")
    if isinstance(roles, list) and roles:
        users = [u for u in users if set(roles) & set(u["roles"])]
    return listing(call, "users", users, lambda u: views.user_rest(u, full=True))


@endpoint("POST", "users.deactivateIdle", permissions=("edit-other-user-active-status",))
def users_deactivate_idle(call: Call) -> dict[str, Any]:
    days = call.body.get("daysIdle")
    if not isinstance(days, int) or days < 0:
        raise invalid_params("must have required property 'daysIdle'")
    role = optional(call.body, "role", str, "user")
    limit = now_ms() - days * 86_400_000
    count = 0
    for user in list(call.sim.state.users.values()):
        last = user.get("lastLogin") or user["createdAt"]
        if (
            user.get("active", True)
            and role in user["roles"]
            and "admin" not in user["roles"]
            and last < limit
        ):
            call.ws.set_active(user, False)
            count += 1
    return {"count": count}


# ---------------------------------------------------------------- sessions
def _logout_user(call: Call, user: dict[str, Any], keep: dict[str, Any] | None = None) -> None:
    tokens = auth.login_tokens(user)
    for record in list(tokens):
        if record is keep or record.get("type") == "personalAccessToken":
            continue
        tokens.remove(record)
        call.sim.state.tokens.pop(record["hashedToken"], None)
    call.sim.state.mark_dirty()
    if keep is None and call.sim.realtime is not None:
        call.sim.realtime.user_logged_out(user["_id"])


@endpoint("POST", "users.logout")
def users_logout(call: Call) -> dict[str, Any]:
    """Revoke every login session of the caller, or (logout-other-user) of `userId`."""
    target = call.user
    uid = call.body.get("userId")
    if uid and uid != call.uid:
        if not call.can("logout-other-user"):
            raise failure("unauthorized")
        target = call.ws.require_user(user_id=uid)
    _logout_user(call, target)
    return {"message": f"User {target['_id']} has been logged out!"}


@endpoint("POST", "users.logoutOtherClients")
def users_logout_other_clients(call: Call) -> dict[str, Any]:
    _logout_user(call, call.user, keep=call.token_record)
    expires = (call.token_record or {}).get("when", now_ms()) + int(
        call.ws.settings.get("Accounts_LoginExpiration", 90)
    ) * 86_400_000
    return {"token": call.request.headers.get("x-auth-token"), "tokenExpires": iso(expires)}


@endpoint("POST", "users.removeOtherTokens")
def users_remove_other_tokens(call: Call) -> dict[str, Any]:
    _logout_user(call, call.user, keep=call.token_record)
    return {}


@endpoint("POST", "users.resetTOTP", two_factor=True)
def users_reset_totp(call: Call) -> dict[str, Any]:
    target = _lookup(call, call.body) if call.body.get("userId") else call.user
    if target is None:
        raise failure("User not found.")
    if target["_id"] != call.uid and not call.can("edit-other-user-totp"):
        raise meteor_error("error-not-allowed", "Not allowed")
    target.get("services", {}).pop("totp", None)
    _logout_user(call, target)
    return {}


# ---------------------------------------------------------------- e-mail (no SMTP in the simulator)
def _smtp(call: Call) -> None:
    if not call.ws.settings.get("SMTP_Host"):
        raise meteor_error("error-email-send-failed", "Error trying to send email: SMTP is not configured")


@endpoint("POST", "users.sendWelcomeEmail", permissions=("send-mail",))
def users_send_welcome(call: Call) -> dict[str, Any]:
    require(call.body, "email")
    _smtp(call)
    return {}


@endpoint("POST", "sendInvitationEmail", permissions=("bulk-register-user",))
def send_invitation_email(call: Call) -> dict[str, Any]:
    emails = require(call.body, "emails", list)
    _smtp(call)
    return {"success": True, "emails": emails}


@endpoint("POST", "users.sendConfirmationEmail", permissions=("send-mail",))
def users_send_confirmation(call: Call) -> dict[str, Any]:
    require(call.body, "email")
    _smtp(call)
    return {}


@endpoint("POST", "users.verifyEmail", auth_required=False)
def users_verify_email(call: Call) -> dict[str, Any]:
    require(call.body, "token")
    raise ApiError(400, {"success": False, "error": "Verify email link expired [403]", "errorType": 403})
