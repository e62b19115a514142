"""Failure drill of the multi-host lab (issue 11): three host faults, each on its own host, each alert
raised by Prometheus on the monitoring host and delivered to the admins group across the hosts.

`python -m lab.multi --from drill --to drill` (a kept lab of inventory/lab) or the step `drill` of a
whole cycle. The
single-host drills of `make drill` (tests/infra/test_drill_alerts.py) prove the rules and the route on one
machine; here each fault is on a host that is neither the monitoring host nor the chat host, so each alert
travels node exporter or blackbox exporter → Prometheus (mon) → Alertmanager → the bot (bot) → Rocket.Chat
(chat), read back with the stack's admin account through the public name:

1. restart loop, on the bot host: a container of the stack's name space, CRASHLOOP, from the image the
   bot's container already runs there (nothing pulled), its entrypoint /bin/false, restart policy always,
   no network, 16 MiB. Expected: ContainerRestartLoop{host=<bot host>}; recovered when the container is
   removed and the host's container metrics no longer list it;
2. disk nearly full, on the PostgreSQL host: a 32 MiB ext4 image file of the drill's own, loop-mounted at
   DISK_MOUNT (the lab hosts have this machine's loop devices: lab/control.py), node exporter restarted to
   see it (its bind of the host's / is private), filled to 95 %. Expected: HostDiskNearlyFull{host=<db
   host>, mountpoint=DISK_MOUNT}; recovered when the file is removed and the alert resolves; then
   unmounted, node exporter restarted again, the loop device detached, the image removed. The host's real
   filesystems are never filled;
3. certificate about to expire, on the proxy host: the certificate it serves re-issued by the deployed
   internal CA (its key on the proxy host, read over SSH into this process only) with the same key, names
   and extensions, valid for 3 days; nginx reloaded (SIGHUP, graceful: each request of the host-loss
   drill's loop is a new connection). Expected: CertificateExpiringSoon{probe="public"} from the blackbox
   exporter on the monitoring host; recovered when the original chain is back and the probe sees more
   than 14 days again.

lab.multi sets the three faults, then runs the host-loss drill while `watch` (a thread) waits for each
alert: the faults' alerts wait 0-2 minutes (`for:`), the host loss about as long, so the drills overlap
and the cycle waits for the longer of them, not their sum. Each fault is undone as soon as its alert is in
the admins group, and whatever is left is undone by `undo`, also on failure. Prints what it did, what it
observed and how long detection and recovery took.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from lab import remote
from lab.drill_host_loss import DrillError, Stack
from lab.topology import Lab, ansible_inventory

ROOT = "/srv/photomatrix"  # photomatrix_root on the lab's hosts
CRASHLOOP = "photomatrix-drill-crashloop"
BOT_CONTAINER = "photomatrix-chatbot"
NODE_EXPORTER = "photomatrix-node-exporter"
# The file that fills the drill's filesystem, in its mount point (removing it undoes the fault).
DISK_FILL = "drill-fill"
PROXY = "photomatrix-proxy"
DISK_MIB = 32
DISK_FULL = 0.95  # HostDiskNearlyFull fires under 10 % free
DISK_MOUNT = f"{ROOT}/drill-disk"
# On the lab host (its overlay), never this machine.
DISK_IMAGE = "/var/tmp/photomatrix-drill-disk.img"  # noqa: S108  # nosec B108
FULLCHAIN = f"{ROOT}/pki/server/fullchain.pem"
CA_CERT = f"{ROOT}/pki/ca.crt"
CA_KEY = f"{ROOT}/pki/private/ca.key"
SHORT_DAYS = 3
# The rules' `for:` (2m at most here) plus scrape, evaluation, group wait and the bot's post, loaded.
ALERT_TIMEOUT = 420.0
RECOVERY_TIMEOUT = 240.0
POLL_SECONDS = 10.0
# Their figures in lab.multi's summary (ops/figures.py LAB_STEPS reads them by these names).
STEPS = {
    "restart": "drill host faults: restart loop on the bot host → ContainerRestartLoop in the admins group",
    "disk": "drill host faults: disk nearly full on the db host → HostDiskNearlyFull in the admins group",
    "certificate": "drill host faults: certificate expiring on the proxy → CertificateExpiringSoon in admins",
    "whole": "drill host faults, whole (faults set to every one undone and recovered)",
}


def _log(message: str) -> None:
    print(f"drill host-faults: {time.strftime('%H:%M:%S')} {message}", flush=True)


def short_lived_chain(chain_pem: bytes, ca_cert_pem: bytes, ca_key_pem: bytes, days: int) -> bytes:
    """CHAIN_PEM's first certificate re-issued by the CA with the same public key, subject and extensions
    (its authority key identifier left out), valid for DAYS more days; the rest of the chain kept."""
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    chain = x509.load_pem_x509_certificates(chain_pem)
    leaf = chain[0]
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(leaf.subject)
        .issuer_name(ca_cert.subject)
        .public_key(leaf.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
    )
    for extension in leaf.extensions:
        if extension.oid != x509.oid.ExtensionOID.AUTHORITY_KEY_IDENTIFIER:
            builder = builder.add_extension(extension.value, extension.critical)
    new = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    rest = b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in chain[1:])
    return new.public_bytes(serialization.Encoding.PEM) + rest


RESTART_NODE_EXPORTER = f"docker restart --time 10 {NODE_EXPORTER} >/dev/null"


def disk_script(
    mount: str = DISK_MOUNT, image: str = DISK_IMAGE, restart: str = RESTART_NODE_EXPORTER
) -> str:
    """The disk fault, run as root on its host: the image, its filesystem (no reserved blocks, so free is
    what a process may write), the loop mount, node exporter restarted to see it (RESTART), then a file
    leaving 1 - DISK_FULL free. Prints the loop device."""
    return f"""set -eu
