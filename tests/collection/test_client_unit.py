"""The shared REST client: envelopes, authentication, two-factor headers, error messages."""

from __future__ import annotations

import hashlib

import pytest
from ansible_collections.photomatrix.rocketchat.plugins.module_utils.client import (
    RocketChatClient,
    RocketChatError,
    parse_error,
    sha256_hex,
)

pytestmark = pytest.mark.unit

PASSWORD = "s3cret-Passw0rd"
TOKEN = "login-token-abcdef"


def login_ok(request):
    return 200, {
        "status": "success",
        "data": {"userId": "U1", "authToken": TOKEN, "me": {"username": "admin"}},
    }


@pytest.fixture
def client(fake_rocketchat):
    fake_rocketchat.on("POST", "login", login_ok).on("POST", "logout", (200, {"status": "success"}))
    return RocketChatClient("http://127.0.0.1:9/", transport=fake_rocketchat, timeout=7.5)


def test_sha256_hex_is_the_lowercase_hex_digest():
    assert sha256_hex("abc") == hashlib.sha256(b"abc").hexdigest()


@pytest.mark.parametrize(
    ("body", "message", "error_type"),
    [
        (b'{"success":false,"error":"User not found."}', "User not found.", None),
        (
            b'{"success":false,"error":"TOTP Required [totp-required]","errorType":"totp-required",'
            b'"details":{"method":"password"}}',
            "TOTP Required [totp-required]",
            "totp-required",
        ),
        (
            b'{"status":"error","message":"You must be logged in to do this."}',
            "You must be logged in to do this.",
            None,
        ),
        (
            b'{"status":"error","error":"totp-required","message":"TOTP Required"}',
            "TOTP Required",
            "totp-required",
        ),
        (b"<html>bad gateway</html>", "<html>bad gateway</html>", None),
        (b"", "HTTP 502 with an empty body", None),
    ],
)
def test_parse_error_reads_every_known_failure_shape(body, message, error_type):
    parsed_message, parsed_type, _ = parse_error(502, body)
    assert parsed_message == message
    assert parsed_type == error_type


def test_login_keeps_token_and_sets_password_two_factor(client, fake_rocketchat):
    client.login("admin", PASSWORD)
    fake_rocketchat.on("POST", "settings/Site_Name", (200, {"success": True}))
    client.post("settings/Site_Name", {"value": "x"}, two_factor=True)
    call = fake_rocketchat.calls[-1]
    assert call["headers"]["X-User-Id"] == "U1"
    assert call["headers"]["X-Auth-Token"] == TOKEN
    assert call["headers"]["x-2fa-method"] == "password"
    assert call["headers"]["x-2fa-code"] == hashlib.sha256(PASSWORD.encode()).hexdigest()
    assert call["timeout"] == 7.5
    assert client.username == "admin"


def test_two_factor_headers_only_on_protected_calls(client, fake_rocketchat):
    client.login("admin", PASSWORD)
    fake_rocketchat.on("GET", "me", (200, {"_id": "U1", "username": "admin"}))
    client.get("me")
    assert "x-2fa-code" not in fake_rocketchat.calls[-1]["headers"]


def test_logout_drops_only_a_token_the_client_made(client, fake_rocketchat):
    client.use_token("U1", "pat")
    client.logout()
    assert "POST logout" not in fake_rocketchat.endpoints()
    client.login("admin", PASSWORD)
    client.logout()
    assert fake_rocketchat.endpoints()[-1] == "POST logout"


def test_wrong_password_is_a_clear_error_without_the_password(fake_rocketchat):
    fake_rocketchat.on("POST", "login", (401, {"success": False, "error": "unauthorized"}))
    client = RocketChatClient("http://127.0.0.1:9", transport=fake_rocketchat)
    with pytest.raises(RocketChatError) as info:
        client.login("admin", PASSWORD)
    assert "wrong user name or password" in str(info.value)
    assert PASSWORD not in str(info.value)


def test_login_demanding_a_second_factor_says_so(fake_rocketchat):
    fake_rocketchat.on(
        "POST",
        "login",
        (
            401,
            {"success": False, "status": "error", "error": "totp-required", "details": {"method": "email"}},
        ),
    )
    client = RocketChatClient("http://127.0.0.1:9", transport=fake_rocketchat)
    with pytest.raises(RocketChatError, match="needs a second factor \\(email\\)"):
        client.login("admin", PASSWORD)


