"""roles/common's wait_healthy entry point (every service role's "wait until the container is healthy"),
run by ansible-playbook (local connection) against real containers on a network of their own:

- a healthy container: ok;
- a container ready before Docker's first check (its interval is long): ok at once, its health check run
  by the wait itself, so no wait lasts an interval longer than the service needs;
- a crash-looping one: fails early (long before its timeout) with one message naming the crash loop and
  its log line, never the inspect dump nor its environment;
- an unhealthy one: fails at the end of its wait with the last health check's output;
- check mode: skipped where the caller's task would (re)create the container, or it does not exist yet.

The image is built here from scratch with the host's static busybox (busybox-static, in CI's packages).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess  # nosec B404
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess  # nosec B404

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BUSYBOX = Path("/bin/busybox")
# Two to four playbook runs and a timeout of its own each: minutes on a loaded machine.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

PLAYBOOK = """\
- name: Wait for a container (roles/common, wait_healthy)
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Wait until it is healthy
      ansible.builtin.include_role:
        name: common
        tasks_from: wait_healthy
      vars:
        common_container: "{{ container }}"
        common_timeout: "{{ timeout }}"
        common_recreated: "{{ recreated | default(false) }}"
"""
# In each container's environment: the failure message must never show it.
SECRET = f"pmcommon-secret-{secrets.token_hex(8)}"
CRASH_LINE = "pmcommon: cannot read /etc/pmcommon.conf: No such file or directory"


def _docker(*args: str, timeout: float = 120) -> CompletedProcess[str]:
    return subprocess.run(  # nosec B603
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@dataclass
class Lab:
    tag: str
    image: str
    network: str
    work: Path
    containers: list[str]

    def run(self, name: str, health: str, command: str, *extra: str, interval: str = "1s") -> str:
        """A container `pmcommon-<tag>-<name>` whose health check is the shell command `health`."""
        full = f"pmcommon-{self.tag}-{name}"
        self.containers.append(full)
        done = _docker(
            "run", "--detach", "--name", full, "--network", self.network,
            "--env", f"PMCOMMON_SECRET={SECRET}", "--health-cmd", health,
            "--health-interval", interval, "--health-retries", "1", "--health-timeout", "5s",
            *extra, self.image, "sh", "-c", command,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return full

    def wait(self, container: str, timeout: int, *args: str) -> tuple[CompletedProcess[str], float]:
        """ansible-playbook running the entry point on `container`; its result and how long it took."""
        playbook = self.work / "wait.yml"
        playbook.write_text(PLAYBOOK, encoding="utf-8")
        env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
        argv = [
            str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
            "-e", f"ansible_python_interpreter={sys.executable}",
            "-e", f"container={container}", "-e", f"timeout={timeout}", *args, str(playbook),
        ]  # fmt: skip
        start = time.monotonic()
        done = subprocess.run(  # nosec B603
            argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=540, check=False
        )
        return done, time.monotonic() - start


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if shutil.which("docker") is None or _docker("info", timeout=60).returncode != 0:
        pytest.skip("needs a running Docker Engine")
    if not BUSYBOX.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("busybox is not installed (.ci/apt-packages.txt lists busybox-static)")
        pytest.skip("needs a static busybox (apt-get install busybox-static)")
    work = tmp_path_factory.mktemp("pmcommon")
    tag = secrets.token_hex(4)
    context = work / "image"
    context.mkdir()
    shutil.copy(BUSYBOX, context / "busybox")
    # /bin/sh for Docker's CMD-SHELL health checks and `sh -c`; every other applet through busybox.
    (context / "Dockerfile").write_text(
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY busybox /bin/sh\nENTRYPOINT []\n", encoding="utf-8"
    )
    lab = Lab(tag=tag, image=f"pmcommon-busybox:{tag}", network=f"pmcommon-{tag}", work=work, containers=[])
    built = _docker("build", "--quiet", "--tag", lab.image, str(context), timeout=300)
    assert built.returncode == 0, built.stderr
    # A network of its own: the default bridge may be absent on a machine whose engine other tests share.
    created = _docker("network", "create", lab.network)
    assert created.returncode == 0, created.stderr
    try:
        yield lab
    finally:
        for name in lab.containers:
            _docker("rm", "--force", name)
        _docker("network", "rm", lab.network)
        _docker("image", "rm", "--force", lab.image)


def test_a_healthy_container_passes(lab: Lab) -> None:
    name = lab.run(
        "healthy",
        "busybox test -f /tmp/ready",
        "busybox mkdir -p /tmp && busybox touch /tmp/ready && exec busybox sleep 600",
    )
    done, _ = lab.wait(name, 60)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "failed=0" in done.stdout


def test_a_container_ready_before_dockers_first_check_passes_without_waiting_for_it(lab: Lab) -> None:
    name = lab.run(
        "slowcheck",
        "busybox test -f /tmp/ready",
        "busybox mkdir -p /tmp && busybox sleep 2 && busybox touch /tmp/ready && exec busybox sleep 600",
        interval="600s",
    )
    done, elapsed = lab.wait(name, 120)
    assert done.returncode == 0, done.stdout[-3000:]
    # Docker has not checked it yet (its first check is 600 s after the start): the wait ran the check.
    status = _docker("inspect", "--format", "{{.State.Health.Status}}", name).stdout.strip()
    assert status == "starting", status
    assert elapsed < 100, elapsed


def test_a_crash_loop_fails_early_saying_why(lab: Lab) -> None:
    name = lab.run(
        "crashloop",
        "echo probe-says-no; exit 1",
        f"echo '{CRASH_LINE}' >&2; busybox sleep 1; exit 3",
        "--restart",
        "always",
    )
    done, elapsed = lab.wait(name, 300)
    assert done.returncode != 0
    out = done.stdout
    assert f"{name} is not healthy: it crash-loops (Docker restarted it" in out, out[-3000:]
    assert CRASH_LINE in out
    assert f"look further: docker logs {name}" in out
    # Long before the 300 s timeout: the loop is seen at its first restart.
    assert elapsed < 150, elapsed
    # One message, not the inspect dump (whose environment would carry the secret).
    assert SECRET not in out + done.stderr
    for dump_key in ("PMCOMMON_SECRET", '"Config"', "HostConfig", "NetworkSettings", "Unknown error"):
        assert dump_key not in out, dump_key


def test_an_unhealthy_container_fails_with_its_last_health_check(lab: Lab) -> None:
    name = lab.run(
        "unhealthy",
        "echo 'pmcommon-probe: upstream 10.9.9.9:5432 refused'; exit 1",
        "echo 'listening on :8000'; exec busybox sleep 600",
    )
    done, _ = lab.wait(name, 8)
    assert done.returncode != 0
    out = done.stdout
    assert f"{name} is not healthy: still unhealthy at the end of its 8 s wait." in out, out[-3000:]
    assert "state: running, health: unhealthy, restarts: 0" in out
    assert "last health check: exit 1, pmcommon-probe: upstream 10.9.9.9:5432 refused" in out
    assert "listening on :8000" in out
    assert SECRET not in out
    assert "PMCOMMON_SECRET" not in out


def test_check_mode_skips_what_the_caller_would_create(lab: Lab) -> None:
    """Nothing was (re)created in check mode: no wait on a container about to be replaced or not there yet."""
    name = lab.run("sick", "exit 1", "exec busybox sleep 600")
    done, _ = lab.wait(name, 8, "--check", "-e", "recreated=true")
    assert done.returncode == 0, done.stdout[-3000:]
    done, _ = lab.wait(f"pmcommon-{lab.tag}-not-created-yet", 8, "--check")
    assert done.returncode == 0, done.stdout[-3000:]
    # Outside check mode, a missing container is an error saying so.
    done, _ = lab.wait(f"pmcommon-{lab.tag}-not-created-yet", 8)
    assert done.returncode != 0
    assert "is not healthy: there is no such container." in done.stdout, done.stdout[-3000:]


def test_verify_judges_a_container_docker_has_not_checked_yet_by_its_own_check(lab: Lab) -> None:
    """tests/plugins/infra.py docker_health (make verify's reading of a container's health): Docker's first
    check is 600 s away, so Docker says "starting"; the container's own check, run now, decides."""
    from plugins.infra import docker_health

    ready = lab.run(
        "verifyready",
        "busybox test -f /tmp/ready",
        "busybox mkdir -p /tmp && busybox touch /tmp/ready && exec busybox sleep 600",
        interval="600s",
    )
    failing = lab.run("verifyfailing", "exit 1", "exec busybox sleep 600", interval="600s")
    start = time.monotonic()
    assert docker_health(ready, settle=30) == "healthy"
    assert time.monotonic() - start < 20
    assert docker_health(failing, settle=4) == "starting"
    status = _docker("inspect", "--format", "{{.State.Health.Status}}", ready).stdout.strip()
    assert status == "starting", status  # Docker's own verdict is untouched
