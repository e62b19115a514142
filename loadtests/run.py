"""`python -m loadtests run`: one load run from start to verdict.

Starts the local stack (or uses --target), starts locust (one process, --processes N local workers,
or --master for workers on other hosts), samples CPU of every component, removes the run's test
accounts afterwards (also after a failure), writes reports/load/<timestamp>/ and exits 1 when an SLO
is broken, naming the line and the objective.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import requests

from loadtests import report
from loadtests.resources import GENERATOR, ResourceMonitor
from loadtests.settings import (
    PROFILES,
    ROOT_ENV_KEYS,
    LoadSettingsError,
    config,
    is_loopback,
    profile_settings,
    read_credentials,
)
from loadtests.slo import judge, load_slo, memory_verdicts, read_stats

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"
GENERATOR_WARN = 80.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadtests run", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=PROFILES, default="smoke")
    parser.add_argument(
        "--target",
        default=os.environ.get("TARGET", ""),
        help="Rocket.Chat URL of a deployed stack (loopback or a host in LOAD_ALLOWED_HOSTS); "
        "without it the local stack is started",
    )
    parser.add_argument("--credentials-file", default=os.environ.get("LOAD_CREDENTIALS_FILE", ""))
    parser.add_argument("--processes", type=int, default=1, help="locust worker processes on this host")
    parser.add_argument("--master", action="store_true", help="be the master for workers on other hosts")
    parser.add_argument("--expect-workers", type=int, default=1, help="with --master: workers to wait for")
    parser.add_argument(
        "--master-bind", default="127.0.0.1:5557", help="with --master: HOST:PORT to listen on"
    )
    parser.add_argument("--duration", type=int, help="seconds (smoke, baseline, soak)")
    parser.add_argument("--users", type=int, help="concurrent simulated people (smoke, baseline, soak)")
    parser.add_argument("--start-users", type=int, help="stress: people in the first step")
    parser.add_argument("--step-users", type=int, help="stress: people added per step")
    parser.add_argument("--step-seconds", type=int, help="stress: length of a step")
    parser.add_argument("--max-users", type=int, help="stress: where the ramp ends anyway")
    parser.add_argument("--erp-workers", type=int, default=1, help="local stack: ERP worker processes")
    parser.add_argument(
        "--reports", default=str(ROOT / "reports" / "load"), help="parent of the report folder"
    )
    parser.add_argument("--slo-file", default=os.environ.get("LOAD_SLO_FILE", ""))
    return parser.parse_args(argv)


def check_target(url: str) -> None:
    """Only loopback or the lab hosts named in LOAD_ALLOWED_HOSTS; https unless loopback."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LoadSettingsError(f"TARGET must be an http(s) URL, got {url!r}")
    allowed = {h.strip() for h in os.environ.get("LOAD_ALLOWED_HOSTS", "").split(",") if h.strip()}
    if not is_loopback(url) and parts.hostname not in allowed:
        raise LoadSettingsError(
            f"TARGET host {parts.hostname} is neither loopback nor listed in LOAD_ALLOWED_HOSTS (lab hosts)"
        )
    if parts.scheme != "https" and not is_loopback(url):
        raise LoadSettingsError("a TARGET that is not on loopback must use https")


def target_environment(args: argparse.Namespace) -> dict[str, str]:
    """LOAD_* settings for a deployed target: the credentials file first, the environment wins."""
    values = read_credentials(args.credentials_file)
    for key in ROOT_ENV_KEYS:
        if os.environ.get(key):
            values[key] = os.environ[key]
    missing = [
        k for k in ("LOAD_RC_ADMIN_USER", "LOAD_RC_ADMIN_PASSWORD", "LOAD_BOT_USERNAME") if not values.get(k)
    ]
    if missing:
        raise LoadSettingsError(
            "TARGET needs "
            + ", ".join(missing)
            + " (environment or --credentials-file / LOAD_CREDENTIALS_FILE)"
        )
    return values


def overrides(args: argparse.Namespace) -> dict[str, str]:
    names = {
        "duration": "LOAD_DURATION",
        "users": "LOAD_USERS",
        "start_users": "LOAD_START_USERS",
        "step_users": "LOAD_STEP_USERS",
        "step_seconds": "LOAD_STEP_SECONDS",
        "max_users": "LOAD_MAX_USERS",
    }
    return {env: str(getattr(args, attr)) for attr, env in names.items() if getattr(args, attr) is not None}


def expected_seconds(profile: str) -> float:
    settings = profile_settings(profile)
    if profile == "stress":
        steps = (settings["max_users"] - settings["start_users"]) // max(settings["step_users"], 1) + 1
        return steps * settings["step_seconds"]
    return float(settings["duration"])


