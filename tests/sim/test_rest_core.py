"""REST behaviour of the shared target: auth, users, rooms, chat — Rocket.Chat's bodies and status codes."""

from __future__ import annotations

import hashlib

import httpx
import pytest

pytestmark = pytest.mark.integration


def test_info_and_health_answer_without_auth(rocketchat):
    info = rocketchat.api("GET", "/api/info", headers={})
    assert info.status_code == 200
    body = info.json()
    assert body["success"] is True
    assert body["version"].count(".") == 1  # major.minor only without view-statistics
    if rocketchat.is_simulator:
        for path in ("/livez", "/health", "/readyz"):
            assert rocketchat.api("GET", path, headers={}).json() == {"status": "ok"} or path == "/readyz"


def test_full_version_for_admin(rocketchat):
    body = rocketchat.api("GET", "/api/info").json()
    assert body["version"].count(".") == 2


def test_not_logged_in_is_401_with_rocketchat_message(rocketchat):
    response = rocketchat.api("GET", "me", headers={"X-User-Id": "nobody", "X-Auth-Token": "bad"})
    assert response.status_code == 401
    body = response.json()
    assert body.get("error", body.get("message")) == "You must be logged in to do this."
    assert rocketchat.api("GET", "me", headers={}).status_code == 401


def test_login_me_logout_cycle(rocketchat):
    user = rocketchat.create_user()
    me = rocketchat.api("GET", "me", headers=user.headers)
    assert me.status_code == 200
    assert me.json()["username"] == user.username
    assert me.json()["success"] is True
    out = rocketchat.api("POST", "logout", headers=user.headers)
    assert out.json() == {"status": "success", "data": {"message": "You've been logged out!"}}
    assert rocketchat.api("GET", "me", headers=user.headers).status_code == 401


def test_wrong_password_is_401(rocketchat):
    user = rocketchat.create_user(login=False)
    response = rocketchat.api("POST", "login", headers={}, json={"user": user.username, "password": "nope"})
    assert response.status_code == 401
    assert response.json()["success"] is False


def test_login_with_resume_token(rocketchat):
    user = rocketchat.create_user()
    response = rocketchat.api("POST", "login", headers={}, json={"resume": user.token})
    assert response.status_code == 200
    assert response.json()["data"]["userId"] == user.id


def test_users_create_duplicate_and_info(rocketchat):
    user = rocketchat.create_user()
    dup = rocketchat.api(
        "POST",
        "users.create",
        json={
            "username": user.username,
            "email": "x-" + user.username + "@example.test",
            "password": "p",
            "name": "n",
        },
    )
    assert dup.status_code == 400
    assert dup.json()["errorType"] == "error-field-unavailable"
    assert dup.json()["error"] == f"{user.username} is already in use :( [error-field-unavailable]"
    by_name = rocketchat.api("GET", "users.info", params={"username": user.username}).json()
    by_id = rocketchat.api("GET", "users.info", params={"userId": user.id}).json()
    assert by_name["user"]["_id"] == by_id["user"]["_id"] == user.id
    missing = rocketchat.api("GET", "users.info", params={"username": "no-such-user-xyz"})
    assert missing.status_code == 400
    assert missing.json() == {"success": False, "error": "User not found."}


def test_plain_user_cannot_create_users(rocketchat):
    user = rocketchat.create_user()
    response = rocketchat.api(
        "POST",
        "users.create",
        headers=user.headers,
        json={"username": "should-not", "email": "sn@example.test", "password": "p", "name": "n"},
    )
    assert response.status_code == 400
    assert response.json()["errorType"] == "error-action-not-allowed"
    assert response.json()["details"] == {"method": "insertOrUpdateUser", "action": "Adding_user"}


def test_deactivation_revokes_tokens(rocketchat):
    user = rocketchat.create_user()
    response = rocketchat.api(
        "POST", "users.setActiveStatus", json={"userId": user.id, "activeStatus": False}
    )
    assert response.json() == {"user": {"_id": user.id, "active": False}, "success": True}
    assert rocketchat.api("GET", "me", headers=user.headers).status_code == 401
    relogin = rocketchat.api(
        "POST", "login", headers={}, json={"user": user.username, "password": user.password}
    )
    assert relogin.status_code == 401


