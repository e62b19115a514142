"""playbooks/rocketchat_config.yml's outgoing webhook, rendered without deploying (issue 17).

In webhook mode Rocket.Chat posts each message to every URL of the outgoing webhook: the play must name
every bot replica (chatbot_replicas on each bots host), and allowlist each one's host for Rocket.Chat's
SSRF protection. The test takes the play's own expressions (its vars, the role's webhook and settings
vars) out of the playbook and renders them with Ansible for every Rocket.Chat host of an inventory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PLAYBOOK = ROOT / "playbooks/rocketchat_config.yml"
GROUPS = ["proxy", "rocketchat", "mongodb", "erp", "bots", "monitoring", "docker_hosts"]
COMMON = {
    "ansible_connection": "local",
    "ansible_python_interpreter": sys.executable,
    "photomatrix_domain": "chat.lab.example",
    "photomatrix_internal_subnet": "10.250.0.0/24",
    "photomatrix_container_addresses": {"proxy": "10.250.0.10", "bot": "10.250.0.20"},
    "photomatrix_network": "photomatrix-render-test",
}

pytestmark = pytest.mark.integration


def play_expressions() -> tuple[dict[str, Any], dict[str, Any]]:
    """The play's vars and the webhook/settings vars it gives rocketchat_bootstrap, as written."""
    (play,) = yaml.safe_load(PLAYBOOK.read_text(encoding="utf-8"))
    (role,) = [r for r in play["roles"] if r["role"] == "rocketchat_bootstrap"]
    wanted = ("rocketchat_bootstrap_outgoing_webhook", "rocketchat_bootstrap_extra_settings")
    return play["vars"], {name: role["vars"][name] for name in wanted}


def render(tmp: Path, children: dict[str, Any]) -> dict[str, dict[str, Any]]:
    inventory = tmp / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": children, "vars": COMMON}}), encoding="utf-8")
    play_vars, role_vars = play_expressions()
    out = tmp / "rendered"
    out.mkdir()
    content = (
        "{{ {'webhook': rocketchat_bootstrap_outgoing_webhook,"
        " 'settings': rocketchat_bootstrap_extra_settings} | to_json }}"
    )
    playbook = tmp / "render.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "hosts": "rocketchat",
                    "gather_facts": False,
                    "vars": play_vars,
                    "tasks": [
                        {"ansible.builtin.include_vars": {"dir": str(ROOT / "playbooks/group_vars/all")}},
                        {
                            "ansible.builtin.copy": {
                                "dest": f"{out}/{{{{ inventory_hostname }}}}.json",
                                "content": content,
                                "mode": "0600",
                            },
                            "vars": role_vars,
                            "delegate_to": "localhost",
                        },
                    ],
                }
            ]
        ),
        encoding="utf-8",
    )
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    run = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), str(playbook)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    return {path.stem: json.loads(path.read_text()) for path in out.glob("*.json")}


def test_two_replicas_on_the_rocketchat_host_are_both_webhook_urls(tmp_path: Path) -> None:
    children = {
        group: {"hosts": {"solo": {"chatbot_replicas": 2, "chatbot_mode": "webhook"}}} for group in GROUPS
    }
    solo = render(tmp_path, children)["solo"]
    webhook = solo["webhook"]
    assert webhook["enabled"] is True
    # By fixed container address: Rocket.Chat's SSRF check refuses "chatbot-2" (no dot) outright.
    assert webhook["urls"] == ["http://10.250.0.20:8080/webhook", "http://10.250.0.21:8080/webhook"]
    # A replica's 503 (another one has the message) is retried: the message survives that one's death.
    assert (webhook["retry_failed_calls"], webhook["retry_count"], webhook["retry_delay"]) == (
        True,
        6,
        "powers-of-two",
    )
    assert solo["settings"] == {"SSRF_Allowlist": "10.250.0.20,10.250.0.21"}


