"""`make drill` refuses an inventory marked production before any check runs (the checks themselves
run in the lab cycle, lab/cycle.py); `DRILL_SKIP` leaves out the drills it names and refuses a name
that is no drill."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def make(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
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


def test_drill_skip_leaves_out_the_drills_it_names(tmp_path: Path) -> None:
    # pytest only collects (PYTEST_ADDOPTS reaches the playbook's pytest): its per-file counts are in the
    # whole report, which the playbook keeps on the controller and names after the last lines it shows.
    collect = {"PYTEST_ADDOPTS": "--collect-only -q", "PHOTOMATRIX_REPORT_DIR": str(tmp_path)}
    everything = make("drill", "INVENTORY=inventory/lab", env=collect)
    assert everything.returncode == 0, everything.stdout[-2000:]
    report = tmp_path / "drill-lab.log"
    assert f"whole report: {report}" in everything.stdout, everything.stdout[-2000:]
    everything.stdout = report.read_text()
    skipped = make("drill", "DRILL_SKIP=upgrade, rocketchat", "INVENTORY=inventory/lab", env=collect)
    assert skipped.returncode == 0, skipped.stdout[-2000:]
    skipped.stdout = report.read_text()
    for drill in (
        "test_drill_upgrade.py",
        "test_drill_rocketchat.py",
        "test_drill_alerts.py",
        "test_drill_silent.py",
        "test_drill_hosts.py",
    ):
        assert f"tests/infra/{drill}: " in everything.stdout, everything.stdout[-2000:]
    assert "tests/infra/test_drill_alerts.py: " in skipped.stdout
    assert "tests/infra/test_drill_silent.py: " in skipped.stdout
    assert "test_drill_upgrade.py" not in skipped.stdout
    assert "test_drill_rocketchat.py" not in skipped.stdout


def test_drill_skip_refuses_a_name_that_is_no_drill() -> None:
    result = make("drill", "DRILL_SKIP=upgrade,upgrades", "INVENTORY=inventory/lab")
    said = " ".join(result.stdout.split())
    assert result.returncode != 0
    assert "DRILL_SKIP names upgrades, but there is no" in said, result.stdout[-2000:]
    assert "the drills: alerts, hosts, proxy, rocketchat, silent, upgrade" in said
    assert "Run the deployment tests" not in result.stdout


def test_make_drill_fails_when_every_drill_skips(tmp_path: Path) -> None:
    # inventory/staging is neither this machine's stack nor a lab: no drill applies, and a run of nothing
    # but skips must not read as a pass.
    result = make("drill", "INVENTORY=inventory/staging", env={"PHOTOMATRIX_REPORT_DIR": str(tmp_path)})
    said = " ".join(result.stdout.split())
    assert result.returncode != 0, result.stdout[-2000:]
    assert "No drill ran for" in said, result.stdout[-2000:]
    report = (tmp_path / "drill-staging.log").read_text()
    assert " skipped" in report
    assert " passed" not in report
    assert "the multi-host drills run for a lab inventory only" in report  # a drill run names each skip (-rs)
