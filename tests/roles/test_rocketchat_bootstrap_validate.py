"""rocketchat_bootstrap's input checks (tasks/validate.yml), run by ansible-playbook on this machine:
a placeholder copied from an example (vault.example.yml's "change-me") stops the play before any call to
Rocket.Chat, naming the variable and never printing its value."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from ops.ansible_env import json_env

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
ANSIBLE = str(Path(sys.executable).with_name("ansible-playbook"))
PLAY = """
- name: The role's input checks only
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Validate
      ansible.builtin.include_role:
        name: rocketchat_bootstrap
        tasks_from: validate.yml
"""


def _validate(tmp_path: Path, **overrides) -> subprocess.CompletedProcess:
    play = tmp_path / "play.yml"
    play.write_text(PLAY)
    extra = {
        "rocketchat_bootstrap_url": "https://chat.example.test",
        # Real-looking values made for this run (a literal would be a secret in the repository).
        "rocketchat_bootstrap_admin_password": secrets.token_urlsafe(18),
        "rocketchat_bootstrap_bot_password": secrets.token_urlsafe(18),
        **overrides,
    }
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(json.dumps(extra))
    env = {
        **json_env("json"),
        "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "collections"),
    }
    return subprocess.run(
        [ANSIBLE, "-i", "localhost,", str(play), "-e", f"@{vars_file}"],
        capture_output=True, text=True, timeout=300, env=env, cwd=ROOT, check=False,
    )  # fmt: skip


def _failure(result: subprocess.CompletedProcess) -> str:
    """The message of the task that failed (json callback)."""
    report = json.loads(result.stdout)
    for play in report["plays"]:
        for task in play["tasks"]:
            for host in task["hosts"].values():
                if host.get("failed"):
                    return host["msg"].strip()
    raise AssertionError(f"no task failed: {result.stdout[-1500:]}")


def test_real_secrets_pass(tmp_path):
    result = _validate(tmp_path)
    assert result.returncode == 0, result.stdout[-2000:]


@pytest.mark.parametrize("value", ["change-me", "CHANGE-ME", " changeme ", "password"])
def test_a_placeholder_smtp_password_is_refused_by_name_not_value(tmp_path, value):
    smtp = {"host": "smtp.example.test", "port": 587, "protocol": "smtp", "username": "rc", "password": value,
            "from_email": "no-reply@example.test"}  # fmt: skip
    result = _validate(tmp_path, rocketchat_bootstrap_smtp=smtp)
    assert result.returncode != 0
    # The whole message: the variable's name and the advice, nothing of the value.
    assert _failure(result) == (
        'A placeholder from an example (such as "change-me") is still the value of'
        " rocketchat_bootstrap_smtp.password: set real values in your vault (ansible-vault edit …/vault.yml)"
    )


def test_a_placeholder_admin_password_is_refused(tmp_path):
    result = _validate(tmp_path, rocketchat_bootstrap_admin_password="changeme")
    assert result.returncode != 0
    assert "is still the value of rocketchat_bootstrap_admin_password:" in _failure(result)
