"""Rate limits, failed-auth throttling, global IP allowlist, trusted proxies, suspicious-activity alerts."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from plugins.erp import idem
from plugins.processes import free_port

pytestmark = pytest.mark.integration
API = "/api/bot/v1"


@pytest.fixture(scope="module")
def limited_server(erp_server_factory):
    return erp_server_factory(
        {
            "ERP_RATE_LIMIT_KEY_PER_SECOND": "1",
            "ERP_RATE_LIMIT_KEY_BURST": "5",
            "ERP_AUTH_FAILURE_LIMIT": "4",
            "ERP_AUTH_FAILURE_WINDOW_SECONDS": "60",
            "ERP_RATE_LIMIT_ACTIVATION_PER_MINUTE": "3",
            "ERP_TRUSTED_PROXIES": "127.0.0.1/32",
        },
        name="erp-limited",
    )


def test_key_rate_limit_is_429_with_retry_after(limited_server):
    key = limited_server.create_key("burst")
    with limited_server.client(key) as client:
        statuses = [client.get(f"{API}/positions").status_code for _ in range(8)]
        refused = client.get(f"{API}/positions")
    assert statuses[:5] == [200] * 5
    assert 429 in statuses[5:]
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1
    with limited_server.client(limited_server.bot_key) as other:
        assert other.get(f"{API}/positions").status_code == 200  # limits are per key


def test_failed_auth_throttles_the_source_ip_only(limited_server):
    # The proxy (loopback is trusted) names the client: this IP is throttled, another is not.
    attacker = {"X-Forwarded-For": "203.0.113.50"}
    for _ in range(4):
        response = httpx.get(
            f"{limited_server.base_url}{API}/positions", headers={**attacker, "X-API-Key": "bad"}
        )
        assert response.status_code == 401
    throttled = httpx.get(
        f"{limited_server.base_url}{API}/positions", headers={**attacker, "X-API-Key": limited_server.bot_key}
    )
    assert throttled.status_code == 429
    assert "retry-after" in throttled.headers
    bystander = httpx.get(
        f"{limited_server.base_url}{API}/positions",
        headers={"X-Forwarded-For": "203.0.113.51", "X-API-Key": limited_server.bot_key},
    )
    assert bystander.status_code == 200
    with limited_server.client(limited_server.admin_key) as admin:
        events = admin.get(f"{API}/audit", params={"limit": 100}).json()["items"]
    assert any(e["source_ip"] == "203.0.113.50" and e["outcome"] == "unauthorized" for e in events)


def test_activation_is_rate_limited_per_ip(limited_server):
    body = {"login": "nobody.x", "code": "000000", "password": "Strong-pass-2024"}
    ip = {"X-Forwarded-For": "198.51.100.77"}
    codes = [
        httpx.post(f"{limited_server.base_url}/api/v1/account/activate", json=body, headers=ip).status_code
        for _ in range(5)
    ]
    assert codes[0] == 400
    assert codes[-1] == 429


@pytest.fixture(scope="module")
def fenced_server(erp_server_factory):
    return erp_server_factory({"ERP_ALLOWED_NETWORKS": "192.0.2.0/24"}, name="erp-fenced")


def test_global_allowlist_refuses_other_sources_with_a_bare_403(fenced_server):
    with fenced_server.client(fenced_server.bot_key) as client:
        denied = client.get(f"{API}/positions")
        # Without a trusted proxy, X-Forwarded-For is ignored: it cannot smuggle an allowed address.
        spoofed = client.get(f"{API}/positions", headers={"X-Forwarded-For": "192.0.2.10"})
        health = client.get("/healthz")
    assert denied.status_code == 403
    assert denied.json()["code"] == "forbidden"
    assert denied.json()["detail"] is None
    assert spoofed.status_code == 403
    assert health.status_code == 200


class WebhookSink:
    """A stand-in for Rocket.Chat's incoming webhook: records every POST body."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                sink.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b'{"success": true}')

            def log_message(self, *args) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture(scope="module")
def webhook(erp_backend):  # one sink per backend: each backend's server alerts on its own
    sink = WebhookSink()
    yield sink
    sink.close()


@pytest.fixture(scope="module")
def alerting_server(erp_server_factory, webhook):
    return erp_server_factory(
        {
            "ERP_ALERT_WEBHOOK_URL": f"http://127.0.0.1:{webhook.port}/hooks/abc/secret-token",
            "ERP_ALERT_AUTH_FAILURES_THRESHOLD": "5",
            "ERP_ALERT_REGISTRATIONS_THRESHOLD": "3",
            "ERP_ALERT_WINDOW_SECONDS": "60",
            "ERP_ALERT_WEBHOOK_MIN_INTERVAL_SECONDS": "3600",
        },
        name="erp-alerting",
    )


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_burst_of_auth_failures_raises_one_alert(alerting_server, webhook):
    for _ in range(12):
        httpx.get(f"{alerting_server.base_url}{API}/positions", headers={"X-API-Key": "bad"})
    assert wait_for(lambda: any(b["alert"]["kind"] == "auth_failures" for b in webhook.bodies))
    time.sleep(0.5)
    alerts = [b for b in webhook.bodies if b["alert"]["kind"] == "auth_failures"]
    assert len(alerts) == 1  # the webhook itself is rate limited
    assert "auth_failures" in alerts[0]["text"]
    log = alerting_server.process.tail(400)
    assert '"event": "suspicious_activity"' in log
    assert "secret-token" not in log


def test_burst_of_registrations_raises_an_alert(alerting_server, webhook, new_staff):
    with alerting_server.client(alerting_server.bot_key) as client:
        for _ in range(3):
            assert client.post(f"{API}/staff", json=new_staff(), headers=idem()).status_code == 201
    assert wait_for(lambda: any(b["alert"]["kind"] == "registrations" for b in webhook.bodies))


@pytest.fixture(scope="module")
def ip_limited_server(erp_server_factory):
    return erp_server_factory(
        {
            "ERP_RATE_LIMIT_IP_PER_SECOND": "0.1",  # slow refill: a loaded machine must not refill it
            "ERP_RATE_LIMIT_IP_BURST": "6",
            "ERP_TRUSTED_PROXIES": "127.0.0.1",
        },
        name="erp-ip-limited",
    )


def test_source_ip_limit_applies_across_keys(ip_limited_server):
    second = ip_limited_server.create_key("second")
    client_ip = {"X-Forwarded-For": "198.51.100.9"}
    statuses = []
    for key in [ip_limited_server.bot_key, second] * 5:
        response = httpx.get(
            f"{ip_limited_server.base_url}{API}/positions", headers={**client_ip, "X-API-Key": key}
        )
        statuses.append(response.status_code)
    assert statuses[:6] == [200] * 6
    assert statuses[-1] == 429
    other_ip = {"X-Forwarded-For": "198.51.100.10", "X-API-Key": second}
    assert httpx.get(f"{ip_limited_server.base_url}{API}/positions", headers=other_ip).status_code == 200
