"""`make upgrade` then `make rollback` on this machine's stack (a drill: `make drill`, never production),
under a bounded load through the proxy.

The "new release" is made here without touching the working tree: the ERP, bot and proxy images are
re-built on top of the running ones with one extra label (new image ids), the other images re-tagged,
all under the tag `pmxdrill`; `make upgrade UPGRADE_ARGS="-e container_images_tag=pmxdrill -e
upgrade_build_images=false"` must roll them in one host and layer at a time after a verified backup and
record the previous references; `make rollback` must bring the previous image ids back and say the
database was not restored (no migration in between). Prints requests, failures and the durations.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from plugins.infra import Stack, docker_inspect

pytestmark = [pytest.mark.infra, pytest.mark.drill]

ROOT = Path(__file__).resolve().parents[2]
TAG = "pmxdrill"
# Re-built (a new id each): these must be replaced by the upgrade and brought back by the rollback.
REBUILT = {"photomatrix-erp-api": "erp-api", "photomatrix-chatbot": "chatbot", "photomatrix-proxy": "nginx"}
RETAGGED = ["prometheus", "alertmanager", "node-exporter", "blackbox-exporter"]
MAKE_TIMEOUT = 900
# The load: at most this many requests a second, for at most LOAD_SECONDS.
LOAD_RATE = 10
LOAD_SECONDS = 900


def run(argv: list[str], timeout: float = 120, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)


@dataclass
class Load:
    """Requests through the proxy (the ERP's stylesheet and Rocket.Chat's /api/info) until stopped."""

    stack: Stack
    sent: int = 0
    failed: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        deadline = time.monotonic() + LOAD_SECONDS
        paths = ["/activate/style.css", "/api/info"]
        with httpx.Client(base_url=self.stack.base_url, verify=self.stack.ssl_context(), timeout=10) as http:
            while not self.stop.is_set() and time.monotonic() < deadline:
                path = paths[self.sent % 2]
                self.sent += 1
                try:
                    status = http.get(path).status_code
                    if status != 200:
                        self.failed.append(f"{path}: {status}")
                except httpx.HTTPError as exc:
                    self.failed.append(f"{path}: {type(exc).__name__}")
                self.stop.wait(1 / LOAD_RATE)


def image_id(name: str) -> str:
    return docker_inspect(name)["Image"]


def image_prefix() -> str:
    """How the stack names the project's images: `photomatrix`, or `<registry>/photomatrix` when its host
    pulls them from a registry (a lab host): the drill's tags must be the references the roles use."""
    return docker_inspect("photomatrix-erp-api")["Config"]["Image"].rsplit("/", 1)[0]


@pytest.fixture(scope="module")
def release(stack: Stack) -> Iterator[dict[str, str]]:
    """The `pmxdrill` images: {container: new image id} for the re-built ones."""
    token = secrets.token_hex(4)
    built: dict[str, str] = {}
    prefix = image_prefix()
    try:
        for container, repository in REBUILT.items():
            assert container in stack.containers, f"{container} is not running: deploy first (make up)"
            dockerfile = f"FROM {image_id(container)}\nLABEL org.photomatrix.drill-release={token}\n"
            ref = f"{prefix}/{repository}:{TAG}"
            out = run(
                ["docker", "build", "--network", "none", "--tag", ref, "-"], input=dockerfile, timeout=300
            )
            assert out.returncode == 0, out.stderr[-2000:]
            built[container] = docker_inspect(ref)["Id"]
        for repository in RETAGGED:
            out = run(["docker", "tag", f"{prefix}/{repository}:current", f"{prefix}/{repository}:{TAG}"])
            assert out.returncode == 0, out.stderr
        yield built
    finally:
        for repository in [*REBUILT.values(), *RETAGGED]:
            run(["docker", "rmi", f"{prefix}/{repository}:{TAG}"])


def make(target: str, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    env = {**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"}
    out = run(["make", "--no-print-directory", target, *args], timeout=MAKE_TIMEOUT, cwd=ROOT, env=env)
    return out, time.monotonic() - started


@pytest.mark.timeout(2 * MAKE_TIMEOUT + 300)
def test_upgrade_then_rollback_under_load(stack: Stack, release: dict[str, str]) -> None:
    before = {name: image_id(name) for name in REBUILT}
    load = Load(stack)
    worker = threading.Thread(target=load.run, daemon=True)
    worker.start()
    try:
        upgraded, upgrade_s = make(
            "upgrade", f"UPGRADE_ARGS=-e container_images_tag={TAG} -e upgrade_build_images=false"
        )
        upgrade_load = (load.sent, len(load.failed))
        assert upgraded.returncode == 0, upgraded.stdout[-4000:] + upgraded.stderr[-2000:]
        # Ansible's output wraps long messages: compare with the whitespace folded.
        assert "NOT rolled by this playbook" in " ".join(upgraded.stdout.split())
        after = {name: image_id(name) for name in REBUILT}

        record = json.loads((stack.root / "releases" / "previous.json").read_text())
        rolled_back, rollback_s = make("rollback")
    finally:
        load.stop.set()
        worker.join(30)
    assert rolled_back.returncode == 0, rolled_back.stdout[-4000:] + rolled_back.stderr[-2000:]
    restored = {name: image_id(name) for name in REBUILT}

    print(
        f"\n[drill upgrade] make upgrade {upgrade_s:.0f} s, make rollback {rollback_s:.0f} s; "
        f"load through the proxy: {upgrade_load[0]} requests during the upgrade ({upgrade_load[1]} failed), "
        f"{load.sent} in all ({len(load.failed)} failed: {sorted(set(load.failed))[:6]})"
    )
    # The upgrade replaced each re-built image, one layer after the other.
    assert after == release, (after, release)
    # The record names what ran before, the verified backup, and the ERP's revision.
    for name, old in before.items():
        assert record["containers"][name]["id"] == old, record["containers"][name]
    assert record["in_progress"] is False
    assert Path(record["backup"]).is_file(), record["backup"]
    assert record["erp_revision"], record
    # The rollback brought the previous images back and said the database stayed as it was.
    assert restored == before, (restored, before)
    assert "not restored" in " ".join(rolled_back.stdout.split()), rolled_back.stdout[-3000:]
    final = json.loads((stack.root / "releases" / "previous.json").read_text())
    assert final.get("rolled_back"), final
    for name in REBUILT:
        assert docker_inspect(name)["State"]["Health"]["Status"] == "healthy", name
    assert load.sent > 0
