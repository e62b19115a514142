"""`make upgrade` / `make rollback` refuse before changing anything: the real playbooks against an
inventory of this machine that points at an empty root (no stack is touched)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def inventory(tmp_path: Path, **variables: str) -> Path:
    path = tmp_path / "hosts.yml"
    group = {"hosts": {"localhost": None}}
    data = {
        "all": {
            "children": {name: group for name in ("docker_hosts", "erp", "bots", "proxy", "monitoring")},
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                "photomatrix_root": str(tmp_path / "root"),
                **variables,
            },
        }
    }
    path.write_text(yaml.safe_dump(data))
    return path


def playbook(name: str, hosts: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(hosts), f"playbooks/{name}", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
        env={"PATH": f"{BIN}:/usr/bin:/bin", "ANSIBLE_NOCOLOR": "1", "HOME": str(hosts.parent)},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("rocketchat", "mongodb", "needs"),
    [("8.6.1", "6.0.10", "8.0 or 8.2"), ("8.0.3", "8.0.29", "8.2"), ("7.13.9", "8.2.1", "7.0 or 8.0")],
)
def test_upgrade_refuses_an_incompatible_pair_before_anything_else(
    tmp_path: Path, rocketchat: str, mongodb: str, needs: str
) -> None:
    hosts = inventory(tmp_path, rocketchat_release=rocketchat, mongodb_release=mongodb)
    out = playbook("upgrade.yml", hosts)
    assert out.returncode != 0
    minor = ".".join(mongodb.split(".")[:2])
    assert f"Rocket.Chat {rocketchat} does not run on MongoDB {minor} (it needs {needs}" in out.stdout, (
        out.stdout
    )
    # Stopped at the first check: no backup taken, no record written.
    assert "Take a backup" not in out.stdout
    assert not (tmp_path / "root" / "releases").exists()


def test_upgrade_accepts_the_pinned_pair(tmp_path: Path) -> None:
    """The releases the inventories pin (8.6.1 on 8.0.29) pass the table."""
    hosts = inventory(tmp_path, rocketchat_release="8.6.1", mongodb_release="8.0.29")
    run = playbook("upgrade.yml", hosts, "-e", "upgrade_min_free_mb=99999999")
    assert "Rocket.Chat 8.6.1 runs on MongoDB 8.0." in run.stdout, run.stdout[-3000:]
    # The next check is the free space: refused with what to do, still before any change.
    assert "below upgrade_min_free_mb (99999999): prune old images first" in run.stdout, run.stdout[-3000:]
    assert not (tmp_path / "root" / "releases").exists()


def test_rollback_refuses_without_a_record(tmp_path: Path) -> None:
    out = playbook("rollback.yml", inventory(tmp_path))
    assert out.returncode != 0
    assert "nothing to roll back to" in out.stdout, out.stdout[-3000:]


@pytest.mark.parametrize("name", ["upgrade.yml", "rollback.yml"])
def test_one_host_failing_before_the_rolling_plays_stops_every_host(name: str) -> None:
    """Ansible drops a failed host from the later plays and goes on with the others: in the lab, mongo1's
    backup failed and the upgrade rolled the ERP, the bot and the proxy all the same, without that verified
    backup. Every play before the first rolling one (serial) must stop all hosts on one host's failure."""
    plays = yaml.safe_load((ROOT / "playbooks" / name).read_text(encoding="utf-8"))
    first_rolling = next(i for i, play in enumerate(plays) if "serial" in play)
    assert first_rolling > 0
    for play in plays[:first_rolling]:
        assert play.get("any_errors_fatal") is True, play["name"]
    for play in plays[first_rolling:]:
        if "serial" in play:
            assert play.get("max_fail_percentage") == 0, play["name"]
