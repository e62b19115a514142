"""What lab.cycle hands to the lab host: the second inventory source that makes its `make up` pull the
project's images from the lab registry instead of building them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lab.cycle import SINGLE_INVENTORY, lab_vars
from lab.topology import load

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_the_lab_vars_make_inventory_local_pull_from_the_lab_registry(tmp_path: Path) -> None:
    lab = load(SINGLE_INVENTORY)
    source = tmp_path / "inventory.yml"
    source.write_text(lab_vars(lab))
    out = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-inventory")), "-i", "inventory/local", "-i", str(source),
         "--host", "localhost"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    hostvars = json.loads(out)
    assert hostvars["container_registry"] == lab.registry == "10.76.0.5:5000"
    assert hostvars["container_images_build"] is False
    # Everything else is inventory/local's, as a new user has it.
    assert hostvars["photomatrix_environment"] == "local"
    assert hostvars["ansible_connection"] == "local"
