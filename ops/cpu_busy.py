"""How busy this machine's CPUs were over a run, from /proc/stat: where a long `make test` had room to spare.

`python -m ops.cpu_busy sample [--every 60] [--out FILE]` appends, every EVERY seconds until it is stopped,
one line per window: its end (UTC), its seconds, the share of CPU time that was busy and the idle
core-seconds (all CPUs together: 2 idle cores for 60 s are 120 core-s). On SIGTERM or SIGINT it writes a
last window and a summary of the whole run, then exits 0. `make test` runs it beside its streams (in
.state/cpu-busy.log) and prints the summary at the end: when the machine was busy all the time, only less
work makes CI shorter; idle windows are room that another order of the streams could use.

Busy is everything /proc/stat does not count as idle or iowait (user, nice, system, irq, softirq, steal).
Where cgroup v1 accounts Docker's containers together (CONTAINERS), each line also gives the core-seconds
of the busy time spent inside containers (the labs' hosts and what they run, the stacks), the rest being
this machine's own processes (pytest, Ansible's controllers, the load clients).
"""

from __future__ import annotations

import argparse
import datetime
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

STAT = Path("/proc/stat")
# Docker's containers together, nested engines' included (cgroup v1's cpuacct; the labs' engines make their
# containers' groups under the same parent): nanoseconds of CPU. Absent elsewhere: no containers column.
CONTAINERS = Path("/sys/fs/cgroup/cpuacct/docker/cpuacct.usage")


@dataclass(frozen=True)
class Sample:
    """The machine's CPU time so far, in clock ticks: busy and idle, all CPUs together; and their count."""

    busy: int
    idle: int
    cpus: int


def parse(text: str) -> Sample:
    """A Sample from /proc/stat's TEXT (its aggregate `cpu` line and one `cpuN` line per CPU)."""
    lines = text.splitlines()
    total = next((line.split() for line in lines if line.startswith("cpu ")), None)
    if total is None:
        raise ValueError("no aggregate cpu line in /proc/stat")
    # user nice system idle iowait irq softirq steal [guest guest_nice: already inside user and nice]
    values = [int(value) for value in total[1:9]]
    idle = values[3] + values[4]
    busy = sum(values) - idle
    cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    return Sample(busy=busy, idle=idle, cpus=max(cpus, 1))


def read() -> Sample:
    return parse(STAT.read_text(encoding="ascii"))


def window(before: Sample, after: Sample, seconds: float) -> tuple[float, float]:
    """(busy share 0-1, idle core-seconds) between two samples SECONDS apart."""
    busy, idle = after.busy - before.busy, after.idle - before.idle
    share = busy / (busy + idle) if busy + idle > 0 else 0.0
    return share, (1.0 - share) * seconds * after.cpus


def line(label: str, seconds: float, share: float, idle: float, containers: float | None = None) -> str:
    """One window; CONTAINERS: the core-seconds spent inside containers in it, when known."""
    text = f"{label}  {seconds:6.0f} s  busy {share * 100:5.1f} %  idle {idle:7.0f} core-s"
    if containers is not None:
        text += f"  containers {containers:7.0f} core-s"
    return text


def containers_seconds() -> float | None:
    """Docker's containers' CPU so far, in seconds (None: not accounted here)."""
    try:
        return int(CONTAINERS.read_text(encoding="ascii")) / 1e9
    except (OSError, ValueError):
        return None


def _delta(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else max(after - before, 0.0)


class _Stop(Exception):
    pass


def _stop(signum: int, frame: object) -> None:
    raise _Stop


def sample(every: float, out: TextIO) -> int:
    """Write a window every EVERY seconds until SIGTERM/SIGINT, then the last window and the summary."""
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    first = last = read()
    first_in = last_in = containers_seconds()
    started = mark = time.monotonic()
    windows: list[float] = []
    try:
        while True:
            time.sleep(every)
            now, current, inside = time.monotonic(), read(), containers_seconds()
            stamp = datetime.datetime.now(datetime.UTC).strftime("%H:%M:%S")
            share, idle = window(last, current, now - mark)
            out.write(line(stamp, now - mark, share, idle, _delta(last_in, inside)) + "\n")
            out.flush()
            windows.append(share)
            last, last_in, mark = current, inside, now
    except _Stop:
        pass
    now, current, inside = time.monotonic(), read(), containers_seconds()
    if now - mark >= 1:
        windows.append(window(last, current, now - mark)[0])
    share, idle = window(first, current, now - started)
    quiet = sum(1 for value in windows if value < 0.9)
    out.write(
        line("whole run", now - started, share, idle, _delta(first_in, inside))
        + f"  ({quiet} of {len(windows)} windows under 90 % busy; {current.cpus} CPUs)\n"
    )
    out.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.cpu_busy", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("sample", help="write a window every --every seconds until stopped")
    run.add_argument("--every", type=float, default=60.0, help="seconds per window (default 60)")
    run.add_argument("--out", type=Path, help="append here (default: standard output)")
    args = parser.parse_args(argv)
    if args.every <= 0:
        parser.error("--every must be above 0")
    if args.out is None:
        return sample(args.every, sys.stdout)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a", encoding="utf-8") as out:
        return sample(args.every, out)


if __name__ == "__main__":
    sys.exit(main())
