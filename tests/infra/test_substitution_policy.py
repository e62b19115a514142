"""Only inventory/local may stand the simulator in for Rocket.Chat; staging and production refuse."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]
UNREACHABLE = "https://registry.invalid/v2/"


def decide_image_mode(inventory: str) -> subprocess.CompletedProcess[str]:
    """Run the container_images role's decision step for the first host of an inventory, on this machine."""
    return subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible")),
            "all",
            "-i",
            f"inventory/{inventory}",
            "--limit",
            "proxy[0]",
            "-c",
            "local",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            "-e",
            f"container_images_registry_probe_url={UNREACHABLE}",
            "-e",
            "container_images_probe_timeout=3",
            "-m",
            "ansible.builtin.include_role",
            "-a",
            "name=container_images tasks_from=mode.yml",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("inventory", ["staging", "production"])
def test_real_environments_refuse_to_substitute(inventory: str) -> None:
    run = decide_image_mode(inventory)
    assert run.returncode != 0
    assert "does not allow substitutes" in run.stdout + run.stderr


def test_local_inventory_substitutes_when_no_registry_answers() -> None:
    run = decide_image_mode("local")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
