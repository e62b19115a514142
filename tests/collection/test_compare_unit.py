"""The compare logic of each module: what it would write, given what the server holds."""

from __future__ import annotations

import pytest
from ansible_collections.photomatrix.rocketchat.plugins.module_utils.client import RocketChatClient
from ansible_collections.photomatrix.rocketchat.plugins.modules import (
    rocketchat_integration as integration,
)
from ansible_collections.photomatrix.rocketchat.plugins.modules import (
    rocketchat_permission as permission,
)
from ansible_collections.photomatrix.rocketchat.plugins.modules import (
    rocketchat_room as room,
)
from ansible_collections.photomatrix.rocketchat.plugins.modules import (
    rocketchat_setting as setting,
)
from ansible_collections.photomatrix.rocketchat.plugins.modules import (
    rocketchat_token as token,
)
from ansible_collections.photomatrix.rocketchat.plugins.modules import (
    rocketchat_user as user,
)

pytestmark = pytest.mark.unit


def client_for(fake):
    client = RocketChatClient("http://127.0.0.1:9", transport=fake)
    client.use_token("ADMIN", "admin-token")
    return client


# -- settings ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("current", "wanted", "expected"),
    [
        ("587", 587, "587"),
        (25, "587", 587),
        (25, "abc", "abc"),
        (True, "false", False),
        (True, "yes", "yes"),
        ("Public", "Disabled", "Disabled"),
        (None, "x", "x"),
        (60000, 60000, 60000),
    ],
)
def test_coerce_like_converts_only_losslessly(current, wanted, expected):
    assert setting.coerce_like(current, wanted) == expected


def test_plan_settings_writes_only_what_differs():
    current = {
        "Site_Name": "Photomatrix",
        "SMTP_Port": "587",
        "Language": "en",
        "API_Enable_Rate_Limiter": True,
    }
    wanted = {
        "Site_Name": "Photomatrix",
        "SMTP_Port": 587,
        "Language": "ru",
        "API_Enable_Rate_Limiter": "true",
    }
    assert setting.plan_settings(current, wanted) == {"Language": "ru"}


def test_plan_settings_empty_when_all_equal():
    assert setting.plan_settings({"A": 1, "B": "x"}, {"A": "1", "B": "x"}) == {}


@pytest.mark.parametrize(
    ("setting_id", "secret"),
    [
        ("SMTP_Password", True),
        ("Some_Api_Key", True),
        ("Site_Name", False),
        ("Accounts_RegistrationForm", False),
    ],
)
def test_secret_settings_are_recognised(setting_id, secret):
    assert setting.is_secret(setting_id, set()) is secret


def test_declared_secret_setting():
    assert setting.is_secret("SMTP_Username", {"SMTP_Username"})


def test_read_settings_names_the_bad_id(fake_rocketchat):
    fake_rocketchat.on("GET", "settings/Nope", (400, {"success": False, "error": "Setting not found"}))
    with pytest.raises(Exception, match="cannot read setting 'Nope'"):
        setting.read_settings(client_for(fake_rocketchat), ["Nope"])


# -- users ---------------------------------------------------------------------------------------
SERVER_USER = {
    "_id": "B1",
    "username": "erp-bot",
    "name": "ERP bot",
    "emails": [{"address": "bot@example.com", "verified": False}],
    "roles": ["user", "bot"],
    "active": True,
}


def test_user_view_normalises_the_server_document():
    assert user.user_view(SERVER_USER) == {
        "username": "erp-bot",
        "name": "ERP bot",
        "email": "bot@example.com",
        "verified": False,
        "roles": ["bot", "user"],
        "active": True,
    }
    assert user.user_view(None) == {}


def test_plan_update_ignores_unset_fields_and_role_order():
    current = user.user_view(SERVER_USER)
    wanted = {"name": None, "email": None, "verified": None, "roles": ["bot", "user", "bot"], "active": True}
    assert user.plan_update(current, wanted) == {}


