"""Bring a lab up, tear it down, show it. Only objects carrying the lab's label and name are touched."""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import socket
import ssl
import subprocess  # nosec B404
import time
import urllib.request
from pathlib import Path

from lab import docker, images, pki
from lab.topology import LABEL, Lab

# Exactly what a host container needs to run its own dockerd here (`--privileged` fails: root on these
# machines lacks CAP_SYS_RESOURCE).
HOST_RUN_OPTIONS = (
    "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--cgroupns", "host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run",
)  # fmt: skip
# The machine's loop devices (a drill loop-mounts a small filesystem of its own: tests/infra/
# test_drill_alerts.py, disk nearly full): the control device and every /dev/loopN node that exists here,
# with the block devices of major 7 allowed; losetup in a host finds a free one among them.
LOOP_DEVICES = sorted(str(p) for p in Path("/dev").glob("loop[0-9]*") if p.is_block_device())


def loop_options(devices: list[str] | None = None) -> tuple[str, ...]:
    """docker run options giving a host the loop devices DEVICES (default: this machine's)."""
    devices = LOOP_DEVICES if devices is None else devices
    if not devices or not Path("/dev/loop-control").exists():
        return ()
    return ("--device", "/dev/loop-control", "--device-cgroup-rule", "b 7:* rmw",
            *(option for device in devices for option in ("--device", device)))  # fmt: skip


CERTS_D = Path("/etc/docker/certs.d")
HOSTS_FILE = Path("/etc/hosts")
# The site's own certificate authorities on the control machine; lab hosts trust them too.
SITE_CA_DIR = Path("/usr/local/share/ca-certificates")
READY_TIMEOUT = 90.0


LOCK_DIR = Path("/run/lock")
LOCK_TIMEOUT = 3600.0
_held: set[str] = set()


@contextlib.contextmanager
def lock(lab: Lab, timeout: float = LOCK_TIMEOUT):
    """One process at a time changes a lab (up, down, a whole cycle); others wait, then give up."""
    if lab.name in _held:
        yield
        return
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    with (LOCK_DIR / f"photomatrix-lab-{lab.name}.lock").open("w") as handle:
        deadline = time.monotonic() + timeout
        announced = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not announced:
                    _log(f"lab {lab.name} is busy (another up, down or cycle); waiting up to {timeout:.0f} s")
                    announced = True
                if time.monotonic() > deadline:
                    raise docker.DockerError(f"lab {lab.name} stayed busy for {timeout:.0f} s") from None
                time.sleep(2)
        _held.add(lab.name)
        try:
            yield
        finally:
            _held.discard(lab.name)
            fcntl.flock(handle, fcntl.LOCK_UN)


def _log(message: str) -> None:
    print(f"lab: {message}", flush=True)


def _ssh_key(lab: Lab) -> Path:
    key = lab.state_dir / "ssh" / "id_ed25519"
    if not key.exists():
        key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        subprocess.run(  # noqa: S603  # nosec B603
            ["/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{lab.name}-lab", "-f", str(key)],
            check=True,
            timeout=30,
        )
    return key


def _network(lab: Lab) -> None:
    current = docker.inspect("network", lab.network)
    if current is not None:
        labels = current.get("Labels") or {}
        subnets = [c.get("Subnet") for c in (current.get("IPAM", {}).get("Config") or [])]
        if labels.get(LABEL) != lab.name or subnets != [str(lab.subnet)]:
            raise docker.DockerError(
                f"network {lab.network} exists but is not this lab's ({subnets}); remove it or rename the lab"
            )
        return
    docker.run(
        ["network", "create", "--driver", "bridge", "--label", lab.label, "--subnet", str(lab.subnet),
         "--gateway", lab.gateway, "--opt", f"com.docker.network.bridge.name=br-{lab.name[:12]}",
         lab.network]
    )  # fmt: skip


