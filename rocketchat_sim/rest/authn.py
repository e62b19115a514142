"""login / logout / me."""

from __future__ import annotations

from typing import Any

from .. import auth, views
from ..errors import ApiError
from ..util import hash_token, now_ms, sha256_hex
from .base import Call, endpoint


def _login_failed() -> ApiError:
    # Rocket.Chat 8.x answers every failed REST login the same way (no hint which part was wrong).
    return ApiError(401, {"success": False, "error": "unauthorized"})


def login_result(call: Call, user: dict[str, Any], token: str) -> dict[str, Any]:
    return {
        "_raw": {
            "status": "success",
            "data": {
                "userId": user["_id"],
                "authToken": token,
                "me": views.me(user, call.sim.config.root_url),
            },
        }
    }


@endpoint("POST", "login", auth_required=False)
def login(call: Call) -> dict[str, Any]:
    ws = call.ws
    body = call.body
    if isinstance(body.get("resume"), str):
        uid = call.sim.state.tokens.get(hash_token(body["resume"]))
        user = call.sim.state.users.get(uid) if uid else None
        if user is None or not user.get("active", True):
            raise _login_failed()
        token, _ = auth.issue_login_token(call.sim.state, user)
    else:
        login_name = body.get("user") or body.get("username") or body.get("email")
        password = body.get("password")
        if isinstance(login_name, dict):  # Meteor-style {user: {username|email}}
            login_name = login_name.get("username") or login_name.get("email")
        if isinstance(password, dict):  # Meteor-style {digest, algorithm}
            digest = password.get("digest")
        elif isinstance(password, str):
            digest = sha256_hex(password)
        else:
            digest = None
        if not isinstance(login_name, str) or not digest:
            raise _login_failed()
        user = ws.user_by_login(login_name)
        if user is None or not user.get("active", True) or not auth.check_password_digest(user, digest):
            raise _login_failed()
        token, _ = auth.issue_login_token(call.sim.state, user)
    user["lastLogin"] = now_ms()
    return login_result(call, user, token)


@endpoint(("POST", "GET"), "logout")
def logout(call: Call) -> dict[str, Any]:
    tokens = auth.login_tokens(call.user)
    if call.token_record in tokens:
        tokens.remove(call.token_record)
    call.sim.state.tokens.pop(call.token_record["hashedToken"], None)
    call.sim.state.mark_dirty()
    return {"_raw": {"status": "success", "data": {"message": "You've been logged out!"}}}


@endpoint("GET", "me")
def me(call: Call) -> dict[str, Any]:
    return views.me(call.user, call.sim.config.root_url)
