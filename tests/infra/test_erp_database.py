"""ERP hosts behind the proxy with one shared PostgreSQL on the `db` host (docs/topology.md): every ERP
host names the same database without a password, reaches it over TLS verified against the internal CA,
sees the same data, and serves requests that come in through the public name. Read-only (`make verify
INVENTORY=...`); skipped for an inventory without a `db` group or with one ERP host."""

from __future__ import annotations

import json
import re
import shlex
import socket
import ssl
import tempfile
from pathlib import Path

import pytest
from plugins.infra import ROOT

pytestmark = pytest.mark.infra

ERP_CONTAINER = "photomatrix-erp-api"
STYLESHEET = "/activate/style.css"
# keys list: name, scopes, networks, created (fixed columns; "last used" moves while the bot runs).
KEY_COLUMNS = 24 + 1 + 12 + 1 + 24 + 1 + 20


@pytest.fixture(scope="module")
def erp_hosts(fleet) -> list[str]:
    if not fleet.group("db"):
        pytest.skip("no db group: each ERP host keeps its own SQLite")
    hosts = fleet.group("erp")
    if len(hosts) < 2:
        pytest.skip("fewer than two ERP hosts")
    return hosts


def _env(host) -> dict[str, str]:
    info = json.loads(host.check_output(f"docker inspect {ERP_CONTAINER}"))[0]
    return dict(item.split("=", 1) for item in info["Config"]["Env"] or [])


def test_every_erp_host_names_the_db_host_without_a_password(fleet, erp_hosts) -> None:
    db = fleet.group("db")[0]
    port = fleet.var(db, "postgresql_port", 5432)
    expected = f"postgresql+psycopg://erp@{fleet.address(db)}:{port}/erp"
    for name in erp_hosts:
        host = fleet.hosts[name]
        env = _env(host)
        assert env.get("ERP_DATABASE_URL") == expected, f"{name}: ERP_DATABASE_URL is not {expected}"
        # The password is in libpq's password file, private to the ERP's user.
        assert env.get("PGPASSFILE") == "/run/secrets/erp/pgpass", name
        root = fleet.var(name, "photomatrix_root", "/srv/photomatrix")
        pgpass = host.file(f"{root}/secrets/erp/pgpass")
        assert pgpass.exists, f"{name}: no {pgpass.path}"
        assert pgpass.mode & 0o077 == 0, f"{name}: {pgpass.path} is {oct(pgpass.mode)}"


def test_the_erp_hosts_see_the_same_data(erp_hosts, fleet) -> None:
    """The API keys (the bot's among them) as each host reads them from its database."""
    seen = {}
    for name in erp_hosts:
        out = fleet.hosts[name].check_output(f"docker exec {ERP_CONTAINER} python -m erp keys list")
        seen[name] = sorted(line[:KEY_COLUMNS].rstrip() for line in out.splitlines()[1:] if line.strip())
    first = erp_hosts[0]
    assert any(row.split()[0] == "bot" for row in seen[first]), f"{first}: no bot key in {seen[first]}"
    for name in erp_hosts[1:]:
        assert seen[name] == seen[first], f"{name} and {first} read different keys"


def _served_stylesheets(fleet, proxy: str, erp: str) -> float:
    """erp_http_requests_total of the stylesheet route on ERP host ERP, read from the proxy host (a peer)."""
    # HTTPS from the internal CA (issue 10): the proxy host keeps that CA (<root>/pki/ca.crt); the
    # certificate names the ERP host's address.
    url = f"https://{fleet.address(erp)}:{fleet.var(erp, 'erp_api_port', 8000)}/metrics"
    ca = f"{fleet.var(proxy, 'photomatrix_root', '/srv/photomatrix')}/pki/ca.crt"
    code = (
        "import ssl, urllib.request; "
        f"c = ssl.create_default_context(cafile={ca!r}); "
        f"print(urllib.request.urlopen({url!r}, timeout=20, context=c).read().decode())"
    )
    text = fleet.hosts[proxy].check_output(f"python3 -c {json.dumps(code)}")
    pattern = re.compile(r"^erp_http_requests_total\{([^}]*)\}\s+([0-9.e+]+)$", re.MULTILINE)
    return sum(float(v) for labels, v in pattern.findall(text) if f'route="{STYLESHEET}"' in labels)


