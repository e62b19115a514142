"""The ERP API scenario runs headless, briefly, against the real ERP: no request may fail.

It proves the scenario works and that the ERP stays correct under concurrent load (the idempotent-retry
check runs inside it). The chat journeys run through `make load` (test_load_run.py); throughput figures
come from the benchmark scripts and from `make load`, not from here.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def run_locust(locustfile: str, host: str, env: dict[str, str], tmp_path: Path, users: int, seconds: int):
    prefix = tmp_path / "stats"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(ROOT / "loadtests" / locustfile),
            "--headless",
            "--users",
            str(users),
            "--spawn-rate",
            str(users),
            "--run-time",
            f"{seconds}s",
            "--host",
            host,
            "--csv",
            str(prefix),
            "--only-summary",
            "--loglevel",
            "WARNING",
        ],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=seconds + 90,
        check=False,
    )
    with open(f"{prefix}_stats.csv", newline="", encoding="utf-8") as stats:
        rows = {row["Name"]: row for row in csv.DictReader(stats)}
    return result, rows


def test_erp_scenario_has_no_failures(erp_api, tmp_path: Path) -> None:
    result, rows = run_locust(
        "erp_locustfile.py", erp_api.base_url, {"ERP_API_KEY": erp_api.bot_key}, tmp_path, users=8, seconds=8
    )
    total = rows["Aggregated"]
    assert int(total["Failure Count"]) == 0, result.stderr[-3000:]
    assert int(rows["/api/bot/v1/staff"]["Request Count"]) > 10
    assert int(rows["/api/bot/v1/staff (retry)"]["Request Count"]) > 10
    assert result.returncode == 0, result.stderr[-3000:]
