"""What the lab is made of, read from an Ansible inventory (hosts, addresses, lab variables)."""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess  # nosec B404
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_INVENTORY = ROOT / "inventory" / "lab"
LABEL = "org.photomatrix.lab"
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]{1,19}$")
# The lab's ACME CA (lab_acme): pebble's ACME directory and its management API (the roots).
ACME_PORT = 14000
ACME_MANAGEMENT_PORT = 15000


class LabConfigError(ValueError):
    """The inventory does not describe a lab this tool can start."""


@dataclass(frozen=True)
class Lab:
    name: str
    subnet: ipaddress.IPv4Network
    registry: str
    hosts: dict[str, str]
    inventory: Path
    # Public names (e.g. photomatrix_domain) and the address they resolve to, here and on the hosts.
    public_names: dict[str, str] = field(default_factory=dict)
    # The address of the lab's ACME CA (pebble, lab_acme), or "" when the lab runs none.
    acme: str = ""

    @property
    def state_dir(self) -> Path:
        """Generated per lab, never committed: SSH key, known_hosts, PKI (`.lab/` is git-ignored)."""
        return self.inventory / ".lab"

    @property
    def registry_ip(self) -> str:
        return self.registry.rsplit(":", 1)[0]

    @property
    def registry_port(self) -> int:
        return int(self.registry.rsplit(":", 1)[1])

    @property
    def gateway(self) -> str:
        return str(next(self.subnet.hosts()))

    @property
    def label(self) -> str:
        return f"{LABEL}={self.name}"

    def container(self, host: str) -> str:
        return f"{self.name}-{host}"

    @property
    def registry_container(self) -> str:
        return f"{self.name}-registry"

    @property
    def network(self) -> str:
        return f"{self.name}-net"

    @property
    def acme_container(self) -> str:
        return f"{self.name}-acme"

    @property
    def acme_directory(self) -> str:
        """The ACME directory URL (tls_proxy_acme_directory of a lab inventory in ACME mode)."""
        return f"https://{self.acme}:{ACME_PORT}/dir"

    @property
    def acme_roots(self) -> str:
        """The URL of the ACME CA's root (tls_proxy_acme_trust_roots), from pebble's management API."""
        return f"https://{self.acme}:{ACME_MANAGEMENT_PORT}/roots/0"


def ansible_inventory(inventory: Path, error: type[Exception] = LabConfigError) -> dict:
    """`ansible-inventory --list` of INVENTORY (bounded in time); ERROR when it cannot be read."""
    program = Path(sys.executable).parent / "ansible-inventory"
    try:
        out = subprocess.run(  # noqa: S603  # nosec B603
            [str(program), "-i", str(inventory), "--list"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise error(f"ansible-inventory did not answer within 120 s for {inventory}") from exc
    if out.returncode != 0:
        raise error(f"ansible-inventory cannot read {inventory}: {out.stderr.strip()[-800:]}")
    return json.loads(out.stdout)


def load(inventory: Path = DEFAULT_INVENTORY) -> Lab:
    """Read and check the lab described by INVENTORY (a directory with hosts.yml and group_vars)."""
    inventory = inventory.resolve()
    if not inventory.is_dir():
        raise LabConfigError(f"{inventory}: not an inventory directory")
    data = ansible_inventory(inventory)
    hostvars: dict[str, dict] = data.get("_meta", {}).get("hostvars", {})
    if not hostvars:
        raise LabConfigError(f"{inventory}: no hosts")
    first = next(iter(hostvars.values()))
    name = str(first.get("lab_name", ""))
    if not NAME_PATTERN.match(name) or name.startswith("photomatrix"):
        raise LabConfigError(
            f"lab_name {name!r}: lowercase letters and digits, 2-20 characters, not starting with "
            "'photomatrix' (the prefix of the stack `make up` deploys)"
        )
    try:
        subnet = ipaddress.IPv4Network(str(first.get("lab_subnet", "")))
    except ValueError as exc:
        raise LabConfigError(f"lab_subnet: {exc}") from exc
    registry = str(first.get("container_registry", ""))
    match = re.fullmatch(r"(\d+\.\d+\.\d+\.\d+):(\d+)", registry)
    if not match:
        raise LabConfigError(f"container_registry {registry!r}: expected ADDRESS:PORT on the lab subnet")
    gateway = next(subnet.hosts())
    taken = {match.group(1): "container_registry"}
    hosts: dict[str, str] = {}
    for host, hvars in sorted(hostvars.items()):
        for key in ("lab_name", "lab_subnet", "container_registry", "lab_acme"):
            if str(hvars.get(key, "")) != str(first.get(key, "")):
                raise LabConfigError(f"{host}: {key} differs between hosts; set it once for all")
        address = str(hvars.get("ansible_host", ""))
        if not re.fullmatch(r"[a-z][a-z0-9-]{0,30}", host):
            raise LabConfigError(f"{host}: host names are lowercase letters, digits and '-'")
        try:
            ip = ipaddress.IPv4Address(address)
        except ValueError as exc:
            raise LabConfigError(f"{host}: ansible_host {address!r} is not an IPv4 address") from exc
        if ip not in subnet or ip == gateway or ip in (subnet.network_address, subnet.broadcast_address):
            raise LabConfigError(f"{host}: {ip} is not a host address of {subnet} other than {gateway}")
        if address in taken:
            raise LabConfigError(f"{host}: {ip} is already {taken[address]}'s address")
        taken[address] = host
        hosts[host] = address
    registry_ip = ipaddress.IPv4Address(match.group(1))
    if registry_ip not in subnet or registry_ip == gateway:
        raise LabConfigError(f"container_registry {registry}: not a host address of {subnet}")
    acme = str(first.get("lab_acme", "") or "")
    if acme:
        try:
            acme_ip = ipaddress.IPv4Address(acme)
        except ValueError as exc:
            raise LabConfigError(f"lab_acme {acme!r}: not an IPv4 address") from exc
        if acme_ip not in subnet or acme_ip in (gateway, subnet.network_address, subnet.broadcast_address):
            raise LabConfigError(f"lab_acme {acme}: not a host address of {subnet} other than {gateway}")
        if acme in taken:
            raise LabConfigError(f"lab_acme {acme}: already {taken[acme]}'s address")
    public_names: dict[str, str] = {}
    for public, target in (first.get("lab_public_names") or {}).items():
        if not re.fullmatch(r"[a-z0-9]([a-z0-9.-]{0,250}[a-z0-9])?", str(public)) or target not in hosts:
            raise LabConfigError(f"lab_public_names: {public!r} must be a DNS name and {target!r} a lab host")
        public_names[str(public)] = hosts[target]
    return Lab(
        name=name,
        subnet=subnet,
        registry=registry,
        hosts=hosts,
        inventory=inventory,
        public_names=public_names,
        acme=acme,
    )
