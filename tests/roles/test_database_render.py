"""The ERP's database across hosts (docs/topology.md, section 4), rendered without deploying: with a
`db` group every ERP host names the db host's PostgreSQL (its host address, or the alias on the same
host) without a password, all of them get the one password the postgresql role sets up, and only the
ERP hosts are admitted (pg_hba.conf and the firewall); without one, SQLite and no password file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from roles.test_topology_render import ansible_playbook

pytestmark = pytest.mark.integration

RENDERED = [
    "erp_api_database_url",
    "erp_api_database_password",
    "erp_api_shared_secret_key",
    "postgresql_erp_password",
    "postgresql_client_networks",
    "postgresql_publish_address",
    "photomatrix_firewall_rules",
    "postgresql_tls",
    "postgresql_tls_ca_host",
    "postgresql_tls_names",
    "erp_api_database_tls",
]
LAB = {
    "proxy": {"edge": "10.77.0.10"},
    "erp": {"erp1": "10.77.0.31", "erp2": "10.77.0.32"},
    "db": {"db1": "10.77.0.41"},
    "bots": {"bot": "10.77.0.51"},
}


def render(tmp: Path, groups: dict[str, dict[str, str | None]], **extra: str) -> dict[str, dict]:
    common = {
        **extra,
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "photomatrix_bootstrap_secrets_dir": str(tmp / "store"),
        "photomatrix_internal_subnet": "10.250.0.0/24",
    }
    children = {
        group: {"hosts": {h: ({"ansible_host": a} if a else {}) for h, a in hosts.items()}}
        for group, hosts in groups.items()
    }
    inventory = tmp / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": children, "vars": common}}), encoding="utf-8")
    out = tmp / "rendered"
    out.mkdir()
    run = ansible_playbook(
        "-i",
        str(inventory),
        "tests/roles/render_database.yml",
        "--tags",
        "render",
        "-e",
        json.dumps({"render_dir": str(out), "render_vars": RENDERED}),
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    return {path.stem: json.loads(path.read_text()) for path in out.glob("*.json")}


def test_erp_hosts_share_the_db_hosts_postgresql(tmp_path: Path) -> None:
    lab = render(tmp_path, LAB)
    password = lab["db1"]["postgresql_erp_password"]
    assert len(password) == 40
    assert password.isalnum()
    for host in ("erp1", "erp2"):
        assert lab[host]["erp_api_database_url"] == "postgresql+psycopg://erp@10.77.0.41:5432/erp"
        assert lab[host]["erp_api_database_password"] == password  # one password, from the store
        assert lab[host]["erp_api_shared_secret_key"] is True
    db = lab["db1"]
    assert db["postgresql_client_networks"] == ["10.77.0.31/32", "10.77.0.32/32"]
    assert db["postgresql_publish_address"] == "10.77.0.41"
    assert {"address": "10.77.0.41", "port": 5432, "peers": ["10.77.0.31", "10.77.0.32"]} in db[
        "photomatrix_firewall_rules"
    ]
    # The store file is the controller-side secret: generated once, private.
    stored = tmp_path / "store" / "postgresql" / "erp_password"
    assert stored.read_text().strip() == password
    assert stored.stat().st_mode & 0o077 == 0


def test_erp_on_the_db_host_uses_the_alias_and_publishes_nothing(tmp_path: Path) -> None:
    one = render(tmp_path, {"proxy": {"solo": None}, "erp": {"solo": None}, "db": {"solo": None}})
    solo = one["solo"]
    assert solo["erp_api_database_url"] == "postgresql+psycopg://erp@postgresql:5432/erp"
    assert solo["postgresql_client_networks"] == ["10.250.0.0/24"]
    assert solo["postgresql_publish_address"] == ""
    assert solo["erp_api_shared_secret_key"] is False


def test_without_a_db_group_each_erp_host_keeps_sqlite(tmp_path: Path) -> None:
    groups = {k: v for k, v in LAB.items() if k != "db"}
    lab = render(tmp_path, groups)
    for host in ("erp1", "erp2"):
        assert lab[host]["erp_api_database_url"] == "sqlite:////var/lib/erp/erp.sqlite3"
        assert lab[host]["erp_api_database_password"] == ""


@pytest.mark.parametrize("cert_mode", ["selfsigned", "acme", "provided"])
def test_the_database_hop_is_tls_from_the_internal_ca(tmp_path: Path, cert_mode: str) -> None:
    """Issue 10: the internal CA exists whatever the proxy's public certificate is, so the hop is TLS with
    an ACME or a provided certificate too."""
    lab = render(tmp_path, LAB, tls_proxy_cert_mode=cert_mode)
    db = lab["db1"]
    assert db["postgresql_tls"] is True
    assert db["postgresql_tls_ca_host"] == "edge"  # where tls_proxy keeps the internal CA
    # verify-full: the name the ERP hosts connect by (the URL's host) is in the certificate.
    assert db["postgresql_tls_names"] == ["10.77.0.41", "db1", "postgresql"]
    for host in ("erp1", "erp2"):
        assert lab[host]["erp_api_database_tls"] in (True, "True")


def test_the_alias_is_in_the_certificate_when_the_erp_runs_on_the_db_host(tmp_path: Path) -> None:
    solo = render(tmp_path, {"proxy": {"solo": None}, "erp": {"solo": None}, "db": {"solo": None}})["solo"]
    assert solo["postgresql_tls"] is True
    assert "postgresql" in solo["postgresql_tls_names"]


@pytest.mark.parametrize(
    ("groups", "extra"),
    [
        pytest.param({k: v for k, v in LAB.items() if k != "db"}, {}, id="no-db-group"),
        pytest.param({k: v for k, v in LAB.items() if k != "proxy"}, {}, id="no-proxy-host-no-internal-ca"),
    ],
)
def test_no_tls_without_a_db_host_or_an_internal_ca(tmp_path: Path, groups: dict, extra: dict) -> None:
    for values in render(tmp_path, groups, **extra).values():
        assert values["erp_api_database_tls"] in (False, "False")


def test_the_production_example_shares_its_db_hosts_postgresql(tmp_path: Path) -> None:
    """inventory/production as shipped: both ERP hosts on db1's PostgreSQL, one generated password (no
    database secret to fill in by hand), db1 open to the ERP hosts only."""
    out = tmp_path / "rendered"
    out.mkdir()
    local = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "photomatrix_bootstrap_secrets_dir": str(tmp_path / "store"),
        "render_dir": str(out),
        "render_vars": RENDERED,
    }
    run = ansible_playbook(
        "-i", "inventory/production", "tests/roles/render_database.yml", "--tags", "render",
        "--limit", "erp,db", "-e", json.dumps(local),
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    hosts = {path.stem: json.loads(path.read_text()) for path in out.glob("*.json")}
    password = hosts["db1.photomatrix.example"]["postgresql_erp_password"]
    assert len(password) == 40
    for erp in ("erp1.photomatrix.example", "erp2.photomatrix.example"):
        assert hosts[erp]["erp_api_database_url"] == "postgresql+psycopg://erp@10.0.10.51:5432/erp"
        assert hosts[erp]["erp_api_database_password"] == password
    assert hosts["db1.photomatrix.example"]["postgresql_client_networks"] == [
        "10.0.10.41/32",
        "10.0.10.42/32",
    ]
