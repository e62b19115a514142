"""roles/tls_proxy restarts nginx when it started before its network holder (a holder restarted on its
own is a new namespace, tasks/container.yml). Docker's StartedAt drops the fraction's trailing zeros, so
the condition pads the fraction before comparing: evaluated here by Ansible, exactly as the task writes
it (its `when` and `vars`), on start times within one second and across seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TASK = "Restart nginx left in an earlier namespace of its holder"

# (nginx's StartedAt, the holder's StartedAt, whether nginx started first and must restart)
CASES = [
    ("2026-12-04T20:32:11.50001Z", "2026-12-04T20:32:11.5Z", False),
    ("2026-12-04T20:32:11.5Z", "2026-12-04T20:32:11.50001Z", True),
    ("2026-12-04T20:32:10.999999999Z", "2026-12-04T20:32:11Z", True),
    ("2026-12-04T20:32:12Z", "2026-12-04T20:32:11.999999999Z", False),
    ("2026-12-04T20:32:11.123Z", "2026-12-04T20:32:11.123Z", False),
    ("2026-12-04T20:32:09.9Z", "2026-12-04T20:32:10.1Z", True),
]


def restart_condition() -> tuple[str, dict]:
    tasks = yaml.safe_load((ROOT / "roles/tls_proxy/tasks/container.yml").read_text())
    task = next(t for t in tasks if t.get("name") == TASK)
    (condition,) = [c for c in task["when"] if "StartedAt" in c]
    return condition, task["vars"]


def test_nginx_started_before_its_holder_is_told_apart_within_a_second(tmp_path: Path) -> None:
    condition, task_vars = restart_condition()
    collect = "{{ verdicts | default([]) + [" + condition + "] }}"
    playbook = [
        {
            "name": "Evaluate the restart condition",
            "hosts": "localhost",
            "gather_facts": False,
            "vars": {**task_vars, "cases": [list(case[:2]) for case in CASES]},
            "tasks": [
                {
                    "name": "Compare",
                    "vars": {
                        "tls_proxy_found": {"container": {"State": {"StartedAt": "{{ item[0] }}"}}},
                        "tls_proxy_net_found": {"container": {"State": {"StartedAt": "{{ item[1] }}"}}},
                    },
                    "ansible.builtin.set_fact": {"verdicts": collect},
                    "loop": "{{ cases }}",
                },
                {"name": "Show", "ansible.builtin.debug": {"msg": "VERDICTS={{ verdicts | to_json }}"}},
            ],
        }
    ]
    path = tmp_path / "play.yml"
    path.write_text(yaml.safe_dump(playbook, sort_keys=False))
    run = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(path)],
        cwd=ROOT,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
             "ANSIBLE_STDOUT_CALLBACK": "default", "ANSIBLE_CALLBACK_RESULT_FORMAT": "json"},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    line = next(line for line in run.stdout.splitlines() if "VERDICTS=" in line)
    verdicts = json.loads(line.split("VERDICTS=", 1)[1].rstrip('"').replace('\\"', '"'))
    assert [bool(v) for v in verdicts] == [case[2] for case in CASES], list(zip(CASES, verdicts, strict=True))
