"""Every host of the inventory under verification (`make verify INVENTORY=...`), through testinfra's
Ansible backend, read-only: engine, containers, published ports, secret files, MongoDB members, and the
stack end to end through its public name. Safe against production: nothing here writes or restarts.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shlex
import socket
import ssl
import subprocess  # nosec B404
import sys
import tempfile
import time
from pathlib import Path

import pytest
from plugins.infra import ROOT, Fleet, fleet_host_names, health_check_argv, health_check_timeout

from ops.ansible_env import json_env

pytestmark = pytest.mark.infra

# The containers each inventory group runs (the roles' container names).
GROUP_CONTAINERS = {
    "proxy": {"photomatrix-proxy", "photomatrix-proxy-net"},
    "rocketchat": {"photomatrix-rocketchat"},
    "erp": {"photomatrix-erp-api"},
    "db": {"photomatrix-postgresql"},
    "bots": {"photomatrix-chatbot"},
    "monitoring": {"photomatrix-prometheus", "photomatrix-alertmanager", "photomatrix-blackbox-exporter"},
    "docker_hosts": {"photomatrix-node-exporter"},
}
# The groups whose hosts keep secret files under <photomatrix_root>/secrets or private keys under pki.
SECRET_GROUPS = {"proxy", "rocketchat", "mongodb", "erp", "bots", "db"}
SECRET_NAMES = {
    "ADMIN_PASS",
    "ERP_SECRET_KEY",
    "ERP_ALERT_WEBHOOK_URL",
    "BOT_ERP_API_KEY",
    "BOT_ROCKETCHAT_TOKEN",
}
# How long a container whose health check is between verdicts may take to answer healthy: one that
# Docker has not judged yet runs its own check at once (checked_now); an "unhealthy" one after a check
# that timed out on a busy host needs Docker's next check to pass (one success makes it healthy again).
HEALTH_GRACE = 60
# user:password@ in a URL (MONGO_URL and friends).
CREDENTIAL_IN_URL = re.compile(r"://[^/@:\s]+:[^/@\s]+@")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "host_name" in metafunc.fixturenames:
        metafunc.parametrize("host_name", fleet_host_names())


def containers(host) -> list[dict]:
    """`docker inspect` of every photomatrix-* container on HOST (one remote call)."""
    ids = host.check_output("docker ps --all --quiet --filter name=^photomatrix-").split()
    if not ids:
        return []
    return json.loads(host.check_output("docker inspect " + " ".join(ids)))


def expected(fleet: Fleet, name: str) -> set[str]:
    found = set().union(*(GROUP_CONTAINERS.get(g, set()) for g in fleet.groups_of(name)))
    if name in fleet.group("rocketchat") and _rocketchat_tls_expected(fleet):
        found.add("photomatrix-rocketchat-tls")  # its TLS sidecar (roles/rocketchat, tasks/tls.yml)
    return found


def _rocketchat_tls_expected(fleet) -> bool:
    """photomatrix_rocketchat_tls's condition (playbooks/group_vars/all/internal_tls.yml: the internal CA,
    a proxy host and a controller-side store), from the inventory."""
    proxies = fleet.group("proxy")
    if not proxies or not fleet.var(proxies[0], "photomatrix_bootstrap_secrets_dir", ""):
        return False
    return all(
        str(fleet.var(proxies[0], switch, True)).lower() not in ("false", "no", "0")
        for switch in ("photomatrix_internal_ca", "photomatrix_rocketchat_tls")
    )


def test_the_engine_answers(fleet, fleet_host, host_name) -> None:
    """An engine the roles did not install is left as it is (docker_engine), so only that it answers."""
    name, host = fleet_host
    if name not in fleet.group("docker_hosts"):
        pytest.skip(f"{name} is not a Docker host")
    info = json.loads(host.check_output("docker info --format '{{json .}}'"))
    assert info["ServerVersion"], name
    assert host.socket("unix:///var/run/docker.sock").is_listening, name


def health(info: dict) -> str:
    return info["State"].get("Health", {}).get("Status", "healthy")


def checked_now(host, info: dict) -> dict:
    """INFO, "healthy" when Docker has not judged the container yet ("starting": its first check is one
    interval after a start) and its own check, run now on HOST as Docker runs it (`docker exec`, which
    changes nothing), exits 0: the verdict wait_healthy gave the deploy's wait."""
    argv = health_check_argv(info)
    if health(info) != "starting" or not argv or not info["State"].get("Running"):
        return info
    name = info["Name"].lstrip("/")
    timeout = int(health_check_timeout(info)) + 5
    if host.run(f"timeout {timeout} docker exec {shlex.join([name, *argv])}").rc != 0:
        return info
    return {**info, "State": {**info["State"], "Health": {**info["State"]["Health"], "Status": "healthy"}}}


