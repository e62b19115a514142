"""security/tls_check.py against real TLS servers on loopback: one hardened, one that is not."""

from __future__ import annotations

import http.server
import ssl
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from plugins.processes import free_port

from security import tls_check

pytestmark = pytest.mark.integration


def _serve(server: http.server.HTTPServer) -> Iterator[int]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _https_server(pki: dict[str, Path], *, hardened: bool) -> http.server.HTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "proxy" if hardened else "nginx/1.22.1"
        sys_version = ""

        def do_GET(self) -> None:
            self.send_response(200)
            if hardened:
                self.send_header("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
                self.send_header("X-Content-Type-Options", "nosniff")
                self.send_header("Referrer-Policy", "no-referrer")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki["cert"], pki["key"])
    if hardened:
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    return server


def _redirect_server(https_port: int) -> http.server.HTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(301)
            self.send_header("Location", f"https://localhost:{https_port}{self.path}")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    return http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)


def _run(pki: dict[str, Path], *, hardened: bool) -> dict[str, tls_check.Finding]:
    https = _https_server(pki, hardened=hardened)
    for https_port in _serve(https):
        for http_port in _serve(_redirect_server(https_port)):
            findings = tls_check.check(
                f"https://localhost:{https_port}/",
                ca=str(pki["ca"]),
                resolve="127.0.0.1",
                http_port=http_port,
            )
    return {f.check: f for f in findings}


def test_hardened_endpoint_passes_every_check(pki: dict[str, Path]) -> None:
    findings = _run(pki, hardened=True)
    failed = [str(f) for f in findings.values() if not f.ok]
    assert not failed
    assert findings["TLSv1_3 accepted"].detail == "TLSv1.3"


def test_weak_endpoint_is_reported(pki: dict[str, Path]) -> None:
    findings = _run(pki, hardened=False)
    assert not findings["HSTS"].ok
    assert not findings["header x-content-type-options"].ok
    assert not findings["server version hidden"].ok
    assert not findings["TLSv1 refused"].ok
    assert not findings["TLSv1_1 refused"].ok
    assert findings["TLSv1_2 accepted"].ok
    assert findings["certificate verifies"].ok


def test_unknown_ca_fails_verification(pki: dict[str, Path], tmp_path: Path) -> None:
    other = tmp_path / "other-ca.pem"
    other.write_bytes(
        Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt").read_bytes()
    )
    https = _https_server(pki, hardened=True)
    for port in _serve(https):
        with pytest.raises(ssl.SSLCertVerificationError):
            tls_check.certificate("localhost", port, address="127.0.0.1", ca=str(other))


def test_rejects_non_https_url() -> None:
    with pytest.raises(ValueError, match="not an https URL"):
        tls_check.check("http://localhost/")
