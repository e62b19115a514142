"""Fixtures for the deployment tests: the deployed stack, reached with testinfra.

The tests in tests/infra/ verify a stack that was deployed; they skip unless `make verify`
(PHOTOMATRIX_VERIFY=1) or `make test-infra` runs them, so a plain `pytest` run stays quick.

Two kinds of fixtures:
- `fleet` / `fleet_host`: every host of the inventory in PHOTOMATRIX_INVENTORY (default inventory/local),
  reached through testinfra's Ansible backend exactly as Ansible reaches it (SSH, become). Tests using
  them are read-only and run against any inventory (`make verify INVENTORY=...`).
- `stack` / `host`: the stack `make up` deployed on this machine (inventory/local); these tests skip
  for any other inventory.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pytest
import testinfra

from lab.drill_rocketchat import bot_get_code
from ops.scripts import wait_healthy

ROOT = Path(__file__).resolve().parents[2]
LOCAL_INVENTORY = ROOT / "inventory" / "local"


def verify_inventory() -> Path:
    """The inventory under verification: PHOTOMATRIX_INVENTORY (relative to the repository) or local."""
    value = os.environ.get("PHOTOMATRIX_INVENTORY", "")
    path = Path(value) if value else LOCAL_INVENTORY
    return (path if path.is_absolute() else ROOT / path).resolve()


def read_inventory(inventory: Path) -> dict:
    """`ansible-inventory --list` of INVENTORY (groups, hosts and their variables, not templated)."""
    program = Path(sys.executable).with_name("ansible-inventory")
    out = subprocess.run(
        [str(program), "-i", str(inventory), "--list"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout)


def _group_members(data: dict, group: str) -> list[str]:
    entry = data.get(group, {})
    members = list(entry.get("hosts", []))
    for child in entry.get("children", []):
        members += [h for h in _group_members(data, child) if h not in members]
    return members


@dataclass(frozen=True)
class Fleet:
    """The hosts of one inventory, each reached with testinfra through the Ansible backend."""

    inventory: Path
    data: dict

    @property
    def hostvars(self) -> dict[str, dict]:
        return self.data.get("_meta", {}).get("hostvars", {})

    @property
    def names(self) -> list[str]:
        return sorted(_group_members(self.data, "all"))

    def group(self, name: str) -> list[str]:
        return sorted(_group_members(self.data, name))

    def groups_of(self, host: str) -> set[str]:
        return {g for g in self.data if g not in ("_meta", "all") and host in _group_members(self.data, g)}

    def var(self, host: str, name: str, default=None):
        return self.hostvars.get(host, {}).get(name, default)

    def is_local(self, host: str) -> bool:
        return self.var(host, "ansible_connection") == "local"

    @property
    def local(self) -> bool:
        """True when every host is this machine (inventory/local)."""
        return all(self.is_local(h) for h in self.names)

    def address(self, host: str) -> str:
        """The host's private address (docs/topology.md): photomatrix_host_address, else ansible_host."""
        if self.is_local(host):
            return "127.0.0.1"
        return str(self.var(host, "photomatrix_host_address") or self.var(host, "ansible_host") or host)

    def deployed_name(self, host: str) -> str:
        """The host's name in the inventory that deployed it: its own, except for a lab host whose stack
        `make up` deployed there with inventory/local (lab/single's `lab_deployed_as: localhost`)."""
        return str(self.var(host, "lab_deployed_as") or host)

    @cached_property
    def hosts(self) -> dict[str, testinfra.host.Host]:
        # testinfra's Ansible backend calls ansible-inventory from PATH: the venv's.
        bin_dir = str(Path(sys.executable).parent)
        if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
        return {
            name: testinfra.get_host("local://")
            if self.is_local(name)
            else testinfra.get_host(f"ansible://{name}?ansible_inventory={self.inventory}")
            for name in self.names
        }


def fleet_host_names() -> list[str]:
    """Host names to parametrize per-host tests with (only when verifying: reading costs a second)."""
    if os.environ.get("PHOTOMATRIX_VERIFY") != "1":
        return ["(no inventory)"]
    return sorted(_group_members(read_inventory(verify_inventory()), "all"))


@dataclass(frozen=True)
class Stack:
    """Names and paths of the deployed stack (inventory/local)."""

    root: Path = Path(os.environ.get("PHOTOMATRIX_ROOT", "/srv/photomatrix"))
    domain: str = os.environ.get("PHOTOMATRIX_DOMAIN", "localhost")
    https_port: int = 443
    http_port: int = 80
    proxy: str = "photomatrix-proxy"
    # Holds the proxy's network (published ports, address); the nginx container joins it.
    proxy_net: str = "photomatrix-proxy-net"
    rocketchat: str = "photomatrix-rocketchat"
    erp: str = "photomatrix-erp-api"
    bot: str = "photomatrix-chatbot"
    mongodb: str = "photomatrix-mongodb"
    proxy_internal_url: str = "https://proxy:8443"
    containers: tuple[str, ...] = field(default=())

    @property
    def ca_file(self) -> Path:
        return self.root / "pki" / "ca.crt"

    @property
    def base_url(self) -> str:
        return f"https://{self.domain}"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


def docker_inspect(name: str) -> dict:
    out = subprocess.run(["docker", "inspect", name], capture_output=True, text=True, timeout=30, check=True)
    return json.loads(out.stdout)[0]


