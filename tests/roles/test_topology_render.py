"""The multi-host wiring of docs/topology.md, rendered for N hosts without deploying.

Each test runs the real roles with ansible-playbook against a lab-shaped inventory of local hosts
(edge, chat with three Rocket.Chat instances, mongo1-3, erp1-2, bot, mon) and checks what the roles
derive: upstreams, allowlists, trusted proxies, published addresses, MongoDB members and shared secrets,
the nginx configuration. Defects 1-3 and 7 of issue 10 fail these tests.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml
from infra.test_drill_silent import ProxyTimeouts
from plugins.infra import Stack

if TYPE_CHECKING:
    from roles.conftest import MongodbLab

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DOMAIN = "chat.lab.example"
# The alerts webhook rocketchat_bootstrap writes into the lab render's store (tests/roles/conftest.py).
LAB_WEBHOOK = "http://rocketchat:3000/hooks/abc/TOKEN"
ADDRESSES = {
    "edge": "10.77.0.10",
    "chat": "10.77.0.11",
    "mongo1": "10.77.0.21",
    "mongo2": "10.77.0.22",
    "mongo3": "10.77.0.23",
    "erp1": "10.77.0.31",
    "erp2": "10.77.0.32",
    "bot": "10.77.0.51",
    "mon": "10.77.0.61",
}
GROUPS = {
    "proxy": ["edge"],
    "rocketchat": ["chat"],
    "mongodb": ["mongo1", "mongo2", "mongo3"],
    "erp": ["erp1", "erp2"],
    "bots": ["bot"],
    "monitoring": ["mon"],
}
# MongoDB's TLS hop as the roles derive it (tests/roles/test_mongodb_tls.py).
MONGODB_TLS_VARS = [
    "photomatrix_mongodb_tls",
    "mongodb_tls",
    "mongodb_tls_names",
    "mongodb_command",
    "mongodb_env",
    "mongodb_mounts",
    "mongodb_healthcheck_test",
]
RENDERED = [
    "tls_proxy_rocketchat_servers",
    "tls_proxy_erp_servers",
    "tls_proxy_erp_allowlist",
    "tls_proxy_ipv4_address",
    "erp_api_trusted_proxies",
    "erp_api_bot_key_allow",
    "erp_api_publish_address",
    "chatbot_erp_url",
    "chatbot_rocketchat_url",
    "chatbot_extra_hosts",
    "chatbot_ipv4_address",
    "chatbot_publish_address",
    "rocketchat_instance_total",
    "rocketchat_transporter",
    "rocketchat_publish_address",
    "mongodb_members",
    "mongodb_publish_address",
    "mongodb_rocketchat_mongo_url",
    "monitoring_erp_targets",
    "monitoring_erp_tls",
    "erp_api_tls",
    "erp_api_tls_names",
    "monitoring_node_exporter_tls",
    "monitoring_node_exporter_tls_names",
    "tls_proxy_erp_tls",
    "photomatrix_erp_tls",
    "monitoring_bot_targets",
    "monitoring_rocketchat_targets",
    "monitoring_alertmanager_receiver_urls",
    "photomatrix_firewall_rules",
    "backup_components",
    "backup_mongodb_replica_set",
    "backup_mongodb_members",
    "erp_api_alert_webhook_url",
    "erp_api_alert_webhook_ca",
    "erp_api_extra_hosts",
    # MongoDB's TLS hop, read by tests/roles/test_mongodb_tls.py from the same render (the lab fixture).
    *MONGODB_TLS_VARS,
]


def render_common(tmp: Path) -> dict:
    """The variables every render inventory sets: this machine as each host, the store under TMP."""
    return {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "photomatrix_domain": DOMAIN,
        "photomatrix_bootstrap_secrets_dir": str(tmp / "store"),
        "photomatrix_internal_subnet": "10.250.0.0/24",
        "photomatrix_container_addresses": {"proxy": "10.250.0.10", "bot": "10.250.0.20"},
        "photomatrix_network": "photomatrix-render-test",
    }


def write_inventory(tmp: Path, *, multi: bool, extra: dict | None = None) -> Path:
    """The lab shape (multi) or everything on one host (inventory/local's shape)."""
    common = render_common(tmp) | (extra or {})
    if multi:
        children = {
            group: {
                "hosts": {
                    host: {"ansible_host": ADDRESSES[host], "photomatrix_root": str(tmp / "hosts" / host)}
                    | ({"rocketchat_instance_count": 3} if host == "chat" else {})
                    for host in hosts
                }
            }
            for group, hosts in GROUPS.items()
        }
    else:
        one = {"solo": {"photomatrix_root": str(tmp / "hosts" / "solo")}}
        children = {group: {"hosts": one} for group in GROUPS}
    path = tmp / "hosts.yml"
    path.write_text(yaml.safe_dump({"all": {"children": children, "vars": common}}), encoding="utf-8")
    return path


def ansible_playbook(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(
        [str(BIN / "ansible-playbook"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def render(
    tmp: Path, *, multi: bool, extra: dict | None = None, variables: list[str] = RENDERED
) -> dict[str, dict]:
    """VARIABLES as the roles derive them, per host (tests/roles/render_defaults.yml)."""
    return render_inventory(tmp, write_inventory(tmp, multi=multi, extra=extra), variables)


def render_inventory(tmp: Path, inventory: Path, variables: list[str]) -> dict[str, dict]:
    """VARIABLES per host of INVENTORY (tests/roles/render_defaults.yml), written under TMP."""
    out = tmp / "rendered"
    out.mkdir()
    run = ansible_playbook(
        "-i",
        str(inventory),
        "tests/roles/render_defaults.yml",
        "--tags",
        "render",
        "-e",
        json.dumps({"render_dir": str(out), "render_vars": variables}),
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    rendered = {path.stem: json.loads(path.read_text()) for path in out.glob("*.json")}
    for path in out.glob("*.prometheus.yml"):
        rendered[path.name.split(".")[0]]["prometheus.yml"] = yaml.safe_load(path.read_text())
    return rendered


@pytest.fixture(scope="module")
def solo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    return render(tmp_path_factory.mktemp("solo"), multi=False)


def test_proxy_upstreams_are_every_remote_instance_by_host_address(lab: dict[str, dict]) -> None:
    edge = lab["edge"]
    assert edge["tls_proxy_erp_servers"] == ["10.77.0.31:8000", "10.77.0.32:8000"]
    # Each instance by its TLS sidecar's published port (3443+i; issue 10: TLS from the internal CA).
    assert edge["tls_proxy_rocketchat_servers"] == ["10.77.0.11:3443", "10.77.0.11:3444", "10.77.0.11:3445"]
    # The bot arrives from its host's address; its container address exists only on its own host.
    assert edge["tls_proxy_erp_allowlist"] == ["10.77.0.51"]


def test_erp_trusts_the_proxy_host_and_publishes_on_its_own_address(lab: dict[str, dict]) -> None:
    for host in ("erp1", "erp2"):
        assert lab[host]["erp_api_trusted_proxies"] == ["10.77.0.10/32"]
        assert lab[host]["erp_api_bot_key_allow"] == ["10.77.0.51/32"]
        assert lab[host]["erp_api_publish_address"] == ADDRESSES[host]


def test_the_erp_posts_its_alerts_through_the_public_name_away_from_rocketchats_host(
    lab: dict[str, dict], solo: dict[str, dict]
) -> None:
    """rocketchat_bootstrap writes the webhook on Rocket.Chat's internal URL, which only its own host
    resolves: an ERP host elsewhere posts its path to the public name, mapped to the proxy host's address
    and checked against the store's internal CA (the proxy's self-signed mode)."""
    for host in ("erp1", "erp2"):
        assert lab[host]["erp_api_alert_webhook_url"] == f"https://{DOMAIN}/hooks/abc/TOKEN"
        assert lab[host]["erp_api_extra_hosts"] == {DOMAIN: "10.77.0.10"}
        assert lab[host]["erp_api_alert_webhook_ca"].endswith("/store/ca.crt")
    # On Rocket.Chat's host: its internal URL, no name mapped, no CA (plain HTTP on the host's network).
    assert solo["solo"]["erp_api_extra_hosts"] == {}
    assert solo["solo"]["erp_api_alert_webhook_ca"] == ""


def test_container_addresses_stay_in_the_internal_subnet(lab: dict[str, dict]) -> None:
    # Defect 2: host addresses never become ipv4_address values on the bridge.
    assert lab["edge"]["tls_proxy_ipv4_address"] == "10.250.0.10"
    assert lab["bot"]["chatbot_ipv4_address"] == "10.250.0.20"


def test_bot_reaches_the_proxy_by_the_public_name_on_the_proxy_host(lab: dict[str, dict]) -> None:
    bot = lab["bot"]
    assert bot["chatbot_erp_url"] == f"https://{DOMAIN}"
    assert bot["chatbot_rocketchat_url"] == f"https://{DOMAIN}"
    assert bot["chatbot_extra_hosts"] == {DOMAIN: "10.77.0.10"}
    # Prometheus and Alertmanager (on mon) call the bot: its port is published on its host address.
    assert bot["chatbot_publish_address"] == "10.77.0.51"


def test_several_rocketchat_instances_get_a_transporter(lab: dict[str, dict]) -> None:
    chat = lab["chat"]
    assert chat["rocketchat_instance_total"] == 3
    # One rocketchat host: its instances reach NATS on the Docker network (tests/roles/test_nats.py).
    assert chat["rocketchat_transporter"] == "monolith+nats://nats:4222"
    assert chat["rocketchat_publish_address"] == "10.77.0.11"


def test_mongo_url_names_every_member_and_the_replica_set(lab: dict[str, dict]) -> None:
    members = ["10.77.0.21:27017", "10.77.0.22:27017", "10.77.0.23:27017"]
    for host in ("mongo1", "mongo2", "mongo3"):
        assert lab[host]["mongodb_members"] == members
        assert lab[host]["mongodb_publish_address"] == ADDRESSES[host]
    url = lab["mongo1"]["mongodb_rocketchat_mongo_url"]
    assert re.fullmatch(
        r"mongodb://rocketchat:[A-Za-z0-9]{32}@"
        + re.escape(",".join(members))
        # tls=true: the lab has an internal CA (tests/roles/test_mongodb_tls.py).
        + r"/rocketchat\?replicaSet=rs0&authSource=admin&tls=true",
        url,
    ), url
    # One password for all members (the controller-side store), so every member renders the same URL.
    assert {lab[host]["mongodb_rocketchat_mongo_url"] for host in ("mongo1", "mongo2", "mongo3")} == {url}


def test_prometheus_scrapes_remote_hosts_by_address(lab: dict[str, dict]) -> None:
    mon = lab["mon"]
    assert mon["monitoring_erp_targets"] == ["10.77.0.31:8000", "10.77.0.32:8000"]
    assert mon["monitoring_bot_targets"] == ["10.77.0.51:8080"]
    assert mon["monitoring_rocketchat_targets"] == ["10.77.0.11:9458", "10.77.0.11:9459", "10.77.0.11:9460"]
    assert mon["monitoring_alertmanager_receiver_urls"] == ["https://10.77.0.51:8080/alerts/alertmanager"]


def test_the_erp_certificate_names_what_its_callers_use(lab: dict[str, dict], solo: dict[str, dict]) -> None:
    """Issue 10: the internal CA's certificate of each ERP host carries the name the proxy and Prometheus
    verify (erp-api, first), the host's name and address (the upstream and scrape lines of other hosts),
    and on one host each replica's alias and container name."""
    for host in ("erp1", "erp2"):
        names = lab[host]["erp_api_tls_names"]
        assert names[0] == "erp-api"
        assert {host, ADDRESSES[host], "photomatrix-erp-api"} <= set(names), names
        assert lab[host]["erp_api_tls"] is True
    for flag in ("tls_proxy_erp_tls", "monitoring_erp_tls", "photomatrix_erp_tls"):
        assert [lab["edge"][flag], lab["mon"][flag], solo["solo"][flag]] == [True, True, True], flag
    one = solo["solo"]["erp_api_tls_names"]
    assert one[0] == "erp-api", one
    assert {"solo", "photomatrix-erp-api"} <= set(one), one
    # Every upstream line of the one-host proxy names something the certificate carries.
    assert {s.rsplit(":", 1)[0] for s in solo["solo"]["tls_proxy_erp_servers"]} <= set(one)


def test_the_erp_certificate_names_every_replica_of_a_host(tmp_path: Path) -> None:
    """inventory/local's shape: two replicas at fixed addresses, the proxy's upstream lines name those
    addresses; each is in the certificate, with each replica's alias and container name."""
    addresses = {"proxy": "10.250.0.10", "bot": "10.250.0.20", "erp_api": "10.250.0.30"}
    one = render(
        tmp_path, multi=False, extra={"erp_api_replicas": 2, "photomatrix_container_addresses": addresses}
    )["solo"]
    names = one["erp_api_tls_names"]
    assert names[0] == "erp-api"
    expected = {"erp-api-2", "photomatrix-erp-api", "photomatrix-erp-api-2", "10.250.0.30", "10.250.0.31"}
    assert expected <= set(names), names
    assert one["tls_proxy_erp_servers"] == ["10.250.0.30:8000", "10.250.0.31:8000"]
    assert {server.rsplit(":", 1)[0] for server in one["tls_proxy_erp_servers"]} <= set(names)


def erp_scrape_job(rendered: dict) -> dict:
    (job,) = [j for j in rendered["prometheus.yml"]["scrape_configs"] if j["job_name"] == "erp-api"]
    return job


@pytest.mark.parametrize("shape", ["lab", "solo"])
def test_prometheus_scrapes_the_erp_over_https_verified_against_the_internal_ca(
    shape: str, request: pytest.FixtureRequest
) -> None:
    rendered = request.getfixturevalue(shape)
    job = erp_scrape_job(rendered["mon" if shape == "lab" else "solo"])
    assert job["scheme"] == "https"
    assert job["tls_config"] == {
        "ca_file": "/etc/prometheus/erp-ca.crt",
        "server_name": "erp-api",
        "insecure_skip_verify": False,
    }
    expected = ["10.77.0.31:8000", "10.77.0.32:8000"] if shape == "lab" else ["erp-api:8000"]
    assert job["static_configs"][0]["targets"] == expected


@pytest.mark.parametrize("shape", ["lab", "solo"])
def test_prometheus_scrapes_node_exporters_and_the_bot_over_https_and_each_certificate_names_its_target(
    shape: str, request: pytest.FixtureRequest
) -> None:
    rendered = request.getfixturevalue(shape)
    (job,) = [
        j for j in rendered["mon" if shape == "lab" else "solo"]["prometheus.yml"]["scrape_configs"]
        if j["job_name"] == "node"
    ]  # fmt: skip
    assert job["scheme"] == "https"
    assert job["tls_config"] == {
        "ca_file": "/etc/prometheus/erp-ca.crt",
        "server_name": "node-exporter",
        "insecure_skip_verify": False,
    }
    for config in job["static_configs"]:
        (target,) = config["targets"]
        host = config["labels"]["host"]
        assert rendered[host]["monitoring_node_exporter_tls"] is True
        names = rendered[host]["monitoring_node_exporter_tls_names"]
        assert names[0] == "node-exporter", names
        # The address (or name) Prometheus dials is in that host's certificate too.
        assert target.rsplit(":", 1)[0] in [*names, "node-exporter"], (target, names)
    (bot_job,) = [
        j for j in rendered["mon" if shape == "lab" else "solo"]["prometheus.yml"]["scrape_configs"]
        if j["job_name"] == "chatbot"
    ]  # fmt: skip
    assert bot_job["scheme"] == "https"
    assert bot_job["tls_config"]["server_name"] == "chatbot"


def test_each_host_admits_only_the_peers_of_the_ports_it_publishes(lab: dict[str, dict]) -> None:
    """docs/topology.md section 3: the rules docker_engine writes to DOCKER-USER, per host."""

    def rules(host: str) -> dict[int, list[str]]:
        found = lab[host]["photomatrix_firewall_rules"]
        assert {rule["address"] for rule in found} <= {ADDRESSES[host]}, found
        return {rule["port"]: rule["peers"] for rule in found}

    assert rules("erp1") == {8000: ["10.77.0.10", "10.77.0.61"]}
    assert rules("chat") == {
        3443: ["10.77.0.10"],
        3444: ["10.77.0.10"],
        3445: ["10.77.0.10"],
        9458: ["10.77.0.61"],
        9459: ["10.77.0.61"],
        9460: ["10.77.0.61"],
    }
    # A member admits the other members and Rocket.Chat, never itself.
    assert rules("mongo2") == {27017: ["10.77.0.11", "10.77.0.21", "10.77.0.23"]}
    # Realtime mode: only Prometheus and Alertmanager call the bot.
    assert rules("bot") == {8080: ["10.77.0.61"]}
    assert rules("edge") == {}
    assert rules("mon") == {}


def test_one_host_keeps_container_aliases_and_publishes_nothing(solo: dict[str, dict]) -> None:
    one = solo["solo"]
    assert one["photomatrix_firewall_rules"] == []
    assert one["tls_proxy_erp_servers"] == ["erp-api:8000"]
    assert one["tls_proxy_rocketchat_servers"] == ["rocketchat-tls:3443"]
    assert one["tls_proxy_erp_allowlist"] == ["10.250.0.20"]
    assert one["erp_api_trusted_proxies"] == ["10.250.0.10/32"]
    assert one["erp_api_bot_key_allow"] == ["10.250.0.20/32"]
    assert one["erp_api_publish_address"] == ""
    assert one["rocketchat_publish_address"] == ""
    assert one["mongodb_publish_address"] == ""
    assert one["chatbot_publish_address"] == ""
    assert one["mongodb_members"] == ["mongodb:27017"]
    assert one["monitoring_erp_targets"] == ["erp-api:8000"]
    assert one["chatbot_erp_url"] == f"https://{DOMAIN}:8443"
    assert one["chatbot_extra_hosts"] == {DOMAIN: "10.250.0.10"}


def test_mongodb_members_share_one_keyfile_and_the_store_holds_mongo_url(mongodb_lab: MongodbLab) -> None:
    """playbooks/mongodb.yml on three members, up to starting mongod (mongodb_run_mongod=false)."""
    run = mongodb_lab.first
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "MONGODB NOT STARTED" in run.stdout
    root = mongodb_lab.root
    keyfiles = [root / "hosts" / host / "secrets/mongodb/keyfile" for host in GROUPS["mongodb"]]
    contents = {path.read_text() for path in keyfiles}
    assert len(contents) == 1, "the members got different keyfiles: the replica set cannot form"
    assert len(contents.pop()) == 756
    for path in keyfiles:
        info = path.stat()
        assert stat.S_IMODE(info.st_mode) == 0o400
        assert (info.st_uid, info.st_gid) == (999, 999)
    passwords = {
        (root / "hosts" / h / "secrets/mongodb/root_password").read_text() for h in GROUPS["mongodb"]
    }
    assert len(passwords) == 1
    url = (root / "store/mongodb/rocketchat_mongo_url").read_text().strip()
    assert (
        "@10.77.0.21:27017,10.77.0.22:27017,10.77.0.23:27017/rocketchat?replicaSet=rs0&authSource=admin"
        in url
    )
    assert stat.S_IMODE((root / "store/mongodb/rocketchat_mongo_url").stat().st_mode) == 0o600


def rendered_nginx_conf(tmp: Path, *, multi: bool, extra: dict | None = None) -> str:
    inventory = write_inventory(tmp, multi=multi)
    host = "edge" if multi else "solo"
    conf = tmp / "proxy"
    conf.mkdir()
    run = subprocess.run(
        [
            str(BIN / "ansible"),
            host,
            "-i",
            str(inventory),
            "-m",
            "ansible.builtin.include_role",
            "-a",
            "name=tls_proxy tasks_from=config.yml",
            "-e",
            # The handler would reload a proxy container: this one is "just started".
            json.dumps({"tls_proxy_config_dir": str(conf), "tls_proxy_started": True} | (extra or {})),
        ],
        cwd=ROOT,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    return (conf / "nginx.conf").read_text()


@pytest.fixture(scope="module")
def nginx_conf(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., str]:
    """rendered_nginx_conf, made once per shape and variables in this module (tests read the same)."""
    made: dict[str, str] = {}

    def conf(*, multi: bool, extra: dict | None = None) -> str:
        key = json.dumps([multi, extra or {}], sort_keys=True)
        if key not in made:
            made[key] = rendered_nginx_conf(tmp_path_factory.mktemp("nginx"), multi=multi, extra=extra)
        return made[key]

    return conf


def location(conf: str, pattern: str) -> str:
    start = conf.rindex(f"location {pattern}")
    return conf[start : conf.index("}", start)]


def test_nginx_conf_balances_over_every_host_and_keeps_client_addresses(
    nginx_conf: Callable[..., str],
) -> None:
    conf = nginx_conf(multi=True)
    assert re.search(
        r"upstream erp_servers \{[^}]*server 10\.77\.0\.31:8000[^}]*server 10\.77\.0\.32:8000", conf
    )
    erp = re.search(r"upstream erp_servers \{([^}]*)\}", conf)
    assert erp, conf
    for server in ("10.77.0.31:8000", "10.77.0.32:8000"):
        assert re.findall(rf"server {re.escape(server)} (.*);", erp.group(1)) == [
            "max_fails=1 fail_timeout=5s",
            "backup max_fails=0",
        ]
    # The other upstreams have no backup entries.
    assert not re.search(r"^\s*server \S+ .*backup", conf.replace(erp.group(1), ""), re.MULTILINE)
    assert re.search(r"upstream rocketchat_servers \{[^}]*ip_hash;[^}]*10\.77\.0\.11:3445", conf)
    assert "set $erp_upstream https://erp_servers;" in conf
    assert re.search(r"location /api/bot/v1/ \{\s*allow 10\.77\.0\.51;\s*deny all;", conf)
    # Defect 7: the realtime location sets headers, so it must repeat the client address ones.
    realtime = location(conf, "~ ^/(websocket|sockjs)")
    for header in ("Host $http_host", "X-Forwarded-For $remote_addr", "X-Forwarded-Proto https", "X-Real-IP"):
        assert f"proxy_set_header {header}" in realtime
    # Defect 8: uploads stream to Rocket.Chat instead of filling the proxy's tmpfs.
    assert "proxy_request_buffering off;" in location(conf, "/ ")
    # Mozilla intermediate groups, nothing else.
    assert "ssl_ecdh_curve X25519:prime256v1:secp384r1;" in conf


def test_nginx_conf_on_one_host_resolves_aliases_per_request(nginx_conf: Callable[..., str]) -> None:
    conf = nginx_conf(multi=False)
    assert not re.search(r"^\s*upstream ", conf, re.MULTILINE)
    assert not re.search(r"^\s*server \S+ .*backup", conf, re.MULTILINE)
    assert "set $erp_upstream https://erp-api:8000;" in conf
    assert "set $rocketchat_upstream https://rocketchat-tls:3443;" in conf


def test_erp_replicas_on_the_proxy_host_are_balanced_by_address_with_passive_health(
    nginx_conf: Callable[..., str],
) -> None:
    addresses = {"proxy": "10.250.0.10", "bot": "10.250.0.20", "erp_api": "10.250.0.30"}
    conf = nginx_conf(
        multi=False, extra={"erp_api_replicas": 2, "photomatrix_container_addresses": addresses}
    )
    upstream = re.search(r"upstream erp_servers \{([^}]*)\}", conf)
    assert upstream, conf
    servers = re.findall(r"server (\S+) max_fails=1 fail_timeout=5s;", upstream.group(1))
    assert servers == ["10.250.0.30:8000", "10.250.0.31:8000"]
    # Issue 11: every replica once more as a backup that is never marked failed, so that with every
    # primary entry marked failed nginx still tries the replicas instead of answering 502 "no live
    # upstreams" (tests/roles/test_erp_upstream_all_failed.py runs it); nothing else in the upstream.
    assert re.findall(r"server (\S+) backup max_fails=0;", upstream.group(1)) == servers
    lines = re.findall(r"^\s*server (\S+) (.*);$", upstream.group(1), re.MULTILINE)
    assert len(lines) == 4, lines
    assert "zone erp_servers" in upstream.group(1)
    assert "set $erp_upstream https://erp_servers;" in conf
    # Refused or timed-out connections (and 502/503 answers) go to the other replica.
    assert "proxy_next_upstream error timeout http_502 http_503;" in conf
    assert not re.search(r"^\s*proxy_next_upstream [^;]*non_idempotent", conf, re.MULTILINE)
    assert "proxy_connect_timeout 2s;" in location(conf, "= /activate/style.css")


ERP_LOCATIONS = [
    "/api/bot/v1/",
    "= /healthz",
    "= /api/v1/account/activate",
    "= /activate",
    "= /activate/style.css",
]


@pytest.mark.parametrize("read_timeout", [None, "7s"], ids=["default", "set"])
def test_a_silent_erp_replica_holds_a_request_no_longer_than_the_read_timeout_then_it_is_retried(
    tmp_path: Path, nginx_conf: Callable[..., str], read_timeout: str | None
) -> None:
    """Issue 11, the silent-replica drill (tests/infra/test_drill_silent.py): a frozen replica accepts
    TCP and answers nothing. Every ERP location bounds the wait for an answer (tls_proxy_erp_read_timeout,
    not nginx's 60 s default) below proxy_next_upstream_timeout, so a GET held there is passed to the other
    replica; the drill derives its bounds from these directives, read as it reads them."""
    extra = {"erp_api_replicas": 2, "photomatrix_container_addresses": {"erp_api": "10.250.0.30"}}
    if read_timeout:
        extra["tls_proxy_erp_read_timeout"] = read_timeout
    conf = nginx_conf(multi=False, extra=extra)
    expected = read_timeout or "10s"
    for pattern in ERP_LOCATIONS:
        block = location(conf, f"{pattern} {{")
        assert "proxy_pass $erp_upstream;" in block, pattern
        assert f"proxy_read_timeout {expected};" in block, block
        assert "proxy_connect_timeout 2s;" in block, block
    deployed = tmp_path / "deployed"
    (deployed / "proxy").mkdir(parents=True)
    (deployed / "proxy" / "nginx.conf").write_text(conf)
    for pattern in ERP_LOCATIONS:
        if pattern.startswith("= "):
            timeouts = ProxyTimeouts.deployed(Stack(root=deployed), pattern.removeprefix("= "))
            assert (timeouts.read, timeouts.connect, timeouts.next_upstream) == (
                float(expected[:-1]),
                2.0,
                15.0,
            )
            assert timeouts.retried


@pytest.mark.parametrize("read_timeout", ["15s", "1m"])
def test_an_erp_read_timeout_past_the_retry_window_is_refused(tmp_path: Path, read_timeout: str) -> None:
    """Past proxy_next_upstream_timeout (15 s) a GET held by a silent replica is answered 504, not retried."""
    with pytest.raises(AssertionError, match="below proxy_next_upstream_timeout"):
        rendered_nginx_conf(tmp_path, multi=False, extra={"tls_proxy_erp_read_timeout": read_timeout})


@pytest.mark.skipif(shutil.which("docker") is None, reason="needs Docker for the nginx image")
def test_the_erp_rollout_waits_longer_than_the_proxy_skips_a_replica() -> None:
    """A replica that refused a connection is skipped by the proxy for fail_timeout: the rollout must
    wait longer than that after a replica is ready before it stops the next one (else: no live upstream)."""
    roles = Path(__file__).resolve().parents[2] / "roles"
    proxy = yaml.safe_load((roles / "tls_proxy" / "defaults" / "main.yml").read_text(encoding="utf-8"))
    erp = yaml.safe_load((roles / "erp_api" / "defaults" / "main.yml").read_text(encoding="utf-8"))
    fail_timeout = re.fullmatch(r"(\d+)s", proxy["tls_proxy_erp_fail_timeout"])
    assert fail_timeout, proxy["tls_proxy_erp_fail_timeout"]
    assert erp["erp_api_rollout_pause"] > int(fail_timeout.group(1))
    replica = (roles / "erp_api" / "tasks" / "replica.yml").read_text(encoding="utf-8")
    assert 'timeout: "{{ erp_api_rollout_pause }}"' in replica


def test_rendered_multi_host_conf_passes_nginx_t(tmp_path: Path, nginx_conf: Callable[..., str]) -> None:
    """nginx -t in the project's nginx image (when this machine has built it) on the N-host config."""
    image = "photomatrix/nginx:current"
    if subprocess.run(
        ["docker", "image", "inspect", image], capture_output=True, timeout=60, check=False
    ).returncode:
        pytest.skip(f"{image} is not built here (make up builds it)")
    conf = nginx_conf(multi=True)
    (tmp_path / "nginx.conf").write_text(conf)
    tls = tmp_path / "tls"
    tls.mkdir()
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-subj", f"/CN={DOMAIN}", "-days", "1",
            "-keyout", str(tls / "server.key"), "-out", str(tls / "fullchain.pem"),
        ],
        capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    # The internal CA nginx verifies the ERP's certificate against (issue 10): any certificate will do
    # for -t, which loads it.
    shutil.copy(tls / "fullchain.pem", tls / "upstream-ca.crt")
    for path in tls.iterdir():
        path.chmod(0o644)
    run = subprocess.run(
        [
            "docker", "run", "--rm", "--network", "none", "--user", "33:33", "--tmpfs", "/tmp",
            "-v", f"{tmp_path / 'nginx.conf'}:/etc/nginx/nginx.conf:ro", "-v", f"{tls}:/etc/nginx/tls:ro",
            "--entrypoint", "nginx", image, "-t",
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr


def rendered_rocketchat_env(tmp: Path, extra: dict) -> dict[str, str]:
    """The environment the rocketchat role gives the container (roles/rocketchat/tasks/env.yml)."""
    tmp.mkdir()
    inventory = write_inventory(tmp, multi=False)
    out = tmp / "env.json"
    save = {"dest": str(out), "content": "{{ rocketchat_env | to_json }}"}
    playbook = tmp / "env.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "hosts": "solo",
                    "gather_facts": False,
                    "tasks": [
                        {"ansible.builtin.include_vars": {"dir": str(ROOT / "playbooks/group_vars/all")}},
                        {"ansible.builtin.include_role": {"name": "rocketchat", "tasks_from": "env.yml"}},
                        {"ansible.builtin.copy": save},
                    ],
                }
            ]
        )
    )
    run = ansible_playbook("-i", str(inventory), str(playbook), "-e", json.dumps(extra))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    return json.loads(out.read_text())


def test_the_first_admin_email_is_not_verified_so_its_password_login_needs_no_emailed_code(
    tmp_path: Path,
) -> None:
    """With e-mail 2FA auto opt-in a verified admin e-mail makes the bootstrap login ask for a code sent by
    e-mail (/work/shared/rocketchat/facts.md, section 5.2): the role creates the admin unverified, as
    docs/rocketchat-configuration.md advises."""
    assert rendered_rocketchat_env(tmp_path / "default", {})["ADMIN_EMAIL_VERIFIED"] == "false"
    overridden = rendered_rocketchat_env(tmp_path / "verified", {"rocketchat_admin_email_verified": True})
    assert overridden["ADMIN_EMAIL_VERIFIED"] == "true"
    docs = (ROOT / "docs/rocketchat-configuration.md").read_text(encoding="utf-8")
    assert "`rocketchat_admin_email_verified` defaults to `false`" in docs


ERP_LOCATIONS = [
    "/api/bot/v1/",
    "= /healthz",
    "= /api/v1/account/activate",
    "= /activate",
    "= /activate/style.css",
]
ERP_UPSTREAM_TLS = [
    "proxy_ssl_verify on;",
    "proxy_ssl_trusted_certificate /etc/nginx/tls/upstream-ca.crt;",
    "proxy_ssl_name erp-api;",
    "proxy_ssl_protocols TLSv1.2 TLSv1.3;",
    "proxy_ssl_session_reuse on;",
]


@pytest.mark.parametrize("multi", [True, False], ids=["hosts", "one-host"])
def test_the_proxy_reaches_the_erp_over_verified_tls_and_keeps_its_connections(
    nginx_conf: Callable[..., str], multi: bool
) -> None:
    """Issue 10: proxy → ERP is HTTPS, checked against the internal CA for the ERP's name, on one host and
    many; the upstream keeps its keepalive connections (TLS sessions reused on them)."""
    extra = (
        {}
        if multi
        else {"erp_api_replicas": 2, "photomatrix_container_addresses": {"erp_api": "10.250.0.30"}}
    )
    conf = nginx_conf(multi=multi, extra=extra)
    assert "set $erp_upstream https://erp_servers;" in conf
    upstream = re.search(r"upstream erp_servers \{([^}]*)\}", conf)
    assert upstream, conf
    assert "keepalive 16;" in upstream.group(1), conf
    # Set once for the server (every location inherits them; only the ERP's upstream is https).
    start = conf.index("listen 8443")
    server = conf[start : conf.index("location ", start)]
    for line in ERP_UPSTREAM_TLS:
        assert line in server, f"no {line}"
    for where in ERP_LOCATIONS:
        block = location(conf, where)
        assert "proxy_pass $erp_upstream;" in block, where
        assert "proxy_ssl" not in block, f"{where} overrides the server's upstream TLS"
    assert "proxy_ssl_verify off" not in conf
    # Rocket.Chat's TLS sidecars and the bot's port are HTTPS with the internal CA (their own lines:
    # test_rocketchat_tls_render.py, test_the_proxy_verifies_the_bot_certificate_like_the_erp_one).
    assert re.search(r"set \$rocketchat_upstream https://", conf)
    assert re.search(r"set \$bot_upstream https://", conf)
    # HTTP/1.1 with an empty Connection header: what keepalive to the upstream needs.
    assert "proxy_http_version 1.1;" in conf
    assert 'proxy_set_header Connection "";' in conf


def test_the_proxy_speaks_plain_http_to_the_erp_when_tls_is_off(nginx_conf: Callable[..., str]) -> None:
    conf = nginx_conf(multi=False, extra={"photomatrix_erp_tls": False, "photomatrix_rocketchat_tls": False})
    assert "set $erp_upstream http://erp-api:8000;" in conf
    assert "proxy_ssl_" not in conf


BOT_UPSTREAM_TLS = [
    "proxy_ssl_verify on;",
    "proxy_ssl_trusted_certificate /etc/nginx/tls/upstream-ca.crt;",
    "proxy_ssl_name chatbot;",
    "proxy_ssl_server_name on;",
    "proxy_ssl_protocols TLSv1.2 TLSv1.3;",
]


@pytest.mark.parametrize("erp_tls", [True, False], ids=["erp-https", "erp-http"])
def test_the_proxy_verifies_the_bot_certificate_like_the_erp_one(
    nginx_conf: Callable[..., str], erp_tls: bool
) -> None:
    """Issue 10: with the internal CA the bot's port is HTTPS in webhook mode too, and the proxy's
    /bot/webhook route checks its certificate against that CA for the name every bot certificate carries
    (chatbot), whatever the ERP hop does; the ERP's locations keep the ERP's name."""
    extra = {"tls_proxy_bot_webhook_enabled": True, "chatbot_mode": "webhook", "photomatrix_erp_tls": erp_tls}
    conf = nginx_conf(multi=True, extra=extra)
    assert "set $bot_upstream https://10.77.0.51:8080;" in conf
    block = location(conf, "= /bot/webhook")
    for line in BOT_UPSTREAM_TLS:
        assert line in block, f"no {line} in {block}"
    assert "proxy_pass $bot_upstream;" in block
    assert ("proxy_ssl_name erp-api;" in conf) is erp_tls


def test_the_proxy_speaks_plain_http_to_the_bot_without_the_internal_ca(
    nginx_conf: Callable[..., str],
) -> None:
    extra = {
        "tls_proxy_bot_webhook_enabled": True,
        "photomatrix_bot_tls": False,
        "photomatrix_erp_tls": False,
    }
    conf = nginx_conf(multi=False, extra=extra)
    assert "set $bot_upstream http://10.250.0.20:8080;" in conf
    assert "proxy_ssl_" not in location(conf, "= /bot/webhook")


def rendered_rocketchat_container(tmp: Path, extra: dict, *, ca_in_store: bool) -> dict:
    """The rocketchat role's trust in the internal CA (tasks/internal_ca.yml, run for real against a
    directory here), then the container's environment (tasks/env.yml) and mounts (container.yml's own
    expression), as the role gives them to Docker."""
    tmp.mkdir()
    inventory = write_inventory(tmp, multi=False, extra=extra)
    secrets = tmp / "secrets"
    secrets.mkdir()
    store = tmp / "store"
    store.mkdir()
    if ca_in_store:
        (store / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\ninternal CA\n-----END CERTIFICATE-----\n")
    (run_container,) = [
        task
        for task in yaml.safe_load((ROOT / "roles/rocketchat/tasks/container.yml").read_text())
        if "community.docker.docker_container" in task
    ]
    out = tmp / "container.json"
    save = {
        "dest": str(out),
        "content": "{{ {'env': rocketchat_env, 'mounts': rocketchat_mounts, 'restart': restart} | to_json }}",
    }
    role_vars = {"rocketchat_secrets_dir": str(secrets), "rocketchat_simulated": True}
    playbook = tmp / "container.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "hosts": "solo",
                    "gather_facts": False,
                    "tasks": [
                        {"ansible.builtin.include_vars": {"dir": str(ROOT / "playbooks/group_vars/all")}},
                        # The role's defaults for the copy task below (an included role keeps its own).
                        {
                            "ansible.builtin.include_vars": {
                                "file": str(ROOT / "roles/rocketchat/defaults/main.yml")
                            }
                        },
                        {
                            "ansible.builtin.include_role": {
                                "name": "rocketchat",
                                "tasks_from": "internal_ca.yml",
                            }
                        },
                        {"ansible.builtin.include_role": {"name": "rocketchat", "tasks_from": "env.yml"}},
                        {
                            "ansible.builtin.copy": save,
                            "vars": {
                                "item": 0,
                                "rocketchat_mounts": run_container["vars"]["rocketchat_mounts"],
                                "restart": run_container["community.docker.docker_container"]["restart"],
                            },
                        },
                    ],
                }
            ]
        )
    )
    run = ansible_playbook("-i", str(inventory), str(playbook), "-e", json.dumps(extra | role_vars))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    return json.loads(out.read_text()) | {"secrets": secrets}


@pytest.mark.parametrize("cert_mode", ["selfsigned", "acme", "provided"])
def test_rocketchat_trusts_the_internal_ca_through_node_extra_ca_certs(
    tmp_path: Path, cert_mode: str
) -> None:
    """Issue 10: Rocket.Chat (Node.js) verifies the bot's HTTPS certificate against the internal CA: the
    role copies the CA from the controller-side store, mounts it read-only and names it in
    NODE_EXTRA_CA_CERTS; a new CA re-creates the container (Node reads the file at start only). The
    internal CA exists whatever the public certificate is (ACME, provided)."""
    extra = {"tls_proxy_cert_mode": cert_mode}
    rendered = rendered_rocketchat_container(tmp_path / cert_mode, extra, ca_in_store=True)
    assert rendered["env"]["NODE_EXTRA_CA_CERTS"] == "/run/secrets/rocketchat/internal-ca.crt"
    installed = rendered["secrets"] / "internal-ca.crt"
    assert installed.read_text() == (tmp_path / cert_mode / "store/ca.crt").read_text()
    assert stat.S_IMODE(installed.stat().st_mode) == 0o600  # under secrets/: nothing readable by others
    assert installed.stat().st_uid == 10001  # the simulator's user reads it (65533 for Rocket.Chat's image)
    mount = {
        "type": "bind",
        "source": str(installed),
        "target": "/run/secrets/rocketchat/internal-ca.crt",
        "read_only": True,
    }
    assert mount in rendered["mounts"]
    assert rendered["restart"] is True  # installed in this run


@pytest.mark.parametrize("case", ["switched-off", "first-deploy"])
def test_rocketchat_trusts_no_extra_ca_without_one(tmp_path: Path, case: str) -> None:
    """An inventory without the internal CA (photomatrix_internal_ca false): nothing extra. A first deploy:
    the proxy layer has not made the CA yet, so nothing is mounted (playbooks/rocketchat_config.yml catches
    up)."""
    extra = {"photomatrix_internal_ca": False} if case == "switched-off" else {}
    rendered = rendered_rocketchat_container(tmp_path / case, extra, ca_in_store=case == "switched-off")
    assert "NODE_EXTRA_CA_CERTS" not in rendered["env"]
    assert not any("internal-ca" in mount["target"] for mount in rendered["mounts"])
    assert not (rendered["secrets"] / "internal-ca.crt").exists()
    assert rendered["restart"] is False


def test_mongodb_is_dumped_on_its_first_member_only_where_mongod_runs(
    lab: dict[str, dict], tmp_path_factory: pytest.TempPathFactory
) -> None:
    assert "rocketchat" in lab["mongo1"]["backup_components"]
    assert "rocketchat" not in lab["mongo2"]["backup_components"]
    # The lab runs no mongod (mongodb_run_mongod: false): a dump there failed every backup of mongo1, and
    # with it `make upgrade`'s verified backup.
    no_mongod = render(tmp_path_factory.mktemp("no-mongod"), multi=True, extra={"mongodb_run_mongod": False})
    assert no_mongod["mongo1"]["backup_components"] == ["secrets"]
    assert "rocketchat" in no_mongod["chat"]["backup_components"]  # the simulator's state or the uploads


def test_the_backup_reaches_mongodb_through_the_set_its_role_derives(
    lab: dict[str, dict], solo: dict[str, dict]
) -> None:
    """With several members the backup dumps and restores through the replica set, with the members the
    mongodb role gives Rocket.Chat (a restore on a member that is no longer the primary reaches the
    primary); with one, the local member."""
    for host in ("mongo1", "mongo2", "mongo3", "chat"):
        assert lab[host]["backup_mongodb_replica_set"] == "rs0"
        assert lab[host]["backup_mongodb_members"] == lab["mongo1"]["mongodb_members"]
    assert lab["mongo1"]["backup_mongodb_members"] == [
        "10.77.0.21:27017",
        "10.77.0.22:27017",
        "10.77.0.23:27017",
    ]
    assert solo["solo"]["backup_mongodb_replica_set"] == ""
    assert solo["solo"]["backup_mongodb_members"] == []
