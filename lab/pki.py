"""The lab's internal CA and the TLS certificates of its services, the registry and the ACME CA (EC P-256,
short-lived)."""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=30)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def ensure_registry_pki(directory: Path, lab_name: str, registry_ip: str) -> None:
    """Create ca.crt/ca.key and registry.crt/registry.key in DIRECTORY unless they exist."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    ca_crt, ca_key = directory / "ca.crt", directory / "ca.key"
    if not all(p.exists() for p in (ca_crt, ca_key, directory / "registry.crt", directory / "registry.key")):
        now = datetime.datetime.now(datetime.UTC)
        ca_private = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{lab_name} lab CA")])
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_private.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .sign(ca_private, hashes.SHA256())
        )
        _write_private(ca_key, _key_pem(ca_private))
        ca_crt.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        # A new CA: every service's certificate is signed again (by ensure_service_cert).
        for old in directory.glob("*.crt"):
            if old != ca_crt:
                old.unlink()
    ensure_service_cert(directory, "registry", f"registry.{lab_name}.lab", registry_ip)


def ensure_service_cert(directory: Path, stem: str, name: str, ip: str) -> None:
    """STEM.crt/STEM.key in DIRECTORY for NAME and IP (server use), signed by the lab CA there, unless
    they exist: the certificates of the lab's own services (its registry, its ACME CA)."""
    crt, key = directory / f"{stem}.crt", directory / f"{stem}.key"
    if crt.exists() and key.exists():
        return
    ca_private = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
    now = datetime.datetime.now(datetime.UTC)
    private = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(min(now + VALIDITY, ca_cert.not_valid_after_utc))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name), x509.IPAddress(ipaddress.ip_address(ip))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_private, hashes.SHA256())
    )
    _write_private(key, _key_pem(private))
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
