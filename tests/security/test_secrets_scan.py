"""detect-secrets gates CI: the repository matches its reviewed baseline, and a planted secret fails."""

from __future__ import annotations

import subprocess
import sys

import pytest
from plugins.processes import ROOT

from security import secrets_scan

pytestmark = pytest.mark.integration


def test_the_repository_has_no_secret_outside_the_baseline() -> None:
    new = secrets_scan.new_findings(ROOT)
    assert new == [], "new secrets (review, then `python -m security.secrets_scan --update`): " + ", ".join(
        new
    )


def test_a_secret_planted_in_a_copy_fails_the_check(tmp_path) -> None:
    copy = tmp_path / "repo"
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(copy)], check=True, timeout=300
    )
    planted = copy / "erp" / "planted_settings.py"
    secret = "AKIA" + "Q3EGUYZ7X2RT4V6N"  # an AWS access key id shape; built so this file does not match
    planted.write_text(f'AWS_ACCESS_KEY_ID = "{secret}"\n', encoding="utf-8")
    subprocess.run(["git", "add", "erp/planted_settings.py"], cwd=copy, check=True, timeout=60)
    result = subprocess.run(
        [sys.executable, "-m", "security.secrets_scan", "--root", str(copy)],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL  new secret: erp/planted_settings.py:1: AWS Access Key" in result.stdout
    assert secret not in result.stdout + result.stderr  # the report names the place, never the value
