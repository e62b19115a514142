"""The deployed proxy passes sslyze's Mozilla "intermediate" check, through the report `make security`
writes for an inventory (security/report.py: TLS audit, sslyze, the API's public checks)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from plugins.infra import ROOT, Stack

pytestmark = pytest.mark.infra


def test_security_report_of_the_local_deployment(stack: Stack, tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "security.report", "--inventory", str(ROOT / "inventory" / "local"),
         "--ca", str(stack.ca_file), "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    mozilla = report["sections"]["mozilla_intermediate"]
    assert all(f["ok"] for f in mozilla), result.stdout
    assert all(f["ok"] for f in report["sections"]["tls"]), result.stdout
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "report.md").read_text(encoding="utf-8").startswith("# Security report: local")
