"""Every REST response of a scripted session, validated against Rocket.Chat's official OpenAPI definitions.

The scenario drives each covered operation (successes and the documented errors) against the shared
target — the simulator, or a real server when ROCKETCHAT_URL is set — records every exchange, and
checks each response with openapi-core. Specs are loaded once per session, only the files needed.
Tolerated spec quirks are listed in QUIRKS (and in docs/simulator.md).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import yaml

pytestmark = pytest.mark.integration

SPEC_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "rocketchat" / "openapi"
SPEC_HOST = "https://apiexplorer.support.rocket.chat"

# operation → spec file; im.* endpoints are documented under their dm.* aliases.
OPERATIONS: dict[tuple[str, str], str] = {
    ("POST", "/api/v1/login"): "authentication.yaml",
    ("POST", "/api/v1/logout"): "authentication.yaml",
    ("GET", "/api/v1/me"): "authentication.yaml",
    ("POST", "/api/v1/users.create"): "user-management.yaml",
    ("GET", "/api/v1/users.info"): "user-management.yaml",
    ("GET", "/api/v1/users.list"): "user-management.yaml",
    ("POST", "/api/v1/users.update"): "user-management.yaml",
    ("POST", "/api/v1/users.setActiveStatus"): "user-management.yaml",
    ("POST", "/api/v1/users.delete"): "user-management.yaml",
    ("POST", "/api/v1/users.generatePersonalAccessToken"): "user-management.yaml",
    ("GET", "/api/v1/users.getPersonalAccessTokens"): "user-management.yaml",
    ("POST", "/api/v1/users.removePersonalAccessToken"): "user-management.yaml",
    ("POST", "/api/v1/users.createToken"): "user-management.yaml",
    ("GET", "/api/v1/users.getPresence"): "user-management.yaml",
    ("GET", "/api/v1/roles.list"): "user-management.yaml",
    ("POST", "/api/v1/roles.addUserToRole"): "user-management.yaml",
    ("POST", "/api/v1/roles.removeUserFromRole"): "user-management.yaml",
    ("GET", "/api/v1/roles.getUsersInRole"): "user-management.yaml",
    ("GET", "/api/v1/permissions.listAll"): "user-management.yaml",
    ("POST", "/api/v1/permissions.update"): "user-management.yaml",
    ("GET", "/api/v1/settings/{_id}"): "settings.yaml",
    ("POST", "/api/v1/settings/{_id}"): "settings.yaml",
    ("GET", "/api/v1/settings"): "settings.yaml",
    ("GET", "/api/v1/settings.public"): "settings.yaml",
    ("POST", "/api/v1/settings"): "settings.yaml",
    ("POST", "/api/v1/channels.create"): "rooms.yaml",
    ("GET", "/api/v1/channels.info"): "rooms.yaml",
    ("GET", "/api/v1/channels.list"): "rooms.yaml",
    ("POST", "/api/v1/channels.invite"): "rooms.yaml",
    ("POST", "/api/v1/channels.kick"): "rooms.yaml",
    ("POST", "/api/v1/channels.setTopic"): "rooms.yaml",
    ("GET", "/api/v1/channels.history"): "rooms.yaml",
    ("POST", "/api/v1/groups.create"): "rooms.yaml",
    ("GET", "/api/v1/groups.info"): "rooms.yaml",
    ("POST", "/api/v1/groups.invite"): "rooms.yaml",
    ("GET", "/api/v1/groups.history"): "rooms.yaml",
    ("POST", "/api/v1/dm.create"): "messaging.yaml",
    ("GET", "/api/v1/dm.list"): "messaging.yaml",
    ("GET", "/api/v1/dm.history"): "messaging.yaml",
    ("GET", "/api/v1/rooms.get"): "rooms.yaml",
    ("GET", "/api/v1/subscriptions.get"): "rooms.yaml",
    ("POST", "/api/v1/chat.postMessage"): "messaging.yaml",
    ("POST", "/api/v1/chat.sendMessage"): "messaging.yaml",
    ("POST", "/api/v1/chat.update"): "messaging.yaml",
    ("POST", "/api/v1/chat.delete"): "messaging.yaml",
    ("POST", "/api/v1/integrations.create"): "integrations.yaml",
    ("GET", "/api/v1/integrations.list"): "integrations.yaml",
    ("GET", "/api/v1/integrations.get"): "integrations.yaml",
    ("PUT", "/api/v1/integrations.update"): "integrations.yaml",
    ("POST", "/api/v1/integrations.remove"): "integrations.yaml",
    ("GET", "/api/v1/chat.getMessage"): "messaging.yaml",
    ("GET", "/api/v1/channels.list.joined"): "rooms.yaml",
    ("POST", "/api/v1/channels.join"): "rooms.yaml",
    ("GET", "/api/v1/groups.list"): "rooms.yaml",
    ("POST", "/api/v1/groups.kick"): "rooms.yaml",
    ("POST", "/api/v1/groups.setTopic"): "rooms.yaml",
    ("GET", "/api/v1/rooms.info"): "rooms.yaml",
    ("GET", "/api/v1/subscriptions.getOne"): "rooms.yaml",
    ("POST", "/api/v1/users.regeneratePersonalAccessToken"): "user-management.yaml",
    ("GET", "/api/v1/channels.members"): "rooms.yaml",
    ("GET", "/api/v1/groups.members"): "rooms.yaml",
    ("POST", "/api/v1/channels.setReadOnly"): "rooms.yaml",
    ("POST", "/api/v1/groups.setReadOnly"): "rooms.yaml",
    ("POST", "/api/v1/channels.setDefault"): "rooms.yaml",
    ("POST", "/api/v1/chat.react"): "messaging.yaml",
    ("POST", "/api/v1/chat.pinMessage"): "messaging.yaml",
    ("POST", "/api/v1/chat.starMessage"): "messaging.yaml",
    ("GET", "/api/v1/chat.search"): "messaging.yaml",
    ("GET", "/api/v1/chat.getPinnedMessages"): "messaging.yaml",
    ("GET", "/api/v1/chat.getStarredMessages"): "messaging.yaml",
    ("POST", "/api/v1/chat.unStarMessage"): "messaging.yaml",
    ("POST", "/api/v1/chat.unPinMessage"): "messaging.yaml",
    ("GET", "/api/v1/channels.counters"): "rooms.yaml",
    ("GET", "/api/v1/channels.roles"): "rooms.yaml",
    ("POST", "/api/v1/channels.addModerator"): "rooms.yaml",
    ("GET", "/api/v1/channels.moderators"): "rooms.yaml",
    ("POST", "/api/v1/channels.removeModerator"): "rooms.yaml",
    ("POST", "/api/v1/channels.setDescription"): "rooms.yaml",
    ("POST", "/api/v1/channels.setAnnouncement"): "rooms.yaml",
    ("POST", "/api/v1/channels.rename"): "rooms.yaml",
    ("GET", "/api/v1/channels.messages"): "rooms.yaml",
    ("POST", "/api/v1/channels.leave"): "rooms.yaml",
    ("POST", "/api/v1/groups.archive"): "rooms.yaml",
    ("POST", "/api/v1/groups.unarchive"): "rooms.yaml",
    ("POST", "/api/v1/rooms.favorite"): "rooms.yaml",
    ("POST", "/api/v1/subscriptions.read"): "rooms.yaml",
    ("POST", "/api/v1/subscriptions.unread"): "rooms.yaml",
    ("POST", "/api/v1/users.setStatus"): "user-management.yaml",
    ("GET", "/api/v1/users.getStatus"): "user-management.yaml",
    ("GET", "/api/v1/users.getPreferences"): "user-management.yaml",
    ("GET", "/api/v1/spotlight"): "miscellaneous.yaml",
    ("GET", "/api/v1/directory"): "rooms.yaml",
    ("GET", "/api/v1/licenses.info"): "miscellaneous.yaml",
    ("GET", "/api/v1/rooms.nameExists"): "rooms.yaml",
    ("POST", "/api/v1/users.register"): "user-management.yaml",
}

# Where the official definitions contradict what Rocket.Chat really sends, the schema is corrected before
# validation, each named here and in docs/simulator.md: (operation, schema path, new schema, why)
_ANY: dict[str, Any] = {}
_STRINGS = {"type": "array", "items": {"type": "string"}}
QUIRKS: list[tuple[tuple[str, str], tuple[str, ...], dict[str, Any], str]] = [
    (
        ("GET", "/api/v1/integrations.list"),
        ("integrations", "items", "channel"),
        _STRINGS,
        "channel is stored as an array of strings ('#room', '@user'), the spec says array of objects",
    ),
    (
        ("POST", "/api/v1/integrations.remove"),
        ("integration", "channel"),
        _STRINGS,
        "channel is typed boolean in the spec",
    ),
    (
        ("POST", "/api/v1/integrations.remove"),
        ("integration", "scriptEnabled"),
        {"type": "boolean"},
        "scriptEnabled is typed string in the spec",
    ),
    (
        ("POST", "/api/v1/integrations.remove"),
        ("integration", "enabled"),
        {"type": "boolean"},
        "enabled is typed string in the spec",
    ),
    (
        ("GET", "/api/v1/settings"),
        ("settings", "items", "value"),
        _ANY,
        "setting values may be numbers (e.g. API_Default_Count), the spec allows boolean|string",
    ),
    (
        ("GET", "/api/v1/settings.public"),
        ("settings", "items", "value"),
        _ANY,
        "same as GET /api/v1/settings",
    ),
    (
        ("GET", "/api/v1/settings/{_id}"),
        ("value",),
        _ANY,
        "value is typed boolean (from the Livechat_enabled example); settings hold strings and numbers too",
    ),
]


def _template(path: str) -> str:
    if path.startswith("/api/v1/settings/"):
        return "/api/v1/settings/{_id}"
    return path.replace("/api/v1/im.", "/api/v1/dm.")


class Recorder:
    def __init__(self) -> None:
        self.exchanges: list[tuple[httpx.Request, httpx.Response]] = []

    def hook(self, response: httpx.Response) -> None:
        response.read()
        self.exchanges.append((response.request, response))


@pytest.fixture(scope="module")
def specs() -> dict[str, Any]:
    if not SPEC_DIR.is_dir():
        pytest.skip(f"Rocket.Chat OpenAPI definitions not found at {SPEC_DIR}")
    return {}


def _load(specs: dict[str, Any], name: str) -> Any:
    from openapi_core import OpenAPI

    if name not in specs:
        document = yaml.safe_load((SPEC_DIR / name).read_text())
        for (method, path), pointer, replacement, _why in QUIRKS:
            if OPERATIONS[(method, path)] != name:
                continue
            node = document["paths"][path][method.lower()]["responses"]["200"]["content"]["application/json"]
            node = node["schema"]
            for key in pointer[:-1]:
                node = node["items"] if key == "items" else node["properties"][key]
            node["properties"][pointer[-1]] = replacement
        specs[name] = OpenAPI.from_dict(document)
    return specs[name]


def _scenario(rc: Any, client: httpx.Client) -> None:
    """Drive every operation in OPERATIONS at least once, including the documented errors."""
    admin = rc.admin_headers
    tfa = rc.admin_2fa_headers
    tag = secrets.token_hex(4)

    def call(method: str, path: str, headers: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
        return client.request(method, f"/api/v1/{path}", headers=admin if headers is None else headers, **kw)

    password = secrets.token_urlsafe(10)
    user = call(
        "POST",
        "users.create",
        json={
            "username": f"ct-{tag}",
            "email": f"ct-{tag}@example.test",
            "password": password,
            "name": "Contract",
            "verified": False,
            "joinDefaultChannels": False,
        },
    ).json()["user"]
    call(
        "POST",
        "users.create",
        json={"username": f"ct-{tag}", "email": f"x{tag}@example.test", "password": "p", "name": "n"},
    )
    login = call("POST", "login", headers={}, json={"user": f"ct-{tag}", "password": password}).json()["data"]
    uh = {"X-User-Id": login["userId"], "X-Auth-Token": login["authToken"]}
    call("POST", "login", headers={}, json={"user": f"ct-{tag}", "password": "wrong"})
    call("GET", "me", headers=uh)
    call("GET", "me", headers={})
    call("GET", "users.info", params={"userId": user["_id"]})
    call("GET", "users.info", params={"username": "no-such-user-" + tag})
    call("GET", "users.list", params={"count": 5})
    call("POST", "users.update", json={"userId": user["_id"], "data": {"name": "No 2FA"}})
    call("POST", "users.update", headers=tfa, json={"userId": user["_id"], "data": {"name": "Contract User"}})
    call("GET", "users.getPresence", params={"userId": user["_id"]})
    call("GET", "roles.list")
    call("POST", "roles.addUserToRole", json={"roleId": "bot", "username": f"ct-{tag}"})
    call("POST", "roles.addUserToRole", json={"roleId": "bot", "username": f"ct-{tag}"})
    call("GET", "roles.getUsersInRole", params={"role": "bot"})
    call("POST", "roles.removeUserFromRole", json={"roleId": "bot", "username": f"ct-{tag}"})
    perms = call("GET", "permissions.listAll").json()["update"]
    current = next(p for p in perms if p["_id"] == "create-personal-access-tokens")
    call(
        "POST",
        "permissions.update",
        json={"permissions": [{"_id": current["_id"], "roles": current["roles"]}]},
    )
    call("POST", "permissions.update", headers=uh, json={"permissions": []})
    call("POST", "users.generatePersonalAccessToken", json={"tokenName": f"pat-{tag}"})
    call(
        "POST",
        "users.generatePersonalAccessToken",
        headers=tfa,
        json={"tokenName": f"pat-{tag}", "bypassTwoFactor": True},
    )
    call("GET", "users.getPersonalAccessTokens")
    call("POST", "users.regeneratePersonalAccessToken", headers=tfa, json={"tokenName": f"pat-{tag}"})
    call("POST", "users.removePersonalAccessToken", headers=tfa, json={"tokenName": f"pat-{tag}"})
    if rc.is_simulator:
        call(
            "POST",
            "users.createToken",
            headers={},
            json={"userId": user["_id"], "secret": "test-create-tokens-secret"},
        )
    call("POST", "users.createToken", headers={}, json={"userId": user["_id"], "secret": "wrong"})
    call("GET", "settings/Site_Name")
    call("GET", "settings/Site_Name", headers=uh)
    call("POST", "settings/Site_Name", json={"value": "Contract"})
    call("POST", "settings/Site_Name", headers=tfa, json={"value": "Contract"})
    call("GET", "settings", params={"count": 5})
    bulk = {
        "settings": [{"_id": "Site_Name", "value": "Contract"}, {"_id": "API_Default_Count", "value": 50}]
    }
    call("POST", "settings", json=bulk)
    call("POST", "settings", headers=tfa, json=bulk)
    call("GET", "settings.public", headers={}, params={"count": 5})
    channel = call("POST", "channels.create", json={"name": f"ct-c-{tag}"}).json()["channel"]
    call("POST", "channels.create", json={"name": f"ct-c-{tag}"})
    call("GET", "channels.info", params={"roomId": channel["_id"]})
    call("GET", "channels.info", params={"roomName": f"missing-{tag}"})
    call("GET", "channels.list", params={"count": 5})
    call("POST", "channels.invite", json={"roomId": channel["_id"], "userId": user["_id"]})
    call("POST", "channels.setTopic", json={"roomId": channel["_id"], "topic": "contracts"})
    call("GET", "channels.members", params={"roomId": channel["_id"]})
    call("POST", "channels.setReadOnly", json={"roomId": channel["_id"], "readOnly": True})
    call("POST", "channels.setReadOnly", json={"roomId": channel["_id"], "readOnly": True})
    call("POST", "channels.setReadOnly", json={"roomId": channel["_id"], "readOnly": False})
    call("POST", "channels.setDefault", json={"roomId": channel["_id"], "default": True})
    call("POST", "channels.setDefault", json={"roomId": channel["_id"], "default": False})
    posted = call(
        "POST",
        "chat.postMessage",
        json={"roomId": channel["_id"], "text": "hello", "attachments": [{"text": "a"}]},
    ).json()
    call("POST", "chat.postMessage", json={"channel": f"#missing-{tag}", "text": "x"})
    sent = call("POST", "chat.sendMessage", json={"message": {"rid": channel["_id"], "msg": "sent"}}).json()
    call("POST", "chat.sendMessage", json={})
    call(
        "POST",
        "chat.update",
        json={"roomId": channel["_id"], "msgId": sent["message"]["_id"], "text": "edited"},
    )
    call("POST", "chat.delete", json={"roomId": channel["_id"], "msgId": posted["message"]["_id"]})
    call("GET", "channels.history", params={"roomId": channel["_id"], "count": 10})
    call("POST", "channels.kick", json={"roomId": channel["_id"], "userId": user["_id"]})
    group = call("POST", "groups.create", json={"name": f"ct-p-{tag}"}).json()["group"]
    call("GET", "groups.info", params={"roomId": group["_id"]})
    call("GET", "groups.info", params={"roomName": f"missing-{tag}"})
    call("POST", "groups.invite", json={"roomId": group["_id"], "userId": user["_id"]})
    call("POST", "chat.postMessage", json={"roomId": group["_id"], "text": "in group"})
    call("GET", "groups.history", params={"roomId": group["_id"]})
    call("GET", "groups.list")
    call("GET", "groups.members", params={"roomId": group["_id"]})
    call("POST", "groups.setReadOnly", json={"roomId": group["_id"], "readOnly": True})
    call("POST", "groups.setReadOnly", json={"roomId": group["_id"], "readOnly": False})
    call("POST", "groups.setTopic", json={"roomId": group["_id"], "topic": "private"})
    call("GET", "rooms.info", params={"roomId": group["_id"]})
    call("GET", "subscriptions.getOne", params={"roomId": group["_id"]})
    call("POST", "groups.kick", json={"roomId": group["_id"], "userId": user["_id"]})
    call("POST", "channels.join", headers=uh, json={"roomId": channel["_id"]})
    call("GET", "channels.list.joined", headers=uh)
    call("GET", "chat.getMessage", params={"msgId": sent["message"]["_id"]})
    dm = call("POST", "im.create", json={"username": f"ct-{tag}"}).json()["room"]
    call("POST", "dm.create", json={"username": f"missing-{tag}"})
    call("POST", "chat.postMessage", json={"roomId": dm["_id"], "text": "direct"})
    call("GET", "im.history", params={"roomId": dm["_id"]})
    call("GET", "dm.list")
    call("GET", "rooms.get")
    call("GET", "subscriptions.get")
    _scenario_breadth(call, channel, group, user, uh, sent["message"]["_id"], tag)
    hook = call(
        "POST",
        "integrations.create",
        json={
            "type": "webhook-incoming",
            "name": f"ct-in-{tag}",
            "enabled": True,
            "username": rc.admin_username,
            "channel": f"#ct-c-{tag}",
            "scriptEnabled": False,
        },
    ).json()["integration"]
    out = call(
        "POST",
        "integrations.create",
        json={
            "type": "webhook-outgoing",
            "name": f"ct-out-{tag}",
            "enabled": False,
            "event": "sendMessage",
            "username": rc.admin_username,
            "channel": f"#ct-c-{tag}",
            "urls": ["http://127.0.0.1:9/none"],
            "scriptEnabled": False,
            "triggerWords": "!ct",
        },
    ).json()["integration"]
    call(
        "POST",
        "integrations.create",
        headers=uh,
        json={
            "type": "webhook-incoming",
            "name": "x",
            "enabled": True,
            "username": f"ct-{tag}",
            "channel": f"#ct-c-{tag}",
            "scriptEnabled": False,
        },
    )
    call("GET", "integrations.list", params={"name": f"ct-in-{tag}"})
    call("GET", "integrations.get", params={"integrationId": hook["_id"]})
    call(
        "PUT",
        "integrations.update",
        json={
            "type": "webhook-incoming",
            "integrationId": hook["_id"],
            "name": f"ct-in-{tag}",
            "enabled": False,
            "username": rc.admin_username,
            "channel": f"#ct-c-{tag}",
            "scriptEnabled": False,
        },
    )
    call("POST", "integrations.remove", json={"type": "webhook-incoming", "integrationId": hook["_id"]})
    call("POST", "integrations.remove", json={"type": "webhook-outgoing", "integrationId": out["_id"]})
    call("POST", "integrations.remove", json={"type": "webhook-incoming", "integrationId": hook["_id"]})
    call("POST", "users.setActiveStatus", json={"userId": user["_id"], "activeStatus": False})
    call("POST", "users.setActiveStatus", headers=uh, json={"userId": user["_id"], "activeStatus": True})
    call("POST", "users.delete", json={"userId": user["_id"], "confirmRelinquish": True})
    again = call(
        "POST", "login", headers={}, json={"user": rc.admin_username, "password": rc.admin_password}
    ).json()["data"]
    call("POST", "logout", headers={"X-User-Id": again["userId"], "X-Auth-Token": again["authToken"]})


def _scenario_breadth(
    call: Any, channel: dict, group: dict, user: dict, uh: dict, mid: str, tag: str
) -> None:
    """The operations added for issue 13: reactions, pins, stars, search, room roles, read state, ..."""
    rid = channel["_id"]
    call("POST", "chat.react", json={"messageId": mid, "emoji": "smile"})
    call("POST", "chat.pinMessage", json={"messageId": mid})
    call("POST", "chat.starMessage", json={"messageId": mid})
    call("GET", "chat.search", params={"roomId": rid, "searchText": "sent"})
    call("GET", "chat.getPinnedMessages", params={"roomId": rid})
    call("GET", "chat.getStarredMessages", params={"roomId": rid})
    call("POST", "chat.unStarMessage", json={"messageId": mid})
    call("POST", "chat.unPinMessage", json={"messageId": mid})
    call("GET", "channels.counters", params={"roomId": rid})
    call("GET", "channels.roles", params={"roomId": rid})
    call("POST", "channels.addModerator", json={"roomId": rid, "userId": user["_id"]})
    call("GET", "channels.moderators", params={"roomId": rid})
    call("POST", "channels.removeModerator", json={"roomId": rid, "userId": user["_id"]})
    call("POST", "channels.setDescription", json={"roomId": rid, "description": "described"})
    call("POST", "channels.setAnnouncement", json={"roomId": rid, "announcement": "announced"})
    call("POST", "channels.rename", json={"roomId": rid, "name": f"ct-r-{tag}"})
    call("POST", "channels.rename", json={"roomId": rid, "name": f"ct-c-{tag}"})
    call("GET", "channels.messages", params={"roomId": rid})
    call("POST", "channels.leave", headers=uh, json={"roomId": rid})
    call("POST", "groups.archive", json={"roomId": group["_id"]})
    call("POST", "groups.unarchive", json={"roomId": group["_id"]})
    call("POST", "rooms.favorite", json={"roomId": rid, "favorite": True})
    call("POST", "subscriptions.read", json={"rid": rid})
    call("POST", "subscriptions.unread", json={"roomId": rid})
    call("POST", "users.setStatus", json={"message": "busy here", "status": "busy"})
    call("GET", "users.getStatus")
    call("GET", "users.getPreferences")
    call("GET", "spotlight", params={"query": f"ct-{tag}"})
    call("GET", "directory", params={"type": "channels", "text": f"ct-c-{tag}"})
    call("GET", "licenses.info")
    call("GET", "rooms.nameExists", params={"roomName": f"ct-c-{tag}"})
    call(
        "POST",
        "users.register",
        headers={},
        json={
            "username": f"ct-reg-{tag}",
            "email": f"ct-reg-{tag}@example.test",
            "pass": "R3g-pass!",
            "name": "R",
        },
    )


@pytest.fixture(scope="module")
def exchanges(rocketchat, specs) -> list[tuple[httpx.Request, httpx.Response]]:
    recorder = Recorder()
    with httpx.Client(
        base_url=rocketchat.base_url, timeout=10, event_hooks={"response": [recorder.hook]}
    ) as client:
        _scenario(rocketchat, client)
    return recorder.exchanges


def _validate(spec: Any, request: httpx.Request, response: httpx.Response) -> str | None:
    from openapi_core.templating.responses.exceptions import ResponseNotFound
    from openapi_core.testing import MockRequest, MockResponse

    body = request.content or b""
    mock_request = MockRequest(
        SPEC_HOST,
        request.method.lower(),
        request.url.path.replace("/api/v1/im.", "/api/v1/dm."),
        args=dict(parse_qsl(request.url.query.decode())),
        data=body,
        headers=dict(request.headers),
        content_type=request.headers.get("content-type", "application/json"),
    )
    mock_response = MockResponse(
        response.content,
        status_code=response.status_code,
        headers=dict(response.headers),
        content_type=response.headers.get("content-type", "application/json").split(";")[0],
    )
    try:
        spec.validate_response(mock_request, mock_response)
    except ResponseNotFound:
        return "undocumented-status"
    except Exception as exc:
        detail = "; ".join(str(e) for e in getattr(exc, "schema_errors", []) or [exc.__cause__ or exc])
        return f"{type(exc).__name__}: {detail}"[:2000]
    return None


@pytest.mark.parametrize(("method", "path"), sorted(OPERATIONS), ids=lambda v: v)
def test_responses_match_openapi(method, path, exchanges, specs):
    seen = [(rq, rs) for rq, rs in exchanges if rq.method == method and _template(rq.url.path) == path]
    assert seen, f"the scenario never called {method} {path}"
    spec = _load(specs, OPERATIONS[(method, path)])
    failures = []
    undocumented = []
    for request, response in seen:
        problem = _validate(spec, request, response)
        if problem == "undocumented-status":
            undocumented.append(response.status_code)
        elif problem:
            failures.append(f"{response.status_code} {response.text[:300]}\n  → {problem}")
    assert not failures, "\n".join(failures)
    assert any(rs.status_code == 200 for _, rs in seen), f"no successful call of {method} {path}"


def test_every_table_operation_is_served():
    """OPERATIONS names served operations only (test_api_coverage.py checks that all documented ones are)."""
    if not SPEC_DIR.is_dir():
        pytest.skip(f"Rocket.Chat OpenAPI definitions not found at {SPEC_DIR}")
    import rocketchat_sim.rest  # noqa: F401 - registers the endpoints
    from rocketchat_sim.rest.base import ENDPOINTS

    documented = set()
    for name in sorted({f.name for f in SPEC_DIR.glob("*.yaml")}):
        paths = yaml.safe_load((SPEC_DIR / name).read_text())["paths"]
        documented |= {
            (m.upper(), p) for p, ops in paths.items() for m in ops if m in ("get", "post", "put", "delete")
        }
    served = {(m, _template(ep.path)) for ep in ENDPOINTS for m in ep.methods}
    assert sorted(set(OPERATIONS) - served) == []
    assert set(OPERATIONS) <= documented
