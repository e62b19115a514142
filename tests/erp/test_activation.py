"""Account activation by the employee: success, wrong attempts, expiry, reuse, reissue, weak passwords."""

from __future__ import annotations

import json
import secrets
import string
import time

import pytest
from plugins.erp import idem

from erp.services.transliteration import login_base

pytestmark = pytest.mark.integration
API = "/api/bot/v1"
ACTIVATE = "/api/v1/account/activate"
PASSWORD = "Strong-pass-2024"


def registered(server, body):
    with server.client(server.bot_key) as client:
        response = client.post(f"{API}/staff", json=body, headers=idem())
    assert response.status_code == 201, response.text
    return response.json()


def activate(server, login, code, password=PASSWORD):
    with server.client() as client:
        return client.post(ACTIVATE, json={"login": login, "code": code, "password": password})


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def test_activation_succeeds_once(erp_server, new_staff):
    created = registered(erp_server, new_staff())
    login, code = created["activation"]["login"], created["activation"]["code"]
    ok = activate(erp_server, login, code)
    reused = activate(erp_server, login, code)
    with erp_server.client(erp_server.bot_key) as client:
        staff = client.get(f"{API}/staff/{created['staff']['id']}").json()
    assert ok.status_code == 200, ok.text
    assert ok.json()["login"] == login
    assert reused.status_code == 400
    assert reused.json()["code"] == "activation_code_invalid"
    assert staff["status"] == "active"
    assert staff["user"]["is_active"] is True
    assert staff["user"]["activated_at"] is not None


def test_strangers_wrong_codes_slow_the_login_down_but_never_lock_the_employee_out(erp_server, new_staff):
    """Finding 3: five wrong codes from a stranger used to spend the code (activation_code_exhausted)."""
    created = registered(erp_server, new_staff())
    login, code = created["activation"]["login"], created["activation"]["code"]
    codes = [activate(erp_server, login, wrong(code)).json()["code"] for _ in range(5)]
    throttled = activate(erp_server, login, code)
    assert codes == ["activation_code_invalid"] * 5
    assert throttled.status_code == 429
    assert throttled.json()["code"] == "rate_limited"
    assert 1 <= int(throttled.headers["Retry-After"]) <= 2
    time.sleep(int(throttled.headers["Retry-After"]) + 0.1)
    assert activate(erp_server, login, code).status_code == 200


def test_an_unknown_login_is_throttled_like_a_real_one(erp_server):
    """The per-login backoff counts any login string: a 429 says nothing about whether it exists."""
    login = f"nobody.{time.monotonic_ns()}"
    answers = [activate(erp_server, login, "000000").status_code for _ in range(6)]
    assert answers == [400] * 5 + [429]


def _answer(response):
    body = response.json()
    body.pop("request_id")
    return response.status_code, body


def test_every_activation_failure_answers_alike_and_no_sooner_than_the_floor(erp_server, new_staff):
    """Finding 3: unknown / activated / blocked / wrong-code logins gave different codes and timings."""
    fresh = registered(erp_server, new_staff())
    done = registered(erp_server, new_staff())
    blocked = registered(erp_server, new_staff())
    assert activate(erp_server, done["activation"]["login"], done["activation"]["code"]).status_code == 200
    with erp_server.client(erp_server.admin_key) as admin:
        assert admin.post(f"{API}/staff/{blocked['staff']['id']}/block").status_code == 200
    cases = {
        "unknown": ("nobody.z", "123456"),
        "wrong code": (fresh["activation"]["login"], wrong(fresh["activation"]["code"])),
        "activated already": (done["activation"]["login"], done["activation"]["code"]),
        "blocked": (blocked["activation"]["login"], blocked["activation"]["code"]),
    }
    answers, seconds = {}, {}
    for name, (login, code) in cases.items():
        started = time.perf_counter()
        answers[name] = _answer(activate(erp_server, login, code))
        seconds[name] = time.perf_counter() - started
    assert len(set(map(repr, answers.values()))) == 1, answers
    assert answers["unknown"][0] == 400
    assert answers["unknown"][1]["code"] == "activation_code_invalid"
    assert min(seconds.values()) >= 0.25, seconds  # the floor (ERP_ACTIVATION_FAILURE_SECONDS default)