def settled(host, found: dict[str, dict]) -> dict[str, dict]:
    """FOUND again after a container's health check is between verdicts ("starting", or "unhealthy" after
    a check that timed out on a busy host): a container not judged yet runs its own check now
    (checked_now); the others are re-read (read-only) until each is healthy or HEALTH_GRACE seconds
    passed, so a check that answers on its next interval is not reported as a broken stack."""
    deadline = time.monotonic() + HEALTH_GRACE
    while True:
        found = {name: checked_now(host, info) for name, info in found.items()}
        if time.monotonic() >= deadline or all(health(i) == "healthy" for i in found.values()):
            return found
        time.sleep(5)
        found = {c["Name"].lstrip("/"): c for c in containers(host)}


def last_check(info: dict) -> str:
    """The container's last health check, short: exit code and the end of its output."""
    log = info["State"].get("Health", {}).get("Log") or [{}]
    return f"exit {log[-1].get('ExitCode')}: {(log[-1].get('Output') or '').strip()[-300:]}"


def test_the_host_runs_its_containers_healthy_and_hardened(fleet, fleet_host, host_name) -> None:
    name, host = fleet_host
    found = settled(host, {c["Name"].lstrip("/"): c for c in containers(host)})
    missing = expected(fleet, name) - set(found)
    assert not missing, f"{name}: {sorted(missing)} not deployed"
    for cname, info in found.items():
        state = info["State"]
        assert state["Running"], f"{name}/{cname} is not running"
        assert health(info) == "healthy", f"{name}/{cname} is {health(info)}; last check {last_check(info)}"
        config = info["HostConfig"]
        assert config["RestartPolicy"]["Name"] == "unless-stopped", f"{name}/{cname}"
        assert config["Memory"] > 0, f"{name}/{cname} has no memory limit"
        assert config["Privileged"] is False, f"{name}/{cname} is privileged"
        assert config["LogConfig"]["Type"] == "json-file", f"{name}/{cname}"
        assert config["LogConfig"]["Config"].get("max-size"), f"{name}/{cname} logs are not rotated"


def test_no_secret_is_visible_in_docker_inspect(fleet, fleet_host, host_name) -> None:
    name, host = fleet_host
    for info in containers(host):
        cname = info["Name"].lstrip("/")
        env = info["Config"]["Env"] or []
        assert not {item.split("=", 1)[0] for item in env} & SECRET_NAMES, f"{name}/{cname}"
        leaks = [item.split("=", 1)[0] for item in env if CREDENTIAL_IN_URL.search(item)]
        assert not leaks, f"{name}/{cname}: a password in {leaks}"
        assert not CREDENTIAL_IN_URL.search(" ".join(info["Config"]["Cmd"] or [])), f"{name}/{cname} command"


def test_each_erp_replica_reaches_its_alerts_webhook(fleet, fleet_host, host_name) -> None:
    """The ERP posts its own alerts (bursts of auth failures, rate limiting, registrations) to Rocket.Chat's
    incoming webhook: on Rocket.Chat's host by its internal name, from any other host through the public name
    and the proxy (roles/erp_api, erp_api_alert_webhook_base_url). Read-only: `python -m erp alerts-check`
    in each replica GETs /api/info at the webhook's origin with the delivery's own name resolution,
    certificate check and timeout; nothing is posted."""
    name, host = fleet_host
    if name not in fleet.group("erp"):
        pytest.skip(f"{name} runs no ERP")
    replicas = sorted(
        info["Name"].lstrip("/")
        for info in containers(host)
        if re.fullmatch(r"photomatrix-erp-api(-[0-9]+)?", info["Name"].lstrip("/"))
    )
    assert replicas, f"{name}: no ERP replica"
    for cname in replicas:
        result = host.run(f"docker exec {cname} python -m erp alerts-check")
        assert result.rc == 0, f"{name}/{cname}: {(result.stderr or result.stdout).strip()}"
        assert result.stdout.startswith("alerts webhook: "), f"{name}/{cname}: {result.stdout!r}"


