"""Load profiles as locust LoadTestShape classes: smoke, baseline, stress, soak.

Numbers come from config.yaml (`profiles`); the runner may override them with LOAD_USERS,
LOAD_DURATION, LOAD_START_USERS, LOAD_STEP_USERS, LOAD_STEP_SECONDS, LOAD_MAX_USERS.

The stress shape ramps in steps and judges each step on its own against the stress SLOs (from the
statistics of that step only); the first step that breaks ends the ramp. Every step is written to
LOAD_STEPS_FILE (JSON) as it ends, so the runner and `make capacity` can say where it broke.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from locust import LoadTestShape

from loadtests.settings import profile_settings
from loadtests.slo import judge_step, load_slo


class SteadyShape(LoadTestShape):
    """Ramp to `users` at `spawn_rate`, hold until `duration` seconds have passed."""

    profile = "baseline"

    def __init__(self) -> None:
        super().__init__()
        settings = profile_settings(self.profile)
        self.users = int(settings.get("users", 10))
        self.spawn_rate = float(settings.get("spawn_rate", 2))
        self.duration = int(settings.get("duration", 60))

    def tick(self) -> tuple[int, float] | None:
        if self.get_run_time() >= self.duration:
            return None
        return self.users, self.spawn_rate


class SmokeShape(SteadyShape):
    profile = "smoke"


class BaselineShape(SteadyShape):
    profile = "baseline"


class SoakShape(SteadyShape):
    profile = "soak"


def snapshot(stats: Any) -> dict[str, tuple[int, int, dict[int, int]]]:
    return {
        entry.name: (entry.num_requests, entry.num_failures, dict(entry.response_times))
        for entry in stats.entries.values()
    }


class StressShape(LoadTestShape):
    """Steps of `step_users` more people every `step_seconds`, until a step breaks an SLO."""

    def __init__(self) -> None:
        super().__init__()
        settings = profile_settings("stress")
        self.start_users = int(settings.get("start_users", 10))
        self.step_users = int(settings.get("step_users", 10))
        self.step_seconds = int(settings.get("step_seconds", 60))
        self.max_users = int(settings.get("max_users", 300))
        self.spawn_rate = float(settings.get("spawn_rate", 5))
        self.slo = load_slo().get("stress", {})
        self.steps_file = Path(os.environ["LOAD_STEPS_FILE"]) if os.environ.get("LOAD_STEPS_FILE") else None
        self.steps: list[dict[str, Any]] = []
        self.step = 0
        self.step_started = 0.0
        self.before: dict[str, tuple[int, int, dict[int, int]]] = {}
        self.stopped = False
        self.step_started_wall = 0.0

    def reset_time(self) -> None:
        super().reset_time()
        self.step, self.step_started, self.before, self.steps, self.stopped = 0, 0.0, {}, [], False
        self.step_started_wall = time.time()

    def users_at(self, step: int) -> int:
        return min(self.max_users, self.start_users + step * self.step_users)

    def tick(self) -> tuple[int, float] | None:
        if self.stopped:
            return None
        run_time = self.get_run_time()
        if run_time - self.step_started >= self.step_seconds:
            self._close_step(run_time)
            if self.stopped:
                return None
        return self.users_at(self.step), self.spawn_rate

    def _close_step(self, run_time: float) -> None:
        after = snapshot(self.runner.stats) if self.runner is not None else {}
        verdict = judge_step(self.before, after, self.slo)
        record = {
            "step": self.step,
            "users": self.users_at(self.step),
            "running_users": self.runner.user_count if self.runner is not None else 0,
            "started": self.step_started_wall or time.time() - run_time,
            "ended": time.time(),
            **verdict,
            "ok": not verdict["breaches"],
        }
        self.steps.append(record)
        if self.steps_file is not None:
            self.steps_file.write_text(json.dumps(self.steps, indent=1), encoding="utf-8")
        self.before = after
        at_max = self.users_at(self.step) >= self.max_users
        if verdict["breaches"] or at_max:
            self.stopped = True
            return
        self.step += 1
        self.step_started = run_time
        self.step_started_wall = time.time()


SHAPES: dict[str, type[LoadTestShape]] = {
    "smoke": SmokeShape,
    "baseline": BaselineShape,
    "stress": StressShape,
    "soak": SoakShape,
}