def test_reissued_code_replaces_the_old_one_and_resets_the_backoff(erp_server, new_staff):
    created = registered(erp_server, new_staff())
    login, old = created["activation"]["login"], created["activation"]["code"]
    wrong_codes = [activate(erp_server, login, wrong(old)).status_code for _ in range(6)].count(400)
    with erp_server.client(erp_server.admin_key) as admin:
        reissued = admin.post(f"{API}/staff/{created['staff']['id']}/activation-code")
    assert reissued.status_code == 200
    new = reissued.json()["activation"]["code"]
    if new != old:  # one chance in a million they coincide
        assert activate(erp_server, login, old).json()["code"] == "activation_code_invalid"
    assert activate(erp_server, login, new).status_code == 200
    assert audit_details(erp_server, created["staff"]["id"], "staff.activation_code") == [
        f"activation code issued; {wrong_codes} earlier wrong codes on the login cleared"  # a 429 is none
    ]


def audit_details(server, staff_id: int, action: str) -> list[str | None]:
    with server.client(server.admin_key) as admin:
        events = admin.get(f"{API}/audit", params={"limit": 500}).json()["items"]
    return [
        e["detail"]
        for e in events
        if (e["action"], e["target"], e["outcome"]) == (action, f"staff:{staff_id}", "ok")
    ]


@pytest.mark.parametrize("position", ["ENG", "ACC"])  # the account made at registration / at approval
def test_a_strangers_wrong_codes_before_the_account_existed_do_not_carry_over(
    erp_server, new_staff, position
):
    """Logins are predictable (surname.initial): a stranger throttles one before HR registers its
    employee. The new account's code starts the login's count from scratch, and the audit names what
    was cleared. Before, the employee met the stranger's backoff: 429 at once, then ever longer waits."""
    full_name = "Poisoned" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(12)) + " Ivan"
    login = login_base(full_name)
    assert [activate(erp_server, login, "000000").status_code for _ in range(6)] == [400] * 5 + [429]
    created = registered(erp_server, new_staff(full_name=full_name, position_code=position))
    staff_id = created["staff"]["id"]
    action = "staff.create"
    if position == "ACC":
        assert created["activation"] is None
        with erp_server.client(erp_server.admin_key) as admin:
            created = admin.post(f"{API}/staff/{staff_id}/approve").json()
        action = "staff.approve"
    assert created["activation"]["login"] == login
    code = created["activation"]["code"]
    # The employee's own typos count as a fresh login's: four free ones (of five), then the right code.
    assert [activate(erp_server, login, wrong(code)).status_code for _ in range(4)] == [400] * 4
    assert activate(erp_server, login, code).status_code == 200
    assert audit_details(erp_server, staff_id, action) == [
        "activation code issued; 5 earlier wrong codes on the login cleared"
    ]
    assert "backoff_cleared" not in json.dumps(created)


def test_unknown_login_and_blocked_account_are_invalid(erp_server, new_staff):
    created = registered(erp_server, new_staff())
    login, code = created["activation"]["login"], created["activation"]["code"]
    assert activate(erp_server, "nobody.x", code).json()["code"] == "activation_code_invalid"
    with erp_server.client(erp_server.admin_key) as admin:
        admin.post(f"{API}/staff/{created['staff']['id']}/block")
    assert activate(erp_server, login, code).json()["code"] == "activation_code_invalid"


@pytest.mark.parametrize("password", ["short1", "onlyletterslong", "1234567890123", "{login}-123456"])
def test_weak_password_is_refused_and_keeps_the_code(erp_server, new_staff, password):
    created = registered(erp_server, new_staff())
    login, code = created["activation"]["login"], created["activation"]["code"]
    weak = activate(erp_server, login, code, password.format(login=login))
    assert weak.status_code == 422
    assert weak.json()["code"] == "weak_password"
    assert activate(erp_server, login, code).status_code == 200


def test_activation_body_is_validated(erp_server):
    with erp_server.client() as client:
        missing = client.post(ACTIVATE, json={"login": "x"})
        extra = client.post(ACTIVATE, json={"login": "x", "code": "1", "password": "p", "admin": True})
    assert missing.status_code == 422
    assert extra.status_code == 422


@pytest.fixture(scope="module")
def short_ttl_server(erp_server_factory):
    return erp_server_factory({"ERP_ACTIVATION_CODE_TTL_HOURS": str(1.5 / 3600)}, name="erp-ttl")


def test_expired_code_is_refused(short_ttl_server, new_staff):
    created = registered(short_ttl_server, new_staff())
    time.sleep(2.0)
    response = activate(short_ttl_server, created["activation"]["login"], created["activation"]["code"])
    assert response.status_code == 400
    assert response.json()["code"] == "activation_code_invalid"
