"""What the machine does during a run: per-component CPU (psutil) and resident memory from /metrics.

Components are processes with their children: the simulator, the bot, the ERP (all its workers), the
proxy when one is known, and the generator (locust's processes). 100 % is one core busy.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import psutil

GENERATOR = "generator"
SATURATED = 85.0  # % of one core for one single-threaded process


@dataclass
class Sample:
    at: float
    cpu: dict[str, float]
    machine: float


@dataclass
class ResourceMonitor:
    """Samples CPU of named process trees every `interval` s, and /metrics memory every `metrics_every` s."""

    roots: dict[str, list[int]]
    interval: float = 1.0
    metrics_urls: dict[str, str] = field(default_factory=dict)
    metrics_every: float = 30.0
    samples: list[Sample] = field(default_factory=list)
    memory: list[tuple[float, str, float]] = field(default_factory=list)  # (at, component, MB)
    processes_per_component: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _procs: dict[int, tuple[str, psutil.Process]] = field(default_factory=dict)
    # pid -> (component, sum of samples, number of samples): per-process averages
    per_process: dict[int, tuple[str, float, int]] = field(default_factory=dict)

    def add(self, name: str, pid: int) -> None:
        self.roots.setdefault(name, []).append(pid)

    def busiest_process(self, name: str) -> float:
        """The highest per-process average CPU of a component over the run (% of one core)."""
        return max(
            (total / n for owner, total, n in self.per_process.values() if owner == name and n), default=0.0
        )

    def start(self) -> ResourceMonitor:
        psutil.cpu_percent(None)
        self._thread = threading.Thread(target=self._run, name="resource-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _tree(self) -> dict[int, str]:
        found: dict[int, str] = {}
        for name, pids in list(self.roots.items()):
            for pid in pids:
                try:
                    root = psutil.Process(pid)
                    for proc in [root, *root.children(recursive=True)]:
                        found[proc.pid] = name
                except psutil.Error:
                    continue
        return found

    def _run(self) -> None:
        next_scrape = time.time()
        while not self._stop.is_set():
            tree = self._tree()
            for pid, name in tree.items():
                if pid not in self._procs:
                    try:
                        proc = psutil.Process(pid)
                        proc.cpu_percent(None)
                        self._procs[pid] = (name, proc)
                    except psutil.Error:
                        continue
            self._stop.wait(self.interval)
            cpu: dict[str, float] = dict.fromkeys(self.roots, 0.0)
            counts: dict[str, int] = {}
            for pid, (name, proc) in list(self._procs.items()):
                try:
                    value = proc.cpu_percent(None)
                    cpu[name] = cpu.get(name, 0.0) + value
                    counts[name] = counts.get(name, 0) + 1
                    _owner, total, n = self.per_process.get(pid, (name, 0.0, 0))
                    self.per_process[pid] = (name, total + value, n + 1)
                except psutil.Error:
                    del self._procs[pid]
            for name, count in counts.items():
                self.processes_per_component[name] = max(count, self.processes_per_component.get(name, 0))
            self.samples.append(Sample(time.time(), cpu, psutil.cpu_percent(None)))
            if self.metrics_urls and time.time() >= next_scrape:
                next_scrape = time.time() + self.metrics_every
                self.scrape()

    def scrape(self) -> None:
        for name, url in self.metrics_urls.items():
            mb = resident_memory_mb(url)
            if mb is None and name in self.roots:  # no process metrics on /metrics: psutil, locally
                mb = self._rss_mb(name)
            if mb is not None:
                self.memory.append((time.time(), name, mb))

    def _rss_mb(self, name: str) -> float | None:
        total = 0
        for pid, owner in self._tree().items():
            if owner == name:
                try:
                    total += psutil.Process(pid).memory_info().rss
                except psutil.Error:
                    continue
        return total / 1_000_000 if total else None

    # ------------------------------------------------------------------ summaries
    def average(self, start: float = 0.0, end: float = float("inf")) -> dict[str, float]:
        window = [s for s in self.samples if start <= s.at <= end]
        if not window:
            return {}
        names = {n for s in window for n in s.cpu}
        out = {n: sum(s.cpu.get(n, 0.0) for s in window) / len(window) for n in names}
        out["machine"] = sum(s.machine for s in window) / len(window)
        return out

    def peak(self, name: str) -> float:
        return max((s.cpu.get(name, 0.0) for s in self.samples), default=0.0)

    def memory_growth(self) -> dict[str, float]:
        growth: dict[str, float] = {}
        for name in {n for _, n, _ in self.memory}:
            series = [mb for _, n, mb in self.memory if n == name]
            if len(series) >= 2:
                growth[name] = series[-1] - series[0]
        return growth

    def to_json(self) -> dict[str, Any]:
        return {
            "samples": [{"at": s.at, "cpu": s.cpu, "machine": s.machine} for s in self.samples],
            "memory": [{"at": at, "component": n, "mb": mb} for at, n, mb in self.memory],
            "processes": self.processes_per_component,
        }


_RSS = re.compile(r"^process_resident_memory_bytes(?:\{[^}]*\})?\s+([0-9.eE+]+)", re.MULTILINE)


def resident_memory_mb(url: str) -> float | None:
    """process_resident_memory_bytes from a Prometheus /metrics page, in MB (None if absent)."""
    try:
        response = httpx.get(url, timeout=5.0)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    found = _RSS.search(response.text)
    return float(found.group(1)) / 1_000_000 if found else None


def saturation(averages: dict[str, float], processes: dict[str, int], cores: int) -> tuple[str, str]:
    """The component that ran out of CPU first in a window: (name, why) — or ("none", why)."""
    components = {k: v for k, v in averages.items() if k != "machine"}
    if not components:
        return "unknown", "no CPU samples"
    ranked = sorted(
        components.items(),
        key=lambda kv: kv[1] / (100.0 * min(max(processes.get(kv[0], 1), 1), cores)),
        reverse=True,
    )
    name, cpu = ranked[0]
    usable = 100.0 * min(max(processes.get(name, 1), 1), cores)
    machine = averages.get("machine", 0.0)
    if cpu >= SATURATED / 100.0 * usable:
        return name, f"{name} at {cpu:.0f} % CPU of {usable:.0f} % it can use"
    if machine >= SATURATED:
        others = max(0.0, machine * cores - sum(components.values()))
        if others > sum(components.values()):
            return "other processes", (
                f"the machine's {cores} cores at {machine:.0f} %, mostly other processes ({others:.0f} % of "
                f"a core; this run's largest share: {name} {cpu:.0f} %): not a figure of the stack"
            )
        return name, (
            f"the machine's {cores} cores at {machine:.0f} % (other processes: {others:.0f} % of a core); "
            f"the largest share of this run: {name} {cpu:.0f} %"
        )
    return "none", f"no component CPU-bound (largest: {name} {cpu:.0f} %, machine {machine:.0f} %)"
