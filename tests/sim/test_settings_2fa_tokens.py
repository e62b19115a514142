"""Settings with two-factor protection, personal access tokens, users.createToken, permissions.update."""

from __future__ import annotations

import hashlib

import pytest

pytestmark = pytest.mark.integration


def test_setting_update_needs_second_factor(rocketchat):
    response = rocketchat.api("POST", "settings/Site_Name", json={"value": "No 2FA"})
    assert response.status_code == 400
    body = response.json()
    assert body["errorType"] == "totp-required"
    assert body["error"] == "TOTP Required [totp-required]"
    assert body["details"]["method"] == "password"
    wrong = rocketchat.api(
        "POST",
        "settings/Site_Name",
        headers={**rocketchat.admin_headers, "x-2fa-method": "password", "x-2fa-code": "0" * 64},
        json={"value": "Wrong"},
    )
    assert wrong.json()["errorType"] == "totp-invalid"
    ok = rocketchat.api(
        "POST", "settings/Site_Name", headers=rocketchat.admin_2fa_headers, json={"value": "Photomatrix"}
    )
    assert ok.json() == {"success": True}
    assert rocketchat.api("GET", "settings/Site_Name").json() == {
        "_id": "Site_Name",
        "value": "Photomatrix",
        "success": True,
    }
    public = rocketchat.api("GET", "settings.public", headers={}, params={"count": 100}).json()
    assert public["success"] is True
    assert {"_id", "value"} <= set(public["settings"][0])


def test_settings_need_privileged_permission(rocketchat):
    user = rocketchat.create_user()
    assert rocketchat.api("GET", "settings/Site_Name", headers=user.headers).status_code == 403
    assert (
        rocketchat.api("POST", "settings/Site_Name", headers=user.headers, json={"value": "x"}).status_code
        == 403
    )


def test_setting_type_is_checked(rocketchat):
    response = rocketchat.api(
        "POST",
        "settings/API_Enable_Rate_Limiter",
        headers=rocketchat.admin_2fa_headers,
        json={"value": "yes"},
    )
    assert response.status_code == 400


def test_personal_access_token_bypasses_two_factor(rocketchat):
    name = f"pat-{rocketchat.create_user(login=False).username}"
    without = rocketchat.api("POST", "users.generatePersonalAccessToken", json={"tokenName": name})
    assert without.json()["errorType"] == "totp-required"
    created = rocketchat.api(
        "POST",
        "users.generatePersonalAccessToken",
        headers=rocketchat.admin_2fa_headers,
        json={"tokenName": name, "bypassTwoFactor": True},
    )
    token = created.json()["token"]
    pat_headers = {"X-User-Id": rocketchat.admin_user_id, "X-Auth-Token": token}
    assert rocketchat.api("GET", "me", headers=pat_headers).json()["_id"] == rocketchat.admin_user_id
    # a bypassTwoFactor PAT changes 2FA-protected settings without the headers
    assert rocketchat.api(
        "POST", "settings/Site_Name", headers=pat_headers, json={"value": "Via PAT"}
    ).json() == {"success": True}
    listed = rocketchat.api("GET", "users.getPersonalAccessTokens").json()["tokens"]
    assert any(
        t["name"] == name and t["lastTokenPart"] == token[-6:] and t["bypassTwoFactor"] for t in listed
    )
    dup = rocketchat.api(
        "POST",
        "users.generatePersonalAccessToken",
        headers=rocketchat.admin_2fa_headers,
        json={"tokenName": name},
    )
    assert dup.json()["errorType"] == "error-token-already-exists"
    removed = rocketchat.api(
        "POST",
        "users.removePersonalAccessToken",
        headers=rocketchat.admin_2fa_headers,
        json={"tokenName": name},
    )
    assert removed.json() == {"success": True}
    assert rocketchat.api("GET", "me", headers=pat_headers).status_code == 401


def test_bot_role_cannot_create_personal_access_tokens(rocketchat):
    bot = rocketchat.create_user(roles=["bot"])
    code = hashlib.sha256(bot.password.encode()).hexdigest()
    response = rocketchat.api(
        "POST",
        "users.generatePersonalAccessToken",
        headers={**bot.headers, "x-2fa-method": "password", "x-2fa-code": code},
        json={"tokenName": "bot-token"},
    )
    assert response.status_code == 400
    assert response.json()["errorType"] == "not-authorized"


