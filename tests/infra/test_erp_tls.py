"""The proxy → ERP and Prometheus → node exporter hops are TLS from the internal CA (issue 10;
docs/topology.md, section 4): from the proxy host, as nginx reaches them, every ERP replica refuses plain
HTTP and presents a certificate that chains to the stack's CA (the CA host's <root>/pki/ca.crt) for the
name the proxy and Prometheus verify (erp-api) and for the address that upstream line uses; from the
monitoring host, as Prometheus reaches them, so does every host's node exporter (node-exporter). Read-only:
connections only, on any inventory (`make verify [INVENTORY=…]`); skipped where there is no internal CA
(ACME or provided certificates)."""

from __future__ import annotations

import json
import shlex

import pytest

pytestmark = pytest.mark.infra

ERP_CONTAINER = "photomatrix-erp-api"
SERVER_NAME = "erp-api"
NODE_CONTAINER = "photomatrix-node-exporter"
NODE_SERVER_NAME = "node-exporter"

# Run with the proxy host's python3: for each ip:port, a plain HTTP request, then a TLS handshake
# verified against the CA for SERVER_NAME, its certificate's names, protocol and a request over it.
PROBE = r"""
import json, socket, ssl, sys
ca, name, targets, path = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
request = b"GET " + path.encode() + b" HTTP/1.0\r\n\r\n"
seen = {}
for target in targets:
    address, port = target.rsplit(":", 1)
    entry = {}
    try:
        with socket.create_connection((address, int(port)), 5) as plain:
            plain.settimeout(5)
            plain.sendall(request)
            entry["plain"] = plain.recv(64).decode("latin-1")
    except OSError as exc:
        entry["plain"] = "closed: " + type(exc).__name__
    try:
        context = ssl.create_default_context(cafile=ca)
        with socket.create_connection((address, int(port)), 5) as raw:
            with context.wrap_socket(raw, server_hostname=name) as tls:
                cert = tls.getpeercert()
                entry["names"] = [value for _, value in cert.get("subjectAltName", ())]
                entry["version"] = tls.version()
                tls.sendall(request)
                entry["answer"] = tls.recv(64).decode("latin-1")
    except (OSError, ssl.SSLError) as exc:
        entry["tls_error"] = repr(exc)
    seen[target] = entry
print(json.dumps(seen))
"""


def probe(host, ca: str, server_name: str, targets: dict[str, str], path: str) -> dict[str, dict]:
    """PROBE run with HOST's python3 against every ip:port of TARGETS: ip:port -> what it saw."""
    argv = ("python3", "-c", PROBE, ca, server_name, json.dumps(sorted(targets)), path)
    return json.loads(host.check_output(" ".join(shlex.quote(part) for part in argv)))


def assert_internal_tls(
    entry: dict, target: str, address: str, server_name: str, ca: str, answer: str
) -> None:
    """TARGET's TLS, as PROBE saw it: verified against CA for SERVER_NAME (its first name), ADDRESS (the
    name or address its upstream line uses) in its certificate too, TLSv1.2/1.3, and ANSWER's status line
    start over it."""
    assert "tls_error" not in entry, f"{target}: no TLS verified against {ca}: {entry['tls_error']}"
    assert entry["names"][0] == server_name, f"{target}: names {entry['names']}"
    assert address in entry["names"], f"{target}: {address} not in {entry['names']}"
    assert entry["version"] in ("TLSv1.2", "TLSv1.3"), entry["version"]
    assert entry["answer"].startswith(answer), f"{target}: {entry['answer']!r}"


def container_address(host, container: str) -> str:
    """CONTAINER's address on its first network, as a peer on its host reaches it (Docker's choice)."""
    fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}"
    return host.check_output(f"docker inspect --format {shlex.quote(fmt)} {container}").split()[0]


def _tls_expected(fleet, proxy: str) -> bool:
    """photomatrix_erp_tls's condition (the internal CA: a proxy host and a controller-side store, in every
    certificate mode), from the inventory."""
    return bool(fleet.var(proxy, "photomatrix_bootstrap_secrets_dir", "")) and str(
        fleet.var(proxy, "photomatrix_erp_tls", True)
    ).lower() not in ("false", "no", "0")