def test_plan_update_finds_each_difference():
    current = user.user_view(SERVER_USER)
    wanted = {"name": "Bot", "email": "b@example.com", "verified": True, "roles": ["bot"], "active": False}
    assert user.plan_update(current, wanted) == {
        "name": "Bot",
        "email": "b@example.com",
        "verified": True,
        "roles": ["bot"],
        "active": False,
    }


def test_create_body_for_a_bot():
    body = user.create_body(
        {
            "username": "erp-bot",
            "name": None,
            "email": "bot@example.com",
            "password": "pw",
            "verified": None,
            "roles": ["bot"],
            "active": True,
            "join_default_channels": False,
            "require_password_change": False,
        }
    )
    assert body == {
        "username": "erp-bot",
        "name": "erp-bot",
        "email": "bot@example.com",
        "password": "pw",
        "verified": False,
        "active": True,
        "joinDefaultChannels": False,
        "requirePasswordChange": False,
        "roles": ["bot"],
    }


@pytest.mark.parametrize(
    ("status", "payload", "matches"),
    [
        (200, {"status": "success", "data": {"userId": "B1", "authToken": "t"}}, True),
        (401, {"success": False, "error": "unauthorized"}, False),
        (401, {"status": "error", "error": "totp-required", "message": "TOTP Required"}, True),
    ],
)
def test_password_matches_by_logging_in(fake_rocketchat, status, payload, matches):
    fake_rocketchat.on("POST", "login", (status, payload)).on("POST", "logout", (200, {"status": "success"}))
    assert user.password_matches(client_for(fake_rocketchat), "erp-bot", "pw") is matches
    if matches and status == 200:
        assert fake_rocketchat.endpoints()[-1] == "POST logout"


# -- permissions ---------------------------------------------------------------------------------
CURRENT_PERMISSIONS = {
    "create-personal-access-tokens": ["admin", "user"],
    "api-bypass-rate-limit": ["admin", "bot"],
}


def test_plan_permissions_present_adds_only_missing_roles():
    wanted = {"create-personal-access-tokens": ["bot"], "api-bypass-rate-limit": ["bot"]}
    assert permission.plan_permissions(CURRENT_PERMISSIONS, wanted, "present") == {
        "create-personal-access-tokens": ["admin", "bot", "user"]
    }


def test_plan_permissions_exact_and_absent():
    assert permission.plan_permissions(
        CURRENT_PERMISSIONS, {"api-bypass-rate-limit": ["admin"]}, "exact"
    ) == {"api-bypass-rate-limit": ["admin"]}
    assert permission.plan_permissions(CURRENT_PERMISSIONS, {"api-bypass-rate-limit": ["bot"]}, "absent") == {
        "api-bypass-rate-limit": ["admin"]
    }
    assert (
        permission.plan_permissions(CURRENT_PERMISSIONS, {"api-bypass-rate-limit": ["guest"]}, "absent") == {}
    )


# -- rooms ---------------------------------------------------------------------------------------
def test_room_view_and_plan_room():
    current = room.room_view({"name": "support", "t": "c", "topic": "Help", "ro": False}, ["b", "a"])
    assert current == {
        "name": "support",
        "type": "channel",
        "topic": "Help",
        "read_only": False,
        "default": False,
        "members": ["a", "b"],
    }
    assert room.plan_room(current, {"topic": "Help", "read_only": None, "default": None}) == {}
    assert room.plan_room(current, {"topic": "", "read_only": True, "default": True}) == {
        "topic": "",
        "read_only": True,
        "default": True,
    }


def test_plan_members_adds_and_only_removes_when_exclusive():
    assert room.plan_members(["admin", "x"], ["erp-bot", "admin"], False, {"admin"}) == (["erp-bot"], [])
    assert room.plan_members(["admin", "x", "owner"], ["erp-bot"], True, {"admin", "owner"}) == (
        ["erp-bot"],
        ["x"],
    )


