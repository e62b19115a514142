"""photomatrix-container-metrics (roles/monitoring/files): the exposition text it renders (unit), and the
real thing against Docker: a container of its own crash-looping and another failing its health check
show up as restarts and unhealthy, exactly what ContainerRestartLoop and ContainerUnhealthy read."""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from plugins.images import tiny_image

from ops.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "roles" / "monitoring" / "files" / "photomatrix-container-metrics.py"

container_metrics = load_script(SCRIPT, "container_metrics")


def samples(text: str) -> dict[tuple[str, str], float]:
    """{(metric, container): value} of the exposition text ('' for series without a container)."""
    found = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r'([a-z_]+)(?:\{container="((?:[^"\\]|\\.)*)"\})? (\S+)', line)
        assert match, f"not an exposition line: {line!r}"
        found[(match[1], match[2] or "")] = float(match[3])
    return found


@pytest.mark.unit
def test_render_counts_restarts_running_and_health() -> None:
    text = container_metrics.render(
        [
            {
                "Name": "/photomatrix-erp-api",
                "RestartCount": 4,
                "State": {"Running": True, "Health": {"Status": "unhealthy"}},
            },
            {
                "Name": "/photomatrix-proxy",
                "RestartCount": 0,
                "State": {"Running": True, "Health": {"Status": "healthy"}},
            },
            {"Name": '/odd"name\\', "RestartCount": 1, "State": {"Running": False}},
        ],
        now=1700000000.0,
    )
    found = samples(text)
    assert found[("photomatrix_container_restarts_total", "photomatrix-erp-api")] == 4
    assert found[("photomatrix_container_healthy", "photomatrix-erp-api")] == 0
    assert found[("photomatrix_container_healthy", "photomatrix-proxy")] == 1
    assert found[("photomatrix_container_running", 'odd\\"name\\\\')] == 0
    # No health check: no health series (an absent check is not a failing one).
    assert ("photomatrix_container_healthy", 'odd\\"name\\\\') not in found
    assert found[("photomatrix_container_metrics_timestamp_seconds", "")] == 1700000000.0
    assert "# TYPE photomatrix_container_restarts_total counter" in text


@pytest.mark.unit
def test_bad_arguments_are_refused_with_a_clear_error(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--output", str(tmp_path / "x.prom"), "--times", "0"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert out.returncode == 2
    assert "--times must be at least 1" in out.stderr
    assert not (tmp_path / "x.prom").exists()


def test_a_removed_directory_is_not_created_again(tmp_path: Path) -> None:
    """A run still under way when `make down PURGE=true` removed the stack's root writes nothing."""
    output = tmp_path / "gone" / "containers.prom"
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--output", str(output), "--prefix", "pmx-none-"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "is gone: nothing written" in run.stderr
    assert not output.parent.exists()


@pytest.mark.integration
def test_a_crash_loop_and_a_failing_health_check_show_in_the_metrics(tmp_path: Path) -> None:
    if not shutil.which("docker"):
        pytest.fail("docker is needed (the CI machine has it)")
    tag = f"pmxmetrics-{secrets.token_hex(4)}"
    tiny_image(tmp_path, f"{tag}:test")
    looping, sick = f"{tag}-loop", f"{tag}-sick"
    base = ["docker", "run", "--detach", "--network", "none", "--memory", "32m"]
    try:
        subprocess.run([*base, "--name", looping, "--restart", "always", f"{tag}:test", "/bin/false"],
                       check=True, capture_output=True, timeout=60)  # fmt: skip
        subprocess.run([*base, "--name", sick, "--health-cmd", "/bin/false", "--health-interval", "1s",
                        "--health-retries", "1", f"{tag}:test", "/bin/sleep", "120"],
                       check=True, capture_output=True, timeout=60)  # fmt: skip
        output = tmp_path / "textfile" / "containers.prom"
        output.parent.mkdir()
        deadline = time.monotonic() + 60
        while True:
            run = subprocess.run(
                [sys.executable, str(SCRIPT), "--output", str(output), "--prefix", tag],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert run.returncode == 0, run.stderr
            found = samples(output.read_text())
            restarts = found.get(("photomatrix_container_restarts_total", looping), 0)
            health = found.get(("photomatrix_container_healthy", sick))
            if restarts >= 3 and health == 0:
                break
            assert time.monotonic() < deadline, f"restarts {restarts}, health {health}: {output.read_text()}"
            time.sleep(2)
        assert found[("photomatrix_container_running", sick)] == 1
        # Only the prefix's containers: the stack's, if any, are not in this file.
        assert {name for _metric, name in found if name} == {looping, sick}
        assert output.stat().st_mode & 0o777 == 0o644
        assert not list(output.parent.glob(".tmp-*")), "a temporary file was left behind"
    finally:
        subprocess.run(
            ["docker", "rm", "--force", looping, sick], capture_output=True, timeout=60, check=False
        )
        subprocess.run(["docker", "rmi", f"{tag}:test"], capture_output=True, timeout=60, check=False)
