"""Benchmark of the ERP bot-integration API: one uvicorn worker, load from wrk in a separate process.

Prints req/s and p50/p99 latency for `GET /staff?rocketchat_username=` and `POST /staff` on SQLite and
(when ERP_TEST_POSTGRES_URL is set, or --postgres-url) PostgreSQL. Targets: GET >= 2,000 req/s with
p99 <= 25 ms at 32 connections; POST >= 300 req/s. Needs `wrk` (Debian: apt-get install wrk).

A run at the documented sizes (32 connections, >= 10 s) where every request succeeded appends its
figures (bench.erp_*, and the load average before it) to .state/figures/bench.jsonl;
`python -m ops.figures record .state/figures/bench.jsonl` widens the docs' ranges with them.
--record records any run, --no-record none.

    python loadtests/bench_erp.py [--seconds 10] [--connections 32] [--backend sqlite --backend postgresql]
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from plugins.erp import run_cli, temporary_postgres_database  # noqa: E402
from plugins.processes import ServiceProcess, free_port  # noqa: E402

from ops.figures import record_run  # noqa: E402

LUA_POST = Path(__file__).with_name("erp_post_staff.lua")
UNLIMITED = {
    "ERP_ENVIRONMENT": "test",
    "ERP_LOG_LEVEL": "WARNING",
    "ERP_RATE_LIMIT_KEY_PER_SECOND": "1000000",
    "ERP_RATE_LIMIT_KEY_BURST": "1000000",
    "ERP_RATE_LIMIT_IP_PER_SECOND": "1000000",
    "ERP_RATE_LIMIT_IP_BURST": "1000000",
    "ERP_ALERT_REGISTRATIONS_THRESHOLD": "100000000",
}


def parse_wrk(output: str) -> dict[str, float]:
    def latency_ms(pct: str) -> float:
        match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(r"Socket errors:.*", output)
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "p50": latency_ms("50"),
        "p99": latency_ms("99"),
        "requests": float(total.group(1)) if total else 0.0,
        "non_2xx": float(errors.group(1)) if errors else 0.0,
        "socket_errors": 1.0 if socket_errors else 0.0,
    }


def wrk(url: str, connections: int, seconds: int, headers: dict[str, str], script: Path | None = None,
        env: dict[str, str] | None = None) -> dict[str, float]:  # fmt: skip
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    if script is not None:
        args += ["-s", str(script)]
    result = subprocess.run(
        [*args, url], capture_output=True, text=True, timeout=seconds + 60, check=True,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    return parse_wrk(result.stdout)


def run_figures(
    results: dict[str, dict[str, dict[str, float]]], load: float
) -> tuple[dict[str, float], bool]:
    """The docs' figures (ops/figures.json) of a run: {backend: {"get": wrk figures, "post": …}} and the
    load average before it; and whether every request of the run succeeded."""
    values = {"bench.load_average": load}
    sqlite, postgresql = results.get("sqlite"), results.get("postgresql")
    if sqlite:
        values["bench.erp_get_rps"] = sqlite["get"]["rps"]
        values["bench.erp_get_p99_ms"] = sqlite["get"]["p99"]
        values["bench.erp_post_staff_sqlite_rps"] = sqlite["post"]["rps"]
    if postgresql:
        values["bench.erp_get_postgresql_rps"] = postgresql["get"]["rps"]
        values["bench.erp_get_postgresql_p99_ms"] = postgresql["get"]["p99"]
        values["bench.erp_post_staff_postgresql_rps"] = postgresql["post"]["rps"]
    clean = bool(results) and all(
        phase["requests"] > 0 and phase["non_2xx"] == 0 and phase["socket_errors"] == 0
        for backend in results.values()
        for phase in backend.values()
    )
    return values, clean


def bench_backend(
    name: str, database_url: str, state: Path, seconds: int, connections: int
) -> tuple[list[str], dict[str, dict[str, float]]]:
    env = {**UNLIMITED, "ERP_DATABASE_URL": database_url, "ERP_SECRET_KEY": secrets.token_urlsafe(32)}
    run_cli(env, "migrate")
    run_cli(env, "seed-positions")
    key = run_cli(env, "keys", "create", "--name", "bench", "--scope", "bot").stdout.strip()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = ServiceProcess(
        f"erp-bench-{name}", ["-m", "erp", "serve", "--port", str(port)], env=env,
        health_url=f"{base}/healthz", log_dir=state,
    ).start()  # fmt: skip
    lines, measured = [], {}
    try:
        body = {"full_name": "Иванов Иван", "email": "bench@example.com", "position_code": "ENG",
                "rocketchat_user_id": "benchuser", "rocketchat_username": "bench.user"}  # fmt: skip
        seed_headers = {"X-API-Key": key, "Idempotency-Key": "bench-seed"}
        created = httpx.post(f"{base}/api/bot/v1/staff", json=body, headers=seed_headers, timeout=10)
        created.raise_for_status()
        get_url = f"{base}/api/bot/v1/staff?rocketchat_username=bench.user"
        wrk(get_url, connections, 2, {"X-API-Key": key})  # warm-up
        get = wrk(get_url, connections, seconds, {"X-API-Key": key})
        post_env = {"BENCH_RUN": secrets.token_hex(3), "BENCH_KEY": key}
        post = wrk(f"{base}/api/bot/v1/staff", connections, seconds, {}, LUA_POST, post_env)
        measured = {"get": get, "post": post}
        for label, figures, target in (
            ("GET /staff?rocketchat_username=", get, ">= 2000 req/s, p99 <= 25 ms"),
            ("POST /staff", post, ">= 300 req/s"),
        ):
            lines.append(
                f"{name:<10} {label:<32} {figures['rps']:>9.0f} req/s  p50 {figures['p50']:>7.2f} ms  "
                f"p99 {figures['p99']:>7.2f} ms  non-2xx {figures['non_2xx']:>5.0f}  (target {target})"
            )
    finally:
        server.stop()
    return lines, measured


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--backend", action="append", choices=["sqlite", "postgresql"])
    parser.add_argument("--postgres-url", default=os.environ.get("ERP_TEST_POSTGRES_URL"))
    parser.add_argument(
        "--record", action=argparse.BooleanOptionalAction, default=None,
        help="append the figures to .state/figures/bench.jsonl (default: a run at the documented sizes)",
    )  # fmt: skip
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    backends = args.backend or ["sqlite", "postgresql"]
    load = os.getloadavg()
    print(f"ERP benchmark: 1 uvicorn worker, wrk -t2 -c{args.connections} -d{args.seconds}s, "
          f"{os.cpu_count()} CPUs, load average before {load[0]:.2f}")  # fmt: skip
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="erp-bench-") as tmp, ExitStack() as stack:
        for backend in backends:
            state = Path(tmp) / backend
            state.mkdir()
            if backend == "postgresql":
                if not args.postgres_url:
                    print("postgresql  skipped: set ERP_TEST_POSTGRES_URL or --postgres-url")
                    continue
                url = stack.enter_context(temporary_postgres_database(args.postgres_url))
            else:
                url = f"sqlite:///{state / 'erp.sqlite3'}"
            started = time.monotonic()
            lines, results[backend] = bench_backend(backend, url, state, args.seconds, args.connections)
            for line in lines:
                print(line, flush=True)
            print(f"{backend:<10} ({time.monotonic() - started:.0f} s)")
    values, clean = run_figures(results, load[0])
    documented = args.connections == 32 and args.seconds >= 10
    print(record_run(values, documented=documented, ok=clean, wanted=args.record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
