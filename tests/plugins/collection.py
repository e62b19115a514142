"""Fixtures for the photomatrix.rocketchat collection: import path, a fake transport, ansible-playbook."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = ROOT / "collections"
COLLECTION = COLLECTIONS / "ansible_collections" / "photomatrix" / "rocketchat"
MODULES = ("setting", "user", "permission", "room", "integration", "token")

# Module code imports `ansible_collections.photomatrix.rocketchat...`, a namespace package that merges
# with the collections shipped in site-packages.
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))


@dataclass
class FakeRocketChat:
    """A transport for RocketChatClient: answers from per-endpoint handlers and records every request."""

    handlers: dict[tuple[str, str], Any] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)

    def on(self, method: str, endpoint: str, handler: Any) -> FakeRocketChat:
        """handler: a (status, body) tuple, or a callable(request) returning one."""
        self.handlers[(method, endpoint)] = handler
        return self

    def __call__(self, method: str, url: str, headers: dict[str, str], body: bytes | None, timeout: float):
        parts = urlsplit(url)
        endpoint = parts.path.split("/api/v1/", 1)[1]
        request = {
            "method": method,
            "endpoint": endpoint,
            "query": dict(parse_qsl(parts.query)),
            "headers": dict(headers),
            "body": json.loads(body) if body else None,
            "timeout": timeout,
        }
        self.calls.append(request)
        handler = self.handlers.get((method, endpoint))
        if handler is None:
            return 404, b'{"success": false, "error": "Resource not found"}'
        status, payload = handler(request) if callable(handler) else handler
        return status, json.dumps(payload).encode()

    def endpoints(self) -> list[str]:
        return [f"{c['method']} {c['endpoint']}" for c in self.calls]


@pytest.fixture
def fake_rocketchat() -> FakeRocketChat:
    return FakeRocketChat()


@dataclass
class PlaybookRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def recap(self) -> dict[str, int]:
        """The PLAY RECAP counters of localhost (ok, changed, failed, ...)."""
        for line in self.stdout.splitlines():
            if line.startswith("localhost") and "changed=" in line:
                return {k: int(v) for k, v in (item.split("=") for item in line.split(":", 1)[1].split())}
        raise AssertionError(f"no PLAY RECAP in the output:\n{self.output[-3000:]}")


class PlaybookRunner:
    """`ansible-playbook` as a subprocess with the repository's ansible.cfg, on localhost (local)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.count = 0

    def run(
        self, playbook: str, *args: str, extra_vars: dict[str, Any] | None = None, timeout: float = 240
    ) -> PlaybookRun:
        self.count += 1
        path = self.workdir / f"play{self.count}.yml"
        path.write_text(textwrap.dedent(playbook))
        command = [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            str(path),
            *args,
        ]
        if extra_vars:
            vars_file = self.workdir / f"vars{self.count}.json"
            vars_file.write_text(json.dumps(extra_vars))
            vars_file.chmod(0o600)
            command += ["-e", f"@{vars_file}"]
        env = {
            **os.environ,
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
            "ANSIBLE_LOCAL_TEMP": str(self.workdir / "tmp"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
            "ANSIBLE_STDOUT_CALLBACK": "default",
            "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
        }
        proc = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        return PlaybookRun(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def playbook(tmp_path: Path) -> PlaybookRunner:
    return PlaybookRunner(tmp_path)


# The collection's tests change workspace settings (rate limiter, 2FA policy, language), so against the
# simulator they get one of their own rather than the session-wide one other suites share.
PRIVATE_SIM_SETTINGS = {
    # 2FA is asked for at once, even from users created seconds ago (Rocket.Chat's default waits 1800 s).
    "OVERWRITE_SETTING_Accounts_TwoFactorAuthentication_RememberFor": "0",
    # Dozens of playbook runs log in from one address within a minute; the 429 path has its own unit tests.
    "OVERWRITE_SETTING_API_Enable_Rate_Limiter_Limit_Calls_Default": "100000",
}


@pytest.fixture(scope="module")
def rc_target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The Rocket.Chat the collection tests configure: ROCKETCHAT_URL, else a private simulator."""
    if os.environ.get("ROCKETCHAT_URL"):
        yield request.getfixturevalue("rocketchat")
        return
    from plugins.rocketchat import start_simulator

    target = start_simulator(
        tmp_path_factory.mktemp("collection-sim"), "collection-sim", PRIVATE_SIM_SETTINGS
    )
    try:
        yield target
    finally:
        if target.process is not None:
            target.process.stop()
