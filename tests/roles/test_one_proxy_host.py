"""One proxy host keeps the internal CA (issue 10): an inventory with two hosts in the group proxy is refused
with a message that says why, before anything is made, where the old code let the second host make a CA of
its own and publish it over the first one's (half the internal hops would then fail verification).

- `playbooks/docker.yml`, the first layer of `site.yml`, refuses such an inventory before the first layer
  changes anything (local connection, two inventory hosts on this machine; nothing is installed: the check
  comes before the docker_engine role);
- the proxy role's `ca` entry point (run by `playbooks/proxy.yml` on every proxy host) refuses it on the
  second host and makes no CA there; with one proxy host it makes the CA as before.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from roles.test_topology_render import ansible_playbook

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

GROUPS = ["docker_hosts", "proxy", "rocketchat", "mongodb", "erp", "bots", "monitoring"]
CA_PLAY = """\
- name: The internal CA (roles/tls_proxy, entry point ca)
  hosts: proxy
  gather_facts: false
  tasks:
    - name: Make it where there is none
      ansible.builtin.include_role:
        name: tls_proxy
        tasks_from: ca
"""


def inventory(tmp_path: Path, proxies: list[str]) -> Path:
    """Hosts on this machine (local connection): PROXIES in the group proxy, the first one in every other
    group, each with its own root under TMP_PATH."""
    directory = tmp_path / f"inventory-{len(proxies)}"
    (directory / "host_vars").mkdir(parents=True)
    children = {group: {"hosts": {proxies[0]: None}} for group in GROUPS}
    children["proxy"] = {"hosts": {name: None for name in proxies}}
    children["docker_hosts"] = {"hosts": {name: None for name in proxies}}
    (directory / "hosts.yml").write_text(
        json.dumps(
            {
                "all": {
                    "children": children,
                    "vars": {
                        "ansible_connection": "local",
                        "ansible_python_interpreter": sys.executable,
                        "photomatrix_environment": "test",
                        "photomatrix_bootstrap_secrets_dir": str(tmp_path / "store"),
                        "tls_proxy_module_packages": [],
                    },
                }
            }
        )
    )
    for name in proxies:
        (directory / "host_vars" / f"{name}.yml").write_text(
            json.dumps(
                {"photomatrix_root": str(tmp_path / name), "tls_proxy_pki_dir": str(tmp_path / name / "pki")}
            )
        )
    return directory


def test_the_first_layer_refuses_two_proxy_hosts_before_changing_anything(tmp_path: Path) -> None:
    result = ansible_playbook(
        "-i", str(inventory(tmp_path, ["edge1", "edge2"])), "playbooks/docker.yml", "--check"
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "The group proxy has 2 hosts (edge1, edge2)" in output, output[-3000:]
    assert "docker_engine" not in output.split("Check that one host holds the proxy", 1)[1], (
        "the docker_engine role ran after the refusal"
    )


def test_the_second_proxy_host_makes_no_ca_of_its_own(tmp_path: Path) -> None:
    playbook = tmp_path / "ca.yml"
    playbook.write_text(CA_PLAY)
    result = ansible_playbook(
        "-i", str(inventory(tmp_path, ["edge1", "edge2"])), str(playbook), "--limit", "edge2"
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "several proxy hosts are not supported" in output, output[-3000:]
    assert not (tmp_path / "edge2" / "pki").exists(), "the second proxy host made a CA"
    assert not (tmp_path / "store" / "ca.crt").exists()


def test_one_proxy_host_makes_the_ca_and_publishes_it(tmp_path: Path) -> None:
    playbook = tmp_path / "ca.yml"
    playbook.write_text(CA_PLAY)
    (tmp_path / "store").mkdir(mode=0o700)
    result = ansible_playbook("-i", str(inventory(tmp_path, ["edge1"])), str(playbook))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    made = (tmp_path / "edge1" / "pki" / "ca.crt").read_text()
    assert made.startswith("-----BEGIN CERTIFICATE-----")
    assert (tmp_path / "store" / "ca.crt").read_text() == made
