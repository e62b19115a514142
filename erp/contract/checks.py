"""The contract checks: each one states a rule of docs/api/erp-bot-api.md and fails with the reason."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx

API = "/api/bot/v1"
ACTIVATE = "/api/v1/account/activate"
PASSWORD = "Contract-check-2024"  # noqa: S105  # nosec B105
WEAK_PASSWORD = "short"  # noqa: S105  # nosec B105
STAFF_FIELDS = {
    "id", "full_name", "email", "phone", "position", "rocketchat_user_id", "rocketchat_username",
    "status", "status_reason", "user", "created_at", "updated_at",
}  # fmt: skip
POSITION_FIELDS = {"code", "name", "department", "erp_access", "erp_role", "requires_approval", "is_active"}
STATUSES = {"pending_approval", "awaiting_activation", "active", "rejected", "blocked", "no_erp_access"}


class ContractViolation(AssertionError):
    pass


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise ContractViolation(message)


def expect_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    expect(
        response.status_code == status,
        f"expected {status} {code}, got {response.status_code}: {response.text[:300]}",
    )
    expect(
        response.headers.get("content-type", "").startswith("application/problem+json"),
        f"a problem must be application/problem+json, got {response.headers.get('content-type')}",
    )
    body = response.json()
    for key in ("type", "title", "status", "code"):
        expect(key in body, f"problem without {key!r}: {body}")
    expect(body["code"] == code, f"expected code {code!r}, got {body['code']!r}")
    expect(body["status"] == status, f"problem status {body['status']} differs from HTTP {status}")
    return body


@dataclass
class Result:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class Context:
    url: str
    key: str
    admin_key: str | None
    read_only: bool
    timeout: float = 15.0
    positions: list[dict[str, Any]] = field(default_factory=list)
    created: dict[str, Any] = field(default_factory=dict)

    def client(self, key: str | None = None, **headers: str) -> httpx.Client:
        base = {"X-API-Key": key} if key else {}
        return httpx.Client(base_url=self.url, headers={**base, **headers}, timeout=self.timeout)

    def bot(self) -> httpx.Client:
        return self.client(self.key)

    def admin(self) -> httpx.Client:
        if not self.admin_key:
            raise Skip("no --admin-key")
        return self.client(self.admin_key)

    def position(self, *, access: bool, approval: bool | None = None) -> dict[str, Any]:
        for p in self.positions:
            if p["erp_access"] is access and (approval is None or p["requires_approval"] is approval):
                return p
        raise Skip(f"no active position with erp_access={access} requires_approval={approval}")

    def new_staff(self, position_code: str) -> dict[str, Any]:
        tag = secrets.token_hex(5)
        return {
            "full_name": "Контрактов Тест",
            "email": f"contract-{tag}@example.com",
            "phone": "+79990000000",
            "position_code": position_code,
            "rocketchat_user_id": f"contract{tag}",
            "rocketchat_username": f"contract.{tag}",
        }


class Skip(Exception):
    pass


def idem() -> dict[str, str]:
    return {"Idempotency-Key": "contract-" + secrets.token_hex(12)}


CHECKS: list[tuple[str, bool, Callable[[Context], None]]] = []


def check(
    name: str, *, mutates: bool = False
) -> Callable[[Callable[[Context], None]], Callable[[Context], None]]:
    def register(fn: Callable[[Context], None]) -> Callable[[Context], None]:
        CHECKS.append((name, mutates, fn))
        return fn

    return register


@check("health and readiness answer")
def _health(ctx: Context) -> None:
    with ctx.client() as c:
        expect(c.get("/healthz").status_code == 200, "GET /healthz is not 200")
        expect(c.get("/readyz").status_code == 200, "GET /readyz is not 200")


@check("no key is 401 unauthorized as problem+json")
def _no_key(ctx: Context) -> None:
    with ctx.client() as c:
        expect_problem(c.get(f"{API}/positions"), 401, "unauthorized")


@check("an unknown key is 401 unauthorized")
def _bad_key(ctx: Context) -> None:
    with ctx.client("contract-not-a-key") as c:
        expect_problem(c.get(f"{API}/positions"), 401, "unauthorized")


@check("X-Request-ID is echoed, also in problems")
def _request_id(ctx: Context) -> None:
    rid = "contract-" + secrets.token_hex(4)
    with ctx.bot() as c:
        ok = c.get(f"{API}/positions", headers={"X-Request-ID": rid})
        problem = c.get(f"{API}/staff/2147483000", headers={"X-Request-ID": rid})
    expect(ok.headers.get("x-request-id") == rid, "X-Request-ID not echoed")
    expect(problem.json().get("request_id") == rid, "problem.request_id is not the request's id")


@check("GET /positions lists active positions with their ERP access")
def _positions(ctx: Context) -> None:
    with ctx.bot() as c:
        response = c.get(f"{API}/positions")
    expect(response.status_code == 200, f"GET /positions: {response.status_code}")
    items = response.json()["items"]
    expect(isinstance(items, list) and items, "no positions")
    for item in items:
        expect(set(item) >= POSITION_FIELDS, f"position fields missing: {POSITION_FIELDS - set(item)}")
        expect(item["is_active"] is True, f"inactive position listed: {item['code']}")
    ctx.positions = items


@check("JWT: a key is exchanged for a bearer token of at most 15 minutes that works")
def _jwt(ctx: Context) -> None:
    with ctx.bot() as c:
        response = c.post(f"{API}/auth/token")
    expect(response.status_code == 200, f"POST /auth/token: {response.status_code}")
    body = response.json()
    expect(body.get("token_type") == "bearer", "token_type is not bearer")
    expect(0 < body.get("expires_in", 0) <= 900, "expires_in is not within 15 minutes")
    with ctx.client(None, Authorization=f"Bearer {body['access_token']}") as c:
        expect(c.get(f"{API}/positions").status_code == 200, "the bearer token is refused")


@check("look-ups: unknown id is 404 not_found, unknown username is an empty list, no filter is 422")
def _lookups(ctx: Context) -> None:
    with ctx.bot() as c:
        expect_problem(c.get(f"{API}/staff/2147483000"), 404, "not_found")
        empty = c.get(
            f"{API}/staff", params={"rocketchat_username": "contract.nobody." + secrets.token_hex(4)}
        )
        expect(empty.status_code == 200 and empty.json() == {"items": []}, f"expected no items: {empty.text}")
        expect_problem(c.get(f"{API}/staff"), 422, "validation_error")


@check("POST /staff without Idempotency-Key is 428 and bad bodies are 422 with errors")
def _staff_refusals(ctx: Context) -> None:
    body = ctx.new_staff(ctx.position(access=True)["code"])
    with ctx.bot() as c:
        expect_problem(c.post(f"{API}/staff", json=body), 428, "idempotency_key_required")
        for bad in ({"email": "not-an-email"}, {"phone": "8999"}, {"full_name": "R2-D2"}, {"extra": 1}):
            problem = expect_problem(
                c.post(f"{API}/staff", json={**body, **bad}, headers=idem()), 422, "validation_error"
            )
            expect(bool(problem.get("errors")), f"422 without errors for {bad}")
        expect_problem(
            c.post(f"{API}/staff", json={**body, "position_code": "CONTRACT_NO_SUCH"}, headers=idem()),
            422,
            "position_not_found",
        )


@check(
    "POST /staff registers; activation only here; a retry replays it; a reused key is refused", mutates=True
)
def _register(ctx: Context) -> None:
    position = ctx.position(access=True, approval=False)
    body = ctx.new_staff(position["code"])
    headers = idem()
    with ctx.bot() as c:
        first = c.post(f"{API}/staff", json=body, headers=headers)
        expect(first.status_code == 201, f"POST /staff: {first.status_code} {first.text[:300]}")
        data = first.json()
        staff = data["staff"]
        expect(set(staff) >= STAFF_FIELDS, f"staff fields missing: {STAFF_FIELDS - set(staff)}")
        expect(staff["status"] == "awaiting_activation", f"status {staff['status']}")
        activation = data["activation"]
        expect(
            activation and activation["code"] and activation["login"] == staff["user"]["login"],
            "no activation",
        )
        again = c.post(f"{API}/staff", json=body, headers=headers)
        expect(
            again.status_code == 201 and again.json() == data, "the idempotent retry differs from the first"
        )
        expect_problem(
            c.post(f"{API}/staff", json={**body, "phone": "+79990000001"}, headers=headers),
            422,
            "idempotency_key_reused",
        )
        dup = expect_problem(c.post(f"{API}/staff", json=body, headers=idem()), 409, "staff_exists")
        expect(dup.get("staff_id") == staff["id"], "staff_exists does not name the record")
        by_id = c.get(f"{API}/staff/{staff['id']}")
        expect(
            by_id.status_code == 200 and activation["code"] not in by_id.text, "the code is returned again"
        )
        found = c.get(f"{API}/staff", params={"rocketchat_username": body["rocketchat_username"]}).json()
        expect([s["id"] for s in found["items"]] == [staff["id"]], "look-up by username does not find it")
    ctx.created = {"staff": staff, "activation": activation}


@check("activation: wrong code, then success, then reuse", mutates=True)
def _activate(ctx: Context) -> None:
    if not ctx.created:
        raise Skip("no registration to activate")
    activation = ctx.created["activation"]
    wrong = f"{(int(activation['code']) + 1) % 10 ** len(activation['code']):0{len(activation['code'])}d}"
    with ctx.client() as c:
        login = activation["login"]
        expect_problem(
            c.post(ACTIVATE, json={"login": login, "code": wrong, "password": PASSWORD}),
            400,
            "activation_code_invalid",
        )
        expect_problem(
            c.post(ACTIVATE, json={"login": login, "code": activation["code"], "password": WEAK_PASSWORD}),
            422,
            "weak_password",
        )
        ok = c.post(ACTIVATE, json={"login": login, "code": activation["code"], "password": PASSWORD})
        expect(ok.status_code == 200, f"activation: {ok.status_code} {ok.text[:300]}")
        expect_problem(
            c.post(ACTIVATE, json={"login": login, "code": activation["code"], "password": PASSWORD}),
            400,
            "activation_code_invalid",
        )
    with ctx.bot() as c:
        staff = c.get(f"{API}/staff/{ctx.created['staff']['id']}").json()
    expect(staff["status"] == "active", f"status after activation: {staff['status']}")


@check("position without ERP access: no_erp_access and no activation", mutates=True)
def _no_access(ctx: Context) -> None:
    body = ctx.new_staff(ctx.position(access=False)["code"])
    with ctx.bot() as c:
        response = c.post(f"{API}/staff", json=body, headers=idem())
    expect(response.status_code == 201, f"POST /staff: {response.status_code}")
    expect(response.json()["staff"]["status"] == "no_erp_access", "status is not no_erp_access")
    expect(response.json()["activation"] is None, "an activation for a position without access")


@check("admin: approve a pending registration, reissue its code, block and unblock", mutates=True)
def _admin_flow(ctx: Context) -> None:
    position = ctx.position(access=True, approval=True)
    with ctx.admin() as admin, ctx.bot() as bot:
        created = bot.post(f"{API}/staff", json=ctx.new_staff(position["code"]), headers=idem())
        expect(created.status_code == 201, f"POST /staff: {created.status_code}")
        staff_id = created.json()["staff"]["id"]
        expect(created.json()["staff"]["status"] == "pending_approval", "not pending_approval")
        if ctx.key != ctx.admin_key:  # a bot-only key must not reach admin endpoints
            expect_problem(bot.post(f"{API}/staff/{staff_id}/approve"), 403, "forbidden")
        approved = admin.post(f"{API}/staff/{staff_id}/approve")
        expect(
            approved.status_code == 200 and approved.json()["activation"], f"approve: {approved.text[:300]}"
        )
        expect_problem(admin.post(f"{API}/staff/{staff_id}/approve"), 409, "invalid_state")
        reissued = admin.post(f"{API}/staff/{staff_id}/activation-code")
        expect(reissued.status_code == 200 and reissued.json()["activation"]["code"], "reissue failed")
        blocked = admin.post(f"{API}/staff/{staff_id}/block").json()
        expect(blocked["status"] == "blocked", "block did not block")
        unblocked = admin.post(f"{API}/staff/{staff_id}/unblock").json()
        expect(unblocked["status"] == "awaiting_activation", f"unblock gave {unblocked['status']}")


REPORT = f"{API}/reports/registrations"
BRIEF_FIELDS = {
    "id", "full_name", "rocketchat_username", "position_code", "status", "created_at",
    "activation_expires_at",
}  # fmt: skip


def expect_report_shape(body: dict[str, Any]) -> None:
    """The rules of a registration report that hold whatever the data."""
    by_status, by_position = body["by_status"], body["by_position"]
    expect(set(by_status) == STATUSES, f"by_status must name all six statuses: {sorted(by_status)}")
    expect(sum(by_status.values()) == body["total"], "by_status does not add up to total")
    expect(sum(p["total"] for p in by_position) == body["total"], "by_position does not add up to total")
    expect(all(p["total"] > 0 for p in by_position), "by_position lists a position without records")
    order = [(-p["total"], p["code"]) for p in by_position]
    expect(order == sorted(order), "by_position is not sorted by total descending, then code")
    expect(isinstance(body["activated"], int) and body["activated"] >= 0, "activated is not a count")
    for status in ("pending_approval", "awaiting_activation"):
        items = body["waiting"][status]
        expect(len(items) <= 100, f"waiting.{status} has more than 100 items")
        for item in items:
            expect(set(item) == BRIEF_FIELDS, f"waiting item fields: {sorted(item)}")
            expect(item["status"] == status, f"waiting.{status} lists a record in {item['status']}")
        created = [item["created_at"] for item in items]
        expect(created == sorted(created, key=_instant), f"waiting.{status} is not oldest first")
    expect(
        all(item["activation_expires_at"] is None for item in body["waiting"]["pending_approval"]),
        "a pending approval with an activation code expiry",
    )


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@check("admin: the registration report has every status, adds up, and refuses bad periods and bot keys")
def _report(ctx: Context) -> None:
    with ctx.admin() as admin, ctx.bot() as bot:
        response = admin.get(REPORT)
        expect(response.status_code == 200, f"GET {REPORT}: {response.status_code} {response.text[:300]}")
        body = response.json()
        expect_report_shape(body)
        span = _instant(body["until"]) - _instant(body["since"])
        expect(span == timedelta(days=7), f"the default period is {span}, not 7 days")
        if ctx.key != ctx.admin_key:
            expect_problem(bot.get(REPORT), 403, "forbidden")
        for bad in (
            {"since": "2026-01-01T00:00:00"},
            {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
            {"since": "2024-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        ):
            expect_problem(admin.get(REPORT, params=bad), 422, "validation_error")


@check("admin: a new pending registration is counted in its period and listed as waiting", mutates=True)
def _report_counts(ctx: Context) -> None:
    position = ctx.position(access=True, approval=True)
    with ctx.admin() as admin, ctx.bot() as bot:
        created = bot.post(f"{API}/staff", json=ctx.new_staff(position["code"]), headers=idem())
        expect(created.status_code == 201, f"POST /staff: {created.status_code}")
        staff = created.json()["staff"]
        since = _instant(staff["created_at"])
        period = {"since": since.isoformat(), "until": (since + timedelta(microseconds=1)).isoformat()}
        body = admin.get(REPORT, params=period).json()
    expect_report_shape(body)
    expect(body["total"] == 1, f"a period of one registration counts {body['total']}")
    expect(body["by_status"]["pending_approval"] == 1, f"by_status: {body['by_status']}")
    expect(
        [(p["code"], p["total"]) for p in body["by_position"]] == [(position["code"], 1)],
        f"by_position: {body['by_position']}",
    )
    waiting = {item["id"]: item for item in body["waiting"]["pending_approval"]}
    if len(waiting) < 100:  # a longer list may have cut it off
        expect(staff["id"] in waiting, "the pending registration is not in waiting.pending_approval")
        item = waiting[staff["id"]]
        expect(item["position_code"] == position["code"], "waiting item with the wrong position_code")
        expect(item["rocketchat_username"] == staff["rocketchat_username"], "waiting item: wrong username")


@check("admin: the audit log is readable, newest first, and holds no activation code")
def _audit(ctx: Context) -> None:
    with ctx.admin() as admin:
        response = admin.get(f"{API}/audit", params={"limit": 50})
    expect(response.status_code == 200, f"GET /audit: {response.status_code}")
    items = response.json()["items"]
    ids = [e["id"] for e in items]
    expect(ids == sorted(ids, reverse=True), "audit is not newest first")
    if ctx.created:
        expect(ctx.created["activation"]["code"] not in response.text, "an activation code in the audit log")


def run(url: str, key: str, admin_key: str | None = None, read_only: bool = False) -> list[Result]:
    ctx = Context(url.rstrip("/"), key, admin_key, read_only)
    results = []
    for name, mutates, fn in CHECKS:
        if mutates and read_only:
            results.append(Result(name, True, "skipped: --read-only"))
            continue
        started = time.monotonic()
        try:
            fn(ctx)
        except Skip as exc:
            results.append(Result(name, True, f"skipped: {exc}"))
        except (ContractViolation, httpx.HTTPError, KeyError, ValueError, TypeError) as exc:
            results.append(Result(name, False, f"{type(exc).__name__}: {exc}"))
        else:
            results.append(Result(name, True, f"{(time.monotonic() - started) * 1000:.0f} ms"))
    return results