def test_permissions_update_grants_bot_tokens(rocketchat_sim):
    sim = rocketchat_sim({"OVERWRITE_SETTING_Accounts_TwoFactorAuthentication_Enabled": "false"})
    bot = sim.create_user(roles=["bot"])
    before = sim.api(
        "POST", "users.generatePersonalAccessToken", headers=bot.headers, json={"tokenName": "t"}
    )
    assert before.json()["errorType"] == "not-authorized"
    perms = {p["_id"]: p["roles"] for p in sim.api("GET", "permissions.listAll").json()["update"]}
    update = sim.api(
        "POST",
        "permissions.update",
        json={
            "permissions": [
                {
                    "_id": "create-personal-access-tokens",
                    "roles": [*perms["create-personal-access-tokens"], "bot"],
                }
            ]
        },
    )
    assert update.status_code == 200
    after = sim.api("POST", "users.generatePersonalAccessToken", headers=bot.headers, json={"tokenName": "t"})
    assert "token" in after.json()
    denied = sim.api("POST", "permissions.update", headers=bot.headers, json={"permissions": []})
    assert denied.status_code == 403
    bad = sim.api(
        "POST", "permissions.update", json={"permissions": [{"_id": "no-such-perm", "roles": ["bot"]}]}
    )
    assert bad.json()["errorType"] == "error-invalid-permission"


def test_create_token_needs_the_secret(rocketchat):
    if not rocketchat.is_simulator:
        pytest.skip("the real server's CREATE_TOKENS_FOR_USERS_SECRET is not known to the tests")
    user = rocketchat.create_user(login=False)
    bad = rocketchat.api("POST", "users.createToken", headers={}, json={"userId": user.id, "secret": "wrong"})
    assert bad.status_code == 400
    assert bad.json()["errorType"] == "error-not-authorized"
    ok = rocketchat.api(
        "POST",
        "users.createToken",
        headers={},
        json={"userId": user.id, "secret": "test-create-tokens-secret"},
    )
    data = ok.json()["data"]
    assert data["userId"] == user.id
    assert (
        rocketchat.api(
            "GET", "me", headers={"X-User-Id": user.id, "X-Auth-Token": data["authToken"]}
        ).status_code
        == 200
    )


def test_users_update_is_two_factor_protected(rocketchat):
    user = rocketchat.create_user()
    plain = rocketchat.api("POST", "users.update", json={"userId": user.id, "data": {"name": "New Name"}})
    assert plain.json()["errorType"] == "totp-required"
    ok = rocketchat.api(
        "POST",
        "users.update",
        headers=rocketchat.admin_2fa_headers,
        json={"userId": user.id, "data": {"name": "New Name"}},
    )
    assert ok.json()["user"]["name"] == "New Name"


def test_new_admin_is_remembered_for_two_factor(rocketchat_sim):
    """Rocket.Chat skips 2FA for a user created less than RememberFor seconds ago (default 1800)."""
    sim = rocketchat_sim()
    response = sim.api("POST", "settings/Site_Name", json={"value": "Fresh"})
    assert response.json() == {"success": True}


def test_rate_limiter_headers_and_429(rocketchat_sim):
    sim = rocketchat_sim({"OVERWRITE_SETTING_API_Enable_Rate_Limiter_Limit_Calls_Default": "3"})
    user = sim.create_user()
    statuses, headers = [], []
    for _ in range(4):
        response = sim.api("GET", "me", headers=user.headers)
        statuses.append(response.status_code)
        headers.append(response.headers)
    assert statuses == [200, 200, 200, 429]
    assert headers[0]["X-RateLimit-Limit"] == "3"
    assert [h["X-RateLimit-Remaining"] for h in headers] == ["2", "1", "0", "0"]
    assert int(headers[3]["X-RateLimit-Reset"]) > 1_600_000_000_000  # epoch ms
    body = sim.api("GET", "me", headers=user.headers).json()
    assert body["success"] is False
    assert body["error"].endswith("[error-too-many-requests]")
    # admins hold api-bypass-rate-limit: no headers at all
    assert "X-RateLimit-Limit" not in sim.api("GET", "me").headers
    # switched off by setting
    sim.api("POST", "settings/API_Enable_Rate_Limiter", json={"value": False})
    assert sim.api("GET", "me", headers=user.headers).status_code == 200