def test_replicas_on_another_host_by_its_address_and_published_ports(tmp_path: Path) -> None:
    children: dict[str, Any] = {
        group: {"hosts": {"edge": {"ansible_host": "10.77.0.10", "chatbot_mode": "webhook"}}}
        for group in GROUPS
        if group != "bots"
    }
    children["bots"] = {
        "hosts": {
            "bot1": {"ansible_host": "10.77.0.51", "chatbot_replicas": 2, "chatbot_mode": "webhook"},
            "bot2": {"ansible_host": "10.77.0.52", "chatbot_mode": "webhook"},
        }
    }
    # A second Rocket.Chat host in realtime mode (the default): the webhook stays off, nothing allowlisted.
    children["rocketchat"]["hosts"]["edge2"] = {"ansible_host": "10.77.0.11"}
    rendered = render(tmp_path, children)
    edge = rendered["edge"]
    assert edge["webhook"]["enabled"] is True
    assert edge["webhook"]["urls"] == [
        "http://10.77.0.51:8080/webhook",
        "http://10.77.0.51:8081/webhook",
        "http://10.77.0.52:8080/webhook",
    ]
    # One entry per host, comma-separated, as Rocket.Chat's SSRF_Allowlist takes it.
    assert edge["settings"] == {"SSRF_Allowlist": "10.77.0.51,10.77.0.52"}
    realtime = rendered["edge2"]
    assert realtime["webhook"]["enabled"] is False
    assert realtime["settings"] == {}


@pytest.mark.parametrize(
    ("cert_mode", "store"), [("selfsigned", True), ("acme", True), ("provided", True), ("acme", False)]
)
def test_with_the_internal_ca_the_webhook_urls_are_https(tmp_path: Path, cert_mode: str, store: bool) -> None:
    """Issue 10: with the internal CA (a proxy host and the controller-side store, in every certificate
    mode) the bot's port serves HTTPS in webhook mode too (photomatrix_bot_tls), so the outgoing webhook
    calls https:// URLs, by the addresses the bot's certificate carries
    (tests/roles/test_chatbot_replicas_render.py); Rocket.Chat verifies them against that CA
    (NODE_EXTRA_CA_CERTS). SSRF_Allowlist names the same hosts, without scheme or port. Without an
    internal CA (no store) everything stays plain HTTP."""
    internal_ca = {
        "photomatrix_bootstrap_secrets_dir": str(tmp_path / "store") if store else "",
        "tls_proxy_cert_mode": cert_mode,
    }
    children: dict[str, Any] = {
        group: {"hosts": {"edge": {"ansible_host": "10.77.0.10", "chatbot_mode": "webhook", **internal_ca}}}
        for group in GROUPS
        if group != "bots"
    }
    children["bots"] = {
        "hosts": {
            "edge": {
                "ansible_host": "10.77.0.10",
                "chatbot_replicas": 2,
                "chatbot_mode": "webhook",
                **internal_ca,
            },
            "bot2": {"ansible_host": "10.77.0.52", "chatbot_mode": "webhook", **internal_ca},
        }
    }
    edge = render(tmp_path, children)["edge"]
    scheme = "https" if store else "http"
    # Replicas on this host by fixed container address, the other host's by its address.
    assert sorted(edge["webhook"]["urls"]) == [
        f"{scheme}://10.250.0.20:8080/webhook",
        f"{scheme}://10.250.0.21:8080/webhook",
        f"{scheme}://10.77.0.52:8080/webhook",
    ]
    assert sorted(edge["settings"]["SSRF_Allowlist"].split(",")) == [
        "10.250.0.20",
        "10.250.0.21",
        "10.77.0.52",
    ]


def test_the_play_gives_rocketchat_the_internal_ca_before_it_configures_the_webhook() -> None:
    """A first deploy makes the internal CA in the proxy layer, after the rocketchat layer: the
    configuration play has Rocket.Chat take it (re-created with NODE_EXTRA_CA_CERTS) before its roles."""
    (play,) = yaml.safe_load(PLAYBOOK.read_text(encoding="utf-8"))
    includes = [task.get("ansible.builtin.include_role", {}) for task in play["pre_tasks"]]
    assert {
        "name": "rocketchat",
        "tasks_from": "trust_internal_ca",
        "apply": {"tags": ["rocketchat", "certificates"]},
    } in includes
