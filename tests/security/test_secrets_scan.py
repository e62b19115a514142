"""detect-secrets gates CI: the repository matches its reviewed baseline, and a planted secret fails."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from plugins.processes import ROOT

pytestmark = pytest.mark.integration

PLANTED = "erp/planted_settings.py"
SECRET = "AKIA" + "Q3EGUYZ7X2RT4V6N"  # an AWS access key id shape; built so this file does not match


@pytest.fixture(scope="module")
def planted_check(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    """`python -m security.secrets_scan` once, on a copy of the repository as its scan sees it (every file
    git tracks, as it is in the working tree, in the copy's index) with a secret planted in a new file:
    one scan of every file for both tests (each was a scan of the whole repository)."""
    copy = tmp_path_factory.mktemp("secrets") / "repo"
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
    ).stdout
    subprocess.run(["git", "init", "--quiet", str(copy)], check=True, timeout=60)
    for name in filter(None, os.fsdecode(listed).split("\0")):
        source, target = ROOT / name, copy / name
        if source.is_symlink() or source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target, follow_symlinks=False)
    (copy / PLANTED).write_text(f'AWS_ACCESS_KEY_ID = "{SECRET}"\n', encoding="utf-8")
    subprocess.run(
        ["git", "add", "--force", "--pathspec-from-file=-", "--pathspec-file-nul"],
        cwd=copy, input=listed + os.fsencode(PLANTED) + b"\0", check=True, timeout=120,
    )  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "security.secrets_scan", "--root", str(copy)],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip


def test_the_repository_has_no_secret_outside_the_baseline(
    planted_check: subprocess.CompletedProcess[str],
) -> None:
    assert "secrets scan: " in planted_check.stdout, planted_check.stdout + planted_check.stderr[-2000:]
    new = [
        line.removeprefix("FAIL  new secret: ")
        for line in planted_check.stdout.splitlines()
        if line.startswith("FAIL  new secret: ") and not line.startswith(f"FAIL  new secret: {PLANTED}:")
    ]
    assert new == [], "new secrets (review, then `python -m security.secrets_scan --update`): " + ", ".join(
        new
    )


def test_a_secret_planted_in_a_copy_fails_the_check(planted_check: subprocess.CompletedProcess[str]) -> None:
    result = planted_check
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"FAIL  new secret: {PLANTED}:1: AWS Access Key" in result.stdout
    assert SECRET not in result.stdout + result.stderr  # the report names the place, never the value
