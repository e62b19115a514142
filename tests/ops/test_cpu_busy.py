"""ops.cpu_busy: the machine's busy share from /proc/stat, per window and for the whole run."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from plugins.images import tiny_image

from ops.cpu_busy import Sample, containers_seconds, parse, window

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


@pytest.mark.timeout(180)
def test_cpu_spent_in_a_container_is_in_the_containers_column(tmp_path: Path) -> None:
    """Two seconds of CPU in a container (ulimit -t stops it there, however loaded the machine) are
    counted in the whole run's containers column."""
    if containers_seconds() is None:
        pytest.skip("this machine does not account Docker's containers in cgroup v1's cpuacct")
    reference = f"photomatrix-test/cpu-busy:{os.getpid()}"
    tiny_image(tmp_path, reference, ("/bin/sh",))
    out = tmp_path / "cpu.log"
    sampler = subprocess.Popen(
        [sys.executable, "-m", "ops.cpu_busy", "sample", "--every", "600", "--out", str(out)]
    )
    try:
        time.sleep(0.5)  # its first reading taken
        burn = subprocess.run(
            ["docker", "run", "--rm", "--network", "none", reference,
             "/bin/sh", "-c", "ulimit -t 2; while :; do :; done"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert burn.returncode != 0  # killed at its CPU limit (SIGXCPU)
    finally:
        sampler.send_signal(signal.SIGTERM)
        sampler.wait(timeout=30)
        subprocess.run(["docker", "rmi", "--force", reference], capture_output=True, timeout=60, check=False)
    (whole,) = [line for line in out.read_text().splitlines() if line.startswith("whole run")]
    found = re.search(r"containers +(\d+) core-s", whole)
    assert found, whole
    assert int(found[1]) >= 2, whole
