"""Unit tests of the round-two security pieces: bounded trackers, /64 source keys."""

from __future__ import annotations

import ipaddress

import pytest

from erp.security.network import source_key
from erp.security.ratelimit import FailureWindow

pytestmark = pytest.mark.unit


def test_failure_window_stays_bounded() -> None:
    """Finding 6: the failed-auth tracker grew by ~1.2 KB per new source address, without end. (The
    per-login backoff is in the database, bounded by pruning: tests/erp/test_activation_backoff.py.)"""
    window = FailureWindow(limit=5, window_seconds=300, max_entries=100)
    for n in range(1000):
        window.add(f"10.0.{n // 256}.{n % 256}")
    assert len(window) <= 100
    for _ in range(50):
        window.add("10.9.9.9")
    assert window.retry_after("10.9.9.9") > 0  # the limit still works at the bound


def test_ipv6_sources_count_per_64() -> None:
    """Finding 6: per-IP limits keyed on the full IPv6 address, so a /64 rotated freely."""
    one = source_key(ipaddress.ip_address("2001:db8:1:2::1"))
    assert one == source_key("2001:db8:1:2:ffff:ffff:ffff:ffff") == "2001:db8:1:2::/64"
    assert source_key("2001:db8:1:3::1") != one
    assert source_key("192.0.2.7") == "192.0.2.7"
    assert source_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert source_key(None) == source_key("garbage") == "unknown"


def test_the_access_log_never_carries_a_query_string() -> None:
    """Finding 6: `serve --access-log` logged emails from query strings."""
    import logging

    from erp.logs import DropQueryString, JsonFormatter

    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/api/bot/v1/staff?email=ivan@example.com", "1.1", 200), None,
    )  # fmt: skip
    DropQueryString().filter(record)
    line = JsonFormatter().format(record)
    assert "ivan@example.com" not in line
    assert "/api/bot/v1/staff" in line


def test_json_log_lines_cannot_be_forged() -> None:
    import json
    import logging

    from erp.logs import JsonFormatter

    record = logging.LogRecord("erp.audit", logging.INFO, __file__, 1, "audit %s", ("x\r\nFAKE line",), None)
    record.fields = {"target": "a\nb", "time": "overridden?"}
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["target"] == "a\nb"
    assert parsed["time"] != "overridden?"
