"""The internal CA in every certificate mode (issue 10; docs/topology.md, section 4), rendered from the
shipped inventories without deploying. inventory/production and inventory/staging take the public
certificate from ACME; their internal hops still get TLS from the internal CA (proxy → ERP, ERP →
PostgreSQL, Rocket.Chat → MongoDB, Prometheus → ERP, bot and node exporters, Alertmanager → bot), and the
clients of the public name keep the public trust (the system bundle, or the staging roots), never the
internal CA. Rendered by Ansible with the roles' defaults and playbooks/group_vars/all
(tests/roles/render_defaults.yml) and the proxy's nginx.conf as the role writes it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from roles.test_topology_render import ERP_UPSTREAM_TLS, ansible_playbook, location

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SWITCHES = [
    "photomatrix_internal_ca",
    "photomatrix_erp_tls",
    "photomatrix_node_exporter_tls",
    "photomatrix_bot_tls",
    "photomatrix_postgresql_tls",
    "photomatrix_mongodb_tls",
]
RENDERED = [
    *SWITCHES,
    "tls_proxy_cert_mode",
    "tls_proxy_internal_ca",
    "tls_proxy_ca_export",
    "tls_proxy_erp_tls",
    "tls_proxy_bot_tls",
    "erp_api_tls",
    "erp_api_tls_ca_src",
    "erp_api_database_tls",
    "erp_api_database_ca_src",
    "chatbot_tls",
    "chatbot_ca_src",
    "chatbot_ca_file",
    "chatbot_internal_ca_src",
    "chatbot_internal_ca_file",
    "monitoring_erp_tls",
    "monitoring_bot_tls",
    "monitoring_node_exporter_tls",
    "monitoring_erp_ca_src",
    "monitoring_blackbox_ca_file",
    "mongodb_tls",
    "mongodb_tls_ca_src",
    "rocketchat_internal_ca",
    "rocketchat_internal_ca_src",
    "photomatrix_ca_file",
]
INVENTORIES = {
    "production": {
        "proxy": "edge.photomatrix.example",
        "erp": ["erp1.photomatrix.example", "erp2.photomatrix.example"],
        "bot": "bot1.photomatrix.example",
        "monitoring": "mon1.photomatrix.example",
        "mongodb": ["mongo1.photomatrix.example", "mongo2.photomatrix.example", "mongo3.photomatrix.example"],
        "rocketchat": "chat1.photomatrix.example",
    },
    "staging": {
        "proxy": "staging.photomatrix.example",
        "erp": ["staging.photomatrix.example"],
        "bot": "staging.photomatrix.example",
        "monitoring": "staging.photomatrix.example",
        "mongodb": ["staging.photomatrix.example"],
        "rocketchat": "staging.photomatrix.example",
    },
}


def local_vars(tmp: Path) -> dict:
    """Run every host here, as the test user, with a store of its own (never the operator's)."""
    return {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "ansible_become": False,
        "photomatrix_bootstrap_secrets_dir": str(tmp / "store"),
    }


@pytest.fixture(scope="module", params=sorted(INVENTORIES))
def shipped(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, dict, Path]:
    """(name, rendered values per host, the store) of a shipped inventory."""
    name = request.param
    tmp = tmp_path_factory.mktemp(name)
    out = tmp / "rendered"
    out.mkdir()
    run = ansible_playbook(
        "-i", f"inventory/{name}", "tests/roles/render_defaults.yml", "--tags", "render",
        "-e", json.dumps(local_vars(tmp) | {"render_dir": str(out), "render_vars": RENDERED}),
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    hosts = {path.stem: json.loads(path.read_text()) for path in out.glob("*.json")}
    for path in out.glob("*.prometheus.yml"):
        hosts[path.name.removesuffix(".prometheus.yml")]["prometheus.yml"] = yaml.safe_load(path.read_text())
    return name, hosts, tmp / "store"


def on(value: object) -> bool:
    assert value in (True, False, "True", "False"), value
    return value in (True, "True")


def test_the_shipped_inventories_take_the_public_certificate_from_acme(shipped: tuple) -> None:
    name, hosts, _ = shipped
    assert hosts[INVENTORIES[name]["proxy"]]["tls_proxy_cert_mode"] == "acme"


def test_every_internal_hop_is_tls_from_the_internal_ca_with_acme(shipped: tuple) -> None:
    name, hosts, store = shipped
    shape = INVENTORIES[name]
    ca = str(store / "ca.crt")
    # Staging has no db group (SQLite on its one host): no PostgreSQL hop there.
    switches = [s for s in SWITCHES if name == "production" or s != "photomatrix_postgresql_tls"]
    for host, values in hosts.items():
        for switch in switches:
            assert on(values[switch]), (host, switch)
    proxy = hosts[shape["proxy"]]
    assert on(proxy["tls_proxy_internal_ca"])
    assert proxy["tls_proxy_ca_export"] == ca  # the CA is published where every internal client reads it
    assert on(proxy["tls_proxy_erp_tls"])
    assert on(proxy["tls_proxy_bot_tls"])
    for erp in shape["erp"]:
        assert on(hosts[erp]["erp_api_tls"])
        assert on(hosts[erp]["erp_api_database_tls"]) is (name == "production")
        assert hosts[erp]["erp_api_tls_ca_src"] == ca
        assert hosts[erp]["erp_api_database_ca_src"] == ca
    bot = hosts[shape["bot"]]
    assert on(bot["chatbot_tls"])
    assert bot["chatbot_internal_ca_src"] == ca
    assert bot["chatbot_internal_ca_file"].endswith("/internal-ca.crt")
    monitoring = hosts[shape["monitoring"]]
    for switch in ("monitoring_erp_tls", "monitoring_bot_tls", "monitoring_node_exporter_tls"):
        assert on(monitoring[switch]), switch
    assert monitoring["monitoring_erp_ca_src"] == ca  # Prometheus' and Alertmanager's copies
    for member in shape["mongodb"]:
        assert on(hosts[member]["mongodb_tls"])
        assert hosts[member]["mongodb_tls_ca_src"] == ca
    chat = hosts[shape["rocketchat"]]
    assert on(chat["rocketchat_internal_ca"])  # NODE_EXTRA_CA_CERTS: MongoDB and the bot's webhook port
    assert chat["rocketchat_internal_ca_src"] == ca


def test_prometheus_scrapes_the_erp_the_bot_and_node_exporters_over_https_with_the_internal_ca(
    shipped: tuple,
) -> None:
    name, hosts, _ = shipped
    prometheus = hosts[INVENTORIES[name]["monitoring"]]["prometheus.yml"]
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    for job, server_name in (("erp-api", "erp-api"), ("node", "node-exporter"), ("chatbot", "chatbot")):
        assert jobs[job]["scheme"] == "https", job
        assert jobs[job]["tls_config"]["ca_file"] == "/etc/prometheus/erp-ca.crt", job
        assert jobs[job]["tls_config"]["server_name"] == server_name, job


def test_clients_of_the_public_name_keep_the_public_trust(shipped: tuple) -> None:
    """The public certificate is Let's Encrypt's: the configuration play, make verify, the bot's calls
    through the proxy and the blackbox probes verify it with the system bundle or the staging roots, not
    with the internal CA (which signs nothing public in acme mode)."""
    name, hosts, store = shipped
    shape = INVENTORIES[name]
    internal = str(store / "ca.crt")
    for host, values in hosts.items():
        assert values["photomatrix_ca_file"] != internal, host
        assert "/ca.crt" not in values["photomatrix_ca_file"], host
    bot = hosts[shape["bot"]]
    assert bot["chatbot_ca_src"] != internal
    assert bot["chatbot_ca_file"] != bot["chatbot_internal_ca_file"]
    monitoring = hosts[shape["monitoring"]]
    assert monitoring["monitoring_blackbox_ca_file"] != internal
    if name == "production":
        assert bot["chatbot_ca_src"] == ""
        assert bot["chatbot_ca_file"] == "/etc/ssl/certs/ca-certificates.crt"
        assert monitoring["monitoring_blackbox_ca_file"] == ""  # the image's system bundle
    else:
        roots = str(ROOT / "inventory/staging/.trust/acme-roots.pem")
        assert bot["chatbot_ca_src"] == roots
        assert monitoring["monitoring_blackbox_ca_file"] == roots


def test_the_proxy_reaches_the_erp_over_verified_https_with_acme(tmp_path: Path) -> None:
    """inventory/production's proxy as the role writes its nginx.conf (the role's config tasks with
    playbooks/group_vars/all): the ERP upstream is https:// with proxy_ssl_verify against the internal
    CA's copy, the bot's webhook route too."""
    proxy = INVENTORIES["production"]["proxy"]
    conf_dir = tmp_path / "proxy"
    conf_dir.mkdir()
    playbook = tmp_path / "nginx.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "hosts": proxy,
                    "gather_facts": False,
                    "tasks": [
                        {"ansible.builtin.include_vars": {"dir": str(ROOT / "playbooks/group_vars/all")}},
                        {"ansible.builtin.include_role": {"name": "tls_proxy", "tasks_from": "config.yml"}},
                    ],
                }
            ]
        )
    )
    extra = local_vars(tmp_path) | {
        "tls_proxy_config_dir": str(conf_dir),
        "tls_proxy_started": True,  # the handler would reload a proxy container
        "tls_proxy_bot_webhook_enabled": True,
    }
    run = ansible_playbook("-i", "inventory/production", str(playbook), "-e", json.dumps(extra))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    conf = (conf_dir / "nginx.conf").read_text()
    assert "set $erp_upstream https://erp_servers;" in conf
    upstream = conf[conf.index("upstream erp_servers {") :]
    upstream = upstream[: upstream.index("}")]
    assert "server 10.0.10.41:8000" in upstream, upstream
    assert "server 10.0.10.42:8000" in upstream, upstream
    for line in ERP_UPSTREAM_TLS:
        assert line in conf, f"no {line}"
    assert "proxy_ssl_verify off" not in conf
    assert "set $bot_upstream https://10.0.10.31:8080;" in conf
    assert "proxy_ssl_name chatbot;" in location(conf, "= /bot/webhook")


def test_rotate_accepts_a_ca_rotation_in_every_certificate_mode() -> None:
    """make rotate WHAT=ca re-signs the internal certificates in acme and provided modes too: the check
    asks for the internal CA, not for the selfsigned mode; only the CA's own files are set aside there
    (the ACME account, its certificate and the provided files stay)."""
    plays = yaml.safe_load((ROOT / "playbooks/rotate.yml").read_text())
    check = next(t for t in plays[0]["tasks"] if t["name"] == "Refuse a CA rotation without the internal CA")
    assert "rotate_internal_ca" in check["ansible.builtin.assert"]["that"]
    assert "selfsigned" not in json.dumps(plays[0])
    (ca_play,) = [play for play in plays if str(play["name"]).startswith("WHAT=ca: a new internal CA")]
    aside = next(task for task in ca_play["tasks"][0]["block"] if task["name"] == "Set the current PKI aside")
    script = aside["ansible.builtin.shell"]
    assert "mv {{ rotate_pki_dir }}/ca.crt" in script
    assert "private/ca.key" in script
