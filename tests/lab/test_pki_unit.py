"""lab/pki.py: the lab CA and the certificates of the lab's services (its registry, its ACME CA)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from lab import pki


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_each_service_certificate_is_signed_by_the_lab_ca_for_its_name_and_address(tmp_path: Path) -> None:
    pki.ensure_registry_pki(tmp_path, "pmrel", "10.82.0.5")
    pki.ensure_service_cert(tmp_path, "acme", "acme.pmrel.lab", "10.82.0.6")
    ca = load(tmp_path / "ca.crt")
    for stem, name, address in (
        ("registry", "registry.pmrel.lab", "10.82.0.5"),
        ("acme", "acme.pmrel.lab", "10.82.0.6"),
    ):
        cert = load(tmp_path / f"{stem}.crt")
        assert cert.issuer == ca.subject
        public = ca.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == [name]
        assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address(address)]
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
        assert cert.not_valid_after_utc <= ca.not_valid_after_utc
        assert (tmp_path / f"{stem}.key").stat().st_mode & 0o077 == 0


def test_a_second_call_keeps_what_exists_and_a_new_ca_re_signs_the_registry(tmp_path: Path) -> None:
    pki.ensure_registry_pki(tmp_path, "pmrel", "10.82.0.5")
    pki.ensure_service_cert(tmp_path, "acme", "acme.pmrel.lab", "10.82.0.6")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    pki.ensure_registry_pki(tmp_path, "pmrel", "10.82.0.5")
    pki.ensure_service_cert(tmp_path, "acme", "acme.pmrel.lab", "10.82.0.6")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    # The CA's key lost: a new CA, and each service's certificate is signed again by it.
    (tmp_path / "ca.key").unlink()
    pki.ensure_registry_pki(tmp_path, "pmrel", "10.82.0.5")
    assert not (tmp_path / "acme.crt").exists()
    pki.ensure_service_cert(tmp_path, "acme", "acme.pmrel.lab", "10.82.0.6")
    for stem in ("registry", "acme"):
        assert load(tmp_path / f"{stem}.crt").issuer == load(tmp_path / "ca.crt").subject
        assert (tmp_path / f"{stem}.crt").read_bytes() != before[f"{stem}.crt"]
