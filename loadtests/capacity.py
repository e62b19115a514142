"""`python -m loadtests capacity`: the stress profile against the local stack, once per ERP worker
count, and the figure QA asks for: how many concurrent chat users stay within the SLOs on this
machine, and which resource saturated first (bot, ERP, simulator, proxy, generator) by per-process CPU.

The bot runs one realtime replica by design (docs/bot-admin-guide.md), so only the ERP is scaled.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from loadtests import run
from loadtests.resources import saturation


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadtests capacity", description=__doc__.splitlines()[0])
    parser.add_argument("--erp-workers", default="1,2", help="comma-separated ERP worker counts to compare")
    parser.add_argument("--start-users", type=int)
    parser.add_argument("--step-users", type=int)
    parser.add_argument("--step-seconds", type=int)
    parser.add_argument("--max-users", type=int)
    parser.add_argument("--processes", type=int, default=1, help="locust worker processes")
    parser.add_argument("--reports", default=str(run.ROOT / "reports" / "load"))
    return parser.parse_args(argv)


def figure(steps: list[dict[str, Any]], monitor: Any, cores: int) -> dict[str, Any]:
    passed = [s for s in steps if s["ok"]]
    broken = next((s for s in steps if not s["ok"]), None)
    judged = broken or (steps[-1] if steps else None)
    name, why = ("unknown", "no step completed")
    projection = "—"
    if judged is not None and monitor is not None:
        averages = monitor.average(judged["started"], judged["ended"])
        name, why = saturation(averages, monitor.processes_per_component, cores)
        projection = project(averages, monitor.processes_per_component, cores, judged["users"])
    return {
        "projection": projection,
        "users": passed[-1]["users"] if passed else 0,
        "broke_at": broken["users"] if broken else None,
        "breaches": broken["breaches"] if broken else [],
        "saturated": name,
        "why": why,
    }


def project(averages: dict[str, float], processes: dict[str, int], cores: int, users: int) -> str:
    """Where each component would run out of CPU if the machine were the stack's alone, assuming CPU
    grows linearly with people: the smallest such number and its component (a projection, not a
    measurement; it ignores latency, locks and the ERP's rate limits)."""
    limits = []
    for name, cpu in averages.items():
        if name in ("machine", "generator") or cpu <= 0.5 or users <= 0:
            continue
        usable = 100.0 * min(max(processes.get(name, 1), 1), cores)
        limits.append((int(usable / (cpu / users)), name, cpu))
    if not limits:
        return "—"
    limit, name, cpu = min(limits)
    return f"~{limit} users ({name}: {cpu:.0f} % of a core at {users} users)"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cores = psutil.cpu_count() or 1
    results: list[tuple[int, dict[str, Any], Path]] = []
    for workers in [int(w) for w in args.erp_workers.split(",") if w.strip()]:
        run_args = run.parse_args(["--profile", "stress", "--erp-workers", str(workers)])
        for key in ("start_users", "step_users", "step_seconds", "max_users", "processes", "reports"):
            value = getattr(args, key)
            if value is not None:
                setattr(run_args, key, value)
        code = run.main_with(run_args)
        if code == 2:
            print(f"error: the stress run with {workers} ERP worker(s) did not complete", file=sys.stderr)
            return 2
        results.append((workers, figure(run_args.steps, run_args.monitor, cores), run_args.result_dir))
    lines = [
        "# Capacity",
        "",
        f"{datetime.now(UTC).isoformat(timespec='seconds')} · this machine: {cores} CPU cores · local stack "
        "(simulator, ERP, bot on loopback; no TLS proxy in front — in a deployment nginx is one more "
        "process to watch) · stress profile, SLOs from loadtests/slo.yaml",
        "",
        "| ERP workers | Concurrent chat users within SLOs | Broke at | First saturated | Why "
        "| CPU-bound projection | Report |",
        "|---|---|---|---|---|---|---|",
    ]
    for workers, fig, folder in results:
        broke = (
            f"{fig['broke_at']} users: " + "; ".join(fig["breaches"]) if fig["broke_at"] else "did not break"
        )
        lines.append(
            f"| {workers} | {fig['users']} | {broke} | {fig['saturated']} | {fig['why']} "
            f"| {fig['projection']} | {folder.name}/summary.md |"
        )
        print(
            f"capacity ({cores} cores, {workers} ERP worker(s)): {fig['users']} concurrent chat users within "
            f"the SLOs; first saturated: {fig['saturated']} ({fig['why']}); "
            f"CPU-bound projection: {fig['projection']}"
        )
    path = Path(args.reports) / f"capacity-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"capacity report: {path}")
    return 0
