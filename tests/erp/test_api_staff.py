"""Bot scope over real HTTP: positions, registration, idempotency, look-ups, and every bad-input class."""

from __future__ import annotations

import pytest
from plugins.erp import idem

pytestmark = pytest.mark.integration
API = "/api/bot/v1"


def test_positions_lists_active_ones_with_their_erp_access(erp_server):
    with erp_server.client(erp_server.bot_key) as client:
        response = client.get(f"{API}/positions")
    assert response.status_code == 200
    items = {p["code"]: p for p in response.json()["items"]}
    assert "OPR" not in items  # inactive
    assert items["ENG"]["erp_access"] is True
    assert items["ENG"]["requires_approval"] is False
    assert items["ACC"]["requires_approval"] is True
    assert items["DRV"]["erp_access"] is False
    assert set(items["ENG"]) == {
        "code", "name", "department", "erp_access", "erp_role", "requires_approval", "is_active"
    }  # fmt: skip


@pytest.mark.parametrize(
    ("position", "status", "has_user"),
    [
        ("ENG", "awaiting_activation", True),
        ("ACC", "pending_approval", False),
        ("DRV", "no_erp_access", False),
    ],
)
def test_registration_status_follows_the_position(erp_server, new_staff, position, status, has_user):
    body = new_staff(
        position_code=position,
        email="Mixed.Case@Example.com".replace("Mixed", new_staff()["rocketchat_username"]),
    )
    with erp_server.client(erp_server.bot_key) as client:
        response = client.post(f"{API}/staff", json=body, headers=idem())
    assert response.status_code == 201, response.text
    data = response.json()
    staff = data["staff"]
    assert staff["status"] == status
    assert staff["email"] == body["email"].lower()
    assert staff["position"]["code"] == position
    if has_user:
        assert staff["user"]["login"].startswith("petrov.p")
        assert staff["user"]["is_active"] is False
        assert data["activation"]["login"] == staff["user"]["login"]
        assert len(data["activation"]["code"]) == 6
        assert data["activation"]["code"].isdigit()
    else:
        assert staff["user"] is None
        assert data["activation"] is None


def test_code_is_never_returned_again_and_lookups_agree(erp_server, new_staff):
    body = new_staff()
    with erp_server.client(erp_server.bot_key) as client:
        created = client.post(f"{API}/staff", json=body, headers=idem()).json()
        staff_id = created["staff"]["id"]
        by_id = client.get(f"{API}/staff/{staff_id}")
        by_name = client.get(f"{API}/staff", params={"rocketchat_username": body["rocketchat_username"]})
        by_rcid = client.get(f"{API}/staff", params={"rocketchat_user_id": body["rocketchat_user_id"]})
        by_email = client.get(f"{API}/staff", params={"email": body["email"].upper()})
        nobody = client.get(f"{API}/staff", params={"rocketchat_username": "nobody-at-all"})
    assert by_id.status_code == 200
    assert created["activation"]["code"] not in by_id.text
    for found in (by_name, by_rcid, by_email):
        assert found.status_code == 200
        assert [s["id"] for s in found.json()["items"]] == [staff_id]
    assert nobody.json() == {"items": []}


def test_idempotent_retry_replays_the_same_response_and_creates_nothing(erp_server, new_staff):
    body = new_staff()
    headers = idem()
    with erp_server.client(erp_server.bot_key) as client:
        first = client.post(f"{API}/staff", json=body, headers=headers)
        second = client.post(f"{API}/staff", json=body, headers=headers)
        reused = client.post(f"{API}/staff", json={**body, "phone": "+79990000000"}, headers=headers)
        other_key = client.post(f"{API}/staff", json=body, headers=idem())
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()  # the activation code included
    assert second.headers.get("idempotent-replayed") == "true"
    assert reused.status_code == 422
    assert reused.json()["code"] == "idempotency_key_reused"
    assert other_key.status_code == 409
    assert other_key.json()["code"] == "staff_exists"
    assert other_key.json()["staff_id"] == first.json()["staff"]["id"]


def test_idempotency_keys_are_per_api_key(erp_server, new_staff):
    other = erp_server.create_key("idem-other")
    body = new_staff()
    headers = idem()
    with erp_server.client(erp_server.bot_key) as client:
        assert client.post(f"{API}/staff", json=body, headers=headers).status_code == 201
    with erp_server.client(other) as client:
        response = client.post(f"{API}/staff", json=body, headers=headers)
    assert response.status_code == 409  # not a replay of another key's response
    assert response.json()["code"] == "staff_exists"


