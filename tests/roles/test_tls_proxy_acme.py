"""The tls_proxy role's ACME mode for real, against pebble (Let's Encrypt's ACME test server, Debian's
package) started here: the whole role run by ansible-playbook against localhost with a temporary root,
the project's nginx image (photomatrix/nginx:current, used only when it exists here: never built by a
test) as the proxy on ports of its own.

- lego, run by the role's renewal script, gets a certificate over HTTP-01: pebble (PEBBLE_VA_NOSLEEP,
  its names resolved to 127.0.0.1 by pebble-challtestsrv) fetches the answer from the proxy's published
  HTTP port, which nginx serves from the challenge directory; the issued chain verifies against pebble's
  root (from its management API) and is what the proxy serves in a TLS handshake;
- the trust roots given as a URL (pebble's /roots/0 here, Let's Encrypt's staging roots in staging) are
  fetched at deploy time, installed as pki/acme-roots.pem and exported for the control machine;
- the renewal job is installed (a cron entry here, no systemd) and its command renews for real when the
  renewal window is wider than the certificate's lifetime, after which the proxy serves the new
  certificate; within the window it changes nothing;
- the internal CA is made in this mode too (issue 10) and exported for the controller-side store; nginx
  starts with its copy for the ERP's and the bot's HTTPS upstreams, and the public certificate is not
  from it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from plugins.processes import wait_listening

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
IMAGE = "photomatrix/nginx:current"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=300, check=False, **kwargs)


def need(program: str) -> None:
    if shutil.which(program) is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{program} is not installed (.ci/apt-packages.txt lists it)")
        pytest.skip(f"{program} is not installed")


@dataclass
class Pebble:
    directory: str
    management: str
    server_ca: Path  # the CA of pebble's own HTTPS (made here)
    http_port: int  # where pebble validates HTTP-01: the proxy's published HTTP port
    domain: str

    def get(self, path: str) -> str:
        context = ssl.create_default_context(cafile=str(self.server_ca))
        url = self.management + path  # https://127.0.0.1:<port>/...
        with urllib.request.urlopen(url, context=context, timeout=10) as response:  # noqa: S310
            return response.read().decode()


def make_server_ca(tmp: Path) -> tuple[Path, Path, Path]:
    """A CA and a certificate for 127.0.0.1/localhost signed by it: pebble's HTTPS."""
    ca_key, ca, key, csr, cert = (tmp / n for n in ("ca.key", "ca.pem", "key.pem", "csr.pem", "cert.pem"))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    subprocess.run(
        ["openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2",
         "-subj", "/CN=pebble test CA"],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    subprocess.run(
        ["openssl", "req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=localhost"],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    ext = tmp / "ext.cnf"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    subprocess.run(
        ["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert,
         "-days", "2", "-extfile", ext],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    return ca, cert, key


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    for program in ("pebble", "pebble-challtestsrv", "lego", "openssl"):
        need(program)
    tmp = tmp_path_factory.mktemp("pebble")
    ca, cert, key = make_server_ca(tmp)
    listen, management, http_port, dns_port, dns_management = (free_port() for _ in range(5))
    config = tmp / "pebble.json"
    config.write_text(
        json.dumps(
            {
                "pebble": {
                    "listenAddress": f"127.0.0.1:{listen}",
                    "managementListenAddress": f"127.0.0.1:{management}",
                    "certificate": str(cert),
                    "privateKey": str(key),
                    "httpPort": http_port,
                    "tlsPort": free_port(),
                    "ocspResponderURL": "",
                    "externalAccountBindingRequired": False,
                }
            }
        )
    )
    # Every name resolves to 127.0.0.1: pebble's validation reaches the proxy's published HTTP port.
    dns = subprocess.Popen(
        ["pebble-challtestsrv", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
         "-dns01", f"127.0.0.1:{dns_port}", "-http01", "", "-https01", "", "-tlsalpn01", "",
         "-management", f"127.0.0.1:{dns_management}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    # No sleeps before validation, no rejected nonces, no reused authorizations: every order validates.
    env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"}
    server = subprocess.Popen(
        ["pebble", "-config", str(config), "-dnsserver", f"127.0.0.1:{dns_port}"],
        stdout=(tmp / "pebble.log").open("w"), stderr=subprocess.STDOUT, env=env, text=True,
    )  # fmt: skip
    try:
        wait_listening(dns, dns_management, "pebble-challtestsrv", timeout=30)
        wait_listening(server, management, "pebble", timeout=30)
        yield Pebble(
            directory=f"https://127.0.0.1:{listen}/dir",
            management=f"https://127.0.0.1:{management}",
            server_ca=ca,
            http_port=http_port,
            domain=f"acme-{secrets.token_hex(3)}.photomatrix.test",
        )
    finally:
        for proc in (server, dns):
            proc.terminate()
            proc.wait(timeout=30)
        print((tmp / "pebble.log").read_text()[-3000:])


@dataclass
class Proxy:
    root: Path
    https_port: int
    container: str
    script: Path
    job: str
    export: Path
    ca_export: Path
    tmp: Path
    ca_bundle: Path

    def play(self, playbook: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        """ansible-playbook against localhost with the test's variables (and EXTRA arguments)."""
        return run(
            str(BIN / "ansible-playbook"), "-i", str(self.tmp / "hosts.yml"), str(playbook),
            "-e", f"@{self.tmp / 'vars.json'}", *extra,
            cwd=ROOT,
            env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
                 # The role fetches pebble's root from its management API (HTTPS from the CA made here).
                 "SSL_CERT_FILE": str(self.ca_bundle)},
        )  # fmt: skip


def own_crons() -> set[int]:
    """cron daemons in this PID namespace (containers on this machine run their own: never touched)."""
    mine = os.readlink("/proc/self/ns/pid")
    found = set()
    for pid in run("pidof", "cron").stdout.split():
        try:
            if os.readlink(f"/proc/{pid}/ns/pid") == mine:
                found.add(int(pid))
        except OSError:
            continue
    return found


@pytest.fixture(scope="module")
def proxy(pebble: Pebble, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """The role run once in ACME mode; afterwards its container, network, cron entry and cron daemon
    (when this run started it) are removed."""
    need("docker")
    if run("docker", "image", "inspect", IMAGE).returncode:
        pytest.skip(f"{IMAGE} is not built here (make up builds it)")
    tmp = tmp_path_factory.mktemp("proxy")
    suffix = secrets.token_hex(4)
    root = tmp / "root"
    job = f"tls-acme-test-{suffix}"
    network = f"tls-acme-test-{suffix}"
    result = Proxy(
        root=root,
        https_port=free_port(),
        container=f"tls-acme-test-{suffix}",
        script=tmp / "acme-renew",
        job=job,
        export=tmp / "controller" / "acme-roots.pem",
        ca_export=tmp / "controller" / "ca.crt",
        tmp=tmp,
        ca_bundle=pebble.server_ca,
    )
    extra = {
        "tls_proxy_root": str(root),
        "tls_proxy_config_dir": str(root / "proxy"),
        "tls_proxy_pki_dir": str(root / "pki"),
        "tls_proxy_image": IMAGE,
        "tls_proxy_container_name": result.container,
        "tls_proxy_net_container_name": f"{result.container}-net",
        "tls_proxy_network": network,
        "tls_proxy_bind_address": "127.0.0.1",
        "tls_proxy_http_port": pebble.http_port,
        "tls_proxy_https_port": result.https_port,
        "tls_proxy_domain": pebble.domain,
        "tls_proxy_cert_mode": "acme",
        "tls_proxy_acme_directory": pebble.directory,
        "tls_proxy_acme_directory_ca_file": str(pebble.server_ca),
        "tls_proxy_acme_email": "it@photomatrix.test",
        "tls_proxy_acme_terms_agreed": True,
        # lego, pebble and cron come from .ci/apt-packages.txt: the role installs nothing here.
        "tls_proxy_module_packages": [],
        "tls_proxy_acme_packages": [],
        "tls_proxy_acme_renew_script": str(result.script),
        "tls_proxy_acme_renew_job": job,
        "tls_proxy_acme_renew_log": str(tmp / "renew.log"),
        "tls_proxy_acme_trust_roots": [pebble.management + "/roots/0"],
        "tls_proxy_acme_trust_export": str(result.export),
        # The internal CA, as photomatrix_internal_ca gives it to every inventory with a store, and the
        # HTTPS upstreams that nginx checks against it.
        "tls_proxy_ca_export": str(result.ca_export),
        "tls_proxy_internal_ca": True,
        "tls_proxy_erp_tls": True,
        "tls_proxy_bot_tls": True,
        "tls_proxy_rocketchat_servers": ["rocketchat:3000"],
        "tls_proxy_erp_servers": ["erp-api:8000"],
        "tls_proxy_bot_servers": ["chatbot:8080"],
        "tls_proxy_erp_allowlist": ["127.0.0.1"],
    }
    (tmp / "vars.json").write_text(json.dumps(extra))
    (tmp / "hosts.yml").write_text(
        json.dumps({"all": {"hosts": {"localhost": {"ansible_connection": "local",
                                                     "ansible_python_interpreter": sys.executable}}}})
    )  # fmt: skip
    (tmp / "site.yml").write_text(
        "- name: TLS proxy, ACME mode (test)\n  hosts: localhost\n  gather_facts: false\n"
        "  roles:\n    - role: tls_proxy\n"
    )
    cron_before = own_crons()
    run("docker", "network", "create", network).check_returncode()
    try:
        started = time.monotonic()
        play = result.play(tmp / "site.yml")
        print(f"first run (issuance) took {time.monotonic() - started:.1f} s")
        (tmp / "play.log").write_text(play.stdout + play.stderr)
        assert play.returncode == 0, play.stdout[-6000:] + play.stderr[-2000:]
        yield result
    finally:
        # nginx (and a next one of a swap) before the holder of its network.
        run("docker", "rm", "-f", f"{result.container}-next", result.container)
        run("docker", "rm", "-f", f"{result.container}-net")
        run("docker", "network", "rm", network)
        Path(f"/etc/cron.d/{job}").unlink(missing_ok=True)
        for unit in (f"/etc/systemd/system/{job}.timer", f"/etc/systemd/system/{job}.service"):
            if Path(unit).exists():
                run("systemctl", "disable", "--now", Path(unit).name)
                Path(unit).unlink()
        # The daemon this run started goes, unless a stack's entries came to rely on it meanwhile: CI's
        # make test-infra deploys beside pytest, and its roles start no second cron when one runs.
        if not any(Path("/etc/cron.d").glob("photomatrix-*")):
            for pid in own_crons() - cron_before:
                os.kill(pid, 15)


def pem_certs(text: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(text.encode())


def served_leaf(proxy: Proxy, pebble: Pebble) -> x509.Certificate:
    """The certificate the proxy presents for the public name, verified against pebble's root only."""
    context = ssl.create_default_context(cadata=pebble.get("/roots/0"))
    with (
        socket.create_connection(("127.0.0.1", proxy.https_port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=pebble.domain) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der
    return x509.load_der_x509_certificate(der)


def chain_verifies(chain: Path, roots: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    certs = pem_certs(chain.read_text())
    (tmp / "leaf.pem").write_text(
        chain.read_text().split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
    )
    (tmp / "roots.pem").write_text(roots)
    assert len(certs) >= 2, "the chain holds the intermediate"
    return run(
        "openssl",
        "verify",
        "-CAfile",
        str(tmp / "roots.pem"),
        "-untrusted",
        str(chain),
        str(tmp / "leaf.pem"),
    )


def test_the_role_issues_over_http01_and_the_proxy_serves_the_chain(
    proxy: Proxy, pebble: Pebble, tmp_path: Path
):
    chain = proxy.root / "pki" / "server" / "fullchain.pem"
    issued = pem_certs(chain.read_text())
    # pebble's chain: its intermediate signed the leaf, its root the intermediate (openssl checks both).
    assert issued[1].subject.rfc4514_string().startswith("CN=Pebble Intermediate CA")
    verified = chain_verifies(chain, pebble.get("/roots/0"), tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    names = issued[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [pebble.domain]
    # lego's certificate is the one installed, and the one the proxy presents.
    lego = proxy.root / "pki" / "acme" / "certificates" / f"{pebble.domain}.crt"
    assert lego.read_text() == chain.read_text()
    assert served_leaf(proxy, pebble) == issued[0]
    # Every file of lego's (its account key and certificate keys included) is private, as make verify
    # checks on a host (the renewal script's umask 022 is for the challenge files nginx reads).
    acme = proxy.root / "pki" / "acme"
    assert acme.stat().st_mode & 0o777 == 0o700
    shared = [str(p) for p in acme.rglob("*") if p.stat().st_mode & 0o077]
    assert not shared, shared
    # The answer was lego's file in the challenge directory nginx serves (lego removes it afterwards).
    assert (proxy.root / "acme-challenge" / ".well-known" / "acme-challenge").is_dir()
    assert (proxy.root / "pki" / "server" / "server.key").stat().st_mode & 0o777 == 0o600


def test_the_trust_roots_url_is_fetched_installed_and_exported(proxy: Proxy, pebble: Pebble) -> None:
    root = pebble.get("/roots/0").strip()
    assert (proxy.root / "pki" / "acme-roots.pem").read_text().strip() == root
    assert proxy.export.read_text().strip() == root
    assert proxy.export.stat().st_mode & 0o777 == 0o600


def test_the_internal_ca_is_made_beside_the_acme_certificate(proxy: Proxy, pebble: Pebble) -> None:
    """Issue 10: ACME mode makes the internal CA too (its key on the host, its certificate exported to
    the store), gives nginx its copy for the ERP's and the bot's upstreams before nginx starts, and keeps
    it out of the public chain."""
    pki = proxy.root / "pki"
    ca = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    assert ca.subject.rfc4514_string() == "CN=Photomatrix internal CA"
    assert (pki / "private" / "ca.key").stat().st_mode & 0o777 == 0o600
    assert proxy.ca_export.read_text() == (pki / "ca.crt").read_text()
    assert proxy.ca_export.stat().st_mode & 0o777 == 0o600
    assert (pki / "server" / "upstream-ca.crt").read_text() == (pki / "ca.crt").read_text()
    conf = (proxy.root / "proxy" / "nginx.conf").read_text()
    assert "set $erp_upstream https://" in conf
    assert "proxy_ssl_verify on;" in conf
    assert "proxy_ssl_trusted_certificate /etc/nginx/tls/upstream-ca.crt;" in conf
    # The public chain is pebble's: nothing in it is from the internal CA.
    chain = pem_certs((pki / "server" / "fullchain.pem").read_text())
    assert all(cert.issuer != ca.subject for cert in chain)
    assert served_leaf(proxy, pebble).issuer != ca.subject


def test_the_renewal_job_renews_for_real_and_the_proxy_serves_the_new_certificate(
    proxy: Proxy, pebble: Pebble, tmp_path: Path
) -> None:
    if Path("/run/systemd/system").exists():
        unit = Path(f"/etc/systemd/system/{proxy.job}.service").read_text()
        command = next(line for line in unit.splitlines() if line.startswith("ExecStart=")).split("=", 1)[1]
    else:
        entry = Path(f"/etc/cron.d/{proxy.job}").read_text()
        assert "PATH=" in entry
        line = next(line for line in entry.splitlines() if str(proxy.script) in line)
        minute, hour, *_ = line.split()
        assert (hour, minute) == ("4", "17"), line
        command = line.split(" root ", 1)[1].split(" >> ", 1)[0]
    assert command == str(proxy.script)
    chain = proxy.root / "pki" / "server" / "fullchain.pem"
    before = pem_certs(chain.read_text())[0]
    stamp = chain.stat().st_mtime_ns

    # Within the window (30 days; pebble's certificates last years): nothing changes, no reload.
    same = run(command)
    assert same.returncode == 0, same.stderr[-3000:]
    assert same.stdout.split() == ["unchanged"]
    assert chain.stat().st_mtime_ns == stamp

    # A window wider than the certificate's lifetime: lego renews over HTTP-01 again.
    lifetime = before.not_valid_after_utc - dt.datetime.now(dt.UTC)
    started = time.monotonic()
    renewed = run(command, env={**os.environ, "PHOTOMATRIX_ACME_RENEW_DAYS": str(lifetime.days + 2)})
    assert renewed.returncode == 0, renewed.stderr[-3000:]
    assert renewed.stdout.split() == ["renewed"], renewed.stdout + renewed.stderr[-2000:]
    print(f"renewal took {time.monotonic() - started:.1f} s")
    after = pem_certs(chain.read_text())[0]
    assert after.serial_number != before.serial_number
    verified = chain_verifies(chain, pebble.get("/roots/0"), tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # The proxy was reloaded (nginx -s reload returns before the new workers answer): new handshakes
    # present the new certificate.
    deadline = time.monotonic() + 20
    while (served := served_leaf(proxy, pebble)) != after and time.monotonic() < deadline:
        time.sleep(0.5)
    assert served == after


def test_a_second_run_changes_nothing(proxy: Proxy, pebble: Pebble) -> None:
    """Within the renewal window the role's run of the script is `unchanged`: no task changes, the
    certificate on disk and the one served stay the same."""
    chain = proxy.root / "pki" / "server" / "fullchain.pem"
    on_disk = pem_certs(chain.read_text())[0]
    # A previous test's reload may still be finishing on a loaded machine (old workers answering).
    deadline = time.monotonic() + 20
    while served_leaf(proxy, pebble) != on_disk and time.monotonic() < deadline:
        time.sleep(0.5)
    again = proxy.play(proxy.tmp / "site.yml")
    assert again.returncode == 0, again.stdout[-4000:]
    recap = again.stdout[again.stdout.rindex("PLAY RECAP") :]
    assert "changed=0" in recap, again.stdout[-6000:]
    assert pem_certs(chain.read_text())[0] == on_disk
    assert served_leaf(proxy, pebble) == on_disk


def test_a_chain_that_does_not_reach_the_trust_roots_stops_the_play(proxy: Proxy, pebble: Pebble) -> None:
    """Trust roots that did not sign the served chain (here: the CA of pebble's own HTTPS): the role
    refuses them instead of handing clients a CA file that fails every handshake."""
    playbook = proxy.tmp / "trust.yml"
    playbook.write_text(
        "- name: Trust roots only (test)\n  hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - name: Trust\n      ansible.builtin.include_role:\n        name: tls_proxy\n"
        "        tasks_from: acme_trust.yml\n"
    )
    wrong = {
        "tls_proxy_acme_trust_roots": [pebble.server_ca.read_text()],
        "tls_proxy_acme_trust_export": "",
        "tls_proxy_pki_dir": str(proxy.tmp / "wrong-pki"),
    }
    (proxy.tmp / "wrong-pki" / "server").mkdir(parents=True)
    shutil.copy(proxy.root / "pki" / "server" / "fullchain.pem", proxy.tmp / "wrong-pki" / "server")
    refused = proxy.play(playbook, "-e", json.dumps(wrong))
    assert refused.returncode != 0
    assert "Check that the served chain verifies against the trust roots" in refused.stdout
    assert "unable to get local issuer certificate" in refused.stdout + refused.stderr
    # A PEM text that is no certificate is refused before anything is written.
    wrong["tls_proxy_acme_trust_roots"] = ["not a certificate"]
    refused = proxy.play(playbook, "-e", json.dumps(wrong))
    assert refused.returncode != 0
    assert "neither an https URL nor a PEM certificate" in refused.stdout
    # Refused roots are neither installed nor handed out.
    assert not (proxy.tmp / "wrong-pki" / "acme-roots.pem").exists()


def test_a_later_run_makes_the_internal_ca_again_and_keeps_the_acme_certificate(
    proxy: Proxy, pebble: Pebble
) -> None:
    """Issue 10: once the ACME certificate exists the role no longer goes through the temporary internal
    certificate, yet it still makes the internal CA where there is none (as make rotate WHAT=ca leaves it
    in this mode: only the CA's files set aside), gives nginx the new copy, and keeps the ACME certificate
    and account untouched."""
    pki = proxy.root / "pki"
    chain = pki / "server" / "fullchain.pem"
    public = chain.read_text()
    old_ca = (pki / "ca.crt").read_text()
    aside = proxy.tmp / "ca-aside"
    aside.mkdir()
    for name in ("ca.crt", "private/ca.key", "private/ca.csr"):
        shutil.move(pki / name, aside / name.replace("/", "-"))
    again = proxy.play(proxy.tmp / "site.yml")
    assert again.returncode == 0, again.stdout[-4000:]
    new_ca = (pki / "ca.crt").read_text()
    assert new_ca != old_ca
    assert (pki / "private" / "ca.key").exists()
    assert proxy.ca_export.read_text() == new_ca
    assert (pki / "server" / "upstream-ca.crt").read_text() == new_ca
    assert chain.read_text() == public  # the ACME certificate stays; no temporary one replaced it
    assert served_leaf(proxy, pebble) == pem_certs(public)[0]
