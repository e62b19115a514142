"""The ERP's own alerts webhook over TLS from a private CA (an ERP host apart from Rocket.Chat's posts
through the proxy's public name, whose certificate the internal CA signs in the self-signed mode).

A real HTTPS server on loopback with a throwaway CA: the delivery and the read-only probe
(`python -m erp alerts-check`) verify against ERP_ALERT_WEBHOOK_CA_FILE when it is set, and fail on the
bundled roots when it is not."""

from __future__ import annotations

import http.server
import json
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from plugins.pki import ServerPki, make_test_pki
from pydantic import ValidationError

from erp.services.alerts import WEBHOOK_FAILURES, AlertMonitor, probe_webhook
from erp.settings import Settings

pytestmark = pytest.mark.unit
TOKEN = "SECRETTOKEN123"


class _Handler(http.server.BaseHTTPRequestHandler):
    posted: ClassVar[list[dict[str, object]]] = []

    def do_GET(self) -> None:
        status = 200 if self.path == "/api/info" else 404
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"success": true}')

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.posted.append({"path": self.path, "body": json.loads(body)})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ServerPki]]:
    pki = make_test_pki(tmp_path_factory.mktemp("pki"))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.cert, pki.key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://localhost:{httpd.server_address[1]}", pki
    finally:
        httpd.shutdown()
        httpd.server_close()


def _settings(tmp_path: Path, origin: str, ca: Path | None) -> Settings:
    url = tmp_path / "url"
    url.write_text(f"{origin}/hooks/abc/{TOKEN}\n")
    return Settings(
        alert_webhook_url_file=url, alert_webhook_ca_file=ca, alert_webhook_timeout_seconds=5, _env_file=None
    )


def test_the_probe_reaches_the_webhook_with_the_ca_and_not_without(server, tmp_path: Path) -> None:
    origin, pki = server
    reachable, message = probe_webhook(_settings(tmp_path, origin, pki.ca))
    assert reachable, message
    assert message == f"{origin}: reachable (/api/info 200)"
    reachable, message = probe_webhook(_settings(tmp_path, origin, None))
    assert not reachable
    assert "CERTIFICATE_VERIFY_FAILED" in message or "certificate verify failed" in message
    assert TOKEN not in message


def test_an_alert_is_delivered_over_tls_checked_against_the_ca(server, tmp_path: Path) -> None:
    origin, pki = server
    _Handler.posted.clear()
    failures = WEBHOOK_FAILURES._value.get()
    monitor = AlertMonitor(_settings(tmp_path, origin, pki.ca))
    try:
        monitor._post(
            {"kind": "auth_failures", "count": 20, "window_seconds": 60, "last_source_ip": "10.0.9.9"}
        )
    finally:
        monitor.close()
    assert WEBHOOK_FAILURES._value.get() == failures
    assert [p["path"] for p in _Handler.posted] == [f"/hooks/abc/{TOKEN}"]
    assert "auth_failures" in str(_Handler.posted[0]["body"]["text"])
    # Without the CA the same delivery fails verification and is counted, not raised.
    bare = AlertMonitor(_settings(tmp_path, origin, None))
    try:
        bare._post({"kind": "auth_failures", "count": 20, "window_seconds": 60, "last_source_ip": None})
    finally:
        bare.close()
    assert WEBHOOK_FAILURES._value.get() == failures + 1
    assert len(_Handler.posted) == 1


def test_a_missing_ca_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"ERP_ALERT_WEBHOOK_CA_FILE: no such file: .*nope\.crt"):
        Settings(alert_webhook_ca_file=tmp_path / "nope.crt", _env_file=None)


def _alerts_check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "erp", "alerts-check"]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_alerts_check_command_prints_the_origin_never_the_token(server, tmp_path: Path) -> None:
    origin, pki = server
    url = tmp_path / "url"
    url.write_text(f"{origin}/hooks/abc/{TOKEN}\n")
    env = {"PATH": "/usr/bin:/bin", "ERP_ALERT_WEBHOOK_URL_FILE": str(url)}
    env["ERP_ALERT_WEBHOOK_CA_FILE"] = str(pki.ca)
    ok = _alerts_check(env)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == f"alerts webhook: {origin}: reachable (/api/info 200)"
    del env["ERP_ALERT_WEBHOOK_CA_FILE"]
    bad = _alerts_check(env)
    assert bad.returncode == 1
    assert bad.stderr.startswith(f"alerts webhook: {origin}: unreachable: ConnectError")
    assert TOKEN not in bad.stdout + bad.stderr
