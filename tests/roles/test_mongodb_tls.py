"""Rocket.Chat → MongoDB and member ↔ member over TLS from the internal CA (issue 10; docs/topology.md,
section 4). MongoDB cannot run here, so the role is checked up to starting mongod:

- rendered for the lab's shape: mongod's arguments (requireTLS, its PEM, the CA, clients without a
  certificate admitted), the health check over TLS by the name localhost, the TLS directory mounted,
  the CA named for the tools, MONGO_URL with tls=true, whatever the public certificate; none of it with
  the hop switched off;
- `playbooks/mongodb.yml` run for real on three local members (mongodb_run_mongod=false): the internal
  CA made first on the proxy host (tls_proxy, entry point ca), each member's certificate signed by it for
  its address, the alias and localhost, for server and client use, its key in mongod's PEM only; a second
  run changes nothing.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from roles.test_topology_render import ADDRESSES, GROUPS, MONGODB_TLS_VARS, render

if TYPE_CHECKING:
    from roles.conftest import MongodbLab

pytestmark = pytest.mark.integration

TLS_VARS = [*MONGODB_TLS_VARS, "mongodb_rocketchat_mongo_url"]


def rendered(tmp: Path, extra: dict | None = None) -> dict:
    """The lab shape's first member, as the roles derive it."""
    return render(tmp, multi=True, extra=extra, variables=TLS_VARS)["mongo1"]


def test_with_the_internal_ca_mongod_requires_tls_and_rocketchat_asks_for_it(lab: dict[str, dict]) -> None:
    one = lab["mongo1"]
    assert one["photomatrix_mongodb_tls"]
    assert one["mongodb_tls"]
    command = one["mongodb_command"]
    assert command[command.index("--tlsMode") + 1] == "requireTLS"
    assert command[command.index("--tlsCertificateKeyFile") + 1] == "/run/secrets/mongodb/tls/server.pem"
    assert command[command.index("--tlsCAFile") + 1] == "/run/secrets/mongodb/tls/ca.crt"
    assert "--tlsAllowConnectionsWithoutCertificates" in command
    assert command[command.index("--keyFile") + 1] == "/run/secrets/mongodb/keyfile"  # auth unchanged
    assert one["mongodb_env"]["MONGODB_TLS_CA_FILE"] == "/run/secrets/mongodb/tls/ca.crt"
    mount = next(m for m in one["mongodb_mounts"] if m["target"] == "/run/secrets/mongodb/tls")
    assert mount["read_only"]
    assert mount["source"].endswith("/secrets/mongodb/tls")
    check = one["mongodb_healthcheck_test"]
    assert check[:2] == ["CMD", "mongosh"]
    assert "--tls" in check
    assert check[check.index("--host") + 1] == "localhost"
    assert check[check.index("--tlsCAFile") + 1] == "/run/secrets/mongodb/tls/ca.crt"
    assert one["mongodb_rocketchat_mongo_url"].split("?", 1)[1].split("&")[-1] == "tls=true"
    assert one["mongodb_tls_names"] == [ADDRESSES["mongo1"], "mongo1", "mongodb", "localhost"]


@pytest.mark.parametrize("cert_mode", ["acme", "provided"])
def test_the_internal_ca_is_there_whatever_the_public_certificate(tmp_path: Path, cert_mode: str) -> None:
    """Issue 10: ACME or provided public certificates leave the internal CA in place: MongoDB's hop is TLS."""
    one = rendered(tmp_path, {"tls_proxy_cert_mode": cert_mode})
    assert one["photomatrix_mongodb_tls"] in (True, "True")
    assert one["mongodb_tls"]
    assert one["mongodb_rocketchat_mongo_url"].split("?", 1)[1].split("&")[-1] == "tls=true"


def test_with_the_hop_switched_off_nothing_asks_for_tls(tmp_path: Path) -> None:
    """An inventory that turns the hop off (mongodb_tls: false): plain TCP."""
    one = rendered(tmp_path, {"mongodb_tls": False})
    assert not one["mongodb_tls"]
    assert not any(a.startswith("--tls") for a in one["mongodb_command"])
    assert "MONGODB_TLS_CA_FILE" not in one["mongodb_env"]
    assert all(m["target"] != "/run/secrets/mongodb/tls" for m in one["mongodb_mounts"])
    assert "--tls" not in one["mongodb_healthcheck_test"]
    assert "tls=true" not in one["mongodb_rocketchat_mongo_url"]


def recap_changed(output: str) -> dict[str, int]:
    tail = output.rsplit("PLAY RECAP", 1)[-1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", tail, re.MULTILINE)}


def test_the_members_certificates_come_from_the_internal_ca_made_first(mongodb_lab: MongodbLab) -> None:
    first, second = mongodb_lab.first, mongodb_lab.second
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    assert "the TLS certificate from the internal" in first.stdout  # (the output wraps lines)
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-2000:]
    root = mongodb_lab.root
    changed = recap_changed(second.stdout)
    assert set(changed) >= {"edge", *GROUPS["mongodb"]}
    assert not any(changed.values()), f"a second run changed something: {changed}"

    # The CA on the proxy host, its key there only; its certificate in the controller-side store.
    pki = root / "hosts" / "edge" / "pki"
    ca = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    assert (root / "store" / "ca.crt").read_bytes() == (pki / "ca.crt").read_bytes()
    assert stat.S_IMODE((pki / "private" / "ca.key").stat().st_mode) == 0o600
    for host in GROUPS["mongodb"]:
        tls = root / "hosts" / host / "secrets" / "mongodb" / "tls"
        assert not (root / "hosts" / host / "pki").exists(), f"{host} got a CA of its own"
        assert (tls / "ca.crt").read_bytes() == (pki / "ca.crt").read_bytes()
        assert stat.S_IMODE((tls / "ca.crt").stat().st_mode) == 0o600  # under secrets/: mongod's only
        pem = (tls / "server.pem").read_bytes()
        info = (tls / "server.pem").stat()
        assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o600, 999)
        assert (stat.S_IMODE((tls.stat()).st_mode), tls.stat().st_uid) == (0o700, 999)
        cert = x509.load_pem_x509_certificate(pem)
        cert.verify_directly_issued_by(ca)
        key = serialization.load_pem_private_key(pem, password=None)
        assert key.public_key().public_numbers() == cert.public_key().public_numbers()
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert {str(a) for a in names.get_values_for_type(x509.IPAddress)} == {ADDRESSES[host]}
        assert {"mongodb", "localhost", host} <= set(names.get_values_for_type(x509.DNSName))
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= set(usage)
    url = (root / "store" / "mongodb" / "rocketchat_mongo_url").read_text().strip()
    assert url.endswith("&authSource=admin&tls=true")
