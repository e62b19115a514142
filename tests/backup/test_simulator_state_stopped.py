"""The Rocket.Chat part of a backup where the simulator stands in: its state file, read from the running
container, and from a stopped one too. `make rollback` stops Rocket.Chat before it restores the database a
newer release migrated, and the restore's safety backup reads the state of that stopped container
(the first lab run of the rollback failed there: `docker exec` needs a running container)."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
from plugins.backup import load_backup_tool
from plugins.images import tiny_image

pytestmark = pytest.mark.integration

tool = load_backup_tool("photomatrix_backup_sim_state")
STATE = "/var/lib/rocketchat-sim/state.json"


def _docker(*args: str) -> None:
    subprocess.run(["docker", *args], check=True, capture_output=True, timeout=120)


def test_the_simulator_state_is_backed_up_stopped_and_running(tmp_path: Path) -> None:
    if not shutil.which("docker"):
        pytest.fail("docker is needed (the CI machine has it)")
    tag = f"pmxsimstate-{secrets.token_hex(4)}"
    name, volume = f"{tag}-rc", f"{tag}-data"
    tiny_image(tmp_path, f"{tag}:test", ("/bin/sleep", "/bin/cat"))
    state = {"format": 1, "users": [{"_id": "u1"}], "migrations": {"_id": "control", "version": 331}}
    (tmp_path / "state.json").write_text(json.dumps(state))
    config = tool.Config(
        backup_dir=tmp_path, key_file=tmp_path / "key", root=tmp_path, file_paths=[],
        containers={"rocketchat": name, "mongodb": f"{tag}-no-mongodb"}, components=["rocketchat"],
        bot_state_path="", start_order=[],
    )  # fmt: skip
    try:
        _docker("create", "--name", name, "--network", "none", "--env", f"SIM_STATE_FILE={STATE}",
                "--mount", f"type=volume,source={volume},target=/var/lib/rocketchat-sim",
                f"{tag}:test", "/bin/sleep", "300")  # fmt: skip
        _docker("cp", str(tmp_path / "state.json"), f"{name}:{STATE}")
        for running in (False, True):
            if running:
                _docker("start", name)
            staging = tmp_path / f"staging-{running}"
            staging.mkdir()
            parts = tool.dump_rocketchat(config, staging)
            assert [p.kind for p in parts] == ["simulator-state"]
            assert json.loads((staging / parts[0].file).read_text()) == state, f"running={running}"
    finally:
        subprocess.run(["docker", "rm", "--force", name], capture_output=True, timeout=60, check=False)
        subprocess.run(["docker", "volume", "rm", volume], capture_output=True, timeout=60, check=False)
        subprocess.run(["docker", "rmi", f"{tag}:test"], capture_output=True, timeout=60, check=False)
