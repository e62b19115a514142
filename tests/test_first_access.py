"""What `make up` says at the end (playbooks/summary.yml, run here as ansible-playbook runs it in site.yml):
where the stack answers, the CA to trust, where the admin password is kept, the admins' room, how to get
in from a terminal, and never a secret. tests/infra/test_first_access.py checks the same facts against a
deployed stack."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.integration

INVENTORY = """\
all:
  children:
    proxy: {hosts: {localhost: {}}}
    rocketchat: {hosts: {localhost: {}}}
  vars:
    ansible_connection: local
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
"""


def run_summary(tmp_path: Path, offline: bool, **extra: str) -> str:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(INVENTORY, encoding="utf-8")
    variables = {
        "photomatrix_domain": "chat.example.test",
        "photomatrix_root": str(tmp_path / "srv"),
        "container_images_offline": str(offline).lower(),
        **extra,
    }
    argv = [str(ROOT / ".venv/bin/ansible-playbook"), "-i", str(inventory), "playbooks/summary.yml"]
    for key, value in variables.items():
        argv += ["-e", f"{key}={value}"]
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture
def admin_secret(tmp_path: Path) -> str:
    secret = "pw-" + secrets.token_urlsafe(16)
    secret_dir = tmp_path / "srv" / "secrets" / "rocketchat"
    secret_dir.mkdir(parents=True)
    (secret_dir / "admin_password").write_text(secret, encoding="utf-8")
    return secret


@pytest.mark.parametrize("offline", [True, False], ids=["offline", "registry"])
def test_summary_says_how_to_get_in_without_a_secret(
    tmp_path: Path, admin_secret: str, offline: bool
) -> None:
    out = run_summary(tmp_path, offline)
    srv = tmp_path / "srv"
    assert "Stack deployed: https://chat.example.test/" in out
    assert f"CA certificate for clients: {srv}/pki/ca.crt" in out
    assert "workspace admin: admin" in out
    assert f"admin password file: {srv}/secrets/rocketchat/admin_password on localhost" in out
    assert "admins' room: admins" in out
    assert "the bot: @erp-bot" in out
    assert re.search(r"make user NAME=\S+", out)
    assert re.search(r"make chat NAME=\S+", out)
    assert admin_secret not in out
    if offline:
        assert "web UI: none offline" in out
        assert "!!! OFFLINE SUBSTITUTION !!!" in out
    else:
        assert "web UI: https://chat.example.test/ (log in as admin)" in out
        assert "OFFLINE SUBSTITUTION" not in out


def test_the_substitution_warning_says_what_stood_in_and_where_the_images_came_from(
    tmp_path: Path, admin_secret: str
) -> None:
    local = run_summary(tmp_path, True)
    assert "MongoDB was NOT deployed" in local
    assert "built on this host from Debian packages" in local
    # A lab (inventory/lab): the images come from its registry; MongoDB's role stopped before mongod.
    lab = run_summary(tmp_path, True, container_registry="10.77.0.5:5000", mongodb_run_mongod="false")
    assert "!!! OFFLINE SUBSTITUTION !!!" in lab
    assert "pulled from the registry 10.77.0.5:5000 by reference" in lab
    assert "built on this host" not in lab
    assert "never production" in lab


def test_summary_follows_the_inventory(tmp_path: Path, admin_secret: str) -> None:
    out = run_summary(
        tmp_path,
        False,
        rocketchat_admin_username="root-admin",
        chatbot_admins_channel="hr-admins",
        rocketchat_bootstrap_bot_username="hr-bot",
        photomatrix_ca_file="/etc/ssl/our-ca.pem",
    )
    assert "workspace admin: root-admin" in out
    assert "admins' room: hr-admins" in out
    assert "the bot: @hr-bot" in out
    assert "CA certificate for clients: /etc/ssl/our-ca.pem" in out


def test_the_targets_the_summary_names_exist() -> None:
    for target in ("user", "chat", "verify", "down"):
        done = subprocess.run(
            ["make", "-n", "-C", str(ROOT), "-o", ".venv/.installed", target, "NAME=ivan.petrov"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr


def test_the_admin_course_points_at_the_summary_not_at_printed_credentials() -> None:
    course = (ROOT / "docs/training/admin-course.md").read_text(encoding="utf-8")
    assert "credentials printed" not in course
    assert "/srv/photomatrix/secrets/rocketchat/admin_password" in course
