"""lab/drill_host_faults.py without a lab: the short-lived certificate, the disk fault's scripts (run for
real on a loop device of this machine where it has one), the alerts it waits for, and the watch's
judgement with Prometheus and the admins group answered by a fake."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from plugins.pki import make_test_ca

import lab.drill_host_faults as faults
from lab.drill_host_faults import (
    CRASHLOOP,
    DISK_FULL,
    DISK_MOUNT,
    DrillError,
    Fault,
    HostFaults,
    disk_cleanup_script,
    disk_script,
    short_lived_chain,
)

pytestmark = pytest.mark.unit


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, common)])


def _pki() -> tuple[bytes, bytes, bytes, ec.EllipticCurvePrivateKey]:
    """(chain, CA certificate, CA key) as PEM: a CA and a leaf for chat.pmlab.test valid 90 days."""
    now = dt.datetime.now(dt.UTC)
    ca, ca_key = make_test_ca("pm lab CA", days=3650)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("chat.pmlab.test"))
        .issuer_name(ca.subject)
        .public_key(leaf_key.public_key())
        .serial_number(2)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("chat.pmlab.test")]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = ca_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return leaf.public_bytes(pem) + ca.public_bytes(pem), ca.public_bytes(pem), key_pem, leaf_key


def test_the_short_lived_certificate_keeps_key_names_and_chain_and_expires_in_days() -> None:
    chain, ca_pem, ca_key, leaf_key = _pki()
    new_chain = x509.load_pem_x509_certificates(short_lived_chain(chain, ca_pem, ca_key, 3))
    old_chain = x509.load_pem_x509_certificates(chain)
    new, ca = new_chain[0], x509.load_pem_x509_certificate(ca_pem)
    assert len(new_chain) == 2
    assert new_chain[1] == old_chain[1]
    assert new.public_key() == leaf_key.public_key()
    assert new.subject == old_chain[0].subject
    san = new.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["chat.pmlab.test"]
    new.verify_directly_issued_by(ca)  # signed by the same CA: the drill's TLS clients still verify it
    left = new.not_valid_after_utc - dt.datetime.now(dt.UTC)
    assert dt.timedelta(days=2, hours=23) < left <= dt.timedelta(days=3)
    assert new.serial_number != old_chain[0].serial_number


def test_the_alerts_it_waits_for_name_the_faults_host() -> None:
    fault = Fault("restart", "bot", "ContainerRestartLoop", {"host": "bot", "container": CRASHLOOP}, "x")
    assert fault.selector == (
        f'ALERTS{{alertname="ContainerRestartLoop",alertstate="firing",host="bot",container="{CRASHLOOP}"}}'
    )


def test_the_disk_scripts_are_valid_shell_on_the_hosts_paths() -> None:
    for script in (disk_script(), disk_cleanup_script()):
        out = subprocess.run(["sh", "-n"], input=script, capture_output=True, text=True, check=False)
        assert out.returncode == 0, out.stderr
        assert DISK_MOUNT in script
    assert "docker restart --time 10 photomatrix-node-exporter" in disk_script()
    assert "set -eu" in disk_script()  # a step that fails stops the fault, and the drill fails


@pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/dev/loop-control").exists() or not shutil.which("mkfs.ext4"),
    reason="needs root and loop devices (mount)",
)
def test_the_disk_fault_fills_a_filesystem_of_its_own_and_its_cleanup_leaves_nothing(tmp_path: Path) -> None:
    mount, image, marker = tmp_path / "mnt", tmp_path / "disk.img", tmp_path / "restarted"
    restart = f"echo >> {marker}"
    out = subprocess.run(
        ["sh", "-c", disk_script(str(mount), str(image), restart)],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip().startswith("/dev/loop")
        vfs = os.statvfs(mount)
        free = vfs.f_bavail / vfs.f_blocks
        assert 1 - DISK_FULL - 0.01 < free < 0.10  # under HostDiskNearlyFull's 10 %, not quite full
        assert marker.read_text().count("\n") == 1
    finally:
        cleanup = disk_cleanup_script(str(mount), str(image), restart)
        done = subprocess.run(["sh", "-c", cleanup], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert not mount.exists()
    assert not image.exists()
    assert marker.read_text().count("\n") == 2  # node exporter let go of the mount
    listed = subprocess.run(["losetup", "--list", "--associated", str(image)], capture_output=True, text=True)
    assert not listed.stdout.strip()
    # Run twice (a second undo after a failure): nothing to do, no error.
    again = subprocess.run(["sh", "-c", cleanup], capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr


class _Stack:
    """Prometheus and the admins group as the watch sees them: ALERTS series that fire, messages."""

    mon, chat = "mon", "chat"

    def __init__(self) -> None:
        self.firing: set[str] = set()
        self.messages: list[dict[str, Any]] = []
        self.healthy: set[str] = set()

    def query(self, promql: str) -> list[dict[str, Any]]:
        if promql.startswith("ALERTS{"):
            return [{"value": [0, "1"]}] if any(f'"{a}"' in promql for a in self.firing) else []
        if "photomatrix_container_restarts_total" in promql:
            return [] if "restart" in self.healthy else [{"value": [0, "3"]}]
        if "probe_ssl_earliest_cert_expiry" in promql:
            return [{"value": [0, "1"]}] if "certificate" in self.healthy else []
        return [{"value": [0, "0.8"]}] if "disk" in self.healthy else []

    def admins_messages(self) -> list[dict[str, Any]]:
        return self.messages


def _drill(stack: _Stack, monkeypatch: pytest.MonkeyPatch) -> tuple[HostFaults, list[str]]:
    drill = HostFaults(lab=object(), stack=stack, bot="bot", db="db1", proxy="edge")  # type: ignore[arg-type]
    undone: list[str] = []

    def undo(name: str) -> None:
        undone.append(name)
        drill.faults[name].undone = 1_000.0

    monkeypatch.setattr(drill, "_undo", undo)
    monkeypatch.setattr(drill, "_observe", lambda name: None)
    monkeypatch.setattr(faults.time, "time", lambda: 1_000.0)
    drill.faults = {
        "restart": Fault(
            "restart", "bot", "ContainerRestartLoop", {"host": "bot"}, f"bot: {CRASHLOOP}", 990.0
        ),
        "disk": Fault("disk", "db1", "HostDiskNearlyFull", {"host": "db1"}, f"db1: {DISK_MOUNT} has", 990.0),
        "certificate": Fault("certificate", "edge", "CertificateExpiringSoon", {}, "expires in 2d", 990.0),
    }
    return drill, undone


def test_a_fault_is_undone_only_once_its_alert_names_it_in_the_admins_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stack = _Stack()
    drill, undone = _drill(stack, monkeypatch)
    stack.firing = {"ContainerRestartLoop", "HostDiskNearlyFull"}
    # Firing in Prometheus but not yet posted; a line of another host's restart loop does not count.
    stack.messages = [
        {"msg": f"• FIRING [critical] *ContainerRestartLoop*: erp1: {CRASHLOOP} restarted 3 times"}
    ]
    assert not drill._poll()
    assert undone == []
    stack.messages.append(
        {"msg": f"• FIRING [critical] *ContainerRestartLoop*: bot: {CRASHLOOP} restarted 4 times"}
    )
    assert not drill._poll()
    assert undone == ["restart"]
    assert drill.faults["restart"].delivered == 1_000.0
    assert drill.faults["disk"].delivered is None  # firing, not yet in the admins group


def test_every_fault_recovered_ends_the_watch(monkeypatch: pytest.MonkeyPatch) -> None:
    stack = _Stack()
    drill, undone = _drill(stack, monkeypatch)
    stack.firing = {"ContainerRestartLoop", "HostDiskNearlyFull", "CertificateExpiringSoon"}
    stack.messages = [
        {"msg": f"• FIRING [critical] *ContainerRestartLoop*: bot: {CRASHLOOP} restarted 4 times"},
        {"msg": f"• FIRING [critical] *HostDiskNearlyFull*: db1: {DISK_MOUNT} has 5% space left"},
        {"msg": "• FIRING [warning] *CertificateExpiringSoon*: The certificate of x expires in 2d 23h"},
    ]
    assert not drill._poll()  # undone now; recovery not seen yet
    assert sorted(undone) == ["certificate", "disk", "restart"]
    stack.healthy = {"restart", "certificate", "disk"}
    assert not drill._poll()  # the disk alert still fires: not recovered
    stack.firing = set()
    assert drill._poll()
    assert all(f.recovered is not None for f in drill.faults.values())


def test_an_alert_that_never_arrives_fails_the_drill(monkeypatch: pytest.MonkeyPatch) -> None:
    stack = _Stack()
    drill, _ = _drill(stack, monkeypatch)
    drill.faults["disk"].set_at = 1_000.0 - faults.ALERT_TIMEOUT - 1
    with pytest.raises(DrillError, match="HostDiskNearlyFull for db1: not in the admins group"):
        drill._poll()


def test_the_faults_are_undone_when_the_host_loss_drill_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    class _Faults:
        bot, db, proxy, stack = "bot", "db1", "edge", _Stack()

        def set(self) -> None:
            calls.append("set")

        def start(self) -> None:
            calls.append("start")

        def join(self) -> dict:
            calls.append("join")
            return {}

        def undo(self) -> None:
            calls.append("undo")

    monkeypatch.setattr(HostFaults, "of", classmethod(lambda cls, lab: _Faults()))

    def host_loss() -> dict:
        calls.append("host loss")
        raise DrillError("1 request(s) failed after the proxy's detection")

    with pytest.raises(DrillError, match="failed after the proxy's detection"):
        faults.around(object(), host_loss)  # type: ignore[arg-type]
    assert calls == ["set", "start", "host loss", "undo"]


def test_the_faults_hosts_come_from_the_lab_inventory(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from lab.topology import DEFAULT_INVENTORY

    lab = SimpleNamespace(inventory=DEFAULT_INVENTORY)
    monkeypatch.setattr(faults.Stack, "of", classmethod(lambda cls, lab: _Stack()))
    drill = HostFaults.of(lab)  # type: ignore[arg-type]
    assert (drill.bot, drill.db, drill.proxy) == ("bot", "db1", "edge")
    # A fault on the monitoring or chat host would not prove the alert crossing hosts: refused.
    crowded = _Stack()
    crowded.mon = "bot"
    monkeypatch.setattr(faults.Stack, "of", classmethod(lambda cls, lab: crowded))
    with pytest.raises(DrillError, match="must not be the monitoring or chat host"):
        HostFaults.of(lab)  # type: ignore[arg-type]
