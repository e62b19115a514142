"""The mongodb role's mongosh calls: no password on a command line (`ps` on the host and in the container
shows every argument of `docker exec` and of mongosh), in a URI or in a script's text. mongosh reads the
root password from the file mounted in the member (mongodb_mongosh_auth); the application password, which
no file in the member holds, reaches it through the environment of `docker exec -e NAME`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

TASKS = Path(__file__).resolve().parents[2] / "roles" / "mongodb" / "tasks"


def mongosh_calls() -> list[tuple[str, dict]]:
    calls = []
    for path in sorted(TASKS.glob("*.yml")):
        for task in yaml.safe_load(path.read_text()) or []:
            for inner in [task, *task.get("block", []), *task.get("rescue", [])]:
                command = inner.get("ansible.builtin.command")
                if command and "mongosh" in json.dumps(command):
                    calls.append((f"{path.name}: {inner.get('name')}", inner))
    return calls


CALLS = mongosh_calls()


def test_the_role_has_mongosh_calls_to_check() -> None:
    names = " ".join(name for name, _ in CALLS)
    for expected in ("replica_set.yml", "tls_reload.yml", "member_state.yml"):
        assert expected in names, names


@pytest.mark.parametrize(("name", "task"), CALLS, ids=[name for name, _ in CALLS])
def test_no_password_in_a_mongosh_argument(name: str, task: dict) -> None:
    argv = json.dumps(task["ansible.builtin.command"])
    leaks = ("$(cat", "_password }}", "_password|", "mongodb_root_password", "mongodb_app_password")
    for leak in (*leaks, '"-p"', " -p ", "--password", "root_password)@"):
        assert leak not in argv, f"{name}: {leak!r} in {argv[:300]}"
    assert '"sh", "-c"' not in argv.replace("\n", " "), f"{name}: a shell line, not an argument vector"


def test_the_application_password_goes_through_the_environment_only() -> None:
    creating = [task for name, task in CALLS if "createUser" in json.dumps(task)]
    assert len(creating) == 1
    task = creating[0]
    assert task["environment"] == {"MONGODB_APP_PASSWORD": "{{ mongodb_app_password }}"}
    argv = task["ansible.builtin.command"]["argv"]
    assert argv[:4] == ["docker", "exec", "-e", "MONGODB_APP_PASSWORD"]  # the name only: no value
    assert "process.env.MONGODB_APP_PASSWORD" in argv[-1]
    assert task.get("no_log") is True