def test_each_erp_host_serves_requests_through_the_public_name(fleet, erp_hosts) -> None:
    proxy = fleet.group("proxy")[0]
    domain = fleet.var(proxy, "photomatrix_domain", "localhost")
    ca_path = str(fleet.var(proxy, "photomatrix_ca_file", "")).replace(
        "{{ inventory_dir }}", str(fleet.inventory)
    )
    ca_file = Path(ca_path) if Path(ca_path).is_absolute() else ROOT / ca_path
    before = {name: _served_stylesheets(fleet, proxy, name) for name in erp_hosts}
    with tempfile.NamedTemporaryFile("w", suffix=".crt") as ca:
        ca.write(ca_file.read_text())
        ca.flush()
        context = ssl.create_default_context(cafile=ca.name)
    # The proxy balances over the ERP hosts: a few requests reach each of them.
    for _ in range(4 * len(erp_hosts)):
        with (
            socket.create_connection((fleet.address(proxy), 443), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=domain) as tls,
        ):
            tls.sendall(f"GET {STYLESHEET} HTTP/1.1\r\nHost: {domain}\r\nConnection: close\r\n\r\n".encode())
            head = tls.recv(4096)
        assert head.startswith(b"HTTP/1.1 200"), head[:200]
    after = {name: _served_stylesheets(fleet, proxy, name) for name in erp_hosts}
    idle = [name for name in erp_hosts if after[name] <= before[name]]
    assert not idle, f"no request through https://{domain} reached {idle} ({before} -> {after})"


# Run in the ERP's container with its own environment (URL, PGPASSFILE, PGSSLMODE, PGSSLROOTCERT): one
# SELECT of this connection's TLS state, then a plain connection that the db host must refuse.
TLS_PROBE = """
import json, os, psycopg
url = os.environ["ERP_DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://", 1)
with psycopg.connect(url, connect_timeout=10) as conn:
    ssl, version = conn.execute(
        "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
try:
    psycopg.connect(url, sslmode="disable", connect_timeout=10).close()
    plain = "accepted"
except psycopg.OperationalError as exc:
    plain = str(exc)
print(json.dumps({"ssl": ssl, "version": version, "plain": plain}))
"""


def test_the_erp_hosts_reach_the_database_over_verified_tls(fleet, erp_hosts) -> None:
    """With the internal CA (a proxy host and a controller-side store, in every certificate mode), each ERP
    host's connection to the db host is TLS checked against it (verify-full), and a plain connection is
    refused (hostssl only)."""
    proxy = fleet.group("proxy")[0]
    if not fleet.var(proxy, "photomatrix_bootstrap_secrets_dir", ""):
        pytest.skip("no internal CA: the database hop is not TLS from it")
    for name in erp_hosts:
        host = fleet.hosts[name]
        env = _env(host)
        assert env.get("PGSSLMODE") == "verify-full", f"{name}: PGSSLMODE is {env.get('PGSSLMODE')}"
        assert env.get("PGSSLROOTCERT") == "/run/secrets/erp/postgresql-ca.crt", name
        out = host.check_output(f"docker exec {ERP_CONTAINER} python -c {shlex.quote(TLS_PROBE)}")
        probe = json.loads(out.strip().splitlines()[-1])
        assert probe["ssl"] is True, f"{name}: {probe}"
        assert probe["version"] in ("TLSv1.2", "TLSv1.3"), f"{name}: {probe}"
        assert "no pg_hba.conf entry" in probe["plain"], f"{name}: a plain connection was {probe['plain']}"