def locust_commands(args: argparse.Namespace, host: str, out: Path) -> list[tuple[list[str], dict[str, str]]]:
    """(argv, extra env) of every locust process this host runs: master/local first, then workers."""
    base = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", host]
    reports = [
        "--headless",
        "--html",
        str(out / "report.html"),
        "--csv",
        str(out / "locust"),
        "--csv-full-history",
        "--only-summary",
        "--stop-timeout",
        "10",
        "--loglevel",
        "WARNING",
    ]
    if args.master:
        bind_host, _, bind_port = args.master_bind.rpartition(":")
        master = [
            *base,
            *reports,
            "--master",
            "--master-bind-host",
            bind_host,
            "--master-bind-port",
            bind_port,
            "--expect-workers",
            str(args.expect_workers),
        ]
        return [(master, {})]
    if args.processes <= 1:
        return [([*base, *reports], {})]
    port = free_port()
    master = [
        *base,
        *reports,
        "--master",
        "--master-bind-host",
        "127.0.0.1",
        "--master-bind-port",
        str(port),
        "--expect-workers",
        str(args.processes),
    ]
    workers = [
        (
            [
                *base,
                "--worker",
                "--master-host",
                "127.0.0.1",
                "--master-port",
                str(port),
                "--loglevel",
                "WARNING",
            ],
            {"LOAD_WORKER_INDEX": str(index)},
        )
        for index in range(args.processes)
    ]
    return [(master, {}), *workers]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sweep_accounts(rc_url: str, env: dict[str, str], prefix: str) -> tuple[int, int]:
    """Delete every account whose username starts with the run's prefix: (removed, left)."""
    session = requests.Session()
    session.trust_env = False  # LOAD_CA_FILE, not REQUESTS_CA_BUNDLE; no proxy from the environment
    session.verify = env.get("LOAD_CA_FILE") or True
    try:
        login = session.post(
            f"{rc_url}/api/v1/login",
            json={"user": env["LOAD_RC_ADMIN_USER"], "password": env["LOAD_RC_ADMIN_PASSWORD"]},
            timeout=15,
        )
        data = login.json()["data"]
        session.headers.update({"X-User-Id": data["userId"], "X-Auth-Token": data["authToken"]})
        found: list[str] = []
        offset = 0
        for _page in range(1000):
            page = session.get(
                f"{rc_url}/api/v1/users.list", params={"count": 100, "offset": offset}, timeout=15
            ).json()
            users = page.get("users", [])
            found += [u["_id"] for u in users if str(u.get("username", "")).startswith(prefix)]
            offset += len(users)
            if not users or offset >= int(page.get("total", 0)):
                break
        left = 0
        for user_id in found:
            response = session.post(
                f"{rc_url}/api/v1/users.delete",
                json={"userId": user_id, "confirmRelinquish": True},
                timeout=15,
            )
            left += response.status_code != 200
        return len(found) - left, left
    except (requests.RequestException, KeyError, ValueError) as exc:
        print(f"warning: the account sweep failed ({type(exc).__name__}); prefix {prefix}", file=sys.stderr)
        return 0, -1
    finally:
        session.close()


