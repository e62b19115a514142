"""After a restore the tool starts the stopped containers again: every one of them, in the stack's order,
then waits for each. A container that does not become healthy (the bot when its Redis is still stopped)
or cannot start never leaves the ones after it stopped; the error names each one that failed. One that
Docker has not checked yet (its first check is one interval after the start) is ready as soon as its
check passes when the tool runs it."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from plugins.backup import load_backup_tool
from plugins.images import tiny_image

pytestmark = pytest.mark.integration


tool = load_backup_tool("photomatrix_backup_start")


def running(name: str) -> bool:
    out = subprocess.run(
        ["docker", "inspect", "--format", "{{.State.Running}}", name],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    return out.stdout.strip() == "true"


def test_one_unhealthy_or_missing_container_does_not_keep_the_rest_stopped(tmp_path: Path) -> None:
    if not shutil.which("docker"):
        pytest.fail("docker is needed (the CI machine has it)")
    tag = f"pmxrestore-{secrets.token_hex(4)}"
    tiny_image(tmp_path, f"{tag}:test")
    sick, missing, after = f"{tag}-sick", f"{tag}-missing", f"{tag}-after"
    create = ["docker", "create", "--network", "none", "--memory", "32m"]
    try:
        # First in the order: never healthy (as the bot is while its Redis is still stopped).
        subprocess.run([*create, "--name", sick, "--health-cmd", "/bin/false", "--health-interval", "1s",
                        "--health-retries", "1", f"{tag}:test", "/bin/sleep", "300"],
                       check=True, capture_output=True, timeout=60)  # fmt: skip
        subprocess.run([*create, "--name", after, f"{tag}:test", "/bin/sleep", "300"],
                       check=True, capture_output=True, timeout=60)  # fmt: skip
        config = tool.Config(
            backup_dir=tmp_path, key_file=tmp_path / "key", root=tmp_path, file_paths=[], containers={},
            components=[], bot_state_path="", start_order=[], health_timeout=8,
        )  # fmt: skip
        with pytest.raises(tool.BackupError) as failed:
            tool.start_all(config, [sick, missing, after])
        message = str(failed.value)
        assert f"{sick} is not healthy 8 s after the restore (unhealthy)" in message
        assert f"docker start {missing}" in message
        assert after not in message
        # Started although the two before it failed.
        assert running(after)
        assert running(sick)
    finally:
        subprocess.run(["docker", "rm", "--force", sick, after], capture_output=True, timeout=60, check=False)
        subprocess.run(["docker", "rmi", f"{tag}:test"], capture_output=True, timeout=60, check=False)


def test_a_container_docker_has_not_checked_yet_is_ready_when_its_check_passes(tmp_path: Path) -> None:
    if not shutil.which("docker"):
        pytest.fail("docker is needed (the CI machine has it)")
    tag = f"pmxrestore-{secrets.token_hex(4)}"
    name = f"{tag}-slowcheck"
    tiny_image(tmp_path, f"{tag}:test", ("/bin/sh", "/bin/true", "/bin/sleep"))  # sh: a CMD-SHELL check
    try:
        subprocess.run(["docker", "create", "--network", "none", "--memory", "32m", "--name", name,
                        "--health-cmd", "/bin/true", "--health-interval", "600s",
                        f"{tag}:test", "/bin/sleep", "300"],
                       check=True, capture_output=True, timeout=60)  # fmt: skip
        config = tool.Config(
            backup_dir=tmp_path, key_file=tmp_path / "key", root=tmp_path, file_paths=[], containers={},
            components=[], bot_state_path="", start_order=[], health_timeout=120,
        )  # fmt: skip
        started = time.monotonic()
        tool.start_all(config, [name])
        assert time.monotonic() - started < 60
        status = subprocess.run(
            ["docker", "inspect", "--format", "{{.State.Health.Status}}", name],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout.strip()  # fmt: skip
        assert status == "starting", status  # Docker's own first check is 600 s away: the tool ran it
    finally:
        subprocess.run(["docker", "rm", "--force", name], capture_output=True, timeout=60, check=False)
        subprocess.run(["docker", "rmi", f"{tag}:test"], capture_output=True, timeout=60, check=False)