def _targets(fleet, proxy: str) -> dict[str, str]:
    """Each ERP replica as the proxy host reaches it -> the name its certificate must carry besides
    erp-api: on the proxy's own host its container name (nginx reaches it by name through Docker's DNS;
    its address is Docker's choice, in no certificate), else the ERP host's address."""
    targets: dict[str, str] = {}
    for erp in fleet.group("erp"):
        port = int(fleet.var(erp, "erp_api_port", 8000))
        replicas = int(fleet.var(erp, "erp_api_replicas", 1))
        if erp == proxy:
            for i in range(replicas):
                name = ERP_CONTAINER if i == 0 else f"{ERP_CONTAINER}-{i + 1}"
                targets[f"{container_address(fleet.hosts[erp], name)}:{port}"] = name
        else:
            address = fleet.address(erp)
            for i in range(replicas):
                targets[f"{address}:{port + i}"] = address
    return targets


def test_every_erp_replica_refuses_plain_http_and_serves_the_internal_ca_certificate(fleet) -> None:
    proxies = fleet.group("proxy")
    if not proxies or not fleet.group("erp"):
        pytest.skip("no proxy or no erp group")
    proxy = proxies[0]
    if not _tls_expected(fleet, proxy):
        pytest.skip("no internal CA (no controller-side store), or the ERP hop is switched off")
    ca = f"{fleet.var(proxy, 'photomatrix_root', '/srv/photomatrix')}/pki/ca.crt"
    targets = _targets(fleet, proxy)
    seen = probe(fleet.hosts[proxy], ca, SERVER_NAME, targets, "/readyz")
    for target, address in targets.items():
        entry = seen[target]
        assert not entry["plain"].startswith("HTTP/"), f"{target} answered plain HTTP: {entry['plain']!r}"
        assert_internal_tls(entry, target, address, SERVER_NAME, ca, "HTTP/1.1 200")


def test_the_erp_key_is_a_private_read_only_file_never_in_the_environment(fleet) -> None:
    proxies = fleet.group("proxy")
    if not proxies or not _tls_expected(fleet, proxies[0]):
        pytest.skip("no internal CA: the ERP serves no TLS from it")
    for name in fleet.group("erp"):
        host = fleet.hosts[name]
        info = json.loads(host.check_output(f"docker inspect {ERP_CONTAINER}"))[0]
        mounts = {m["Destination"]: m for m in info["Mounts"]}
        key = mounts.get("/run/secrets/erp/tls.key")
        assert key, f"{name}: the ERP's key is not mounted"
        assert not key["RW"], f"{name}: the ERP's key is mounted writable"
        key_file = host.file(key["Source"])
        assert key_file.mode == 0o600, f"{name}: {key['Source']} is {oct(key_file.mode)}"
        assert key_file.uid == 10001, f"{name}: {key['Source']} is not the ERP user's"
        env = "\n".join(info["Config"]["Env"] or [])
        assert "PRIVATE KEY" not in env, f"{name}: the key shows in the environment"
        assert "tls.key" not in env, f"{name}: the key's file shows in the environment"
        assert "--ssl-keyfile" in info["Config"]["Cmd"], f"{name}: the ERP does not serve HTTPS"


def test_every_node_exporter_refuses_plain_http_and_serves_the_internal_ca_certificate(fleet) -> None:
    proxies, monitors = fleet.group("proxy"), fleet.group("monitoring")
    if not proxies or not monitors:
        pytest.skip("no proxy or no monitoring group")
    if not _tls_expected(fleet, proxies[0]) or str(
        fleet.var(monitors[0], "photomatrix_node_exporter_tls", True)
    ).lower() in ("false", "no", "0"):
        pytest.skip("no internal CA, or node exporters serve plain HTTP (photomatrix_node_exporter_tls)")
    monitor = fleet.hosts[monitors[0]]
    # As Prometheus reaches each: its own host's by container (Docker's DNS name node-exporter), the
    # others by host address and published port.
    targets: dict[str, str] = {}
    for name in fleet.group("docker_hosts"):
        port = int(fleet.var(name, "monitoring_node_exporter_port", 9100))
        if name == monitors[0]:
            targets[f"{container_address(monitor, NODE_CONTAINER)}:{port}"] = NODE_SERVER_NAME
        else:
            targets[f"{fleet.address(name)}:{port}"] = fleet.address(name)
    # The CA as the monitoring host has it: Prometheus' copy (roles/monitoring, config.yml).
    node_ca = f"{fleet.var(monitors[0], 'photomatrix_root', '/srv/photomatrix')}/monitoring/erp-ca.crt"
    seen = probe(monitor, node_ca, NODE_SERVER_NAME, targets, "/metrics")
    for target, address in targets.items():
        entry = seen[target]
        assert not entry["plain"].startswith("HTTP/1.1 200"), (
            f"{target} answered plain HTTP: {entry['plain']!r}"
        )
        assert_internal_tls(entry, target, address, NODE_SERVER_NAME, node_ca, "HTTP/1.0 200")
