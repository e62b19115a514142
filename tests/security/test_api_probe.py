"""security/api_probe.py: clean against the ERP reference server, loud against a careless one."""

from __future__ import annotations

import json

import httpx
import pytest

from security import api_probe


@pytest.mark.integration
def test_reference_erp_passes_every_probe(erp_api) -> None:
    findings = api_probe.run(erp_api.base_url, erp_api.bot_key, direct=True, head_timeout=15)
    failed = [str(f) for f in findings if not f.ok]
    assert not failed
    assert len(findings) >= 45


def careless_server(request: httpx.Request) -> httpx.Response:
    """Accepts any credentials, echoes headers, and shows its stack trace on bad input."""
    if request.method == "POST" and request.url.path.endswith("/auth/token"):
        return httpx.Response(200, json={"access_token": "a.b.c", "expires_in": 86400})
    if request.method == "POST" and request.url.path.endswith("/staff"):
        try:
            json.loads(request.content)
        except ValueError:
            return httpx.Response(500, text='Traceback (most recent call last):\n  File "/srv/app.py"')
    headers = {"x-request-id": request.headers.get("x-request-id", "1"), "cache-control": "public"}
    return httpx.Response(200, json={"items": [{"id": 1}]}, headers=headers)


@pytest.mark.unit
def test_careless_server_is_reported() -> None:
    findings = {
        f.check: f
        for f in api_probe.run("http://erp.test", "k", transport=httpx.MockTransport(careless_server))
    }
    for check in (
        "no credentials → 401",
        "JWT with alg=none → 401",
        "JWT lifetime ≤ 15 minutes",
        "bot key refused on GET /api/bot/v1/audit",
        "malformed JSON → 422",
        "2 MB body → 413",
        "TRACE is not allowed",
        "hostile X-Request-ID is not echoed",
        "responses are not cacheable by shared caches",
        "lookup with \"' OR '1'='1\" finds nothing, leaks nothing",
        # round two (issue 12)
        "JWT signed with the placeholder secret (sub 2) → 401",
        "malformed body with an unknown key → 401 (authentication first)",
        "activation failure for an unknown login: 400 activation_code_invalid",
        "wrong codes on one login are slowed down (429), never exhausted",
        "GET /staff/1_0 names no record (422)",
        "text/plain body → 415",
        "UTF-16 JSON body → 422",
    ):
        assert not findings[check].ok, check
    assert "leaks 'Traceback'" in findings["malformed JSON → 422"].detail
