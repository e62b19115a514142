"""The SLO gate: read slo.yaml, judge a finished run's statistics, name every broken objective."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from loadtests.settings import DEFAULT_SLO, LoadSettingsError


def load_slo(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """Profile -> objectives, from LOAD_SLO_FILE or loadtests/slo.yaml."""
    file = Path(path or os.environ.get("LOAD_SLO_FILE") or DEFAULT_SLO)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise LoadSettingsError(f"cannot read the SLO file {file}: {exc}") from None
    profiles = data.get("profiles") if isinstance(data, dict) else None
    if not isinstance(profiles, dict):
        raise LoadSettingsError(f"{file}: expected `profiles:` with one mapping per profile")
    for name, objectives in profiles.items():
        lines = (objectives or {}).get("lines") or {}
        for line, objective in lines.items():
            if not isinstance(objective, dict) or not set(objective) <= {"p95_ms", "p99_ms"}:
                raise LoadSettingsError(f"{file}: {name}: {line}: only p95_ms and p99_ms may be set")
    return profiles


@dataclass
class Verdict:
    line: str
    objective: str
    measured: float
    limit: float
    unit: str
    ok: bool
    note: str = ""

    def message(self, profile: str) -> str:
        sign = "<=" if self.objective != "min_throughput" else ">="
        state = "ok" if self.ok else "SLO breach"
        note = f"; {self.note}" if self.note else ""
        return (
            f"{state}: {profile}: {self.line}: {self.objective} {self.measured:g} {self.unit} "
            f"(objective {sign} {self.limit:g} {self.unit}{note})"
        )


def read_stats(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return {row["Name"]: row for row in csv.DictReader(handle)}


PERCENTILES = (("p95_ms", "95%", 0.95), ("p99_ms", "99%", 0.99))


def samples_needed(percent: float) -> int:
    """Requests a run needs before its `percent` percentile is more than its slowest request: 20 for a p95,
    100 for a p99 (at least one request may lie above the percentile)."""
    return round(1 / (1 - percent))


def judge(rows: dict[str, dict[str, str]], objectives: dict[str, Any]) -> list[Verdict]:
    """Every objective of a profile against locust's final statistics (the _stats.csv rows).

    A percentile is judged only on a line with enough requests to measure it (samples_needed); below
    that, locust's p95/p99 is simply the slowest request, and one slow request in eleven would "breach"
    a p95 that the service meets (a line meeting its p95 exactly has 1 - 0.95**11 = 43 % odds of one).
    Those objectives become one verdict `max`: the slowest request, held to the loosest of their limits.
    """
    verdicts: list[Verdict] = []
    for line, objective in (objectives.get("lines") or {}).items():
        row = rows.get(line)
        if row is None or int(row["Request Count"]) == 0:
            continue  # a line the mix did not produce is not judged (the summary lists it)
        count = int(row["Request Count"])
        unmeasurable: list[tuple[str, float]] = []
        for key, column, percent in PERCENTILES:
            if key not in objective:
                continue
            name = key.removesuffix("_ms")
            if count < samples_needed(percent):
                unmeasurable.append((name, objective[key]))
                continue
            measured = float(row[column] or 0)
            verdicts.append(Verdict(line, name, measured, objective[key], "ms", measured <= objective[key]))
        if unmeasurable:
            limit = max(limit for _, limit in unmeasurable)
            slowest = float(row.get("100%") or row.get("Max Response Time") or 0)
            names = "/".join(name for name, _ in unmeasurable)
            verdicts.append(
                Verdict(
                    line,
                    "max",
                    slowest,
                    limit,
                    "ms",
                    slowest <= limit,
                    note=f"{count} requests: too few for a {names}; the slowest is held to its loosest limit",
                )
            )
    total = rows.get("Aggregated")
    if total is not None:
        count, failures = int(total["Request Count"]), int(total["Failure Count"])
        rate = failures / count if count else 0.0
        if "max_error_rate" in objectives:
            limit = float(objectives["max_error_rate"])
            verdicts.append(
                Verdict("all lines", "error_rate", round(rate * 100, 3), limit * 100, "%", rate <= limit)
            )
        if "min_throughput" in objectives:
            limit = float(objectives["min_throughput"])
            rps = float(total["Requests/s"] or 0)
            verdicts.append(
                Verdict("all lines", "min_throughput", round(rps, 2), limit, "req/s", rps >= limit)
            )
    return verdicts


def memory_verdicts(growth_mb: dict[str, float], objectives: dict[str, Any]) -> list[Verdict]:
    limit = objectives.get("max_memory_growth_mb")
    if limit is None:
        return []
    return [
        Verdict(f"{name} memory", "memory_growth", round(mb, 1), float(limit), "MB", mb <= float(limit))
        for name, mb in growth_mb.items()
    ]


def percentile(times: dict[int, int], count: int, percent: float) -> int:
    """Locust's way: the rounded response time below which `percent` of `count` requests fall."""
    processed = 0
    for rounded in sorted(times, reverse=True):
        processed += times[rounded]
        if count - processed <= int(count * percent):
            return rounded
    return 0


def judge_step(
    before: dict[str, tuple[int, int, dict[int, int]]],
    after: dict[str, tuple[int, int, dict[int, int]]],
    slo: dict[str, Any],
) -> dict[str, Any]:
    """Per-line count, failures, p95, p99 of what happened between two snapshots, and the breaches."""
    lines: dict[str, dict[str, Any]] = {}
    total = failures = 0
    for name, (count, failed, times) in after.items():
        prev_count, prev_failed, prev_times = before.get(name, (0, 0, {}))
        step_count = count - prev_count
        if step_count <= 0:
            continue
        step_times = {k: v - prev_times.get(k, 0) for k, v in times.items() if v - prev_times.get(k, 0) > 0}
        timed = sum(step_times.values())
        lines[name] = {
            "count": step_count,
            "failures": failed - prev_failed,
            "p95": percentile(step_times, timed, 0.95) if timed else 0,
            "p99": percentile(step_times, timed, 0.99) if timed else 0,
        }
        total += step_count
        failures += failed - prev_failed
    breaches = []
    for name, objective in (slo.get("lines") or {}).items():
        measured = lines.get(name)
        if measured is None:
            continue
        for key in ("p95", "p99"):
            limit = objective.get(f"{key}_ms")
            if limit is not None and measured[key] > limit:
                breaches.append(f"{name}: {key} {measured[key]} ms > {limit} ms")
    error_rate = failures / total if total else 0.0
    max_error_rate = slo.get("max_error_rate")
    if max_error_rate is not None and error_rate > max_error_rate:
        breaches.append(f"error rate {error_rate:.2%} > {max_error_rate:.2%}")
    return {"lines": lines, "requests": total, "error_rate": error_rate, "breaches": breaches}
