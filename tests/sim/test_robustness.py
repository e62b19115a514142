"""Bad input gets a 4xx with Rocket.Chat's error envelope on every endpoint, never a 500 or a crash."""

from __future__ import annotations

import os
import re

import pytest
from plugins.rocketchat import SHARED_SIM_SETTINGS, start_simulator

import rocketchat_sim.rest  # noqa: F401 - registers the endpoints
from rocketchat_sim.rest.base import ENDPOINTS

pytestmark = pytest.mark.integration

GARBAGE_BODIES = [
    b"[]",
    b'"text"',
    b"{not json",
    b'{"roomId": 5, "userId": [], "name": {}, "text": 7, "message": "x", "data": 1, "value": null}',
    b'{"username": 1, "email": true, "password": [], "permissions": "x", "settings": {}, "type": 3}',
    b'{"roomId": "nope", "msgId": "nope", "text": "t", "integrationId": "nope", "tokenName": 5}',
]
GARBAGE_QUERIES = [
    {"roomId": "nope", "userId": "nope", "username": "nope", "count": "x", "offset": "-1"},
    {"query": "{bad", "updatedSince": "yesterday", "role": "nope", "msgId": "nope", "integrationId": "x"},
]


def _paths():
    from rocketchat_sim.rest.admin import disabled

    seen_disabled = False
    for ep in ENDPOINTS:
        if ep.handler is disabled:  # one handler answers every out-of-scope route: one of them is enough
            if seen_disabled:
                continue
            seen_disabled = True
        for method in ep.methods:
            path = re.sub(r"\{[^}]+\}", "x", ep.path.replace("{_id}", "Site_Name"))
            if path.startswith("/api/v1/"):
                yield method, path


def _shape_ok(response) -> bool:
    """A JSON envelope (success/status), a bare JSON array (listInvites) or an avatar (SVG, redirect)."""
    if not response.headers.get("content-type", "").startswith("application/json"):
        return response.status_code in (200, 307)
    payload = response.json()
    return isinstance(payload, list) or "success" in payload or "status" in payload


@pytest.mark.parametrize(("method", "path"), sorted(set(_paths())), ids=lambda v: v)
def test_garbage_never_breaks_an_endpoint(rocketchat_shared_garbage, method, path):
    rc = rocketchat_shared_garbage
    if rc.api("GET", "me").status_code == 401:
        rc.connect_admin()  # a garbage call before this one ended the session (logout, users.logout)
    headers = {**rc.admin_2fa_headers, "Content-Type": "application/json"}
    if method == "GET":
        for query in GARBAGE_QUERIES:
            response = rc.api(method, path, headers=headers, params=query)
            assert response.status_code < 500, (query, response.text)
            assert _shape_ok(response), response.text
        return
    for body in GARBAGE_BODIES:
        response = rc.api(method, path, headers=headers, content=body)
        assert response.status_code < 500, (body, response.text)
        assert _shape_ok(response), response.text
        if response.status_code == 401:
            rc.connect_admin()


@pytest.fixture(scope="module")
def rocketchat_shared_garbage(tmp_path_factory):
    """A private simulator: garbage (and logout) must not disturb the shared target's admin session."""
    if os.environ.get("ROCKETCHAT_URL"):
        pytest.skip("garbage input is aimed at the simulator's own robustness")
    target = start_simulator(
        tmp_path_factory.mktemp("garbage"), "rocketchat-sim-garbage", SHARED_SIM_SETTINGS
    )
    yield target
    target.process.stop()
