"""roles/docker_engine leaves a host's running engine alone: the role run by ansible-playbook against a
throwaway dockerd this test starts on its own socket, data-root and exec-root (never the machine's engine).
Each dockerd runs in a network namespace of its own (`unshare --net`; the role's, because ansible-playbook
runs in one): started with `--bridge=none`, dockerd deletes any interface named docker0 it sees, and in
the machine's namespace that is the machine's engine's bridge (every later build or container on the
default bridge then fails: "could not find bridge docker0", seen in CI).

- an engine the role did not start: daemon.json untouched and the engine not restarted (a clear message
  says which keys it would merge and which flag does it); with docker_engine_manage_config=true the keys
  are merged, every other key kept, the old file backed up, and still no restart;
- a daemon.json that is not JSON is refused and left as it is;
- an engine the role started itself (recorded by PID): configured, and restarted when its configuration
  changes; the machine's own engine keeps running throughout. Second runs report changed=0.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# A network namespace of its own for each dockerd (unshare execs the program: the pid is dockerd's).
OWN_NETWORK = ["unshare", "--net"]
MACHINE_BRIDGE = Path("/sys/class/net/docker0")
# Each test starts dockerd and runs the role two to four times: minutes on a loaded machine.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

PLAYBOOK = """\
- name: Docker Engine (test)
  hosts: localhost
  gather_facts: true
  gather_subset: [min]
  roles:
    - role: docker_engine
