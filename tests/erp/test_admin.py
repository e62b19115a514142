"""Admin scope over real HTTP: approval, rejection, blocking, reissued codes, positions, audit log."""

from __future__ import annotations

import pytest
from plugins.erp import idem

pytestmark = pytest.mark.integration
API = "/api/bot/v1"


def register(client, body):
    response = client.post(f"{API}/staff", json=body, headers=idem())
    assert response.status_code == 201, response.text
    return response.json()


def test_approve_makes_the_user_with_the_same_function_as_the_bot_path(erp_server, new_staff):
    with erp_server.client(erp_server.admin_key) as admin:
        created = register(admin, new_staff(position_code="ACC", full_name="Сидорова Анна"))
        staff_id = created["staff"]["id"]
        assert created["staff"]["status"] == "pending_approval"
        approved = admin.post(f"{API}/staff/{staff_id}/approve")
        again = admin.post(f"{API}/staff/{staff_id}/approve")
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert body["staff"]["status"] == "awaiting_activation"
    assert body["staff"]["user"]["role"] == "accountant"
    assert body["activation"]["login"].startswith("sidorova.a")
    assert again.status_code == 409
    assert again.json()["code"] == "invalid_state"


def test_reject_with_reason(erp_server, new_staff):
    with erp_server.client(erp_server.admin_key) as admin:
        staff_id = register(admin, new_staff(position_code="ACC"))["staff"]["id"]
        rejected = admin.post(f"{API}/staff/{staff_id}/reject", json={"reason": "не работает у нас"})
        approve_after = admin.post(f"{API}/staff/{staff_id}/approve")
        bad_reason = admin.post(f"{API}/staff/{staff_id}/reject", json={"reason": "x\u0000y"})
    assert rejected.status_code == 200
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["status_reason"] == "не работает у нас"
    assert approve_after.status_code == 409
    assert bad_reason.status_code == 422


def test_block_and_unblock_toggle_the_account(erp_server, new_staff):
    with erp_server.client(erp_server.admin_key) as admin:
        staff_id = register(admin, new_staff())["staff"]["id"]
        blocked = admin.post(f"{API}/staff/{staff_id}/block")
        twice = admin.post(f"{API}/staff/{staff_id}/block")
        unblocked = admin.post(f"{API}/staff/{staff_id}/unblock")
    assert blocked.json()["status"] == "blocked"
    assert blocked.json()["user"]["is_active"] is False
    assert twice.status_code == 409
    assert unblocked.json()["status"] == "awaiting_activation"


def test_admin_actions_on_a_missing_record_are_404(erp_server):
    with erp_server.client(erp_server.admin_key) as admin:
        for action in ("approve", "reject", "block", "unblock", "activation-code"):
            response = admin.post(f"{API}/staff/2147483000/{action}")
            assert response.status_code == 404, action
            assert response.json()["code"] == "not_found"


@pytest.fixture
def positions_server(erp_server_factory):
    """A server of its own: the test changes seeded positions (CLN keeps a role the API cannot clear),
    which the modules sharing `erp_server` rely on."""
    return erp_server_factory(name="erp-positions")


def test_position_access_and_role_change_applies_to_existing_accounts(positions_server, new_staff):
    erp_server = positions_server
    with erp_server.client(erp_server.admin_key) as admin:
        staff_id = register(admin, new_staff(position_code="MGR"))["staff"]["id"]
        changed = admin.patch(f"{API}/positions/MGR", json={"erp_role": "sales_lead"})
        staff = admin.get(f"{API}/staff/{staff_id}").json()
        closed = admin.patch(f"{API}/positions/CLN", json={"erp_access": True})
        opened = admin.patch(f"{API}/positions/CLN", json={"erp_access": True, "erp_role": "cleaning"})
        restored = admin.patch(f"{API}/positions/CLN", json={"erp_access": False})
        unknown = admin.patch(f"{API}/positions/NOPE", json={"is_active": True})
        bad = admin.patch(f"{API}/positions/MGR", json={"erp_role": "Bad Role!"})
    assert changed.status_code == 200
    assert changed.json()["erp_role"] == "sales_lead"
    assert staff["user"]["role"] == "sales_lead"
    assert closed.status_code == 422  # access without a role
    assert opened.json()["erp_access"] is True
    assert restored.json()["erp_access"] is False
    assert unknown.status_code == 404
    assert bad.status_code == 422


def test_audit_log_records_mutations_and_never_a_code(erp_server, new_staff):
    with erp_server.client(erp_server.admin_key) as admin:
        created = register(admin, new_staff())
        staff_id = created["staff"]["id"]
        reissued = admin.post(f"{API}/staff/{staff_id}/activation-code").json()
        events = admin.get(f"{API}/audit", params={"limit": 500}).json()["items"]
        page = admin.get(f"{API}/audit", params={"limit": 1, "offset": 1}).json()["items"]
    target = f"staff:{staff_id}"
    actions = [(e["action"], e["outcome"]) for e in events if e["target"] == target]
    assert ("staff.create", "ok") in actions
    assert ("staff.activation_code", "ok") in actions
    assert events == sorted(events, key=lambda e: e["id"], reverse=True)
    assert page[0]["id"] == events[1]["id"]
    text = str(events)
    assert created["activation"]["code"] not in text
    assert reissued["activation"]["code"] not in text
    assert all(e["key_name"] for e in events if e["target"] == target)
