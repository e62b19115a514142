"""Bot replicas (chatbot_replicas) as every role derives them, rendered without deploying.

The chatbot role names and addresses each replica; the proxy's bot upstream and ERP allowlist, the
ERP key's allowlist, Prometheus' targets, the host firewall and Redis' image follow the same count
through the inventory (photomatrix.rocketchat topology filters).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jinja2
import pytest
import yaml
from ansible_collections.photomatrix.rocketchat.plugins.filter.topology import (
    instance_address,
    source_addresses,
)
from roles.test_topology_render import render_common, render_inventory

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RENDERED = [
    "chatbot_instances",
    "chatbot_uses_redis",
    "chatbot_tls",
    "chatbot_tls_names",
    "tls_proxy_bot_servers",
    "tls_proxy_bot_tls",
    "tls_proxy_bot_tls_name",
    "tls_proxy_erp_allowlist",
    "erp_api_bot_key_allow",
    "monitoring_bot_targets",
    "monitoring_alertmanager_receiver_urls",
    "monitoring_bot_tls",
    "monitoring_bot_tls_name",
    "monitoring_alertmanager_group_by",
    "monitoring_alertmanager_group_wait",
    "monitoring_alertmanager_group_interval",
    "monitoring_alertmanager_repeat_interval",
    "photomatrix_firewall_rules",
    "container_images_host_project_images",
]


def render(tmp: Path, *, multi: bool, replicas: int, mode: str = "realtime") -> dict[str, dict]:
    common = render_common(tmp) | {"chatbot_mode": mode}
    groups = ["proxy", "rocketchat", "mongodb", "erp", "bots", "monitoring", "docker_hosts"]
    if multi:
        hosts = {"edge": "10.77.0.10", "bot": "10.77.0.51"}
        children = {
            group: {
                "hosts": {
                    ("bot" if group == "bots" else "edge"): {
                        "ansible_host": hosts["bot" if group == "bots" else "edge"]
                    }
                    | ({"chatbot_replicas": replicas} if group == "bots" else {})
                }
            }
            for group in groups
        }
    else:
        children = {group: {"hosts": {"solo": {"chatbot_replicas": replicas}}} for group in groups}
    inventory = tmp / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": children, "vars": common}}), encoding="utf-8")
    return render_inventory(tmp, inventory, RENDERED)


def alertmanager_config(host: dict) -> dict:
    """roles/monitoring/templates/alertmanager.yml.j2 with a host's rendered values, parsed as YAML
    (the role checks the file with the image's amtool when it deploys; tests/infra runs that)."""
    source = (ROOT / "roles/monitoring/templates/alertmanager.yml.j2").read_text(encoding="utf-8")
    # Ansible's template settings (trim_blocks); YAML out, nothing to escape.
    env = jinja2.Environment(  # noqa: S701
        undefined=jinja2.StrictUndefined, trim_blocks=True, keep_trailing_newline=True
    )
    env.filters["to_json"] = json.dumps
    env.filters["bool"] = lambda value: str(value).lower() in ("true", "yes", "1")
    return yaml.safe_load(env.from_string(source).render(**host))


@pytest.mark.unit
def test_instance_addresses_follow_the_first() -> None:
    assert instance_address("10.250.0.20", 0) == "10.250.0.20"
    assert instance_address("10.250.0.20", 1) == "10.250.0.21"
    hostvars = {"solo": {"chatbot_replicas": 3}, "bot": {"ansible_host": "10.77.0.51", "chatbot_replicas": 2}}
    assert source_addresses(["solo"], hostvars, "solo", "10.250.0.20", "chatbot_replicas") == [
        "10.250.0.20",
        "10.250.0.21",
        "10.250.0.22",
    ]
    # A replica on another host arrives from that host's address, however many run there.
    assert source_addresses(["bot"], hostvars, "edge", "10.250.0.20", "chatbot_replicas") == ["10.77.0.51"]
    # Without the count variable, one instance (the rule before replicas existed).
    assert source_addresses(["solo"], hostvars, "solo", "10.250.0.20") == ["10.250.0.20"]


@pytest.mark.integration
def test_two_replicas_on_one_host(tmp_path: Path) -> None:
    solo = render(tmp_path, multi=False, replicas=2)["solo"]
    assert [(i["name"], i["alias"], i["address"]) for i in solo["chatbot_instances"]] == [
        ("photomatrix-chatbot", "chatbot", "10.250.0.20"),
        ("photomatrix-chatbot-2", "chatbot-2", "10.250.0.21"),
    ]
    assert solo["chatbot_uses_redis"] is True
    # nginx resolves an upstream's names once: the replicas by their fixed addresses.
    assert solo["tls_proxy_bot_servers"] == ["10.250.0.20:8080", "10.250.0.21:8080"]
    assert solo["tls_proxy_erp_allowlist"] == ["10.250.0.20", "10.250.0.21"]
    assert solo["erp_api_bot_key_allow"] == ["10.250.0.20/32", "10.250.0.21/32"]
    assert solo["monitoring_bot_targets"] == ["chatbot:8080", "chatbot-2:8080"]
    assert "redis" in solo["container_images_host_project_images"]
    # Alertmanager notifies every replica (issue 17: the first one only lost alerts while it was down).
    urls = ["https://chatbot:8080/alerts/alertmanager", "https://chatbot-2:8080/alerts/alertmanager"]
    assert solo["monitoring_alertmanager_receiver_urls"] == urls
    config = alertmanager_config(solo)
    assert config["route"]["receiver"] == "chatbot"
    (receiver,) = config["receivers"]
    assert [hook["url"] for hook in receiver["webhook_configs"]] == urls
    for hook in receiver["webhook_configs"]:
        assert hook["send_resolved"] is True
        assert hook["http_config"]["authorization"] == {
            "type": "Bearer",
            "credentials_file": "/etc/alertmanager/secrets/bot_token",
        }


@pytest.mark.integration
def test_replicas_on_a_remote_bot_host_publish_one_port_each(tmp_path: Path) -> None:
    rendered = render(tmp_path, multi=True, replicas=2)
    edge, bot = rendered["edge"], rendered["bot"]
    assert edge["tls_proxy_bot_servers"] == ["10.77.0.51:8080", "10.77.0.51:8081"]
    assert edge["tls_proxy_erp_allowlist"] == ["10.77.0.51"]
    assert edge["monitoring_bot_targets"] == ["10.77.0.51:8080", "10.77.0.51:8081"]
    urls = ["https://10.77.0.51:8080/alerts/alertmanager", "https://10.77.0.51:8081/alerts/alertmanager"]
    assert edge["monitoring_alertmanager_receiver_urls"] == urls
    hooks = alertmanager_config(edge)["receivers"][0]["webhook_configs"]
    assert [hook["url"] for hook in hooks] == urls
    # Over HTTPS, the bot's certificate checked against the internal CA for its name, which the
    # certificate made on the bot host carries with the address Alertmanager dials.
    for hook in hooks:
        assert hook["http_config"]["tls_config"] == {
            "ca_file": "/etc/alertmanager/ca.crt",
            "server_name": "chatbot",
            "insecure_skip_verify": False,
        }
    assert bot["chatbot_tls"] is True
    assert bot["chatbot_tls_names"][:3] == ["chatbot", "bot", "10.77.0.51"]
    assert [i["published_port"] for i in bot["chatbot_instances"]] == [8080, 8081]
    rules = {rule["port"]: rule["peers"] for rule in bot["photomatrix_firewall_rules"]}
    assert rules == {8080: ["10.77.0.10"], 8081: ["10.77.0.10"]}


@pytest.mark.integration
def test_one_replica_keeps_sqlite_and_no_redis(tmp_path: Path) -> None:
    solo = render(tmp_path, multi=False, replicas=1)["solo"]
    assert [i["name"] for i in solo["chatbot_instances"]] == ["photomatrix-chatbot"]
    assert solo["chatbot_uses_redis"] is False
    assert "redis" not in solo["container_images_host_project_images"]
    assert solo["tls_proxy_erp_allowlist"] == ["10.250.0.20"]
    hooks = alertmanager_config(solo)["receivers"][0]["webhook_configs"]
    assert [hook["url"] for hook in hooks] == ["https://chatbot:8080/alerts/alertmanager"]
    # Each replica's alias, container name and fixed address (this host's callers) are in its certificate.
    assert {"chatbot", "photomatrix-chatbot", "10.250.0.20"} <= set(solo["chatbot_tls_names"])


@pytest.mark.integration
@pytest.mark.parametrize("multi", [True, False], ids=["hosts", "one-host"])
def test_webhook_mode_serves_https_too_with_the_names_rocketchat_dials(tmp_path: Path, multi: bool) -> None:
    """Issue 10: the internal CA makes the bot's port HTTPS in webhook mode as in realtime mode (Rocket.Chat
    trusts the CA through NODE_EXTRA_CA_CERTS). Rocket.Chat's outgoing webhook dials each replica by its
    fixed container address on its own host, else by the bot host's address (playbooks/rocketchat_config.yml):
    both are in the certificate, and the proxy's bot upstream is https."""
    rendered = render(tmp_path, multi=multi, replicas=2, mode="webhook")
    bot = rendered["bot" if multi else "solo"]
    proxy = rendered["edge" if multi else "solo"]
    assert bot["chatbot_tls"] is True
    assert bot["monitoring_bot_tls"] is True
    dialled = ["10.77.0.51"] if multi else ["10.250.0.20", "10.250.0.21"]
    assert set(dialled) <= set(bot["chatbot_tls_names"]), bot["chatbot_tls_names"]
    assert bot["chatbot_tls_names"][0] == "chatbot"  # what the proxy verifies (proxy_ssl_name)
    if multi:
        # The port admits the proxy host, which runs Rocket.Chat here too (the firewall is unchanged).
        rules = {rule["port"]: rule["peers"] for rule in bot["photomatrix_firewall_rules"]}
        assert rules == {8080: ["10.77.0.10"], 8081: ["10.77.0.10"]}
    assert (proxy["tls_proxy_bot_tls"], proxy["tls_proxy_bot_tls_name"]) == (True, "chatbot")