"""


@dataclass
class Engine:
    dir: Path

    @property
    def socket(self) -> Path:
        return self.dir / "docker.sock"

    @property
    def config(self) -> Path:
        return self.dir / "daemon.json"

    @property
    def state(self) -> Path:
        return self.dir / "state.json"

    @property
    def role_pid_file(self) -> Path:
        return self.dir / "role-dockerd.pid"

    def dockerd_args(self) -> list[str]:
        d = self.dir
        return [
            f"--config-file={self.config}",
            f"--data-root={d / 'data'}",
            f"--exec-root={d / 'exec'}",
            f"--pidfile={d / 'docker.pid'}",
            f"--host=unix://{self.socket}",
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            "--storage-driver=vfs",
            f"--containerd-namespace={d.name}",
            f"--containerd-plugins-namespace={d.name}-plugins",
        ]

    def answers(self) -> bool:
        done = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            env={**os.environ, "DOCKER_HOST": f"unix://{self.socket}"},
            capture_output=True,
            timeout=30,
            check=False,
        )
        return done.returncode == 0

    def wait_answering(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.answers():
            assert time.monotonic() < deadline, (self.dir / "foreign.log").read_text(errors="replace")[-2000:]
            time.sleep(0.5)

    def role(self, **extra: object) -> subprocess.CompletedProcess[str]:
        return self.role_with_tags("", **extra)

    def role_with_tags(self, tags: str, **extra: object) -> subprocess.CompletedProcess[str]:
        playbook = self.dir / "play.yml"
        playbook.write_text(PLAYBOOK, encoding="utf-8")
        variables = {
            "docker_engine_config_file": str(self.config),
            "docker_engine_socket": str(self.socket),
            "docker_engine_state_file": str(self.state),
            "docker_engine_pid_file": str(self.role_pid_file),
            "docker_engine_log_file": str(self.dir / "role-dockerd.log"),
            "docker_engine_dockerd_args": self.dockerd_args(),
            "docker_engine_start_timeout": 60,
            # What the docker modules need is the machine's business here (the venv has it); the package
            # cache opened on each of the nine runs would be two fifths of every run's time.
            "docker_engine_module_packages": [],
            "ansible_python_interpreter": str(ROOT / ".venv/bin/python"),
            **extra,
        }
        env = {
            **os.environ,
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
            "ANSIBLE_NOCOLOR": "1",
        }
        return subprocess.run(
            [
                *OWN_NETWORK,  # the dockerd the role starts inherits it
                str(ROOT / ".venv/bin/ansible-playbook"),
                "-i",
                "localhost,",
                "-c",
                "local",
                str(playbook),
                "-e",
                json.dumps(variables),
                *(["--tags", tags] if tags else []),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )


def changed(out: str) -> int:
    match = re.search(r"changed=(\d+)", out)
    assert match, out
    return int(match.group(1))


def alive(pid: int) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/exe") == "/usr/sbin/dockerd"
    except OSError:
        return False


def stop(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)


@pytest.fixture
def engine() -> Iterator[Engine]:
    if os.geteuid() != 0 or not shutil.which("dockerd") or not shutil.which("start-stop-daemon"):
        pytest.skip("needs root, dockerd and start-stop-daemon (Debian docker.io)")
    bridge = MACHINE_BRIDGE.exists()
    # A short path: a unix socket path must stay under 108 bytes.
    directory = Path(tempfile.mkdtemp(prefix="pmde", dir="/tmp"))
    machine_engine = (
        Path("/var/run/docker.pid").read_text().strip() if Path("/var/run/docker.pid").exists() else ""
    )
    started: list[int] = []
    try:
        yield Engine(directory)
    finally:
        for pid_file in (directory / "docker.pid", directory / "role-dockerd.pid"):
            with contextlib.suppress(OSError, ValueError):
                started.append(int(pid_file.read_text().strip()))
        for pid in started:
            if alive(pid):
                stop(pid)
        shutil.rmtree(directory, ignore_errors=True)
        if machine_engine:  # the machine's engine, which everyone uses, was never touched
            assert alive(int(machine_engine))
        if bridge:  # nor its default bridge
            assert MACHINE_BRIDGE.exists(), "the machine's docker0 was deleted"


def start_foreign(engine: Engine, config: dict) -> subprocess.Popen[bytes]:
    """An engine somebody else started: this test, not the role."""
    engine.config.write_text(json.dumps(config, indent=4) + "\n", encoding="utf-8")
    log = (engine.dir / "foreign.log").open("wb")
    proc = subprocess.Popen(
        [*OWN_NETWORK, "/usr/sbin/dockerd", *engine.dockerd_args()], stdout=log, stderr=subprocess.STDOUT
    )
    engine.wait_answering()
    return proc


def test_an_engine_the_role_did_not_start_is_left_alone(engine: Engine) -> None:
    foreign = start_foreign(engine, {"log-level": "warn", "live-restore": False})
    before = engine.config.read_bytes()
    try:
        first = engine.role()
        assert first.returncode == 0, first.stdout + first.stderr
        assert "was not installed or started by this deployment" in first.stdout
        assert "docker_engine_manage_config=true" in first.stdout
        assert "live-restore=true" in first.stdout
        assert engine.config.read_bytes() == before
        assert foreign.poll() is None  # not restarted
        assert not engine.state.exists()
        assert changed(engine.role().stdout) == 0

        merged = engine.role(docker_engine_manage_config=True)
        assert merged.returncode == 0, merged.stdout + merged.stderr
        config = json.loads(engine.config.read_text())
        assert config == {
            "log-level": "warn",
            "live-restore": True,
            "log-driver": "json-file",
            "log-opts": {"max-size": "10m", "max-file": "3"},
        }
        backups = [
            p for p in engine.dir.iterdir() if p.name.startswith("daemon.json.") and p.name.endswith("~")
        ]
        assert [b.read_bytes() for b in backups] == [before]
        assert "it was not restarted" in merged.stdout
        assert foreign.poll() is None
        assert changed(engine.role(docker_engine_manage_config=True).stdout) == 0
    finally:
        stop(foreign.pid)


def test_a_daemon_json_that_is_not_json_is_refused_and_kept(engine: Engine) -> None:
    foreign = start_foreign(engine, {"log-level": "warn"})
    try:
        engine.config.write_text('{"log-level": "warn",,}\n', encoding="utf-8")
        refused = engine.role(docker_engine_manage_config=True)
        assert refused.returncode != 0
        assert "is not a JSON object; it was left as it is" in refused.stdout
        assert engine.config.read_text() == '{"log-level": "warn",,}\n'
        assert foreign.poll() is None
    finally:
        stop(foreign.pid)


def test_an_engine_the_role_started_is_configured_and_restarted_on_change(engine: Engine) -> None:
    first = engine.role()
    assert first.returncode == 0, first.stdout + first.stderr
    state = json.loads(engine.state.read_text())
    pid = int(engine.role_pid_file.read_text())
    assert state == {"started_pid": pid}
    assert alive(pid)
    assert json.loads(engine.config.read_text())["live-restore"] is True
    assert changed(engine.role().stdout) == 0
    assert alive(pid)

    again = engine.role(docker_engine_log_max_file=5)
    assert again.returncode == 0, again.stdout + again.stderr
    new_pid = int(engine.role_pid_file.read_text())
    assert new_pid != pid
    assert not alive(pid)
    assert alive(new_pid)
    assert json.loads(engine.state.read_text()) == {"started_pid": new_pid}
    assert json.loads(engine.config.read_text())["log-opts"]["max-file"] == "5"
    assert engine.answers()
    assert changed(engine.role(docker_engine_log_max_file=5).stdout) == 0


def test_the_merge_keeps_other_keys_without_any_engine(tmp_path: Path) -> None:
    """Only the configuration part (--tags config), no daemon at all: nested keys merged, others kept."""
    if os.geteuid() != 0:
        pytest.skip("writes a root-owned daemon.json")
    engine = Engine(tmp_path)  # nothing answers on its socket: an engine this role would start
    engine.config.write_text(
        json.dumps({"log-level": "warn", "log-opts": {"labels": "team"}, "live-restore": False}),
        encoding="utf-8",
    )
    first = engine.role_with_tags("config", docker_engine_log_max_size="20m")
    assert first.returncode == 0, first.stdout + first.stderr
    assert json.loads(engine.config.read_text()) == {
        "log-level": "warn",
        "log-driver": "json-file",
        "log-opts": {"labels": "team", "max-size": "20m", "max-file": "3"},
        "live-restore": True,
    }
    assert changed(engine.role_with_tags("config", docker_engine_log_max_size="20m").stdout) == 0