def test_find_room_not_found_is_none(fake_rocketchat):
    fake_rocketchat.on(
        "GET",
        "channels.info",
        (
            400,
            {
                "success": False,
                "error": 'The required "roomId" or "roomName" param provided does not match any channel '
                "[error-room-not-found]",
                "errorType": "error-room-not-found",
            },
        ),
    )
    assert room.find_room(client_for(fake_rocketchat), "nope", "channel") is None
    assert fake_rocketchat.calls[-1]["query"] == {"roomName": "nope"}


def test_room_members_pages_through(fake_rocketchat):
    def members(request):
        offset = int(request["query"]["offset"])
        names = [f"u{i}" for i in range(offset, min(offset + 100, 130))]
        return 200, {"members": [{"username": n} for n in names], "total": 130, "offset": offset}

    fake_rocketchat.on("GET", "groups.members", members)
    assert len(room.room_members(client_for(fake_rocketchat), "R1", "group")) == 130


# -- integrations --------------------------------------------------------------------------------
SERVER_OUTGOING = {
    "_id": "I1",
    "type": "webhook-outgoing",
    "name": "erp-bot-outgoing",
    "enabled": True,
    "username": "erp-bot",
    "channel": ["#support", "all_direct_messages"],
    "scriptEnabled": False,
    "event": "sendMessage",
    "urls": ["http://127.0.0.1:8080/webhook"],
    "triggerWords": ["!erp"],
    "token": "outgoing-token",
}


def outgoing_params(**overrides):
    params = {
        "type": "outgoing",
        "enabled": True,
        "channel": ["support", "all_direct_messages"],
        "username": "erp-bot",
        "alias": None,
        "avatar": None,
        "emoji": None,
        "script_enabled": False,
        "script": None,
        "event": "sendMessage",
        "urls": ["http://127.0.0.1:8080/webhook"],
        "trigger_words": ["!erp"],
    }
    params.update(overrides)
    return params


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("support", "#support"),
        ("#support", "#support"),
        ("@erp-bot", "@erp-bot"),
        ("all_public_channels", "all_public_channels"),
    ],
)
def test_normalize_channel(given, expected):
    assert integration.normalize_channel(given) == expected


def test_as_list_accepts_comma_strings():
    assert integration.as_list("a, b,,c") == ["a", "b", "c"]
    assert integration.as_list(None) == []


def test_plan_integration_unchanged_when_equal():
    current = integration.integration_view(SERVER_OUTGOING)
    wanted = integration.wanted_view(outgoing_params(), "outgoing-token")
    assert integration.plan_integration(current, wanted) == {}


def test_plan_integration_finds_token_and_url_changes():
    current = integration.integration_view(SERVER_OUTGOING)
    wanted = integration.wanted_view(outgoing_params(urls=["http://bot:8080/hook"]), "new-token")
    assert integration.plan_integration(current, wanted) == {
        "urls": ["http://bot:8080/hook"],
        "token": "new-token",
    }


def test_wire_body_joins_lists_the_way_the_api_wants():
    merged = integration.wanted_view(outgoing_params(), "tok")
    body = integration.wire_body(merged, "outgoing", "erp-bot-outgoing")
    assert body["type"] == "webhook-outgoing"
    assert body["channel"] == "#support,all_direct_messages"
    assert body["triggerWords"] == "!erp"
    assert body["urls"] == ["http://127.0.0.1:8080/webhook"]
    assert body["token"] == "tok"
    assert "alias" not in body


def test_integration_without_retry_fields_reads_as_rocketchat_defaults():
    view = integration.integration_view(SERVER_OUTGOING)
    assert (view["retry_failed_calls"], view["retry_count"], view["retry_delay"]) == (
        False,
        6,
        "powers-of-ten",
    )
    # Asking for the defaults of an integration stored without the fields changes nothing.
    wanted = integration.wanted_view(
        outgoing_params(retry_failed_calls=False, retry_count=6, retry_delay="powers-of-ten"),
        "outgoing-token",
    )
    assert integration.plan_integration(view, wanted) == {}
    assert "retry_failed_calls" not in integration.integration_view(
        {**SERVER_OUTGOING, "type": "webhook-incoming"}
    )


