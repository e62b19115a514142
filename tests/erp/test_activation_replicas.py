"""Two ERP replicas (two server processes) on ONE database share the per-login activation backoff: the
wrong codes of one login through either replica add up to the 429, whether the login exists or not,
and a new code issued through one ends the wait on the other. SQLite file and PostgreSQL.

With the backoff in each process (before), the alternating wrong codes below gave each replica half
of them and no 429 at all."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from plugins.erp import ErpServer, idem
from plugins.processes import ServiceProcess, free_port

pytestmark = pytest.mark.integration
API = "/api/bot/v1"
ACTIVATE = "/api/v1/account/activate"
PASSWORD = "Strong-pass-2024"
FREE = 4  # ERP_ACTIVATION_MAX_ATTEMPTS of these replicas


@pytest.fixture(scope="module")
def replicas(erp_server_factory) -> tuple[ErpServer, ErpServer]:
    first = erp_server_factory({"ERP_ACTIVATION_MAX_ATTEMPTS": str(FREE)}, name="erp-replica1")
    port = free_port()
    process = ServiceProcess(
        "erp-replica2",
        ["-m", "erp", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=first.env,  # the same database and secret: another replica of the same ERP
        health_url=f"http://127.0.0.1:{port}/healthz",
        log_dir=first.state_dir,
    ).start()
    erp_server_factory.stack.callback(process.stop)
    second = ErpServer(
        f"http://127.0.0.1:{port}", first.bot_key, first.admin_key, process, first.env, first.state_dir
    )
    return first, second


def registered(server: ErpServer, body: dict) -> dict:
    with server.client(server.bot_key) as client:
        response = client.post(f"{API}/staff", json=body, headers=idem())
    assert response.status_code == 201, response.text
    return response.json()


def activate(server: ErpServer, login: str, code: str):
    with server.client() as client:
        return client.post(ACTIVATE, json={"login": login, "code": code, "password": PASSWORD})


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def alternate(replicas, login: str, code: str, count: int) -> list[int]:
    return [activate(replicas[n % 2], login, code).status_code for n in range(count)]


def test_wrong_codes_through_both_replicas_add_up_to_the_429(replicas, new_staff):
    created = registered(replicas[0], new_staff())
    login, code = created["activation"]["login"], created["activation"]["code"]
    assert alternate(replicas, login, wrong(code), FREE) == [400] * FREE
    throttled = [activate(server, login, code) for server in replicas]  # even the right code waits
    assert [r.status_code for r in throttled] == [429, 429]
    assert all(1 <= int(r.headers["Retry-After"]) <= 2 for r in throttled)
    assert all(r.json()["code"] == "rate_limited" for r in throttled)
    time.sleep(int(throttled[1].headers["Retry-After"]) + 0.1)
    assert activate(replicas[1], login, code).status_code == 200
    # The success ended the backoff on both: the login counts from scratch again.
    assert alternate(replicas, login, wrong(code), FREE) == [400] * FREE


def test_an_unknown_login_is_throttled_across_replicas_like_a_known_one(replicas, new_staff):
    known = registered(replicas[0], new_staff())["activation"]
    unknown = f"nobody.{time.monotonic_ns()}"
    answers = {}
    for name, login, code in (
        ("known", known["login"], wrong(known["code"])),
        ("unknown", unknown, "000000"),
    ):
        statuses = alternate(replicas, login, code, FREE + 1)
        last = activate(replicas[1], login, code)
        answers[name] = (statuses, last.status_code, last.headers.get("Retry-After"), last.json()["code"])
    assert answers["known"] == answers["unknown"]
    assert answers["unknown"][0] == [400] * FREE + [429]


def test_a_new_code_through_one_replica_ends_the_wait_on_the_other(replicas, new_staff):
    created = registered(replicas[0], new_staff())
    login, old = created["activation"]["login"], created["activation"]["code"]
    assert alternate(replicas, login, wrong(old), FREE + 1) == [400] * FREE + [429]
    with replicas[0].client(replicas[0].admin_key) as admin:
        reissued = admin.post(f"{API}/staff/{created['staff']['id']}/activation-code")
    assert reissued.status_code == 200, reissued.text
    assert activate(replicas[1], login, reissued.json()["activation"]["code"]).status_code == 200


def test_simultaneous_wrong_codes_on_both_replicas_all_count(replicas):
    login = f"burst.{time.monotonic_ns()}"
    with ThreadPoolExecutor(FREE) as pool:
        statuses = list(
            pool.map(lambda n: activate(replicas[n % 2], login, "000000").status_code, range(FREE))
        )
    assert statuses == [400] * FREE
    assert [activate(server, login, "000000").status_code for server in replicas] == [429, 429]