# Prometheus's active targets, read inside its container on the monitoring host (nothing is published).
PROMETHEUS_TARGETS = (
    'docker exec photomatrix-prometheus python3 -c "import urllib.request; print(urllib.request.urlopen('
    "'http://127.0.0.1:9090/api/v1/targets?state=active', timeout=10).read().decode())\""
)
# Every job the monitoring role writes (roles/monitoring/templates/prometheus.yml.j2).
PROMETHEUS_JOBS = {"prometheus", "erp-api", "chatbot", "node", "blackbox", "rocketchat"}


def prometheus_until(host, command: str, done, timeout: float) -> dict:
    """The `data` of Prometheus's answer to COMMAND (run on HOST), asked every 5 s until DONE(data) holds
    or TIMEOUT seconds have passed; the last answer either way."""
    deadline = time.monotonic() + timeout
    while True:
        data = json.loads(host.check_output(command))["data"]
        if done(data) or time.monotonic() > deadline:
            return data
        time.sleep(5)


def down_targets(targets: list[dict]) -> list[str]:
    return [
        f"{t['labels']['job']} {t['labels'].get('instance', '')}: {t['health']} {t.get('lastError', '')}"
        for t in targets if t["health"] != "up"
    ]  # fmt: skip


def probe_values(data: dict) -> dict[str, str]:
    """probe -> probe_success value in a query answer's data."""
    return {r["metric"].get("probe", "?"): r["value"][1] for r in data["result"]}


def probes_pass(data: dict) -> bool:
    """Prometheus has probes, and every one's last probe_success is 1 (its values, not its names: the
    check compared the names with {"1"} and so always waited its whole two minutes)."""
    values = probe_values(data)
    return bool(values) and set(values.values()) == {"1"}


def test_prometheus_scrapes_every_target_of_every_host_and_each_is_up(fleet, fleet_host, host_name) -> None:
    """From the monitoring host, every host's exporters and services answer Prometheus: across hosts that
    is each published port, its firewall rule and its certificate from the internal CA (the ERP, the bot,
    the node exporters, Rocket.Chat through its TLS sidecars). A fresh deployment's targets may not have
    been scraped yet: waited for up to two scrape intervals."""
    name, host = fleet_host
    if name not in fleet.group("monitoring"):
        pytest.skip(f"{name} runs no Prometheus")
    targets = prometheus_until(
        host, PROMETHEUS_TARGETS, lambda data: not down_targets(data["activeTargets"]), 90
    )["activeTargets"]
    down = down_targets(targets)
    assert not down, f"{name}: targets not up:\n" + "\n".join(down)
    assert {t["labels"]["job"] for t in targets} == PROMETHEUS_JOBS
    scraped_hosts = {t["labels"]["host"] for t in targets if t["labels"]["job"] == "node"}
    assert scraped_hosts == {fleet.deployed_name(h) for h in fleet.group("docker_hosts")}, scraped_hosts


PROMETHEUS_PROBES = (
    'docker exec photomatrix-prometheus python3 -c "import urllib.request; print(urllib.request.urlopen('
    "'http://127.0.0.1:9090/api/v1/query?query=probe_success', timeout=10).read().decode())\""
)


def test_the_probes_through_the_public_name_pass(fleet, fleet_host, host_name) -> None:
    """The blackbox exporter's HTTPS probes through the proxy (`public`: Rocket.Chat, `erp`: the ERP) pass,
    TLS verified for photomatrix_domain against the CA the monitoring role gave it
    (monitoring_blackbox_ca_file: the ACME CA's roots in ACME mode, as inventory/staging sets it; the
    internal CA otherwise). A probe that failed during a deployment, a rotation or a rollback passes again
    within a few intervals: waited for up to two minutes."""
    name, host = fleet_host
    if name not in fleet.group("monitoring"):
        pytest.skip(f"{name} runs no Prometheus")
    result = prometheus_until(host, PROMETHEUS_PROBES, probes_pass, 120)
    probes = probe_values(result)
    assert "public" in probes, f"{name}: no probe of the public name in Prometheus: {probes}"
    failed = sorted(probe for probe, value in probes.items() if value != "1")
    assert not failed, (
        f"{name}: probes failing through {fleet.var(name, 'photomatrix_domain', '?')}: {failed}"
    )


