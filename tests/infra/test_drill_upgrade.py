"""`make upgrade` then `make rollback` on this machine's stack (a drill: `make drill`, never production),
under a bounded load through the proxy.

The "new release" is made here without touching the working tree: the ERP, bot and proxy images are
re-built on top of the running ones with one extra label (new image ids), the other images re-tagged,
all under the tag `pmxdrill`; `make upgrade UPGRADE_ARGS="-e container_images_tag=pmxdrill -e
upgrade_build_images=false"` must roll them in one host and layer at a time after a verified backup and
record the previous references; `make rollback` must bring the previous image ids back and say the
database was not restored (no migration in between). The ERP runs two replicas here
(inventory/local: erp_api_replicas), rolled one at a time behind the proxy's upstream, and the proxy's
new nginx starts beside the running one before that one stops (roles/tls_proxy, swap.yml): no request
may fail in any phase of the upgrade or the rollback, but while the proxy swaps, where every request
must get an HTTP answer (an error status is printed). The load keeps its connection alive: a GET that
crossed a stopping (or reloading) nginx's close of that idle connection is sent again on a new one, as
HTTP clients do (RFC 9112, 9.3.1), and counted as resent (one CI run failed on such a request). Prints,
per phase of each run, the requests sent, the failures (status or exception), the resent ones and the
time, and the second replica's memory.
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
from plugins.infra import Stack, docker_health, docker_inspect

from lab import drill_upgrade

pytestmark = [pytest.mark.infra, pytest.mark.drill]

ROOT = Path(__file__).resolve().parents[2]
TAG = "pmxdrill"
# Re-built (a new id each): these must be replaced by the upgrade and brought back by the rollback.
REBUILT = {"photomatrix-erp-api": "erp-api", "photomatrix-chatbot": "chatbot", "photomatrix-proxy": "nginx"}
# The same image under the new tag (Rocket.Chat's layer runs it again: no change, no restart).
RETAGGED = ["prometheus", "alertmanager", "node-exporter", "blackbox-exporter", "redis"]
RETAGGED += ["rocketchat-sim", "nats"]
MAKE_TIMEOUT = 900
# The load: at most this many requests a second, for at most LOAD_SECONDS.
LOAD_RATE = 20
LOAD_SECONDS = 1800
# The plays of upgrade.yml / rollback.yml → phases, the phases no request may fail in, and those (the
# proxy's swap) where every request must get an HTTP answer: the lab's upgrade drill's.
PHASES = drill_upgrade.PHASES
ZERO_FAILURE_PHASES = drill_upgrade.JUDGED
ANSWERED_PHASES = drill_upgrade.CONNECTION_JUDGED
RC_OWN = drill_upgrade.RC_OWN
rc_own_phases = drill_upgrade.rc_own_phases


def run(argv: list[str], timeout: float = 120, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)


@dataclass
class Phase:
    sent: int = 0
    failed: list[str] = field(default_factory=list)
    started: float = 0.0
    seconds: float = 0.0
    resent: int = 0


@dataclass
class Load:
    """Requests through the proxy (the ERP's stylesheet and Rocket.Chat's /api/info) until stopped,
    each counted in the phase (`<run> <layer>`) that was under way when it was sent."""

    stack: Stack
    phase: str = "before"
    phases: dict[str, Phase] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def enter(self, name: str) -> None:
        """The phase NAME starts now; a phase entered again (`after`) adds up its times."""
        now = time.monotonic()
        if self.phase in self.phases:
            current = self.phases[self.phase]
            current.seconds += now - current.started
        self.phases.setdefault(name, Phase()).started = now
        self.phase = name

    @property
    def sent(self) -> int:
        return sum(phase.sent for phase in self.phases.values())

    @property
    def failed(self) -> list[str]:
        return [failure for phase in self.phases.values() for failure in phase.failed]

    def run(self) -> None:
        deadline = time.monotonic() + LOAD_SECONDS
        paths = ["/activate/style.css", "/api/info"]
        count = 0
        kept = False  # the last response left its connection open: the next request reuses it
        with httpx.Client(base_url=self.stack.base_url, verify=self.stack.ssl_context(), timeout=10) as http:
            while not self.stop.is_set() and time.monotonic() < deadline:
                path = paths[count % 2]
                count += 1
                phase = self.phases.setdefault(self.phase, Phase(started=time.monotonic()))
                phase.sent += 1
                kept = self.get(http, path, phase, reused=kept)
                self.stop.wait(1 / LOAD_RATE)

    @classmethod
    def get(cls, http: httpx.Client, path: str, phase: Phase, *, reused: bool) -> bool:
        """GET PATH, a failure noted in PHASE; returns whether the connection stays open. One keep-alive
        connection as long as the server keeps it: a GET on a REUSED connection that the server closed
        before answering (a stopping or reloading nginx closes its idle connections; the request may
        cross the close) is sent once more on a new connection, as HTTP clients do (RFC 9112, 9.3.1:
        idempotent requests), and counted as resent; any other error, or one on a new connection, is a
        failure."""
        try:
            response = http.get(path)
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            if reused:
                phase.resent += 1
                return cls.get(http, path, phase, reused=False)
            phase.failed.append(f"{path}: {type(exc).__name__}")
            return False
        except httpx.HTTPError as exc:
            phase.failed.append(f"{path}: {type(exc).__name__}")
            return False
        if response.status_code != 200:
            phase.failed.append(f"{path}: {response.status_code}")
        return response.headers.get("connection", "").lower() != "close"

    def report(self) -> str:
        lines = []
        for name, phase in self.phases.items():
            kinds = sorted(set(phase.failed))[:4]
            lines.append(
                f"  {name:<22} {phase.seconds:6.0f} s {phase.sent:6d} requests {len(phase.failed):4d} failed"
                + (f" {phase.resent:3d} resent" if phase.resent else "")
                + (f"  {kinds}" if kinds else "")
            )
        return "\n".join(lines)


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
            if run(["docker", "image", "inspect", f"{prefix}/{repository}:current"]).returncode:
                continue  # not part of this stack (Redis runs only with bot replicas)
            out = run(["docker", "tag", f"{prefix}/{repository}:current", f"{prefix}/{repository}:{TAG}"])
            assert out.returncode == 0, out.stderr
        yield built
    finally:
        for repository in [*REBUILT.values(), *RETAGGED]:
            run(["docker", "rmi", f"{prefix}/{repository}:{TAG}"])


def make(target: str, load: Load, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """`make <target>`, its output read as it comes: each play of a layer starts a phase of the load."""
    started = time.monotonic()
    env = {**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"}
    load.enter(f"{target} prepare")
    lines: list[str] = []
    with subprocess.Popen(
        ["make", "--no-print-directory", target, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        timer = threading.Timer(MAKE_TIMEOUT, proc.kill)
        timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                if line.startswith("PLAY ["):
                    play = line[len("PLAY [") :].split("]", 1)[0]
                    layer = next((phase for prefix, phase in PHASES.items() if play.startswith(prefix)), None)
                    seen = any(
                        name.startswith(f"{target} ") and name.split()[-1] in PHASES.values()
                        for name in load.phases
                    )
                    other = "finish" if seen else "prepare"
                    load.enter(f"{target} {layer}" if layer else f"{target} {other}")
        finally:
            timer.cancel()
        returncode = proc.wait(30)
    load.enter("after")
    output = "".join(lines)
    return subprocess.CompletedProcess(proc.args, returncode, output, ""), time.monotonic() - started


def erp_replicas() -> list[str]:
    """The ERP's containers: the first and its replicas (photomatrix-erp-api-<n>)."""
    out = run(["docker", "ps", "--format", "{{.Names}}", "--filter", "name=^photomatrix-erp-api"])
    return sorted(out.stdout.split())


