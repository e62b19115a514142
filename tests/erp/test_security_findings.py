"""Security round two (issue 12): each finding against a real ERP server, on SQLite and PostgreSQL.

Every test here failed before its fix; `security/api_probe.py` repeats the outside-visible ones against
any deployment.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest
import sqlalchemy as sa
from plugins.erp import idem
from plugins.processes import ROOT, free_port

from security.api_probe import read_until_closed

pytestmark = pytest.mark.integration
API = "/api/bot/v1"
ACTIVATE = "/api/v1/account/activate"


def audit_rows(server, where: str = "1=1", **params) -> list[dict]:
    """Audit rows read straight from the server's database (the API may be the thing refusing us)."""
    engine = sa.create_engine(server.env["ERP_DATABASE_URL"], poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            query = sa.text(f"SELECT * FROM audit_events WHERE {where} ORDER BY id")  # noqa: S608 - test literals
            return [dict(row._mapping) for row in conn.execute(query, params)]
    finally:
        engine.dispose()


# -- finding 1: the placeholder secret --------------------------------------------------------------
def _serve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "ERP_DATABASE_URL": "sqlite://", **env}
    for name in ("ERP_SECRET_KEY", "ERP_SECRET_KEY_FILE", "ERP_ENVIRONMENT"):
        if name not in env:
            full.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "erp", "serve", "--port", str(free_port()), *args],
        env=full, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    "env",
    [
        {"ERP_SECRET_KEY": "dev-secret-change-me"},  # the old public default, in development
        {"ERP_SECRET_KEY": "short-but-not-a-placeholder"},
        {"ERP_ENVIRONMENT": "production", "ERP_SECRET_KEY": "dev-secret-change-me"},
    ],
    ids=["placeholder", "short", "production-placeholder"],
)
def test_a_placeholder_or_short_secret_is_refused_in_any_environment(env) -> None:
    result = _serve(env, "--host", "127.0.0.1")
    assert result.returncode == 2, result.stderr
    assert "ERP_SECRET_KEY" in result.stderr
    assert env["ERP_SECRET_KEY"] not in result.stderr  # the refused value is not echoed


def test_an_invalid_setting_never_echoes_the_secret() -> None:
    """pydantic's error text repeats every input value: the CLI prints location and message only."""
    secret = "s3cret-" + "x" * 40
    result = _serve(
        {"ERP_SECRET_KEY": secret, "ERP_ALLOWED_NETWORKS": "not-a-network"}, "--host", "127.0.0.1"
    )
    assert result.returncode == 2
    assert "allowed_networks" in result.stderr
    assert secret not in result.stderr


def test_without_a_secret_the_server_will_not_listen_beyond_loopback() -> None:
    """Finding 1: with no settings it listened on 0.0.0.0 signing with `dev-secret-change-me`."""
    result = _serve({}, "--host", "0.0.0.0")
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0 without a real secret" in result.stderr


# -- finding 2: audit write amplification ----------------------------------------------------------
@pytest.fixture(scope="module")
def netlimited_server(erp_server_factory):
    """Only 10.0.0.0/8 may use /api/bot/*: every request from this test (loopback) is refused."""
    return erp_server_factory(
        {"ERP_ALLOWED_NETWORKS": "10.0.0.0/8", "ERP_AUTH_FAILURE_LIMIT": "5"}, name="erp-netlimited"
    )


def test_malformed_bodies_before_authentication_write_no_row_each(erp_server) -> None:
    """Finding 2: every malformed body on a mutation wrote an audit row before authentication."""
    tag = f"/api/bot/v1/staff/{int(time.time() * 1000) % 2_000_000_000}/reject"
    before = len(audit_rows(erp_server, "target = :t", t=tag))
    with erp_server.client() as client:
        for _ in range(60):
            response = client.post(tag, content=b"{", headers={"Content-Type": "application/json"})
            assert response.status_code == 422
    rows = audit_rows(erp_server, "target = :t", t=tag)
    # At most the first of the interval (per source); the rest are summed into one row when it ends.
    assert len(rows) - before <= 1