def run_proxy_play(stack: Stack, *extra: str) -> subprocess.CompletedProcess[str]:
    """playbooks/proxy.yml on this machine's stack, with the image the proxy runs now (no swap for that)."""
    image = docker_inspect(stack.proxy)["Config"]["Image"]
    command = [str(Path(sys.executable).with_name("ansible-playbook")), "playbooks/proxy.yml"]
    return subprocess.run(
        [*command, "-e", f"tls_proxy_image={image}", *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


# Docker's first health check comes one interval (30 s, or the inventory's photomatrix_healthcheck_interval)
# after a start; a deploy's wait ran the check itself (roles/common, wait_healthy), so a container it just
# started may still say "starting".
HEALTH_SETTLE = 50


def health_check_argv(info: dict) -> list[str] | None:
    """The command of a container's own health check (its `docker inspect` INFO), for `docker exec`:
    roles/common's wait script's reading of it."""
    return wait_healthy().check_argv(info.get("Config") or {})


def health_check_timeout(info: dict) -> float:
    return ((info.get("Config") or {}).get("Healthcheck") or {}).get("Timeout", 0) / 10**9 or 30.0


def docker_health(name: str, settle: float = HEALTH_SETTLE) -> str:
    """NAME's Docker health status ("none" without a check) once past "starting". While Docker has not
    judged it yet ("starting"), its own check is run now, as Docker would run it (roles/common's wait
    script's run_check: `docker exec`, the container's user and environment; it changes nothing): exit 0
    is "healthy", as that script judges a deploy's wait; otherwise re-read for up to SETTLE seconds."""
    deadline = time.monotonic() + settle
    while True:
        info = docker_inspect(name)
        status = (info["State"].get("Health") or {}).get("Status", "none")
        if status != "starting":
            return status
        argv = health_check_argv(info)
        running = info["State"].get("Running")
        if (
            argv
            and running
            and wait_healthy().run_check(name, argv, health_check_timeout(info) + 10)["ExitCode"] == 0
        ):
            return "healthy"
        if time.monotonic() > deadline:
            return status
        time.sleep(2)


def bot_get(container: str, path: str, timeout: float = 10) -> str:
    """GET PATH from a bot replica's own port, inside its container: HTTPS when it serves it (its
    BOT_HTTP_TLS_CERTFILE), the chain checked against the internal CA it has (BOT_HTTP_TLS_CAFILE, else
    /etc/bot/ca.crt; the name is checked by Prometheus and Alertmanager, which call it by name), else plain
    HTTP."""
    return container_python(container, bot_get_code(path, timeout), timeout=timeout + 50)


# Alertmanager's call to the bot (roles/monitoring, alertmanager.yml.j2), from its container: HTTPS with
# the bot's certificate checked for the name chatbot against Alertmanager's CA copy when it has one.
ALERTMANAGER_TO_BOT = """
import os, ssl, urllib.error, urllib.request
tls = os.path.exists("/etc/alertmanager/ca.crt")
context = ssl.create_default_context(cafile="/etc/alertmanager/ca.crt") if tls else None
url = ("https" if tls else "http") + "://chatbot:8080/alerts/alertmanager"
"""


def container_python(container: str, code: str, timeout: float = 60) -> str:
    """Run Python inside a deployed container (its own interpreter and libraries) and return stdout."""
    out = subprocess.run(
        ["docker", "exec", container, "python", "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert out.returncode == 0, f"{container}: {out.stderr[-2000:]}"
    return out.stdout


@pytest.fixture(scope="session")
def fleet() -> Fleet:
    if os.environ.get("PHOTOMATRIX_VERIFY") != "1":
        pytest.skip("deployment tests run through `make verify` / `make test-infra` (PHOTOMATRIX_VERIFY=1)")
    inventory = verify_inventory()
    return Fleet(inventory=inventory, data=read_inventory(inventory))


@pytest.fixture
def fleet_host(fleet: Fleet, request: pytest.FixtureRequest) -> tuple[str, testinfra.host.Host]:
    """(name, testinfra host) of the host a per-host test was parametrized with (`host_name`)."""
    name = request.node.callspec.params["host_name"]
    return name, fleet.hosts[name]


@pytest.fixture(scope="session")
def stack() -> Stack:
    if os.environ.get("PHOTOMATRIX_VERIFY") != "1":
        pytest.skip("deployment tests run through `make verify` / `make test-infra` (PHOTOMATRIX_VERIFY=1)")
    if verify_inventory() != LOCAL_INVENTORY:
        pytest.skip("checks of the stack on this machine: they run for inventory/local only")
    running = subprocess.run(
        ["docker", "ps", "--filter", "name=^photomatrix-", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    names = tuple(sorted(running.stdout.split()))
    if not names:
        pytest.fail("no photomatrix-* container runs: deploy first with `make up`")
    return Stack(containers=names)


@pytest.fixture(scope="session")
def host() -> testinfra.host.Host:
    if verify_inventory() != LOCAL_INVENTORY:
        pytest.skip("checks of this machine: they run for inventory/local only")
    return testinfra.get_host("local://")


@pytest.fixture(scope="session")
def bot_api_key(stack: Stack) -> str:
    return (stack.root / "secrets" / "bot" / "erp_api_key").read_text().strip()
