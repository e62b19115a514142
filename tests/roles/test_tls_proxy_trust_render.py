"""Staging trust (issue 10): inventory/staging uses Let's Encrypt's staging CA, whose roots the system
bundle lacks, so every client of the public name must verify with the roots the tls_proxy role fetches
(tls_proxy_acme_trust_roots) and exports: the configuration play and make verify (photomatrix_ca_file),
the bot (chatbot_ca_src, installed as its chatbot_ca_file) and the blackbox probes. Rendered by Ansible
from the inventory (tests/roles/render_defaults.yml), nothing deployed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
STAGING = ROOT / "inventory" / "staging"
RENDERED = [
    "tls_proxy_cert_mode",
    "tls_proxy_acme_directory",
    "tls_proxy_acme_trust_roots",
    "tls_proxy_acme_trust_export",
    "photomatrix_ca_file",
    "chatbot_ca_src",
    "chatbot_ca_file",
    "monitoring_blackbox_ca_file",
]


def render(inventory: Path, tmp: Path) -> dict:
    out = tmp / "rendered"
    out.mkdir()
    run = subprocess.run(
        [
            str(BIN / "ansible-playbook"), "-i", str(inventory), "tests/roles/render_defaults.yml",
            "--tags", "render", "-e", json.dumps({"render_dir": str(out), "render_vars": RENDERED}),
        ],
        cwd=ROOT,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    hosts = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert hosts
    return next(iter(hosts.values()))


def test_staging_clients_of_the_public_name_trust_the_staging_roots(tmp_path: Path) -> None:
    staging = render(STAGING, tmp_path)
    assert staging["tls_proxy_cert_mode"] == "acme"
    assert "acme-staging" in staging["tls_proxy_acme_directory"]
    assert staging["tls_proxy_acme_trust_roots"] == [
        "https://letsencrypt.org/certs/staging/letsencrypt-stg-root-x1.pem",
        "https://letsencrypt.org/certs/staging/letsencrypt-stg-root-x2.pem",
    ]
    # One file on the control machine, written by the role, read by every client.
    ca = f"{STAGING}/.trust/acme-roots.pem"
    assert staging["tls_proxy_acme_trust_export"] == ca
    assert staging["photomatrix_ca_file"] == ca
    assert staging["chatbot_ca_src"] == ca
    assert staging["monitoring_blackbox_ca_file"] == ca
    # The bot gets its own copy (chatbot_ca_src installed as chatbot_ca_file), not the host's bundle.
    assert staging["chatbot_ca_file"].endswith("/ca.crt")
    assert "ca-certificates" not in staging["chatbot_ca_file"]
    # The exported roots are never committed.
    assert "/.trust/" in (STAGING / ".gitignore").read_text().split()


def test_the_production_ca_needs_no_extra_roots() -> None:
    """Let's Encrypt's production roots are in the system bundle: production adds none."""
    variables = yaml.safe_load((ROOT / "inventory/production/group_vars/all/main.yml").read_text())
    assert "acme-staging" not in variables.get("tls_proxy_acme_directory", "")
    assert not variables.get("tls_proxy_acme_trust_roots")
    assert variables["photomatrix_ca_file"] == "/etc/ssl/certs/ca-certificates.crt"


def test_the_role_defaults_add_no_roots_and_check_the_chain_against_given_ones() -> None:
    role = ROOT / "roles" / "tls_proxy"
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text())
    assert defaults["tls_proxy_acme_trust_roots"] == []
    trust = (role / "tasks" / "acme_trust.yml").read_text()
    assert 'timeout: "{{ tls_proxy_acme_trust_timeout }}"' in trust
    assert "openssl verify -CAfile" in trust
