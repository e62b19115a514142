"""Issue 10: NATS for several Rocket.Chat instances (roles/rocketchat/tasks/nats.yml, images/nats,
playbooks/group_vars/all/nats.yml), as the official compose runs one NATS for TRANSPORTER.

Rendered for the shapes an operator writes: where NATS runs, whether its port is published and to whom
the host firewall opens it, which host pulls its image, what TRANSPORTER each host's instances get. Then
for real: the role's tasks run against this machine's Docker Engine with the image built from
images/nats (Debian's nats-server): the server refuses a wrong password and answers PONG to the one in
TRANSPORTER, over the Docker network by the alias nats and on its published port; the password is in no
environment, command or label (docker inspect); both files are 0600; a second run changes nothing; one
instance again removes the container and TRANSPORTER."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from plugins.processes import free_port
from roles.test_topology_render import ansible_playbook, render_common, render_inventory

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ADDRESSES = {"edge": "10.77.0.10", "chat": "10.77.0.11", "chat2": "10.77.0.12", "mon": "10.77.0.61"}
RENDERED = [
    "rocketchat_nats",
    "rocketchat_nats_host",
    "rocketchat_nats_published",
    "rocketchat_transporter",
    "photomatrix_firewall_rules",
    "container_images_host_project_images",
]


def render(tmp: Path, chat_hosts: dict[str, int]) -> dict[str, dict]:
    """The derived variables per host, for rocketchat hosts {name: instances} beside a proxy and a
    monitoring host (tests/roles/render_defaults.yml)."""

    def host(name: str) -> dict:
        return {"ansible_host": ADDRESSES[name], "photomatrix_root": str(tmp / "hosts" / name)} | (
            {"rocketchat_instance_count": chat_hosts[name]} if name in chat_hosts else {}
        )

    groups = {"proxy": ["edge"], "rocketchat": list(chat_hosts), "monitoring": ["mon"]}
    groups |= {group: [] for group in ("mongodb", "erp", "bots")}
    children = {g: {"hosts": {h: host(h) for h in hosts}} for g, hosts in groups.items()}
    inventory = tmp / "hosts.yml"
    inventory.write_text(
        yaml.safe_dump({"all": {"children": children, "vars": render_common(tmp)}}), encoding="utf-8"
    )
    return render_inventory(tmp, inventory, RENDERED)


def nats_rules(host: dict) -> list[dict]:
    return [rule for rule in host["photomatrix_firewall_rules"] if rule["port"] == 4222]


def test_instances_on_two_hosts_share_one_nats_published_to_the_other_only(tmp_path: Path) -> None:
    hosts = render(tmp_path, {"chat": 2, "chat2": 1})
    chat, chat2 = hosts["chat"], hosts["chat2"]
    assert chat["rocketchat_nats"] is True
    assert chat2["rocketchat_nats"] is True
    assert chat["rocketchat_nats_host"] == chat2["rocketchat_nats_host"] == "chat"
    # Its own host's instances by the alias on the Docker network, the other's by its host address.
    assert chat["rocketchat_transporter"] == "monolith+nats://nats:4222"
    assert chat2["rocketchat_transporter"] == "monolith+nats://10.77.0.11:4222"
    # Published on chat for chat2 only; nothing on chat2 or any other host.
    assert chat["rocketchat_nats_published"] is True
    assert nats_rules(chat) == [{"address": "10.77.0.11", "port": 4222, "peers": ["10.77.0.12"]}]
    assert all(not nats_rules(hosts[name]) for name in ("chat2", "edge", "mon"))
    # Only its host pulls its image.
    assert "nats" in chat["container_images_host_project_images"]
    for name in ("chat2", "edge"):
        assert "nats" not in hosts[name]["container_images_host_project_images"], name


def test_instances_on_one_host_reach_nats_on_the_docker_network_only(tmp_path: Path) -> None:
    chat = render(tmp_path, {"chat": 3})["chat"]
    assert chat["rocketchat_nats"] is True
    assert chat["rocketchat_transporter"] == "monolith+nats://nats:4222"
    assert chat["rocketchat_nats_published"] is False
    assert not nats_rules(chat)
    assert "nats" in chat["container_images_host_project_images"]


def test_one_instance_runs_no_nats(tmp_path: Path) -> None:
    chat = render(tmp_path, {"chat": 1})["chat"]
    assert chat["rocketchat_nats"] is False
    assert not nats_rules(chat)
    assert "nats" not in chat["container_images_host_project_images"]


# ------------------------------------------------------------------------------------------- for real
def docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:  # what Docker said, not only its exit status
        pytest.fail(f"docker {' '.join(args[:3])} …: exit {done.returncode}: {done.stderr.strip()[-1500:]}")
    return done


@dataclass(frozen=True)
class Deployed:
    tmp: Path
    inventory: Path
    playbook: Path
    network: str
    container: str
    port: int
    image: str

    @property
    def transporter_file(self) -> Path:
        return self.tmp / "root" / "secrets" / "rocketchat" / "transporter"

    @property
    def config_file(self) -> Path:
        return self.tmp / "root" / "secrets" / "nats" / "nats.conf"

    def run(self, **extra: object) -> subprocess.CompletedProcess[str]:
        return ansible_playbook("-i", str(self.inventory), str(self.playbook), "-e", json.dumps(extra))


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory, nats_image: str) -> Iterator[Deployed]:
    tmp = tmp_path_factory.mktemp("nats")
    run_id = secrets.token_hex(4)
    network, container = f"pmnats-test-net-{run_id}", f"pmnats-test-{run_id}"
    port = free_port()
    inventory = tmp / "hosts.yml"
    inventory.write_text(
        yaml.safe_dump({"all": {"hosts": {"chat": {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "ansible_host": "127.0.0.1",
        }}}}),
        encoding="utf-8",
    )  # fmt: skip
    playbook = tmp / "nats.yml"
    playbook.write_text(
        yaml.safe_dump([{
            "name": "NATS as the rocketchat role runs it",
            "hosts": "chat",
            "gather_facts": False,
            "vars": {
                "rocketchat_root": str(tmp / "root"),
                "rocketchat_network": network,
                "rocketchat_nats_image": nats_image,
                "rocketchat_nats_container_name": container,
                "rocketchat_nats_host": "chat",
                "rocketchat_nats_port": port,
                "rocketchat_nats_published": True,
                "rocketchat_nats_password_store": str(tmp / "store" / "nats_password"),
                "rocketchat_secret_owner": str(os.getuid()),
            },
            "tasks": [
                {"name": "Secrets directory", "ansible.builtin.file": {
                    "path": str(tmp / "root" / "secrets" / "rocketchat"),
                    "state": "directory", "mode": "0700"}},
                {"name": "The role's NATS tasks", "ansible.builtin.include_role": {
                    "name": "rocketchat", "tasks_from": "nats.yml"}},
            ],
        }]),
        encoding="utf-8",
    )  # fmt: skip
    docker("network", "create", network)
    try:
        yield Deployed(tmp, inventory, playbook, network, container, port, nats_image)
    finally:
        docker("rm", "--force", container, check=False)
        docker("network", "rm", network, check=False)


def nats_answer(host: str, port: int, password: str) -> str:
    """A NATS client's first exchange: INFO, then CONNECT with the role's user and PASSWORD, then PING."""
    with socket.create_connection((host, port), timeout=5) as sock:
        stream = sock.makefile("rb")
        info = stream.readline()
        assert info.startswith(b"INFO "), info
        assert json.loads(info[5:])["auth_required"] is True
        connect = {"user": "rocketchat", "pass": password, "verbose": False, "pedantic": False}
        sock.sendall(b"CONNECT " + json.dumps(connect).encode() + b"\r\nPING\r\n")
        return stream.readline().decode().strip()


def test_nats_runs_with_the_password_of_transporter_and_refuses_another(deployed: Deployed) -> None:
    first = deployed.run(rocketchat_nats=True)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    transporter = deployed.transporter_file.read_text()
    prefix = "monolith+nats://rocketchat:"
    assert transporter.startswith(prefix), transporter[:30]
    assert transporter.endswith("@nats:4222"), "TRANSPORTER names NATS by its alias on the Docker network"
    password = transporter[len(prefix) : -len("@nats:4222")]
    assert len(password) == 40
    assert password.isalnum()
    # Both files: their user's only.
    for path in (deployed.transporter_file, deployed.config_file):
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert deployed.config_file.stat().st_uid == 992  # the image's nats user reads it
    # The password is in no environment, command, label or mount option of the container.
    inspect = docker("inspect", deployed.container).stdout
    assert password not in inspect
    state = json.loads(inspect)[0]
    assert state["HostConfig"]["ReadonlyRootfs"] is True
    assert state["HostConfig"]["CapDrop"] == ["ALL"]
    assert state["Config"]["User"] == "nats"
    # On its published port (as an instance on another rocketchat host reaches it) ...
    assert nats_answer("127.0.0.1", deployed.port, password) == "PONG"
    assert nats_answer("127.0.0.1", deployed.port, "wrong") == "-ERR 'Authorization Violation'"
    # ... and by the alias nats on the Docker network, as TRANSPORTER names it on its own host: a client in
    # the image's Python-less base speaks the protocol with bash.
    script = (
        "exec 3<>/dev/tcp/nats/4222; read -r -t 5 info <&3; "
        'printf \'CONNECT {"user":"rocketchat","pass":"%s","verbose":false}\\r\\nPING\\r\\n\' "$1" >&3; '
        "read -r -t 5 answer <&3; echo \"${answer%$'\\r'}\""
    )
    for attempt, expected in ((password, "PONG"), ("wrong", "-ERR 'Authorization Violation'")):
        alias = docker(
            "run", "--rm", "--network", deployed.network, "--entrypoint", "bash", deployed.image,
            "-c", script, "client", attempt,
        )  # fmt: skip
        assert alias.stdout.strip() == expected, alias.stdout + alias.stderr


def test_a_second_run_changes_nothing_and_one_instance_removes_it(deployed: Deployed) -> None:
    if subprocess.run(["docker", "inspect", deployed.container], capture_output=True, timeout=60).returncode:
        deployed.run(rocketchat_nats=True)
    again = deployed.run(rocketchat_nats=True)
    assert again.returncode == 0, again.stdout[-4000:]
    assert "changed=0" in again.stdout.split("PLAY RECAP")[-1], again.stdout[-3000:]
    one = deployed.run(rocketchat_nats=False)
    assert one.returncode == 0, one.stdout[-4000:]
    assert docker("container", "inspect", deployed.container, check=False).returncode != 0
    assert not deployed.transporter_file.exists()