def _wanted(name: str, image: str, lab: Lab) -> bool:
    """True when NAME runs IMAGE for this lab already (kept); otherwise any old container is removed."""
    current = docker.inspect("container", name)
    if current is None:
        return False
    labels = current.get("Config", {}).get("Labels") or {}
    if labels.get(LABEL) != lab.name:
        raise docker.DockerError(f"container {name} exists and is not part of lab {lab.name}: not touched")
    if current.get("State", {}).get("Running") and current.get("Config", {}).get("Image") == image:
        return True
    docker.run(["rm", "--force", name], timeout=120)
    return False


def _wait(what: str, probe, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if probe():
                return
        except (OSError, docker.DockerError, ssl.SSLError) as exc:
            error = exc
        time.sleep(1)
    raise docker.DockerError(f"{what} not ready within {timeout:.0f} s ({error})")


# A lab service (its registry, its ACME CA): every capability dropped but those its init script needs to
# hand the TLS key to the service's own user, no new privileges.
SERVICE_RUN_OPTIONS = (
    "--restart", "unless-stopped", "--tmpfs", "/run", "--cap-drop", "ALL",
    "--cap-add", "CHOWN", "--cap-add", "SETUID", "--cap-add", "SETGID", "--cap-add", "DAC_OVERRIDE",
    "--cap-add", "FOWNER", "--security-opt", "no-new-privileges",
)  # fmt: skip


def _service(
    lab: Lab, role: str, address: str, image: str, urls: list[str], extra: tuple[str, ...] = ()
) -> None:
    """The lab service <lab>-ROLE at ADDRESS, serving TLS with <pki>/ROLE.crt and .key (read-only at
    /etc/lab/tls.*), ready once each of URLS answers 200, verified against the lab CA."""
    name = f"{lab.name}-{role}"
    pki_dir = lab.state_dir / "pki"
    if not _wanted(name, image, lab):
        docker.run(
            ["run", "--detach", "--name", name, "--hostname", role, "--label", lab.label,
             "--label", f"{LABEL}.role={role}", "--network", lab.network, "--ip", address,
             *SERVICE_RUN_OPTIONS,
             "--mount", f"type=bind,src={pki_dir / f'{role}.crt'},dst=/etc/lab/tls.crt,readonly",
             "--mount", f"type=bind,src={pki_dir / f'{role}.key'},dst=/etc/lab/tls.key,readonly",
             *extra, image]
        )  # fmt: skip
    context = ssl.create_default_context(cafile=str(pki_dir / "ca.crt"))

    def answers() -> bool:
        # https only (the URLs are built here), verified against the lab CA.
        for url in urls:
            with urllib.request.urlopen(url, timeout=5, context=context) as response:  # noqa: S310  # nosec B310
                if response.status != 200:
                    return False
        return True

    _wait(f"{role} {urls[0]}", answers)


def _registry(lab: Lab, image: str) -> None:
    volume = (
        f"type=volume,src={lab.registry_container}-data,dst=/var/lib/docker-registry,volume-label={lab.label}"
    )
    _service(lab, "registry", lab.registry_ip, image, [f"https://{lab.registry}/v2/"], ("--mount", volume))
    # This machine's engine trusts the lab CA for this registry only, so it can push there.
    trust = CERTS_D / lab.registry
    trust.mkdir(mode=0o755, parents=True, exist_ok=True)
    shutil.copyfile(lab.state_dir / "pki" / "ca.crt", trust / "ca.crt")


def _acme(lab: Lab, image: str) -> None:
    """The lab's ACME CA (pebble) at lab_acme: its directory and management API over TLS from the lab CA,
    the lab's public names resolved to their hosts for its HTTP-01 validations."""
    names = tuple(f"--add-host={n}:{a}" for n, a in sorted(lab.public_names.items()))
    _service(lab, "acme", lab.acme, image, [lab.acme_directory, lab.acme_roots], names)


def _host(lab: Lab, host: str, address: str, image: str) -> None:
    name = lab.container(host)
    if _wanted(name, image, lab):
        return
    state = lab.state_dir
    site_ca = (
        ["--mount", f"type=bind,src={SITE_CA_DIR},dst=/etc/lab/site-ca,readonly"]
        if SITE_CA_DIR.is_dir()
        else []
    )
    ca_mount = (
        f"type=bind,src={state / 'pki' / 'ca.crt'},dst=/etc/docker/certs.d/{lab.registry}/ca.crt,readonly"
    )
    # The lab CA signs the lab's public services (registry, ACME CA): the host trusts it as a server trusts
    # the public CAs (lab-host-init adds it to the system's bundle).
    lab_ca = f"type=bind,src={state / 'pki' / 'ca.crt'},dst=/etc/lab/lab-ca.crt,readonly"
    docker.run(
        ["run", "--detach", "--name", name, "--hostname", host, "--label", lab.label,
         "--label", f"{LABEL}.host={host}", "--network", lab.network, "--ip", address,
         "--restart", "unless-stopped", *HOST_RUN_OPTIONS, *loop_options(),
         "--mount", f"type=volume,src={name}-docker,dst=/var/lib/docker,volume-label={lab.label}",
         "--mount", f"type=bind,src={state / 'ssh' / 'id_ed25519.pub'},dst=/etc/lab/authorized_keys,readonly",
         "--mount", ca_mount, "--mount", lab_ca, *site_ca,
         *[f"--add-host={n}:{a}" for n, a in sorted(lab.public_names.items())],
         image]
    )  # fmt: skip


def _remove_stale_hosts(lab: Lab) -> None:
    """Hosts of this lab that the inventory no longer names go away (with their engine's volume)."""
    for cid in docker.ids("container", lab.label):
        info = docker.inspect("container", cid) or {}
        host = (info.get("Config", {}).get("Labels") or {}).get(f"{LABEL}.host")
        name = info.get("Name", "").lstrip("/")
        if host and host not in lab.hosts and name == lab.container(host):
            _log(f"remove {name} (no longer in {lab.inventory.name})")
            docker.run(["rm", "--force", cid], timeout=180)
            docker.run(["volume", "rm", "--force", f"{name}-docker"], timeout=120, check=False)


def _hosts_file(lab: Lab, present: bool) -> None:
    """This machine resolves the lab's public names to their lab hosts: lines marked with the lab's
    label in /etc/hosts, rewritten in place (it may be a bind mount), removed by `down`."""
    if not HOSTS_FILE.exists():
        return
    marker = f"# {lab.label}"
    lines = [line for line in HOSTS_FILE.read_text().splitlines() if not line.endswith(marker)]
    if present:
        lines += [f"{address} {name} {marker}" for name, address in sorted(lab.public_names.items())]
    with HOSTS_FILE.open("r+") as handle:
        handle.seek(0)
        handle.write("\n".join(lines) + "\n")
        handle.truncate()


def _ssh_banner(address: str) -> bool:
    with socket.create_connection((address, 22), timeout=3) as conn:
        conn.settimeout(3)
        return conn.recv(64).startswith(b"SSH-2.0-")


def _engine_ready(name: str) -> bool:
    answer = docker.run(["exec", name, "docker", "info", "--format", "{{.ServerVersion}}"], check=False)
    return answer.strip() != ""


def _known_hosts(lab: Lab) -> None:
    lines = []
    for host, address in lab.hosts.items():
        key = docker.run(["exec", lab.container(host), "cat", "/etc/ssh/ssh_host_ed25519_key.pub"]).split()
        lines.append(f"{address} {key[0]} {key[1]}\n")
    (lab.state_dir / "known_hosts").write_text("".join(lines))


def push_base(lab: Lab, base: str) -> str:
    """Push the project's debootstrap base to the lab registry; returns the reference hosts pull."""
    ref = f"{lab.registry}/photomatrix/{base.split('/', 1)[1]}"
    docker.run(["tag", base, ref])
    docker.run(["push", "--quiet", ref], timeout=600)
    return ref


def up(lab: Lab) -> dict[str, float]:
    """Create whatever is missing; keep what runs already. Returns the time each phase took."""
    with lock(lab):
        return _up(lab)


def _up(lab: Lab) -> dict[str, float]:
    times: dict[str, float] = {}
    started = time.monotonic()
    lab.state_dir.mkdir(mode=0o700, exist_ok=True)
    _ssh_key(lab)
    pki.ensure_registry_pki(lab.state_dir / "pki", lab.name, lab.registry_ip)
    if lab.acme:
        pki.ensure_service_cert(lab.state_dir / "pki", "acme", f"acme.{lab.name}.lab", lab.acme)
    base = images.base_image()
    host_image = images.recipe_image("host", base)
    registry_image = images.recipe_image("registry", base)
    acme_image = images.recipe_image("acme", base) if lab.acme else ""
    times["images"] = time.monotonic() - started
    mark = time.monotonic()
    _network(lab)
    _registry(lab, registry_image)
    if lab.acme:
        _acme(lab, acme_image)
    _remove_stale_hosts(lab)
    for host, address in lab.hosts.items():
        _host(lab, host, address, host_image)
    for host, address in lab.hosts.items():
        _wait(f"{host}'s Docker Engine", lambda h=host: _engine_ready(lab.container(h)))
        _wait(f"{host}'s sshd on {address}:22", lambda a=address: _ssh_banner(a))
    _known_hosts(lab)
    _hosts_file(lab, present=True)
    times["hosts"] = time.monotonic() - mark
    mark = time.monotonic()
    ref = push_base(lab, base)
    times["push"] = time.monotonic() - mark
    times["total"] = time.monotonic() - started
    _log(f"registry {lab.registry} holds {ref}")
    if lab.acme:
        _log(f"ACME CA {lab.acme_directory} (roots: {lab.acme_roots})")
    for host, address in lab.hosts.items():
        _log(f"{host:<10} {address:<15} ssh deploy@{address}")
    _log(
        f"up in {times['total']:.0f} s (images {times['images']:.0f} s, hosts {times['hosts']:.0f} s, "
        f"push {times['push']:.0f} s); key and known_hosts in {lab.state_dir}"
    )
    return times


def down(lab: Lab, purge_images: bool = False) -> None:
    """Remove this lab's containers, volumes, network, registry trust and state; nothing else."""
    with lock(lab):
        _down(lab, purge_images)


def _down(lab: Lab, purge_images: bool) -> None:
    prefix = f"{lab.name}-"
    for cid in docker.ids("container", lab.label):
        info = docker.inspect("container", cid)
        if info and info["Name"].lstrip("/").startswith(prefix):
            docker.run(["rm", "--force", "--volumes", cid], timeout=180)
    for volume in docker.ids("volume", lab.label):
        if volume.startswith(prefix):
            docker.run(["volume", "rm", "--force", volume], timeout=120)
    for network in docker.ids("network", lab.label):
        info = docker.inspect("network", network)
        if info and info["Name"] == lab.network:
            docker.run(["network", "rm", network], timeout=60)
    tags = docker.run(["image", "ls", "--format", "{{.Repository}}:{{.Tag}}", f"{lab.registry}/*/*"])
    for tag in tags.split():
        docker.run(["image", "rm", tag], check=False)
    shutil.rmtree(CERTS_D / lab.registry, ignore_errors=True)
    _hosts_file(lab, present=False)
    shutil.rmtree(lab.state_dir, ignore_errors=True)
    if purge_images:
        images.remove_cached()
    _log(f"lab {lab.name} removed")


def status(lab: Lab) -> list[tuple[str, str, str]]:
    """(container, state, address) of every container of this lab."""
    rows = []
    for cid in docker.ids("container", lab.label):
        info = docker.inspect("container", cid)
        if not info:
            continue
        networks = info.get("NetworkSettings", {}).get("Networks", {})
        address = (networks.get(lab.network) or {}).get("IPAddress", "")
        rows.append((info["Name"].lstrip("/"), info["State"]["Status"], address))
    return sorted(rows)
