"""roles/common's tls_certificate entry point (the one mechanism of every internal TLS hop: the ERP's,
PostgreSQL's and node exporter's certificates), run by ansible-playbook (local connection) against a CA
made by the test in a directory laid out as the proxy role keeps the internal CA (ca.crt,
private/ca.key):

- the first run makes the key (mode 0600) and a certificate that CA signed, with the names given (an
  address as an IP entry), and tells the caller it changed;
- a second run changes nothing and tells the caller so;
- a new CA (make rotate WHAT=ca): the certificate is re-signed by it, the key kept.
"""

from __future__ import annotations

import json
import os
import subprocess  # nosec B404
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from plugins.pki import make_test_ca

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

PLAYBOOK = """\
- name: A certificate from the internal CA (roles/common, tls_certificate)
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Make or renew it
      ansible.builtin.include_role:
        name: common
        tasks_from: tls_certificate
      vars:
        common_tls_service: test service
        common_tls_key_path: "{{ out }}/tls.key"
        common_tls_cert_path: "{{ out }}/tls.crt"
        common_tls_owner: "{{ owner }}"
        common_tls_names: [svc-name, host-a, 10.77.0.31]
        common_tls_ca_host: localhost
        common_tls_ca_dir: "{{ ca_dir }}"
        common_tls_changed_fact: test_tls_changed

    - name: Say what the caller sees
      ansible.builtin.copy:
        dest: "{{ out }}/changed.json"
        content: "{{ {'changed': test_tls_changed} | to_json }}"
        mode: "0600"
      changed_when: false
"""


def _ca(directory: Path, name: str) -> Path:
    """A CA laid out as the proxy role keeps the internal one: DIRECTORY/ca.crt, DIRECTORY/private/ca.key."""
    cert, key = make_test_ca(name, days=3650)
    (directory / "private").mkdir(parents=True)
    (directory / "ca.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "private" / "ca.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return directory


def _run(tmp_path: Path, out: Path, ca_dir: Path) -> subprocess.CompletedProcess[str]:
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    # The system Python, as on a server: the role installs python3-cryptography for it (apt).
    extra = {
        "out": str(out),
        "ca_dir": str(ca_dir),
        "owner": os.getuid(),
        "ansible_python_interpreter": "/usr/bin/python3",
    }
    return subprocess.run(  # nosec B603
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook),
         "-e", json.dumps(extra)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=540, check=False,
    )  # fmt: skip


def _changed_tasks(result: subprocess.CompletedProcess[str]) -> int:
    recap = next(line for line in result.stdout.splitlines() if line.startswith("localhost"))
    return int(recap.split("changed=")[1].split()[0])


def test_the_certificate_is_made_kept_and_re_signed_by_a_new_ca(tmp_path: Path) -> None:
    out = tmp_path / "service"
    out.mkdir()
    first_ca = _ca(tmp_path / "ca1", "pmtest-ca-1")

    first = _run(tmp_path, out, first_ca)
    assert first.returncode == 0, first.stdout[-3000:]
    assert json.loads((out / "changed.json").read_text()) == {"changed": True}
    assert (out / "tls.key").stat().st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate((out / "tls.crt").read_bytes())
    ca_cert = x509.load_pem_x509_certificate((first_ca / "ca.crt").read_bytes())
    cert.verify_directly_issued_by(ca_cert)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["svc-name", "host-a"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["10.77.0.31"]
    key = (out / "tls.key").read_bytes()

    again = _run(tmp_path, out, first_ca)
    assert again.returncode == 0, again.stdout[-3000:]
    assert json.loads((out / "changed.json").read_text()) == {"changed": False}
    assert _changed_tasks(again) == 0, again.stdout[-3000:]
    assert (out / "tls.crt").read_bytes() == cert.public_bytes(serialization.Encoding.PEM)

    second_ca = _ca(tmp_path / "ca2", "pmtest-ca-2")
    rotated = _run(tmp_path, out, second_ca)
    assert rotated.returncode == 0, rotated.stdout[-3000:]
    assert json.loads((out / "changed.json").read_text()) == {"changed": True}
    new = x509.load_pem_x509_certificate((out / "tls.crt").read_bytes())
    new.verify_directly_issued_by(x509.load_pem_x509_certificate((second_ca / "ca.crt").read_bytes()))
    assert (out / "tls.key").read_bytes() == key
