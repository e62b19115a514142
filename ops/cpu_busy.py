"""How busy this machine's CPUs were over a run, from /proc/stat: where a long `make test` had room to spare.

`python -m ops.cpu_busy sample [--every 60] [--out FILE]` appends, every EVERY seconds until it is stopped,
one line per window: its end (UTC), its seconds, the share of CPU time that was busy and the idle
core-seconds (all CPUs together: 2 idle cores for 60 s are 120 core-s). On SIGTERM or SIGINT it writes a
last window and a summary of the whole run, then exits 0. `make test` runs it beside its streams (in
.state/cpu-busy.log) and prints the summary at the end: when the machine was busy all the time, only less
work makes CI shorter; idle windows are room that another order of the streams could use.

Busy is everything /proc/stat does not count as idle or iowait (user, nice, system, irq, softirq, steal).
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


def line(label: str, seconds: float, share: float, idle: float) -> str:
    return f"{label}  {seconds:6.0f} s  busy {share * 100:5.1f} %  idle {idle:7.0f} core-s"


class _Stop(Exception):
    pass


def _stop(signum: int, frame: object) -> None:
    raise _Stop


def sample(every: float, out: TextIO) -> int:
    """Write a window every EVERY seconds until SIGTERM/SIGINT, then the last window and the summary."""
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    first = last = read()
    started = mark = time.monotonic()
    windows: list[float] = []
    try:
        while True:
            time.sleep(every)
            now, current = time.monotonic(), read()
            stamp = datetime.datetime.now(datetime.UTC).strftime("%H:%M:%S")
            out.write(line(stamp, now - mark, *window(last, current, now - mark)) + "\n")
            out.flush()
            windows.append(window(last, current, now - mark)[0])
            last, mark = current, now
    except _Stop:
        pass
    now, current = time.monotonic(), read()
    if now - mark >= 1:
        windows.append(window(last, current, now - mark)[0])
    share, idle = window(first, current, now - started)
    quiet = sum(1 for value in windows if value < 0.9)
    out.write(
        line("whole run", now - started, share, idle)
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
