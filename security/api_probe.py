"""Probe an ERP bot-integration API the way an attacker would, and report what it lets through.

    python -m security.api_probe https://erp.example.com --key-file bot.key [--ca ca.pem]

The key should be a bot-scope key (no admin scope): the probe checks that it cannot do admin things.
It sends a few dozen requests (no load), creates nothing that succeeds, and exits 1 when any check
fails. Works against the reference implementation and against the ERP team's own module.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import secrets
import socket
import ssl
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from security.findings import Finding, report

API = "/api/bot/v1"
ACTIVATE = "/api/v1/account/activate"
TIMEOUT = 10.0
# The secret the ERP used when none was configured, public in its history (finding 1).
PLACEHOLDER_SECRET = "dev-secret-change-me"  # noqa: S105  # nosec B105
PROBE_PASSWORD = "-".join(("Probe", "pass", "123"))  # a strong-looking password no account will get
# Text that must never reach a client: stack traces, driver errors, file paths of the server.
LEAK_MARKERS = ("Traceback", "sqlalchemy", "psycopg", "sqlite3", 'File "/', "site-packages", "IntegrityError")
INJECTION_VALUES = (
    "' OR '1'='1",
    "admin'--",
    '"; DROP TABLE staff; --',
    "../../../../etc/passwd",
    "${jndi:ldap://127.0.0.1/x}",
    "{{7*7}}",
    "%00",
    "\u202eevil",
)


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _leaks(response: httpx.Response) -> str | None:
    return next((marker for marker in LEAK_MARKERS if marker in response.text), None)


def _is_problem(response: httpx.Response, status: int) -> bool:
    content_type = response.headers.get("content-type", "")
    return response.status_code == status and content_type.startswith("application/problem+json")


class Probe:
    def __init__(self, client: httpx.Client, key: str) -> None:
        self.client = client
        self.key = key
        self.findings: list[Finding] = []

    def record(self, check: str, ok: bool, detail: str) -> None:
        self.findings.append(Finding(check, ok, detail))

    def expect(self, check: str, response: httpx.Response, status: int) -> None:
        leak = _leaks(response)
        ok = _is_problem(response, status) and leak is None
        detail = f"{response.status_code} {response.headers.get('content-type', '')}"
        self.record(check, ok, detail + (f", leaks {leak!r}" if leak else ""))

    def authed(self) -> dict[str, str]:
        return {"X-API-Key": self.key}

    # -- authentication -------------------------------------------------------------------------
    def authentication(self) -> None:
        self.expect("no credentials → 401", self.client.get(f"{API}/positions"), 401)
        self.expect(
            "unknown key → 401",
            self.client.get(f"{API}/positions", headers={"X-API-Key": "x" * 40}),
            401,
        )
        self.expect(
            "key in the query string is not accepted",
            self.client.get(f"{API}/positions", params={"api_key": self.key, "X-API-Key": self.key}),
            401,
        )
        self.expect(
            "key as a Bearer token is not accepted",
            self.client.get(f"{API}/positions", headers={"Authorization": f"Bearer {self.key}"}),
            401,
        )
        header = {"typ": "JWT"}
        claims = {"sub": "1", "scope": "admin bot", "exp": 4102444800, "iat": 1}
        unsigned = f"{_b64({**header, 'alg': 'none'})}.{_b64(claims)}."
        self.expect(
            "JWT with alg=none → 401",
            self.client.get(f"{API}/positions", headers={"Authorization": f"Bearer {unsigned}"}),
            401,
        )
        issued = self.client.post(f"{API}/auth/token", headers=self.authed())
        if issued.status_code != 200:
            self.record("JWT exchange works for the probe's key", False, str(issued.status_code))
            return
        token = issued.json()["access_token"]
        head, _, signature = token.split(".")
        escalated = f"{head}.{_b64(claims)}.{signature}"
        self.expect(
            "JWT with a rewritten payload → 401",
            self.client.get(f"{API}/positions", headers={"Authorization": f"Bearer {escalated}"}),
            401,
        )
        expires_in = issued.json().get("expires_in", 0)
        self.record("JWT lifetime ≤ 15 minutes", 0 < expires_in <= 900, f"expires_in={expires_in}")

    # -- authorisation ----------------------------------------------------------------------------
    def authorisation(self) -> None:
        admin_calls: list[Callable[[], httpx.Response]] = [
            lambda: self.client.get(f"{API}/audit", headers=self.authed()),
            lambda: self.client.post(f"{API}/staff/1/approve", headers=self.authed()),
            lambda: self.client.post(f"{API}/staff/1/block", headers=self.authed()),
            lambda: self.client.patch(
                f"{API}/positions/ENG", headers=self.authed(), json={"erp_access": True}
            ),
        ]
        for call in admin_calls:
            response = call()
            self.expect(
                f"bot key refused on {response.request.method} {response.request.url.path}", response, 403
            )

    # -- input handling ---------------------------------------------------------------------------
    def input_handling(self) -> None:
        for value in INJECTION_VALUES:
            response = self.client.get(
                f"{API}/staff", headers=self.authed(), params={"rocketchat_username": value}
            )
            leak = _leaks(response)
            ok = response.status_code in (200, 422) and leak is None
            if ok and response.status_code == 200:
                ok = response.json().get("items") == []
            self.record(f"lookup with {value!r} finds nothing, leaks nothing", ok, str(response.status_code))
        for path in (
            "/staff/1%20OR%201=1",
            "/staff/..%2f..%2fetc%2fpasswd",
            "/staff/-1",
            "/staff/99999999999999999999",
        ):
            response = self.client.get(f"{API}{path}", headers=self.authed())
            ok = response.status_code in (404, 422) and _leaks(response) is None
            self.record(f"GET {path} is 404/422", ok, str(response.status_code))
        self.expect(
            "malformed JSON → 422",
            self.client.post(
                f"{API}/staff",
                headers={
                    **self.authed(),
                    "Idempotency-Key": "probe-malformed",
                    "Content-Type": "application/json",
                },
                content=b'{"full_name": ',
            ),
            422,
        )
        self.expect(
            "control characters in a name → 422",
            self.client.post(
                f"{API}/staff",
                headers={**self.authed(), "Idempotency-Key": "probe-control"},
                json={
                    "full_name": "Ivan\x00\x1b[31m Petrov",
                    "email": "probe@example.com",
                    "position_code": "ENG",
                    "rocketchat_user_id": "probe-user-id",
                    "rocketchat_username": "probe.user",
                },
            ),
            422,
        )
        big = b'{"full_name": "' + b"a" * 2_000_000 + b'"}'
        self.expect(
            "2 MB body → 413",
            self.client.post(
                f"{API}/staff",
                headers={**self.authed(), "Idempotency-Key": "probe-big", "Content-Type": "application/json"},
                content=big,
            ),
            413,
        )

    # -- protocol ---------------------------------------------------------------------------------
    def protocol(self) -> None:
        response = self.client.request("TRACE", f"{API}/positions", headers=self.authed())
        self.record("TRACE is not allowed", response.status_code in (405, 501), str(response.status_code))
        response = self.client.get(
            f"{API}/positions", headers={**self.authed(), "X-Request-ID": "a\tb<script>"}
        )
        echoed = response.headers.get("x-request-id", "")
        self.record("hostile X-Request-ID is not echoed", "<script>" not in echoed, echoed or "absent")
        response = self.client.get(f"{API}/positions", headers=self.authed())
        self.record(
            "responses are not cacheable by shared caches",
            "public" not in response.headers.get("cache-control", ""),
            response.headers.get("cache-control", "no Cache-Control"),
        )

    # -- round two (issue 12): each finding, so that it can never come back -------------------------
    def public_secret(self, *, behind_allowlist: bool = False) -> None:
        """Finding 1: an admin JWT signed with the old public placeholder secret must not work.

        Through the proxy from outside its allowlist, nginx refuses first (403) and the ERP never sees
        the token: refused either way, and neither answer may leak anything."""
        now = int(time.time())
        for sub in ("1", "2", "3"):
            claims = {
                "iss": "photomatrix-erp",
                "aud": "erp-bot-api",
                "sub": sub,
                "iat": now,
                "exp": now + 300,
            }
            token = _hs256(claims, PLACEHOLDER_SECRET)
            response = self.client.get(f"{API}/audit", headers={"Authorization": f"Bearer {token}"})
            if behind_allowlist and response.status_code == 403:
                leak = _leaks(response)
                self.record(
                    f"JWT signed with the placeholder secret (sub {sub}) → refused by the allowlist (403)",
                    leak is None,
                    "403" + (f", leaks {leak!r}" if leak else ""),
                )
                continue
            self.expect(f"JWT signed with the placeholder secret (sub {sub}) → 401", response, 401)

    def refused_before_validation(self) -> None:
        """Finding 2: a malformed body with bad credentials is refused as unauthenticated, not parsed."""
        self.expect(
            "malformed body with an unknown key → 401 (authentication first)",
            self.client.post(
                f"{API}/staff",
                headers={"X-API-Key": "x" * 40, "Content-Type": "application/json"},
                content=b"{",
            ),
            401,
        )

    def activation(self) -> None:
        """Finding 3: one answer for every failure; a login's wrong codes slow it down, never exhaust it."""
        login = f"probe.{secrets.token_hex(4)}"
        answers = [
            self.client.post(ACTIVATE, json={"login": login, "code": "000000", "password": PROBE_PASSWORD})
            for _ in range(6)
        ]
        first = answers[0]
        ok = _is_problem(first, 400) and first.json().get("code") == "activation_code_invalid"
        self.record("activation failure for an unknown login: 400 activation_code_invalid", ok, _brief(first))
        last = answers[-1]
        exhausted = any(_brief(a).endswith("activation_code_exhausted") for a in answers)
        self.record(
            "wrong codes on one login are slowed down (429), never exhausted",
            last.status_code == 429 and not exhausted,
            _brief(last),
        )
        details = {a.json().get("detail") for a in answers[:5] if a.status_code == 400}
        self.record(
            "every activation failure has the same detail", len(details) == 1, f"{len(details)} details"
        )

    def database_safety(self) -> None:
        """Finding 4: NUL bytes and long paths must be clean 4xx, not 500 (PostgreSQL)."""
        response = self.client.get(f"{API}/staff", headers=self.authed(), params={"email": "a\x00b@x"})
        self.record("NUL in a look-up → 422, not 500", response.status_code == 422, str(response.status_code))
        response = self.client.get(f"{API}/staff/1%00" + "x" * 300)
        self.expect("long path with a NUL, no key → 401", response, 401)

    def strict_inputs(self) -> None:
        """Finding 6: ids, media types, encodings, redirects, the API browser."""
        for path in ("/staff/1_0", "/staff/%201"):
            response = self.client.get(f"{API}{path}", headers=self.authed())
            self.record(
                f"GET {path} names no record (422)", response.status_code == 422, str(response.status_code)
            )
        headers = {**self.authed(), "Idempotency-Key": "probe-media"}
        self.expect(
            "text/plain body → 415",
            self.client.post(
                f"{API}/staff", headers={**headers, "Content-Type": "text/plain"}, content=b"{}"
            ),
            415,
        )
        self.expect(
            "UTF-16 JSON body → 422",
            self.client.post(
                f"{API}/staff",
                headers={**headers, "Content-Type": "application/json"},
                content='{"full_name": "x"}'.encode("utf-16"),
            ),
            422,
        )
        response = self.client.get(f"{API}/positions/", headers={**self.authed(), "Host": "evil.example"})
        location = response.headers.get("location", "")
        self.record("trailing slash does not redirect to the Host header", "evil.example" not in location,
                    f"{response.status_code} {location}")  # fmt: skip
        response = self.client.get("/docs")
        self.record("no API browser (/docs)", response.status_code == 404, str(response.status_code))

    def run(self) -> list[Finding]:
        self.authentication()
        self.authorisation()
        self.input_handling()
        self.protocol()
        self.public_secret()
        self.refused_before_validation()
        self.activation()
        self.database_safety()
        self.strict_inputs()
        return self.findings


