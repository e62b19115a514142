"""Check a deployed HTTPS endpoint the way an auditor would: protocols, certificate, redirect, headers.

    python -m security.tls_check https://chat.example.com --ca ca.pem [--resolve 127.0.0.1]

Prints one line per check and exits 1 when any check fails. Used by the deployment's testinfra suite
and by `make security` against a running stack; safe to point at staging (a handful of handshakes).
"""

from __future__ import annotations

import argparse
import datetime as dt
import socket
import ssl
import sys
import warnings
from urllib.parse import urlsplit

import httpx

from security.findings import Finding, report

REFUSED_PROTOCOLS = (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1)
ACCEPTED_PROTOCOLS = (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)
MIN_HSTS_SECONDS = 15_552_000  # 180 days, the floor most audits use
REQUIRED_HEADERS = ("x-content-type-options", "referrer-policy")
TIMEOUT = 5.0


def handshake(host: str, port: int, version: ssl.TLSVersion, *, address: str, ca: str | None) -> str | None:
    """The negotiated protocol when the server accepts exactly `version`, else None."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    with warnings.catch_warnings():  # offering TLS 1.0/1.1 is the point of the probe
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = context.maximum_version = version
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # this probe asks only which protocols are offered
    if version < ssl.TLSVersion.TLSv1_2:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let our side offer what the server must refuse
    try:
        with (
            socket.create_connection((address, port), timeout=TIMEOUT) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            return tls.version()
    except (ssl.SSLError, OSError):
        return None


def certificate(host: str, port: int, *, address: str, ca: str | None) -> dict:
    """The peer certificate, verified against `ca` (or the system store) and the host name."""
    context = ssl.create_default_context(cafile=ca)
    with (
        socket.create_connection((address, port), timeout=TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        return tls.getpeercert()


def check(
    url: str,
    *,
    ca: str | None = None,
    resolve: str | None = None,
    min_days: int = 14,
    http_port: int = 80,
) -> list[Finding]:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"not an https URL: {url!r}")
    host, port = parts.hostname, parts.port or 443
    address = resolve or host
    findings: list[Finding] = []

    for version in REFUSED_PROTOCOLS:
        got = handshake(host, port, version, address=address, ca=ca)
        findings.append(Finding(f"{version.name} refused", got is None, got or "handshake refused"))
    for version in ACCEPTED_PROTOCOLS:
        got = handshake(host, port, version, address=address, ca=ca)
        findings.append(Finding(f"{version.name} accepted", got is not None, got or "handshake refused"))

    try:
        cert = certificate(host, port, address=address, ca=ca)
    except (ssl.SSLError, OSError) as exc:
        findings.append(Finding("certificate verifies", False, f"{type(exc).__name__}: {exc}"))
    else:
        expires = dt.datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notAfter"]), tz=dt.UTC)
        days = (expires - dt.datetime.now(dt.UTC)).days
        findings.append(Finding("certificate verifies", True, "chain and host name valid"))
        findings.append(Finding(f"certificate valid ≥ {min_days} days", days >= min_days, f"{days} days"))

    # Connect to `address`, but name `host` in SNI and the Host header, so a private CA verifies.
    target = parts._replace(netloc=f"{address}:{port}").geturl()
    sni = {"sni_hostname": host}
    with httpx.Client(verify=ssl.create_default_context(cafile=ca), timeout=TIMEOUT) as client:
        plain = client.get(f"http://{address}:{http_port}{parts.path or '/'}", headers={"Host": host})
        location = plain.headers.get("location", "")
        redirects = plain.status_code in (301, 308) and location.startswith("https://")
        findings.append(Finding("http redirects to https", redirects, f"{plain.status_code} {location}"))
        headers = client.get(target, headers={"Host": host}, extensions=sni).headers
    hsts = headers.get("strict-transport-security", "")
    max_age = next((int(p.split("=")[1]) for p in hsts.split(";") if "max-age" in p), 0)
    findings.append(Finding("HSTS", max_age >= MIN_HSTS_SECONDS, hsts or "missing"))
    for name in REQUIRED_HEADERS:
        findings.append(Finding(f"header {name}", name in headers, headers.get(name, "missing")))
    server = headers.get("server", "")
    hidden = not any(c.isdigit() for c in server)
    findings.append(Finding("server version hidden", hidden, server or "absent"))
    return findings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--ca", help="CA certificate to verify against (a private CA)")
    parser.add_argument("--resolve", help="connect to this address instead of resolving the host")
    parser.add_argument("--min-days", type=int, default=14)
    parser.add_argument("--http-port", type=int, default=80, help="plain-HTTP port that must redirect")
    args = parser.parse_args(argv)
    findings = check(
        args.url, ca=args.ca, resolve=args.resolve, min_days=args.min_days, http_port=args.http_port
    )
    return report(findings)


if __name__ == "__main__":
    sys.exit(main())
