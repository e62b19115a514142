"""Bad input gets a 4xx with Rocket.Chat's error envelope on every endpoint, never a 500 or a crash."""

from __future__ import annotations

import os

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
    for ep in ENDPOINTS:
        for method in ep.methods:
            path = ep.path.replace("{_id}", "Site_Name")
            if path.startswith("/api/v1/"):
                yield method, path


@pytest.mark.parametrize(("method", "path"), sorted(set(_paths())), ids=lambda v: v)
def test_garbage_never_breaks_an_endpoint(rocketchat_shared_garbage, method, path):
    rc = rocketchat_shared_garbage
    rc.connect_admin()  # a fresh token each time: POST logout ends the previous one
    headers = {**rc.admin_2fa_headers, "Content-Type": "application/json"}
    if method == "GET":
        for query in GARBAGE_QUERIES:
            response = rc.api(method, path, headers=headers, params=query)
            assert response.status_code < 500, (query, response.text)
            assert "success" in response.json() or "status" in response.json()
        return
    for body in GARBAGE_BODIES:
        response = rc.api(method, path, headers=headers, content=body)
        assert response.status_code < 500, (body, response.text)
        payload = response.json()
        assert payload.get("success") is not None or payload.get("status") is not None


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