def memory_of(name: str) -> str:
    out = run(["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", name], timeout=60)
    return out.stdout.strip() or out.stderr.strip()


@pytest.mark.timeout(2 * MAKE_TIMEOUT + 300)
def test_upgrade_then_rollback_under_load(stack: Stack, release: dict[str, str]) -> None:
    replicas = erp_replicas()
    assert len(replicas) >= 2, f"the ERP runs {replicas}: inventory/local sets erp_api_replicas: 2 (make up)"
    watched = sorted({*replicas, *REBUILT})
    before = {name: image_id(name) for name in watched}
    load = Load(stack)
    worker = threading.Thread(target=load.run, daemon=True)
    worker.start()
    try:
        time.sleep(3)  # a baseline: the stack answers before anything changes
        # upgrade_force: a drill that failed earlier left its record in progress; what runs now is the
        # state to come back to.
        upgraded, upgrade_s = make(
            "upgrade",
            load,
            f"UPGRADE_ARGS=-e container_images_tag={TAG} -e upgrade_build_images=false -e upgrade_force=true",
        )
        print(f"\n[drill upgrade] upgrade exit {upgraded.returncode} ({upgrade_s:.0f} s)\n{load.report()}")
        assert upgraded.returncode == 0, upgraded.stdout[-6000:]
        # Ansible's output wraps long messages: compare with the whitespace folded.
        assert "NOT rolled by this playbook" in " ".join(upgraded.stdout.split())
        after = {name: image_id(name) for name in watched}
        second_memory = memory_of(replicas[1])

        record = json.loads((stack.root / "releases" / "previous.json").read_text())
        rolled_back, rollback_s = make("rollback", load)
        time.sleep(3)
    finally:
        load.stop.set()
        worker.join(30)
    load.enter("end")
    assert rolled_back.returncode == 0, rolled_back.stdout[-6000:]
    restored = {name: image_id(name) for name in watched}

    print(
        f"\n[drill upgrade] make upgrade {upgrade_s:.0f} s, make rollback {rollback_s:.0f} s; ERP replicas "
        f"{replicas}, {replicas[1]} memory after the upgrade: {second_memory}; load through the proxy, "
        f"{load.sent} requests, {len(load.failed)} failed:\n{load.report()}"
    )
    # No request failed while the ERP's replicas or the bot were rolled, forward and back. Rocket.Chat runs
    # one instance here: while it is re-created (its own play; its TLS sidecar in the same window) its
    # /api/info may fail, printed above as its window; the ERP's requests may not, nor Rocket.Chat's in the
    # sidecars' play, which then finds them current. Where Rocket.Chat's play left it alone (the rollback
    # here: its image was only re-tagged), the sidecars' play re-creates them alone: Rocket.Chat's own too.
    rc_own = {"upgrade": rc_own_phases(upgraded.stdout), "rollback": rc_own_phases(rolled_back.stdout)}
    for name, phase in load.phases.items():
        layer = name.split()[-1]
        if layer in ZERO_FAILURE_PHASES:
            assert phase.sent > 0 or phase.seconds < 1, (name, "no request was sent in this phase")
            own = rc_own.get(name.split()[0], RC_OWN)
            failed = [f for f in phase.failed if not (layer in own and f.startswith("/api/info: "))]
            assert not failed, (name, failed[:10])
        if name.split()[-1] in ANSWERED_PHASES:
            unanswered = [f for f in phase.failed if not f.rsplit(": ", 1)[-1].isdigit()]
            assert not unanswered, (name, unanswered[:10])
    # The upgrade replaced each re-built image (every ERP replica too), one layer after the other.
    assert {name: after[name] for name in REBUILT} == release, (after, release)
    for name in replicas:
        assert after[name] == release["photomatrix-erp-api"], (name, after[name])
    # The record names what ran before, the verified backup, and the ERP's revision.
    for name in REBUILT:
        assert record["containers"][name]["id"] == before[name], record["containers"][name]
    assert record["in_progress"] is False
    assert Path(record["backup"]).is_file(), record["backup"]
    assert record["erp_revision"], record
    # The rollback brought the previous images back and said the database stayed as it was.
    assert restored == before, (restored, before)
    assert "not restored" in " ".join(rolled_back.stdout.split()), rolled_back.stdout[-3000:]
    final = json.loads((stack.root / "releases" / "previous.json").read_text())
    assert final.get("rolled_back"), final
    for name in watched:
        assert docker_health(name) == "healthy", name
    assert load.sent > 0
