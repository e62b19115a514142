"""Parallel duplicate registrations: exactly one Staff row, the others 409 (or the idempotent replay)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from plugins.erp import idem

pytestmark = pytest.mark.integration
API = "/api/bot/v1"
PARALLEL = 12


def post_all(server, bodies_and_headers):
    def post(item):
        body, headers = item
        with httpx.Client(base_url=server.base_url, headers={"X-API-Key": server.bot_key}, timeout=30) as c:
            return c.post(f"{API}/staff", json=body, headers=headers)

    with ThreadPoolExecutor(PARALLEL) as pool:
        return list(pool.map(post, bodies_and_headers))


def test_parallel_duplicates_yield_one_staff_row(erp_server, new_staff):
    body = new_staff()
    responses = post_all(erp_server, [(body, idem()) for _ in range(PARALLEL)])
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * (PARALLEL - 1), [r.text for r in responses if r.status_code >= 500]
    created_id = next(r for r in responses if r.status_code == 201).json()["staff"]["id"]
    assert {r.json()["staff_id"] for r in responses if r.status_code == 409} == {created_id}
    with erp_server.client(erp_server.bot_key) as client:
        found = client.get(f"{API}/staff", params={"rocketchat_username": body["rocketchat_username"]})
    assert [s["id"] for s in found.json()["items"]] == [created_id]


def test_parallel_retries_with_one_key_replay_one_response(erp_server, new_staff):
    body = new_staff()
    headers = idem()
    responses = post_all(erp_server, [(body, headers) for _ in range(PARALLEL)])
    assert {r.status_code for r in responses} == {201}
    assert len({r.text for r in responses}) == 1


def test_parallel_namesakes_get_distinct_logins(erp_server, new_staff):
    bodies = [new_staff(full_name="Кузнецов Олег") for _ in range(PARALLEL)]
    responses = post_all(erp_server, [(b, idem()) for b in bodies])
    assert {r.status_code for r in responses} == {201}
    logins = [r.json()["staff"]["user"]["login"] for r in responses]
    assert len(set(logins)) == PARALLEL
    assert all(login.startswith("kuznetsov.o") for login in logins)