def test_channel_post_history_and_duplicate(rocketchat):
    owner = rocketchat.create_user()
    name = f"chan-{owner.username}"
    created = rocketchat.api("POST", "channels.create", headers=owner.headers, json={"name": name})
    assert created.status_code == 200, created.text
    channel = created.json()["channel"]
    assert channel["t"] == "c"
    assert channel["name"] == name
    again = rocketchat.api("POST", "channels.create", headers=owner.headers, json={"name": name})
    assert again.json()["errorType"] == "error-duplicate-channel-name"
    posted = rocketchat.api(
        "POST", "chat.postMessage", headers=owner.headers, json={"channel": f"#{name}", "text": "hi"}
    )
    body = posted.json()
    assert body["success"] is True
    assert isinstance(body["ts"], int)
    assert body["channel"] == f"#{name}"
    assert body["message"]["msg"] == "hi"
    assert body["message"]["rid"] == channel["_id"]
    history = rocketchat.api(
        "GET", "channels.history", headers=owner.headers, params={"roomId": channel["_id"]}
    )
    assert [m["msg"] for m in history.json()["messages"]][:1] == ["hi"]
    info = rocketchat.api("GET", "channels.info", params={"roomName": name}).json()["channel"]
    assert info["_id"] == channel["_id"]


def test_post_to_unknown_channel_is_invalid_channel(rocketchat):
    response = rocketchat.api("POST", "chat.postMessage", json={"channel": "#does-not-exist-zz", "text": "x"})
    assert response.status_code == 400
    assert response.json() == {"success": False, "error": "[invalid-channel]", "errorType": "invalid-channel"}


def test_private_group_is_invisible_to_outsiders(rocketchat):
    owner, outsider = rocketchat.create_user(), rocketchat.create_user()
    group = rocketchat.api(
        "POST", "groups.create", headers=owner.headers, json={"name": f"grp-{owner.username}"}
    )
    rid = group.json()["group"]["_id"]
    assert group.json()["group"]["t"] == "p"
    seen = rocketchat.api("GET", "groups.info", headers=outsider.headers, params={"roomId": rid})
    assert seen.status_code == 400
    assert seen.json()["errorType"] == "error-room-not-found"
    denied = rocketchat.api(
        "POST", "chat.sendMessage", headers=outsider.headers, json={"message": {"rid": rid, "msg": "x"}}
    )
    assert denied.status_code == 400
    invited = rocketchat.api(
        "POST", "groups.invite", headers=owner.headers, json={"roomId": rid, "userId": outsider.id}
    )
    assert invited.status_code == 200
    ok = rocketchat.api(
        "POST", "chat.sendMessage", headers=outsider.headers, json={"message": {"rid": rid, "msg": "in"}}
    )
    assert ok.json()["message"]["msg"] == "in"
    history = rocketchat.api("GET", "groups.history", headers=outsider.headers, params={"roomId": rid}).json()
    assert history["messages"][0]["msg"] == "in"


def test_direct_message_room_id_and_history(rocketchat):
    alice, bob = rocketchat.create_user(), rocketchat.create_user()
    room = rocketchat.api("POST", "im.create", headers=alice.headers, json={"username": bob.username}).json()[
        "room"
    ]
    assert room["t"] == "d"
    assert room["rid"] == room["_id"] == "".join(sorted([alice.id, bob.id]))
    assert sorted(room["usernames"]) == sorted([alice.username, bob.username])
    rocketchat.api(
        "POST", "chat.postMessage", headers=alice.headers, json={"channel": f"@{bob.username}", "text": "yo"}
    )
    history = rocketchat.api("GET", "im.history", headers=bob.headers, params={"roomId": room["_id"]}).json()
    assert history["messages"][0]["msg"] == "yo"
    rooms = rocketchat.api("GET", "rooms.get", headers=bob.headers).json()["update"]
    assert room["_id"] in [r["_id"] for r in rooms]
    subs = rocketchat.api("GET", "subscriptions.get", headers=bob.headers).json()["update"]
    assert any(s["rid"] == room["_id"] and s["name"] == alice.username for s in subs)


def test_update_and_delete_message(rocketchat):
    user = rocketchat.create_user()
    rid = rocketchat.api(
        "POST", "channels.create", headers=user.headers, json={"name": f"ed-{user.username}"}
    ).json()["channel"]["_id"]
    msg = rocketchat.api(
        "POST", "chat.sendMessage", headers=user.headers, json={"message": {"rid": rid, "msg": "a"}}
    )
    mid = msg.json()["message"]["_id"]
    upd = rocketchat.api(
        "POST", "chat.update", headers=user.headers, json={"roomId": rid, "msgId": mid, "text": "b"}
    )
    assert upd.json()["message"]["msg"] == "b"
    assert "editedAt" in upd.json()["message"]
    other = rocketchat.create_user()
    denied = rocketchat.api("POST", "chat.delete", headers=other.headers, json={"roomId": rid, "msgId": mid})
    assert denied.status_code == 400
    deleted = rocketchat.api("POST", "chat.delete", headers=user.headers, json={"roomId": rid, "msgId": mid})
    assert deleted.json()["_id"] == mid


