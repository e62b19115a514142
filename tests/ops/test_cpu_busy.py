"""ops.cpu_busy: the machine's busy share from /proc/stat, per window and for the whole run."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ops.cpu_busy import Sample, parse, window

STAT = """cpu  100 20 30 400 50 5 5 0 7 0
cpu0 50 10 15 200 25 3 2 0 7 0
cpu1 50 10 15 200 25 2 3 0 0 0
intr 12345
"""


def test_busy_is_all_but_idle_and_iowait_and_guest_is_not_counted_twice() -> None:
    assert parse(STAT) == Sample(busy=100 + 20 + 30 + 5 + 5, idle=400 + 50, cpus=2)


def test_a_stat_without_the_aggregate_line_is_refused() -> None:
    with pytest.raises(ValueError, match="aggregate"):
        parse("cpu0 1 2 3 4\n")


def test_a_window_gives_the_busy_share_and_the_idle_core_seconds() -> None:
    share, idle = window(Sample(100, 100, 2), Sample(250, 150, 2), 60.0)  # 150 busy, 50 idle ticks
    assert share == pytest.approx(0.75)
    assert idle == pytest.approx(30.0)  # a quarter of 2 cores for 60 s


@pytest.mark.timeout(60)
def test_sample_writes_windows_then_the_whole_run_when_stopped(tmp_path: Path) -> None:
    out = tmp_path / "cpu.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "ops.cpu_busy", "sample", "--every", "0.3", "--out", str(out)]
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not out.exists() or out.read_text().count("\n") < 2):
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    lines = out.read_text().splitlines()
    assert len(lines) >= 3
    assert all(" busy " in line and " idle " in line for line in lines)
    assert lines[-1].startswith("whole run")
    assert "windows under 90 % busy" in lines[-1]


def test_every_must_be_positive() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ops.cpu_busy", "sample", "--every", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "--every must be above 0" in result.stderr
