"""ERP client: retries with backoff and Retry-After, idempotency, request ids, the circuit breaker."""

import httpx
import pytest

from bot.erp_client import CircuitBreaker, ErpClient, ErpError, ErpUnavailable
from bot.logging import request_id_var

pytestmark = pytest.mark.unit


def client(handler, **kwargs) -> ErpClient:
    kwargs.setdefault("backoff_base", 0.001)
    kwargs.setdefault("backoff_max", 0.002)
    return ErpClient("http://erp.test/api/bot/v1", "k-123", transport=httpx.MockTransport(handler), **kwargs)


async def test_headers_and_problem_codes():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(409, json={"code": "staff_exists", "detail": "dup", "staff_id": 4})

    erp = client(handler)
    request_id_var.set("req-1")
    with pytest.raises(ErpError) as caught:
        await erp.create_staff({"full_name": "A B"}, "idem-1")
    assert caught.value.code == "staff_exists"
    assert caught.value.body["staff_id"] == 4
    assert seen[0].url == "http://erp.test/api/bot/v1/staff"
    assert seen[0].headers["X-API-Key"] == "k-123"
    assert seen[0].headers["Idempotency-Key"] == "idem-1"
    assert seen[0].headers["X-Request-ID"] == "req-1"
    assert len(seen) == 1  # a 4xx is an answer, not a failure: no retry
    await erp.aclose()


async def test_retries_5xx_and_429_honouring_retry_after(monkeypatch):
    sleeps = []

    async def fake_sleep(delay):
        sleeps.append(delay)

    monkeypatch.setattr("bot.erp_client.asyncio.sleep", fake_sleep)
    answers = iter(
        [
            httpx.Response(503),
            httpx.Response(429, headers={"Retry-After": "2"}),
            httpx.Response(200, json={"items": []}),
        ]
    )
    erp = client(lambda request: next(answers))
    assert await erp.positions() == []
    assert sleeps[1] == 2.0
    assert erp.breaker.state == "closed"


async def test_post_without_idempotency_key_is_not_repeated_after_5xx():
    calls = []

    def handler(request):
        calls.append(request)
        return httpx.Response(500)

    erp = client(handler)
    with pytest.raises(ErpUnavailable):
        await erp.approve(3)
    assert len(calls) == 1


async def test_connection_errors_open_the_breaker_then_fail_fast():
    calls = []

    def handler(request):
        calls.append(request)
        raise httpx.ConnectError("refused")

    erp = client(handler, retries=1, breaker_threshold=2, breaker_reset_seconds=60)
    for _ in range(2):
        with pytest.raises(ErpUnavailable):
            await erp.positions()
    assert erp.breaker.state == "open"
    before = len(calls)
    with pytest.raises(ErpUnavailable, match="breaker"):
        await erp.positions()
    assert len(calls) == before


def test_breaker_half_open_then_closed_or_open_again():
    now = [0.0]
    breaker = CircuitBreaker(threshold=1, reset_seconds=10, clock=lambda: now[0])
    breaker.failure()
    assert not breaker.allow()
    now[0] = 11
    assert breaker.state == "half-open"
    assert breaker.allow()
    breaker.failure()
    assert breaker.state == "open"
    now[0] = 22
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed"