def test_missing_two_factor_is_explained(fake_rocketchat):
    fake_rocketchat.on(
        "POST",
        "settings/Site_Name",
        (
            400,
            {
                "success": False,
                "error": "TOTP Required [totp-required]",
                "errorType": "totp-required",
                "details": {"method": "password", "codeGenerated": False, "availableMethods": []},
            },
        ),
    )
    client = RocketChatClient("http://127.0.0.1:9", transport=fake_rocketchat)
    client.use_token("U1", TOKEN)
    with pytest.raises(RocketChatError) as info:
        client.post("settings/Site_Name", {"value": "x"}, two_factor=True)
    assert info.value.is_two_factor
    assert "requires two-factor confirmation (method 'password')" in str(info.value)
    assert TOKEN not in str(info.value)


def test_revoked_token_is_a_clear_401(fake_rocketchat):
    fake_rocketchat.on("GET", "me", (401, {"success": False, "error": "You must be logged in to do this."}))
    client = RocketChatClient("http://127.0.0.1:9", transport=fake_rocketchat)
    client.use_token("U1", TOKEN)
    with pytest.raises(RocketChatError, match=r"not logged in .*wrong, expired or revoked") as info:
        client.get("me")
    assert info.value.status == 401


def test_success_false_in_a_200_is_still_a_failure(client, fake_rocketchat):
    client.use_token("U1", TOKEN)
    fake_rocketchat.on("GET", "me", (200, {"success": False, "error": "odd"}))
    with pytest.raises(RocketChatError, match="GET /api/v1/me: odd"):
        client.get("me")


def test_query_values_are_encoded(client, fake_rocketchat):
    client.use_token("U1", TOKEN)
    fake_rocketchat.on("GET", "users.info", (200, {"user": {"_id": "U2"}}))
    client.get("users.info", {"username": "a b&c", "includeUserRooms": False, "skip": None})
    assert fake_rocketchat.calls[-1]["query"] == {"username": "a b&c", "includeUserRooms": "false"}


def test_user_not_found_is_none(client, fake_rocketchat):
    client.use_token("U1", TOKEN)
    fake_rocketchat.on("GET", "users.info", (400, {"success": False, "error": "User not found."}))
    assert client.user_by_username("ghost") is None


def test_unauthenticated_call_is_refused_before_sending(fake_rocketchat):
    client = RocketChatClient("http://127.0.0.1:9", transport=fake_rocketchat)
    with pytest.raises(RocketChatError, match="not authenticated"):
        client.get("me")
    assert fake_rocketchat.calls == []


@pytest.mark.parametrize("url", ["", "chat.example.com", "ftp://x"])
def test_server_url_must_be_http(url):
    with pytest.raises(RocketChatError, match="server_url"):
        RocketChatClient(url, transport=lambda *a: (200, b"{}"))


def test_unreachable_server_is_a_clear_error():
    from ansible_collections.photomatrix.rocketchat.plugins.module_utils.client import default_transport
    from plugins.processes import free_port

    client = RocketChatClient(f"http://127.0.0.1:{free_port()}", transport=default_transport(), timeout=2)
    with pytest.raises(RocketChatError, match=r"cannot reach Rocket\.Chat"):
        client.login("admin", PASSWORD)


def test_rate_limited_call_waits_the_announced_time_then_retries(fake_rocketchat):
    answers = iter(
        [
            (
                429,
                {
                    "success": False,
                    "error": "Error, too many requests. Please slow down. You must wait 12 seconds before "
                    "trying this endpoint again. [error-too-many-requests]",
                },
            ),
            (200, {"status": "success", "data": {"userId": "U1", "authToken": TOKEN}}),
        ]
    )
    fake_rocketchat.on("POST", "login", lambda request: next(answers))
    slept: list[float] = []
    client = RocketChatClient("http://127.0.0.1:9", transport=fake_rocketchat, sleep=slept.append)
    client.login("admin", PASSWORD)
    assert slept == [13.0]
    assert client.user_id == "U1"


def test_rate_limit_beyond_the_budget_fails_instead_of_hanging(fake_rocketchat):
    fake_rocketchat.on(
        "POST",
        "login",
        (429, {"success": False, "error": "You must wait 600 seconds before trying this endpoint again."}),
    )
    slept: list[float] = []
    client = RocketChatClient("http://127.0.0.1:9", transport=fake_rocketchat, sleep=slept.append)
    with pytest.raises(RocketChatError, match="HTTP 429"):
        client.login("admin", PASSWORD)
    assert slept == []
