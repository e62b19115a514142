"""The load runner's pure parts: the SLO gate, the stress step judge, credentials, targets, the report."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from loadtests import report
from loadtests.resources import ResourceMonitor, Sample, saturation
from loadtests.run import check_target, parse_args, target_environment
from loadtests.settings import LoadSettingsError, Target, read_credentials
from loadtests.slo import judge, load_slo, read_stats

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]

COLUMNS = [
    "Type", "Name", "Request Count", "Failure Count", "Median Response Time", "Average Response Time",
    "Min Response Time", "Max Response Time", "Average Content Size", "Requests/s", "Failures/s",
    "50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%",
]  # fmt: skip


def write_stats(path: Path, rows: list[tuple[str, str, int, int, int, int, float]]) -> None:
    """rows: (type, name, count, failures, p95, p99, rps)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        for kind, name, count, failures, p95, p99, rps in rows:
            row = dict.fromkeys(COLUMNS, "0")
            row.update(
                {"Type": kind, "Name": name, "Request Count": str(count), "Failure Count": str(failures)}
            )
            row.update({"95%": str(p95), "99%": str(p99), "50%": str(p95 // 2), "Requests/s": str(rps)})
            writer.writerow(row)


def test_the_committed_slo_file_has_every_profile() -> None:
    profiles = load_slo()
    assert set(profiles) == {"smoke", "baseline", "stress", "soak"}
    for objectives in profiles.values():
        assert objectives["lines"]["status"]["p95_ms"] > 0
        assert "max_error_rate" in objectives


def test_judge_names_the_line_and_the_objective_it_broke(tmp_path: Path) -> None:
    stats = tmp_path / "stats.csv"
    write_stats(
        stats,
        [
            ("BOT", "status", 100, 0, 900, 2500, 1.0),
            ("BOT", "registration: confirm", 10, 1, 100, 200, 0.1),
            ("", "Aggregated", 110, 1, 800, 2400, 1.1),
        ],
    )
    objectives = {
        "lines": {"status": {"p95_ms": 1000, "p99_ms": 2000}, "never produced": {"p95_ms": 1}},
        "max_error_rate": 0.001,
        "min_throughput": 2,
    }
    verdicts = judge(read_stats(stats), objectives)
    broken = [v.message("smoke") for v in verdicts if not v.ok]
    assert broken == [
        "SLO breach: smoke: status: p99 2500 ms (objective <= 2000 ms)",
        "SLO breach: smoke: all lines: error_rate 0.909 % (objective <= 0.1 %)",
        "SLO breach: smoke: all lines: min_throughput 1.1 req/s (objective >= 2 req/s)",
    ]
    assert [v.objective for v in verdicts if v.ok] == ["p95"]  # a line the run did not produce is not judged


def test_a_percentile_is_judged_only_where_the_run_has_requests_enough_to_measure_it(tmp_path: Path) -> None:
    # The staging gate's smoke run had 11 `status` round trips, one of them 1,600 ms: locust's "p95" of 11
    # is the slowest one, which breached the 1,500 ms p95 though ten of eleven answered within 460 ms.
    stats = tmp_path / "stats.csv"
    write_stats(
        stats,
        [
            ("BOT", "status", 11, 0, 1600, 1600, 0.2),  # too few for a p95 (20) and a p99 (100)
            ("BOT", "registration: name", 40, 0, 1400, 3500, 0.5),  # a p95, not a p99
            ("BOT", "registration: confirm", 5, 0, 6000, 6000, 0.1),  # the slowest over the loosest limit
            ("", "Aggregated", 56, 0, 1500, 3500, 0.8),
        ],
    )
    rows = read_stats(stats)
    for name, slowest in (("status", 1600), ("registration: name", 3500), ("registration: confirm", 6000)):
        rows[name]["100%"] = str(slowest)
    objectives = {
        "lines": {
            "status": {"p95_ms": 1500, "p99_ms": 3000},
            "registration: name": {"p95_ms": 1500, "p99_ms": 3000},
            "registration: confirm": {"p95_ms": 3000, "p99_ms": 5000},
        }
    }
    verdicts = [(v.line, v.objective, v.measured, v.limit, v.ok) for v in judge(rows, objectives)]
    assert verdicts == [
        ("status", "max", 1600, 3000, True),
        ("registration: name", "p95", 1400, 1500, True),
        ("registration: name", "max", 3500, 3000, False),
        ("registration: confirm", "max", 6000, 5000, False),
    ]
    message = judge(rows, objectives)[0].message("smoke")
    assert message == (
        "ok: smoke: status: max 1600 ms (objective <= 3000 ms; 11 requests: too few for a p95/p99; "
        "the slowest is held to its loosest limit)"
    )


def test_a_malformed_slo_file_is_refused_with_its_name(tmp_path: Path) -> None:
    bad = tmp_path / "slo.yaml"
    bad.write_text("profiles:\n  smoke:\n    lines:\n      status: {p90_ms: 5}\n")
    with pytest.raises(LoadSettingsError, match="status: only p95_ms and p99_ms"):
        load_slo(bad)


def test_stress_steps_are_judged_on_their_own_requests() -> None:
    from loadtests.slo import judge_step

    before = {"status": (100, 0, {10: 100})}
    after = {"status": (200, 5, {10: 100, 3000: 100})}
    slo = {"lines": {"status": {"p95_ms": 1000}}, "max_error_rate": 0.01}
    verdict = judge_step(before, after, slo)
    assert verdict["lines"]["status"] == {"count": 100, "failures": 5, "p95": 3000, "p99": 3000}
    assert verdict["breaches"] == ["status: p95 3000 ms > 1000 ms", "error rate 5.00% > 1.00%"]
    assert judge_step({}, before, slo)["breaches"] == []


def test_credentials_file_must_be_private_and_well_formed(tmp_path: Path) -> None:
    path = tmp_path / "load.env"
    path.write_text("# comment\nLOAD_RC_ADMIN_USER=admin\nLOAD_RC_ADMIN_PASSWORD='s3cret'\n")
    path.chmod(0o600)
    assert read_credentials(str(path)) == {"LOAD_RC_ADMIN_USER": "admin", "LOAD_RC_ADMIN_PASSWORD": "s3cret"}
    path.chmod(0o640)
    with pytest.raises(LoadSettingsError, match="readable by others") as refused:
        read_credentials(str(path))
    assert "s3cret" not in str(refused.value)
    path.write_text("just a password\n")
    path.chmod(0o600)
    with pytest.raises(LoadSettingsError, match=":1: expected KEY=VALUE"):
        read_credentials(str(path))


def test_a_target_needs_its_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("LOAD_RC_ADMIN_USER", "LOAD_RC_ADMIN_PASSWORD", "LOAD_BOT_USERNAME", "LOAD_CREDENTIALS_FILE"):
        monkeypatch.delenv(key, raising=False)
    args = parse_args(["--target", "https://localhost:8443"])
    with pytest.raises(LoadSettingsError, match="TARGET needs LOAD_RC_ADMIN_USER"):
        target_environment(args)


def test_the_admins_room_is_a_channel_or_a_private_group(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("LOAD_RC_ADMIN_USER", "LOAD_RC_ADMIN_PASSWORD", "LOAD_BOT_USERNAME"):
        monkeypatch.setenv(key, "x")
    monkeypatch.delenv("LOAD_ADMINS_ROOM_TYPE", raising=False)
    assert Target.from_env("https://localhost").admins_room_type == "channel"
    monkeypatch.setenv("LOAD_ADMINS_ROOM_TYPE", "group")  # the roles deploy `admins` as a private group
    assert Target.from_env("https://localhost").admins_room_type == "group"
    monkeypatch.setenv("LOAD_ADMINS_ROOM_TYPE", "dm")
    with pytest.raises(LoadSettingsError, match="LOAD_ADMINS_ROOM_TYPE must be channel or group"):
        Target.from_env("https://localhost")


@pytest.mark.parametrize(
    ("url", "allowed", "error"),
    [
        ("https://localhost:8443", "", None),
        ("http://127.0.0.1:3000", "", None),
        ("https://chat.lab.internal", "chat.lab.internal", None),
        ("https://chat.example.com", "", "neither loopback nor listed in LOAD_ALLOWED_HOSTS"),
        ("http://chat.lab.internal", "chat.lab.internal", "must use https"),
        ("ftp://localhost", "", "must be an http"),
    ],
)
def test_targets_are_loopback_or_lab_hosts(
    monkeypatch: pytest.MonkeyPatch, url: str, allowed: str, error: str | None
) -> None:
    monkeypatch.setenv("LOAD_ALLOWED_HOSTS", allowed)
    monkeypatch.setattr("loadtests.run.is_loopback", lambda u: "localhost" in u or "127.0.0.1" in u)
    if error is None:
        check_target(url)
    else:
        with pytest.raises(LoadSettingsError, match=error):
            check_target(url)


def test_saturation_names_the_component_that_ran_out_of_cpu() -> None:
    assert saturation({"bot": 97.0, "ERP": 40.0, "machine": 70.0}, {"bot": 1, "ERP": 1}, 2)[0] == "bot"
    # two ERP workers may use two cores: 120 % of 200 % is not saturated
    name, why = saturation({"bot": 30.0, "ERP": 120.0, "machine": 80.0}, {"bot": 1, "ERP": 2}, 2)
    assert name == "none"
    assert "ERP 120 %" in why
    assert saturation({"generator": 90.0, "machine": 60.0}, {"generator": 1}, 2)[0] == "generator"
    # a machine busy with other work is named as such, not as one of the run's components
    name, why = saturation({"bot": 6.0, "ERP": 4.0, "machine": 100.0}, {"bot": 1, "ERP": 1}, 2)
    assert name == "other processes"
    assert "190 % of a core" in why


def test_report_writes_summary_charts_and_compares_with_the_previous_run(tmp_path: Path) -> None:
    from loadtests.slo import Verdict

    earlier, now = tmp_path / "20260101T000000Z", tmp_path / "20260102T000000Z"
    for folder, p95 in ((earlier, 100), (now, 150)):
        folder.mkdir()
        write_stats(
            folder / "locust_stats.csv",
            [("BOT", "status", 50, 0, p95, p95 * 2, 1.0), ("", "Aggregated", 50, 0, p95, p95 * 2, 1.0)],
        )
    (earlier / "info.json").write_text(json.dumps({"profile": "smoke"}))
    with (now / "locust_stats_history.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s", "50%", "95%", "99%"]
        )
        for second in range(5):
            writer.writerow([1000 + second, 3, "", "Aggregated", 2.0, 0.0, 10, 20 + second, 30])
    with (now / "locust_failures.csv").open("w", newline="") as handle:
        handle.write("Method,Name,Error,Occurrences\nBOT,status,JourneyError('no answer'),2\n")
    monitor = ResourceMonitor({})
    monitor.samples = [Sample(1000.0 + i, {"bot": 50.0, "generator": 10.0}, 40.0) for i in range(3)]
    info = {
        "profile": "smoke",
        "started": "2026-01-02T00:00:00+00:00",
        "target": "local stack",
        "run_id": "x",
        "cores": 2,
        "locust_processes": 1,
        "generator": {"average": 10.0, "peak_process": 10.0},
        "accounts_removed": 3,
        "accounts_left": 0,
        "activation": True,
    }
    verdicts = [Verdict("status", "p95", 150, 100, "ms", False)]
    path = report.write(now, info, read_stats(now / "locust_stats.csv"), verdicts, monitor, [], [])
    summary = path.read_text()
    assert summary.startswith("# Load run: smoke — FAIL")
    assert "| status | p95 | 150 ms | 100 ms | **BREACH** |" in summary
    assert "## Compared with the previous smoke run (20260101T000000Z)" in summary
    assert "| status | 100 → 150 | 200 → 300 |" in summary
    assert "| status | JourneyError('no answer') | 2 |" in summary
    for chart in ("latency.png", "throughput.png", "errors.png", "cpu.png"):
        assert (now / chart).read_bytes()[:4] == b"\x89PNG"
        assert f"![{chart}]({chart})" in summary


SHAPE_PROBE = r"""
import json, os, sys
from loadtests.shapes import SHAPES

class Clock:
    now = 0.0

class FakeStats:
    def __init__(self):
        self.entries = {}

class FakeRunner:
    user_count = 0
    stats = FakeStats()

out = {}
for name, cls in SHAPES.items():
    shape = cls()
    shape.runner = FakeRunner()
    shape.get_run_time = lambda: Clock.now
    ticks = []
    for second in range(0, 4000, 5):
        Clock.now = float(second)
        tick = shape.tick()
        ticks.append(None if tick is None else [tick[0], tick[1]])
        if tick is None:
            break
    out[name] = {"first": ticks[0], "last_users": ticks[-2][0], "stops_at": second}
print(json.dumps(out))
"""


def test_every_profile_is_a_shape_that_ends(tmp_path: Path) -> None:
    """Each LoadTestShape ticks as config.yaml says (run in a subprocess: locust patches the process)."""
    import subprocess
    import sys

    env = {**os.environ, "LOAD_STEPS_FILE": str(tmp_path / "steps.json"), "PYTHONPATH": str(ROOT)}
    for key in ("LOAD_DURATION", "LOAD_USERS", "LOAD_MAX_USERS", "LOAD_STEP_SECONDS", "LOAD_PROFILE"):
        env.pop(key, None)
    result = subprocess.run(
        [sys.executable, "-c", SHAPE_PROBE], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    shapes = json.loads(result.stdout.strip().splitlines()[-1])
    assert shapes["smoke"] == {"first": [6, 2.0], "last_users": 6, "stops_at": 60}
    assert shapes["baseline"]["stops_at"] == 600
    assert shapes["soak"]["stops_at"] == 3600
    # Stress: no request ever breaks an SLO here, so it climbs 10, 20, ... to 300 and stops there.
    assert shapes["stress"]["first"] == [10, 5.0]
    assert shapes["stress"]["last_users"] == 300
    steps = json.loads((tmp_path / "steps.json").read_text())
    assert [s["users"] for s in steps][:3] == [10, 20, 30]
    assert all(s["ok"] for s in steps)


def test_the_runner_lists_its_options() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "loadtests", "run", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for option in ("--profile", "--target", "--processes", "--master", "--duration", "--slo-file"):
        assert option in result.stdout


def test_capacity_projects_the_first_component_to_run_out_of_cpu() -> None:
    from loadtests.capacity import project

    averages = {"bot": 6.0, "ERP": 10.0, "simulator": 3.0, "generator": 50.0, "machine": 100.0}
    # bot: 100 % / (6 % / 60 users) = 1000; ERP with two workers: 200 % / (10 % / 60) = 1200
    assert project(averages, {"bot": 1, "ERP": 2, "simulator": 1}, 2, 60) == (
        "~1000 users (bot: 6 % of a core at 60 users)"
    )
    assert project({"machine": 100.0}, {}, 2, 60) == "—"


def test_every_simulated_person_gets_an_address_of_its_own_on_loopback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from loadtests import client

    monkeypatch.delenv("LOAD_SOURCE_ADDRESSES", raising=False)
    monkeypatch.setenv("LOAD_WORKER_INDEX", "2")
    addresses = [client.next_source_ip("http://127.0.0.1:3000") for _ in range(1000)]
    assert len(set(addresses)) == 1000
    assert all(a.startswith("127.102.") for a in addresses)
    monkeypatch.setenv("LOAD_SOURCE_ADDRESSES", "off")
    assert client.next_source_ip("http://127.0.0.1:3000") is None


def test_a_busy_generator_and_left_accounts_are_warned_about() -> None:
    from loadtests.run import generator_cpu, run_warnings

    monitor = ResourceMonitor({})
    monitor.per_process = {1: ("generator", 850.0, 10), 2: ("generator", 300.0, 10), 3: ("bot", 990.0, 10)}
    monitor.samples = [Sample(0.0, {"generator": 115.0, "bot": 99.0}, 100.0)]
    generator = generator_cpu(monitor)
    assert generator == {"average": 115.0, "peak_process": 85.0}
    warnings = run_warnings(generator, 2, "lt-x-")
    assert warnings[0].startswith("warning: the load generator reached 85 % of a core (> 80 %)")
    assert warnings[1] == "warning: 2 test account(s) with prefix lt-x- could not be removed"
    assert run_warnings({"average": 10.0, "peak_process": 79.0}, 0, "lt-x-") == []
    assert "sweep failed" in run_warnings({"average": 10.0, "peak_process": 1.0}, -1, "lt-x-")[0]


def test_a_connection_idle_past_the_servers_keep_alive_is_not_reused(monkeypatch) -> None:
    """A request never goes out on a connection the server may be closing: past KEEPALIVE_EXPIRY idle, a
    new one (a real HTTP/1.1 server on loopback counts the connections it accepted)."""
    import http.server
    import threading
    import time

    import requests

    from loadtests import client

    accepted: list[int] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            accepted.append(1)
            super().setup()

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(client, "KEEPALIVE_EXPIRY", 0.5)
    session = requests.Session()
    session.mount("http://", client.KeepAliveAdapter())
    url = f"http://127.0.0.1:{server.server_address[1]}/api/v1/chat.sendMessage"
    try:
        session.post(url, json={}, timeout=10)
        session.post(url, json={}, timeout=10)
        assert len(accepted) == 1, "a connection in use is kept alive"
        time.sleep(0.8)
        session.post(url, json={}, timeout=10)
        assert len(accepted) == 2, "an idle one is dropped, not reused"
    finally:
        session.close()
        server.shutdown()
        server.server_close()
