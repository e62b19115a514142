"""The Prometheus exporter Rocket.Chat serves with Prometheus_Enabled (collectMetrics.ts), on its own port.

Each test starts the simulator as a real process with OVERWRITE_SETTING_Prometheus_* (as the deployment
sets them) and scrapes it over HTTP; the exposition is parsed with prometheus_client's parser, so a
malformed line fails the test as it would fail the scrape.
"""

from __future__ import annotations

import signal
import socket

import httpx
import pytest
from plugins.processes import free_port, wait_listening
from plugins.rocketchat import DDPClient
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.integration

GAUGES = (
    "rocketchat_info",
    "rocketchat_version",
    "rocketchat_users_total",
    "rocketchat_users_active",
    "rocketchat_users_online",
    "rocketchat_rooms_total",
    "rocketchat_channels_total",
    "rocketchat_private_groups_total",
    "rocketchat_direct_total",
    "rocketchat_messages_total",
    "rocketchat_channel_messages_total",
    "rocketchat_ddp_sessions_count",
    "rocketchat_ddp_sessions_auth",
    "rocketchat_ddp_connected_users",
)


def _enabled(port: int) -> dict[str, str]:
    return {"OVERWRITE_SETTING_Prometheus_Enabled": "true", "OVERWRITE_SETTING_Prometheus_Port": str(port)}


def _refused(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def scrape(port: int) -> tuple[httpx.Response, dict[str, list[tuple[dict[str, str], float]]]]:
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.text):
        assert family.type in ("gauge", "counter"), family
        # by family name: the parser reports counter samples as <name>_total, Prometheus keeps <name>
        samples[family.name] = [(sample.labels, sample.value) for sample in family.samples]
    return response, samples


def value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str) -> float:
    [(labels, number)] = samples[name]
    assert labels == {}
    return number


async def test_metrics_follow_the_workspace(rocketchat_sim):
    port = free_port()
    rc = rocketchat_sim(env=_enabled(port))
    assert rc.process is not None
    assert rc.process.proc is not None
    wait_listening(rc.process.proc, port, "the Prometheus exporter", timeout=15)

    response, samples = scrape(port)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain"
    assert set(GAUGES) <= set(samples), sorted(set(GAUGES) - set(samples))
    version = rc.api("GET", "/api/info").json()["version"]  # full version for the admin
    [(info, one)] = samples["rocketchat_info"]
    assert one == 1
    assert info["version"] == version
    assert info["site_url"] == rc.base_url
    assert info["unique_id"]
    assert samples["rocketchat_version"] == [({"version": version}, 1)]

    listed = rc.api("GET", "users.list", params={"count": 1}).json()["total"]
    assert value(samples, "rocketchat_users_total") == listed  # rocket.cat and the admin
    stats = rc.api("GET", "statistics").json()
    assert value(samples, "rocketchat_users_total") == stats["totalUsers"]
    assert value(samples, "rocketchat_rooms_total") == stats["totalRooms"]
    assert value(samples, "rocketchat_messages_total") == stats["totalMessages"]
    users, rooms = value(samples, "rocketchat_users_total"), value(samples, "rocketchat_rooms_total")
    channels = value(samples, "rocketchat_channels_total")
    messages = value(samples, "rocketchat_messages_total")

    user = rc.create_user()
    channel = rc.api("POST", "channels.create", json={"name": f"metrics-{user.username}"})
    assert channel.status_code == 200, channel.text
    rid = channel.json()["channel"]["_id"]
    for text in ("one", "two"):
        posted = rc.api("POST", "chat.postMessage", json={"roomId": rid, "text": text})
        assert posted.status_code == 200, posted.text

    _, after = scrape(port)
    assert value(after, "rocketchat_users_total") == users + 1
    assert value(after, "rocketchat_users_total") == rc.api("GET", "users.list").json()["total"]
    assert value(after, "rocketchat_rooms_total") == rooms + 1
    assert value(after, "rocketchat_channels_total") == channels + 1
    assert value(after, "rocketchat_messages_total") == messages + 2
    assert value(after, "rocketchat_channel_messages_total") >= 2
    assert value(after, "rocketchat_metrics_requests") >= 1  # counted after each scrape, as prom-client

    async with DDPClient(rc.ws_url) as ddp:
        login = await ddp.login_password(user.username, user.password)
        assert login["result"]["id"] == user.id
        _, live = scrape(port)
        assert value(live, "rocketchat_ddp_sessions_count") == 1
        assert value(live, "rocketchat_ddp_sessions_auth") == 1
        assert value(live, "rocketchat_ddp_connected_users") == 1
        assert value(live, "rocketchat_users_online") == 1


def test_exporter_port_index_page_and_stop(rocketchat_sim):
    setting_port, env_port = free_port(), free_port()
    # PROMETHEUS_PORT wins over the setting, as `process.env.PROMETHEUS_PORT || Prometheus_Port`
    rc = rocketchat_sim(env={**_enabled(setting_port), "PROMETHEUS_PORT": str(env_port)})
    assert rc.process is not None
    assert rc.process.proc is not None
    wait_listening(rc.process.proc, env_port, "the Prometheus exporter", timeout=15)
    assert _refused(setting_port)

    for path in ("/", "/index.html", "/api/v1/info"):  # connect's app.use('/'): the index page
        page = httpx.get(f"http://127.0.0.1:{env_port}{path}", timeout=10)
        assert page.status_code == 200
        assert "Rocket.Chat Prometheus Exporter" in page.text
        assert 'href="/metrics"' in page.text
        assert "rocketchat_users_total" not in page.text
    under = httpx.get(f"http://127.0.0.1:{env_port}/metrics/", timeout=10)
    assert "rocketchat_users_total" in under.text

    rc.process.stop()  # SIGTERM: the exporter stops with the API (stop() kills after 10 s: -9)
    # uvicorn re-raises the captured signal once it has shut down
    assert rc.process.proc.returncode in (0, -signal.SIGTERM), rc.process.tail()
    assert "Traceback" not in rc.process.tail()
    assert _refused(env_port)


def test_no_exporter_unless_enabled(rocketchat_sim):
    port = free_port()
    rc = rocketchat_sim(env={"OVERWRITE_SETTING_Prometheus_Port": str(port)})  # Prometheus_Enabled: false
    assert rc.api("GET", "settings/Prometheus_Enabled").json()["value"] is False
    assert rc.api("GET", "/api/info").status_code == 200
    assert _refused(port)


def test_busy_exporter_port_leaves_the_api_running(rocketchat_sim):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        rc = rocketchat_sim(env=_enabled(port))
        assert rc.api("GET", "me").status_code == 200
        assert rc.process is not None
        assert "Prometheus exporter cannot listen on" in rc.process.tail()
