"""The proxy → Rocket.Chat hop is TLS from the internal CA (issue 10; docs/topology.md, section 4,
"Rocket.Chat's HTTPS"): from the proxy host, as nginx reaches them, every Rocket.Chat instance's TLS
sidecar refuses plain HTTP (nginx's 400, never Rocket.Chat's answer) and presents a certificate that chains
to the stack's CA for the name the proxy verifies (rocketchat-tls) and for the address the upstream line
uses; Rocket.Chat's own port is published nowhere. Read-only: connections and docker inspect only, on any
inventory (`make verify [INVENTORY=…]`); skipped where the hop is switched off or there is no internal CA."""

from __future__ import annotations

import json

import pytest
from infra.test_erp_tls import assert_internal_tls, container_address, probe

pytestmark = pytest.mark.infra

SIDECAR = "photomatrix-rocketchat-tls"
ROCKETCHAT = "photomatrix-rocketchat"
SERVER_NAME = "rocketchat-tls"


def _off(value: object) -> bool:
    return str(value).lower() in ("false", "no", "0")


def _tls_expected(fleet, proxy: str) -> bool:
    """photomatrix_rocketchat_tls's condition (the internal CA: a proxy host and a controller-side store),
    from the inventory."""
    switches = ("photomatrix_internal_ca", "photomatrix_rocketchat_tls")
    store = fleet.var(proxy, "photomatrix_bootstrap_secrets_dir", "")
    return bool(store) and not any(_off(fleet.var(proxy, switch, True)) for switch in switches)


def _instances(fleet, host: str) -> range:
    return range(int(fleet.var(host, "rocketchat_instance_count", 1)))


def _name(base: str, i: int) -> str:
    return base if i == 0 else f"{base}-{i + 1}"


def _targets(fleet, proxy: str) -> dict[str, str]:
    """Each sidecar as the proxy host reaches it -> the name its certificate must carry besides
    rocketchat-tls: on the proxy's own host its container name (its address is Docker's choice), else the
    chat host's address and published port 3443+i."""
    targets: dict[str, str] = {}
    for chat in fleet.group("rocketchat"):
        port = int(fleet.var(chat, "rocketchat_tls_port", 3443))
        for i in _instances(fleet, chat):
            if chat == proxy:
                targets[f"{container_address(fleet.hosts[chat], _name(SIDECAR, i))}:{port}"] = _name(
                    SIDECAR, i
                )
            else:
                targets[f"{fleet.address(chat)}:{port + i}"] = fleet.address(chat)
    return targets


def _proxy(fleet) -> str:
    proxies = fleet.group("proxy")
    if not proxies or not fleet.group("rocketchat"):
        pytest.skip("no proxy or no rocketchat group")
    if not _tls_expected(fleet, proxies[0]):
        pytest.skip("no internal CA (no controller-side store), or the Rocket.Chat hop is switched off")
    return proxies[0]


def test_every_sidecar_refuses_plain_http_and_serves_the_internal_ca_certificate(fleet) -> None:
    proxy = _proxy(fleet)
    ca = f"{fleet.var(proxy, 'photomatrix_root', '/srv/photomatrix')}/pki/ca.crt"
    targets = _targets(fleet, proxy)
    seen = probe(fleet.hosts[proxy], ca, SERVER_NAME, targets, "/nginx-health")
    for target, address in targets.items():
        entry = seen[target]
        # nginx's refusal of plain HTTP on its TLS port, or a closed connection: never a 2xx or 3xx.
        plain = entry["plain"]
        assert plain.startswith("HTTP/1.1 400") or not plain.startswith("HTTP/"), f"{target}: {plain!r}"
        assert_internal_tls(entry, target, address, SERVER_NAME, ca, "HTTP/1.1 200")


def test_rocketchat_publishes_nothing_and_the_sidecar_key_is_private(fleet) -> None:
    _proxy(fleet)
    for chat in fleet.group("rocketchat"):
        host = fleet.hosts[chat]
        for i in _instances(fleet, chat):
            info = json.loads(host.check_output(f"docker inspect {_name(ROCKETCHAT, i)}"))[0]
            ports = info["NetworkSettings"]["Ports"] or {}
            published = {port: bound for port, bound in ports.items() if bound}
            assert not published, f"{chat}: {_name(ROCKETCHAT, i)} publishes {published} beside its sidecar"
            sidecar = json.loads(host.check_output(f"docker inspect {_name(SIDECAR, i)}"))[0]
            mounts = {m["Destination"]: m for m in sidecar["Mounts"]}
            assert mounts["/etc/nginx/photomatrix"]["RW"] is False, f"{chat}: its files are writable"
            assert sidecar["HostConfig"]["ReadonlyRootfs"] is True, chat
            assert sidecar["HostConfig"]["CapDrop"] == ["ALL"], chat
        root = fleet.var(chat, "photomatrix_root", "/srv/photomatrix")
        key = host.file(f"{root}/secrets/rocketchat-tls/tls.key")
        assert key.exists, f"{chat}: no sidecar key"
        assert key.mode & 0o077 == 0, f"{chat}: the sidecar's key is readable by others ({oct(key.mode)})"
