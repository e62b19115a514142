"""Restart persistence, startup configuration and fault injection: these need the simulator itself."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from plugins.rocketchat import DDPClient

pytestmark = pytest.mark.integration


def test_state_survives_restart(rocketchat_sim):
    sim = rocketchat_sim(state_file=True)
    user = sim.create_user()
    rid = sim.api("POST", "channels.create", headers=user.headers, json={"name": "persisted"}).json()[
        "channel"
    ]["_id"]
    sim.api("POST", "chat.postMessage", headers=user.headers, json={"roomId": rid, "text": "kept"})
    sim.api(
        "POST", "settings/Site_Name", json={"value": "Kept Name"}
    )  # new admin: inside the 2FA grace period
    hook = sim.api(
        "POST",
        "integrations.create",
        json={
            "type": "webhook-incoming",
            "name": "kept-hook",
            "enabled": True,
            "username": "admin",
            "channel": "#persisted",
            "scriptEnabled": False,
        },
    ).json()["integration"]
    assert sim.process is not None
    sim.process.restart()
    assert sim.api("GET", "me", headers=user.headers).json()["username"] == user.username  # token kept
    assert sim.api("GET", "me").status_code == 200  # admin token kept too
    history = sim.api("GET", "channels.history", headers=user.headers, params={"roomId": rid}).json()
    assert history["messages"][0]["msg"] == "kept"
    assert sim.api("GET", "settings/Site_Name").json()["value"] == "Kept Name"
    assert (
        sim.api("GET", "integrations.get", params={"integrationId": hook["_id"]}).json()["integration"][
            "name"
        ]
        == "kept-hook"
    )
    # ADMIN_PASS is ignored once an admin exists: still exactly one admin
    admins = sim.api("GET", "roles.getUsersInRole", params={"role": "admin"}).json()
    assert admins["total"] == 1


def test_corrupt_state_file_is_refused_not_overwritten(rocketchat_sim, tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(RuntimeError, match="exited"):
        rocketchat_sim(state_file=path)
    assert path.read_text() == "{not json"


def test_settings_from_environment(rocketchat_sim):
    sim = rocketchat_sim(
        {
            "Site_Name": "From Env",
            "OVERWRITE_SETTING_API_Default_Count": "7",
            "OVERWRITE_SETTING_Language": "ru",
        }
    )
    assert sim.api("GET", "settings/Site_Name").json()["value"] == "From Env"
    assert sim.api("GET", "settings/API_Default_Count").json()["value"] == 7
    assert sim.api("GET", "settings/Language").json()["value"] == "ru"


async def test_drop_websockets_closes_ddp_connections(rocketchat_sim):
    sim = rocketchat_sim()
    user = sim.create_user()
    async with DDPClient(sim.ws_url) as ddp:
        await ddp.call("login", {"resume": user.token})
        dropped = await asyncio.to_thread(sim.control, "/faults/drop-websockets")
        assert dropped.json()["dropped"] >= 1
        await ddp.wait_closed()
        assert ddp.ws.close_code is not None
    # reconnect and resume works afterwards
    async with DDPClient(sim.ws_url) as ddp:
        assert (await ddp.call("login", {"resume": user.token}))["result"]["id"] == user.id


def test_refuse_connections_for_a_while(rocketchat_sim):
    sim = rocketchat_sim()
    assert sim.control("/faults/refuse", {"seconds": 1.5}).status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{sim.base_url}/api/info", timeout=2)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{sim.base_url}/api/info", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    assert httpx.get(f"{sim.base_url}/api/info", timeout=2).status_code == 200
    assert sim.api("GET", "me").status_code == 200


def test_delay_and_error_injection(rocketchat_sim):
    sim = rocketchat_sim()
    sim.control("/faults/delay", {"ms": 400, "path": "/api/v1/me"})
    started = time.monotonic()
    assert sim.api("GET", "me").status_code == 200
    assert time.monotonic() - started >= 0.4
    sim.control("/faults/reset")
    sim.control("/faults/error", {"path": "/api/v1/chat.postMessage", "status": 503, "count": 2})
    statuses = [
        sim.api("POST", "chat.postMessage", json={"channel": "#general", "text": "x"}).status_code
        for _ in range(3)
    ]
    assert statuses == [503, 503, 200]
    assert sim.api("GET", "/api/info", headers={}).status_code == 200
    bad = sim.control("/faults/error", {"status": 200})
    assert bad.status_code == 400
    faults = httpx.get(f"{sim.control_url}/faults", timeout=5).json()
    assert json.dumps(faults)


def test_setup_wizard_and_overwrite(rocketchat_sim):
    sim = rocketchat_sim()
    assert sim.api("GET", "settings/Show_Setup_Wizard").json()["value"] == "in_progress"
    done = rocketchat_sim({"OVERWRITE_SETTING_Show_Setup_Wizard": "completed"})
    assert done.api("GET", "settings/Show_Setup_Wizard").json()["value"] == "completed"
