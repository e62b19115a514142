"""The portable contract suite (`python -m erp.contract`) passes against the reference implementation."""

from __future__ import annotations

import subprocess
import sys

import pytest
from plugins.processes import ROOT

pytestmark = pytest.mark.integration


def run_contract(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "erp.contract", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )


def test_contract_suite_passes_against_the_reference(erp_server):
    result = run_contract(
        "--url", erp_server.base_url, "--key", erp_server.bot_key, "--admin-key", erp_server.admin_key
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout
    assert "skipped" not in result.stdout  # every check ran: positions cover every kind
    assert result.stdout.count("PASS") >= 13


def test_contract_suite_read_only_creates_nothing(erp_server):
    with erp_server.client(erp_server.admin_key) as admin:
        before = admin.get("/api/bot/v1/audit", params={"limit": 1}).json()["items"]
    result = run_contract("--url", erp_server.base_url, "--key", erp_server.bot_key, "--read-only")
    with erp_server.client(erp_server.admin_key) as admin:
        events = admin.get("/api/bot/v1/audit", params={"limit": 200}).json()["items"]
    assert result.returncode == 0, result.stdout
    newer = [e for e in events if not before or e["id"] > before[0]["id"]]
    assert not [e for e in newer if e["action"] == "staff.create" and e["outcome"] == "ok"]


def test_contract_suite_fails_when_the_implementation_is_wrong(erp_server):
    # A key without the bot scope makes the implementation look broken: the suite must say so.
    admin_only = erp_server.create_key("contract-admin-only", scopes=("admin",))
    result = run_contract("--url", erp_server.base_url, "--key", admin_only)
    assert result.returncode == 1
    assert "FAIL" in result.stdout
