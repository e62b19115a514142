"""The proxy → Rocket.Chat hop over TLS from the internal CA (issue 10; docs/topology.md, section 4,
"Rocket.Chat's HTTPS"), rendered without deploying. Where the internal CA is (photomatrix_rocketchat_tls
follows it), the proxy's rocketchat upstream is https:// to the TLS sidecar beside each instance, verified
against the internal CA for the sidecars' name (rocketchat-tls), ip_hash kept; across hosts the chat host
publishes the sidecars' port (3443+i), not Rocket.Chat's 3000+i, and admits the proxy alone to it
(Prometheus reads the exporter's own ports, 9458+i); the sidecar accepts only the proxy. The switch off
gives the old plain upstream. Rendered by Ansible with the roles' defaults and playbooks/group_vars/all
(tests/roles/render_defaults.yml), and the proxy's nginx.conf as the role writes it (tasks/config.yml)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from roles.test_internal_ca_render import INVENTORIES, local_vars
from roles.test_topology_render import (
    ADDRESSES,
    ansible_playbook,
    location,
    rendered_nginx_conf,
    write_inventory,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RENDERED = [
    "photomatrix_rocketchat_tls",
    "rocketchat_tls",
    "rocketchat_tls_names",
    "rocketchat_tls_allow",
    "rocketchat_publish_address",
    "tls_proxy_rocketchat_tls",
    "tls_proxy_rocketchat_servers",
    "photomatrix_firewall_rules",
    "container_images_host_project_images",
    "rocketchat_tls_metrics",
    "rocketchat_tls_metrics_allow",
    "rocketchat_metrics_publish_address",
    "monitoring_rocketchat_tls",
    "monitoring_rocketchat_targets",
    "rocketchat_tls_ipv4_address",
]
REALTIME = "~ ^/(websocket|sockjs)"
UPSTREAM_TLS = [
    "proxy_ssl_verify on;",
    "proxy_ssl_trusted_certificate /etc/nginx/tls/upstream-ca.crt;",
    "proxy_ssl_name rocketchat-tls;",
    "proxy_ssl_server_name on;",
    "proxy_ssl_protocols TLSv1.2 TLSv1.3;",
    "proxy_ssl_session_reuse on;",
]
OFF = {"photomatrix_rocketchat_tls": False}


def render(tmp: Path, *, multi: bool, extra: dict | None = None) -> dict[str, dict]:
    """RENDERED per host of the lab shape (multi) or one host; EXTRA as -e (it outranks
    playbooks/group_vars/all, as an inventory's group_vars/<group> does in a real run)."""
    tmp.mkdir(parents=True, exist_ok=True)
    inventory = write_inventory(tmp, multi=multi)
    out = tmp / "rendered"
    out.mkdir()
    run = ansible_playbook(
        "-i", str(inventory), "tests/roles/render_defaults.yml", "--tags", "render",
        "-e", json.dumps({"render_dir": str(out), "render_vars": RENDERED} | (extra or {})),
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    rendered = {path.stem: json.loads(path.read_text()) for path in out.glob("*.json")}
    for path in out.glob("*.prometheus.yml"):
        rendered[path.name.split(".")[0]]["prometheus.yml"] = yaml.safe_load(path.read_text())
    return rendered


def rocketchat_job(values: dict) -> dict:
    (job,) = [j for j in values["prometheus.yml"]["scrape_configs"] if j["job_name"] == "rocketchat"]
    return job


def rules(values: dict) -> dict[int, list[str]]:
    return {rule["port"]: rule["peers"] for rule in values["photomatrix_firewall_rules"]}


def test_the_shipped_production_proxy_reaches_rocketchat_over_verified_https(tmp_path: Path) -> None:
    """inventory/production (acme public certificate, the internal CA for the hops): the proxy's nginx.conf
    as the role writes it sends Rocket.Chat's requests and WebSockets to the chat host's sidecar over https,
    checked against the internal CA's copy for rocketchat-tls."""
    proxy = INVENTORIES["production"]["proxy"]
    conf_dir = tmp_path / "proxy"
    conf_dir.mkdir()
    playbook = tmp_path / "nginx.yml"
    tasks = [
        {"ansible.builtin.include_vars": {"dir": str(ROOT / "playbooks/group_vars/all")}},
        {"ansible.builtin.include_role": {"name": "tls_proxy", "tasks_from": "config.yml"}},
    ]
    playbook.write_text(yaml.safe_dump([{"hosts": proxy, "gather_facts": False, "tasks": tasks}]))
    extra = local_vars(tmp_path) | {"tls_proxy_config_dir": str(conf_dir), "tls_proxy_started": True}
    run = ansible_playbook("-i", "inventory/production", str(playbook), "-e", json.dumps(extra))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    conf = (conf_dir / "nginx.conf").read_text()
    # chat1 (10.0.10.5), one instance: its sidecar's published port, never Rocket.Chat's 3000.
    assert "set $rocketchat_upstream https://10.0.10.5:3443;" in conf
    assert ":3000" not in conf
    for pattern in (REALTIME, "/ "):
        block = location(conf, pattern)
        for line in UPSTREAM_TLS:
            assert line in block, f"location {pattern}: no {line}"
        assert "proxy_pass $rocketchat_upstream;" in block
    # The client address is still the proxy's to set: the sidecar passes it on unchanged.
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in location(conf, REALTIME)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    return render(tmp_path_factory.mktemp("lab"), multi=True)


def test_across_hosts_the_chat_host_publishes_the_sidecars_port_not_3000(lab: dict[str, dict]) -> None:
    chat, edge = lab["chat"], lab["edge"]
    assert chat["photomatrix_rocketchat_tls"] in (True, "True")
    assert chat["rocketchat_tls"] in (True, "True")
    assert edge["tls_proxy_rocketchat_tls"] in (True, "True")
    assert chat["rocketchat_publish_address"] == ADDRESSES["chat"]
    # Three instances, three sidecars: 3443-3445 admitted to the proxy alone (Prometheus has the exporter's
    # ports); 3000-3002 not at all.
    assert rules(chat) == {
        3443: [ADDRESSES["edge"]],
        3444: [ADDRESSES["edge"]],
        3445: [ADDRESSES["edge"]],
        9458: [ADDRESSES["mon"]],
        9459: [ADDRESSES["mon"]],
        9460: [ADDRESSES["mon"]],
    }
    assert edge["tls_proxy_rocketchat_servers"] == ["10.77.0.11:3443", "10.77.0.11:3444", "10.77.0.11:3445"]
    # The sidecars accept the proxy alone, as it arrives across hosts (its host address).
    assert chat["rocketchat_tls_allow"] == [ADDRESSES["edge"]]
    names = chat["rocketchat_tls_names"]
    assert names[0] == "rocketchat-tls"
    expected = {"rocketchat-tls-2", "rocketchat-tls-3", "photomatrix-rocketchat-tls-3", ADDRESSES["chat"]}
    assert expected <= set(names)
    # The sidecar runs the proxy's image: the chat host gets it.
    assert "nginx" in chat["container_images_host_project_images"]


def test_across_hosts_prometheus_scrapes_rocketchat_through_the_sidecars_over_verified_tls(
    lab: dict[str, dict],
) -> None:
    """Rocket.Chat's exporter is never published itself: each sidecar serves it over TLS on 9458 inside,
    published on 9458+i on the chat host's address, to the monitoring host alone (the firewall's 9458-9460
    rules above); Prometheus checks the sidecars' certificates against the internal CA."""
    chat, mon = lab["chat"], lab["mon"]
    assert chat["rocketchat_tls_metrics"] in (True, "True")
    assert chat["rocketchat_metrics_publish_address"] == ADDRESSES["chat"]
    assert chat["rocketchat_tls_metrics_allow"] == [ADDRESSES["mon"]]
    job = rocketchat_job(mon)
    assert job["scheme"] == "https"
    assert job["tls_config"] == {
        "ca_file": "/etc/prometheus/erp-ca.crt",
        "server_name": "rocketchat-tls",
        "insecure_skip_verify": False,
    }
    assert job["static_configs"][0]["targets"] == ["10.77.0.11:9458", "10.77.0.11:9459", "10.77.0.11:9460"]


def test_on_one_host_the_proxy_reaches_the_sidecar_by_alias(tmp_path: Path) -> None:
    solo = render(tmp_path, multi=False)["solo"]
    assert solo["tls_proxy_rocketchat_servers"] == ["rocketchat-tls:3443"]
    assert solo["rocketchat_publish_address"] == ""
    assert solo["photomatrix_firewall_rules"] == []
    assert solo["rocketchat_tls_allow"] == ["10.250.0.10"]  # the proxy's fixed container address
    # Prometheus beside it: the sidecar by alias over TLS, nothing published, the Docker network admitted.
    assert solo["rocketchat_metrics_publish_address"] == ""
    assert solo["rocketchat_tls_metrics_allow"] == ["10.250.0.0/24"]
    job = rocketchat_job(solo)
    assert job["scheme"] == "https"
    assert job["static_configs"][0]["targets"] == ["rocketchat-tls:9458"]


def test_the_lab_proxy_balances_over_the_sidecars_with_ip_hash_over_https(tmp_path: Path) -> None:
    conf = rendered_nginx_conf(tmp_path, multi=True)
    upstream = re.search(r"upstream rocketchat_servers \{[^}]*\}", conf)
    assert upstream, conf
    assert "ip_hash;" in upstream.group(0)
    for port in (3443, 3444, 3445):
        assert f"server 10.77.0.11:{port} " in upstream.group(0)
    assert "set $rocketchat_upstream https://rocketchat_servers;" in conf
    for line in UPSTREAM_TLS:
        assert line in location(conf, REALTIME)
        assert line in location(conf, "/ ")


def test_the_switch_off_gives_the_old_plain_upstream(tmp_path: Path) -> None:
    rendered = render(tmp_path / "values", multi=True, extra=OFF)
    chat, edge = rendered["chat"], rendered["edge"]
    assert chat["rocketchat_tls"] in (False, "False")
    assert edge["tls_proxy_rocketchat_tls"] in (False, "False")
    assert edge["tls_proxy_rocketchat_servers"] == ["10.77.0.11:3000", "10.77.0.11:3001", "10.77.0.11:3002"]
    assert set(rules(chat)) == {3000, 3001, 3002, 9458, 9459, 9460}
    assert rules(chat)[3000] == [ADDRESSES["edge"]]  # the API to the proxy alone
    assert rules(chat)[9458] == [ADDRESSES["mon"]]
    # Prometheus then reads Rocket.Chat's own exporter, published in plain HTTP for the monitoring host.
    assert chat["rocketchat_metrics_publish_address"] == ADDRESSES["chat"]
    assert edge["monitoring_rocketchat_tls"] in (False, "False")
    assert "scheme" not in rocketchat_job(rendered["mon"])
    assert "nginx" not in chat["container_images_host_project_images"]
    (tmp_path / "conf").mkdir()
    conf = rendered_nginx_conf(tmp_path / "conf", multi=True, extra=OFF)
    assert "set $rocketchat_upstream http://rocketchat_servers;" in conf
    assert re.search(r"upstream rocketchat_servers \{[^}]*ip_hash;[^}]*10\.77\.0\.11:3002", conf)
    assert "proxy_ssl_name rocketchat-tls;" not in conf
    assert "proxy_ssl_verify" not in location(conf, REALTIME)


SEVERAL_BESIDE_THE_PROXY = {"rocketchat_instance_count": 3}
FIXED = {
    "photomatrix_container_addresses": {
        "proxy": "10.250.0.10",
        "bot": "10.250.0.20",
        "rocketchat_tls": "10.250.0.40",
    }
}


def test_several_instances_beside_the_proxy_are_named_by_fixed_sidecar_addresses(tmp_path: Path) -> None:
    """An nginx upstream block resolves its names once, at start: beside the proxy, several instances'
    sidecars get fixed addresses (photomatrix_container_addresses.rocketchat_tls, +i for the next) and the
    upstream names them by those, so a sidecar re-created by an upgrade is not lost to the proxy."""
    solo = render(tmp_path / "values", multi=False, extra=SEVERAL_BESIDE_THE_PROXY | FIXED)["solo"]
    assert solo["rocketchat_tls_ipv4_address"] == "10.250.0.40"
    assert solo["tls_proxy_rocketchat_servers"] == [
        "10.250.0.40:3443",
        "10.250.0.41:3443",
        "10.250.0.42:3443",
    ]
    (tmp_path / "conf").mkdir()
    conf = rendered_nginx_conf(tmp_path / "conf", multi=False, extra=SEVERAL_BESIDE_THE_PROXY | FIXED)
    upstream = re.search(r"upstream rocketchat_servers \{[^}]*\}", conf)
    assert upstream, conf
    for address in ("10.250.0.40", "10.250.0.41", "10.250.0.42"):
        assert f"server {address}:3443 " in upstream.group(0)
    assert "rocketchat-tls-2" not in upstream.group(0)
    # The proxy still verifies them for the sidecars' name, whatever address it dials.
    assert "proxy_ssl_name rocketchat-tls;" in location(conf, "/ ")


def test_several_instances_beside_the_proxy_without_fixed_addresses_are_refused(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match=r"set\s+photomatrix_container_addresses\.rocketchat_tls"):
        rendered_nginx_conf(tmp_path, multi=False, extra=SEVERAL_BESIDE_THE_PROXY)


def test_one_instance_beside_the_proxy_keeps_its_alias_looked_up_per_request(tmp_path: Path) -> None:
    solo = render(tmp_path, multi=False)["solo"]
    assert solo["rocketchat_tls_ipv4_address"] == ""
    assert solo["tls_proxy_rocketchat_servers"] == ["rocketchat-tls:3443"]
