"""Issue 10: several Rocket.Chat instances rolled for real (roles/rocketchat, the entry point roll that make
upgrade and make rollback run; the lab runs one instance).

The role deploys two instances on this machine's Docker Engine (the simulator's image stands in for
Rocket.Chat's; each instance has its own state here, so this checks the roll, not a shared database), with
NATS (TRANSPORTER, as the official compose runs it for several instances) and a TLS sidecar in front of each,
its certificate from a CA made for the test. Then every image reference changes (a new tag on the same
image: community.docker re-creates a container whose reference changed, as for a release) and the roll
runs while `docker events` records what happened to each container. Required, from those events:

- NATS is re-created before the first instance stops (the instances reconnect to it);
- the second instance stops only after the first one's replacement is healthy, so one instance serves at
  every moment (the official Helm chart's RollingUpdate);
- each instance's sidecar is re-created inside its instance's window (after the instance stopped, before
  the next instance stops), not in a window of its own afterwards;
- every container runs the new reference; a second roll changes nothing and stops no container;
- make rollback's pass that re-creates the instances stopped (before it restores the database) leaves the
  sidecars alone; the pass that starts the instances re-creates each sidecar in its instance's window.

Containers, network, volumes and tags are this test's own (a random suffix): a stack deployed on this
machine is never touched."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from plugins.pki import make_test_ca
from roles.test_topology_render import ansible_playbook

pytestmark = pytest.mark.integration

# The project's images: the simulator and the proxy's nginx, which make up and make test build for this
# machine (a test never does), and NATS, which make up builds only for several instances: built by the
# role tests' nats_image fixture (tests/roles/conftest.py) from images/nats.
BUILT = {"rocketchat": "photomatrix/rocketchat-sim:current", "nginx": "photomatrix/nginx:current"}


def docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        pytest.fail(f"docker {' '.join(args[:3])} …: exit {done.returncode}: {done.stderr.strip()[-1500:]}")
    return done


@dataclass
class Events:
    """`docker events` for the test's containers, as (seconds, container name, action), until stopped."""

    prefix: str
    seen: list[tuple[float, str, str]] = field(default_factory=list)
    process: subprocess.Popen | None = None
    reader: threading.Thread | None = None

    def __enter__(self) -> Events:
        self.process = subprocess.Popen(
            ["docker", "events", "--filter", "type=container", "--format", "{{json .}}"],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        time.sleep(1)  # docker events is listening before anything happens
        return self

    def _read(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        for line in self.process.stdout:
            event = json.loads(line)
            name = event.get("Actor", {}).get("Attributes", {}).get("name", "")
            if name.startswith(self.prefix):
                self.seen.append((event["timeNano"] / 1e9, name[len(self.prefix) :], event["Action"]))

    def __exit__(self, *exc: object) -> None:
        time.sleep(1)  # the last events arrive
        assert self.process is not None
        self.process.terminate()
        self.process.wait(10)
        if self.reader is not None:
            self.reader.join(10)

    def first(self, name: str, action: str, after: float = 0.0) -> float:
        """When NAME's first ACTION (a prefix: "health_status: healthy") after AFTER happened."""
        times = [t for t, n, a in self.seen if n == name and a.startswith(action) and t >= after]
        assert times, f"no {action!r} of {name} after {after}: {self.seen}"
        return min(times)


@dataclass(frozen=True)
class Deployed:
    tmp: Path
    inventory: Path
    prefix: str
    network: str

    def run(self, playbook: str, tag: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return ansible_playbook(
            "-i", str(self.inventory), str(self.tmp / playbook),
            "-e", json.dumps({**self.images(tag), **extra}),
        )  # fmt: skip

    def images(self, tag: str) -> dict[str, str]:
        return {
            "rocketchat_image": f"{self.prefix}rocketchat-sim:{tag}",
            "rocketchat_nats_image": f"{self.prefix}nats:{tag}",
            "rocketchat_tls_image": f"{self.prefix}nginx:{tag}",
        }

    def image_of(self, container: str) -> str:
        return docker("inspect", "--format", "{{.Config.Image}}", self.prefix + container).stdout.strip()


CONTAINERS = ("rc", "rc-2", "tls", "tls-2", "nats")


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory, nats_image: str) -> Iterator[Deployed]:
    for image in BUILT.values():
        if docker("image", "inspect", image, check=False).returncode:
            if os.environ.get("CI") == "true":
                pytest.fail(f"no {image} image (make test builds it before its deployment cycles)")
            pytest.skip(f"no {image} image here (make up builds it)")
    images = {**BUILT, "nats": nats_image}
    tmp = tmp_path_factory.mktemp("rocketchat-roll")
    prefix = f"pmroll-{secrets.token_hex(3)}-"
    network = f"{prefix}net"
    # The internal CA the sidecars' certificates come from (roles/common, tls_certificate: ca.crt and
    # private/ca.key on the CA host, here this machine).
    pki = tmp / "pki"
    (pki / "private").mkdir(parents=True)
    ca, ca_key = make_test_ca("Rocket.Chat roll test CA")
    (pki / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (pki / "private" / "ca.key").write_bytes(
        ca_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    (pki / "private" / "ca.key").chmod(0o600)
    host = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "ansible_host": "127.0.0.1",
        "photomatrix_root": str(tmp / "root"),
        "photomatrix_bootstrap_secrets_dir": str(tmp / "store"),
        "rocketchat_instance_count": 2,
    }
    variables = {
        "rocketchat_simulated": True,
        "rocketchat_tls": True,
        "rocketchat_internal_ca": False,
        "rocketchat_tls_ca_dir": str(pki),
        "rocketchat_network": network,
        "rocketchat_container_name": f"{prefix}rc",
        "rocketchat_tls_container_name": f"{prefix}tls",
        "rocketchat_nats_container_name": f"{prefix}nats",
        "rocketchat_data_volume": f"{prefix}data",
        # Docker's own check every second: its health_status events mark when an instance is back.
        "rocketchat_healthcheck_interval": "1s",
        "rocketchat_rollout_pause": 2,
        "rocketchat_start_timeout": 120,
    }
    inventory = tmp / "hosts.yml"
    inventory.write_text(
        yaml.safe_dump(
            {"all": {"children": {"rocketchat": {"hosts": {"chat": host}}, "proxy": {"hosts": {"chat": {}}}}}}
        ),
        encoding="utf-8",
    )
    for playbook, tasks_from in (("deploy.yml", "main"), ("roll.yml", "roll")):
        (tmp / playbook).write_text(
            yaml.safe_dump([{
                "name": f"Rocket.Chat as the role's entry point {tasks_from} runs it",
                "hosts": "chat",
                "gather_facts": False,
                "vars": variables,
                "tasks": [{"name": "The role", "ansible.builtin.include_role": {
                    "name": "rocketchat", "tasks_from": tasks_from}}],
            }]),
            encoding="utf-8",
        )  # fmt: skip
    for name, image in images.items():
        repository = "rocketchat-sim" if name == "rocketchat" else name
        for tag in ("one", "two"):
            docker("tag", image, f"{prefix}{repository}:{tag}")
    docker("network", "create", network)
    deployed = Deployed(tmp, inventory, prefix, network)
    try:
        yield deployed
    finally:
        for container in CONTAINERS:
            docker("rm", "--force", "--volumes", prefix + container, check=False)
        docker("network", "rm", network, check=False)
        for volume in (f"{prefix}data", f"{prefix}data_2"):
            docker("volume", "rm", volume, check=False)
        for name in images:
            repository = "rocketchat-sim" if name == "rocketchat" else name
            docker("rmi", f"{prefix}{repository}:one", f"{prefix}{repository}:two", check=False)


def test_two_instances_roll_one_at_a_time_with_nats_first_and_each_sidecar_in_its_window(
    deployed: Deployed,
) -> None:
    first = deployed.run("deploy.yml", "one")
    assert first.returncode == 0, first.stdout[-5000:] + first.stderr[-2000:]
    for container in CONTAINERS:
        assert deployed.image_of(container).endswith(":one"), container

    with Events(deployed.prefix) as events:
        rolled = deployed.run("roll.yml", "two")
    assert rolled.returncode == 0, rolled.stdout[-5000:] + rolled.stderr[-2000:]
    for container in CONTAINERS:
        assert deployed.image_of(container).endswith(":two"), container

    start = min(t for t, _, _ in events.seen)
    timeline = [
        f"{t - start:6.1f} s  {name:<6} {action}"
        for t, name, action in events.seen
        if action in ("die", "start") or action.startswith("health_status: healthy")
    ]
    print("\n[roll] two instances, NATS and the sidecars:\n" + "\n".join(timeline))
    # NATS first: its replacement runs before the first instance stops.
    nats_started = events.first("nats", "start")
    rc1_stopped = events.first("rc", "die")
    assert nats_started < rc1_stopped, events.seen
    # The first instance back and healthy before the second one stops.
    rc1_started = events.first("rc", "start", after=rc1_stopped)
    rc1_healthy = events.first("rc", "health_status: healthy", after=rc1_started)
    rc2_stopped = events.first("rc-2", "die")
    assert rc1_healthy < rc2_stopped, events.seen
    # Each sidecar re-created within its instance's window: after its instance stopped, before the next
    # instance stops (the last one: before the roll ended).
    tls1_stopped = events.first("tls", "die")
    tls1_started = events.first("tls", "start", after=tls1_stopped)
    assert rc1_stopped < tls1_stopped < tls1_started < rc2_stopped, events.seen
    # ... and the first instance's front door healthy again before the second instance stops.
    assert events.first("tls", "health_status: healthy", after=tls1_started) < rc2_stopped, events.seen
    tls2_stopped = events.first("tls-2", "die")
    assert rc2_stopped < tls2_stopped, events.seen
    events.first("tls-2", "start", after=tls2_stopped)
    # No container stopped twice.
    for container in CONTAINERS:
        dies = [t for t, n, a in events.seen if n == container and a == "die"]
        assert len(dies) == 1, (container, events.seen)

    with Events(deployed.prefix) as again_events:
        again = deployed.run("roll.yml", "two")
    assert again.returncode == 0, again.stdout[-5000:]
    assert "changed=0" in again.stdout.split("PLAY RECAP")[-1], again.stdout[-3000:]
    assert not [e for e in again_events.seen if e[2] in ("die", "kill", "stop", "destroy")], again_events.seen


def test_a_roll_that_leaves_the_instances_stopped_leaves_the_sidecars_to_the_pass_that_starts_them(
    deployed: Deployed,
) -> None:
    """playbooks/rollback.yml after a migration: the instances stopped, re-created stopped on the previous
    images (the roll with rocketchat_container_state=stopped), the database restored, then started. A
    sidecar re-created in the stopped pass would lengthen the outage the restore holds open."""
    first = deployed.run("deploy.yml", "two")
    assert first.returncode == 0, first.stdout[-5000:] + first.stderr[-2000:]
    docker("stop", "--time", "5", f"{deployed.prefix}rc", f"{deployed.prefix}rc-2")

    with Events(deployed.prefix) as stopped_events:
        stopped = deployed.run("roll.yml", "one", rocketchat_container_state="stopped")
    assert stopped.returncode == 0, stopped.stdout[-5000:] + stopped.stderr[-2000:]
    for name in ("rc", "rc-2"):
        assert deployed.image_of(name).endswith(":one"), name
        assert (
            docker("inspect", "--format", "{{.State.Running}}", deployed.prefix + name).stdout.strip()
            == "false"
        )
    for name in ("tls", "tls-2"):
        assert deployed.image_of(name).endswith(":two"), name  # left alone
    touched = [
        e for e in stopped_events.seen if e[1] in ("tls", "tls-2") and e[2] in ("die", "kill", "destroy")
    ]
    assert not touched, stopped_events.seen

    with Events(deployed.prefix) as events:
        started = deployed.run("roll.yml", "one")
    assert started.returncode == 0, started.stdout[-5000:] + started.stderr[-2000:]
    for container in CONTAINERS:
        assert deployed.image_of(container).endswith(":one"), container
    # Each sidecar re-created after its instance started, before the next instance is touched.
    rc1_started = events.first("rc", "start")
    tls1_stopped = events.first("tls", "die")
    assert rc1_started < tls1_stopped < events.first("tls", "start", after=tls1_stopped), events.seen
    assert tls1_stopped < events.first("rc-2", "start"), events.seen
    assert events.first("rc-2", "start") < events.first("tls-2", "die"), events.seen
