"""The bot benchmark runs as documented (small numbers) and prints its figures, RSS with a seeded store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_bot_prints_its_figures_with_a_seeded_store():
    args = ["--sequential", "3", "--users", "2", "--seconds", "1", "--known-employees", "200"]
    args += ["--webhook-seconds", "1"]
    result = subprocess.run(
        [sys.executable, "loadtests/bench_bot.py", *args, "--open-dialogs", "7"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    expected = ("round trip, sequential x3", "commands/s", "CPU per command: bot", "registration dialog")
    for line in expected:
        assert line in result.stdout, result.stdout
    assert "(200 employees known to the store, 7 open dialogs)" in result.stdout, result.stdout
    for line in ("webhook mode, 1 replica (shared Redis state)", "webhook mode, 2 replicas", "bot CPU"):
        assert line in result.stdout, result.stdout
    assert "replica 2 " in result.stdout, result.stdout  # the second replica took part
