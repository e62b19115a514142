"""The cron daemon on a machine without an init system (roles/common: cron_daemon, cron_daemon_stop).

`make up` starts this machine's cron when none runs (its backup, metrics and ACME entries need one) and
records that it did; `make down` (playbooks/teardown.yml) stops it again once no /etc/cron.d/photomatrix-*
entry is left, so a machine that ran no cron before the stack is left without one (CI machines kept one
after every `make test-infra`). A cron that already ran is never stopped. Run for real in a container of
the project's Debian base with cron installed: its own PID namespace is the "machine"; Ansible reaches it
with the docker connection."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lab import images as lab_images

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RECORD = "/var/lib/photomatrix/cron-started"


def docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=check)


@pytest.fixture(scope="module")
def cron_image() -> str:
    tag = "photomatrix-test/cron-machine:role-test"
    dockerfile = (
        f"FROM {lab_images.base_image()}\n"
        "RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
        "--no-install-recommends cron procps && rm -rf /var/lib/apt/lists/*\n"
    )
    subprocess.run(
        ["docker", "build", "--quiet", "--network", "host", "-t", tag, "-"],
        input=dockerfile, capture_output=True, text=True, timeout=900, check=True,
    )  # fmt: skip
    return tag


@pytest.fixture
def machine(cron_image: str) -> Iterator[str]:
    """A fresh machine with no init system and no cron running."""
    name = f"pmcron-test-{secrets.token_hex(4)}"
    # An init that reaps (as a machine has), no network: Ansible comes in with docker exec.
    docker(
        "run", "-d", "--init", "--name", name, "--network", "none",
        "--entrypoint", "sleep", cron_image, "infinity",
    )  # fmt: skip
    try:
        yield name
    finally:
        docker("rm", "--force", name, check=False)


def run_entry(tmp: Path, machine: str, entry: str) -> subprocess.CompletedProcess[str]:
    inventory = tmp / "hosts.yml"
    inventory.write_text(
        yaml.safe_dump({"all": {"hosts": {machine: {
            "ansible_connection": "community.docker.docker", "ansible_python_interpreter": "/usr/bin/python3",
        }}}}),
        encoding="utf-8",
    )  # fmt: skip
    playbook = tmp / f"{entry}.yml"
    playbook.write_text(
        yaml.safe_dump([{
            "name": entry, "hosts": "all", "gather_facts": False,
            "tasks": [{"name": entry,
                       "ansible.builtin.include_role": {"name": "common", "tasks_from": entry}}],
        }]),
        encoding="utf-8",
    )  # fmt: skip
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    run = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), str(playbook)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    return run


def cron_runs(machine: str) -> bool:
    return docker("exec", machine, "pgrep", "--exact", "cron", check=False).returncode == 0


def recorded(machine: str) -> bool:
    return docker("exec", machine, "test", "-f", RECORD, check=False).returncode == 0


def changed(run: subprocess.CompletedProcess[str]) -> int:
    recap = run.stdout.split("PLAY RECAP")[-1]
    return int(recap.split("changed=")[1].split()[0])


def test_the_cron_the_roles_started_stops_once_no_entry_of_the_stack_is_left(
    machine: str, tmp_path: Path
) -> None:
    run_entry(tmp_path, machine, "cron_daemon")
    assert cron_runs(machine)
    assert recorded(machine)
    # A second deploy: cron runs, nothing changes, the record stays.
    assert changed(run_entry(tmp_path, machine, "cron_daemon")) == 0
    assert recorded(machine)
    # make down with an entry of the stack still there (another host's teardown order): cron stays.
    docker("exec", machine, "sh", "-c", "echo '# test' > /etc/cron.d/photomatrix-backup")
    run_entry(tmp_path, machine, "cron_daemon_stop")
    assert cron_runs(machine)
    assert recorded(machine)
    # No entry left: stopped, and forgotten.
    docker("exec", machine, "rm", "/etc/cron.d/photomatrix-backup")
    assert changed(run_entry(tmp_path, machine, "cron_daemon_stop")) >= 1
    assert not cron_runs(machine)
    assert not recorded(machine)
    # Again: nothing to do.
    assert changed(run_entry(tmp_path, machine, "cron_daemon_stop")) == 0


def test_a_cron_that_already_ran_is_never_stopped(machine: str, tmp_path: Path) -> None:
    docker("exec", machine, "/usr/sbin/cron")
    assert cron_runs(machine)
    assert changed(run_entry(tmp_path, machine, "cron_daemon")) == 0
    assert not recorded(machine)
    run_entry(tmp_path, machine, "cron_daemon_stop")
    assert cron_runs(machine)
    out = docker("exec", machine, "sh", "-c", f"ls {RECORD} 2>&1 || true").stdout
    assert "No such file" in out, json.dumps(out)
