"""A second run of site.yml changes nothing (`changed=0`) and is quick."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ops.ansible_env import json_env

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(900)
def test_second_site_run_reports_no_change() -> None:
    if os.environ.get("PHOTOMATRIX_IDEMPOTENCE") != "1":
        pytest.skip("runs through `make test-infra` after `make up` (PHOTOMATRIX_IDEMPOTENCE=1)")
    env = {
        **json_env("ansible.posix.json"),
        "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
    }
    started = time.monotonic()
    run = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "playbooks/site.yml"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert run.returncode == 0, run.stderr[-3000:] + run.stdout[-3000:]
    report = json.loads(run.stdout)
    changed = [
        f"{play['play']['name']} / {task['task']['name']}"
        for play in report["plays"]
        for task in play["tasks"]
        if any(result.get("changed") for result in task["hosts"].values())
    ]
    print(f"second site.yml run: {elapsed:.1f} s, changed tasks: {changed}")
    assert report["stats"], "no hosts in the report"
    assert all(stats["changed"] == 0 for stats in report["stats"].values()), changed
    assert all(stats["failures"] == 0 for stats in report["stats"].values())
