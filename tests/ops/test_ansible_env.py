"""An operator's own Ansible callbacks do not break the commands that parse Ansible's JSON output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ops.ansible_env import json_env

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def _debug(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("ansible")), "localhost", "-c", "local",
         "-m", "debug", "-a", "msg=hi"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_profile_tasks_in_the_environment_stays_out_of_the_json() -> None:
    operator = {**os.environ, "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks,ansible.posix.timer"}
    mixed = _debug({**operator, "ANSIBLE_STDOUT_CALLBACK": "json", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1"})
    with pytest.raises(json.JSONDecodeError):  # what the operator's callbacks did to the output
        json.loads(mixed.stdout)
    clean = _debug(json_env("json", base=operator))
    assert clean.returncode == 0, clean.stderr[-2000:]
    assert json.loads(clean.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]["msg"] == "hi"


def test_the_callback_lists_are_unset_not_emptied() -> None:
    env = json_env("ansible.posix.json", base={"ANSIBLE_CALLBACK_WHITELIST": "timer", "PATH": "/bin"}, X="1")
    assert env == {
        "PATH": "/bin",
        "X": "1",
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
    }
