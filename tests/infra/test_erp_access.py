"""Section 5 in front of the ERP: keys, allowlist, rate limits, and a registration end to end."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from plugins.infra import Stack, container_python

pytestmark = pytest.mark.infra


def call_from(
    container: str, stack: Stack, method: str, path: str, *, key: str = "", body: dict | None = None
) -> dict:
    """One HTTPS request through the proxy, made from inside a deployed container."""
    code = f"""
import json, os, httpx
headers = {{"Idempotency-Key": {uuid.uuid4().hex!r}}}
if {key!r}:
    headers["X-API-Key"] = {key!r}
ca = "/etc/bot/ca.crt" if os.path.exists("/etc/bot/ca.crt") else False  # only the bot has the CA
r = httpx.request({method!r}, {stack.proxy_internal_url + path!r}, headers=headers, json={body!r},
                  verify=ca, timeout=10)
print(json.dumps({{"status": r.status_code, "body": r.text}}))
"""
    return json.loads(container_python(container, code))


def test_bot_reaches_the_erp_with_its_key(stack: Stack, bot_api_key: str) -> None:
    result = call_from(stack.bot, stack, "GET", "/api/bot/v1/positions", key=bot_api_key)
    assert result["status"] == 200, result
    assert json.loads(result["body"])["items"], "no positions seeded"


def test_erp_refuses_a_request_without_a_key(stack: Stack) -> None:
    result = call_from(stack.bot, stack, "GET", "/api/bot/v1/positions")
    assert result["status"] == 401, result
    assert json.loads(result["body"])["code"] == "unauthorized"


def test_erp_refuses_a_non_allowlisted_address_even_with_the_key(stack: Stack, bot_api_key: str) -> None:
    from_host = httpx.get(
        f"{stack.base_url}/api/bot/v1/positions",
        headers={"X-API-Key": bot_api_key},
        verify=stack.ssl_context(),
        timeout=10,
    )
    assert from_host.status_code == 403
    from_network = call_from(stack.rocketchat, stack, "GET", "/api/bot/v1/positions", key=bot_api_key)
    assert from_network["status"] == 403, from_network


def test_bot_api_is_rate_limited_per_address(stack: Stack) -> None:
    code = f"""
import httpx
with httpx.Client(verify=False, timeout=10) as client:
    url = {stack.proxy_internal_url + "/api/bot/v1/positions"!r}
    statuses = [client.get(url).status_code for _ in range(120)]
print(sorted(set(statuses)), statuses.count(429))
"""
    out = container_python(stack.rocketchat, code)
    assert "429" in out, out


def test_employee_registration_and_activation_through_the_proxy(stack: Stack, bot_api_key: str) -> None:
    listed = call_from(stack.bot, stack, "GET", "/api/bot/v1/positions", key=bot_api_key)
    positions = json.loads(listed["body"])
    position = next(p for p in positions["items"] if p["erp_access"] and not p["requires_approval"])
    suffix = uuid.uuid4().hex[:8]
    created = call_from(
        stack.bot,
        stack,
        "POST",
        "/api/bot/v1/staff",
        key=bot_api_key,
        body={
            "full_name": "Petrov Petr",
            "email": f"petrov.{suffix}@example.com",
            "position_code": position["code"],
            "rocketchat_user_id": f"uid{suffix}",
            "rocketchat_username": f"petrov{suffix}",
        },
    )
    assert created["status"] == 201, created
    activation = json.loads(created["body"])["activation"]
    # The employee activates from outside (the host), through the proxy's public name.
    response = httpx.post(
        f"{stack.base_url}/api/v1/account/activate",
        json={"login": activation["login"], "code": activation["code"], "password": f"Zx{suffix}9qw7Lm"},
        verify=stack.ssl_context(),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.json()["login"] == activation["login"]
