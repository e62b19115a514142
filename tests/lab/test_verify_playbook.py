"""`make drill` refuses an inventory marked production before any check runs (the checks themselves
run in the lab cycle, lab/cycle.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def make(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_make_drill_refuses_the_production_inventory() -> None:
    result = make("drill", "INVENTORY=inventory/production")
    assert result.returncode != 0
    assert "is marked production" in result.stdout, result.stdout[-2000:]
    assert "Run the deployment tests" not in result.stdout