def test_only_the_proxy_listens_on_every_address(fleet, fleet_host, host_name) -> None:
    """The proxy's network holder publishes 80/443 to all; the rest only on the host's private address."""
    name, host = fleet_host
    address = fleet.address(name)
    for info in containers(host):
        cname = info["Name"].lstrip("/")
        bindings = [b for spec in (info["HostConfig"]["PortBindings"] or {}).values() for b in spec or []]
        ports = {(b["HostIp"] or "0.0.0.0", b["HostPort"]) for b in bindings}
        if cname == "photomatrix-proxy-net":
            assert {p for _ip, p in ports} >= {"80", "443"}, f"{name}: {ports}"
            continue
        wide = {p for p in ports if p[0] in ("0.0.0.0", "::", "")}
        assert not wide, f"{name}/{cname} publishes {wide} on every address"
        assert all(ip in (address, "127.0.0.1") for ip, _p in ports), f"{name}/{cname}: {ports}"


def test_secret_files_and_private_keys_are_private(fleet, fleet_host, host_name) -> None:
    name, host = fleet_host
    root = fleet.var(name, "photomatrix_root", "/srv/photomatrix")
    files = host.run(f"find {root}/secrets {root}/pki -type f -name '*' 2>/dev/null").stdout.split()
    # Certificates are public (the CA is exported next to the bootstrap secrets on purpose).
    private = [f for f in files if ("/secrets/" in f and not f.endswith(".crt")) or f.endswith(".key")]
    if not private and not fleet.groups_of(name) & SECRET_GROUPS:
        pytest.skip(f"{name} runs no service that keeps secrets under {root}/secrets")
    assert private, f"{name}: no secret files under {root}"
    for path in private:
        mode = host.file(path).mode
        assert mode & 0o077 == 0, f"{name}:{path} is {oct(mode)}"


def test_mongodb_members_share_one_private_keyfile(fleet) -> None:
    members = fleet.group("mongodb")
    if not members:
        pytest.skip("no mongodb group")
    digests = {}
    for name in members:
        host = fleet.hosts[name]
        root = fleet.var(name, "photomatrix_root", "/srv/photomatrix")
        keyfile = host.file(f"{root}/secrets/mongodb/keyfile")
        if not keyfile.exists:
            pytest.skip(f"{name}: no MongoDB keyfile (MongoDB not deployed by this inventory)")
        assert keyfile.mode == 0o400, f"{name}: {oct(keyfile.mode)}"
        assert keyfile.uid == 999, f"{name}: owner {keyfile.uid}"
        digests[name] = keyfile.sha256sum
    assert len(set(digests.values())) == 1, f"the members' keyfiles differ: {digests}"


def _mongodb_tls_expected(fleet) -> bool:
    """photomatrix_mongodb_tls's condition (playbooks/group_vars/all/database.yml), from the inventory."""
    proxies = fleet.group("proxy")
    if not proxies or not fleet.group("mongodb"):
        return False
    return bool(fleet.var(proxies[0], "photomatrix_bootstrap_secrets_dir", "")) and str(
        fleet.var(proxies[0], "photomatrix_mongodb_tls", True)
    ).lower() not in ("false", "no", "0")


