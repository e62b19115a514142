"""Probe an ERP bot-integration API the way an attacker would, and report what it lets through.

    python -m security.api_probe https://erp.example.com --key-file bot.key [--ca ca.pem]

The key should be a bot-scope key (no admin scope): the probe checks that it cannot do admin things.
It sends a few dozen requests (no load), creates nothing that succeeds, and exits 1 when any check
fails. Works against the reference implementation and against the ERP team's own module.
"""

from __future__ import annotations

import argparse
import base64
import json
import ssl
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from security.findings import Finding, report

API = "/api/bot/v1"
TIMEOUT = 10.0
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

    def run(self) -> list[Finding]:
        self.authentication()
        self.authorisation()
        self.input_handling()
        self.protocol()
        return self.findings


def run(
    url: str, key: str, *, ca: str | None = None, transport: httpx.BaseTransport | None = None
) -> list[Finding]:
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca) if ca else True
    with httpx.Client(base_url=url, timeout=TIMEOUT, verify=verify, transport=transport) as client:
        return Probe(client, key).run()


def _read_key(path: str) -> str:
    return Path(path).read_text(encoding="utf-8").strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="base URL of the ERP API, without /api/bot/v1")
    parser.add_argument("--key-file", required=True, help="file holding a bot-scope API key")
    parser.add_argument("--ca", help="CA certificate to verify TLS against")
    args = parser.parse_args(argv)
    findings = run(args.url, _read_key(args.key_file), ca=args.ca)
    return report(findings)


if __name__ == "__main__":
    sys.exit(main())
