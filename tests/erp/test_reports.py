"""The registration report over real HTTP: exact counts, period bounds, waiting lists, refusals, audit."""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

import pytest
from plugins.erp import idem, temporary_postgres_database
from sqlalchemy import event

from erp.db import get_engine, reset_engine
from erp.models import Base, Position, Staff, User
from erp.services import reports
from erp.settings import get_settings

pytestmark = pytest.mark.integration
API = "/api/bot/v1"
REPORT = f"{API}/reports/registrations"
ACTIVATE = "/api/v1/account/activate"
STATUSES = ["pending_approval", "awaiting_activation", "active", "rejected", "blocked", "no_erp_access"]
BRIEF_FIELDS = {
    "id", "full_name", "rocketchat_username", "position_code", "status", "created_at",
    "activation_expires_at",
}  # fmt: skip


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def register(client, body):
    response = client.post(f"{API}/staff", json=body, headers=idem())
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture(scope="module")
def scenario(erp_server_factory):
    """A server of its own (so counts are exact) with registrations in every status.

    `early` is created before the period, `late` exactly at its end: neither is counted, both still wait.
    """
    server = erp_server_factory(name="erp-reports")
    counter = iter(range(1000))

    def body(position_code: str, full_name: str = "Отчётов Тест") -> dict[str, str]:
        n = next(counter)
        return {
            "full_name": full_name,
            "email": f"report{n}@example.com",
            "position_code": position_code,
            "rocketchat_user_id": f"reportid{n}",
            "rocketchat_username": f"report.{n}",
        }

    with server.client(server.admin_key) as admin:
        early = register(admin, body("ACC"))["staff"]
        activated = register(admin, body("ENG", "Активный Инженер"))
        waiting_eng = register(admin, body("ENG"))
        approved = register(admin, body("ACC"))["staff"]
        rejected = register(admin, body("ACC"))["staff"]
        pending = register(admin, body("ACC"))["staff"]
        driver = register(admin, body("DRV"))["staff"]
        blocked = register(admin, body("MGR"))["staff"]
        approval = admin.post(f"{API}/staff/{approved['id']}/approve").json()
        assert admin.post(f"{API}/staff/{rejected['id']}/reject", json={"reason": "нет"}).status_code == 200
        assert admin.post(f"{API}/staff/{blocked['id']}/block").status_code == 200
        activation = activated["activation"]
        with server.client() as anonymous:
            credentials = {"login": activation["login"], "code": activation["code"]}
            done = anonymous.post(ACTIVATE, json={**credentials, "password": "Report-check-2026"})
        assert done.status_code == 200, done.text
        late = register(admin, body("ENG"))
    return {
        "server": server,
        "early": early,
        "activated": activated["staff"],
        "waiting_eng": waiting_eng,
        "approved": approved,
        "approval": approval,
        "pending": pending,
        "driver": driver,
        "late": late,
        "since": activated["staff"]["created_at"],
        "until": late["staff"]["created_at"],
    }


def report(server, key=None, **params):
    with server.client(key or server.admin_key) as client:
        return client.get(REPORT, params=params)