def test_mongodb_members_hold_a_certificate_from_the_current_internal_ca(fleet) -> None:
    """Each member's TLS files (roles/mongodb/tasks/tls.yml): the PEM mongod reads (certificate and key,
    mongod's only), a certificate for the member's address, the alias and localhost, for server and client
    use (members connect to each other with it), chaining to the CA the proxy host keeps now (after make
    rotate WHAT=ca too), and that CA beside it. Read-only: openssl on each member."""
    members = fleet.group("mongodb")
    if not members or not _mongodb_tls_expected(fleet):
        pytest.skip("no MongoDB members with TLS from an internal CA in this inventory")
    proxy = fleet.group("proxy")[0]
    ca = fleet.hosts[proxy].file(f"{fleet.var(proxy, 'photomatrix_root', '/srv/photomatrix')}/pki/ca.crt")
    for name in members:
        host = fleet.hosts[name]
        tls = f"{fleet.var(name, 'photomatrix_root', '/srv/photomatrix')}/secrets/mongodb/tls"
        if not host.file(f"{fleet.var(name, 'photomatrix_root', '/srv/photomatrix')}/secrets/mongodb").exists:
            pytest.skip(f"{name}: MongoDB not deployed by this inventory")
        pem = host.file(f"{tls}/server.pem")
        assert pem.exists, f"{name}: no {tls}/server.pem"
        assert (pem.mode, pem.uid) == (0o600, 999), f"{name}: {oct(pem.mode)} owner {pem.uid}"
        assert host.file(f"{tls}/ca.crt").sha256sum == ca.sha256sum, f"{name}: its CA is not the current one"
        verified = host.run(f"openssl verify -purpose sslserver -CAfile {tls}/ca.crt {tls}/server.crt")
        assert verified.rc == 0, f"{name}: {verified.stdout} {verified.stderr}"
        as_client = host.run(f"openssl verify -purpose sslclient -CAfile {tls}/ca.crt {tls}/server.crt")
        assert as_client.rc == 0, f"{name}: not usable by a member as a client: {as_client.stderr}"
        text = host.check_output(f"openssl x509 -noout -ext subjectAltName -in {tls}/server.crt")
        # Its address and inventory name (roles/mongodb mongodb_tls_names); a host deployed under another
        # name (lab/single: inventory/local's localhost, which has no address of its own) has that name.
        deployed = fleet.deployed_name(name)
        own = f"IP Address:{fleet.address(name)}" if deployed == name else f"DNS:{deployed}"
        for wanted in (own, "DNS:mongodb", "DNS:localhost"):
            assert wanted in text, f"{name}: {wanted} not on its certificate: {text}"
        # The key in the PEM is the certificate's (mongod would refuse to start otherwise).
        keys = host.run(
            f"openssl pkey -in {tls}/server.pem -pubout | sha256sum; "
            f"openssl x509 -in {tls}/server.pem -noout -pubkey | sha256sum"
        ).stdout.split("\n")
        assert keys[0], f"{name}: no key in {tls}/server.pem"
        assert keys[0] == keys[1], f"{name}: the PEM's key is not its certificate's"


def test_rocketchat_gets_a_mongo_url_naming_every_member(fleet) -> None:
    """MONGO_URL (a private file on each Rocket.Chat host) names every member and the replica set."""
    members = fleet.group("mongodb")
    if len(members) < 2:
        pytest.skip("fewer than two MongoDB members")
    port = fleet.var(members[0], "mongodb_port", 27017)
    for name in fleet.group("rocketchat"):
        host = fleet.hosts[name]
        root = fleet.var(name, "photomatrix_root", "/srv/photomatrix")
        path = f"{root}/secrets/rocketchat/mongo_url"
        url = host.file(path)
        assert url.exists, f"{name}: no {path}"
        assert url.mode & 0o077 == 0, f"{name}:{path} is {oct(url.mode)}"
        # The value holds a password: only what is missing is reported, never the URL.
        value = url.content_string.strip()
        missing = [m for m in members if f"{fleet.address(m)}:{port}" not in value]
        assert not missing, f"{name}: MONGO_URL does not name {missing}"
        names_replica_set = "replicaSet=" in value
        assert names_replica_set, f"{name}: MONGO_URL names no replica set"
        if _mongodb_tls_expected(fleet):
            over_tls = "tls=true" in value.split("?", 1)[-1].split("&")
            assert over_tls, f"{name}: MONGO_URL does not ask for TLS (tls=true)"


def test_the_backup_dumps_and_restores_mongodb_through_the_replica_set(fleet) -> None:
    """photomatrix-backup's configuration on each member names the set and every member: the dump reads a
    secondary, and a restore (make rollback runs one on the first member, which need not be the primary
    after make upgrade's rs.stepDown()) writes to the primary, wherever it is now."""
    members = fleet.group("mongodb")
    if len(members) < 2:
        pytest.skip("fewer than two MongoDB members")
    port = fleet.var(members[0], "mongodb_port", 27017)
    expected = [f"{fleet.address(m)}:{port}" for m in members]
    for name in members:
        config = fleet.hosts[name].file("/etc/photomatrix-backup/config.json")
        assert config.exists, f"{name}: photomatrix-backup is not configured"
        assert config.mode & 0o077 == 0, f"{name}: its configuration is {oct(config.mode)}"
        settings = json.loads(config.content_string)
        assert settings["mongodb_replica_set"] == fleet.var(name, "mongodb_replica_set", "rs0"), name
        assert settings["mongodb_members"] == expected, name


