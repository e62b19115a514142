#!/usr/bin/env python3
# ruff: noqa: S603, S607  (fixed docker argv on the host, never a shell)
"""Container state of this Docker host as Prometheus metrics, for node exporter's textfile collector.

Run by cron every minute (the monitoring role); it writes OUTPUT a few times a minute, each time
atomically (a temporary file renamed over it), so node exporter never reads half a file:

  photomatrix_container_restarts_total{container="photomatrix-erp-api"} 0   (Docker's RestartCount)
  photomatrix_container_running{container="..."} 1
  photomatrix_container_healthy{container="..."} 1     (0 when unhealthy or starting; absent: no check)
  photomatrix_container_metrics_timestamp_seconds 1.7e9

Only containers whose name starts with PREFIX. Read-only towards Docker (docker inspect), no network.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess  # nosec B404
import sys
import tempfile
import time
from pathlib import Path

DOCKER_TIMEOUT = 20


def label(value: str) -> str:
    """A Prometheus label value: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(containers: list[dict], now: float) -> str:
    """The exposition text for `docker inspect` output (a list of container objects)."""
    restarts, running, healthy = [], [], []
    for info in sorted(containers, key=lambda c: c.get("Name", "")):
        name = label(str(info.get("Name", "")).lstrip("/"))
        state = info.get("State") or {}
        restarts.append(
            f'photomatrix_container_restarts_total{{container="{name}"}} {int(info.get("RestartCount", 0))}'
        )
        running.append(
            f'photomatrix_container_running{{container="{name}"}} {1 if state.get("Running") else 0}'
        )
        health = (state.get("Health") or {}).get("Status")
        if health:
            healthy.append(
                f'photomatrix_container_healthy{{container="{name}"}} {1 if health == "healthy" else 0}'
            )
    lines = [
        "# HELP photomatrix_container_restarts_total Times Docker restarted the container (RestartCount).",
        "# TYPE photomatrix_container_restarts_total counter",
        *restarts,
        "# HELP photomatrix_container_running Whether the container is running.",
        "# TYPE photomatrix_container_running gauge",
        *running,
        "# HELP photomatrix_container_healthy Whether the container's health check passes (1) or not (0).",
        "# TYPE photomatrix_container_healthy gauge",
        *healthy,
        "# HELP photomatrix_container_metrics_timestamp_seconds When these container metrics were read.",
        "# TYPE photomatrix_container_metrics_timestamp_seconds gauge",
        f"photomatrix_container_metrics_timestamp_seconds {now:.3f}",
    ]
    return "\n".join(lines) + "\n"


def inspect(prefix: str) -> list[dict]:
    """`docker inspect` of every container (running or not) whose name starts with prefix."""
    listed = subprocess.run(  # nosec B603 B607
        ["docker", "ps", "--all", "--quiet", "--filter", f"name=^{prefix}"],
        capture_output=True, text=True, timeout=DOCKER_TIMEOUT, check=True,
    )  # fmt: skip
    ids = listed.stdout.split()
    if not ids:
        return []
    found = subprocess.run(  # nosec B603 B607
        ["docker", "inspect", *ids], capture_output=True, text=True, timeout=DOCKER_TIMEOUT, check=False
    )
    # A container removed between the two calls makes inspect fail for it alone: keep the others.
    return json.loads(found.stdout or "[]")


def write_atomically(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, prefix=".tmp-", suffix=".prom", delete=False
    ) as tmp:
        tmp.write(text)
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--output", type=Path, required=True, help="the .prom file node exporter reads")
    parser.add_argument("--prefix", default="photomatrix-", help="container name prefix")
    parser.add_argument("--times", type=int, default=1, help="write this many times (cron: once a minute)")
    parser.add_argument("--interval", type=float, default=15.0, help="seconds between writes")
    args = parser.parse_args(argv)
    if args.times < 1 or not 0 <= args.interval <= 60:
        parser.error("--times must be at least 1 and --interval between 0 and 60")
    for round_ in range(args.times):
        if round_:
            time.sleep(args.interval)
        # The monitoring role creates the directory; it is gone when the stack was removed (`make down
        # PURGE=true`) while this run was under way: stop rather than create it again.
        if not args.output.parent.is_dir():
            gone = f"photomatrix-container-metrics: {args.output.parent} is gone: nothing written"
            print(gone, file=sys.stderr)
            return 0
        try:
            containers = inspect(args.prefix)
        except (subprocess.SubprocessError, OSError, json.JSONDecodeError) as exc:
            # No file update: the timestamp ages and the stale-metrics alert says so.
            print(f"photomatrix-container-metrics: docker inspect failed: {exc}", file=sys.stderr)
            return 1
        write_atomically(args.output, render(containers, time.time()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
