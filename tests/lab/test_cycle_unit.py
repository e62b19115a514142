"""What lab.cycle hands to the lab host: the second inventory source that makes its `make up` pull the
project's images from the lab registry instead of building them, and the guard that keeps
`make deploy-cycle` (what the cycle runs in the host) off every other machine."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

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
    # Node exporter reports the host's / (an overlay: the lab host is a container); its other defaults hold.
    excluded = hostvars["monitoring_node_exporter_fs_types_exclude"]
    default = yaml.safe_load((ROOT / "roles/monitoring/defaults/main.yml").read_text())
    assert re.fullmatch(default["monitoring_node_exporter_fs_types_exclude"], "overlay")
    assert re.fullmatch(excluded, "overlay") is None
    assert excluded == default["monitoring_node_exporter_fs_types_exclude"].replace("|overlay|", "|")
    # Everything else is inventory/local's, as a new user has it.
    assert hostvars["photomatrix_environment"] == "local"
    assert hostvars["ansible_connection"] == "local"


@pytest.mark.parametrize("dry_run", [False, True], ids=["make", "make -n"])
def test_deploy_cycle_refuses_to_run_outside_a_lab_host(dry_run: bool) -> None:
    # `make -n` runs the recipe lines that name $(MAKE): the guard must be on that same line. MAKE and
    # BIN point nowhere, so nothing could deploy even if the guard let a line through.
    run = subprocess.run(
        ["make", "--no-print-directory", *(["-n"] if dry_run else []), "deploy-cycle", "MAKE=false",
         "BIN=/nonexistent", "LAB_HOST_MARKER=/nonexistent/inventory.yml"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 2, run.stdout + run.stderr
    assert "it runs only inside a lab host" in run.stderr
    assert "deploy-cycle: false" not in run.stdout


@pytest.mark.parametrize("changed", [False, True], ids=["untouched", "changed"])
def test_the_cycle_fails_when_this_machines_stack_changed(
    monkeypatch: pytest.MonkeyPatch, changed: bool
) -> None:
    """single() reads this machine's stack before and after its cycle (lab/cycle.py this_machines_stack,
    run against Docker in tests/lab/test_lab.py): a difference fails the cycle, naming both."""
    import contextlib

    from lab import cycle

    after = "/photomatrix-proxy id2" if changed else "/photomatrix-proxy id1"
    reads = iter(["/photomatrix-proxy id1", after])  # read twice: before and after, nothing more
    monkeypatch.setattr(cycle, "this_machines_stack", lambda: next(reads))
    monkeypatch.setattr(cycle.control, "lock", lambda lab: contextlib.nullcontext())
    monkeypatch.setattr(cycle, "_single", lambda *args: {"lab up": 1.0})
    if not changed:
        assert cycle.single("make deploy-cycle", "make down PURGE=true") == {"lab up": 1.0}
        return
    with pytest.raises(cycle.CycleError, match="this machine's own stack") as failed:
        cycle.single("make deploy-cycle", "make down PURGE=true")
    assert "before:\n/photomatrix-proxy id1" in str(failed.value)
    assert "after:\n/photomatrix-proxy id2" in str(failed.value)
