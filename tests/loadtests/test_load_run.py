"""`make load` and `make capacity` as QA runs them, against real processes on loopback.

- the smoke profile against the local stack `make load` starts (what CI runs): every journey gets its
  answers on the stream, the SLO gate passes, the report folder has everything;
- a TARGET over TLS (a stack this test starts, behind a TLS endpoint with a private CA), credentials
  from a 0600 file, a master and a worker started as its own command (as on another host), a short
  soak (memory from the ERP's /metrics) and an impossible SLO file: the run exits 1 and names the line
  and the objective; the run's test accounts are gone afterwards;
- `make capacity` with a tiny ramp and two local worker processes: the figure, the saturated
  component, the CPU count.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest
from plugins.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def make(*args: str, env: dict[str, str] | None = None, timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def only_folder(parent: Path) -> Path:
    folders = [p for p in parent.iterdir() if p.is_dir()]
    assert len(folders) == 1, folders
    return folders[0]


def stats(folder: Path) -> dict[str, dict[str, str]]:
    with (folder / "locust_stats.csv").open(newline="", encoding="utf-8") as handle:
        return {row["Name"]: row for row in csv.DictReader(handle)}


def failures(folder: Path) -> str:
    """The run's failures (locust_failures.csv) for an assertion message."""
    path = folder / "locust_failures.csv"
    return path.read_text(encoding="utf-8") if path.exists() else "(no locust_failures.csv)"


