"""The proxy's TLS: certificate from the internal CA, modern protocols only, HSTS, redirect, WebSocket."""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import time
from pathlib import Path

import httpx
import pytest
import websockets
from plugins.infra import Stack, run_proxy_play

pytestmark = pytest.mark.infra


def handshake(stack: Stack, context: ssl.SSLContext) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", stack.https_port), timeout=10)
    return context.wrap_socket(raw, server_hostname=stack.domain)


def test_certificate_san_expiry_and_chain(stack: Stack) -> None:
    with handshake(stack, stack.ssl_context()) as tls:  # verification against the generated CA
        cert = tls.getpeercert()
    sans = {value for _kind, value in cert["subjectAltName"]}
    assert {stack.domain, "localhost", "127.0.0.1"} <= sans
    not_after = dt.datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notAfter"]), tz=dt.UTC)
    assert not_after - dt.datetime.now(dt.UTC) > dt.timedelta(days=30), "certificate should have been renewed"


def test_certificate_is_rejected_without_the_ca(stack: Stack) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(stack, ssl.create_default_context()).close()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_modern_tls_accepted(stack: Stack, version: ssl.TLSVersion) -> None:
    context = stack.ssl_context()
    context.minimum_version = context.maximum_version = version
    with handshake(stack, context) as tls:
        expected = {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
        assert tls.version() == expected


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # TLS 1.0/1.1 are deprecated: that is the point
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_old_tls_refused(stack: Stack, version: ssl.TLSVersion) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client offer the old protocols at all
    context.minimum_version = context.maximum_version = version
    with pytest.raises(ssl.SSLError):
        handshake(stack, context).close()


def test_hsts_and_security_headers(stack: Stack) -> None:
    response = httpx.get(f"{stack.base_url}/api/info", verify=stack.ssl_context(), timeout=10)
    assert response.status_code == 200
    hsts = response.headers["strict-transport-security"]
    max_age = int(hsts.split("max-age=")[1].split(";")[0])
    assert max_age >= 31536000
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "server" not in response.headers or "/" not in response.headers["server"]  # no version


def test_plain_http_redirects_to_https(stack: Stack) -> None:
    response = httpx.get(f"http://127.0.0.1:{stack.http_port}/home", timeout=10)
    assert response.status_code == 301
    assert response.headers["location"].startswith("https://")


async def test_websocket_upgrade_reaches_the_realtime_api(stack: Stack) -> None:
    url = f"wss://{stack.domain}/websocket"
    async with websockets.connect(url, ssl=stack.ssl_context(), open_timeout=10) as ws:
        await ws.send(json.dumps({"msg": "connect", "version": "1", "support": ["1"]}))
        for _ in range(5):
            frame = json.loads(await ws.recv())
            if frame.get("msg") == "connected":
                assert frame["session"]
                return
    pytest.fail("no DDP 'connected' frame through the proxy")


def served_serial(stack: Stack) -> str:
    with handshake(stack, stack.ssl_context()) as tls:
        return tls.getpeercert()["serialNumber"]


# A drill (`make drill`, refused for production): it re-issues the served certificate, which `make verify`
# (read-only) must never do to a user's stack.
@pytest.mark.drill
def test_certificate_renewed_inside_the_window_and_left_alone_outside(stack: Stack) -> None:
    before = served_serial(stack)
    untouched = run_proxy_play(stack)
    assert untouched.returncode == 0, untouched.stdout[-3000:]
    assert "changed=0" in untouched.stdout, untouched.stdout[-3000:]
    assert served_serial(stack) == before
    # A renewal window longer than the certificate's life: the run must re-issue and serve a new one.
    renewed = run_proxy_play(stack, "-e", "tls_proxy_cert_renew_days=3650")
    assert renewed.returncode == 0, renewed.stdout[-3000:]
    deadline = time.monotonic() + 30
    while served_serial(stack) == before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert served_serial(stack) != before


def write_provided_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate from 'elsewhere' (self-signed here) for the proxy's `provided` mode."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=200))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "provided.crt", directory / "provided.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_file.chmod(0o600)
    return cert_file, key_file


# A drill: another certificate is served for a while, then the internal CA's again.
@pytest.mark.drill
def test_provided_certificate_is_served_then_internal_ca_restored(stack: Stack, tmp_path: Path) -> None:
    cert_file, key_file = write_provided_certificate(tmp_path)
    provided = run_proxy_play(
        stack,
        "-e",
        "tls_proxy_cert_mode=provided",
        "-e",
        f"tls_proxy_provided_cert_file={cert_file}",
        "-e",
        f"tls_proxy_provided_key_file={key_file}",
    )
    try:
        assert provided.returncode == 0, provided.stdout[-3000:]
        trusting_provided = ssl.create_default_context(cafile=str(cert_file))
        deadline = time.monotonic() + 30
        while True:
            try:
                handshake(stack, trusting_provided).close()
                break
            except ssl.SSLError:
                assert time.monotonic() < deadline, "the provided certificate is not served"
                time.sleep(0.5)
    finally:
        restored = run_proxy_play(stack)
    assert restored.returncode == 0, restored.stdout[-3000:]
    deadline = time.monotonic() + 30
    while True:
        try:
            served_serial(stack)  # verifies against the internal CA again
            break
        except ssl.SSLError:
            assert time.monotonic() < deadline, "the internal CA's certificate is not back"
            time.sleep(0.5)