mkdir -p -m 0700 {mount}
truncate --size {DISK_MIB}M {image}
mkfs.ext4 -q -F -m 0 -L pmxdrill {image}
device=$(losetup --find --show {image})
mount -o nodev,nosuid,noexec "$device" {mount}
{restart}
size=$(df --output=size -B1 {mount} | tail -n 1)
avail=$(df --output=avail -B1 {mount} | tail -n 1)
fallocate --length $((avail - size * {round((1 - DISK_FULL) * 100)} / 100)) {mount}/{DISK_FILL}
echo "$device"
"""


def disk_cleanup_script(
    mount: str = DISK_MOUNT, image: str = DISK_IMAGE, restart: str = RESTART_NODE_EXPORTER
) -> str:
    """Undo the disk fault, each step only if it is there; node exporter restarted again (RESTART) so it
    lets go of its copy of the mount (the loop device is released once nothing holds it)."""
    return f"""rm -f {mount}/{DISK_FILL}
if mountpoint -q {mount}; then
  device=$(findmnt --noheadings --output SOURCE {mount})
  umount {mount}
  {restart}
  losetup --detach "$device" 2>/dev/null || true
fi
for device in $(losetup --list --noheadings --output NAME --associated {image} 2>/dev/null); do
  losetup --detach "$device" || true
done
rm -f {image}
rmdir {mount} 2>/dev/null || true
"""


def disk_free(host: str) -> str:
    """PromQL: the free share of the drill's filesystem on HOST, as node exporter there reports it."""
    where = f'{{host="{host}",mountpoint="{DISK_MOUNT}"}}'
    return f"node_filesystem_avail_bytes{where} / node_filesystem_size_bytes{where}"


@dataclass
class Fault:
    """One fault: where, what is expected, and the times seen (Unix time)."""

    name: str
    host: str
    alert: str
    labels: dict[str, str]
    needle: str  # in the admins group's line of the alert
    set_at: float = 0.0
    firing: float | None = None
    delivered: float | None = None
    undone: float | None = None
    recovered: float | None = None
    observed: str = ""

    @property
    def selector(self) -> str:
        labels = {"alertname": self.alert, "alertstate": "firing", **self.labels}
        return "ALERTS{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


