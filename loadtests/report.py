"""The one-page summary of a run (summary.md) with PNG charts, next to locust's HTML and CSV files.

Charts: latency percentiles and throughput over time (locust's CSV history), errors by type, CPU per
component, resident memory (when scraped). When an earlier run of the same profile exists in the
parent folder, its statistics are compared line by line.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from loadtests.resources import ResourceMonitor, saturation
from loadtests.slo import Verdict, read_stats


def _history(out: Path) -> list[dict[str, str]]:
    path = out / "locust_stats_history.csv"
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _float(value: str | None) -> float:
    try:
        return float(value) if value not in (None, "", "N/A") else 0.0
    except ValueError:
        return 0.0


def chart_latency(out: Path, history: list[dict[str, str]]) -> str | None:
    rows = [r for r in history if r["Name"] == "Aggregated"]
    if not rows:
        return None
    t0 = int(rows[0]["Timestamp"])
    xs = [int(r["Timestamp"]) - t0 for r in rows]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for column in ("50%", "95%", "99%"):
        ax.plot(xs, [_float(r[column]) for r in rows], label=f"p{column.rstrip('%')}")
    ax.set_xlabel("seconds")
    ax.set_ylabel("ms (all lines)")
    ax.set_title("Latency percentiles over time")
    users = ax.twinx()
    users.plot(xs, [_float(r["User Count"]) for r in rows], color="grey", linestyle=":", label="users")
    users.set_ylabel("users")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=90)
    plt.close(fig)
    return "latency.png"


def chart_round_trips(out: Path, history: list[dict[str, str]]) -> str | None:
    """p95 over time (locust's 10 s window) of the busiest realtime round-trip lines."""
    rows = [r for r in history if r.get("Type") == "BOT"]
    if not rows:
        return None
    counts: dict[str, float] = {}
    for row in rows:
        counts[row["Name"]] = max(counts.get(row["Name"], 0.0), _float(row.get("Total Request Count")))
    names = sorted(counts, key=lambda n: -counts[n])[:6]
    t0 = min(int(r["Timestamp"]) for r in rows)
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for name in sorted(names):
        series = [(int(r["Timestamp"]) - t0, _float(r["95%"])) for r in rows if r["Name"] == name]
        ax.plot([x for x, _ in series], [y for _, y in series], label=name)
    ax.set_xlabel("seconds")
    ax.set_ylabel("p95 ms (send → answer on the stream)")
    ax.set_title("Realtime round trips to the bot")
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    fig.savefig(out / "round_trips.png", dpi=90)
    plt.close(fig)
    return "round_trips.png"


def chart_throughput(out: Path, history: list[dict[str, str]]) -> str | None:
    rows = [r for r in history if r["Name"] == "Aggregated"]
    if not rows:
        return None
    t0 = int(rows[0]["Timestamp"])
    xs = [int(r["Timestamp"]) - t0 for r in rows]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.plot(xs, [_float(r["Requests/s"]) for r in rows], label="requests/s")
    ax.plot(xs, [_float(r["Failures/s"]) for r in rows], label="failures/s", color="red")
    ax.set_xlabel("seconds")
    ax.set_title("Throughput over time (all lines)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=90)
    plt.close(fig)
    return "throughput.png"


def failures(out: Path) -> list[tuple[str, str, int]]:
    path = out / "locust_failures.csv"
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return [(r["Name"], r["Error"], int(r["Occurrences"])) for r in csv.DictReader(handle)]


def chart_errors(out: Path, errors: list[tuple[str, str, int]]) -> str:
    fig, ax = plt.subplots(figsize=(8, 2.8 + 0.3 * len(errors)))
    if errors:
        labels = [f"{name}: {error}"[:70] for name, error, _ in errors]
        ax.barh(labels, [count for _, _, count in errors], color="firebrick")
        ax.invert_yaxis()
    else:
        ax.text(0.5, 0.5, "no errors", ha="center", va="center", fontsize=14)
        ax.set_axis_off()
    ax.set_title("Errors by type")
    fig.tight_layout()
    fig.savefig(out / "errors.png", dpi=90)
    plt.close(fig)
    return "errors.png"


def chart_cpu(out: Path, monitor: ResourceMonitor) -> str | None:
    if not monitor.samples:
        return None
    t0 = monitor.samples[0].at
    xs = [s.at - t0 for s in monitor.samples]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    for name in sorted({n for s in monitor.samples for n in s.cpu}):
        ax.plot(xs, [s.cpu.get(name, 0.0) for s in monitor.samples], label=name)
    ax.plot(
        xs, [s.machine for s in monitor.samples], label="machine (all cores)", color="black", linestyle=":"
    )
    ax.set_xlabel("seconds")
    ax.set_ylabel("% of one core")
    ax.set_title("CPU per component")
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    fig.savefig(out / "cpu.png", dpi=90)
    plt.close(fig)
    return "cpu.png"


def chart_memory(out: Path, monitor: ResourceMonitor) -> str | None:
    if len(monitor.memory) < 2:
        return None
    t0 = monitor.memory[0][0]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    for name in sorted({n for _, n, _ in monitor.memory}):
        series = [(at - t0, mb) for at, n, mb in monitor.memory if n == name]
        ax.plot([x for x, _ in series], [mb for _, mb in series], marker=".", label=name)
    ax.set_xlabel("seconds")
    ax.set_ylabel("resident MB")
    ax.set_title("Memory (process_resident_memory_bytes, or psutil locally)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(out / "memory.png", dpi=90)
    plt.close(fig)
    return "memory.png"


def previous_run(out: Path, profile: str) -> Path | None:
    """The latest earlier folder beside this one with statistics of the same profile."""
    earlier = sorted(p for p in out.parent.iterdir() if p.is_dir() and p.name < out.name)
    for folder in reversed(earlier):
        info = folder / "info.json"
        if (folder / "locust_stats.csv").exists() and info.exists():
            try:
                if json.loads(info.read_text()).get("profile") == profile:
                    return folder
            except ValueError:
                continue
    return None


def comparison(rows: dict[str, dict[str, str]], before: dict[str, dict[str, str]]) -> list[str]:
    lines = [
        "| Line | p95 before → now (ms) | p99 before → now (ms) | req/s before → now "
        "| failures before → now |",
        "|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        old = before.get(name)
        if old is None or name.startswith("setup:"):
            continue
        lines.append(
            f"| {name} | {old['95%']} → {row['95%']} | {old['99%']} → {row['99%']} | "
            f"{_float(old['Requests/s']):.2f} → {_float(row['Requests/s']):.2f} | "
            f"{old['Failure Count']} → {row['Failure Count']} |"
        )
    return lines


def stress_sentence(steps: list[dict[str, Any]]) -> str:
    if not steps:
        return "stress: no step completed"
    passed = [s for s in steps if s["ok"]]
    broken = next((s for s in steps if not s["ok"]), None)
    best = passed[-1]["users"] if passed else 0
    if broken is None:
        return f"stress: every step held the SLOs up to {steps[-1]['users']} users (the ramp's end)"
    return (
        f"stress: the SLOs held up to {best} concurrent users; step {broken['step']} "
        f"({broken['users']} users) broke: " + "; ".join(broken["breaches"])
    )


def write(
    out: Path,
    info: dict[str, Any],
    rows: dict[str, dict[str, str]],
    verdicts: list[Verdict],
    monitor: ResourceMonitor,
    steps: list[dict[str, Any]],
    warnings: list[str],
) -> Path:
    history = _history(out)
    errors = failures(out)
    charts = [
        c
        for c in (
            chart_latency(out, history),
            chart_round_trips(out, history),
            chart_throughput(out, history),
            chart_errors(out, errors),
            chart_cpu(out, monitor),
            chart_memory(out, monitor),
        )
        if c
    ]
    (out / "info.json").write_text(json.dumps(info, indent=1, default=str), encoding="utf-8")
    profile = info["profile"]
    failed = [v for v in verdicts if not v.ok]
    md = [
        f"# Load run: {profile} — {'PASS' if not failed else 'FAIL'}",
        "",
        f"Started {info['started']} · target: {info['target']} · run id `{info['run_id']}` · "
        f"{info['cores']} CPU cores · {info['locust_processes']} locust process(es)"
        + (f" · ERP workers: {info['erp_workers']}" if info.get("erp_workers") else ""),
        "",
        f"Generator CPU: {info['generator']['average']:.0f} % of a core on average, busiest process "
        f"{info['generator']['peak_process']:.0f} % (warning above 80 %). Test accounts removed: "
        f"{info['accounts_removed']}"
        + (f", left: {info['accounts_left']}" if info["accounts_left"] else "")
        + ".",
    ]
    if not info.get("activation"):
        md += ["", "The activation journey was off (no LOAD_ERP_URL)."]
    if warnings:
        md += ["", *[f"> {w}" for w in warnings]]
    md += [
        "",
        "## SLO verdicts",
        "",
        "| Line | Objective | Measured | Limit | Verdict |",
        "|---|---|---|---|---|",
    ]
    md += [
        f"| {v.line} | {v.objective}{f' ({v.note})' if v.note else ''} | {v.measured:g} {v.unit} | "
        f"{v.limit:g} {v.unit} | {'ok' if v.ok else '**BREACH**'} |"
        for v in verdicts
    ]
    if steps:
        md += ["", "## Stress steps", "", stress_sentence(steps), ""]
        md += [
            "| Step | Users | Requests | Error rate | Slowest line p95 | CPU (avg, % of a core) | Verdict |"
        ]
        md += ["|---|---|---|---|---|---|---|"]
        for step in steps:
            cpu = monitor.average(step["started"], step["ended"])
            gated = [(n, line["p95"]) for n, line in step["lines"].items() if not n.startswith("setup:")]
            slowest = max(gated, key=lambda x: x[1]) if gated else ("—", 0)
            cpu_text = ", ".join(f"{k} {v:.0f}" for k, v in sorted(cpu.items()))
            md.append(
                f"| {step['step']} | {step['users']} | {step['requests']} | {step['error_rate']:.1%} | "
                f"{slowest[0]} {slowest[1]} ms | {cpu_text} | "
                f"{'ok' if step['ok'] else 'broke: ' + '; '.join(step['breaches'])} |"
            )
    md += [
        "",
        "## Request lines",
        "",
        "| Type | Line | Requests | Failures | p50 ms | p95 ms | p99 ms | req/s |",
    ]
    md += ["|---|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        md.append(
            f"| {row['Type']} | {name} | {row['Request Count']} | {row['Failure Count']} | {row['50%']} | "
            f"{row['95%']} | {row['99%']} | {_float(row['Requests/s']):.2f} |"
        )
    averages = monitor.average()
    if averages:
        name, why = saturation(averages, monitor.processes_per_component, info["cores"])
        md += [
            "",
            "## Resources",
            "",
            "| Component | CPU average (% of one core) | processes |",
            "|---|---|---|",
        ]
        ours = {k: v for k, v in averages.items() if k != "machine"}
        md += [
            f"| {k} | {v:.0f} | {monitor.processes_per_component.get(k, '')} |"
            for k, v in sorted(ours.items())
        ]
        others = max(0.0, averages.get("machine", 0.0) * info["cores"] - sum(ours.values()))
        md += [
            f"| other processes on the machine | {others:.0f} | |",
            f"| machine, all {info['cores']} cores (100 = every core busy) "
            f"| {averages.get('machine', 0.0):.0f} | |",
        ]
        md += ["", f"Busiest: {why}."]
    growth = monitor.memory_growth()
    if growth:
        md += [
            "",
            "Resident memory growth over the run: "
            + ", ".join(f"{k} {v:+.1f} MB" for k, v in growth.items()),
        ]
    if errors:
        md += ["", "## Errors", "", "| Line | Error | Occurrences |", "|---|---|---|"]
        md += [f"| {n} | {e} | {c} |" for n, e, c in errors]
    before = previous_run(out, profile)
    if before is not None:
        md += ["", f"## Compared with the previous {profile} run ({before.name})", ""]
        md += comparison(rows, read_stats(before / "locust_stats.csv"))
    md += ["", "## Charts", ""] + [f"![{c}]({c})" for c in charts]
    md += [
        "",
        "Locust's own report: [report.html](report.html); CSV: `locust_stats.csv`, "
        "`locust_stats_history.csv`, `locust_failures.csv`.",
    ]
    md.append("")
    md.append(f"_Written {datetime.now(UTC).isoformat(timespec='seconds')}_")
    path = out / "summary.md"
    path.write_text("\n".join(md) + "\n", encoding="utf-8")
    return path
