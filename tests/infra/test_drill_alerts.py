"""Failure drills (`make drill`, never production; playbooks/verify.yml refuses it): real faults on the
stack this machine runs, each expected to fire its alert and reach the admins channel through
Prometheus → Alertmanager → the bot, then undone, with the time to detect and to recover printed.

- restart loop: a container of the stack's name space that crashes at once (restart policy always);
- certificate about to expire: the proxy serves a certificate from the stack's CA valid for 3 days;
- ERP upstream lost: the ERP container stopped, the probe through the proxy fails; started again;
- disk nearly full: a small ext4 filesystem of the drill's own (a 32 MiB image file, loop-mounted under
  the stack's root) filled to 95 %; node exporter sees it like any disk of the host. The machine's
  real filesystems are never filled.

The four faults start together (module fixture) so the drills overlap in time (about 4 minutes in
all, bounded by their `for:` durations); each test then waits for its own alert and undoes its fault.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from infra.test_monitoring import admins_messages_naming, prometheus_api, query, wait_for
from plugins.images import tiny_image
from plugins.infra import Stack, docker_inspect

from lab.drill_host_faults import (
    DISK_FILL,
    DISK_FULL,
    DISK_MIB,
    NODE_EXPORTER,
    RESTART_NODE_EXPORTER,
    disk_cleanup_script,
    disk_script,
)
from lab.drill_host_faults import short_lived_chain as lab_short_lived_chain
from ops.figures import append_record

pytestmark = [pytest.mark.infra, pytest.mark.drill]

CRASHLOOP = "photomatrix-drill-crashloop"
# Alert `for:` durations plus scrape, evaluation, group wait and the bot's post.
ALERT_TIMEOUT = 330


def run(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def firing(alertname: str, **labels: str) -> bool:
    for alert in prometheus_api("alerts")["alerts"]:
        found = {**alert["labels"], "state": alert["state"]}
        if all(found.get(k) == v for k, v in {**labels, "alertname": alertname, "state": "firing"}.items()):
            return True
    return False


def report(
    drill: str, did: str, observed: str, detected_s: float, recovered_s: float | None, figure: str = ""
) -> None:
    """Print what the drill did and saw; with `figure`, record its times for ops/figures.json
    (drill.<figure>.alert_s / .recovery_s into .state/figures/drills.jsonl, docs/operations.md)."""
    recovery = f"{recovered_s:.0f} s" if recovered_s is not None else "n/a"
    print(
        f"\n[drill {drill}] did: {did}\n  observed: {observed}\n"
        f"  alert after {detected_s:.0f} s; recovery {recovery}"
    )
    if figure:
        append_record(f"drill.{figure}.alert_s", detected_s)
        if recovered_s is not None:
            append_record(f"drill.{figure}.recovery_s", recovered_s)


def short_lived_chain(stack: Stack, original: bytes, days: int) -> bytes:
    """The served certificate re-issued by the stack's CA with the same key, names and extensions,
    valid for `days` more days; the rest of the original chain kept (the lab's drill does the same)."""
    pki = stack.root / "pki"
    ca_cert, ca_key = (pki / "ca.crt").read_bytes(), (pki / "private" / "ca.key").read_bytes()
    return lab_short_lived_chain(original, ca_cert, ca_key, days)


def reload_proxy(stack: Stack) -> None:
    out = run(["docker", "kill", "--signal", "HUP", stack.proxy])
    assert out.returncode == 0, out.stderr


@dataclass
class SmallDisk:
    """The disk fault of the lab's host-faults drill, its scripts run here as root
    (lab/drill_host_faults.py disk_script, disk_cleanup_script): an ext4 image file loop-mounted at
    `mountpoint` (0 % reserved blocks, so "free" is what a process may write), node exporter restarted,
    filled to DISK_FULL. Node exporter's bind of the host's / is private (Docker's default, and this
    machine's / is not a shared mount), so it sees a mount made after it started only once restarted."""

    image: Path
    mountpoint: Path

    def create_full(self) -> None:
        out = run(["sh", "-c", disk_script(str(self.mountpoint), str(self.image), RESTART_NODE_EXPORTER)])
        assert out.returncode == 0, f"the disk fault: {out.stderr}"

    def free(self) -> None:
        """The file removed (the lab drill's undo, before the alert may resolve)."""
        (self.mountpoint / DISK_FILL).unlink(missing_ok=True)

    def remove(self) -> None:
        """Undone step by step, each only if it is there (the fault may have stopped half-way)."""
        run(["sh", "-c", disk_cleanup_script(str(self.mountpoint), str(self.image), RESTART_NODE_EXPORTER)])


@dataclass
class Faults:
    started: float
    stack: Stack
    image: str
    fullchain: Path
    original_chain: bytes
    disk: SmallDisk
    undone: set[str] = field(default_factory=set)

    def undo_crashloop(self) -> None:
        run(["docker", "rm", "--force", CRASHLOOP])
        run(["docker", "rmi", self.image])
        self.undone.add("crashloop")

    def undo_certificate(self) -> None:
        self.fullchain.write_bytes(self.original_chain)
        reload_proxy(self.stack)
        self.undone.add("certificate")

    def undo_erp(self) -> None:
        out = run(["docker", "start", *erp_replicas()])
        assert out.returncode == 0, out.stderr
        self.undone.add("erp")

    def undo_disk(self) -> None:
        self.disk.remove()
        self.undone.add("disk")


@pytest.fixture(scope="module")
def faults(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faults]:
    for name in (stack.proxy, stack.erp, "photomatrix-prometheus", NODE_EXPORTER):
        assert name in stack.containers, f"{name} is not running: deploy first (make up)"
    tag = f"pmxdrill-{secrets.token_hex(4)}"
    workdir = tmp_path_factory.mktemp("drill")
    tiny_image(workdir, f"{tag}:drill", ("/bin/false",))  # /bin/false and its libraries, nothing pulled
    fullchain = stack.root / "pki" / "server" / "fullchain.pem"
    original = fullchain.read_bytes()
    shortened = short_lived_chain(stack, original, days=3)
    # The image lives on the machine's disk (32 MiB); the mount point under the stack's root.
    disk = SmallDisk(image=workdir / "disk.img", mountpoint=stack.root / "drill-disk")
    done = Faults(time.monotonic(), stack, f"{tag}:drill", fullchain, original, disk)
    try:
        disk.create_full()
        out = run(
            ["docker", "run", "--detach", "--name", CRASHLOOP, "--restart", "always", "--network", "none",
             "--memory", "16m", "--log-driver", "json-file", "--log-opt", "max-size=1m",
             done.image, "/bin/false"]
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        fullchain.write_bytes(shortened)
        reload_proxy(stack)
        out = run(["docker", "stop", "--time", "10", *erp_replicas()])
        assert out.returncode == 0, out.stderr
        done.started = time.monotonic()
        yield done
    finally:
        # Whatever a test left undone is undone here: the stack is left as it was found.
        if "crashloop" not in done.undone:
            done.undo_crashloop()
        if "certificate" not in done.undone:
            done.undo_certificate()
        if "erp" not in done.undone:
            done.undo_erp()
        if "disk" not in done.undone:
            done.undo_disk()


def erp_replicas() -> list[str]:
    """The ERP's containers on this host: photomatrix-erp-api and its replicas (erp_api_replicas)."""
    name = "name=^photomatrix-erp-api(-[0-9]+)?$"
    out = run(["docker", "ps", "--all", "--format", "{{.Names}}", "--filter", name])
    return sorted(out.stdout.split())


def delivered(stack: Stack, alertname: str, needle: str) -> bool:
    return any(needle in text for text in admins_messages_naming(stack, alertname))


@pytest.mark.timeout(600)
def test_a_restart_loop_fires_its_alert_in_the_admins_channel(faults: Faults, stack: Stack) -> None:
    wait_for(
        lambda: firing("ContainerRestartLoop", container=CRASHLOOP), "ContainerRestartLoop", ALERT_TIMEOUT
    )
    wait_for(
        lambda: delivered(stack, "ContainerRestartLoop", CRASHLOOP),
        "the restart-loop alert in the admins channel",
    )
    detected = time.monotonic() - faults.started
    restarts = docker_inspect(CRASHLOOP)["RestartCount"]
    faults.undo_crashloop()
    undone = time.monotonic()
    # Recovery: the container is gone and the next metrics file no longer lists it.
    wait_for(
        lambda: not query(f'photomatrix_container_restarts_total{{container="{CRASHLOOP}"}}'),
        "the crash-looping container to leave the metrics",
        timeout=180,
    )
    report(
        "restart loop",
        f"ran {CRASHLOOP} (exits at once, restart always)",
        f"Docker restarted it {restarts} times; ContainerRestartLoop firing and posted to the admins channel",
        detected,
        time.monotonic() - undone,
        figure="restart_loop",
    )


@pytest.mark.timeout(600)
def test_a_certificate_about_to_expire_fires_its_alert_in_the_admins_channel(
    faults: Faults, stack: Stack
) -> None:
    wait_for(
        lambda: firing("CertificateExpiringSoon", probe="public"), "CertificateExpiringSoon", ALERT_TIMEOUT
    )
    wait_for(
        lambda: delivered(stack, "CertificateExpiringSoon", "expires in 2d"),
        "the certificate alert in the admins channel",
    )
    detected = time.monotonic() - faults.started
    faults.undo_certificate()
    undone = time.monotonic()

    def long_again() -> bool:
        found = query('probe_ssl_earliest_cert_expiry{probe="public"} - time() > 14 * 86400')
        return bool(found)

    wait_for(long_again, "the probe to see the original certificate again", timeout=180)
    report(
        "certificate about to expire",
        "re-issued the proxy's certificate from the stack's CA for 3 days and reloaded nginx",
        "CertificateExpiringSoon firing and posted to the admins channel; original restored",
        detected,
        time.monotonic() - undone,
        figure="certificate",
    )


@pytest.mark.timeout(600)
def test_a_lost_erp_upstream_fires_its_alert_and_rejoins(faults: Faults, stack: Stack) -> None:
    wait_for(lambda: firing("ProbeFailed", probe="erp"), "ProbeFailed for the ERP", ALERT_TIMEOUT)
    wait_for(
        lambda: delivered(stack, "ProbeFailed", "erp probe"), "the ERP probe alert in the admins channel"
    )
    detected = time.monotonic() - faults.started
    # The public name still answers while the ERP is away (Rocket.Chat is another upstream).
    assert query('probe_success{probe="public"} == 1'), "the public probe failed too"
    faults.undo_erp()
    undone = time.monotonic()
    wait_for(
        lambda: all(
            docker_inspect(name)["State"].get("Health", {}).get("Status") == "healthy"
            for name in erp_replicas()
        ),
        "every ERP replica healthy",
    )
    wait_for(
        lambda: bool(query('probe_success{probe="erp"} == 1')), "the ERP probe to pass again", timeout=180
    )
    report(
        "ERP upstream lost",
        f"stopped every ERP replica ({', '.join(erp_replicas())}): nothing to route around to",
        "the proxy answered 502 for the ERP; ProbeFailed{probe=erp} firing and posted; public probe still up",
        detected,
        time.monotonic() - undone,
        figure="erp_upstream",
    )


@pytest.mark.timeout(600)
def test_a_disk_nearly_full_fires_its_alert_in_the_admins_channel(faults: Faults, stack: Stack) -> None:
    mountpoint = str(faults.disk.mountpoint)
    wait_for(lambda: firing("HostDiskNearlyFull", mountpoint=mountpoint), "HostDiskNearlyFull", ALERT_TIMEOUT)
    wait_for(
        lambda: delivered(stack, "HostDiskNearlyFull", f"{mountpoint} has"),
        "the disk alert in the admins channel",
    )
    detected = time.monotonic() - faults.started
    (seen,) = query(
        f'node_filesystem_avail_bytes{{mountpoint="{mountpoint}"}}'
        f' / node_filesystem_size_bytes{{mountpoint="{mountpoint}"}}'
    )
    free_then = float(seen["value"][1])
    faults.disk.free()
    undone = time.monotonic()
    wait_for(
        lambda: query(
            f'node_filesystem_avail_bytes{{mountpoint="{mountpoint}"}}'
            f' / node_filesystem_size_bytes{{mountpoint="{mountpoint}"}} > 0.5'
        ),
        "node exporter to see the space freed",
        timeout=180,
    )
    wait_for(lambda: not firing("HostDiskNearlyFull", mountpoint=mountpoint), "the alert to resolve", 180)
    recovered = time.monotonic() - undone
    faults.undo_disk()
    assert not faults.disk.image.exists()
    report(
        "disk nearly full",
        f"loop-mounted a {DISK_MIB} MiB ext4 image at {mountpoint}, restarted node exporter to see it, "
        f"filled it to {DISK_FULL:.0%}",
        f"node exporter reported {free_then:.1%} free; HostDiskNearlyFull firing and posted to the admins "
        "channel; file removed, alert resolved, filesystem unmounted",
        detected,
        recovered,
        figure="disk",
    )