def test_a_malformed_body_with_a_key_is_audited_with_the_key_name(erp_server) -> None:
    """Finding 6: a 422 from an admin key was recorded without the key name."""
    path = f"{API}/positions/ENG"
    with erp_server.client(erp_server.admin_key) as client:
        response = client.patch(path, content=b"{", headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    rows = audit_rows(erp_server, "target = :t AND outcome = 'validation_error'", t=path)
    assert rows[-1]["key_name"] == "admin"
    assert rows[-1]["request_id"] == response.headers["x-request-id"]


def test_a_malformed_body_with_a_bad_key_is_unauthorised_not_audited_as_a_mutation(erp_server) -> None:
    with erp_server.client("erp_wrong") as client:
        response = client.post(f"{API}/staff", content=b"{", headers={"Content-Type": "application/json"})
    assert response.status_code == 401


def test_refused_networks_write_a_tally_and_count_as_failed_authentications(netlimited_server) -> None:
    """Finding 2: with ERP_ALLOWED_NETWORKS each refused request wrote a row and counted toward nothing."""
    server = netlimited_server
    with server.client(server.bot_key) as client:
        codes = [client.get(f"{API}/positions").status_code for _ in range(40)]
        metrics = client.get("/metrics").text
    assert set(codes) == {403}
    assert len(audit_rows(server, "outcome = 'network_denied'")) == 1
    series = 'erp_auth_failures_total{reason="network_denied"}'
    line = next(x for x in metrics.splitlines() if x.startswith(series))
    assert float(line.split()[-1]) >= 40


def test_rate_limited_and_oversized_mutations_are_audited(erp_server_factory) -> None:
    """Finding 6: 413 and 429 on mutations left no audit row."""
    server = erp_server_factory(
        {"ERP_RATE_LIMIT_KEY_PER_SECOND": "0.01", "ERP_RATE_LIMIT_KEY_BURST": "1"}, name="erp-tight"
    )
    with server.client(server.bot_key) as client:
        big = client.post(
            f"{API}/staff", content=b"{" + b" " * 70000 + b"}", headers={"Content-Type": "application/json"}
        )
        client.get(f"{API}/positions")
        limited = client.post(f"{API}/staff", json={}, headers=idem())
    assert big.status_code == 413
    assert limited.status_code == 429
    outcomes = {row["outcome"] for row in audit_rows(server, "action = 'request'")}
    assert {"payload_too_large", "rate_limited"} <= outcomes


def test_token_exchange_is_audited(erp_server) -> None:
    with erp_server.client(erp_server.bot_key) as client:
        response = client.post(f"{API}/auth/token")
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    rows = audit_rows(erp_server, "action = 'auth.token' AND request_id = :r", r=request_id)
    assert [(r["outcome"], r["key_name"]) for r in rows] == [("ok", "bot")]


def test_key_changes_on_the_command_line_are_audited(erp_server) -> None:
    name = f"audited{int(time.time() * 1000)}"
    erp_server.create_key(name)
    erp_server.revoke_key(name)
    rows = audit_rows(erp_server, "target = :t", t=f"key:{name}")
    assert [(r["action"], r["key_name"]) for r in rows] == [("key.create", "cli"), ("key.revoke", "cli")]


# -- finding 4: NUL and long paths (PostgreSQL) ----------------------------------------------------
def test_a_long_path_with_a_nul_is_audited_and_no_parameter_is_logged(erp_server) -> None:
    """Finding 4: on PostgreSQL the failure-audit insert failed (row lost) and logged every parameter."""
    path = f"{API}/staff/1%00" + "x" * 300
    with erp_server.client() as client:
        response = client.get(path)
    assert response.status_code == 401
    rows = audit_rows(erp_server, "request_id = :r", r=response.headers["x-request-id"])
    assert len(rows) == 1
    assert rows[0]["target"].startswith(f"{API}/staff/1\\x00xxx")
    assert len(rows[0]["target"]) <= 200
    log = erp_server.process.log_path.read_text(errors="replace")
    assert "audit write failed" not in log
    assert "[parameters:" not in log


def test_a_nul_in_a_lookup_is_a_validation_error_not_a_500(erp_server) -> None:
    with erp_server.client(erp_server.bot_key) as client:
        response = client.get(f"{API}/staff", params={"email": "a\x00b@x"})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")


# -- finding 5: the server reached directly ----------------------------------------------------------
@pytest.fixture(scope="module")
def guarded_server(erp_server_factory):
    return erp_server_factory(
        {
            "ERP_SERVER_HEADER_TIMEOUT_SECONDS": "1",
            "ERP_SERVER_MAX_HEADER_BYTES": "8192",
            "ERP_SERVER_MAX_CONNECTIONS_PER_SOURCE": "8",
        },
        name="erp-guarded",
    )


def _address(server) -> tuple[str, int]:
    host, port = server.base_url.removeprefix("http://").split(":")
    return host, int(port)


def test_an_unfinished_request_head_is_cut_off(guarded_server) -> None:
    """Finding 5: a socket with unfinished headers was kept forever (4,300 of them starved everyone)."""
    with socket.create_connection(_address(guarded_server), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        started = time.monotonic()
        answer = read_until_closed(sock, timeout=10)
        elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"application/problem+json" in answer
    assert elapsed < 8


def test_an_idle_connection_is_closed(guarded_server) -> None:
    with socket.create_connection(_address(guarded_server), timeout=5) as sock:
        assert read_until_closed(sock, timeout=10) == b""


def test_an_oversized_request_head_is_refused_with_431(guarded_server) -> None:
    """Finding 5: six 50 MB headers took the server from 116 to 454 MB."""
    with socket.create_connection(_address(guarded_server), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        try:
            for _ in range(64):
                sock.sendall(b"a" * 4096)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = read_until_closed(sock, timeout=10)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]


def test_a_request_within_the_limits_still_works_and_keeps_alive(guarded_server) -> None:
    with httpx.Client(base_url=guarded_server.base_url, timeout=10) as client:
        big_but_fine = {"X-Pad": "p" * 4000}
        assert [client.get("/healthz", headers=big_but_fine).status_code for _ in range(3)] == [200] * 3


def test_the_rest_of_a_refused_body_is_not_taken_for_the_next_head(guarded_server) -> None:
    """A 413 answered before the body was read: the body's remainder is not a 431 for the next request."""
    body = b"{" + b" " * 1_999_998 + b"}"  # more than the socket buffers: most of it comes after the 413
    head = f"POST {API}/staff HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head += f"Content-Length: {len(body)}\r\n\r\n"
    with socket.create_connection(_address(guarded_server), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = read_until_closed(sock, timeout=10)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"HTTP/1.1 200 " in answer, answer[-300:]
    assert b" 431 " not in answer


def test_connections_per_source_are_limited(guarded_server) -> None:
    """Finding 5: one client could hold thousands of sockets; over the cap a connection is closed at once."""
    held = [socket.create_connection(_address(guarded_server), timeout=5) for _ in range(8)]
    try:
        with socket.create_connection(_address(guarded_server), timeout=5) as extra:
            assert read_until_closed(extra, timeout=5) in (b"", b"<reset>")
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.3)
    with httpx.Client(base_url=guarded_server.base_url, timeout=10) as client:
        assert client.get("/healthz").status_code == 200  # the slots come back


def test_a_malformed_request_line_gets_problem_json(guarded_server) -> None:
    """Finding 6: HTTP-layer 400s were plain text."""
    with socket.create_connection(_address(guarded_server), timeout=5) as sock:
        sock.sendall(b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = read_until_closed(sock, timeout=5)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b"application/problem+json" in answer


# -- finding 6: the small ones ------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/staff/1_0", "/staff/%201", "/staff/+1", "/staff/%D9%A1"])
def test_only_plain_digits_name_a_record(erp_server, path) -> None:
    with erp_server.client(erp_server.bot_key) as client:
        assert client.get(f"{API}{path}").status_code == 422


@pytest.mark.parametrize("value", ["yes", 1, "true", "on"])
def test_booleans_are_json_booleans(erp_server, value) -> None:
    with erp_server.client(erp_server.admin_key) as client:
        response = client.patch(f"{API}/positions/ENG", json={"requires_approval": value})
    assert response.status_code == 422


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("text/plain", b'{"reason": "x"}', 415),
        ("application/x-www-form-urlencoded", b"reason=x", 415),
        ("application/json; charset=latin-1", b'{"reason": "x"}', 415),
        ("application/json", '{"reason": "Ärger"}'.encode("latin-1"), 422),
        ("application/json", '{"reason": "x"}'.encode("utf-16"), 422),
    ],
    ids=["text", "form", "latin1-charset", "latin1-bytes", "utf16"],
)
def test_bodies_are_utf8_json_only(erp_server, content_type, body, status) -> None:
    with erp_server.client(erp_server.admin_key) as client:
        headers = {"Content-Type": content_type}
        response = client.post(f"{API}/staff/999999/reject", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


def test_email_local_part_and_mixed_scripts_are_refused(erp_server, new_staff) -> None:
    with erp_server.client(erp_server.bot_key) as client:
        too_long = new_staff(email="a" * 65 + "@example.com")
        long_local = client.post(f"{API}/staff", json=too_long, headers=idem())
        mixed = client.post(f"{API}/staff", json=new_staff(full_name="Ivаnov Ivan"), headers=idem())
    assert long_local.status_code == 422
    assert mixed.status_code == 422


def test_a_huge_jwt_subject_is_401_not_500(erp_server) -> None:
    import jwt

    now = int(time.time())
    claims = {"iss": "photomatrix-erp", "aud": "erp-bot-api", "sub": "9" * 30, "iat": now, "exp": now + 60}
    token = jwt.encode(claims, erp_server.env["ERP_SECRET_KEY"], algorithm="HS256")
    with erp_server.client() as client:
        assert client.get(f"{API}/positions", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_a_trailing_slash_does_not_redirect_to_the_host_header(erp_server) -> None:
    with erp_server.client(erp_server.bot_key) as client:
        response = client.get(f"{API}/positions/", headers={"Host": "evil.example"})
    assert response.status_code == 404
    assert "location" not in response.headers


def test_no_api_browser_on_the_service_port(erp_server) -> None:
    with erp_server.client() as client:
        assert client.get("/docs").status_code == 404
        assert client.get("/redoc").status_code == 404


def test_logs_are_json_lines_that_values_cannot_forge(erp_server) -> None:
    """Finding 6: CR/LF in the path and spaces in login or X-Request-ID forged log lines or fields."""
    forged = "x%0D%0A2026-01-01 INFO erp.audit audit action=staff.approve outcome=ok"
    with erp_server.client() as client:
        client.post(ACTIVATE, json={"login": "a outcome=ok", "code": "1", "password": "p"})
        assert client.get(f"{API}/staff/{forged}").status_code == 401  # audited with the CR/LF in its path
    import json

    for line in erp_server.process.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            json.loads(line)
        else:  # only uvicorn's own start-up lines predate the JSON handler
            assert "audit" not in line, line


def test_metrics_are_only_for_the_configured_networks(erp_server, netlimited_server) -> None:
    """Finding 6: /metrics needed nothing on the app port. Default: loopback and private networks."""
    with erp_server.client() as client:
        assert client.get("/metrics").status_code == 200  # loopback: a scraper on this host
    outsider = {"X-Forwarded-For": "203.0.113.5"}  # believed only from a trusted proxy
    with netlimited_server.client() as client:
        assert client.get("/metrics", headers=outsider).status_code == 200  # the peer is loopback


def test_metrics_from_an_outside_address_are_not_found(erp_server_factory) -> None:
    server = erp_server_factory({"ERP_TRUSTED_PROXIES": "127.0.0.1"}, name="erp-behind-proxy")
    with server.client() as client:
        outside = client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.5"})
        inside = client.get("/metrics", headers={"X-Forwarded-For": "10.1.2.3"})
    assert outside.status_code == 404
    assert inside.status_code == 200