def test_plan_integration_finds_each_retry_difference_and_leaves_unset_ones_alone():
    current = integration.integration_view(
        {**SERVER_OUTGOING, "retryFailedCalls": True, "retryCount": "6", "retryDelay": "powers-of-two"}
    )
    assert current["retry_count"] == 6  # a count stored as text (the admin UI's form) reads as a number
    same = integration.wanted_view(
        outgoing_params(retry_failed_calls=True, retry_count=6, retry_delay="powers-of-two"), "outgoing-token"
    )
    assert integration.plan_integration(current, same) == {}
    assert (
        integration.plan_integration(current, integration.wanted_view(outgoing_params(), "outgoing-token"))
        == {}
    )
    changed = integration.wanted_view(
        outgoing_params(retry_failed_calls=False, retry_count=3, retry_delay="increments-of-two"),
        "outgoing-token",
    )
    assert integration.plan_integration(current, changed) == {
        "retry_failed_calls": False,
        "retry_count": 3,
        "retry_delay": "increments-of-two",
    }


def test_wire_body_names_the_retry_fields_as_the_api_does():
    merged = {
        **integration.wanted_view(outgoing_params(), "tok"),
        "retry_failed_calls": True,
        "retry_count": 6,
        "retry_delay": "powers-of-two",
    }
    body = integration.wire_body(merged, "outgoing", "erp-bot-outgoing")
    assert (body["retryFailedCalls"], body["retryCount"], body["retryDelay"]) == (True, 6, "powers-of-two")
    incoming = integration.wire_body(
        {"enabled": True, "username": "erp-bot", "channel": ["#admins"], "script_enabled": False},
        "incoming",
        "erp-alerts",
    )
    assert not {"retryFailedCalls", "retryCount", "retryDelay"} & set(incoming)


def test_masked_view_hides_the_token():
    assert integration.masked_view({"token": "abc", "name": "x"}) == {"token": "********", "name": "x"}


def test_find_integration_needs_the_exact_name(fake_rocketchat):
    items = [
        {**SERVER_OUTGOING, "_id": "I0", "name": "erp-bot-outgoing-old"},
        {**SERVER_OUTGOING, "_id": "I1"},
    ]
    fake_rocketchat.on(
        "GET", "integrations.list", (200, {"integrations": items, "total": 2, "offset": 0, "count": 2})
    )
    found = integration.find_integration(client_for(fake_rocketchat), "erp-bot-outgoing", "outgoing")
    assert found["_id"] == "I1"
    assert integration.find_integration(client_for(fake_rocketchat), "erp-bot", "outgoing") is None


# -- tokens --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("exists", "works", "rotate", "state", "action"),
    [
        (False, False, False, "present", "created"),
        (True, True, False, "present", "none"),
        (True, False, False, "present", "regenerated"),
        (True, True, True, "present", "regenerated"),
        (True, True, False, "absent", "removed"),
        (False, False, False, "absent", "none"),
    ],
)
def test_plan_token(exists, works, rotate, state, action):
    assert token.plan_token(exists, works, rotate, state)[0] == action


def test_token_works_checks_me(fake_rocketchat):
    fake_rocketchat.on(
        "GET",
        "me",
        lambda r: (
            (200, {"_id": r["headers"]["X-User-Id"]})
            if r["headers"]["X-Auth-Token"] == "good"
            else (401, {"success": False, "error": "You must be logged in to do this."})
        ),
    )
    client = client_for(fake_rocketchat)
    assert token.token_works(client, "B1", "good") is True
    assert token.token_works(client, "B1", "bad") is False