@pytest.mark.parametrize("field", ["rocketchat_user_id", "rocketchat_username", "email"])
def test_duplicate_identity_is_409_naming_the_record(erp_server, new_staff, field):
    body = new_staff()
    with erp_server.client(erp_server.bot_key) as client:
        staff_id = client.post(f"{API}/staff", json=body, headers=idem()).json()["staff"]["id"]
        again = new_staff(**{field: body[field]})
        response = client.post(f"{API}/staff", json=again, headers=idem())
    assert response.status_code == 409
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "staff_exists"
    assert response.json()["staff_id"] == staff_id


def test_missing_idempotency_key_is_428(erp_server, new_staff):
    with erp_server.client(erp_server.bot_key) as client:
        response = client.post(f"{API}/staff", json=new_staff())
    assert response.status_code == 428
    assert response.json()["code"] == "idempotency_key_required"


@pytest.mark.parametrize("code", ["NOPE", "OPR"])
def test_unknown_or_inactive_position_is_refused(erp_server, new_staff, code):
    with erp_server.client(erp_server.bot_key) as client:
        response = client.post(f"{API}/staff", json=new_staff(position_code=code), headers=idem())
    assert response.status_code == 422
    assert response.json()["code"] == "position_not_found"


BAD_BODIES = {
    "name_with_digits": {"full_name": "Иван 2"},
    "name_too_short": {"full_name": "И"},
    "name_too_long": {"full_name": "Я" * 151},
    "name_control_character": {"full_name": "Иван\u0007 Петров"},
    "name_other_script": {"full_name": "李 小龙"},
    "name_double_space": {"full_name": "Иван  Петров"},
    "email_invalid": {"email": "not-an-email"},
    "email_too_long": {"email": "a" * 250 + "@example.com"},
    "phone_not_e164": {"phone": "89991234567"},
    "phone_letters": {"phone": "+7999abc4567"},
    "username_bad_chars": {"rocketchat_username": "bad name"},
    "user_id_too_long": {"rocketchat_user_id": "x" * 65},
    "wrong_type": {"full_name": 42},
    "unknown_field": {"is_admin": True},
    "null_required": {"email": None},
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_input_is_a_422_with_the_location(erp_server, new_staff, case):
    body = {**new_staff(), **BAD_BODIES[case]}
    with erp_server.client(erp_server.bot_key) as client:
        response = client.post(f"{API}/staff", json=body, headers=idem())
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert problem["errors"], problem
    assert all(err["loc"][0] == "body" for err in problem["errors"])


def test_missing_field_and_malformed_json_are_422(erp_server, new_staff):
    body = new_staff()
    del body["email"]
    with erp_server.client(erp_server.bot_key) as client:
        missing = client.post(f"{API}/staff", json=body, headers=idem())
        broken = client.post(
            f"{API}/staff", content=b'{"full_name": ', headers={**idem(), "Content-Type": "application/json"}
        )
        not_json = client.post(f"{API}/staff", content=b"a=b", headers=idem())
    for response in (missing, broken):
        assert response.status_code == 422
        assert response.json()["code"] == "validation_error"
    assert not_json.status_code == 415  # a body that is not declared JSON
    assert not_json.json()["code"] == "unsupported_media_type"


def test_oversized_body_is_413(erp_server, new_staff):
    huge = {**new_staff(), "padding": "x" * 100_000}
    with erp_server.client(erp_server.bot_key) as client:
        response = client.post(f"{API}/staff", json=huge, headers=idem())
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


def test_bad_query_and_path_values_are_422_not_500(erp_server):
    with erp_server.client(erp_server.bot_key) as client:
        no_filter = client.get(f"{API}/staff")
        bad_id = client.get(f"{API}/staff/abc")
        huge_id = client.get(f"{API}/staff/99999999999999999999")
        missing = client.get(f"{API}/staff/2147483647")
    assert no_filter.status_code == 422
    assert bad_id.status_code == 422
    assert huge_id.status_code == 422
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"


def test_unknown_route_is_a_problem_404(erp_server):
    with erp_server.client(erp_server.bot_key) as client:
        response = client.get(f"{API}/nothing-here")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_request_id_is_echoed_or_generated(erp_server):
    with erp_server.client(erp_server.bot_key) as client:
        given = client.get(f"{API}/positions", headers={"X-Request-ID": "trace-123"})
        generated = client.get(f"{API}/positions", headers={"X-Request-ID": "x" * 200})
        problem = client.get(f"{API}/staff/2147483647", headers={"X-Request-ID": "trace-404"})
    assert given.headers["x-request-id"] == "trace-123"
    assert generated.headers["x-request-id"] != "x" * 200
    assert len(generated.headers["x-request-id"]) == 32
    assert problem.json()["request_id"] == "trace-404"


def test_health_readiness_metrics(erp_server):
    with erp_server.client() as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json() == {"status": "ready"}
        metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert "erp_http_requests_total" in metrics.text