def run_public(url: str, *, ca: str | None = None) -> list[Finding]:
    """The checks that need no key: what anyone on the internet can try through the proxy."""
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca) if ca else True
    with httpx.Client(base_url=url, timeout=TIMEOUT, verify=verify) as client:
        probe = Probe(client, "")
        response = client.get(f"{API}/positions")
        probe.record(
            "bot API without credentials is refused (401/403)",
            response.status_code in (401, 403) and _leaks(response) is None,
            str(response.status_code),
        )
        probe.public_secret(behind_allowlist=True)
        probe.activation()
        response = client.get("/docs")
        probe.record("no API browser (/docs)", response.status_code == 404, str(response.status_code))
        return probe.findings


def _brief(response: httpx.Response) -> str:
    try:
        code = response.json().get("code")
    except ValueError:
        code = None
    return f"{response.status_code} {code or ''}".strip()


def _hs256(claims: dict, secret: str) -> str:
    """A JWT signed with `secret` (HS256), without a JWT library: the probe needs only httpx."""
    head = _b64({"alg": "HS256", "typ": "JWT"})
    body = _b64(claims)
    signature = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    """Everything the peer sends until it closes; `<still open>` or `<reset>` appended otherwise."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        return data + b"<still open>"
    except ConnectionResetError:
        return data + b"<reset>"
    return data


class DirectProbe:
    """Finding 5: checks only meaningful against the ERP server itself (not through a proxy): raw
    sockets with an unfinished head, an oversized head, an invalid request line."""

    def __init__(self, url: str, head_timeout: float) -> None:
        parts = urlsplit(url)
        self.address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.head_timeout = head_timeout
        self.findings: list[Finding] = []

    def run(self) -> list[Finding]:
        with socket.create_connection(self.address, timeout=TIMEOUT) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: probe\r\nX-Slow: ")
            answer = read_until_closed(sock, self.head_timeout)
        self.findings.append(
            Finding(f"unfinished request head cut off within {self.head_timeout:.0f} s",
                    not answer.endswith(b"<still open>"), answer[:40].decode("latin-1"))
        )  # fmt: skip
        with socket.create_connection(self.address, timeout=TIMEOUT) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: probe\r\nX-Big: ")
            try:
                for _ in range(32):  # 1 MiB of one header
                    sock.sendall(b"a" * 32768)
            except OSError:
                pass
            answer = read_until_closed(sock, TIMEOUT)
        self.findings.append(
            Finding(
                "1 MiB request head refused (431)",
                answer.startswith(b"HTTP/1.1 431"),
                answer[:40].decode("latin-1"),
            )
        )
        with socket.create_connection(self.address, timeout=TIMEOUT) as sock:
            sock.sendall(b"GET /\x01 HTTP/1.1\r\nHost: probe\r\n\r\n")
            answer = read_until_closed(sock, TIMEOUT)
        self.findings.append(
            Finding(
                "HTTP-layer 400 is problem JSON",
                b"application/problem+json" in answer,
                answer[:40].decode("latin-1"),
            )
        )
        return self.findings


def run(
    url: str,
    key: str,
    *,
    ca: str | None = None,
    transport: httpx.BaseTransport | None = None,
    direct: bool = False,
    head_timeout: float = 15.0,
) -> list[Finding]:
    """Every check; `direct` adds the raw-socket checks of the server itself (finding 5)."""
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca) if ca else True
    with httpx.Client(base_url=url, timeout=TIMEOUT, verify=verify, transport=transport) as client:
        findings = Probe(client, key).run()
    if direct:
        findings += DirectProbe(url, head_timeout).run()
    return findings


def _read_key(path: str) -> str:
    return Path(path).read_text(encoding="utf-8").strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="base URL of the ERP API, without /api/bot/v1")
    parser.add_argument("--key-file", required=True, help="file holding a bot-scope API key")
    parser.add_argument("--ca", help="CA certificate to verify TLS against")
    parser.add_argument(
        "--direct", action="store_true", help="the URL reaches the ERP server itself: add raw-socket checks"
    )
    parser.add_argument(
        "--head-timeout", type=float, default=15.0, help="seconds an unfinished head may last"
    )
    args = parser.parse_args(argv)
    findings = run(
        args.url, _read_key(args.key_file), ca=args.ca, direct=args.direct, head_timeout=args.head_timeout
    )
    return report(findings)


if __name__ == "__main__":
    sys.exit(main())
