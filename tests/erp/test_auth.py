"""Authentication and authorisation over real HTTP: keys, JWTs, scopes, per-key networks, audit."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest

pytestmark = pytest.mark.integration
API = "/api/bot/v1"


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-API-Key": "erp_wrong"}, {"Authorization": "Bearer not-a-jwt"}, {"Authorization": "Basic eDp5"}],
    ids=["none", "unknown-key", "garbage-jwt", "basic"],
)
def test_missing_or_bad_credentials_are_401(erp_server, headers):
    response = httpx.get(f"{erp_server.base_url}{API}/positions", headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    assert response.headers["content-type"].startswith("application/problem+json")


def test_bot_key_cannot_use_admin_endpoints(erp_server):
    with erp_server.client(erp_server.bot_key) as client:
        response = client.get(f"{API}/audit")
        approve = client.post(f"{API}/staff/1/approve")
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert approve.status_code == 403


def test_admin_only_key_cannot_use_bot_endpoints(erp_server):
    key = erp_server.create_key("admin-only", scopes=("admin",))
    with erp_server.client(key) as client:
        assert client.get(f"{API}/positions").status_code == 403
        assert client.get(f"{API}/audit").status_code == 200


def test_jwt_exchanged_for_a_key_works_for_at_most_15_minutes(erp_server):
    with erp_server.client(erp_server.bot_key) as client:
        issued = client.post(f"{API}/auth/token")
    assert issued.status_code == 200
    body = issued.json()
    assert body["token_type"] == "bearer"
    assert 0 < body["expires_in"] <= 900
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] <= 900
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    assert httpx.get(f"{erp_server.base_url}{API}/positions", headers=bearer).status_code == 200
    # A token cannot mint tokens, and the bot scope carries over.
    assert httpx.post(f"{erp_server.base_url}{API}/auth/token", headers=bearer).status_code == 401
    assert httpx.get(f"{erp_server.base_url}{API}/audit", headers=bearer).status_code == 403


def test_forged_jwt_is_refused(erp_server):
    claims = {"iss": "photomatrix-erp", "aud": "erp-bot-api", "sub": "1", "iat": int(time.time()),
              "exp": int(time.time()) + 600}  # fmt: skip
    forged = jwt.encode(claims, "not-the-server-secret-not-the-server-secret", algorithm="HS256")
    response = httpx.get(
        f"{erp_server.base_url}{API}/positions", headers={"Authorization": f"Bearer {forged}"}
    )
    assert response.status_code == 401


def test_revoked_key_stops_working(erp_server):
    key = erp_server.create_key("to-revoke")
    with erp_server.client(key) as client:
        assert client.get(f"{API}/positions").status_code == 200
        erp_server.revoke_key("to-revoke")
        time.sleep(0.7)  # the key cache TTL in tests is 0.5 s
        response = client.get(f"{API}/positions")
    assert response.status_code == 401


def test_key_limited_to_other_networks_gets_403_revealing_nothing(erp_server):
    key = erp_server.create_key("far-away", allow=("192.0.2.0/24",))
    near = erp_server.create_key("loopback-only", allow=("127.0.0.0/8",))
    with erp_server.client(key) as client:
        denied = client.get(f"{API}/positions")
    with erp_server.client(near) as client:
        allowed = client.get(f"{API}/positions")
    assert denied.status_code == 403
    assert denied.json()["code"] == "forbidden"
    assert "192.0.2" not in denied.text
    assert allowed.status_code == 200


def test_auth_failures_are_audited_without_secrets(erp_server):
    secret_looking = "erp_this-is-not-a-real-key-but-must-not-be-logged"
    httpx.get(
        f"{erp_server.base_url}{API}/positions",
        headers={"X-API-Key": secret_looking, "X-Request-ID": "audit-me-1"},
    )
    with erp_server.client(erp_server.admin_key) as client:
        events = client.get(f"{API}/audit", params={"limit": 200}).json()["items"]
    mine = [e for e in events if e["request_id"] == "audit-me-1"]
    assert len(mine) == 1
    assert mine[0]["action"] == "auth"
    assert mine[0]["outcome"] == "unauthorized"
    assert mine[0]["source_ip"] == "127.0.0.1"
    assert secret_looking not in str(events)
    assert erp_server.admin_key not in str(events)


def test_refused_mutations_are_audited_with_the_key(erp_server):
    with erp_server.client(erp_server.bot_key) as client:
        client.post(f"{API}/staff", json={"full_name": 1}, headers={"X-Request-ID": "audit-invalid-1"})
    with erp_server.client(erp_server.admin_key) as client:
        events = client.get(f"{API}/audit", params={"limit": 200}).json()["items"]
    mine = [e for e in events if e["request_id"] == "audit-invalid-1"]
    assert len(mine) == 1
    assert mine[0]["outcome"] == "validation_error"
    assert mine[0]["key_name"] == "bot"
