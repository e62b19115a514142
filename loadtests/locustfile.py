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

from loadtests.journeys.activation import ActivatingEmployee
from loadtests.journeys.hr_admin import HrAdmin
from loadtests.journeys.registration import NewEmployee
from loadtests.journeys.status import Employee
from loadtests.shapes import SHAPES

__all__ = ["ActivatingEmployee", "Employee", "HrAdmin", "NewEmployee"]

# Exactly one shape class in this module's namespace: locust uses the one it finds.
_profile = os.environ.get("LOAD_PROFILE", "")
if _profile:
    if _profile not in SHAPES:
        raise SystemExit(f"unknown LOAD_PROFILE {_profile!r}: one of {', '.join(SHAPES)}")
    ProfileShape = type(f"{_profile.title()}Profile", (SHAPES[_profile],), {})
