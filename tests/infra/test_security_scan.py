"""The deployed proxy passes the project's own TLS audit, run as QA runs it (the CLI, exit code 0)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from plugins.infra import ROOT, Stack

pytestmark = pytest.mark.infra


def test_tls_audit_of_the_deployed_proxy_passes(stack: Stack) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "security.tls_check",
            f"{stack.base_url}/",
            "--ca",
            str(stack.ca_file),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout
    assert result.stdout.count("PASS") >= 10