def test_roles_and_permissions(rocketchat):
    roles = {r["_id"] for r in rocketchat.api("GET", "roles.list").json()["roles"]}
    assert {"admin", "user", "bot"} <= roles
    perms = {p["_id"]: p["roles"] for p in rocketchat.api("GET", "permissions.listAll").json()["update"]}
    assert "bot" not in perms["create-personal-access-tokens"]
    user = rocketchat.create_user()
    added = rocketchat.api("POST", "roles.addUserToRole", json={"roleId": "bot", "username": user.username})
    assert added.json()["role"]["_id"] == "bot"
    again = rocketchat.api("POST", "roles.addUserToRole", json={"roleId": "bot", "username": user.username})
    assert again.json()["errorType"] == "error-user-already-in-role"
    in_role = rocketchat.api("GET", "roles.getUsersInRole", params={"role": "bot"}).json()
    assert user.id in [u["_id"] for u in in_role["users"]]
    denied = rocketchat.api("GET", "roles.getUsersInRole", headers=user.headers, params={"role": "bot"})
    assert denied.status_code == 403
    removed = rocketchat.api(
        "POST", "roles.removeUserFromRole", json={"roleId": "bot", "username": user.username}
    )
    assert removed.status_code == 200


def test_password_digest_login_matches_rest(rocketchat):
    """A DDP-style digest body on REST login works like the plain password."""
    user = rocketchat.create_user(login=False)
    digest = hashlib.sha256(user.password.encode()).hexdigest()
    response = httpx.post(
        f"{rocketchat.base_url}/api/v1/login",
        json={"user": user.username, "password": {"digest": digest, "algorithm": "sha-256"}},
        timeout=10,
    )
    assert response.status_code == 200


def test_unknown_endpoint_is_json_404(rocketchat):
    response = rocketchat.api("GET", "no.such.endpoint")
    assert response.status_code == 404
    assert response.json()["success"] is False


def test_form_encoded_login(rocketchat):
    user = rocketchat.create_user(login=False)
    response = rocketchat.api(
        "POST", "login", headers={}, data={"user": user.username, "password": user.password}
    )
    assert response.status_code == 200
    assert response.json()["data"]["userId"] == user.id


def test_room_settings_members_read_only_default(rocketchat):
    owner, member, outsider = rocketchat.create_user(), rocketchat.create_user(), rocketchat.create_user()
    channel = rocketchat.api(
        "POST",
        "channels.create",
        headers=owner.headers,
        json={"name": f"ro-{owner.username}", "members": [member.username]},
    ).json()["channel"]
    members = rocketchat.api(
        "GET", "channels.members", headers=owner.headers, params={"roomId": channel["_id"]}
    ).json()
    assert sorted(m["username"] for m in members["members"]) == sorted([owner.username, member.username])
    assert members["total"] == 2
    denied = rocketchat.api(
        "POST",
        "channels.setReadOnly",
        headers=member.headers,
        json={"roomId": channel["_id"], "readOnly": True},
    )
    assert denied.json()["errorType"] == "error-action-not-allowed"
    ro = rocketchat.api(
        "POST",
        "channels.setReadOnly",
        headers=owner.headers,
        json={"roomId": channel["_id"], "readOnly": True},
    )
    assert ro.json()["channel"]["ro"] is True
    blocked = rocketchat.api(
        "POST", "chat.postMessage", headers=member.headers, json={"roomId": channel["_id"], "text": "x"}
    )
    assert blocked.status_code == 400
    assert (
        rocketchat.api(
            "POST", "chat.postMessage", headers=owner.headers, json={"roomId": channel["_id"], "text": "ok"}
        ).status_code
        == 200
    )
    default = rocketchat.api("POST", "channels.setDefault", json={"roomId": channel["_id"], "default": True})
    assert default.json()["channel"]["default"] is True
    same = rocketchat.api("POST", "channels.setDefault", json={"roomId": channel["_id"], "default": True})
    assert same.status_code == 400
    fresh = rocketchat.api(
        "POST",
        "users.create",
        json={
            "username": f"d-{outsider.username}",
            "email": f"d-{outsider.username}@example.test",
            "password": "p",
            "name": "n",
        },
    ).json()["user"]
    joined = rocketchat.api(
        "GET", "channels.members", headers=owner.headers, params={"roomId": channel["_id"]}
    ).json()
    assert fresh["_id"] in [m["_id"] for m in joined["members"]]  # new users join default channels
    rocketchat.api("POST", "channels.setDefault", json={"roomId": channel["_id"], "default": False})