def test_report_counts_the_period_by_current_status_and_position(scenario):
    server = scenario["server"]
    response = report(server, since=scenario["since"], until=scenario["until"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert at(body["since"]) == at(scenario["since"])
    assert at(body["until"]) == at(scenario["until"])
    assert body["total"] == 7
    assert body["by_status"] == {
        "pending_approval": 1,
        "awaiting_activation": 2,
        "active": 1,
        "rejected": 1,
        "blocked": 1,
        "no_erp_access": 1,
    }
    assert body["by_position"] == [
        {"code": "ACC", "name": "Бухгалтер", "total": 3},
        {"code": "ENG", "name": "Инженер", "total": 2},
        {"code": "DRV", "name": "Водитель", "total": 1},
        {"code": "MGR", "name": "Менеджер по продажам", "total": 1},
    ]
    assert body["activated"] == 1


def test_period_bounds_are_inclusive_since_and_exclusive_until(scenario):
    server = scenario["server"]
    first = at(scenario["since"])
    just_after = (first + timedelta(microseconds=1)).isoformat()
    without_first = report(server, since=just_after, until=scenario["until"]).json()
    assert without_first["total"] == 6
    assert without_first["by_status"]["active"] == 0  # the activated record was created before the period
    assert without_first["activated"] == 1  # ... but activated within it
    with_late = report(
        server, since=scenario["since"], until=(at(scenario["until"]) + timedelta(microseconds=1)).isoformat()
    ).json()
    assert with_late["total"] == 8
    assert with_late["by_position"][:2] == [
        {"code": "ACC", "name": "Бухгалтер", "total": 3},
        {"code": "ENG", "name": "Инженер", "total": 3},
    ]  # ties: by code


def test_every_status_is_present_and_positions_only_with_records(scenario):
    server = scenario["server"]
    long_ago = report(server, since="2020-01-01T00:00:00Z", until="2020-01-08T00:00:00Z").json()
    assert long_ago["total"] == 0
    assert long_ago["by_status"] == dict.fromkeys(STATUSES, 0)
    assert long_ago["by_position"] == []
    assert long_ago["activated"] == 0
    # the waiting lists do not depend on the period
    assert long_ago["waiting"] == report(server).json()["waiting"]


def test_waiting_lists_are_oldest_first_with_code_expiry(scenario):
    server = scenario["server"]
    body = report(server, since="2020-01-01T00:00:00Z", until="2020-01-08T00:00:00Z").json()
    pending = body["waiting"]["pending_approval"]
    awaiting = body["waiting"]["awaiting_activation"]
    assert [s["id"] for s in pending] == [scenario["early"]["id"], scenario["pending"]["id"]]
    expected_awaiting = [scenario["waiting_eng"]["staff"], scenario["approved"], scenario["late"]["staff"]]
    assert [s["id"] for s in awaiting] == [s["id"] for s in expected_awaiting]
    for item in pending + awaiting:
        assert set(item) == BRIEF_FIELDS
    assert all(s["activation_expires_at"] is None and s["status"] == "pending_approval" for s in pending)
    assert [at(s["created_at"]) for s in pending] == sorted(at(s["created_at"]) for s in pending)
    expiries = [
        scenario["waiting_eng"]["activation"]["expires_at"],
        scenario["approval"]["activation"]["expires_at"],
        scenario["late"]["activation"]["expires_at"],
    ]
    assert [at(s["activation_expires_at"]) for s in awaiting] == [at(e) for e in expiries]
    first = awaiting[0]
    assert first["position_code"] == "ENG"
    assert first["status"] == "awaiting_activation"
    assert first["rocketchat_username"] == scenario["waiting_eng"]["staff"]["rocketchat_username"]
    assert first["full_name"] == "Отчётов Тест"
    assert at(first["created_at"]) == at(scenario["waiting_eng"]["staff"]["created_at"])


def test_defaults_are_the_last_seven_days_and_times_come_back_in_utc(scenario):
    server = scenario["server"]
    before = datetime.now(UTC)
    body = report(server).json()
    after = datetime.now(UTC)
    until = at(body["until"])
    assert before - timedelta(seconds=1) <= until <= after + timedelta(seconds=1)
    assert until - at(body["since"]) == timedelta(days=7)
    assert body["total"] == 9  # everything in the scenario
    only_until = report(server, until="2026-11-27T03:00:00+03:00").json()
    assert only_until["until"] == "2026-11-27T00:00:00Z"
    assert only_until["since"] == "2026-11-20T00:00:00Z"


def test_reading_a_report_is_audited(scenario):
    server = scenario["server"]
    with server.client(server.admin_key) as admin:
        response = admin.get(REPORT, headers={"X-Request-ID": "report-audit-check"})
        assert response.status_code == 200
        events = admin.get(f"{API}/audit", params={"limit": 50}).json()["items"]
    mine = [e for e in events if e["request_id"] == "report-audit-check"]
    assert len(mine) == 1
    assert mine[0]["action"] == "report.registrations"
    assert mine[0]["outcome"] == "ok"
    assert mine[0]["key_name"] == "admin"


def test_a_bot_key_is_refused_and_no_key_is_unauthorized(scenario):
    server = scenario["server"]
    forbidden = report(server, key=server.bot_key)
    assert forbidden.status_code == 403
    assert forbidden.headers["content-type"].startswith("application/problem+json")
    assert forbidden.json()["code"] == "forbidden"
    with server.client() as anonymous:
        assert anonymous.get(REPORT).json()["code"] == "unauthorized"


def test_a_bearer_token_of_an_admin_key_reads_the_report(scenario):
    server = scenario["server"]
    with server.client(server.admin_key) as admin:
        token = admin.post(f"{API}/auth/token").json()["access_token"]
    with server.client() as client:
        assert client.get(REPORT, headers={"Authorization": f"Bearer {token}"}).status_code == 200


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "2026-11-20T00:00:00"}, "since"),  # naive
        ({"until": "2026-11-27T00:00:00"}, "until"),  # naive
        ({"since": "2026-11-20"}, "since"),  # a date only
        ({"since": "1700000000"}, "since"),  # a Unix timestamp is not RFC 3339
        ({"until": "yesterday"}, "until"),
        ({"since": "2026-11-27T00:00:00Z", "until": "2026-11-27T00:00:00Z"}, "since"),  # empty
        ({"since": "2026-11-28T00:00:00Z", "until": "2026-11-27T00:00:00Z"}, "since"),  # reversed
        ({"since": "2025-11-25T23:59:59Z", "until": "2026-11-27T00:00:00Z"}, "since"),  # 366 days + 1 s
        ({"since": "0001-01-01T00:00:00+14:00", "until": "0001-01-02T00:00:00Z"}, "since"),  # before year 1
        ({"until": "0001-01-03T00:00:00Z"}, "since"),  # the default since would be before year 1
        ({"until": "9999-12-31T23:00:00-14:00"}, "until"),  # after year 9999 in UTC
    ],
)
def test_bad_periods_are_422_validation_errors(scenario, params, field):
    response = report(scenario["server"], **params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert [e["loc"] for e in problem["errors"]] == [["query", field]]


def test_a_period_of_exactly_366_days_is_allowed(scenario):
    response = report(scenario["server"], since="2025-11-26T00:00:00Z", until="2026-11-27T00:00:00Z")
    assert response.status_code == 200, response.text


def test_an_expired_code_is_not_reported_as_live(erp_server_factory):
    server = erp_server_factory({"ERP_ACTIVATION_CODE_TTL_HOURS": "0.0005"}, name="erp-reports-expiry")
    with server.client(server.admin_key) as admin:
        created = register(
            admin,
            {
                "full_name": "Просроченный Код",
                "email": "expired@example.com",
                "position_code": "ENG",
                "rocketchat_user_id": "expiredcode",
                "rocketchat_username": "expired.code",
            },
        )
        fresh = admin.get(REPORT).json()["waiting"]["awaiting_activation"]
        left = at(created["activation"]["expires_at"]) - datetime.now(UTC)
        time.sleep(max(0.0, left.total_seconds()) + 0.2)
        expired = admin.get(REPORT).json()["waiting"]["awaiting_activation"]
    assert at(fresh[0]["activation_expires_at"]) == at(created["activation"]["expires_at"])
    assert expired[0]["id"] == created["staff"]["id"]
    assert expired[0]["activation_expires_at"] is None


# In-process, on a database filled directly: the counts equal a count in Python, the database does the
# counting (a fixed number of statements however many records), and the waiting lists are capped.


@pytest.fixture
def report_db(erp_backend, tmp_path, monkeypatch):
    with ExitStack() as stack:
        if erp_backend == "postgresql":
            url = stack.enter_context(temporary_postgres_database(os.environ["ERP_TEST_POSTGRES_URL"]))
        else:
            url = f"sqlite:///{tmp_path / 'report.sqlite3'}"
        monkeypatch.setenv("ERP_DATABASE_URL", url)
        get_settings.cache_clear()
        reset_engine()
        stack.callback(get_settings.cache_clear)  # leave no settings or engine to the next test
        stack.callback(reset_engine)
        Base.metadata.create_all(get_engine())
        yield get_engine()


def fill(engine, rng, *, count, start, spread):
    """`count` staff records with random positions, statuses and creation times; returns them as dicts."""
    positions = [("ENG", "Инженер"), ("ACC", "Бухгалтер"), ("DRV", "Водитель"), ("MGR", "Менеджер")]
    staff_rows, user_rows = [], []
    for i in range(count):
        status = rng.choice(STATUSES)
        created = start + timedelta(seconds=rng.uniform(0, spread.total_seconds()))
        staff_rows.append(
            {
                "id": i + 1,
                "full_name": f"Тест {i}",
                "email": f"t{i}@example.com",
                "position_id": rng.randrange(len(positions)) + 1,
                "rocketchat_user_id": f"id{i}",
                "rocketchat_username": f"user{i}",
                "status": status,
                "created_at": created,
                "updated_at": created,
            }
        )
        if status in ("awaiting_activation", "active"):
            activated = created + timedelta(hours=1) if status == "active" else None
            user_rows.append(
                {
                    "staff_id": i + 1,
                    "login": f"user{i}",
                    "email": f"t{i}@example.com",
                    "role": "engineer",
                    "is_active": activated is not None,
                    "activation_code_hash": None if activated else "x" * 64,
                    "activation_expires_at": None if activated else created + timedelta(days=3),
                    "activated_at": activated,
                    "created_at": created,
                }
            )
    with engine.begin() as conn:
        conn.execute(
            Position.__table__.insert(),
            [
                {"id": n + 1, "code": code, "name": name, "department": "Отдел", "erp_access": True}
                for n, (code, name) in enumerate(positions)
            ],
        )
        conn.execute(Staff.__table__.insert(), staff_rows)
        if user_rows:
            conn.execute(User.__table__.insert(), user_rows)
    codes = {n + 1: code for n, (code, _) in enumerate(positions)}
    users = {u["staff_id"]: u for u in user_rows}
    return [{**s, "code": codes[s["position_id"]], "user": users.get(s["id"])} for s in staff_rows]


def test_counts_equal_a_count_in_python_with_a_fixed_number_of_statements(report_db):
    start = datetime(2026, 1, 1, tzinfo=UTC)
    records = fill(report_db, random.Random(20261127), count=900, start=start, spread=timedelta(days=60))
    statements = []
    event.listen(report_db, "before_cursor_execute", lambda *args: statements.append(args[2]))
    # (SQLite's engine also sends its own BEGIN: only queries are counted)
    since, until = start + timedelta(days=10), start + timedelta(days=40)
    now = start + timedelta(days=20)
    report = reports.registrations(since, until, now)
    queries = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(queries) == 3  # two counts and the waiting lists, whatever the number of records

    inside = [r for r in records if since <= r["created_at"] < until]
    assert report.total == len(inside) > 0
    assert report.by_status.model_dump() == {
        **dict.fromkeys(STATUSES, 0),
        **Counter(r["status"] for r in inside),
    }
    by_code = Counter(r["code"] for r in inside)
    assert [(p.code, p.total) for p in report.by_position] == sorted(
        by_code.items(), key=lambda i: (-i[1], i[0])
    )
    activated_in = [
        r
        for r in records
        if r["user"] and r["user"]["activated_at"] and since <= r["user"]["activated_at"] < until
    ]
    assert report.activated == len(activated_in)

    for status in ("pending_approval", "awaiting_activation"):
        expected = sorted(
            (r for r in records if r["status"] == status), key=lambda r: (r["created_at"], r["id"])
        )
        listed = getattr(report.waiting, status)
        assert len(expected) > 100  # the cap applies
        assert [s.id for s in listed] == [r["id"] for r in expected[:100]]
    live = {
        r["id"]: r["user"]["activation_expires_at"] for r in records if r["status"] == "awaiting_activation"
    }
    for item in report.waiting.awaiting_activation:
        assert item.activation_expires_at == (live[item.id] if live[item.id] > now else None)