def run(args: argparse.Namespace) -> int:
    started = datetime.now(UTC)
    run_id = started.strftime("%H%M%S") + secrets.token_hex(2)
    out = Path(args.reports) / started.strftime("%Y%m%dT%H%M%SZ")
    while out.exists():  # two runs in one second (capacity's back-to-back runs)
        out = out.with_name(out.name + "b")
    out.mkdir(parents=True)
    args.result_dir, args.monitor, args.steps = out, None, []
    slo_path = args.slo_file or None
    objectives = load_slo(slo_path).get(args.profile)
    if objectives is None:
        raise LoadSettingsError(f"the SLO file has no profile {args.profile!r}")
    stack = None
    if args.target:
        check_target(args.target)
        env = target_environment(args)
        host = args.target.rstrip("/")
        mode = "target"
    else:
        from loadtests.stack import environment_for, start_local_stack

        print("starting the local stack (simulator, ERP, bot) ...", flush=True)
        began = time.monotonic()
        stack = start_local_stack(erp_workers=args.erp_workers)
        print(f"local stack up in {time.monotonic() - began:.0f} s", flush=True)
        env = environment_for(stack)
        host = stack.rocketchat_url
        mode = "local"
    steps_file = out / "steps.json"
    child_env = {
        **os.environ,
        **env,
        **overrides(args),
        "LOAD_PROFILE": args.profile,
        "LOAD_RUN_ID": run_id,
        "LOAD_STEPS_FILE": str(steps_file),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
    }
    if slo_path:
        child_env["LOAD_SLO_FILE"] = str(slo_path)
    prefix = f"{config().get('user_prefix', 'lt')}-{run_id}-"
    monitor = ResourceMonitor(
        {name: [pid] for name, pid in stack.pids.items()} if stack else {},
        metrics_urls={
            name: url
            for name, url in (
                ("bot", env.get("LOAD_BOT_METRICS_URL")),
                ("ERP", env.get("LOAD_ERP_METRICS_URL")),
            )
            if url
        },
        metrics_every=float(profile_settings(args.profile).get("metrics_every", 30)),
    )
    procs: list[subprocess.Popen[bytes]] = []
    code = None
    log_path = out / "locust.log"
    try:
        with log_path.open("wb") as log:
            for argv, extra in locust_commands(args, host, out):
                procs.append(
                    subprocess.Popen(argv, env={**child_env, **extra}, stdout=log, stderr=subprocess.STDOUT)
                )
                monitor.add(GENERATOR, procs[-1].pid)
            monitor.start()
            monitor.scrape()
            deadline = expected_seconds(args.profile) + 180 + (600 if args.master else 0)
            try:
                began = time.monotonic()
                code = procs[0].wait(timeout=deadline)
                print(f"locust finished in {time.monotonic() - began:.0f} s", flush=True)
            except subprocess.TimeoutExpired:
                print(f"error: locust did not finish within {deadline:.0f} s; stopping it", file=sys.stderr)
            monitor.scrape()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        monitor.stop()
        began = time.monotonic()
        removed, left = sweep_accounts(host, env, prefix)
        print(f"account sweep in {time.monotonic() - began:.0f} s", flush=True)
        if stack is not None:
            stack.stop()
    cores = psutil.cpu_count() or 1
    info: dict[str, Any] = {
        "profile": args.profile,
        "mode": mode,
        "target": host if mode == "target" else "local stack (simulator, ERP, bot on loopback)",
        "run_id": run_id,
        "started": started.isoformat(timespec="seconds"),
        "cores": cores,
        "locust_processes": len(procs),
        "erp_workers": args.erp_workers if mode == "local" else None,
        "accounts_removed": removed,
        "accounts_left": left,
        "locust_exit": code,
        "activation": bool(env.get("LOAD_ERP_URL")),
    }
    (out / "resources.json").write_text(json.dumps(monitor.to_json()), encoding="utf-8")
    stats_path = out / "locust_stats.csv"
    if not stats_path.exists():
        print(f"error: locust wrote no statistics; see {log_path}", file=sys.stderr)
        print(log_path.read_text(errors="replace")[-3000:], file=sys.stderr)
        return 2
    rows = read_stats(stats_path)
    steps = json.loads(steps_file.read_text()) if steps_file.exists() else []
    args.monitor, args.steps = monitor, steps
    verdicts = stress_verdicts(steps) if args.profile == "stress" else judge(rows, objectives)
    verdicts += memory_verdicts(monitor.memory_growth(), objectives) if args.profile == "soak" else []
    generator = generator_cpu(monitor)
    warnings = run_warnings(generator, left, prefix)
    info["generator"] = generator
    summary = report.write(out, info, rows, verdicts, monitor, steps, warnings)
    for line in warnings:
        print(line, file=sys.stderr)
    print(
        f"generator CPU: average {generator['average']:.0f} %, "
        f"busiest process {generator['peak_process']:.0f} % of a core"
    )
    print(f"test accounts removed: {removed}" + (f", left: {left}" if left else ""))
    for verdict in verdicts:
        print(verdict.message(args.profile))
    if args.profile == "stress":
        print(report.stress_sentence(steps))
    print(f"report: {summary}")
    if code not in (0, 1):
        print(f"error: locust exited with {code}; see {log_path}", file=sys.stderr)
        return 2
    failed = [v for v in verdicts if not v.ok]
    return 1 if failed else 0


def run_warnings(generator: dict[str, float], left: int, prefix: str) -> list[str]:
    warnings = []
    if generator["peak_process"] > GENERATOR_WARN:
        warnings.append(
            f"warning: the load generator reached {generator['peak_process']:.0f} % of a core "
            f"(> {GENERATOR_WARN:.0f} %): add --processes or generator hosts; "
            "the figures may measure the generator"
        )
    if left > 0:
        warnings.append(f"warning: {left} test account(s) with prefix {prefix} could not be removed")
    elif left < 0:
        warnings.append(f"warning: the account sweep failed: accounts with prefix {prefix} may be left")
    return warnings


def stress_verdicts(steps: list[dict[str, Any]]) -> list[Any]:
    """Stress passes when its first step holds the SLOs (the ramp is meant to break later)."""
    from loadtests.slo import Verdict

    if not steps:
        return [Verdict("first step", "completed", 0, 1, "steps", False)]
    first = steps[0]
    return [
        Verdict(
            f"first step ({first['users']} users)", "breaches", len(first["breaches"]), 0, "", first["ok"]
        )
    ]


def generator_cpu(monitor: ResourceMonitor) -> dict[str, float]:
    """Generator CPU in % of one core: all its processes together, and the busiest one's average."""
    average = monitor.average().get(GENERATOR, 0.0)
    return {"average": average, "peak_process": monitor.busiest_process(GENERATOR)}


def main_with(args: argparse.Namespace) -> int:
    try:
        return run(args)
    except LoadSettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    return main_with(parse_args(argv))