@dataclass
class HostFaults:
    lab: Lab
    stack: Stack
    bot: str
    db: str
    proxy: str
    faults: dict[str, Fault] = field(default_factory=dict)
    original_chain: bytes = b""
    started: float = 0.0
    ended: float = 0.0
    error: BaseException | None = None
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def of(cls, lab: Lab) -> HostFaults:
        data = ansible_inventory(lab.inventory, DrillError)
        first = {group: data.get(group, {}).get("hosts", [None])[0] for group in ("bots", "db", "proxy")}
        missing = [group for group, host in first.items() if host is None]
        if missing:
            raise DrillError(f"the host-faults drill needs a host in each of the groups {', '.join(missing)}")
        stack = Stack.of(lab)
        busy = {stack.mon, stack.chat}
        if busy & set(first.values()):
            raise DrillError(f"the faults' hosts {first} must not be the monitoring or chat host")
        return cls(lab, stack, first["bots"], first["db"], first["proxy"])

    def _sudo(self, host: str, script: str, timeout: float = 120) -> str:
        return remote.capture(self.lab, host, f"sudo sh -c {shlex.quote(script)}", timeout=timeout)

    # ------------------------------------------------------------------------------------ the faults
    def set(self) -> None:
        """Set the three faults; a fault that cannot be set fails the drill (undo() clears the rest)."""
        self.started = time.time()
        self._set_crashloop()
        self._set_disk()
        self._set_certificate()

    def _set_crashloop(self) -> None:
        image = remote.capture(
            self.lab, self.bot, f"sudo docker inspect --format '{{{{.Config.Image}}}}' {BOT_CONTAINER}"
        ).strip()
        if not image:
            raise DrillError(f"no {BOT_CONTAINER} container on {self.bot}")
        fault = Fault(
            "restart", self.bot, "ContainerRestartLoop", {"host": self.bot, "container": CRASHLOOP},
            f"{self.bot}: {CRASHLOOP}",
        )  # fmt: skip
        self.faults["restart"] = fault
        argv = [
            "docker", "run", "--detach", "--name", CRASHLOOP, "--restart", "always", "--network", "none",
            "--memory", "16m", "--log-driver", "json-file", "--log-opt", "max-size=1m",
            "--entrypoint", "/bin/false", image,
        ]  # fmt: skip
        self._sudo(self.bot, shlex.join(argv))
        fault.set_at = time.time()
        _log(f"{self.bot}: ran {CRASHLOOP} from {image} (entrypoint /bin/false, restart always)")

    def _set_disk(self) -> None:
        fault = Fault(
            "disk", self.db, "HostDiskNearlyFull", {"host": self.db, "mountpoint": DISK_MOUNT},
            f"{self.db}: {DISK_MOUNT} has",
        )  # fmt: skip
        self.faults["disk"] = fault
        device = self._sudo(self.db, disk_script()).strip().splitlines()
        fault.set_at = time.time()
        _log(
            f"{self.db}: a {DISK_MIB} MiB ext4 image on {device[-1] if device else '?'} mounted at "
            f"{DISK_MOUNT}, {NODE_EXPORTER} restarted, filled to {DISK_FULL:.0%}"
        )

    def _set_certificate(self) -> None:
        read = {path: self._sudo(self.proxy, f"cat {path}").encode() for path in (FULLCHAIN, CA_CERT, CA_KEY)}
        self.original_chain = read[FULLCHAIN]
        shortened = short_lived_chain(read[FULLCHAIN], read[CA_CERT], read[CA_KEY], SHORT_DAYS)
        read.clear()  # the CA's key leaves this process's data as soon as it signed
        fault = Fault(
            "certificate", self.proxy, "CertificateExpiringSoon", {"probe": "public"},
            f"expires in {SHORT_DAYS - 1}d",
        )  # fmt: skip
        self.faults["certificate"] = fault
        self._write_chain(shortened)
        fault.set_at = time.time()
        _log(
            f"{self.proxy}: the served certificate re-issued by the internal CA for {SHORT_DAYS} days, "
            "nginx reloaded"
        )

    def _write_chain(self, chain: bytes) -> None:
        # tee keeps the file's owner and mode; nginx reads it again on SIGHUP (graceful reload).
        command = f"sudo tee {FULLCHAIN} >/dev/null && sudo docker kill --signal HUP {PROXY} >/dev/null"
        remote.run(self.lab, self.proxy, command, timeout=60, stdin=chain)

    # ------------------------------------------------------------------------------------ undoing
    def _undo(self, name: str) -> None:
        fault = self.faults[name]
        if name == "restart":
            self._sudo(fault.host, f"docker rm --force {CRASHLOOP} >/dev/null 2>&1 || true")
        elif name == "disk":
            self._sudo(fault.host, f"rm -f {DISK_MOUNT}/{DISK_FILL}")  # freed: the rest once resolved
        elif name == "certificate":
            self._write_chain(self.original_chain)
        fault.undone = time.time()

    def undo(self) -> None:
        """Undo whatever is left, also after a failure: the lab is left as the drill found it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=POLL_SECONDS * 3)
        for name, fault in self.faults.items():
            try:
                if fault.undone is None:
                    self._undo(name)
                if name == "disk":
                    self._sudo(fault.host, disk_cleanup_script())
            except (remote.RemoteError, OSError) as exc:
                _log(f"undoing {name} on {fault.host} failed: {exc}")

    # ------------------------------------------------------------------------------------ watching
    def _recovered(self, name: str) -> bool:
        fault = self.faults[name]
        if name == "restart":
            return not self.stack.query(f'photomatrix_container_restarts_total{{container="{CRASHLOOP}"}}')
        if name == "disk":
            return bool(self.stack.query(disk_free(fault.host) + " > 0.5")) and not self.stack.query(
                fault.selector
            )
        return bool(self.stack.query('probe_ssl_earliest_cert_expiry{probe="public"} - time() > 14 * 86400'))

    def _poll(self) -> bool:
        """One look at Prometheus and the admins group; True when every fault is recovered."""
        now = time.time()
        messages: list[dict] | None = None
        for name, fault in self.faults.items():
            if fault.firing is None and self.stack.query(fault.selector):
                fault.firing = now
                _log(f"Prometheus: {fault.alert} firing for {fault.host}: after {now - fault.set_at:.0f} s")
            if fault.firing is not None and fault.delivered is None:
                if messages is None:
                    messages = self.stack.admins_messages()
                line = next(
                    (
                        m.get("msg", "")
                        for m in messages
                        if fault.alert in m.get("msg", "") and fault.needle in m.get("msg", "")
                    ),
                    "",
                )
                if line:
                    fault.delivered = now
                    _log(
                        f"admins group: {fault.alert} ({fault.host}): after {now - fault.set_at:.0f} s: "
                        f"{line[:160]}"
                    )
                    self._observe(name)
                    self._undo(name)
                    _log(f"{fault.host}: {name} undone")
            if fault.undone is not None and fault.recovered is None and self._recovered(name):
                fault.recovered = time.time()
                _log(f"{fault.host}: {name} recovered: after {fault.recovered - fault.undone:.0f} s")
            if fault.delivered is None and now - fault.set_at > ALERT_TIMEOUT:
                raise DrillError(
                    f"{fault.alert} for {fault.host}: not in the admins group within {ALERT_TIMEOUT:.0f} s"
                )
            if fault.undone is not None and fault.recovered is None and now - fault.undone > RECOVERY_TIMEOUT:
                raise DrillError(
                    f"{name} on {fault.host}: not recovered within {RECOVERY_TIMEOUT:.0f} s of the undo"
                )
        return all(f.recovered is not None for f in self.faults.values())

    def _observe(self, name: str) -> None:
        """What the fault looked like when its alert arrived (for the report)."""
        fault = self.faults[name]
        try:
            if name == "restart":
                count = remote.capture(
                    self.lab, fault.host, f"sudo docker inspect --format '{{{{.RestartCount}}}}' {CRASHLOOP}"
                ).strip()
                fault.observed = f"Docker restarted {CRASHLOOP} {count} times"
            elif name == "disk":
                result = self.stack.query(disk_free(fault.host))
                free = float(result[0]["value"][1]) if result else float("nan")
                fault.observed = f"node exporter on {fault.host} reported {free:.1%} free on {DISK_MOUNT}"
            else:
                result = self.stack.query('probe_ssl_earliest_cert_expiry{probe="public"} - time()')
                left = float(result[0]["value"][1]) / 86400 if result else float("nan")
                fault.observed = (
                    f"the blackbox probe of the public name saw the certificate expire in {left:.1f} days"
                )
        except (remote.RemoteError, ValueError, KeyError, IndexError) as exc:
            fault.observed = f"(not read: {exc})"

    def watch(self) -> None:
        """Poll until every fault is recovered (run as a thread beside the host-loss drill)."""
        try:
            self.stack.login()
            while not self._stop.is_set():
                try:
                    if self._poll():
                        break
                except (remote.RemoteError, OSError, ValueError, KeyError) as exc:
                    _log(f"not yet ({type(exc).__name__}: {str(exc)[:120]})")
                self._stop.wait(POLL_SECONDS)
        except BaseException as exc:  # reported by join()
            self.error = exc
        finally:
            self.ended = time.time()

    def start(self) -> None:
        self._thread = threading.Thread(target=self.watch, name="drill-host-faults", daemon=True)
        self._thread.start()

    def join(self, timeout: float = ALERT_TIMEOUT + RECOVERY_TIMEOUT + 120) -> dict[str, tuple[float, float]]:
        """Wait for the watch to end; its result as lab.multi's figures, or the drill's error."""
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            if self._thread.is_alive():
                self._stop.set()
                raise DrillError(f"the host-faults drill did not end within {timeout:.0f} s")
        if self.error is not None:
            raise self.error if isinstance(self.error, DrillError) else DrillError(str(self.error))
        undone = [name for name, fault in self.faults.items() if fault.recovered is None]
        if undone:
            raise DrillError(f"the host-faults drill ended before {', '.join(undone)} recovered")
        for fault in self.faults.values():
            assert fault.delivered is not None  # nosec B101
            assert fault.undone is not None  # nosec B101
            assert fault.recovered is not None  # nosec B101
            _log(
                f"{fault.name} on {fault.host}: {fault.alert} in the admins group after "
                f"{fault.delivered - fault.set_at:.0f} s ({fault.observed}); recovered "
                f"{fault.recovered - fault.undone:.0f} s after the undo"
            )
        _log("passed")
        load = os.getloadavg()[0]
        figures = {STEPS[name]: (fault.delivered - fault.set_at, load) for name, fault in self.faults.items()}  # type: ignore[operator]
        figures[STEPS["whole"]] = (self.ended - self.started, load)
        return figures


def around(lab: Lab, inner: Callable[[], dict[str, tuple[float, float]]]) -> dict[str, tuple[float, float]]:
    """Set the faults, run INNER (the host-loss drill) while they are watched, then wait for them; the
    faults are undone whatever happens. Returns INNER's figures and the faults'."""
    drill = HostFaults.of(lab)
    _log(
        f"restart loop on {drill.bot}, disk nearly full on {drill.db}, certificate expiring on "
        f"{drill.proxy}; "
        f"Prometheus on {drill.stack.mon}, admins group on {drill.stack.chat}"
    )
    try:
        drill.set()
        drill.start()
        figures = inner()
        figures.update(drill.join())
        return figures
    finally:
        drill.undo()