def test_the_public_name_serves_rocketchat_over_verified_tls(fleet) -> None:
    """End to end through the public name, resolved to the proxy host (no DNS change needed)."""
    proxies = fleet.group("proxy")
    if not proxies:
        pytest.skip("no proxy group")
    name = proxies[0]
    domain = fleet.var(name, "photomatrix_domain", "localhost")
    ca_path = fleet.var(name, "photomatrix_ca_file", "/etc/ssl/certs/ca-certificates.crt")
    # inventory/lab names its controller-side store relative to the inventory's directory.
    ca_path = ca_path.replace("{{ inventory_dir }}", str(fleet.inventory))
    # The CA clients use: on the proxy host, or the controller-side store's copy (docs/topology.md).
    on_proxy = fleet.hosts[name].file(ca_path)
    local = ca_path if Path(ca_path).is_absolute() else ROOT / ca_path
    ca_pem = on_proxy.content_string if on_proxy.exists else Path(local).read_text()
    with tempfile.NamedTemporaryFile("w", suffix=".crt") as ca:
        ca.write(ca_pem)
        ca.flush()
        context = ssl.create_default_context(cafile=ca.name)
    address = fleet.address(name)
    with (
        socket.create_connection((address, 443), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=domain) as tls,
    ):
        cert = tls.getpeercert()
        tls.sendall(f"GET /api/info HTTP/1.1\r\nHost: {domain}\r\nConnection: close\r\n\r\n".encode())
        response = b""
        while chunk := tls.recv(65536):
            response += chunk
    not_after = dt.datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notAfter"]), tz=dt.UTC)
    assert not_after - dt.datetime.now(dt.UTC) > dt.timedelta(days=14), (
        f"{domain}: certificate expires {not_after}"
    )
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    assert b"strict-transport-security" in head.lower()
    assert b'"success":true' in body.replace(b" ", b""), body[:300]
    # Plain HTTP only redirects to HTTPS.
    with socket.create_connection((address, 80), timeout=10) as plain:
        plain.sendall(f"GET /api/info HTTP/1.1\r\nHost: {domain}\r\nConnection: close\r\n\r\n".encode())
        first = plain.recv(4096)
    assert first.startswith(b"HTTP/1.1 301"), first[:200]
    assert f"location: https://{domain}/api/info".encode() in first.lower()


def test_an_acme_proxy_serves_legos_certificate_and_renews_it_on_its_own(fleet) -> None:
    """ACME mode (inventory/staging, production; release/lab with the lab's ACME CA): the proxy host serves
    the certificate lego got there (not the role's temporary one from the internal CA), and renews it
    without anyone: the renewal script, and its daily job (a systemd timer, else the cron entry with a
    cron daemon of the host's own running)."""
    proxies = [n for n in fleet.group("proxy") if fleet.var(n, "tls_proxy_cert_mode", "selfsigned") == "acme"]
    if not proxies:
        pytest.skip("no proxy host in ACME mode (tls_proxy_cert_mode)")
    for name in proxies:
        host = fleet.hosts[name]
        root = fleet.var(name, "photomatrix_root", "/srv/photomatrix")
        domain = fleet.var(name, "photomatrix_domain", "localhost")
        lego = host.file(f"{root}/pki/acme/certificates/{domain}.crt")
        assert lego.exists, f"{name}: lego holds no certificate for {domain}"
        served = host.file(f"{root}/pki/server/fullchain.pem")
        assert served.sha256sum == lego.sha256sum, f"{name}: nginx's fullchain.pem is not lego's certificate"
        assert host.file(f"{root}/pki/acme").mode & 0o077 == 0, f"{name}: lego's directory is not private"
        script = host.file("/usr/local/sbin/photomatrix-acme-renew")
        assert script.exists, f"{name}: no renewal script"
        assert script.user == "root", f"{name}: the renewal script is {script.user}'s"
        assert script.mode & 0o777 == 0o750, f"{name}: renewal script is {oct(script.mode)}"
        timer = host.file("/etc/systemd/system/photomatrix-acme-renew.timer")
        cron = host.file("/etc/cron.d/photomatrix-acme-renew")
        assert timer.exists or cron.exists, f"{name}: no renewal timer or cron entry"
        if timer.exists:
            enabled = host.run("systemctl is-enabled photomatrix-acme-renew.timer").stdout.strip()
            assert enabled == "enabled", f"{name}: the renewal timer is {enabled}"
        else:
            assert "/usr/local/sbin/photomatrix-acme-renew" in cron.content_string
            # The host's own cron (its PID 1's namespace), not one of its containers'.
            daemon = host.run("pgrep -x --ns 1 cron")
            assert daemon.rc == 0, f"{name}: the renewal is a cron entry, and no cron daemon runs"