def test_smoke_profile_against_the_local_stack(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    result = make("load", "PROFILE=smoke", f"LOAD_ARGS=--reports {reports}")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    folder = only_folder(reports)
    for name in ("report.html", "locust_stats.csv", "locust_stats_history.csv", "summary.md"):
        assert (folder / name).stat().st_size > 0, name
    for chart in ("latency.png", "throughput.png", "errors.png", "cpu.png"):
        assert (folder / chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", chart
    rows = stats(folder)
    # Every realtime journey produced answers, and nothing failed.
    for line in ("registration: register", "registration: confirm", "status", "DDP connect+login+subscribe"):
        assert int(rows[line]["Request Count"]) > 0, line
    assert int(rows["Aggregated"]["Failure Count"]) == 0, failures(folder) + output[-3000:]
    summary = (folder / "summary.md").read_text()
    assert summary.startswith("# Load run: smoke — PASS")
    # p95 where the run had 20 status round trips, else the slowest one held to the p99 limit (slo.judge)
    assert re.search(r"\| status \| (p95|max \(\d+ requests: too few for a p95/p99;)", summary), summary
    assert "generator CPU" in output
    assert re.search(r"ok: smoke: registration: confirm: (p95|max) ", output), output[-3000:]
    info = json.loads((folder / "info.json").read_text())
    assert info["accounts_left"] == 0


def test_make_load_soak_on_a_target_over_tls_master_and_worker_with_a_breached_slo(
    tls_target, tmp_path: Path
) -> None:
    stack = tls_target.stack
    credentials = tmp_path / "load.env"
    credentials.write_text(
        "# the deployment's admin and bot\n"
        f"LOAD_RC_ADMIN_USER={stack.admin_user}\n"
        f"LOAD_RC_ADMIN_PASSWORD={stack.admin_password}\n"
        f"LOAD_BOT_USERNAME={stack.bot_username}\n"
        f"LOAD_ADMINS_CHANNEL={stack.admins_channel}\n"
        f"LOAD_ERP_URL={stack.erp_url}\n"
        f"LOAD_ERP_METRICS_URL={stack.erp_metrics_url}\n"
    )
    credentials.chmod(0o600)
    impossible = tmp_path / "slo.yaml"
    impossible.write_text(
        "profiles:\n  soak:\n    max_error_rate: 0.5\n    max_memory_growth_mb: -1000\n    lines:\n"
        '      "status": {p95_ms: 0.001}\n'
        '      "registration: register": {p99_ms: 0.001}\n'
    )
    reports = tmp_path / "reports"
    env = {"LOAD_CREDENTIALS_FILE": str(credentials), "LOAD_CA_FILE": str(tls_target.ca_file)}
    port = free_port()
    # A worker as on another generator host: its own command, its own copy of the credentials.
    worker = subprocess.Popen(
        [
            ".venv/bin/python",
            "-m",
            "loadtests",
            "worker",
            "--master-host",
            "127.0.0.1",
            "--master-port",
            str(port),
        ],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        result = make(
            "load",
            f"TARGET={tls_target.url}",
            "PROFILE=soak",
            f"LOAD_ARGS=--duration 25 --master --expect-workers 1 --master-bind 127.0.0.1:{port} "
            f"--slo-file {impossible} --reports {reports}",
            env=env,
        )
        worker_exit = worker.wait(60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
    assert worker_exit == 0, worker.stdout.read().decode()[-3000:] if worker.stdout else ""
    output = result.stdout + result.stderr
    # make answers 2 for any failed recipe; the runner's own exit code is in make's message.
    assert result.returncode == 2, output[-4000:]
    assert "] Error 1" in result.stderr, output[-4000:]
    # Each impossible objective breaks as a percentile, or (a short run) as the slowest request held to it.
    assert re.search(r"SLO breach: soak: status: (p95|max) ", output), output[-4000:]
    assert re.search(r"SLO breach: soak: registration: register: (p99|max) ", output), output[-4000:]
    # the soak profile watched the ERP's memory through its /metrics
    assert "SLO breach: soak: ERP memory: memory_growth" in output
    assert stack.admin_password not in output
    folder = only_folder(reports)
    rows = stats(folder)
    # The path worked end to end over TLS: answers arrived, nothing failed.
    assert int(rows["registration: register"]["Request Count"]) > 0
    assert int(rows["status"]["Request Count"]) > 0
    assert int(rows["Aggregated"]["Failure Count"]) == 0, failures(folder) + output[-3000:]
    assert tls_target.terminator.connections > 0
    info = json.loads((folder / "info.json").read_text())
    assert info["mode"] == "target"
    assert info["locust_processes"] == 1  # the master; the worker ran as its own command
    assert "**BREACH**" in (folder / "summary.md").read_text()
    # No account of the run is left in Rocket.Chat.
    with httpx.Client(base_url=stack.rocketchat_url, timeout=10) as http:
        data = http.post(
            "/api/v1/login", json={"user": stack.admin_user, "password": stack.admin_password}
        ).json()["data"]
        users = http.get(
            "/api/v1/users.list",
            params={"count": 1000},
            headers={"X-User-Id": data["userId"], "X-Auth-Token": data["authToken"]},
        ).json()["users"]
    assert not [u["username"] for u in users if u["username"].startswith(f"lt-{info['run_id']}-")]


def test_make_load_refuses_credentials_others_can_read(tmp_path: Path) -> None:
    credentials = tmp_path / "load.env"
    credentials.write_text("LOAD_RC_ADMIN_USER=admin\nLOAD_RC_ADMIN_PASSWORD=not-shown-anywhere\n")
    credentials.chmod(0o644)
    result = make(
        "load",
        "TARGET=https://127.0.0.1:9",
        f"LOAD_ARGS=--reports {tmp_path}",
        env={"LOAD_CREDENTIALS_FILE": str(credentials)},
        timeout=60,
    )
    assert result.returncode == 2
    assert "] Error 2" in result.stderr, result.stderr
    assert "readable by others: chmod 600 it" in result.stderr
    assert "not-shown-anywhere" not in result.stdout + result.stderr


def test_make_capacity_reports_the_figure_and_the_saturated_component(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    result = make(
        "capacity",
        "CAPACITY_ARGS=--erp-workers 2 --start-users 2 --step-users 2 --step-seconds 15 --max-users 2 "
        "--processes 2 "
        f"--reports {reports}",
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    cores = os.cpu_count()
    assert f"capacity ({cores} cores, 2 ERP worker(s)):" in output
    assert "first saturated:" in output
    report = next(reports.glob("capacity-*.md")).read_text()
    assert "| ERP workers | Concurrent chat users within SLOs |" in report
    steps = json.loads(next(reports.glob("*/steps.json")).read_text())
    assert steps[0]["users"] == 2
    assert steps[0]["requests"] > 0
