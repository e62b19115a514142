"""The load mix: every journey in loadtests/journeys/ (weights and think times in config.yaml) and the
shape of the profile named by LOAD_PROFILE (smoke, baseline, stress, soak).

Normally started by `python -m loadtests run` (make load), which sets the LOAD_* environment; by hand:

    LOAD_PROFILE=smoke LOAD_RC_ADMIN_USER=… LOAD_RC_ADMIN_PASSWORD=… LOAD_BOT_USERNAME=erp-bot \\
      locust -f loadtests/locustfile.py --host https://chat.example.com --headless
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from locust import events
from locust.runners import MasterRunner, WorkerRunner

from loadtests.journeys.activation import ActivatingEmployee
from loadtests.journeys.hr_admin import HrAdmin
from loadtests.journeys.registration import NewEmployee
from loadtests.journeys.status import Employee
from loadtests.shapes import SHAPES

__all__ = ["ActivatingEmployee", "Employee", "HrAdmin", "NewEmployee"]


@events.init.add_listener
def _receive_run(environment, **_kwargs) -> None:
    """Workers take the run id (account prefix, sweep) and a distinct index from the master."""
    runner = environment.runner
    if isinstance(runner, WorkerRunner):

        def on_run(message, **_kw) -> None:
            os.environ["LOAD_RUN_ID"] = str(message.data["run_id"])
            os.environ["LOAD_WORKER_INDEX"] = str(runner.worker_index + 1)

        runner.register_message("load_run", on_run)


@events.test_start.add_listener
def _send_run(environment, **_kwargs) -> None:
    if isinstance(environment.runner, MasterRunner):
        environment.runner.send_message("load_run", {"run_id": os.environ.get("LOAD_RUN_ID", "manual")})


# Exactly one shape class in this module's namespace: locust uses the one it finds.
_profile = os.environ.get("LOAD_PROFILE", "")
if _profile:
    if _profile not in SHAPES:
        raise SystemExit(f"unknown LOAD_PROFILE {_profile!r}: one of {', '.join(SHAPES)}")
    ProfileShape = type(f"{_profile.title()}Profile", (SHAPES[_profile],), {})