@pytest.fixture(scope="module")
def firewall_rules(fleet) -> dict[str, list[dict]]:
    """photomatrix_firewall_rules of every host, derived by the playbooks' own variables (no connection):
    with the playbooks' directory, all of its group_vars apply as they do in a play (the rules depend on
    the hop switches of internal_tls.yml too, and an inventory's own settings keep their precedence)."""
    program = Path(sys.executable).with_name("ansible")
    result = subprocess.run(
        [str(program), "-i", str(fleet.inventory), "all", "-m", "ansible.builtin.debug", "-a",
         "var=photomatrix_firewall_rules", "--playbook-dir", "playbooks"],
        capture_output=True, text=True, timeout=300, check=True, cwd=ROOT,
        env=json_env("json"),
    )  # fmt: skip
    hosts = json.loads(result.stdout)["plays"][0]["tasks"][0]["hosts"]
    return {name: value["photomatrix_firewall_rules"] for name, value in hosts.items()}


def published_ports(host) -> set[int]:
    """The host ports this host's containers publish."""
    return {
        int(b["HostPort"])
        for info in containers(host)
        for spec in (info["HostConfig"]["PortBindings"] or {}).values()
        for b in spec or []
    }


def connects_from(host, address: str, port: int) -> bool:
    """Whether a TCP connection from HOST to address:port is accepted (5 s)."""
    probe = "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 5).close()"
    return host.run(f"python3 -c '{probe}' {address} {port}").rc == 0


def test_the_host_firewall_holds_exactly_its_rules(fleet, firewall_rules, fleet_host, host_name) -> None:
    """The live DOCKER-USER rules are the intended ones (the script's check: same rules, jump first)."""
    name, host = fleet_host
    if not firewall_rules.get(name):
        pytest.skip(f"{name} publishes nothing to other hosts")
    script = fleet.var(name, "docker_engine_firewall_script", "/usr/local/sbin/photomatrix-firewall")
    check = host.run(f"{script} check")
    assert check.rc == 0, f"{name}: the live rules differ from {script}: {check.stderr}"
    for rule in firewall_rules[name]:
        listed = host.check_output(f"grep -c -- '--ctorigdstport {rule['port']} ' {script}")
        assert int(listed) == len(rule["peers"]) + 1, f"{name}: port {rule['port']} in {script}"


def test_each_published_port_admits_only_its_peers(fleet, firewall_rules) -> None:
    """From a peer host a published port answers; from this machine and from a non-peer host it does not."""
    checked = 0
    by_address = {fleet.address(n): n for n in fleet.names}
    for name, rules in sorted(firewall_rules.items()):
        if not rules:
            continue
        published = published_ports(fleet.hosts[name])
        for rule in rules:
            if rule["port"] not in published:
                continue  # nothing listens there (e.g. mongod where it cannot run): nothing to tell apart
            address, port = rule["address"], rule["port"]
            peer = by_address[rule["peers"][0]]
            assert connects_from(fleet.hosts[peer], address, port), f"{peer} -> {name} {address}:{port}"
            outsiders = [n for n in fleet.names if n != name and fleet.address(n) not in rule["peers"]]
            if outsiders:
                outsider = outsiders[0]
                assert not connects_from(fleet.hosts[outsider], address, port), (
                    f"{outsider} (not a peer) reached {name} {address}:{port}"
                )
            with pytest.raises((ConnectionRefusedError, TimeoutError)):
                socket.create_connection((address, port), timeout=5).close()
            checked += 1
    if not any(firewall_rules.values()):
        pytest.skip("no host publishes a port to other hosts")
    assert checked, "no published port to check"
